import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { type Family, isBuggyIPv4 } from "../../src/ipam/address.ts";
import { firstFreeInPool, freeRuns, usedInPool } from "../../src/ipam/allocator.ts";
import type { Pool } from "../../src/ipam/pool.ts";
import type { AddressRange } from "../../src/ipam/range.ts";
import { SortedBigIntSet } from "../../src/ipam/sorted-set.ts";
import { UsageIndex } from "../../src/ipam/usage.ts";

const holder = (ref: string) => ({ ref, sharingKey: "", ports: [], backendKey: "Cluster" });

/** Small pools near interesting boundaries: .255/.0 for IPv4, and high in the IPv6 space. */
const BASES: Record<Family, bigint> = {
  IPv4: 0xc0a8_23f0n,
  IPv6: (1n << 127n) + (1n << 64n) - 20n,
};

const arbitraryPool = fc
  .record({
    family: fc.constantFrom<Family>("IPv4", "IPv6"),
    spans: fc.array(fc.tuple(fc.nat(24), fc.nat(6)), { minLength: 1, maxLength: 3 }),
    avoidBuggyIPs: fc.boolean(),
    used: fc.array(fc.nat(40), { maxLength: 30 }),
  })
  .map(({ family, spans, avoidBuggyIPs, used }) => {
    // Ranges may be declared out of order and may touch, as in real configurations, but a
    // validated pool never has overlapping ranges, so drop the ones that would overlap.
    const ranges: AddressRange[] = [];
    for (const [offset, length] of spans) {
      const range = {
        family,
        first: BASES[family] + BigInt(offset),
        last: BASES[family] + BigInt(offset + length),
      };
      if (ranges.every((other) => range.last < other.first || other.last < range.first))
        ranges.push(range);
    }
    const pool: Pool = {
      name: "p",
      ranges,
      autoAssign: true,
      avoidBuggyIPs,
      serviceAllocation: undefined,
      origin: "test",
    };
    return { pool, family, used: used.map((offset) => BASES[family] + BigInt(offset)) };
  });

function modelAddresses(pool: Pool, family: Family): bigint[] {
  const all: bigint[] = [];
  for (const range of pool.ranges) {
    for (let value = range.first; value <= range.last; value += 1n) {
      if (!(pool.avoidBuggyIPs && family === "IPv4" && isBuggyIPv4(value))) all.push(value);
    }
  }
  return all;
}

function indexOf(family: Family, used: readonly bigint[]): UsageIndex {
  return UsageIndex.from(
    used.map((value, i) => [`s${i}`, holder(`ns/s${i}`), [{ family, value }]] as const),
  );
}

test("firstFreeInPool picks what a brute-force walk in declaration order picks", () => {
  fc.assert(
    fc.property(arbitraryPool, ({ pool, family, used }) => {
      const usage = indexOf(family, used);
      const expected = modelAddresses(pool, family).find((value) => !used.includes(value));
      assert.equal(firstFreeInPool(pool, family, usage)?.value, expected);
    }),
    { numRuns: 400 },
  );
});

test("with addresses to skip (resting ones): the lowest free one not skipped, as a brute-force walk picks", () => {
  fc.assert(
    fc.property(
      arbitraryPool,
      fc.array(fc.nat(40), { maxLength: 20 }),
      ({ pool, family, used }, skippedOffsets) => {
        const usage = indexOf(family, used);
        const skipped = new Set(skippedOffsets.map((offset) => BASES[family] + BigInt(offset)));
        const expected = modelAddresses(pool, family).find(
          (value) => !used.includes(value) && !skipped.has(value),
        );
        const picked = firstFreeInPool(pool, family, usage, undefined, {
          skipped: (f, value) => {
            assert.equal(f, family);
            return skipped.has(value);
          },
        });
        assert.equal(picked?.value, expected);
      },
    ),
    { numRuns: 400 },
  );
});

test("with sets to avoid (retained and reserved ones) and addresses to skip: what a brute-force walk picks", () => {
  fc.assert(
    fc.property(
      arbitraryPool,
      fc.array(fc.array(fc.nat(40), { maxLength: 20 }), { maxLength: 3 }),
      fc.array(fc.nat(40), { maxLength: 5 }),
      ({ pool, family, used }, setOffsets, skippedOffsets) => {
        const usage = indexOf(family, used);
        const at = (offsets: number[]) => offsets.map((offset) => BASES[family] + BigInt(offset));
        const sets = setOffsets.map((offsets) => SortedBigIntSet.from(at(offsets)));
        const skipped = new Set(at(skippedOffsets));
        const expected = modelAddresses(pool, family).find(
          (value) =>
            !used.includes(value) && !skipped.has(value) && !sets.some((set) => set.has(value)),
        );
        const picked = firstFreeInPool(pool, family, usage, undefined, {
          sets: () => sets,
          skipped: (_, value) => skipped.has(value),
        });
        assert.equal(picked?.value, expected);
      },
    ),
    { numRuns: 400 },
  );
});

test("freeRuns lists exactly the free addresses, in declaration order", () => {
  fc.assert(
    fc.property(arbitraryPool, ({ pool, family, used }) => {
      const usage = indexOf(family, used);
      const expected = modelAddresses(pool, family).filter((value) => !used.includes(value));
      const listed = freeRuns(pool, usage, 1000).flatMap((run) => {
        const values: bigint[] = [];
        for (let value = run.first; value <= run.last; value += 1n) values.push(value);
        return values;
      });
      assert.deepEqual(listed, expected);
    }),
    { numRuns: 300 },
  );
});

test("usedInPool counts used addresses inside the pool only", () => {
  fc.assert(
    fc.property(arbitraryPool, ({ pool, family, used }) => {
      const usage = indexOf(family, used);
      const inside = new Set(
        used.filter((value) => pool.ranges.some((r) => r.first <= value && value <= r.last)),
      );
      assert.equal(usedInPool(pool, family, usage), inside.size);
    }),
    { numRuns: 300 },
  );
});

test("allocation skips .255 and .0 under avoidBuggyIPs and returns undefined when full", () => {
  const range = { family: "IPv4" as const, first: 0xc0a8_00fen, last: 0xc0a8_0101n }; // .0.254 - .1.1
  const pool: Pool = {
    name: "p",
    ranges: [range],
    autoAssign: true,
    avoidBuggyIPs: true,
    serviceAllocation: undefined,
    origin: "t",
  };
  const usage = indexOf("IPv4", [0xc0a8_00fen]);
  assert.equal(firstFreeInPool(pool, "IPv4", usage)?.value, 0xc0a8_0101n);
  usage.set("x", holder("ns/x"), [{ family: "IPv4", value: 0xc0a8_0101n }]);
  assert.equal(firstFreeInPool(pool, "IPv4", usage), undefined);
  assert.equal(firstFreeInPool(pool, "IPv6", usage), undefined);
});

test("with a sharing key, the lowest address that is free or shareable, range by range, as MetalLB picks", () => {
  const pool: Pool = {
    name: "lan",
    ranges: [
      { family: "IPv4", first: 0x0a00_0010n, last: 0x0a00_0013n },
      { family: "IPv4", first: 0x0a00_0000n, last: 0x0a00_0003n },
    ],
    autoAssign: true,
    avoidBuggyIPs: false,
    serviceAllocation: undefined,
    origin: "test",
  };
  const sharer = (ref: string, ports: string[], key = "dns") => ({
    ref,
    sharingKey: key,
    ports,
    backendKey: "Cluster",
  });
  const address = (value: bigint) => ({ family: "IPv4" as const, value });
  const usage = new UsageIndex();
  usage.set("a/tcp", sharer("a/tcp", ["TCP/53"]), [address(0x0a00_0011n)]);
  usage.set("a/other", sharer("a/other", ["UDP/53"], "other"), [address(0x0a00_0010n)]);
  // UDP/53 with the key "dns" shares .0x11, below the free .0x12 of the first declared range.
  const udp = sharer("a/udp", ["UDP/53"]);
  assert.equal(firstFreeInPool(pool, "IPv4", usage, udp)?.value, 0x0a00_0011n);
  // The same port, or no key: the next free one.
  assert.equal(
    firstFreeInPool(pool, "IPv4", usage, sharer("a/tcp2", ["TCP/53"]))?.value,
    0x0a00_0012n,
  );
  assert.equal(firstFreeInPool(pool, "IPv4", usage, holder("a/plain"))?.value, 0x0a00_0012n);
  // A full first range: a shareable address there still comes before the second range's free ones.
  usage.set("a/x", holder("a/x"), [address(0x0a00_0012n), address(0x0a00_0013n)]);
  assert.equal(firstFreeInPool(pool, "IPv4", usage, udp)?.value, 0x0a00_0011n);
  usage.delete("a/tcp");
  assert.equal(firstFreeInPool(pool, "IPv4", usage, udp)?.value, 0x0a00_0011n, "freed");
  usage.set("a/tcp", sharer("a/tcp", ["TCP/53"], "renamed"), [address(0x0a00_0011n)]);
  assert.equal(firstFreeInPool(pool, "IPv4", usage, udp)?.value, 0x0a00_0000n, "its key changed");
});
