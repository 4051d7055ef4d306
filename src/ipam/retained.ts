// Addresses retained for the Service that gave them up (design.md, "Address lifecycle"): a
// re-created Service of the same namespace and name gets its address back, so a Helm reinstall
// or an Argo CD replace keeps the DNS records and firewall rules that point at it. Other
// Services' allocations pass over a retained address while their pool has another free one,
// and take the one retained longest when it has not. Where retention is stored (the claim
// Leases) and when it ends are the caller's; nothing here reads a clock.

import type { Family, IPAddress } from "./address.ts";
import { SortedBigIntSet } from "./sorted-set.ts";

/** For whom an address is retained, since when and until when (ms since the epoch). */
export interface Retention {
  /** `namespace/name` of the Service that gave the address up. */
  readonly ref: string;
  readonly since: number;
  readonly until: number;
}

export class RetainedAddresses {
  readonly #entries: Record<Family, Map<bigint, Retention>> = { IPv4: new Map(), IPv6: new Map() };
  readonly #values: Record<Family, SortedBigIntSet> = {
    IPv4: new SortedBigIntSet(),
    IPv6: new SortedBigIntSet(),
  };
  /** What is retained for each Service. */
  readonly #byRef = new Map<string, IPAddress[]>();

  /** Retains `address` for `retention.ref`, in place of whatever retention it had. */
  retain(address: IPAddress, retention: Retention): void {
    this.drop(address);
    this.#entries[address.family].set(address.value, retention);
    this.#values[address.family].add(address.value);
    const kept = this.#byRef.get(retention.ref);
    const own = { family: address.family, value: address.value };
    if (kept === undefined) this.#byRef.set(retention.ref, [own]);
    else kept.push(own);
  }

  /** Ends the retention of `address` (given back, taken by another Service, or expired). */
  drop(address: IPAddress): void {
    const entries = this.#entries[address.family];
    const retention = entries.get(address.value);
    if (retention === undefined) return;
    entries.delete(address.value);
    this.#values[address.family].delete(address.value);
    const kept = (this.#byRef.get(retention.ref) ?? []).filter(
      (each) => each.family !== address.family || each.value !== address.value,
    );
    if (kept.length === 0) this.#byRef.delete(retention.ref);
    else this.#byRef.set(retention.ref, kept);
  }

  retentionOf(family: Family, value: bigint): Retention | undefined {
    return this.#entries[family].get(value);
  }

  /** The addresses of one family retained for the Service `ref`, oldest retention first. */
  retainedFor(ref: string, family: Family): readonly IPAddress[] {
    return (this.#byRef.get(ref) ?? [])
      .filter((address) => address.family === family)
      .sort(
        (a, b) =>
          (this.retentionOf(a.family, a.value)?.since ?? 0) -
          (this.retentionOf(b.family, b.value)?.since ?? 0),
      );
  }

  /** Every retained value of one family, for the allocator to pass over. */
  values(family: Family): SortedBigIntSet {
    return this.#values[family];
  }

  /**
   * The retained address of one family that `accept` takes and that has been retained longest,
   * for an allocation that found nothing else free.
   */
  longestRetained(
    family: Family,
    accept: (value: bigint) => boolean,
  ): { readonly value: bigint; readonly retention: Retention } | undefined {
    let found: { value: bigint; retention: Retention } | undefined;
    for (const [value, retention] of this.#entries[family]) {
      if (found !== undefined && retention.since >= found.retention.since) continue;
      if (accept(value)) found = { value, retention };
    }
    return found;
  }

  /** Every retention, for reports. */
  *entries(): IterableIterator<readonly [address: IPAddress, retention: Retention]> {
    for (const family of ["IPv4", "IPv6"] as const) {
      for (const [value, retention] of this.#entries[family]) {
        yield [{ family, value }, retention] as const;
      }
    }
  }

  get size(): number {
    return this.#entries.IPv4.size + this.#entries.IPv6.size;
  }
}
