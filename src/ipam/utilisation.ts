import { FAMILIES, type Family } from "./address.ts";
import { usedInPool } from "./allocator.ts";
import type { Pool, PoolSet } from "./pool.ts";
import type { ReservationIndex } from "./reservations.ts";
import type { RetainedAddresses } from "./retained.ts";
import type { UsageIndex } from "./usage.ts";

export interface PoolUtilisation {
  readonly pool: string;
  readonly family: Family;
  /** Addresses the pool can hand out (without .0/.255 under avoidBuggyIPs). */
  readonly total: bigint;
  readonly used: bigint;
}

/** Per pool and family, computed from range arithmetic and rank queries: no address walk. */
export function poolUtilisation(pools: PoolSet, usage: UsageIndex): readonly PoolUtilisation[] {
  return poolFamilies(pools).map(({ pool, family }) => {
    const total = usableCount(pool, family);
    const used = BigInt(usedInPool(pool, family, usage));
    return { pool: pool.name, family, total, used };
  });
}

/** Each pool with each family it has ranges of, in pool order. */
function poolFamilies(pools: PoolSet): readonly { pool: Pool; family: Family }[] {
  return pools.pools.flatMap((pool) =>
    FAMILIES.filter((family) => pool.ranges.some((range) => range.family === family)).map(
      (family) => ({ pool, family }),
    ),
  );
}

/** Addresses of one pool and family set aside for someone: retained, and reserved. */
export interface PoolSetAside {
  readonly pool: string;
  readonly family: Family;
  readonly retained: number;
  readonly reserved: number;
}

/**
 * Per pool and family (every one of them, zeros included, so a query over time has a series),
 * how many addresses are retained and reserved: one walk over the retentions and reservations,
 * which are few, never over a pool.
 */
export function poolSetAside(
  pools: PoolSet,
  retained: RetainedAddresses | undefined,
  reservations: ReservationIndex | undefined,
): readonly PoolSetAside[] {
  const entries = poolFamilies(pools).map(({ pool, family }) => ({
    pool: pool.name,
    family,
    retained: 0,
    reserved: 0,
  }));
  const counts = new Map(entries.map((entry) => [`${entry.pool}/${entry.family}`, entry]));
  const count = (family: Family, value: bigint) => {
    const pool = pools.poolOf(family, value);
    return pool === undefined ? undefined : counts.get(`${pool.name}/${family}`);
  };
  for (const [address] of retained?.entries() ?? []) {
    const entry = count(address.family, address.value);
    if (entry !== undefined) entry.retained += 1;
  }
  for (const reservation of reservations?.all() ?? []) {
    for (const address of reservation.addresses) {
      // The index keeps an address for one reservation only: count what it keeps.
      if (reservations?.reservationOf(address.family, address.value) !== reservation) continue;
      const entry = count(address.family, address.value);
      if (entry !== undefined) entry.reserved += 1;
    }
  }
  return entries;
}

/** The addresses of `family` a pool hands out: its ranges without .0/.255 under avoidBuggyIPs. */
export function usableCount(pool: Pool, family: Family): bigint {
  let count = 0n;
  for (const range of pool.ranges) {
    if (range.family !== family) continue;
    count += range.last - range.first + 1n;
    if (pool.avoidBuggyIPs && family === "IPv4") count -= buggyBetween(range.first, range.last);
  }
  return count;
}

/** How many values in [first, last] end in .0 or .255. */
function buggyBetween(first: bigint, last: bigint): bigint {
  const endingIn = (octet: bigint) => countCongruent(first, last, octet);
  return endingIn(0n) + endingIn(255n);
}

function countCongruent(first: bigint, last: bigint, octet: bigint): bigint {
  const upTo = (value: bigint) => (value < octet ? 0n : (value - octet) / 256n + 1n);
  return upTo(last) - (first === 0n ? 0n : upTo(first - 1n));
}
