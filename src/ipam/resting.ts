// Addresses that rest after their release: a Service gave them up (deleted, no longer a
// LoadBalancer, moved to another address) a moment ago, and MetalLB may not have processed that
// yet. Granted to another Service at once, the address would reach MetalLB while its allocator
// still counts it held by the old one, and MetalLB would record AllocationFailed on a Service we
// admitted (ADR 0016). Until its rest is over, a resting address goes to no other Service: the
// allocator skips it and an explicit request for it is refused. The Service that released it may
// have it back: MetalLB keys its allocations by namespace/name, so to MetalLB that is the same
// Service keeping its address. When a rest ends is the caller's (the cluster state expires
// entries on its timer): nothing here reads a clock.

import type { Family, IPAddress } from "./address.ts";

/** Who released a resting address, and until when (ms since the epoch) it rests. */
export interface Release {
  readonly ref: string;
  readonly until: number;
}

export class RestingAddresses {
  /** By address, per family, in order of release (a Map keeps insertion order). */
  readonly #releases: Record<Family, Map<bigint, Release>> = { IPv4: new Map(), IPv6: new Map() };

  /** The Service `ref` released `address`; it rests until `until`. A second release starts again. */
  rest(address: IPAddress, ref: string, until: number): void {
    const releases = this.#releases[address.family];
    // Deleted first, so that the Map's order stays the order of the latest releases.
    releases.delete(address.value);
    releases.set(address.value, { ref, until });
  }

  /** The release `address` rests from, if it rests. */
  releaseOf(family: Family, value: bigint): Release | undefined {
    return this.#releases[family].get(value);
  }

  /**
   * Whether a resting address is kept from the Service `ref`: from every Service but the one that
   * released it, and from any when `ref` is undefined (an address lent ahead, for a Service not
   * known yet).
   */
  keepsFrom(family: Family, value: bigint, ref: string | undefined): boolean {
    const release = this.#releases[family].get(value);
    return release !== undefined && release.ref !== ref;
  }

  /** Ends every rest due by `now`. */
  expire(now: number): void {
    for (const releases of Object.values(this.#releases)) {
      for (const [value, { until }] of releases) {
        if (until > now) break;
        releases.delete(value);
      }
    }
  }

  get size(): number {
    return this.#releases.IPv4.size + this.#releases.IPv6.size;
  }
}
