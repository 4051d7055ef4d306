// UsageIndex.set replaces an owner's holdings in place: checked against a plain model under
// random sequences of sets and deletes, including re-setting an owner to what it already holds
// and addresses shared by several owners.

import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import type { IPAddress } from "../../src/ipam/address.ts";
import { UsageIndex } from "../../src/ipam/usage.ts";

const holder = (ref: string) => ({ ref, sharingKey: "k", ports: [], backendKey: "Cluster" });
const v4 = (value: bigint): IPAddress => ({ family: "IPv4", value });

test("re-setting an owner to what it holds keeps one claim per address", () => {
  const usage = new UsageIndex();
  usage.set("a", holder("ns/a"), [v4(5n)]);
  usage.set("b", holder("ns/b"), [v4(5n)]);
  for (let i = 0; i < 3; i++) usage.set("a", holder("ns/a"), [v4(5n)]);
  assert.deepEqual(
    usage
      .holdersOf("IPv4", 5n)
      .map((h) => h.ref)
      .sort(),
    ["ns/a", "ns/b"],
  );
  usage.set("a", holder("ns/a"), [v4(6n)]);
  assert.deepEqual(
    usage.holdersOf("IPv4", 5n).map((h) => h.ref),
    ["ns/b"],
  );
  assert.equal(usage.used("IPv4").has(5n), true);
  usage.set("b", holder("ns/b"), []);
  assert.equal(usage.used("IPv4").has(5n), false);
  assert.equal(usage.used("IPv4").size, 1);
});

test("set and delete agree with a plain model under random sequences", () => {
  const operation = fc.tuple(
    fc.constantFrom("a", "b", "c", "hold:a"),
    fc.option(fc.uniqueArray(fc.bigInt({ min: 0n, max: 6n }), { maxLength: 3 }), {
      nil: undefined,
    }),
  );
  fc.assert(
    fc.property(fc.array(operation, { maxLength: 40 }), (operations) => {
      const usage = new UsageIndex();
      const model = new Map<string, readonly bigint[]>();
      for (const [owner, values] of operations) {
        if (values === undefined) {
          usage.delete(owner);
          model.delete(owner);
        } else {
          usage.set(owner, holder(owner), values.map(v4));
          model.set(owner, values);
        }
        for (let value = 0n; value <= 6n; value++) {
          const expected = [...model].filter(([, held]) => held.includes(value)).map(([o]) => o);
          assert.deepEqual(
            usage
              .holdersOf("IPv4", value)
              .map((h) => h.ref)
              .sort(),
            expected.sort(),
          );
          assert.equal(usage.used("IPv4").has(value), expected.length > 0);
        }
        assert.equal(usage.used("IPv4").size, new Set([...model.values()].flat()).size);
      }
    }),
  );
});
