import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import type { IPAddress } from "../../src/ipam/address.ts";
import { UsageIndex } from "../../src/ipam/usage.ts";

const holder = (ref: string) => ({ ref, sharingKey: "k", ports: [], backendKey: "Cluster" });
const v4 = (value: bigint): IPAddress => ({ family: "IPv4", value });

test("setting an owner replaces what it held; deleting frees addresses no one else holds", () => {
  const usage = new UsageIndex();
  usage.set("a", holder("ns/a"), [v4(1n), v4(2n)]);
  usage.set("b", holder("ns/b"), [v4(2n)]);
  usage.set("a", holder("ns/a"), [v4(3n)]);
  assert.deepEqual(
    usage.holdersOf("IPv4", 2n).map((h) => h.ref),
    ["ns/b"],
  );
  assert.equal(usage.used("IPv4").has(1n), false);
  usage.delete("b");
  assert.equal(usage.used("IPv4").has(2n), false);
  assert.equal(usage.used("IPv4").has(3n), true);
  assert.equal(usage.has("a"), true);
  assert.equal(usage.has("b"), false);
});

test("two owners with the same holder identity are tracked separately (a hold and its Service)", () => {
  const usage = new UsageIndex();
  const same = holder("ns/a");
  usage.set("hold:ns/a", same, [v4(7n)]);
  usage.set("ns/a", same, [v4(7n)]);
  usage.delete("hold:ns/a");
  assert.equal(usage.holdersOf("IPv4", 7n).length, 1);
  assert.equal(usage.used("IPv4").has(7n), true);
});

test("a bulk-built index equals one built event by event, after arbitrary replacements", () => {
  const operations = fc.array(
    fc.tuple(
      fc.constantFrom("a", "b", "c", "d"),
      fc.array(fc.bigInt({ min: 0n, max: 12n }), { maxLength: 3 }),
    ),
    { maxLength: 25 },
  );
  fc.assert(
    fc.property(operations, (steps) => {
      const incremental = new UsageIndex();
      const latest = new Map<string, bigint[]>();
      for (const [owner, values] of steps) {
        incremental.set(owner, holder(owner), values.map(v4));
        latest.set(owner, values);
      }
      const bulk = UsageIndex.from(
        [...latest].map(([owner, values]) => [owner, holder(owner), values.map(v4)] as const),
      );
      for (let value = 0n; value <= 12n; value += 1n) {
        const refs = (index: UsageIndex) =>
          index
            .holdersOf("IPv4", value)
            .map((h) => h.ref)
            .sort();
        assert.deepEqual(refs(bulk), refs(incremental));
        assert.equal(bulk.used("IPv4").has(value), incremental.used("IPv4").has(value));
      }
    }),
    { numRuns: 200 },
  );
});
