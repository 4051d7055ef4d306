// A pool's list of addresses: each CIDR or range parsed, and quoted back the way it was written.

import { FAMILY_BITS, formatValue } from "../address.ts";
import { type AddressRange, formatRange, parseAddressBlock } from "../range.ts";
import type { Issues } from "./errors.ts";
import { show } from "./fields.ts";

/**
 * What the user wrote for each range this module parsed, so overlap messages quote their text
 * (`10.0.0.0/24`) rather than a re-formatted one. Ranges built elsewhere fall back to
 * `formatBlock`.
 */
const writtenAs = new WeakMap<AddressRange, string>();

export function addressRanges(value: unknown, path: string, issues: Issues): AddressRange[] {
  if (value === undefined || value === null || (Array.isArray(value) && value.length === 0)) {
    issues.add(path, `${path} is empty; a pool needs at least one CIDR or range`);
    return [];
  }
  if (!Array.isArray(value)) {
    issues.add(path, `${path} must be a list of CIDRs or ranges, not ${show(value)}`);
    return [];
  }
  const ranges: AddressRange[] = [];
  value.forEach((entry: unknown, index) => {
    if (typeof entry !== "string") {
      issues.add(`${path}[${index}]`, `${path}[${index}] must be a string, not ${show(entry)}`);
      return;
    }
    const parsed = parseAddressBlock(entry);
    if (!parsed.ok) {
      issues.add(entry, parsed.error);
      return;
    }
    writtenAs.set(parsed.value, entry.trim());
    ranges.push(parsed.value);
  });
  return ranges;
}

/** The range as the user wrote it, else in CIDR or `first-last` form. */
export function writtenText(range: AddressRange): string {
  return writtenAs.get(range) ?? formatBlock(range);
}

/** A CIDR when the range is one (`10.0.0.0/24`), else `first-last`. */
function formatBlock(range: AddressRange): string {
  const size = range.last - range.first + 1n;
  const hostBits = size.toString(2).length - 1;
  if (size === 1n << BigInt(hostBits) && (range.first & (size - 1n)) === 0n) {
    const prefix = FAMILY_BITS[range.family] - hostBits;
    return `${formatValue(range.family, range.first)}/${prefix}`;
  }
  return formatRange(range);
}
