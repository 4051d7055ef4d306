import type { Family, IPAddress } from "./address.ts";
import { SortedBigIntSet } from "./sorted-set.ts";

/** One claim on an address: who holds it, and what MetalLB's sharing rules need to know. */
export interface Holder {
  /** `namespace/name` of the Service. */
  readonly ref: string;
  /** Empty when the Service does not allow sharing. */
  readonly sharingKey: string;
  readonly ports: readonly string[];
  readonly backendKey: string;
}

interface Entry {
  readonly holder: Holder;
  readonly addresses: readonly IPAddress[];
}

const addressKey = (family: Family, value: bigint) => `${family}:${value.toString(16)}`;

/**
 * Which owners hold which addresses. An owner is a Service, or an in-flight grant the admission
 * layer tracks under its own key; setting an owner replaces whatever it held before, so watch
 * events and re-admissions are idempotent.
 */
export class UsageIndex {
  readonly #owners = new Map<string, Entry>();
  readonly #holdersByAddress = new Map<
    string,
    { readonly owner: string; readonly holder: Holder }[]
  >();
  readonly #used: Record<Family, SortedBigIntSet> = {
    IPv4: new SortedBigIntSet(),
    IPv6: new SortedBigIntSet(),
  };

  /** Builds an index in one pass (sorting once), for initial syncs of many Services. */
  static from(
    entries: Iterable<readonly [owner: string, holder: Holder, addresses: readonly IPAddress[]]>,
  ): UsageIndex {
    const index = new UsageIndex();
    const values: Record<Family, bigint[]> = { IPv4: [], IPv6: [] };
    for (const [owner, holder, addresses] of entries) {
      index.#remember(owner, holder, addresses);
      for (const address of addresses) values[address.family].push(address.value);
    }
    index.#used.IPv4 = SortedBigIntSet.from(values.IPv4);
    index.#used.IPv6 = SortedBigIntSet.from(values.IPv6);
    return index;
  }

  set(owner: string, holder: Holder, addresses: readonly IPAddress[]): void {
    this.delete(owner);
    this.#remember(owner, holder, addresses);
    for (const address of addresses) this.#used[address.family].add(address.value);
  }

  delete(owner: string): void {
    const entry = this.#owners.get(owner);
    if (entry === undefined) return;
    this.#owners.delete(owner);
    for (const { family, value } of entry.addresses) {
      const key = addressKey(family, value);
      const remaining = (this.#holdersByAddress.get(key) ?? []).filter(
        (claim) => claim.owner !== owner,
      );
      if (remaining.length > 0) {
        this.#holdersByAddress.set(key, remaining);
      } else {
        this.#holdersByAddress.delete(key);
        this.#used[family].delete(value);
      }
    }
  }

  has(owner: string): boolean {
    return this.#owners.has(owner);
  }

  holdersOf(family: Family, value: bigint): readonly Holder[] {
    return (this.#holdersByAddress.get(addressKey(family, value)) ?? []).map(
      (claim) => claim.holder,
    );
  }

  /** The set of used addresses of one family, for the allocator's queries. */
  used(family: Family): SortedBigIntSet {
    return this.#used[family];
  }

  #remember(owner: string, holder: Holder, addresses: readonly IPAddress[]): void {
    const unique = addresses.filter(
      (address, i) =>
        addresses.findIndex(
          (other) => other.family === address.family && other.value === address.value,
        ) === i,
    );
    this.#owners.set(owner, { holder, addresses: unique });
    for (const { family, value } of unique) {
      const key = addressKey(family, value);
      const claims = this.#holdersByAddress.get(key);
      if (claims === undefined) this.#holdersByAddress.set(key, [{ owner, holder }]);
      else claims.push({ owner, holder });
    }
  }
}
