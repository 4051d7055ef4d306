// Merging the pools of every source with MetalLB's rules into the PoolSet decisions read.

import type { Family } from "../address.ts";
import { type Pool, PoolSet } from "../pool.ts";
import { type AddressRange, rangesOverlap } from "../range.ts";
import { writtenText } from "./address-ranges.ts";
import type { PoolConfigError } from "./errors.ts";

interface Claimed {
  readonly range: AddressRange;
  readonly pool: Pool;
}

/**
 * Merges pools from every source with MetalLB's rules: names unique, no range overlapping a range
 * of another pool (nor of the same pool). The first declaration wins; a later conflicting pool is
 * dropped and reported (naming both pools and the overlapping strings).
 */
export function mergePools(pools: readonly Pool[]): {
  readonly poolSet: PoolSet;
  readonly errors: readonly PoolConfigError[];
} {
  const errors: PoolConfigError[] = [];
  const accepted: Pool[] = [];
  const byName = new Map<string, Pool>();
  // Accepted ranges per family, sorted by first address and pairwise disjoint.
  const claimed: Record<Family, Claimed[]> = { IPv4: [], IPv6: [] };

  for (const pool of pools) {
    const report = (offending: string, message: string) =>
      errors.push({ origin: pool.origin, pool: pool.name, offending, message });
    const earlier = byName.get(pool.name);
    if (earlier !== undefined) {
      report(
        pool.name,
        `duplicate definition of pool ${JSON.stringify(pool.name)}: it is already declared by ${earlier.origin}; this declaration is ignored`,
      );
      continue;
    }
    const before = errors.length;
    for (const [range, other] of selfOverlaps(pool.ranges)) {
      report(
        writtenText(range),
        `address range ${JSON.stringify(writtenText(range))} overlaps ${JSON.stringify(writtenText(other))} of the same pool; pool "${pool.name}" is ignored`,
      );
    }
    for (const range of pool.ranges) {
      const hit = findOverlap(claimed[range.family], range);
      if (hit === undefined) continue;
      report(
        writtenText(range),
        `address range ${JSON.stringify(writtenText(range))} overlaps ${JSON.stringify(writtenText(hit.range))} of pool "${hit.pool.name}" (${hit.pool.origin}); pool "${pool.name}" is ignored`,
      );
    }
    if (errors.length !== before) continue;
    byName.set(pool.name, pool);
    accepted.push(pool);
    for (const range of pool.ranges) {
      const list = claimed[range.family];
      list.splice(lowerBound(list, range.first), 0, { range, pool });
    }
  }
  return { poolSet: new PoolSet(accepted), errors };
}

/** Each range that overlaps an earlier-starting range of the same list, with that range. */
function selfOverlaps(ranges: readonly AddressRange[]): [AddressRange, AddressRange][] {
  const found: [AddressRange, AddressRange][] = [];
  const sorted = [...ranges].sort((a, b) =>
    a.family !== b.family
      ? a.family < b.family
        ? -1
        : 1
      : a.first < b.first
        ? -1
        : a.first > b.first
          ? 1
          : 0,
  );
  let widest: AddressRange | undefined;
  for (const range of sorted) {
    if (widest !== undefined && rangesOverlap(widest, range)) found.push([range, widest]);
    if (widest === undefined || widest.family !== range.family || range.last > widest.last) {
      widest = range;
    }
  }
  return found;
}

/** Index of the first claimed range whose first address is >= value. */
function lowerBound(list: readonly Claimed[], value: bigint): number {
  let low = 0;
  let high = list.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((list[middle] as Claimed).range.first < value) low = middle + 1;
    else high = middle;
  }
  return low;
}

function findOverlap(list: readonly Claimed[], range: AddressRange): Claimed | undefined {
  // Disjoint and sorted: only the range starting just before `range`, and those starting inside it,
  // can overlap; the first of them that does is the one to report.
  const index = lowerBound(list, range.first);
  const previous = list[index - 1];
  if (previous !== undefined && rangesOverlap(previous.range, range)) return previous;
  const next = list[index];
  if (next !== undefined && rangesOverlap(next.range, range)) return next;
  return undefined;
}
