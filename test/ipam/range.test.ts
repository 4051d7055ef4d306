import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { FAMILY_BITS, type Family, formatValue } from "../../src/ipam/address.ts";
import {
  type AddressRange,
  formatRange,
  parseAddressBlock,
  rangeContains,
  rangeSize,
  rangesOverlap,
} from "../../src/ipam/range.ts";

function block(text: string): AddressRange {
  const result = parseAddressBlock(text);
  if (!result.ok) assert.fail(`expected ${JSON.stringify(text)} to parse: ${result.error}`);
  return result.value;
}

function refused(text: string): string {
  const result = parseAddressBlock(text);
  if (result.ok) assert.fail(`expected ${JSON.stringify(text)} to be refused`);
  return result.error;
}

const maxValue = (family: Family) => (1n << BigInt(FAMILY_BITS[family])) - 1n;
const family = fc.constantFrom<Family>("IPv4", "IPv6");
const address = (of: Family) => fc.bigInt({ min: 0n, max: maxValue(of) });
const dash = fc.constantFrom("-", " - ", "- ", " -", "  -  ");
const other = (of: Family): Family => (of === "IPv4" ? "IPv6" : "IPv4");

/** Every value from `from` to `to` (clamped to the family), in order. */
function window(of: Family, from: bigint, to: bigint): bigint[] {
  const values: bigint[] = [];
  const low = from < 0n ? 0n : from;
  const high = to > maxValue(of) ? maxValue(of) : to;
  for (let value = low; value <= high; value++) values.push(value);
  return values;
}

test("CIDRs of both families parse to their first and last address", () => {
  assert.deepEqual(block("192.168.35.0/24"), {
    family: "IPv4",
    first: 0xc0a82300n,
    last: 0xc0a823ffn,
  });
  assert.deepEqual(block("10.0.0.7/32"), { family: "IPv4", first: 0x0a000007n, last: 0x0a000007n });
  assert.deepEqual(block("0.0.0.0/0"), { family: "IPv4", first: 0n, last: 0xffffffffn });
  const v6 = block("2001:db8::/64");
  assert.equal(v6.family, "IPv6");
  assert.equal(formatValue("IPv6", v6.first), "2001:db8::");
  assert.equal(formatValue("IPv6", v6.last), "2001:db8::ffff:ffff:ffff:ffff");
  assert.equal(rangeSize(v6), 1n << 64n);
  assert.equal(rangeSize(block("::/0")), 1n << 128n);
  assert.equal(rangeSize(block("2001:db8::1/128")), 1n);
});

test("ranges parse with or without spaces around the dash", () => {
  const expected = { family: "IPv4", first: 0xc0a82364n, last: 0xc0a8236en };
  assert.deepEqual(block("192.168.35.100-192.168.35.110"), expected);
  assert.deepEqual(block("192.168.35.100 - 192.168.35.110"), expected);
  assert.deepEqual(block("  192.168.35.100 -192.168.35.110 "), expected);
  assert.equal(rangeSize(block("2001:db8::10-2001:db8::20")), 17n);
  assert.equal(rangeSize(block("10.0.0.1-10.0.0.1")), 1n);
});

test("a bare address is refused, with the CIDR it probably means", () => {
  assert.match(
    refused("192.168.35.100"),
    /"192\.168\.35\.100" is a bare address.*192\.168\.35\.100\/32/,
  );
  assert.match(refused("2001:db8::1"), /"2001:db8::1" is a bare address.*2001:db8::1\/128/);
});

test("a string that is no address at all is not called a bare address", () => {
  const error = refused("garbage");
  assert.match(error, /"garbage" is neither a CIDR nor a range/);
  assert.doesNotMatch(error, /garbage\/32/);
  assert.match(refused(""), /neither a CIDR nor a range/);
});

test("a range mixing IPv4 and IPv6 is refused", () => {
  assert.match(refused("10.0.0.1-2001:db8::1"), /"10\.0\.0\.1-2001:db8::1" mixes IPv4 and IPv6/);
  assert.match(refused("::1 - 10.0.0.1"), /mixes IPv4 and IPv6/);
});

test("a reversed range is refused", () => {
  assert.match(refused("10.0.0.20-10.0.0.10"), /"10\.0\.0\.20-10\.0\.0\.10" starts after it ends/);
  assert.match(refused("2001:db8::2-2001:db8::1"), /starts after it ends/);
});

test("a CIDR with host bits set is refused, suggesting the network", () => {
  assert.match(
    refused("192.168.35.1/24"),
    /"192\.168\.35\.1\/24" has host bits set; did you mean 192\.168\.35\.0\/24\?/,
  );
  assert.match(refused("2001:db8::1/64"), /has host bits set; did you mean 2001:db8::\/64\?/);
});

test("a bad prefix length is refused", () => {
  for (const text of [
    "10.0.0.0/33",
    "10.0.0.0/",
    "10.0.0.0/x",
    "10.0.0.0/1234",
    "2001:db8::/129",
  ]) {
    assert.match(refused(text), /invalid prefix length/, text);
  }
  assert.match(refused("10.0.0.0/8/8"), /CIDR "10\.0\.0\.0\/8\/8"/);
});

test("a range with a bad end or too many dashes is refused, naming the string", () => {
  assert.match(refused("10.0.0.1-"), /range "10\.0\.0\.1-"/);
  assert.match(refused("10.0.0.1-10.0.0.300"), /range "10\.0\.0\.1-10\.0\.0\.300"/);
  assert.match(refused("10.0.0.1-10.0.0.2-10.0.0.3"), /is not a range/);
  assert.match(refused("10.0.0.0/24-10.0.1.0/24"), /prefix length/);
});

test("formatRange prints a-b, or the single address", () => {
  assert.equal(formatRange(block("10.0.0.0/30")), "10.0.0.0-10.0.0.3");
  assert.equal(formatRange(block("2001:db8::/126")), "2001:db8::-2001:db8::3");
  assert.equal(formatRange(block("10.0.0.9/32")), "10.0.0.9");
});

const smallCidr = family.chain((of) =>
  fc.record({
    family: fc.constant(of),
    base: address(of),
    hostBits: fc.integer({ min: 0, max: 6 }),
  }),
);

test("property: a small CIDR holds exactly the addresses sharing its network bits", () => {
  fc.assert(
    fc.property(smallCidr, ({ family: of, base, hostBits }) => {
      const shift = BigInt(hostBits);
      const network = (base >> shift) << shift;
      const prefix = FAMILY_BITS[of] - hostBits;
      const range = block(`${formatValue(of, network)}/${prefix}`);
      // Model: membership by comparing the network bits, over a window around the block.
      const members = window(of, network - 9n, network + (1n << shift) + 9n).filter(
        (value) => value >> shift === network >> shift,
      );
      assert.equal(rangeSize(range), BigInt(members.length));
      for (const value of window(of, network - 9n, network + (1n << shift) + 9n)) {
        assert.equal(rangeContains(range, of, value), value >> shift === network >> shift);
        assert.equal(rangeContains(range, other(of), value), false);
      }
      // format -> parse round-trip
      assert.deepEqual(block(`${formatValue(of, range.first)}/${prefix}`), range);
    }),
    { numRuns: 150 },
  );
});

test("property: a CIDR whose address has host bits set is refused and the network suggested", () => {
  fc.assert(
    fc.property(
      smallCidr,
      fc.bigInt({ min: 1n, max: 63n }),
      ({ family: of, base, hostBits }, offset) => {
        fc.pre(hostBits > 0);
        const shift = BigInt(hostBits);
        const network = (base >> shift) << shift;
        const inside = network + (offset % ((1n << shift) - 1n)) + 1n;
        const prefix = FAMILY_BITS[of] - hostBits;
        const error = refused(`${formatValue(of, inside)}/${prefix}`);
        assert.ok(error.includes("host bits set"), error);
        assert.ok(error.includes(`did you mean ${formatValue(of, network)}/${prefix}?`), error);
      },
    ),
    { numRuns: 100 },
  );
});

const smallRange = family.chain((of) =>
  fc
    .record({ start: address(of), length: fc.integer({ min: 0, max: 40 }), dash })
    .map(({ start, length, dash: separator }) => {
      const end = start + BigInt(length) > maxValue(of) ? maxValue(of) : start + BigInt(length);
      return { family: of, start, end, separator };
    }),
);

test("property: a small range a-b holds exactly a..b, counted and tested one by one", () => {
  fc.assert(
    fc.property(smallRange, ({ family: of, start, end, separator }) => {
      const text = `${formatValue(of, start)}${separator}${formatValue(of, end)}`;
      const range = block(text);
      const members = new Set<bigint>();
      for (let value = start; value <= end; value++) members.add(value);
      assert.equal(rangeSize(range), BigInt(members.size));
      for (const value of window(of, start - 5n, end + 5n)) {
        assert.equal(rangeContains(range, of, value), members.has(value));
      }
      if (start < end) {
        // format -> parse round-trip; a reversed text is refused
        assert.deepEqual(block(formatRange(range)), range);
        assert.match(
          refused(`${formatValue(of, end)}-${formatValue(of, start)}`),
          /starts after it ends/,
        );
      }
    }),
    { numRuns: 150 },
  );
});

test("property: rangesOverlap agrees with intersecting the address sets", () => {
  const pair = family.chain((of) =>
    fc.record({
      family: fc.constant(of),
      base: fc.bigInt({ min: 0n, max: maxValue(of) - 64n }),
      a: fc.tuple(fc.integer({ min: 0, max: 30 }), fc.integer({ min: 0, max: 30 })),
      b: fc.tuple(fc.integer({ min: 0, max: 30 }), fc.integer({ min: 0, max: 30 })),
    }),
  );
  const toRange = (of: Family, base: bigint, [x, y]: [number, number]): AddressRange => ({
    family: of,
    first: base + BigInt(Math.min(x, y)),
    last: base + BigInt(Math.max(x, y)),
  });
  fc.assert(
    fc.property(pair, ({ family: of, base, a, b }) => {
      const first = toRange(of, base, a);
      const second = toRange(of, base, b);
      const setA = new Set(window(of, first.first, first.last));
      const intersects = window(of, second.first, second.last).some((value) => setA.has(value));
      assert.equal(rangesOverlap(first, second), intersects);
      assert.equal(rangesOverlap(second, first), intersects);
      assert.equal(rangesOverlap(first, { ...second, family: other(of) }), false);
    }),
    { numRuns: 200 },
  );
});
