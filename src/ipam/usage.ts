import { type Family, type IPAddress, sameAddress, sameAddressList } from "./address.ts";
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

/**
 * MetalLB's sharing rule between two holders of one address: the same non-empty sharing key, no
 * `(protocol, port)` pair in common, and the same backend key. (`decide` applies the same rule
 * and explains which part fails.)
 */
export function mayShare(a: Holder, b: Holder): boolean {
  return (
    a.sharingKey !== "" &&
    a.sharingKey === b.sharingKey &&
    !a.ports.some((port) => b.ports.includes(port)) &&
    a.backendKey === b.backendKey
  );
}

interface Entry {
  readonly holder: Holder;
  readonly addresses: readonly IPAddress[];
}

/** Whether setting `holder` and `addresses` would leave `entry` exactly as it is. */
function sameEntry(entry: Entry, holder: Holder, addresses: readonly IPAddress[]): boolean {
  const kept = entry.holder;
  return (
    kept.ref === holder.ref &&
    kept.sharingKey === holder.sharingKey &&
    kept.backendKey === holder.backendKey &&
    sameItems(kept.ports, holder.ports, (a, b) => a === b) &&
    sameAddressList(entry.addresses, addresses)
  );
}

function sameItems<T>(a: readonly T[], b: readonly T[], equal: (x: T, y: T) => boolean): boolean {
  return a.length === b.length && a.every((item, i) => equal(item, b[i] as T));
}

type Claim = { readonly owner: string; readonly holder: Holder };

/**
 * Which owners hold which addresses. An owner is a Service, or an in-flight grant the admission
 * layer tracks under its own key; setting an owner replaces whatever it held before, so watch
 * events and re-admissions are idempotent.
 */
export class UsageIndex {
  readonly #owners = new Map<string, Entry>();
  /** Owners by non-empty sharing key: auto-assign looks for an address it may share. */
  readonly #bySharingKey = new Map<string, Set<string>>();
  /** Owners by the ref of their holder: an admission finds what was granted to its Service before. */
  readonly #byRef = new Map<string, Set<string>>();
  /** Owners by the namespace of their holder: quotas count what a namespace holds. */
  readonly #byNamespace = new Map<string, Set<string>>();
  // Keyed by the BigInt itself: Map compares BigInts by value, and hashing one is far cheaper
  // than building a string key (an IPv6 address costs ~0.5 µs to stringify).
  readonly #claims: Record<Family, Map<bigint, Claim[]>> = { IPv4: new Map(), IPv6: new Map() };
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
    // Re-setting an unchanged owner is the common case (watch updates, repeated grants): it
    // changes nothing and allocates nothing. Otherwise the entry is replaced in place: what the
    // owner keeps is never deleted and re-added. On maps of thousands of entries V8 makes that
    // delete+set churn cost tens of microseconds.
    const previous = this.#owners.get(owner);
    if (previous !== undefined && sameEntry(previous, holder, addresses)) return;
    const emptied = previous === undefined ? [] : this.#unclaim(owner, previous.addresses);
    if (previous !== undefined) this.#forgetHolder(owner, previous.holder);
    this.#remember(owner, holder, addresses);
    for (const address of addresses) this.#used[address.family].add(address.value);
    this.#dropUnclaimed(emptied);
  }

  delete(owner: string): void {
    const entry = this.#owners.get(owner);
    if (entry === undefined) return;
    this.#owners.delete(owner);
    this.#forgetHolder(owner, entry.holder);
    this.#dropUnclaimed(this.#unclaim(owner, entry.addresses));
  }

  #forgetHolder(owner: string, holder: Holder): void {
    forget(this.#bySharingKey, holder.sharingKey, owner);
    forget(this.#byRef, holder.ref, owner);
    forget(this.#byNamespace, namespaceOf(holder.ref), owner);
  }

  /**
   * The distinct addresses held in one namespace (by its Services, their in-flight grants and
   * claims), except what is held for the Service `except`, as `family value` keys.
   */
  heldInNamespace(namespace: string, except: string): Map<string, IPAddress> {
    const held = new Map<string, IPAddress>();
    for (const owner of this.#byNamespace.get(namespace) ?? []) {
      const entry = this.#owners.get(owner);
      if (entry === undefined || entry.holder.ref === except) continue;
      for (const address of entry.addresses) held.set(addressKey(address), address);
    }
    return held;
  }

  /** Whether owners other than the Service `ref` itself hold for it (see grantedBefore). */
  hasGrantsFor(ref: string): boolean {
    const owners = this.#byRef.get(ref);
    return owners !== undefined && !(owners.size === 1 && owners.has(ref));
  }

  /**
   * What other owners hold for the Service `ref` (an earlier grant's hold or claim, before the
   * Service itself exists), of one family, ascending: its own entry is not among them.
   */
  grantedBefore(ref: string, family: Family): readonly bigint[] {
    const found: bigint[] = [];
    for (const owner of this.#byRef.get(ref) ?? []) {
      if (owner === ref) continue;
      for (const address of this.#owners.get(owner)?.addresses ?? []) {
        if (address.family === family && !found.includes(address.value)) found.push(address.value);
      }
    }
    return found.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  /**
   * The addresses of one family, ascending, that `holder` may share: held under its sharing key,
   * and by no one with whom MetalLB's rule (mayShare) forbids it. None without a sharing key.
   */
  shareableWith(holder: Holder, family: Family): readonly bigint[] {
    const found = new Set<bigint>();
    for (const owner of this.#bySharingKey.get(holder.sharingKey) ?? []) {
      for (const address of this.#owners.get(owner)?.addresses ?? []) {
        if (address.family !== family || found.has(address.value)) continue;
        const others = this.holdersOf(family, address.value);
        if (others.every((other) => other.ref === holder.ref || mayShare(holder, other))) {
          found.add(address.value);
        }
      }
    }
    return [...found].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  /** Removes the owner's claims; returns the addresses left with an empty claim list. */
  #unclaim(owner: string, addresses: readonly IPAddress[]): IPAddress[] {
    const emptied: IPAddress[] = [];
    for (const address of addresses) {
      const claims = this.#claims[address.family].get(address.value);
      if (claims === undefined) continue;
      const index = claims.findIndex((claim) => claim.owner === owner);
      if (index >= 0) claims.splice(index, 1);
      if (claims.length === 0) emptied.push(address);
    }
    return emptied;
  }

  /** Frees addresses whose claim list is (still) empty. */
  #dropUnclaimed(addresses: readonly IPAddress[]): void {
    for (const { family, value } of addresses) {
      if (this.#claims[family].get(value)?.length !== 0) continue;
      this.#claims[family].delete(value);
      this.#used[family].delete(value);
    }
  }

  has(owner: string): boolean {
    return this.#owners.has(owner);
  }

  /** What one owner holds (nothing when it is unknown). */
  addressesOf(owner: string): readonly IPAddress[] {
    return this.#owners.get(owner)?.addresses ?? [];
  }

  /** Every owner with its holder and addresses, in insertion order. */
  *entries(): IterableIterator<
    readonly [owner: string, holder: Holder, addresses: readonly IPAddress[]]
  > {
    for (const [owner, { holder, addresses }] of this.#owners) {
      yield [owner, holder, addresses] as const;
    }
  }

  holdersOf(family: Family, value: bigint): readonly Holder[] {
    return (this.#claims[family].get(value) ?? []).map((claim) => claim.holder);
  }

  /** The set of used addresses of one family, for the allocator's queries. */
  used(family: Family): SortedBigIntSet {
    return this.#used[family];
  }

  #remember(owner: string, given: Holder, addresses: readonly IPAddress[]): void {
    const { holder, addresses: unique } = retained(given, addresses);
    this.#owners.set(owner, { holder, addresses: unique });
    if (holder.sharingKey !== "") remember(this.#bySharingKey, holder.sharingKey, owner);
    remember(this.#byRef, holder.ref, owner);
    remember(this.#byNamespace, namespaceOf(holder.ref), owner);
    for (const { family, value } of unique) {
      const claims = this.#claims[family].get(value);
      if (claims === undefined) this.#claims[family].set(value, [{ owner, holder }]);
      else claims.push({ owner, holder });
    }
  }
}

/** The namespace of a `namespace/name` ref. */
export function namespaceOf(ref: string): string {
  const slash = ref.indexOf("/");
  return slash < 0 ? "" : ref.slice(0, slash);
}

/** A key that tells addresses apart across families, for sets of addresses. */
export function addressKey(address: IPAddress): string {
  return `${address.family} ${address.value}`;
}

function remember(owners: Map<string, Set<string>>, key: string, owner: string): void {
  const known = owners.get(key);
  if (known === undefined) owners.set(key, new Set([owner]));
  else known.add(owner);
}

function forget(owners: Map<string, Set<string>>, key: string, owner: string): void {
  const known = owners.get(key);
  known?.delete(owner);
  if (known?.size === 0) owners.delete(key);
}

/**
 * Copies, made here, of a holder and its (distinct) addresses, for a store that keeps them as
 * long as their owner lives (this index; the claims of cluster state). V8 decides per allocation
 * site whether to allocate straight into the old generation: had the stores kept the holders and
 * addresses that every review builds (in holderOf, parseAddress), the thousands kept at the
 * initial sync would make V8 do so for those sites, and each review would leave its throwaway
 * ones as old-generation garbage (hundreds of bytes per review, longer scavenges, more full
 * collections; ADR 0008).
 */
export function retained(
  holder: Holder,
  addresses: readonly IPAddress[],
): { readonly holder: Holder; readonly addresses: readonly IPAddress[] } {
  const unique: IPAddress[] = [];
  for (const address of addresses) {
    if (!unique.some((kept) => sameAddress(kept, address)))
      unique.push({ family: address.family, value: address.value });
  }
  return {
    holder: {
      ref: holder.ref,
      sharingKey: holder.sharingKey,
      ports: [...holder.ports],
      backendKey: holder.backendKey,
    },
    addresses: unique,
  };
}
