// Addresses that rest after their release: a Service gave them up (deleted, no longer a
// LoadBalancer, moved to another address) a moment ago, and MetalLB may not have processed that
// yet. Handed to the next Service at once, the address would reach MetalLB's work queue while its
// allocator still counts it held by the old Service, and MetalLB would record AllocationFailed on
// a Service we admitted. The allocator skips resting addresses while the pool has another free
// one; when it has none, the one released longest ago is given. How long an address rests, and
// when it stops, is the caller's (the cluster state expires entries on its timer): nothing here
// reads a clock.

import type { Family, IPAddress } from "./address.ts";

export class RestingAddresses {
  /** Release time by address, per family; a Map keeps insertion order, which is release order. */
  readonly #since: Record<Family, Map<bigint, number>> = { IPv4: new Map(), IPv6: new Map() };

  /** `address` was released at `at`; a second release starts its rest again. */
  rest(address: IPAddress, at: number): void {
    const since = this.#since[address.family];
    // Deleted first, so that the Map's order stays the order of the latest releases.
    since.delete(address.value);
    since.set(address.value, at);
  }

  isResting(family: Family, value: bigint): boolean {
    return this.#since[family].has(value);
  }

  /** Resting addresses of one family, released longest ago first. */
  oldestFirst(family: Family): IterableIterator<bigint> {
    return this.#since[family].keys();
  }

  /** Ends the rest of every address released at or before `releasedBy`. */
  expire(releasedBy: number): void {
    for (const since of Object.values(this.#since)) {
      for (const [value, at] of since) {
        if (at > releasedBy) break;
        since.delete(value);
      }
    }
  }

  get size(): number {
    return this.#since.IPv4.size + this.#since.IPv6.size;
  }
}
