import { Address4, Address6 } from "ip-address";
import { quoted } from "../base/text.ts";
import { fail, ok, type Result } from "./result.ts";

/** The two address families, spelled as Kubernetes spells them in `spec.ipFamilies`. */
export type Family = "IPv4" | "IPv6";

export const FAMILIES: readonly Family[] = ["IPv4", "IPv6"];

export const FAMILY_BITS: Readonly<Record<Family, number>> = { IPv4: 32, IPv6: 128 };

/** One address as an unsigned integer of its family's width; arithmetic stays exact in BigInt. */
export interface IPAddress {
  readonly family: Family;
  readonly value: bigint;
}

/**
 * Parses one bare address (no prefix length, no zone). IPv4 must be dotted quad without leading
 * zeros, as Go's net.ParseIP (and therefore MetalLB) requires.
 *
 * Well-formed input takes a fast path; anything unusual goes to ip-address, the parser of
 * record, which also words the error. A property test holds the two to the same answers.
 */
const MAX_ADDRESS_LENGTH = 64;

export function parseAddress(text: string): Result<IPAddress> {
  // The longest address Go's net.ParseIP (so MetalLB) reads is 45 characters
  // (0000:0000:0000:0000:0000:ffff:255.255.255.255): a longer text is not parsed at all.
  if (text.length > MAX_ADDRESS_LENGTH)
    return fail(`${quoted(text)} is not an IP address: longer than any address`);
  const fast = parseFast(text);
  if (fast !== undefined) return ok(unmapped(fast));
  if (text.includes("/")) {
    return fail(
      `${quoted(text)} has a prefix length; expected a single address such as 192.0.2.10 or 2001:db8::10`,
    );
  }
  if (text.includes("%"))
    return fail(`${quoted(text)} has a zone; expected a single address without %zone`);
  try {
    if (DOTTED_QUAD.test(text)) return ok({ family: "IPv4", value: new Address4(text).bigInt() });
    if (text.includes(":"))
      return ok(unmapped({ family: "IPv6", value: new Address6(text).bigInt() }));
  } catch (error) {
    return fail(`${quoted(text)} is not an IP address: ${(error as Error).message}`);
  }
  return fail(
    `${quoted(text)} is not an IP address; expected IPv4 like 192.0.2.10 or IPv6 like 2001:db8::10`,
  );
}

/**
 * An IPv4-mapped IPv6 address (::ffff:192.0.2.1, or ::ffff:c000:201) is that IPv4 address, as it
 * is for Go's net.ParseIP and so for MetalLB, which would announce 192.0.2.1 for it: it must be
 * checked against IPv4 pools and IPv4 holders.
 */
function unmapped(address: IPAddress): IPAddress {
  if (address.family === "IPv4" || address.value >> 32n !== 0xffffn) return address;
  return { family: "IPv4", value: address.value & 0xffff_ffffn };
}

const DOTTED_QUAD = /^\d{1,3}(\.\d{1,3}){3}$/;
const STRICT_IPV4 =
  /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/** Plain dotted quads and colon-hex IPv6 (with at most one `::`, no embedded IPv4). */
export function parseFast(text: string): IPAddress | undefined {
  if (STRICT_IPV4.test(text)) {
    const [a = 0, b = 0, c = 0, d = 0] = text.split(".").map(Number);
    return { family: "IPv4", value: BigInt(((a << 24) | (b << 16) | (c << 8) | d) >>> 0) };
  }
  const groups = ipv6Groups(text);
  if (groups === undefined) return undefined;
  // Two 16-bit groups make a 32-bit word, exact in a double; four words make the address.
  let value = 0n;
  for (let i = 0; i < 8; i += 2) {
    value = (value << 32n) | BigInt((groups[i] ?? 0) * 0x10000 + (groups[i + 1] ?? 0));
  }
  return { family: "IPv6", value };
}

/** The eight 16-bit groups of colon-hex text with at most one `::`, in one pass over the chars. */
function ipv6Groups(text: string): number[] | undefined {
  const head: number[] = [];
  const tail: number[] = [];
  let groups = head;
  let group = 0;
  let digits = 0;
  let i = 0;
  if (text.startsWith("::")) {
    groups = tail;
    i = 2;
  }
  for (; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 58) {
      if (digits === 0) return undefined;
      groups.push(group);
      group = 0;
      digits = 0;
      if (text.charCodeAt(i + 1) === 58) {
        if (groups === tail) return undefined;
        groups = tail;
        i++;
      }
      continue;
    }
    const digit = hexDigit(code);
    if (digit < 0 || digits === 4) return undefined;
    group = group * 16 + digit;
    digits++;
  }
  if (digits > 0) groups.push(group);
  else if (!(groups === tail && text.endsWith("::"))) return undefined;
  const present = head.length + tail.length;
  if (groups === tail ? present > 7 : present !== 8) return undefined;
  return [...head, ...Array<number>(8 - present).fill(0), ...tail];
}

function hexDigit(code: number): number {
  if (code >= 48 && code <= 57) return code - 48;
  if (code >= 97 && code <= 102) return code - 87;
  if (code >= 65 && code <= 70) return code - 55;
  return -1;
}

/** Canonical text: dotted quad for IPv4, RFC 5952 for IPv6 (lowercase, longest zero run as ::). */
export function formatAddress(address: IPAddress): string {
  return formatValue(address.family, address.value);
}

/** `10.0.0.1, 2001:db8::1`: addresses in messages. */
export function formatAddressList(addresses: readonly IPAddress[]): string {
  return addresses.map(formatAddress).join(", ");
}

export function formatValue(family: Family, value: bigint): string {
  if (family === "IPv4") {
    const n = Number(value);
    return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
  }
  const digits = value.toString(16).padStart(32, "0");
  // RFC 5952 4.2: the longest run of two or more zero groups becomes "::", the first on a tie.
  let bestStart = -1;
  let bestLength = 1;
  let runStart = -1;
  for (let g = 0; g < 8; g++) {
    if (!digits.startsWith("0000", g * 4)) {
      runStart = -1;
      continue;
    }
    if (runStart < 0) runStart = g;
    if (g - runStart + 1 > bestLength) {
      bestStart = runStart;
      bestLength = g - runStart + 1;
    }
  }
  let text = "";
  for (let g = 0; g < 8; g++) {
    if (g === bestStart) {
      text += "::";
      g += bestLength - 1;
      continue;
    }
    if (g > 0 && g !== bestStart + bestLength) text += ":";
    // A group without its leading zeros (RFC 5952 4.1), but at least one digit.
    let start = g * 4;
    while (start < g * 4 + 3 && digits.charCodeAt(start) === 48) start++;
    text += digits.slice(start, g * 4 + 4);
  }
  return text;
}

/** Some consumer routers drop traffic to IPv4 addresses ending in .0 or .255 (MetalLB's avoidBuggyIPs). */
export function isBuggyIPv4(value: bigint): boolean {
  const lastOctet = value & 255n;
  return lastOctet === 0n || lastOctet === 255n;
}

export function sameAddress(a: IPAddress, b: IPAddress): boolean {
  return a.family === b.family && a.value === b.value;
}

/** The same addresses in the same order. */
export function sameAddressList(a: readonly IPAddress[], b: readonly IPAddress[]): boolean {
  return a.length === b.length && a.every((address, i) => sameAddress(address, b[i] as IPAddress));
}

export function compareAddresses(a: IPAddress, b: IPAddress): number {
  if (a.family !== b.family) return a.family === "IPv4" ? -1 : 1;
  return a.value < b.value ? -1 : a.value > b.value ? 1 : 0;
}
