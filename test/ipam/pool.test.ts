import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { FAMILY_BITS, type Family, parseAddress } from "../../src/ipam/address.ts";
import type { LabelSelector } from "../../src/ipam/labels.ts";
import {
  describePool,
  isUsableAddress,
  PoolSet,
  poolAllowsService,
  poolFamilies,
  poolSize,
  type ServiceAllocation,
  type ServiceIdentity,
} from "../../src/ipam/pool.ts";
import { type AddressRange, parseAddressBlock, rangeContains } from "../../src/ipam/range.ts";
import { allocation, pool } from "./fixtures.ts";

function range(text: string): AddressRange {
  const result = parseAddressBlock(text);
  if (!result.ok) assert.fail(result.error);
  return result.value;
}

function value(text: string): bigint {
  const result = parseAddress(text);
  if (!result.ok) assert.fail(result.error);
  return result.value.value;
}

const matching = (matchLabels: Record<string, string>): LabelSelector => ({
  matchLabels,
  matchExpressions: [],
});

function service(namespace: string, labels = {}, namespaceLabels = {}): ServiceIdentity {
  return { namespace, labels, namespaceLabels };
}

const restricted = (extra: Partial<ServiceAllocation>) =>
  pool("restricted", [range("10.0.0.0/24")], { serviceAllocation: allocation(extra) });

test("a pool without serviceAllocation, or with an empty one, takes every Service", () => {
  assert.equal(poolAllowsService(pool("open", [range("10.0.0.0/24")]), service("any")), true);
  assert.equal(poolAllowsService(restricted({ priority: 5 }), service("any", { a: "b" })), true);
});

test("namespaces restrict the pool to those namespaces", () => {
  const teams = restricted({ namespaces: ["team-a", "team-b"] });
  assert.equal(poolAllowsService(teams, service("team-a")), true);
  assert.equal(poolAllowsService(teams, service("team-b")), true);
  assert.equal(poolAllowsService(teams, service("team-c")), false);
});

test("namespaceSelectors look at the namespace's labels, not the Service's", () => {
  const prod = restricted({ namespaceSelectors: [matching({ env: "prod" })] });
  assert.equal(poolAllowsService(prod, service("shop", {}, { env: "prod" })), true);
  assert.equal(poolAllowsService(prod, service("shop", { env: "prod" }, { env: "dev" })), false);
});

test("namespaces and namespaceSelectors together admit either (MetalLB ORs them)", () => {
  const either = restricted({
    namespaces: ["kubeflow"],
    namespaceSelectors: [matching({ env: "prod" })],
  });
  assert.equal(poolAllowsService(either, service("kubeflow", {}, {})), true);
  assert.equal(poolAllowsService(either, service("shop", {}, { env: "prod" })), true);
  assert.equal(poolAllowsService(either, service("shop", {}, { env: "dev" })), false);
});

test("serviceSelectors admit a Service matching any of them", () => {
  const web = restricted({
    serviceSelectors: [matching({ app: "web" }), matching({ app: "api" })],
  });
  assert.equal(poolAllowsService(web, service("x", { app: "web" })), true);
  assert.equal(poolAllowsService(web, service("x", { app: "api" })), true);
  assert.equal(poolAllowsService(web, service("x", { app: "db" })), false);
  assert.equal(poolAllowsService(web, service("x", {}, { app: "web" })), false);
});

test("namespace rules and serviceSelectors must both hold", () => {
  const both = restricted({ namespaces: ["team-a"], serviceSelectors: [matching({ app: "web" })] });
  assert.equal(poolAllowsService(both, service("team-a", { app: "web" })), true);
  assert.equal(poolAllowsService(both, service("team-a", { app: "db" })), false);
  assert.equal(poolAllowsService(both, service("team-b", { app: "web" })), false);
});

test("avoidBuggyIPs makes IPv4 .0 and .255 unusable, and nothing else", () => {
  const careful = pool("careful", [range("10.0.0.0/23")], { avoidBuggyIPs: true });
  const careless = pool("careless", [range("10.0.2.0/23")]);
  assert.equal(isUsableAddress(careful, "IPv4", value("10.0.0.0")), false);
  assert.equal(isUsableAddress(careful, "IPv4", value("10.0.0.255")), false);
  assert.equal(isUsableAddress(careful, "IPv4", value("10.0.1.0")), false);
  assert.equal(isUsableAddress(careful, "IPv4", value("10.0.0.1")), true);
  assert.equal(isUsableAddress(careful, "IPv4", value("10.0.0.254")), true);
  // IPv6 has no such routers to appease
  assert.equal(isUsableAddress(careful, "IPv6", value("2001:db8::")), true);
  assert.equal(isUsableAddress(careful, "IPv6", value("2001:db8::ff")), true);
  assert.equal(isUsableAddress(careless, "IPv4", value("10.0.2.0")), true);
  assert.equal(isUsableAddress(careless, "IPv4", value("10.0.2.255")), true);
});

test("pool families, sizes and description", () => {
  const dual = pool("dual", [
    range("10.0.0.0/30"),
    range("2001:db8::/64"),
    range("10.0.1.1-10.0.1.2"),
  ]);
  assert.deepEqual([...poolFamilies(dual)].sort(), ["IPv4", "IPv6"]);
  assert.equal(poolSize(dual, "IPv4"), 6n);
  assert.equal(poolSize(dual, "IPv6"), 1n << 64n);
  assert.equal(
    describePool(dual),
    'pool "dual" (10.0.0.0-10.0.0.3, 2001:db8::-2001:db8::ffff:ffff:ffff:ffff, 10.0.1.1-10.0.1.2)',
  );
});

test("PoolSet lists pools by name and finds them by name", () => {
  const set = new PoolSet([
    pool("zeta", [range("10.0.1.0/24")]),
    pool("alpha", [range("10.0.0.0/24")]),
  ]);
  assert.equal(set.size, 2);
  assert.deepEqual(
    set.pools.map((p) => p.name),
    ["alpha", "zeta"],
  );
  assert.equal(set.byName("zeta")?.name, "zeta");
  assert.equal(set.byName("missing"), undefined);
  assert.equal(set.poolOf("IPv4", value("10.0.1.7"))?.name, "zeta");
  assert.equal(set.poolOf("IPv4", value("10.0.2.0")), undefined);
  assert.equal(new PoolSet([]).poolOf("IPv6", 1n), undefined);
});

test("PoolSet sorts its pools once: every read is the same list", () => {
  const set = new PoolSet([pool("b", [range("10.0.1.0/24")]), pool("a", [range("10.0.0.0/24")])]);
  assert.equal(set.pools, set.pools);
});

const maxValue = (family: Family) => (1n << BigInt(FAMILY_BITS[family])) - 1n;
const SPAN = 120;

/** Disjoint ranges inside [base, base + SPAN] of one family, each given to one of 4 pools. */
const familyLayout = (family: Family) =>
  fc
    .record({
      base: fc.bigInt({ min: 10n, max: maxValue(family) - BigInt(SPAN) - 10n }),
      cuts: fc.uniqueArray(fc.integer({ min: 0, max: SPAN }), { minLength: 2, maxLength: 14 }),
      owners: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 7, maxLength: 7 }),
    })
    .map(({ base, cuts, owners }) => {
      const sorted = [...cuts].sort((a, b) => a - b);
      const ranges: { owner: number; range: AddressRange }[] = [];
      for (let i = 0; i + 1 < sorted.length; i += 2) {
        ranges.push({
          owner: owners[i / 2] ?? 0,
          range: {
            family,
            first: base + BigInt(sorted[i] ?? 0),
            last: base + BigInt(sorted[i + 1] ?? 0),
          },
        });
      }
      return { family, base, ranges };
    });

test("property: PoolSet.poolOf agrees with a linear search over random disjoint pools", () => {
  fc.assert(
    fc.property(familyLayout("IPv4"), familyLayout("IPv6"), fc.boolean(), (v4, v6, reverse) => {
      const pools = [0, 1, 2, 3].map((owner) =>
        pool(
          `pool-${owner}`,
          [...v4.ranges, ...v6.ranges]
            .filter((entry) => entry.owner === owner)
            .map((entry) => entry.range),
        ),
      );
      if (reverse) pools.reverse();
      const set = new PoolSet(pools);
      const linear = (family: Family, address: bigint) =>
        pools.find((p) => p.ranges.some((r) => rangeContains(r, family, address)));
      for (const layout of [v4, v6]) {
        for (let offset = -5n; offset <= BigInt(SPAN) + 5n; offset++) {
          const address = layout.base + offset;
          assert.equal(set.poolOf(layout.family, address), linear(layout.family, address));
        }
      }
    }),
    { numRuns: 100 },
  );
});
