import type { Family, IPAddress } from "./address.ts";
import { isUsableAddress, type Pool } from "./pool.ts";
import { type AddressRange, rangeContains } from "./range.ts";
import type { RestingAddresses } from "./resting.ts";
import { type Holder, mayShare, type UsageIndex } from "./usage.ts";

/**
 * The lowest free address of a range (and not resting, when `resting` is given), or undefined.
 * Each step is a logarithmic query on the used set; with avoidBuggyIPs a step may land on
 * .255/.0 and hop over it, and a step may land on a resting address, so the loop runs at most a
 * few times per /24 boundary crossed plus once per resting address, never once per address.
 */
function firstFreeInRange(
  pool: Pool,
  range: AddressRange,
  usage: UsageIndex,
  resting?: RestingAddresses,
): bigint | undefined {
  const used = usage.used(range.family);
  let candidate = range.first;
  while (candidate <= range.last) {
    candidate = used.firstAbsentFrom(candidate);
    if (candidate > range.last) return undefined;
    if (
      isUsableAddress(pool, range.family, candidate) &&
      resting?.isResting(range.family, candidate) !== true
    )
      return candidate;
    candidate += 1n;
  }
  return undefined;
}

/**
 * The next address of one family in a pool for `holder`: ranges in declaration order, in each the
 * lowest that is free or, when the holder has a sharing key, already held by Services it may
 * share with. MetalLB's own pick (getFreeIPsFromPool with checkSharing) takes the first of either
 * kind, so the second Service of a TCP/UDP pair with one sharing key lands on the first's address.
 * A resting address is skipped while the pool has another; with none other, the free one that
 * was released longest ago is taken (resting.ts says why).
 */
export function firstFreeInPool(
  pool: Pool,
  family: Family,
  usage: UsageIndex,
  holder?: Holder,
  resting?: RestingAddresses,
): IPAddress | undefined {
  const shareable =
    holder === undefined || holder.sharingKey === "" ? [] : usage.shareableWith(holder, family);
  for (const range of pool.ranges) {
    if (range.family !== family) continue;
    const free = firstFreeInRange(pool, range, usage, resting);
    const shared = shareable.find(
      (value) =>
        range.first <= value && value <= range.last && isUsableAddress(pool, family, value),
    );
    const value = free === undefined || (shared !== undefined && shared < free) ? shared : free;
    if (value !== undefined) return { family, value };
  }
  return resting === undefined ? undefined : longestRestingInPool(pool, family, usage, resting);
}

/** The free address of the pool released longest ago, or undefined. */
function longestRestingInPool(
  pool: Pool,
  family: Family,
  usage: UsageIndex,
  resting: RestingAddresses,
): IPAddress | undefined {
  const used = usage.used(family);
  for (const value of resting.oldestFirst(family)) {
    if (used.has(value) || !isUsableAddress(pool, family, value)) continue;
    if (pool.ranges.some((range) => rangeContains(range, family, value))) return { family, value };
  }
  return undefined;
}

/**
 * The address of one family that an earlier admission of the same Service was granted (its hold
 * or claim, while the Service does not exist yet), when this pool would still give it to it:
 * usable here, and held by no one else it may not share with. A client that sends the same
 * review again (a retry after a failed create, a re-apply) gets the same address back, not one
 * more claimed for the grace period each time.
 */
export function earlierGrantInPool(
  pool: Pool,
  family: Family,
  usage: UsageIndex,
  holder: Holder,
): IPAddress | undefined {
  for (const value of usage.grantedBefore(holder.ref, family)) {
    const inPool = pool.ranges.some((range) => rangeContains(range, family, value));
    if (!inPool || !isUsableAddress(pool, family, value)) continue;
    const others = usage.holdersOf(family, value);
    if (others.every((other) => other.ref === holder.ref || mayShare(holder, other))) {
      return { family, value };
    }
  }
  return undefined;
}

/** Up to `limit` runs of free addresses of a pool, for messages that say what would be accepted. */
export function freeRuns(pool: Pool, usage: UsageIndex, limit: number): readonly AddressRange[] {
  const runs: AddressRange[] = [];
  for (const range of pool.ranges) {
    const used = usage.used(range.family);
    let from = range.first;
    while (runs.length < limit && from <= range.last) {
      const first = firstFreeInRange(pool, { ...range, first: from }, usage);
      if (first === undefined) break;
      const nextUsed = used.firstMemberFrom(first);
      let last = nextUsed === undefined || nextUsed > range.last ? range.last : nextUsed - 1n;
      if (pool.avoidBuggyIPs && range.family === "IPv4") last = lastBeforeBuggy(first, last);
      runs.push({ family: range.family, first, last });
      from = last + 1n;
    }
  }
  return runs;
}

/** With avoidBuggyIPs a free run ends at the .254 of its /24. */
function lastBeforeBuggy(first: bigint, last: bigint): bigint {
  const endOfBlock = (first | 255n) - 1n;
  return last < endOfBlock ? last : endOfBlock;
}

/** Addresses of the pool's ranges of one family that are in use (by anyone). */
export function usedInPool(pool: Pool, family: Family, usage: UsageIndex): number {
  const used = usage.used(family);
  return pool.ranges
    .filter((range) => range.family === family)
    .reduce((sum, range) => sum + used.countBetween(range.first, range.last), 0);
}
