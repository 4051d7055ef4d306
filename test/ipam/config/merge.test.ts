// Merging pools with MetalLB's rules: unique names, no overlapping ranges, first declaration wins.

import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { parse as parseYaml } from "yaml";
import { formatPoolConfigError } from "../../../src/ipam/config/errors.ts";
import { mergePools } from "../../../src/ipam/config/merge.ts";
import type { Pool } from "../../../src/ipam/pool.ts";
import { type AddressRange, rangesOverlap } from "../../../src/ipam/range.ts";
import {
  assertNames,
  found,
  ip,
  ipAddressPool,
  KUBEFLOW_MANIFEST,
  legacy,
  onlyError,
} from "./fixtures.ts";

test("duplicate pool names across the ConfigMap and an IPAddressPool: the first wins", () => {
  const fromConfigMap = found(parseYaml(KUBEFLOW_MANIFEST), "metallb-config.yaml#0");
  const fromCrd = found(ipAddressPool("default", { addresses: ["10.50.0.0/24"] }), "pools.yaml#1");
  const { poolSet, errors } = mergePools([...fromConfigMap.pools, ...fromCrd.pools]);
  const [error] = errors;
  assert.equal(errors.length, 1);
  assert.ok(error !== undefined);
  const line = assertNames(error, "default", "default");
  assert.equal(error.origin, "pools.yaml#1 (IPAddressPool metallb-system/default)");
  assert.match(line, /duplicate definition of pool "default"/);
  assert.ok(line.includes("metallb-config.yaml#0 (ConfigMap metallb-system/config)"), line);
  assert.equal(poolSet.size, 1);
  assert.equal(
    poolSet.byName("default")?.origin,
    "metallb-config.yaml#0 (ConfigMap metallb-system/config)",
  );
  assert.equal(poolSet.poolOf("IPv4", ip("10.50.0.1")), undefined);
});

test("a pool overlapping an earlier pool is dropped, naming both pools and both strings", () => {
  const first = found(ipAddressPool("first", { addresses: ["10.0.0.0/24"] }), "a.yaml#0").pools;
  const second = found(
    ipAddressPool("second", { addresses: ["10.1.0.0/24", "10.0.0.200 - 10.0.1.5"] }),
    "b.yaml#0",
  ).pools;
  const { poolSet, errors } = mergePools([...first, ...second]);
  const [error] = errors;
  assert.equal(errors.length, 1);
  assert.ok(error !== undefined);
  const line = assertNames(error, "second", "10.0.0.200 - 10.0.1.5");
  assert.ok(line.includes('"10.0.0.0/24" of pool "first"'), line);
  assert.ok(line.includes("a.yaml#0"), line);
  assert.deepEqual(
    poolSet.pools.map((p) => p.name),
    ["first"],
  );
  // the whole conflicting pool is dropped, also its non-overlapping range
  assert.equal(poolSet.poolOf("IPv4", ip("10.1.0.1")), undefined);
  assert.equal(poolSet.poolOf("IPv4", ip("10.0.0.200"))?.name, "first");
});

test("overlapping ranges within one pool drop that pool", () => {
  const result = legacy(`
address-pools:
- name: self
  protocol: layer2
  addresses: [10.0.0.0/24, 10.0.0.10-10.0.0.20]
- name: fine
  protocol: layer2
  addresses: [10.0.1.0/24]
`);
  assert.deepEqual(result.errors, []);
  const { poolSet, errors } = mergePools(result.pools);
  const line = assertNames(onlyError({ pools: [], errors }), "self", "10.0.0.10-10.0.0.20");
  assert.match(line, /overlaps "10\.0\.0\.0\/24" of the same pool/);
  assert.deepEqual(
    poolSet.pools.map((p) => p.name),
    ["fine"],
  );
});

test("adjacent ranges and ranges of different families do not conflict", () => {
  const pools: Pool[] = [
    ...found(ipAddressPool("low", { addresses: ["10.0.0.0/25", "2001:db8::/64"] })).pools,
    ...found(ipAddressPool("high", { addresses: ["10.0.0.128/25", "2001:db8:0:1::/64"] })).pools,
    ...found(ipAddressPool("v6", { addresses: ["::a00:0/120"] })).pools,
  ];
  const { poolSet, errors } = mergePools(pools);
  assert.deepEqual(errors, []);
  assert.equal(poolSet.poolOf("IPv4", ip("10.0.0.127"))?.name, "low");
  assert.equal(poolSet.poolOf("IPv4", ip("10.0.0.128"))?.name, "high");
  assert.equal(poolSet.poolOf("IPv6", ip("2001:db8:0:1::5"))?.name, "high");
  assert.equal(poolSet.poolOf("IPv6", ip("::a00:1"))?.name, "v6");
});

test("ranges built outside the parsers are quoted in CIDR or a-b form", () => {
  const make = (name: string, ranges: AddressRange[]): Pool => ({
    name,
    ranges,
    autoAssign: true,
    avoidBuggyIPs: false,
    serviceAllocation: undefined,
    origin: "code",
  });
  const { errors } = mergePools([
    make("a", [{ family: "IPv6", first: ip("2001:db8::"), last: ip("2001:db8::ff") }]),
    make("b", [{ family: "IPv6", first: ip("2001:db8::10"), last: ip("2001:db8::1f0") }]),
  ]);
  const line = formatPoolConfigError(onlyError({ pools: [], errors }));
  assert.ok(
    line.includes('"2001:db8::10-2001:db8::1f0" overlaps "2001:db8::/120" of pool "a"'),
    line,
  );
});

test("property: merged pools have unique names and disjoint ranges; every dropped pool is reported", () => {
  const poolArb = fc.record({
    name: fc.constantFrom("a", "b", "c", "d"),
    ranges: fc.array(fc.tuple(fc.integer({ min: 0, max: 60 }), fc.integer({ min: 0, max: 8 })), {
      minLength: 1,
      maxLength: 3,
    }),
  });
  fc.assert(
    fc.property(fc.array(poolArb, { maxLength: 6 }), (specs) => {
      const pools: Pool[] = specs.map(({ name, ranges }, index) => ({
        name,
        ranges: ranges.map(([start, length]) => ({
          family: "IPv4" as const,
          first: 0x0a000000n + BigInt(start),
          last: 0x0a000000n + BigInt(start + length),
        })),
        autoAssign: true,
        avoidBuggyIPs: false,
        serviceAllocation: undefined,
        origin: `doc#${index}`,
      }));
      const { poolSet, errors } = mergePools(pools);
      const kept = poolSet.pools;
      assert.equal(new Set(kept.map((p) => p.name)).size, kept.length);
      const all = kept.flatMap((p) => p.ranges.map((r) => ({ r, p })));
      for (const [i, x] of all.entries()) {
        for (const y of all.slice(i + 1)) assert.equal(rangesOverlap(x.r, y.r), false);
      }
      for (const pool of pools) {
        const isKept = kept.includes(pool);
        const reported = errors.some((e) => e.origin === pool.origin && e.pool === pool.name);
        assert.notEqual(isKept, reported, `${pool.name} from ${pool.origin}`);
      }
      // a pool that conflicts with nothing before it is kept (first declaration wins)
      const firstPool = pools[0];
      if (firstPool !== undefined) {
        const selfOverlap = firstPool.ranges.some((r, i) =>
          firstPool.ranges.slice(i + 1).some((s) => rangesOverlap(r, s)),
        );
        assert.equal(kept.includes(firstPool), !selfOverlap);
      }
    }),
    { numRuns: 200 },
  );
});
