import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  compareAddresses,
  type Family,
  formatAddress,
  formatValue,
  type IPAddress,
  isBuggyIPv4,
  parseAddress,
} from "../../src/ipam/address.ts";

function parsed(text: string): IPAddress {
  const result = parseAddress(text);
  if (!result.ok) assert.fail(`expected ${JSON.stringify(text)} to parse: ${result.error}`);
  return result.value;
}

function refused(text: string): string {
  const result = parseAddress(text);
  if (result.ok) assert.fail(`expected ${JSON.stringify(text)} to be refused`);
  return result.error;
}

/** Independent model of RFC 5952 §4: lowercase, no leading zeros, first longest run (>= 2) of zero groups as `::`. */
function rfc5952(value: bigint): string {
  const groups = Array.from({ length: 8 }, (_, i) =>
    Number((value >> BigInt(112 - 16 * i)) & 0xffffn),
  );
  let bestStart = -1;
  let bestLength = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((group) => group.toString(16));
  if (bestLength < 2) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLength).join(":")}`;
}

const ipv4Value = fc.bigInt({ min: 0n, max: (1n << 32n) - 1n });
/** 128-bit values with many zero groups, so that zero-run compression is really exercised. */
const ipv6Groups = fc.array(
  fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 0xffff })),
  {
    minLength: 8,
    maxLength: 8,
  },
);
const groupsToValue = (groups: readonly number[]) =>
  groups.reduce((value, group) => (value << 16n) | BigInt(group), 0n);
/** What IPv6 text of `value` parses to: IPv4-mapped values (::ffff:0:0/96) are IPv4. */
const parsedIPv6 = (value: bigint): IPAddress =>
  value >> 32n === 0xffffn
    ? { family: "IPv4", value: value & 0xffff_ffffn }
    : { family: "IPv6", value };

test("IPv4 dotted quads parse to their 32-bit value", () => {
  assert.deepEqual(parsed("192.0.2.10"), { family: "IPv4", value: 0xc000020an });
  assert.deepEqual(parsed("0.0.0.0"), { family: "IPv4", value: 0n });
  assert.deepEqual(parsed("255.255.255.255"), { family: "IPv4", value: 0xffffffffn });
});

test("IPv4 that Go's net.ParseIP refuses is refused", () => {
  assert.match(refused("010.0.0.1"), /leading zero/);
  assert.match(refused("192.168.35.0100"), /not an IP address/);
  assert.match(refused("256.0.0.1"), /not an IP address/);
  assert.match(refused("1.2.3"), /not an IP address/);
  assert.match(refused("1.2.3.4.5"), /not an IP address/);
  assert.match(refused(" 1.2.3.4"), /not an IP address/);
  assert.match(refused(""), /not an IP address/);
  assert.match(refused("example.com"), /not an IP address/);
});

test("a prefix length or a zone is refused with its own reason", () => {
  assert.match(refused("192.0.2.0/24"), /has a prefix length/);
  assert.match(refused("2001:db8::/64"), /has a prefix length/);
  assert.match(refused("fe80::1%eth0"), /has a zone/);
});

test("IPv6 parses in every spelling and refuses malformed text", () => {
  assert.deepEqual(parsed("::"), { family: "IPv6", value: 0n });
  assert.deepEqual(parsed("::1"), { family: "IPv6", value: 1n });
  assert.equal(
    parsed("2001:DB8::A").value,
    parsed("2001:0db8:0000:0000:0000:0000:0000:000a").value,
  );
  assert.deepEqual(parsed("64:ff9b::192.0.2.1"), {
    family: "IPv6",
    value: 0x0064_ff9b_0000_0000_0000_0000_c000_0201n,
  });
  // IPv4-mapped is IPv4, as Go's net.ParseIP reads it.
  assert.deepEqual(parsed("::ffff:192.0.2.1"), { family: "IPv4", value: 0xc000_0201n });
  assert.match(refused("1:2:3:4:5:6:7:8:9"), /not an IP address/);
  assert.match(refused("1::2::3"), /not an IP address/);
  assert.match(refused("2001:db8::g"), /not an IP address/);
  assert.match(refused("12345::"), /not an IP address/);
  assert.match(refused(":::"), /not an IP address/);
});

test("IPv6 is formatted in RFC 5952 canonical form", () => {
  const cases: [string, string][] = [
    ["2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
    // the first of two equally long zero runs is the one compressed
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    // the longest run wins even when it comes later
    ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"],
    // a single zero group is never compressed
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
    ["0:0:0:0:0:0:0:0", "::"],
    ["fe80:0:0:0:0:0:0:0", "fe80::"],
    ["0:0:0:0:0:0:0:1", "::1"],
    ["::1:2:3:4:5:6:7", "0:1:2:3:4:5:6:7"],
  ];
  for (const [input, canonical] of cases) {
    assert.equal(formatAddress(parsed(input)), canonical, input);
  }
});

test("property: IPv6 formatting agrees with an RFC 5952 model and parses back", () => {
  fc.assert(
    fc.property(ipv6Groups, (groups) => {
      const value = groupsToValue(groups);
      const text = formatValue("IPv6", value);
      assert.equal(text, rfc5952(value));
      assert.deepEqual(parsed(text), parsedIPv6(value));
    }),
    { numRuns: 300 },
  );
});

test("property: any IPv6 spelling (uppercase, padded groups) parses to the same value", () => {
  fc.assert(
    fc.property(ipv6Groups, fc.boolean(), (groups, upper) => {
      const padded = groups.map((group) => group.toString(16).padStart(4, "0")).join(":");
      assert.deepEqual(
        parsed(upper ? padded.toUpperCase() : padded),
        parsedIPv6(groupsToValue(groups)),
      );
    }),
    { numRuns: 100 },
  );
});

test("property: IPv4 format and parse are inverse and agree with octet arithmetic", () => {
  fc.assert(
    fc.property(ipv4Value, (value) => {
      const text = formatValue("IPv4", value);
      const octets = [24n, 16n, 8n, 0n].map((shift) => String((value >> shift) & 255n));
      assert.equal(text, octets.join("."));
      assert.deepEqual(parsed(text), { family: "IPv4", value });
    }),
    { numRuns: 300 },
  );
});

test("isBuggyIPv4 flags exactly the addresses ending in .0 and .255", () => {
  assert.equal(isBuggyIPv4(parsed("192.168.1.0").value), true);
  assert.equal(isBuggyIPv4(parsed("192.168.1.255").value), true);
  assert.equal(isBuggyIPv4(parsed("192.168.1.1").value), false);
  assert.equal(isBuggyIPv4(parsed("192.168.1.254").value), false);
  assert.equal(isBuggyIPv4(parsed("192.168.0.1").value), false);
});

test("compareAddresses orders IPv4 before IPv6, then by value", () => {
  const sorted = ["2001:db8::1", "10.0.0.2", "::1", "10.0.0.1"]
    .map(parsed)
    .sort(compareAddresses)
    .map(formatAddress);
  assert.deepEqual(sorted, ["10.0.0.1", "10.0.0.2", "::1", "2001:db8::1"]);
  const family: Family = "IPv4";
  assert.equal(compareAddresses({ family, value: 5n }, { family, value: 5n }), 0);
});
