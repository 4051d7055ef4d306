/**
 * Allocator benchmark: validate (an explicit free address) and auto-assign (next free address)
 * with 10, 10,000 and 100,000 used addresses, in pools of IPv4 /24, IPv4 /16 and IPv6 /64.
 * Used addresses fill the pool from its first address (the case where a scanning allocator
 * walks every used address); what does not fit lies outside the pool but in the same index.
 * Growth is judged as a ratio inside one run, so a noisy shared machine affects both sides alike;
 * the time per decision against a ceiling far above it (see the checks at the end).
 *
 *   npm run bench:ipam            (LB_IP_GUARD_BENCH_MS=500 to lengthen each measurement;
 *                                  the script runs node with --expose-gc)
 */
import { type Family, formatValue } from "../src/ipam/address.ts";
import { type ClusterView, decide, policyFor } from "../src/ipam/decide.ts";
import { type Pool, PoolSet } from "../src/ipam/pool.ts";
import { parseAddressBlock } from "../src/ipam/range.ts";
import type { ServiceObject } from "../src/ipam/service.ts";
import { UsageIndex } from "../src/ipam/usage.ts";

const MEASURE_MS = Number(process.env.LB_IP_GUARD_BENCH_MS ?? 300);
const USED_COUNTS = [10, 10_000, 100_000] as const;
const POOLS = {
  "IPv4 /24": "10.20.30.0/24",
  "IPv4 /16": "10.40.0.0/16",
  "IPv6 /64": "fd00:1:2:3::/64",
} as const;
type PoolKind = keyof typeof POOLS;
const policy = policyFor();

function buildView(kind: PoolKind, usedCount: number): { view: ClusterView; freeAddress: string } {
  const parsed = parseAddressBlock(POOLS[kind]);
  if (!parsed.ok) throw new Error(parsed.error);
  const range = parsed.value;
  const pool: Pool = {
    name: "bench",
    ranges: [range],
    autoAssign: true,
    avoidBuggyIPs: false,
    serviceAllocation: undefined,
    origin: "bench",
  };
  const capacity = range.last - range.first + 1n;
  const inside = BigInt(usedCount) < capacity / 2n ? BigInt(usedCount) : capacity / 2n;
  const outsideBase = range.family === "IPv4" ? 0x0b00_0000n : 0xfd99n << 112n;
  const entries = Array.from({ length: usedCount }, (_, i) => {
    const value = BigInt(i) < inside ? range.first + BigInt(i) : outsideBase + BigInt(i);
    const ref = `bench/svc-${i}`;
    return [
      ref,
      { ref, sharingKey: "", ports: ["TCP/80"], backendKey: "Cluster" },
      [{ family: range.family, value }],
    ] as const;
  });
  const view = {
    pools: new PoolSet([pool]),
    usage: UsageIndex.from(entries),
    namespaceLabels: () => ({}),
  };
  return { view, freeAddress: formatValue(range.family, range.last - 1n) };
}

function service(
  annotations: Record<string, string>,
  loadBalancerIP?: string,
  family?: Family,
): ServiceObject {
  return {
    metadata: { namespace: "bench", name: "candidate", annotations },
    spec: {
      type: loadBalancerIP === undefined ? "ClusterIP" : "LoadBalancer",
      ports: [{ port: 443 }],
      ...(loadBalancerIP && { loadBalancerIP }),
      ...(family && { ipFamilies: [family] }),
    },
  };
}

function opsPerSecond(operation: () => unknown): number {
  const until = (ms: number) => {
    const end = performance.now() + ms;
    let count = 0;
    while (performance.now() < end) {
      for (let i = 0; i < 64; i++) operation();
      count += 64;
    }
    return count;
  };
  // A full collection first (the previous index is garbage by now), not in the middle.
  (globalThis as { gc?: () => void }).gc?.();
  until(MEASURE_MS / 3);
  const started = performance.now();
  const count = until(MEASURE_MS);
  return (count / (performance.now() - started)) * 1000;
}

type Operation = "validate" | "auto-assign";
const results = new Map<string, number>();
const key = (operation: Operation, kind: PoolKind, used: number) => `${operation}|${kind}|${used}`;

// Every configuration is measured once per round, rounds interleaved, and the best round kept:
// a burst of load from a neighbour then spoils one round of every configuration, not one
// configuration of the comparison.
const ROUNDS = Number(process.env.LB_IP_GUARD_BENCH_ROUNDS ?? 5);
// A configuration's index is built afresh for each of its figures and dropped after it, so the
// heap holds one index at a time: with all nine alive (over 300,000 addresses) collections
// landed in whichever case ran next and swamped the ratios.
const configurations = (Object.keys(POOLS) as PoolKind[]).flatMap((kind) =>
  USED_COUNTS.map((used) => ({ kind, used })),
);
function measure(kind: PoolKind, used: number): void {
  const { view, freeAddress } = buildView(kind, used);
  const family = kind.startsWith("IPv6") ? "IPv6" : "IPv4";
  const candidates = [
    ["validate", service({}, freeAddress)],
    ["auto-assign", service({ "lb-ip-guard.dev/auto-assign": "true" }, undefined, family)],
  ] as const;
  for (const [operation, candidate] of candidates) {
    const decision = decide(candidate, view, policy);
    if (decision.kind === "denied") throw new Error(`bench setup: ${decision.message}`);
    const id = key(operation, kind, used);
    results.set(
      id,
      Math.max(
        results.get(id) ?? 0,
        opsPerSecond(() => decide(candidate, view, policy)),
      ),
    );
  }
}
for (let round = 0; round < ROUNDS; round++) {
  for (const { kind, used } of configurations) measure(kind, used);
}

const format = (n: number) => Math.round(n).toLocaleString("en-US").padStart(11);
console.log(
  `ops/s (higher is better), best of ${ROUNDS} rounds of ${MEASURE_MS} ms, Node ${process.version}\n`,
);
console.log(
  `${"operation".padEnd(12)}${"pool".padEnd(10)}${USED_COUNTS.map((n) => `${n} used`.padStart(14)).join("")}`,
);
for (const operation of ["validate", "auto-assign"] as const) {
  for (const kind of Object.keys(POOLS) as PoolKind[]) {
    const row = USED_COUNTS.map((used) =>
      format(results.get(key(operation, kind, used)) ?? 0).padStart(14),
    ).join("");
    console.log(`${operation.padEnd(12)}${kind.padEnd(10)}${row}`);
  }
}

// What a user feels is the time a decision adds to a webhook call, which costs 1-2 ms at p50 on
// its own (npm run bench:apply): a decision is held to 50 µs, under 5 % of that, in every
// configuration (it takes 1-5 µs; the margin is for a loaded machine and short runs). How
// IPv6 compares with IPv4 is printed, not judged: 128-bit BigInt arithmetic costs more than
// 32-bit, and the ratio, about 1.2-1.8x, moved that much between runs on a shared machine (ADR
// 0008, amended). A real regression is cost that grows with the number of used addresses.
const LIMITS = { microsecondsPerDecision: 50, growth100kVs10: 3 };
/**
 * Noise only ever makes a figure look worse (the best round is kept), a regression does so every
 * time: a figure past its limit is measured again, its configurations for two more sets of
 * rounds, before it counts as a failure.
 */
const CONFIRMATIONS = 2;
let failures = 0;
const check = (
  label: string,
  value: () => number,
  limit: number,
  unit: string,
  involved: readonly { kind: PoolKind; used: number }[],
) => {
  let figure = value();
  for (let again = 0; again < CONFIRMATIONS && figure > limit; again++) {
    for (let round = 0; round < ROUNDS; round++) {
      for (const { kind, used } of involved) measure(kind, used);
    }
    figure = value();
  }
  const ok = figure <= limit;
  if (!ok) failures += 1;
  console.log(
    `${ok ? "ok  " : "FAIL"} ${label.padEnd(62)} ${figure.toFixed(2)}${unit} (target <= ${limit}${unit})`,
  );
};
console.log("\ncost ratios (time per operation, so 1.00x means equal cost):");
for (const operation of ["validate", "auto-assign"] as const) {
  for (const used of USED_COUNTS) {
    const ratio =
      (results.get(key(operation, "IPv4 /24", used)) ?? 0) /
      (results.get(key(operation, "IPv6 /64", used)) ?? 1);
    console.log(
      `info ${`${operation}: IPv6 /64 vs IPv4 /24, ${used} used`.padEnd(62)} ${ratio.toFixed(2)}x`,
    );
  }
  for (const kind of Object.keys(POOLS) as PoolKind[]) {
    check(
      `${operation}: ${kind}, 100,000 used vs 10 used`,
      () =>
        (results.get(key(operation, kind, 10)) ?? 0) /
        (results.get(key(operation, kind, 100_000)) ?? 1),
      LIMITS.growth100kVs10,
      "x",
      [
        { kind, used: 10 },
        { kind, used: 100_000 },
      ],
    );
  }
  const slowest = () =>
    configurations.reduce((worst, configuration) =>
      (results.get(key(operation, configuration.kind, configuration.used)) ?? 0) <
      (results.get(key(operation, worst.kind, worst.used)) ?? 0)
        ? configuration
        : worst,
    );
  check(
    `${operation}: the slowest configuration, time per decision`,
    () => 1e6 / (results.get(key(operation, slowest().kind, slowest().used)) ?? 1),
    LIMITS.microsecondsPerDecision,
    " µs",
    [slowest()],
  );
}
process.exitCode = failures === 0 ? 0 : 1;
