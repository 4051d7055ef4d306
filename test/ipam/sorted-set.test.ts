import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { SortedBigIntSet } from "../../src/ipam/sorted-set.ts";

const smallValues = fc.array(fc.bigInt({ min: 0n, max: 64n }), { maxLength: 40 });

/** Builds the set the slow way (one add at a time) or the bulk way, to test both paths. */
function build(values: readonly bigint[], bulk: boolean): SortedBigIntSet {
  if (bulk) return SortedBigIntSet.from(values);
  const set = new SortedBigIntSet();
  for (const value of values) set.add(value);
  return set;
}

test("firstAbsentFrom agrees with a linear scan, for bulk and incremental builds", () => {
  fc.assert(
    fc.property(
      smallValues,
      fc.bigInt({ min: 0n, max: 70n }),
      fc.boolean(),
      (values, from, bulk) => {
        const set = build(values, bulk);
        const members = new Set(values);
        let expected = from;
        while (members.has(expected)) expected += 1n;
        assert.equal(set.firstAbsentFrom(from), expected);
      },
    ),
    { numRuns: 300 },
  );
});

test("countBetween, has and firstMemberFrom agree with the model after deletes", () => {
  fc.assert(
    fc.property(
      smallValues,
      smallValues,
      fc.bigInt({ min: 0n, max: 64n }),
      fc.bigInt({ min: 0n, max: 64n }),
      (added, removed, a, b) => {
        const set = build(added, false);
        for (const value of removed) set.delete(value);
        const model = [...new Set(added)]
          .filter((value) => !removed.includes(value))
          .sort((x, y) => (x < y ? -1 : 1));
        const [low, high] = a <= b ? [a, b] : [b, a];
        assert.equal(set.size, model.length);
        assert.equal(
          set.countBetween(low, high),
          model.filter((value) => low <= value && value <= high).length,
        );
        assert.equal(set.has(low), model.includes(low));
        assert.equal(
          set.firstMemberFrom(low),
          model.find((value) => value >= low),
        );
      },
    ),
    { numRuns: 300 },
  );
});

test("a run of 100,000 consecutive members is skipped in one query", () => {
  const set = SortedBigIntSet.from(Array.from({ length: 100_000 }, (_, i) => 1000n + BigInt(i)));
  assert.equal(set.firstAbsentFrom(1000n), 101_000n);
  assert.equal(set.firstAbsentFrom(999n), 999n);
  assert.equal(set.firstAbsentFrom(50_000n), 101_000n);
});
