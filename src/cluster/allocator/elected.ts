// The AllocatorPort of a replica in a cluster with an elected allocator (ADR 0012): grants here
// while this replica holds a fresh allocator Lease, forwards them to the holder otherwise. The
// holder's grants are claimed (ADR 0005's Leases) a little after the answer, off the critical
// path: the claims keep `pools` and a hand-over's relist seeing every grant. With loans (ADR
// 0015) the holder lends each follower the next free address of the pools it grants from, and
// a follower grants such an address itself.

import { performance } from "node:perf_hooks";
import type { Logger } from "pino";
import type { AdmissionOutcome, Webhook } from "../../admission/admit.ts";
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
import {
  type LedgerState,
  type LoanAnswer,
  LoanLedger,
  LoanPurse,
  type LoanRequest,
  type RecallAnswer,
} from "./loans.ts";

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

/** What a replica needs to lend and borrow addresses (ADR 0015). */
export interface LoanOptions {
  /** Where the allocator reaches this replica for a recall (`host:port`). */
  readonly endpoint: string;
  /** Sends an exchange to the allocator at `endpoint`; undefined when it failed. */
  readonly exchange: (endpoint: string, request: LoanRequest) => Promise<LoanAnswer | undefined>;
  /** Recalls addresses from the follower at `endpoint`; undefined when it did not answer. */
  readonly recall: (
    endpoint: string,
    addresses: readonly string[],
  ) => Promise<RecallAnswer | undefined>;
  /** Tells the follower at `endpoint` to exchange now (a lower address came free); no answer. */
  readonly nudge: (endpoint: string) => void;
  readonly state: LedgerState;
  /**
   * Whether a follower may grant this from a loan; else it forwards. A loan is decided on this
   * replica's view, which may lag the allocator's: a grant whose decision rests on more than the
   * lowest free address (a quota, a retention, a reservation) is the allocator's to serialize.
   */
  readonly borrows?: (grant: Grant) => boolean;
}

/** What a replica answers of loans on its peer port: exchanges, recalls and nudges. */
export type LoanDesk = Pick<ElectedAllocator, "exchange" | "recall" | "nudged">;

/** How often a follower renews its loans while it grants: well inside LOAN_MS. */
const LOAN_RENEW_MS = 300;
/** A follower that routed no grant for this long gives its loans back and stops renewing. */
const LOAN_IDLE_MS = 10_000;
/** How long after a grant its report waits at most for the create to be through (see below). */
const CREATE_SETTLE_MS = 250;
/** How long a grant made from a loan waits for its Service to appear, for its Event. */
const SPENT_GRANT_EVENT_MS = 60_000;
/** How often the allocator frees loans kept past their time. */
const LOAN_EXPIRE_MS = 2000;

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
  readonly #loans:
    | {
        readonly options: LoanOptions;
        readonly ledger: LoanLedger;
        readonly purse: LoanPurse;
        readonly expiry: NodeJS.Timeout;
      }
    | undefined;
  #exchanging = false;
  #exchangeAgain = false;
  #renewal: NodeJS.Timeout | undefined;
  #settling: NodeJS.Timeout | undefined;
  /** Services granted here from loans, or through a forward, whose create is not through yet. */
  readonly #awaited = new Set<string>();
  /** Grants made here from loans, by Service, until their Event is due or forgotten. */
  readonly #spentGrants = new Map<string, { readonly grant: Grant; readonly at: number }>();
  #lastGrantAt = Number.NEGATIVE_INFINITY;

  constructor(options: {
    readonly election: AllocatorElection;
    readonly forward: Forwarder;
    readonly claims: ClaimPort;
    /** Whether a grant is still held: its Service has not appeared (nor its hold expired). */
    readonly held: (grant: Grant) => boolean;
    readonly logger: Logger;
    /** A monotonic clock in ms; performance.now by default. */
    readonly now?: () => number;
    /** Lending and borrowing addresses ahead (ADR 0015); absent: every follower grant forwards. */
    readonly loans?: LoanOptions;
  }) {
    this.#election = options.election;
    this.#forward = options.forward;
    this.#claims = options.claims;
    this.#held = options.held;
    this.#logger = options.logger;
    const now = options.now ?? (() => performance.now());
    this.#now = now;
    const loans = options.loans;
    if (loans !== undefined) {
      const expiry = setInterval(() => this.#expireLoans(), LOAN_EXPIRE_MS);
      expiry.unref();
      this.#loans = {
        options: loans,
        ledger: new LoanLedger(loans.state, (grant) => this.granted(grant), now),
        purse: new LoanPurse(now),
        expiry,
      };
    }
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
    const loans = this.#loans;
    if (loans !== undefined) {
      this.#lastGrantAt = this.#now();
      if (loans.options.borrows?.(grant) !== false && loans.purse.spend(grant, holder.identity)) {
        // Lent by the allocator ahead: the grant is its, reported at the next exchange.
        const granted = grant.addresses.map(formatAddress);
        this.#relay(grant.ref, granted, holder.identity);
        this.#spentGrants.set(grant.ref, { grant, at: this.#now() });
        this.#exchangeAfterCreate(grant.ref);
        return { kind: "relayed", allocator: holder.identity };
      }
      // Only an auto-assign says the next free address of its pool will be wanted again.
      if (grant.assigned === true && grant.pool !== undefined) {
        for (const address of grant.addresses) loans.purse.want(grant.pool, address.family);
      }
    }
    return {
      kind: "forward",
      forward: (webhook, request) =>
        this.#forward(holder.endpoint, webhook, request).then((remote) => {
          if (remote.kind === "decided" && remote.granted.length > 0) {
            this.#relay(grant.ref, remote.granted, remote.allocator);
            if (loans !== undefined && grant.assigned === true)
              this.#exchangeAfterCreate(grant.ref);
          }
          return remote;
        }),
    };
  }

  /**
   * A refusal decided here as the allocator that ran into lent addresses (ADR 0015): recalls
   * them from their followers, and resolves once they answered (decide again then) or with why
   * one did not. Undefined when no loan is in the way.
   */
  recalling(outcome: AdmissionOutcome): Promise<string | undefined> | undefined {
    const loans = this.#loans;
    const refusal = outcome.decided;
    if (loans === undefined || loans.ledger.size === 0 || refusal?.kind !== "denied") return;
    if (!this.#election.leading()) return;
    const exhausted = refusal.reason === "PoolExhausted";
    if (!exhausted && refusal.reason !== "AddressInUse" && refusal.reason !== "SharingConflict") {
      return;
    }
    const lent = loans.ledger.lentFor(refusal.addresses, exhausted);
    if (lent.size === 0) return;
    return Promise.all(
      [...lent].map(([endpoint, addresses]) =>
        loans.options.recall(endpoint, addresses).then((answer) => {
          if (answer === undefined) {
            const lentTo = `lent to the replica at ${endpoint}`;
            return `${addresses.join(", ")} ${lentTo}, which did not answer a recall`;
          }
          loans.ledger.recalled(answer);
          return undefined;
        }),
      ),
    ).then((failures) => failures.find((failure) => failure !== undefined));
  }

  /**
   * The grant this replica made from a loan for the Service `ref`, lately: its Event is written
   * when the Service appears here, since the allocator may learn of the grant only after that.
   * The allocator writes it too when it held the grant by then; the Event's name, derived from
   * the Service's uid and addresses, makes it one.
   */
  lentGrant(ref: string): Grant | undefined {
    const now = this.#now();
    for (const [key, { at }] of this.#spentGrants) {
      if (now - at > SPENT_GRANT_EVENT_MS) this.#spentGrants.delete(key);
    }
    return this.#spentGrants.get(ref)?.grant;
  }

  /** A follower's exchange, as the allocator; undefined when this replica is not it now. */
  exchange(request: LoanRequest): LoanAnswer | undefined {
    const loans = this.#loans;
    if (loans === undefined || !this.#election.leading()) return undefined;
    return loans.ledger.exchange(request, this.#election.identity);
  }

  /** The allocator recalls addresses lent to this replica. */
  recall(addresses: readonly string[]): RecallAnswer {
    const purse = this.#loans?.purse;
    const follower = this.#election.identity;
    return purse === undefined
      ? { follower, returned: [], spent: [] }
      : purse.recall(addresses, follower);
  }

  /**
   * Addresses came free in this replica's state (a Service went or moved): as the allocator, it
   * tells each follower whose loan is no longer the lowest free address of its pool to exchange.
   * A nudge carries nothing: what is lent comes only in an exchange's answer, timed from the
   * follower's own asking.
   */
  released(): void {
    const loans = this.#loans;
    if (loans === undefined || loans.ledger.size === 0 || !this.#election.leading()) return;
    for (const endpoint of loans.ledger.outdated()) loans.options.nudge(endpoint);
  }

  /** The allocator says a lower address came free: exchange now, if this replica borrows. */
  nudged(): void {
    if (this.#loans?.purse.holding === true) this.#exchangeSoon();
  }

  /**
   * The exchange that reports a grant and brings the next loan waits for the create it granted
   * to be through: sent while the create's calls were answered, or between them, it took CPU from
   * the API server's own steps on a busy machine. It goes when the Service appears in this
   * replica's watch (`appeared`), or CREATE_SETTLE_MS after the grant (a create refused later,
   * or an UPDATE).
   */
  #exchangeAfterCreate(ref: string): void {
    if (this.#loans === undefined) return;
    this.#awaited.add(ref);
    if (this.#settling !== undefined) return;
    this.#settling = setTimeout(() => {
      this.#settling = undefined;
      this.#awaited.clear();
      this.#exchangeSoon();
    }, CREATE_SETTLE_MS);
    this.#settling.unref();
  }

  /** A Service appeared in this replica's watch: the create this replica granted is through. */
  appeared(ref: string): void {
    if (!this.#awaited.delete(ref) || this.#awaited.size > 0) return;
    clearTimeout(this.#settling);
    this.#settling = undefined;
    this.#exchangeSoon();
  }

  /** An exchange with the allocator now, or right after the one in flight. */
  #exchangeSoon(): void {
    if (this.#exchanging) {
      this.#exchangeAgain = true;
      return;
    }
    clearTimeout(this.#renewal);
    this.#renewal = undefined;
    void this.#exchangeLoop();
  }

  async #exchangeLoop(): Promise<void> {
    const loans = this.#loans;
    if (loans === undefined) return;
    this.#exchanging = true;
    try {
      do {
        this.#exchangeAgain = false;
        const holder = this.#election.holder();
        if (holder === undefined) {
          loans.purse.clear();
          return;
        }
        const idle = this.#now() - this.#lastGrantAt > LOAN_IDLE_MS;
        const request = loans.purse.request(this.#election.identity, loans.options.endpoint, idle);
        const empty = request.unspent.length + request.spent.length + request.returned.length === 0;
        if (empty && (idle || request.wants.length === 0)) return;
        const sentAt = this.#now();
        const answer = await loans.options.exchange(holder.endpoint, request);
        // An answer from another replica than the one asked (a hand-over meanwhile) lends nothing.
        if (answer !== undefined && answer.allocator === holder.identity) {
          loans.purse.accepted(answer, request, sentAt);
        }
        if (idle) loans.purse.clear();
      } while (this.#exchangeAgain);
    } finally {
      this.#exchanging = false;
      if (loans.purse.holding && this.#renewal === undefined) {
        this.#renewal = setTimeout(() => {
          this.#renewal = undefined;
          this.#exchangeSoon();
        }, LOAN_RENEW_MS);
        this.#renewal.unref();
      }
    }
  }

  #expireLoans(): void {
    const loans = this.#loans;
    if (loans === undefined) return;
    if (!this.#election.leading()) {
      loans.ledger.clear();
      return;
    }
    const freed = loans.ledger.expire();
    if (freed.length > 0) {
      this.#logger.info(
        { addresses: freed },
        "lent addresses freed: their follower neither returned nor spent them in time",
      );
    }
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

  /** Stops lending and renewing (the claims are flushed apart). */
  stop(): void {
    clearTimeout(this.#renewal);
    clearTimeout(this.#settling);
    this.#renewal = undefined;
    this.#settling = undefined;
    if (this.#loans !== undefined) clearInterval(this.#loans.expiry);
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
