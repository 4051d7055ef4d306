/**
 * `lb-ip-guard check` on 20,000 Services, this checkout against a baseline revision measured in
 * the same run (issue 25: locations must not make check slower). The baseline is another
 * revision's src/ (default: where this branch left main, `git merge-base HEAD main`), exported
 * with `git archive` into a temporary folder that borrows this checkout's node_modules, so both
 * sides run the same way (Node's type stripping, the same dependencies).
 *
 *   npm run bench:check                       (against the merge base with main)
 *   npm run bench:check -- REVISION           (against another revision)
 *   LB_IP_GUARD_BENCH_ROUNDS=5 npm run bench:check
 *
 * The Services (explicit addresses, auto-assigns, a duplicate every 100) are written as YAML into
 * 20 files of 1,000 documents each, with an IPAddressPool file. Each round runs the baseline and
 * this checkout one after the other (the order alternating by round), `--format json` to
 * /dev/null, and records the wall time and the child's maximum resident set size; this checkout
 * also runs with `--format sarif` beside the JSON. Medians and ratios are printed.
 */

import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportBaseline, median, root, runCli, type Sample } from "./child-runs.ts";

const SERVICES = 20_000;
const FILES = 20;
const ROUNDS = Number(process.env.LB_IP_GUARD_BENCH_ROUNDS ?? 3);

function services(file: number): string {
  const documents: string[] = [];
  const perFile = SERVICES / FILES;
  for (let index = 0; index < perFile; index += 1) {
    const n = file * perFile + index;
    const name = `svc-${n}`;
    // One in ten asks for an address from lb-ip-guard; one in a hundred repeats another's address.
    const auto = n % 10 === 5;
    const address = n % 100 === 99 ? n - 1 : n;
    const ip = `10.${100 + Math.floor(address / 65536)}.${Math.floor(address / 256) % 256}.${address % 256}`;
    documents.push(`apiVersion: v1
kind: Service
metadata:
  name: ${name}
  namespace: team-${n % 50}
  labels:
    app: ${name}
${auto ? `  annotations:\n    lb-ip-guard.dev/auto-assign: "true"\n` : ""}spec:
  type: ${auto ? "ClusterIP" : "LoadBalancer"}
  selector:
    app: ${name}
  ports:
    - name: http
      port: 80
      protocol: TCP
      targetPort: 8080
${auto ? "" : `  loadBalancerIP: ${ip}\n`}`);
  }
  return documents.join("---\n");
}

const POOLS = `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: bench
  namespace: metallb-system
spec:
  addresses:
    - 10.100.0.0/15
`;

function run(checkout: string, dir: string, extra: readonly string[]): Promise<Sample> {
  const args = [
    "check",
    join(dir, "manifests"),
    "--pools",
    join(dir, "pools.yaml"),
    "--format",
    "json",
    ...extra,
  ];
  // Exit 1: the duplicates are denied, as they should be.
  return runCli(checkout, args, { cwd: dir, codes: [1] });
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "lb-ip-guard-bench-check-"));
  try {
    const baseline = join(dir, "baseline");
    const revision = await exportBaseline(baseline, process.argv[2]);
    await mkdir(join(dir, "manifests"));
    for (let file = 0; file < FILES; file += 1) {
      await writeFile(
        join(dir, "manifests", `team-${String(file).padStart(2, "0")}.yaml`),
        services(file),
      );
    }
    await writeFile(join(dir, "pools.yaml"), POOLS);

    const sides = {
      baseline: { checkout: baseline, extra: [] as string[] },
      locations: { checkout: root, extra: [] as string[] },
      "locations+sarif": {
        checkout: root,
        extra: [
          "--output",
          join(dir, "report.json"),
          "--format",
          "sarif",
          "--output",
          join(dir, "report.sarif"),
        ],
      },
    };
    const samples = new Map<string, Sample[]>(Object.keys(sides).map((name) => [name, []]));
    // One warm-up of each (the compile cache, the page cache), not counted.
    for (const { checkout, extra } of Object.values(sides)) await run(checkout, dir, extra);
    for (let round = 0; round < ROUNDS; round += 1) {
      const order = Object.entries(sides);
      if (round % 2 === 1) order.reverse();
      for (const [name, { checkout, extra }] of order) {
        const sample = await run(checkout, dir, extra);
        samples.get(name)?.push(sample);
        console.log(
          `round ${round + 1} ${name.padEnd(16)} ${sample.seconds.toFixed(2)} s, CPU ${sample.cpuSeconds.toFixed(2)} s, ${sample.maxRssMB.toFixed(0)} MB`,
        );
      }
    }
    const base = samples.get("baseline") ?? [];
    const baseSeconds = median(base.map((sample) => sample.seconds));
    const baseCpu = median(base.map((sample) => sample.cpuSeconds));
    const baseRss = median(base.map((sample) => sample.maxRssMB));
    console.log(
      `\ncheck on ${SERVICES} Services in ${FILES} files, ${ROUNDS} rounds, baseline ${revision.slice(0, 12)}:`,
    );
    for (const [name, list] of samples) {
      const seconds = median(list.map((sample) => sample.seconds));
      const cpu = median(list.map((sample) => sample.cpuSeconds));
      const rss = median(list.map((sample) => sample.maxRssMB));
      console.log(
        `${name.padEnd(16)} median ${seconds.toFixed(2)} s (x${(seconds / baseSeconds).toFixed(3)}), CPU ${cpu.toFixed(2)} s (x${(cpu / baseCpu).toFixed(3)}), max RSS ${rss.toFixed(0)} MB (x${(rss / baseRss).toFixed(3)})`,
      );
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
