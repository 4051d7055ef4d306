import { Address4, Address6 } from "ip-address";
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
export function parseAddress(text: string): Result<IPAddress> {
  const fast = parseFast(text);
  if (fast !== undefined) return ok(fast);
  if (text.includes("/")) {
    return fail(
      `"${text}" has a prefix length; expected a single address such as 192.0.2.10 or 2001:db8::10`,
    );
  }
  if (text.includes("%"))
    return fail(`"${text}" has a zone; expected a single address without %zone`);
  try {
    if (DOTTED_QUAD.test(text)) return ok({ family: "IPv4", value: new Address4(text).bigInt() });
    if (text.includes(":")) return ok({ family: "IPv6", value: new Address6(text).bigInt() });
  } catch (error) {
    return fail(`"${text}" is not an IP address: ${(error as Error).message}`);
  }
  return fail(
    `"${text}" is not an IP address; expected IPv4 like 192.0.2.10 or IPv6 like 2001:db8::10`,
  );
}

const DOTTED_QUAD = /^\d{1,3}(\.\d{1,3}){3}$/;
const STRICT_IPV4 =
  /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const COLON_HEX = /^[0-9a-fA-F:]{2,39}$/;

/** Plain dotted quads and colon-hex IPv6 (with at most one `::`, no embedded IPv4). */
export function parseFast(text: string): IPAddress | undefined {
  if (STRICT_IPV4.test(text)) {
    const [a = 0, b = 0, c = 0, d = 0] = text.split(".").map(Number);
    return { family: "IPv4", value: BigInt(((a << 24) | (b << 16) | (c << 8) | d) >>> 0) };
  }
  if (!COLON_HEX.test(text)) return undefined;
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const head = halves[0] ? halves[0].split(":") : [];
  const tail = halves[1] ? halves[1].split(":") : [];
  const present = head.length + tail.length;
  if (halves.length === 2 ? present > 7 : present !== 8) return undefined;
  let digits = "";
  for (const group of head) digits += group.padStart(4, "0");
  digits += "0000".repeat(8 - present);
  for (const group of tail) digits += group.padStart(4, "0");
  // Every group was 1-4 hex digits exactly when the padded total is 32 and no group was empty.
  if (digits.length !== 32 || head.includes("") || tail.includes("")) return undefined;
  return { family: "IPv6", value: BigInt(`0x${digits}`) };
}

/** Canonical text: dotted quad for IPv4, RFC 5952 for IPv6 (lowercase, longest zero run as ::). */
export function formatAddress(address: IPAddress): string {
  return formatValue(address.family, address.value);
}

export function formatValue(family: Family, value: bigint): string {
  if (family === "IPv4") {
    const n = Number(value);
    return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
  }
  const digits = value.toString(16).padStart(32, "0");
  const groups: string[] = [];
  for (let i = 0; i < 32; i += 4) {
    let start = i;
    while (start < i + 3 && digits.charCodeAt(start) === 48) start++;
    groups.push(digits.slice(start, i + 4));
  }
  // RFC 5952 4.2: the longest run of two or more zero groups becomes "::", the first on a tie.
  let bestStart = -1;
  let bestLength = 1;
  for (let start = 0; start < 8; start++) {
    let length = 0;
    while (start + length < 8 && groups[start + length] === "0") length++;
    if (length > bestLength) [bestStart, bestLength] = [start, length];
    start += length;
  }
  if (bestStart < 0) return groups.join(":");
  return `${groups.slice(0, bestStart).join(":")}::${groups.slice(bestStart + bestLength).join(":")}`;
}

/** Some consumer routers drop traffic to IPv4 addresses ending in .0 or .255 (MetalLB's avoidBuggyIPs). */
export function isBuggyIPv4(value: bigint): boolean {
  const lastOctet = value & 255n;
  return lastOctet === 0n || lastOctet === 255n;
}

export function compareAddresses(a: IPAddress, b: IPAddress): number {
  if (a.family !== b.family) return a.family === "IPv4" ? -1 : 1;
  return a.value < b.value ? -1 : a.value > b.value ? 1 : 0;
}
