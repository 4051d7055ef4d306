import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { Address4, Address6 } from "ip-address";
import { formatValue, parseAddress, parseFast } from "../../src/ipam/address.ts";

/** IPv6 text in the many spellings people write: compressed, full, upper case, leading zeros. */
const ipv6Text = fc
  .tuple(
    fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 }),
    fc.boolean(),
    fc.boolean(),
    fc.nat(8),
    fc.nat(8),
  )
  .map(([groups, upper, padded, a, b]) => {
    let parts = groups.map((g) => (padded ? g.toString(16).padStart(4, "0") : g.toString(16)));
    if (upper) parts = parts.map((p) => p.toUpperCase());
    const [from, to] = a <= b ? [a, b] : [b, a];
    if (to - from >= 1 && parts.slice(from, to).every((p) => Number.parseInt(p, 16) === 0)) {
      return `${parts.slice(0, from).join(":")}::${parts.slice(to).join(":")}`;
    }
    return parts.join(":");
  });

test("the fast IPv6 path reads what ip-address reads", () => {
  fc.assert(
    fc.property(ipv6Text, (text) => {
      assert.equal(parseFast(text)?.value, new Address6(text).bigInt());
    }),
    { numRuns: 1000 },
  );
});

test("the fast IPv4 path reads what ip-address reads, and refuses leading zeros like it", () => {
  fc.assert(
    fc.property(fc.ipV4(), (text) => {
      assert.equal(parseFast(text)?.value, new Address4(text).bigInt());
    }),
    { numRuns: 500 },
  );
  assert.equal(parseFast("010.1.1.1"), undefined);
  assert.equal(parseAddress("010.1.1.1").ok, false);
});

test("formatValue writes RFC 5952 text, as ip-address's correctForm does", () => {
  const value = fc.oneof(
    fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }),
    // Values with zero runs, where the compression rules matter.
    fc
      .array(fc.constantFrom(0, 0, 0, 1, 0xabcd), { minLength: 8, maxLength: 8 })
      .map((groups) => groups.reduce((acc, group) => (acc << 16n) | BigInt(group), 0n)),
  );
  fc.assert(
    fc.property(value, (v) => {
      assert.equal(formatValue("IPv6", v), Address6.fromBigInt(v).correctForm());
    }),
    { numRuns: 1000 },
  );
});

test("strings the fast path does not take still parse through ip-address, or fail with a reason", () => {
  assert.equal(parseFast("::ffff:192.0.2.1"), undefined);
  // IPv4-mapped, in either spelling: the IPv4 address, as Go's net.ParseIP (and MetalLB) reads it.
  for (const mapped of ["::ffff:192.0.2.1", "::ffff:c000:201", "0:0:0:0:0:ffff:c000:0201"]) {
    assert.deepEqual(parseAddress(mapped), {
      ok: true,
      value: { family: "IPv4", value: 0xc000_0201n },
    });
  }
  assert.deepEqual(parseAddress("::fffe:c000:201"), {
    ok: true,
    value: { family: "IPv6", value: 0xfffe_c000_0201n },
  });
  for (const bad of ["1::2::3", "1:2:3:4:5:6:7:8:9", "12345::", "g::1", ":::", "1.2.3.4.5", ""]) {
    assert.equal(parseFast(bad), undefined, bad);
    assert.equal(parseAddress(bad).ok, false, bad);
  }
});
