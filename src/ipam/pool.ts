import { type Family, isBuggyIPv4 } from "./address.ts";
import { type LabelSelector, type Labels, selectorMatches } from "./labels.ts";
import { type AddressRange, formatRange, rangeSize } from "./range.ts";

/** MetalLB's `serviceAllocation`: which Services may draw from a pool, and in which order. */
export interface ServiceAllocation {
  /** Lower is tried first; undefined sorts after every number. */
  readonly priority: number | undefined;
  readonly namespaces: readonly string[];
  readonly namespaceSelectors: readonly LabelSelector[];
  readonly serviceSelectors: readonly LabelSelector[];
}

export interface Pool {
  readonly name: string;
  /** In declaration order: allocation walks them in this order. */
  readonly ranges: readonly AddressRange[];
  readonly autoAssign: boolean;
  readonly avoidBuggyIPs: boolean;
  readonly serviceAllocation: ServiceAllocation | undefined;
  /** Where the pool was declared, for messages: `ConfigMap metallb-system/config`, a file name, ... */
  readonly origin: string;
}

/** What a pool's eligibility rules look at: the Service's namespace (and its labels) and labels. */
export interface ServiceIdentity {
  readonly namespace: string;
  readonly labels: Labels;
  readonly namespaceLabels: Labels;
}

export function poolAllowsService(pool: Pool, service: ServiceIdentity): boolean {
  const allocation = pool.serviceAllocation;
  if (allocation === undefined) return true;
  const namespaceRestricted =
    allocation.namespaces.length > 0 || allocation.namespaceSelectors.length > 0;
  if (
    namespaceRestricted &&
    !allocation.namespaces.includes(service.namespace) &&
    !allocation.namespaceSelectors.some((selector) =>
      selectorMatches(selector, service.namespaceLabels),
    )
  ) {
    return false;
  }
  return (
    allocation.serviceSelectors.length === 0 ||
    allocation.serviceSelectors.some((selector) => selectorMatches(selector, service.labels))
  );
}

export function isUsableAddress(pool: Pool, family: Family, value: bigint): boolean {
  return !(pool.avoidBuggyIPs && family === "IPv4" && isBuggyIPv4(value));
}

export function poolFamilies(pool: Pool): ReadonlySet<Family> {
  return new Set(pool.ranges.map((range) => range.family));
}

export function describePool(pool: Pool): string {
  return `pool "${pool.name}" (${pool.ranges.map(formatRange).join(", ")})`;
}

export function poolSize(pool: Pool, family: Family): bigint {
  return pool.ranges
    .filter((range) => range.family === family)
    .reduce((sum, range) => sum + rangeSize(range), 0n);
}

interface IndexedRange {
  readonly range: AddressRange;
  readonly pool: Pool;
}

/**
 * The merged, validated pools. Ranges never overlap (the config loader guarantees it), so an
 * address belongs to at most one pool and a binary search over sorted ranges finds it.
 */
export class PoolSet {
  readonly #byName: ReadonlyMap<string, Pool>;
  readonly #inNameOrder: readonly Pool[];
  readonly #sortedRanges: Readonly<Record<Family, readonly IndexedRange[]>>;

  constructor(pools: readonly Pool[]) {
    this.#byName = new Map(pools.map((pool) => [pool.name, pool]));
    // Sorted once: every auto-assign reads the list (twice), and a set lives until the pools
    // change. Not frozen: V8's filter over a frozen array costs an auto-assign about a fifth.
    this.#inNameOrder = [...this.#byName.values()].sort((a, b) =>
      a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
    );
    const indexed = pools.flatMap((pool) => pool.ranges.map((range) => ({ range, pool })));
    const byFirst = (a: IndexedRange, b: IndexedRange) => (a.range.first < b.range.first ? -1 : 1);
    this.#sortedRanges = {
      IPv4: indexed.filter((entry) => entry.range.family === "IPv4").sort(byFirst),
      IPv6: indexed.filter((entry) => entry.range.family === "IPv6").sort(byFirst),
    };
  }

  /** Every pool, by name. */
  get pools(): readonly Pool[] {
    return this.#inNameOrder;
  }

  get size(): number {
    return this.#byName.size;
  }

  byName(name: string): Pool | undefined {
    return this.#byName.get(name);
  }

  poolOf(family: Family, value: bigint): Pool | undefined {
    const ranges = this.#sortedRanges[family];
    let low = 0;
    let high = ranges.length - 1;
    while (low <= high) {
      const middle = (low + high) >>> 1;
      const entry = ranges[middle] as IndexedRange;
      if (value < entry.range.first) high = middle - 1;
      else if (value > entry.range.last) low = middle + 1;
      else return entry.pool;
    }
    return undefined;
  }
}
