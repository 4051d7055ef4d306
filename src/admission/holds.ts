import { type IPAddress, sameAddressList } from "../ipam/address.ts";
import type { Holder, UsageIndex } from "../ipam/usage.ts";

/** An address granted by an admission, not yet visible as a Service in the watch cache. */
export interface Grant {
  readonly ref: string;
  readonly holder: Holder;
  readonly addresses: readonly IPAddress[];
  /** The pool the addresses come from, when the decision named one (recorded on claims). */
  readonly pool?: string;
  /** An UPDATE of a Service that already holds these addresses (its claims stand). */
  readonly kept?: boolean;
  /** The mutation's pick of the next free addresses, not addresses the Service asked for. */
  readonly assigned?: boolean;
  /** Whose the addresses were, when retained or reserved (the decision's origin; Events name it). */
  readonly origin?: string;
}

/** The usage owner under which a grant's hold is recorded. */
export const holdKey = (ref: string): string => `hold:${ref}`;

/**
 * In-flight grants. Between the admission of an address and the moment its Service reaches the
 * watch cache, the address must look used to every other request; a hold does that inside the
 * usage index. It ends when the Service shows up (release) or, for admissions that never
 * persisted (a later webhook refused, the client gave up), when it expires.
 */
export class HoldBook {
  #usage: UsageIndex;
  readonly #ttlMs: number;
  readonly #holds = new Map<string, { readonly grant: Grant; readonly expiry: number }>();

  constructor(usage: UsageIndex, ttlMs: number) {
    this.#usage = usage;
    this.#ttlMs = ttlMs;
  }

  /**
   * Holds a grant until its Service shows up or the hold expires. The same addresses granted to
   * the same Service again (a retried review) keep the first grant's expiry: repeats do not
   * keep an address from a Service that never appears.
   */
  hold(grant: Grant, now: number): void {
    const previous = this.#holds.get(grant.ref);
    const again =
      previous !== undefined && sameAddressList(previous.grant.addresses, grant.addresses);
    this.#usage.set(holdKey(grant.ref), grant.holder, grant.addresses);
    this.#holds.set(grant.ref, { grant, expiry: again ? previous.expiry : now + this.#ttlMs });
  }

  /** The grant `ref` holds, while it holds one. */
  grantOf(ref: string): Grant | undefined {
    return this.#holds.get(ref)?.grant;
  }

  release(ref: string): void {
    if (!this.#holds.delete(ref)) return;
    this.#usage.delete(holdKey(ref));
  }

  /** Drops expired holds; returns how many. */
  expire(now: number): number {
    let dropped = 0;
    for (const [ref, { expiry }] of this.#holds) {
      if (expiry > now) continue;
      this.release(ref);
      dropped += 1;
    }
    return dropped;
  }

  /** Moves every live hold onto a rebuilt index (after a relist), so no grant is forgotten. */
  attach(usage: UsageIndex): void {
    this.#usage = usage;
    for (const { grant } of this.#holds.values())
      usage.set(holdKey(grant.ref), grant.holder, grant.addresses);
  }

  get size(): number {
    return this.#holds.size;
  }
}
