import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import type { IPAddress } from "../../src/ipam/address.ts";
import { type Holder, UsageIndex } from "../../src/ipam/usage.ts";

const holder = (ref: string): Holder => ({
  ref,
  sharingKey: "k",
  ports: [],
  backendKey: "Cluster",
});
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

test("re-setting an owner unchanged keeps its entry; a changed holder or order replaces it", () => {
  const usage = new UsageIndex();
  usage.set("a", holder("ns/a"), [v4(1n), v4(2n)]);
  const [first] = usage.holdersOf("IPv4", 1n);
  usage.set("a", holder("ns/a"), [v4(1n), v4(2n)]);
  assert.equal(usage.holdersOf("IPv4", 1n)[0], first);

  usage.set("a", { ...holder("ns/a"), ports: ["TCP/443"] }, [v4(1n), v4(2n)]);
  assert.deepEqual(usage.holdersOf("IPv4", 2n)[0]?.ports, ["TCP/443"]);
  usage.set("a", { ...holder("ns/a"), ports: ["TCP/443"], sharingKey: "" }, [v4(1n), v4(2n)]);
  assert.equal(usage.holdersOf("IPv4", 1n)[0]?.sharingKey, "");
  usage.set("a", { ...holder("ns/a"), ports: ["TCP/443"], sharingKey: "" }, [v4(2n), v4(1n)]);
  assert.deepEqual(usage.addressesOf("a"), [v4(2n), v4(1n)]);
});

test("a bulk-built index equals one built event by event, after arbitrary replacements", () => {
  const operations = fc.array(
    fc.tuple(
      fc.constantFrom("a", "b", "c", "d"),
      fc.array(fc.bigInt({ min: 0n, max: 12n }), { maxLength: 3 }),
      fc.constantFrom("", "k"),
      fc.subarray(["TCP/80", "TCP/443", "UDP/53"]),
    ),
    { maxLength: 25 },
  );
  fc.assert(
    fc.property(operations, (steps) => {
      const incremental = new UsageIndex();
      const latest = new Map<string, readonly [Holder, bigint[]]>();
      for (const [owner, values, sharingKey, ports] of steps) {
        const current = { ...holder(owner), sharingKey, ports };
        incremental.set(owner, current, values.map(v4));
        latest.set(owner, [current, values]);
      }
      const bulk = UsageIndex.from(
        [...latest].map(([owner, [current, values]]) => [owner, current, values.map(v4)] as const),
      );
      for (let value = 0n; value <= 12n; value += 1n) {
        const holders = (index: UsageIndex) =>
          index
            .holdersOf("IPv4", value)
            .map((h) => ({ ...h }))
            .sort((a, b) => a.ref.localeCompare(b.ref));
        assert.deepEqual(holders(bulk), holders(incremental));
        assert.equal(bulk.used("IPv4").has(value), incremental.used("IPv4").has(value));
      }
      for (const owner of latest.keys()) {
        assert.deepEqual(incremental.addressesOf(owner), bulk.addressesOf(owner));
      }
    }),
    { numRuns: 300 },
  );
});
