// Addresses that rest after their release: a Service gave them up (deleted, no longer a
// LoadBalancer, moved to another address) a moment ago, and MetalLB may not have processed that
// yet. Granted to another Service at once, the address would reach MetalLB while its allocator
// still counts it held by the old one, and MetalLB would record AllocationFailed on a Service we
// admitted (ADR 0016). Until its rest is over, a resting address goes to no other Service: the
// allocator skips it and an explicit request for it is refused. The Service that released it may
// have it back: MetalLB keys its allocations by namespace/name, so to MetalLB that is the same
// Service keeping its address. When a rest ends is the caller's (the cluster state expires
// entries on its timer): nothing here reads a clock. Explicit requests are refused for the first
// part of a rest only, so that a grant one replica makes when its rest ends is not refused by
// another that saw the release a little later, or whose timer runs a little later.

import type { Family, IPAddress } from "./address.ts";

/** Who released a resting address, and until when (ms since the epoch) it is refused to others. */
interface Release {
  readonly ref: string;
  readonly refusedUntil: number;
}

/** When a rest's two parts end, ms since the epoch; `refusals` comes no later than `rest`. */
interface RestEnds {
  /** Other Services' explicit requests for the address are refused until then. */
  readonly refusals: number;
  /** Allocations skip the address until then. */
  readonly rest: number;
}

interface Entry extends Release {
  readonly until: number;
  refusing: boolean;
}

export class RestingAddresses {
  /** By address, per family, in order of release (a Map keeps insertion order). */
  readonly #entries: Record<Family, Map<bigint, Entry>> = { IPv4: new Map(), IPv6: new Map() };

  /** The Service `ref` released `address`; a second release starts its rest again. */
  rest(address: IPAddress, ref: string, ends: RestEnds): void {
    const entries = this.#entries[address.family];
    // Deleted first, so that the Map's order stays the order of the latest releases.
    entries.delete(address.value);
    entries.set(address.value, {
      ref,
      refusedUntil: ends.refusals,
      until: ends.rest,
      refusing: true,
    });
  }

  /** The release that refuses other Services' explicit requests for `address` now, if any. */
  refusalOf(family: Family, value: bigint): Release | undefined {
    const entry = this.#entries[family].get(value);
    return entry?.refusing === true ? entry : undefined;
  }

  /**
   * Whether allocations must skip a resting address for the Service `ref`: for every Service but
   * the one that released it, and for any when `ref` is undefined (an address lent ahead, for a
   * Service not known yet).
   */
  keepsFrom(family: Family, value: bigint, ref: string | undefined): boolean {
    const entry = this.#entries[family].get(value);
    return entry !== undefined && entry.ref !== ref;
  }

  /** Ends the refusals and the rests due by `now`. */
  expire(now: number): void {
    for (const entries of Object.values(this.#entries)) {
      for (const [value, entry] of entries) {
        if (entry.refusedUntil > now) break;
        entry.refusing = false;
        if (entry.until <= now) entries.delete(value);
      }
    }
  }

  get size(): number {
    return this.#entries.IPv4.size + this.#entries.IPv6.size;
  }
}
