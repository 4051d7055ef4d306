import { FAMILIES, type Family } from "./address.ts";
import { usedInPool } from "./allocator.ts";
import type { Pool, PoolSet } from "./pool.ts";
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
  return pools.pools.flatMap((pool) =>
    FAMILIES.filter((family) => pool.ranges.some((range) => range.family === family)).map(
      (family) => {
        const total = usableCount(pool, family);
        const used = BigInt(usedInPool(pool, family, usage));
        return { pool: pool.name, family, total, used };
      },
    ),
  );
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
