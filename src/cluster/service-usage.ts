// Who holds which address in the cluster: every Service from the watch (its load-balancer
// addresses, and apart from them its externalIPs), the in-flight holds of this process, and the
// address claims (Leases) of every replica. Pure: the adapter feeds it watch events and relists.
//
// A relist builds a new index in one pass, moves the live holds onto it, and only then swaps it
// in; all of it synchronously, so no admission ever sees an index in which an existing or held
// address looks free.

import { type Grant, HoldBook, holdKey } from "../admission/holds.ts";
import { type IPAddress, sameAddress } from "../ipam/address.ts";
import { forgetService, type Policy, recordService, usageEntriesOf } from "../ipam/decide.ts";
import { RestingAddresses } from "../ipam/resting.ts";
import { RetainedAddresses, type Retention } from "../ipam/retained.ts";
import { type ServiceObject, serviceRef } from "../ipam/service.ts";
import { type Holder, retained, UsageIndex } from "../ipam/usage.ts";

/**
 * How long a released address rests (ADR 0016): many times MetalLB's controller takes over one
 * Service with its API client throttled, so that unless a burst has put MetalLB far behind, it
 * has processed the release before it handles a Service granted the address.
 */
export const RELEASE_REST_MS = 15_000;
/**
 * For how much of the rest other Services' explicit requests are refused: 5 s less, more than
 * the expiry timer's period (2 s) plus the skew between two replicas' watches, so that a grant
 * one replica makes as its rest ends is never refused by another's validating call.
 */
export const RELEASE_REFUSAL_MS = 10_000;

interface ClaimEntry {
  readonly holder: Holder;
  readonly addresses: readonly IPAddress[];
  /** Set for a claim seen by this process only (not yet from the watch): when it is dropped. */
  readonly expiry?: number;
}

export class ServiceUsage {
  readonly #policy: Policy;
  readonly #holds: HoldBook;
  readonly #holdTtlMs: number;
  /** Claims by usage owner (`claim:<lease>`), re-attached to every rebuilt index. */
  readonly #claims = new Map<string, ClaimEntry>();
  #index = new UsageIndex();
  /** Addresses Services gave up lately (see resting.ts). */
  readonly resting = new RestingAddresses();
  /** Addresses retained for the Services that gave them up (from the claims; retained.ts). */
  readonly retained = new RetainedAddresses();

  constructor(policy: Policy, holdTtlMs: number) {
    this.#policy = policy;
    this.#holdTtlMs = holdTtlMs;
    this.#holds = new HoldBook(this.#index, holdTtlMs);
  }

  /** The index to decide on now (a relist replaces it: read it per decision). */
  get index(): UsageIndex {
    return this.#index;
  }

  /** Whether the Service `ref`, or this process's hold of an admission for it, has `address`. */
  isHeldBy(ref: string, address: IPAddress): boolean {
    const has = (owner: string) =>
      this.#index.addressesOf(owner).some((held) => sameAddress(held, address));
    return has(ref) || has(holdKey(ref));
  }

  /** The grant this process holds for the Service `ref`, until the Service shows up. */
  heldGrant(ref: string): Grant | undefined {
    return this.#holds.grantOf(ref);
  }

  /** In-flight holds not yet released or expired. */
  get holds(): number {
    return this.#holds.size;
  }

  /**
   * A Service was added or changed at `now`: it holds what it requests and what status says, and
   * its externalIPs. Returns the load-balancer addresses it held before and holds no longer
   * (those are claimed; externalIPs never are); they rest from `now`.
   */
  upsert(service: ServiceObject, now: number): readonly IPAddress[] {
    const ref = serviceRef(service);
    const before = this.#index.addressesOf(ref);
    recordService(this.#index, service, this.#policy, ref);
    const addresses = this.#index.addressesOf(ref);
    // The Service is visible now: it holds its own addresses, the grant's hold is done.
    this.#holds.release(ref);
    return this.#rest(
      ref,
      before.filter((old) => !addresses.some((kept) => sameAddress(kept, old))),
      now,
    );
  }

  /** A Service is gone at `now`; returns the addresses it held, which rest from `now`. */
  remove(service: ServiceObject, now: number): readonly IPAddress[] {
    const ref = serviceRef(service);
    const before = this.#index.addressesOf(ref);
    forgetService(this.#index, ref);
    return this.#rest(ref, before, now);
  }

  #rest(ref: string, released: readonly IPAddress[], since: number): readonly IPAddress[] {
    const ends = { refusals: since + RELEASE_REFUSAL_MS, rest: since + RELEASE_REST_MS };
    for (const address of released) this.resting.rest(address, ref, ends);
    return released;
  }

  /**
   * Every Service after a (re)list at `now`. An address in use before and free after was given up
   * by a Service while the watch was away: it rests from `now`, as it would have from its event,
   * and is returned by Service, for its claim to retain it.
   */
  replaceAll(services: Iterable<ServiceObject>, now: number): Map<string, IPAddress[]> {
    const refs: string[] = [];
    const next = UsageIndex.from(
      (function* (policy) {
        for (const service of services) {
          const ref = serviceRef(service);
          refs.push(ref);
          yield* usageEntriesOf(service, policy, ref);
        }
      })(this.#policy),
    );
    this.#holds.attach(next);
    for (const ref of refs) this.#holds.release(ref);
    for (const [owner, { holder, addresses }] of this.#claims) next.set(owner, holder, addresses);
    const previous = this.#index;
    this.#index = next;
    const released = new Map<string, IPAddress[]>();
    for (const [owner, holder, addresses] of previous.entries()) {
      const gone = addresses.filter((address) => !next.used(address.family).has(address.value));
      this.#rest(holder.ref, gone, now);
      if (owner === holder.ref && gone.length > 0) released.set(owner, gone);
    }
    return released;
  }

  hold(grant: Grant, now: number): void {
    this.#holds.hold(grant, now);
  }

  /** Ends the hold of a grant that was not granted after all (its claim was lost). */
  release(ref: string): void {
    this.#holds.release(ref);
  }

  /** A claim from the claims watch (added or changed). */
  putClaim(owner: string, holder: Holder, addresses: readonly IPAddress[]): void {
    this.#claims.set(owner, retained(holder, addresses));
    this.#index.set(owner, holder, addresses);
  }

  deleteClaim(owner: string): void {
    if (!this.#claims.delete(owner)) return;
    this.#index.delete(owner);
  }

  /**
   * A claim from the claims watch that retains its address for a Service that gave it up: no
   * holding (it leaves the index), a retention. Seen less than a rest after its release (by a
   * replica that starts, or relists, then), the address rests as it would have from the release.
   */
  putRetention(owner: string, address: IPAddress, retention: Retention, now: number): void {
    this.deleteClaim(owner);
    this.retained.retain(address, retention);
    const resting = this.resting.keepsFrom(address.family, address.value, undefined);
    if (!resting && now - retention.since < RELEASE_REST_MS) {
      this.#rest(retention.ref, [address], retention.since);
    }
  }

  /** Every retention after a (re)list of the claims watch, in place of those before. */
  replaceRetentions(
    retentions: Iterable<readonly [owner: string, address: IPAddress, retention: Retention]>,
    now: number,
  ): void {
    const before = [...this.retained.entries()].map(([address]) => address);
    for (const address of before) this.retained.drop(address);
    for (const [owner, address, retention] of retentions) {
      this.putRetention(owner, address, retention, now);
    }
  }

  /** Every claim after a (re)list of the claims watch. */
  replaceClaims(
    claims: Iterable<readonly [owner: string, holder: Holder, addresses: readonly IPAddress[]]>,
  ): void {
    const listed = new Map<string, ClaimEntry>();
    for (const [owner, holder, addresses] of claims) listed.set(owner, { holder, addresses });
    for (const owner of [...this.#claims.keys()]) {
      if (!listed.has(owner)) this.deleteClaim(owner);
    }
    for (const [owner, { holder, addresses }] of listed) this.putClaim(owner, holder, addresses);
  }

  /**
   * Another holder's claim met while claiming. Unless the watch already has it, it counts until
   * the hold TTL passes: the watch's own event (which may have come and gone already, if the
   * claim was deleted meanwhile) is what keeps it.
   */
  recordForeign(owner: string, holder: Holder, addresses: readonly IPAddress[], now: number): void {
    const known = this.#claims.get(owner);
    if (known !== undefined && known.expiry === undefined) return;
    this.#claims.set(owner, { ...retained(holder, addresses), expiry: now + this.#holdTtlMs });
    this.#index.set(owner, holder, addresses);
  }

  /**
   * Drops holds older than the TTL and unconfirmed foreign claims, and ends the refusals and rests
   * of released addresses and the retentions that are due (their Leases go at the repair's next
   * pass); returns how many holds.
   */
  expire(now: number): number {
    for (const [owner, { expiry }] of this.#claims) {
      if (expiry !== undefined && expiry <= now) this.deleteClaim(owner);
    }
    this.resting.expire(now);
    const ended = [...this.retained.entries()].filter(([, { until }]) => until <= now);
    for (const [address] of ended) this.retained.drop(address);
    return this.#holds.expire(now);
  }
}
