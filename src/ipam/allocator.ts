import type { Family, IPAddress } from "./address.ts";
import { isUsableAddress, type Pool } from "./pool.ts";
import { type AddressRange, rangeContains } from "./range.ts";
import type { SortedBigIntSet } from "./sorted-set.ts";
import { type Holder, mayShare, type UsageIndex } from "./usage.ts";

/** Addresses the allocator must not hand out although no one holds them. */
export interface Avoided {
  /** Whole sets, per family (retained and reserved addresses): each run of them is one hop. */
  readonly sets?: (family: Family) => readonly SortedBigIntSet[];
  /** Single addresses, asked one by one (resting ones, a handful at any time). */
  readonly skipped?: (family: Family, value: bigint) => boolean;
}

/**
 * The lowest free address of a range that is not avoided, or undefined. Each step is a
 * logarithmic query on the used set and the avoided sets; with avoidBuggyIPs a step may land on
 * .255/.0 and hop over it, and a step may land on a skipped address, so the loop runs at most a
 * few times per /24 boundary crossed, per run of avoided addresses, and per skipped address,
 * never once per address.
 */
function firstFreeInRange(
  pool: Pool,
  range: AddressRange,
  usage: UsageIndex,
  avoided?: Avoided,
): bigint | undefined {
  const used = usage.used(range.family);
  const sets = avoided?.sets?.(range.family) ?? [];
  let candidate = range.first;
  while (candidate <= range.last) {
    candidate = used.firstAbsentFrom(candidate);
    const past = pastAvoided(candidate, sets);
    if (past !== candidate) {
      candidate = past;
      continue;
    }
    if (candidate > range.last) return undefined;
    if (
      isUsableAddress(pool, range.family, candidate) &&
      avoided?.skipped?.(range.family, candidate) !== true
    )
      return candidate;
    candidate += 1n;
  }
  return undefined;
}

/** `candidate`, or the first value after the run of one avoided set that holds it. */
function pastAvoided(candidate: bigint, sets: readonly SortedBigIntSet[]): bigint {
  for (const set of sets) {
    if (set.has(candidate)) return set.firstAbsentFrom(candidate);
  }
  return candidate;
}

/**
 * The next address of one family in a pool for `holder`: ranges in declaration order, in each the
 * lowest that is free or, when the holder has a sharing key, already held by Services it may
 * share with. MetalLB's own pick (getFreeIPsFromPool with checkSharing) takes the first of either
 * kind, so the second Service of a TCP/UDP pair with one sharing key lands on the first's address.
 * Addresses `avoided` names are passed over (resting.ts, retained.ts and reservations.ts say why).
 */
export function firstFreeInPool(
  pool: Pool,
  family: Family,
  usage: UsageIndex,
  holder?: Holder,
  avoided?: Avoided,
): IPAddress | undefined {
  const shareable =
    holder === undefined || holder.sharingKey === "" ? [] : usage.shareableWith(holder, family);
  for (const range of pool.ranges) {
    if (range.family !== family) continue;
    const free = firstFreeInRange(pool, range, usage, avoided);
    const shared = shareable.find(
      (value) =>
        range.first <= value && value <= range.last && isUsableAddress(pool, family, value),
    );
    const value = free === undefined || (shared !== undefined && shared < free) ? shared : free;
    if (value !== undefined) return { family, value };
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

/**
 * Up to `limit` runs of free addresses of a pool, for messages that say what would be accepted:
 * neither used nor in one of the `avoided` sets (retained and reserved addresses are not free to
 * just anyone).
 */
export function freeRuns(
  pool: Pool,
  usage: UsageIndex,
  limit: number,
  avoided?: Pick<Avoided, "sets">,
): readonly AddressRange[] {
  const runs: AddressRange[] = [];
  for (const range of pool.ranges) {
    const blocking = [usage.used(range.family), ...(avoided?.sets?.(range.family) ?? [])];
    let from = range.first;
    while (runs.length < limit && from <= range.last) {
      const first = firstFreeInRange(pool, { ...range, first: from }, usage, avoided);
      if (first === undefined) break;
      const nextUsed = blocking
        .map((set) => set.firstMemberFrom(first))
        .reduce<bigint | undefined>(
          (lowest, value) =>
            value === undefined || (lowest !== undefined && lowest <= value) ? lowest : value,
          undefined,
        );
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
