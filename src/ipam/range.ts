import { FAMILY_BITS, type Family, formatValue, parseAddress } from "./address.ts";
import { fail, ok, type Result } from "./result.ts";

/** A contiguous block of addresses of one family, both ends included. Invariant: first <= last. */
export interface AddressRange {
  readonly family: Family;
  readonly first: bigint;
  readonly last: bigint;
}

/**
 * Parses a pool entry: a CIDR (`192.0.2.0/24`, `2001:db8::/64`) or a range `a-b` (spaces allowed
 * around `-`). Refuses what MetalLB silently accepts: host bits set in a CIDR, a reversed range.
 */
export function parseAddressBlock(text: string): Result<AddressRange> {
  const trimmed = text.trim();
  if (trimmed.includes("-")) return parseRange(trimmed);
  if (trimmed.includes("/")) return parseCidr(trimmed);
  if (!parseAddress(trimmed).ok) {
    return fail(
      `"${text}" is neither a CIDR nor a range; expected e.g. 192.0.2.0/24 or 192.0.2.10-192.0.2.20`,
    );
  }
  return fail(
    `"${text}" is a bare address; write it as a CIDR (${trimmed}/${trimmed.includes(":") ? 128 : 32}) or a range (a-b)`,
  );
}

function parseRange(text: string): Result<AddressRange> {
  const parts = text.split("-").map((part) => part.trim());
  if (parts.length !== 2)
    return fail(`"${text}" is not a range; expected first-last, e.g. 192.0.2.10-192.0.2.20`);
  const [firstText = "", lastText = ""] = parts;
  const first = parseAddress(firstText);
  if (!first.ok) return fail(`range "${text}": ${first.error}`);
  const last = parseAddress(lastText);
  if (!last.ok) return fail(`range "${text}": ${last.error}`);
  if (first.value.family !== last.value.family) {
    return fail(`range "${text}" mixes IPv4 and IPv6; both ends must be of one family`);
  }
  if (first.value.value > last.value.value) {
    return fail(`range "${text}" starts after it ends; write it lowest address first`);
  }
  return ok({ family: first.value.family, first: first.value.value, last: last.value.value });
}

function parseCidr(text: string): Result<AddressRange> {
  const slash = text.indexOf("/");
  const addressText = text.slice(0, slash);
  const prefixText = text.slice(slash + 1);
  const address = parseAddress(addressText);
  if (!address.ok) return fail(`CIDR "${text}": ${address.error}`);
  const { family, value } = address.value;
  const bits = FAMILY_BITS[family];
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > bits) {
    return fail(`CIDR "${text}" has an invalid prefix length; expected /0 to /${bits}`);
  }
  const hostBits = BigInt(bits - Number(prefixText));
  const hostMask = (1n << hostBits) - 1n;
  if ((value & hostMask) !== 0n) {
    const network = formatValue(family, value & ~hostMask);
    return fail(`CIDR "${text}" has host bits set; did you mean ${network}/${prefixText}?`);
  }
  return ok({ family, first: value, last: value | hostMask });
}

export function rangeSize(range: AddressRange): bigint {
  return range.last - range.first + 1n;
}

export function rangeContains(range: AddressRange, family: Family, value: bigint): boolean {
  return range.family === family && range.first <= value && value <= range.last;
}

export function rangesOverlap(a: AddressRange, b: AddressRange): boolean {
  return a.family === b.family && a.first <= b.last && b.first <= a.last;
}

/** `a-b`, or the single address when the range holds one. */
export function formatRange(range: AddressRange): string {
  const first = formatValue(range.family, range.first);
  return range.first === range.last ? first : `${first}-${formatValue(range.family, range.last)}`;
}
