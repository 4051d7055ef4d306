// The AllocatorPort of a replica in a cluster with an elected allocator (ADR 0012): grants here
// while this replica holds a fresh allocator Lease, forwards them to the holder otherwise. The
// holder's grants are claimed (ADR 0005's Leases) a little after the answer, off the critical
// path: the claims keep `pools` and a hand-over's relist seeing every grant.

import { performance } from "node:perf_hooks";
import type { Logger } from "pino";
import type { Webhook } from "../../admission/admit.ts";
import type { Grant } from "../../admission/holds.ts";
import type {
  AllocatorPort,
  ClaimPort,
  GrantRoute,
  RemoteDecision,
} from "../../admission/ports.ts";
import type { AdmissionRequest } from "../../admission/review.ts";
import { formatAddress } from "../../ipam/address.ts";
import type { AllocatorElection } from "./election.ts";

/** Sends a review to the allocator at `endpoint`; never throws (failures are `failed`). */
export type Forwarder = (
  endpoint: string,
  webhook: Webhook,
  request: AdmissionRequest,
) => Promise<RemoteDecision>;

/** Time for a claim written after the answer (the repair adopts a Service whose claim failed). */
const CLAIM_TIMEOUT_MS = 30_000;
/**
 * How long after its answer a grant is claimed, if its Service has not appeared by then. Written
 * at once, the claim's Lease reached etcd together with the very create the answer admitted, and
 * made it slower (+3 ms at p50 for an auto-assign in bench:apply). By now that create is usually
 * done, and its Service holds the address itself: no claim is written for it here (the repair
 * adopts it). The mutating and validating calls of one create grant twice, claimed once.
 */
export const CLAIM_DELAY_MS = 250;

const LOCAL: GrantRoute = { kind: "local" };
/**
 * How long a relayed grant stands for the same Service's next review on this replica: the
 * validating call follows the mutating one within milliseconds, and another allocator could
 * grant 7 s after the answer at the earliest.
 */
const RELAYED_GRANT_MS = 1000;

export class ElectedAllocator implements AllocatorPort {
  readonly #election: AllocatorElection;
  readonly #forward: Forwarder;
  readonly #claims: ClaimPort;
  readonly #held: (grant: Grant) => boolean;
  readonly #logger: Logger;
  /** The allocator's answers this replica relayed lately, by Service: what it granted, when. */
  readonly #relayed = new Map<
    string,
    { readonly addresses: string; readonly allocator: string; readonly at: number }
  >();
  readonly #now: () => number;
  /** Grants answered and not yet claimed, by Service: the latest one of each. */
  readonly #unclaimed = new Map<string, Grant>();
  #timer: NodeJS.Timeout | undefined;

  constructor(options: {
    readonly election: AllocatorElection;
    readonly forward: Forwarder;
    readonly claims: ClaimPort;
    /** Whether a grant is still held: its Service has not appeared (nor its hold expired). */
    readonly held: (grant: Grant) => boolean;
    readonly logger: Logger;
    /** A monotonic clock in ms; performance.now by default. */
    readonly now?: () => number;
  }) {
    this.#election = options.election;
    this.#forward = options.forward;
    this.#claims = options.claims;
    this.#held = options.held;
    this.#logger = options.logger;
    this.#now = options.now ?? (() => performance.now());
  }

  allocating(): boolean {
    return this.#election.leading();
  }

  route(grant: Grant, forwarded: boolean): GrantRoute {
    const election = this.#election;
    if (election.leading()) return LOCAL;
    if (forwarded) {
      return { kind: "unavailable", why: `${election.identity} is not the allocator now` };
    }
    const relayed = this.#relayedJustNow(grant);
    if (relayed !== undefined) return { kind: "relayed", allocator: relayed };
    const holder = election.holder();
    if (holder === undefined) return { kind: "unavailable", why: election.unavailable() };
    return {
      kind: "forward",
      forward: (webhook, request) =>
        this.#forward(holder.endpoint, webhook, request).then((remote) => {
          if (remote.kind === "decided" && remote.granted.length > 0) {
            this.#relay(grant.ref, remote.granted, remote.allocator);
          }
          return remote;
        }),
    };
  }

  /**
   * The validating call of a create whose mutating call this replica forwarded a moment ago, and
   * the allocator granted exactly these addresses to exactly this Service then: it holds them
   * for it, and no other replica can grant anything sooner than 7 s after that answer (a lease
   * duration after the allocator's last renewal; ADR 0012), so the grant stands without asking
   * again. Answers the allocator's identity then: the grant stays the allocator's (this replica
   * neither holds nor claims it, and writes no Event for it).
   */
  #relayedJustNow(grant: Grant): string | undefined {
    const relayed = this.#relayed.get(grant.ref);
    return relayed !== undefined &&
      this.#now() - relayed.at < RELAYED_GRANT_MS &&
      relayed.addresses === grant.addresses.map(formatAddress).join(",")
      ? relayed.allocator
      : undefined;
  }

  #relay(ref: string, granted: readonly string[], allocator: string): void {
    const now = this.#now();
    for (const [key, { at }] of this.#relayed) {
      if (now - at >= RELAYED_GRANT_MS) this.#relayed.delete(key);
    }
    this.#relayed.set(ref, { addresses: granted.join(","), allocator, at: now });
  }

  granted(grant: Grant): void {
    this.#unclaimed.set(grant.ref, grant);
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => void this.flush(), CLAIM_DELAY_MS);
    this.#timer.unref();
  }

  /** Claims every grant answered so far and still held (at the delay, and when stopping). */
  async flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    // Fenced like the grants: a replica that is no longer the allocator (one that froze and woke)
    // writes nothing. Its grants that were persisted are Services now; the others never will be.
    const grants = this.#election.leading() ? [...this.#unclaimed.values()].filter(this.#held) : [];
    this.#unclaimed.clear();
    // A claim lost or failed here is logged by the claimer; a Service that persists without
    // one is adopted by the repair.
    await Promise.all(
      grants.map((grant) =>
        this.#claims.claim(grant, AbortSignal.timeout(CLAIM_TIMEOUT_MS)).catch((error: unknown) => {
          this.#logger.warn({ service: grant.ref, err: error }, "claim after the answer failed");
        }),
      ),
    );
  }
}
