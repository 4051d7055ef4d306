// Who holds which address in the cluster: every Service from the watch, plus the in-flight holds
// of this process. Pure: the adapter feeds it watch events and relists.
//
// A relist builds a new index in one pass, moves the live holds onto it, and only then swaps it
// in; all of it synchronously, so no admission ever sees an index in which an existing or held
// address looks free.

import { type Grant, HoldBook } from "../admission/holds.ts";
import { holderOf, holdingsOf, type Policy } from "../ipam/decide.ts";
import { type ServiceObject, serviceRef } from "../ipam/service.ts";
import { UsageIndex } from "../ipam/usage.ts";

export class ServiceUsage {
  readonly #policy: Policy;
  readonly #holds: HoldBook;
  #index = new UsageIndex();

  constructor(policy: Policy, holdTtlMs: number) {
    this.#policy = policy;
    this.#holds = new HoldBook(this.#index, holdTtlMs);
  }

  /** The index to decide on now (a relist replaces it: read it per decision). */
  get index(): UsageIndex {
    return this.#index;
  }

  /** In-flight holds not yet released or expired. */
  get holds(): number {
    return this.#holds.size;
  }

  /** A Service was added or changed: it holds what it requests and what status says. */
  upsert(service: ServiceObject): void {
    const ref = serviceRef(service);
    const addresses = holdingsOf(service, this.#policy);
    if (addresses.length === 0) this.#index.delete(ref);
    else this.#index.set(ref, holderOf(service, ref), addresses);
    // The Service is visible now: it holds its own addresses, the grant's hold is done.
    this.#holds.release(ref);
  }

  remove(service: ServiceObject): void {
    this.#index.delete(serviceRef(service));
  }

  /** Every Service after a (re)list. */
  replaceAll(services: Iterable<ServiceObject>): void {
    const refs: string[] = [];
    const next = UsageIndex.from(
      (function* (policy) {
        for (const service of services) {
          const ref = serviceRef(service);
          refs.push(ref);
          const addresses = holdingsOf(service, policy);
          if (addresses.length > 0) yield [ref, holderOf(service, ref), addresses] as const;
        }
      })(this.#policy),
    );
    this.#holds.attach(next);
    for (const ref of refs) this.#holds.release(ref);
    this.#index = next;
  }

  hold(grant: Grant, now: number): void {
    this.#holds.hold(grant, now);
  }

  /** Drops holds older than the TTL; returns how many. */
  expire(now: number): number {
    return this.#holds.expire(now);
  }
}
