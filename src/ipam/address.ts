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

const FOUR_DOTTED = /^\d{1,3}(\.\d{1,3}){3}$/;

/**
 * Parses one bare address (no prefix length, no zone). IPv4 must be dotted quad without leading
 * zeros, as Go's net.ParseIP (and therefore MetalLB) requires.
 */
export function parseAddress(text: string): Result<IPAddress> {
  if (text.includes("/")) {
    return fail(
      `"${text}" has a prefix length; expected a single address such as 192.0.2.10 or 2001:db8::10`,
    );
  }
  if (text.includes("%")) {
    return fail(`"${text}" has a zone; expected a single address without %zone`);
  }
  try {
    if (FOUR_DOTTED.test(text)) {
      return ok({ family: "IPv4", value: new Address4(text).bigInt() });
    }
    if (text.includes(":")) {
      return ok({ family: "IPv6", value: new Address6(text).bigInt() });
    }
  } catch (error) {
    return fail(`"${text}" is not an IP address: ${(error as Error).message}`);
  }
  return fail(
    `"${text}" is not an IP address; expected IPv4 like 192.0.2.10 or IPv6 like 2001:db8::10`,
  );
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
  return Address6.fromBigInt(value).correctForm();
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
