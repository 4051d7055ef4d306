// Addresses the allocator lends ahead to a follower (ADR 0015), so that the follower grants an
// auto-assign or the request for a lent address itself, without the hop to the allocator. Both
// sides live here: the allocator's ledger of what it lent to whom, and a follower's purse of
// what it borrowed. The messages between them travel over the peer channel (src/server/peer.ts).
//
// The rules that keep one address with one Service:
//   - a lent address is reserved in the allocator's usage index until the follower returns it,
//     reports it spent, or could no longer have spent it (its loan lapsed, plus the time an
//     admission of it could still take to persist);
//   - a follower spends a loan only within LOAN_MS of asking for it, on its own clock, and only
//     while the replica that lent it still holds the allocator Lease as far as it knows;
//   - a refusal the allocator meets on a lent address (an explicit request for it, the
//     validating call of a Service the follower granted it to, an exhausted pool) first recalls
//     the loan from its follower, and decides again on the answer.

import type { Grant } from "../../admission/holds.ts";
import { type Family, formatAddress, type IPAddress, parseAddress } from "../../ipam/address.ts";
import type { Holder } from "../../ipam/usage.ts";

/**
 * How long a follower may spend a loan, from the moment it asked (its own clock). Bounded by the
 * hand-over: the allocator lends only inside its renew deadline (5 s after its last renewal),
 * another replica takes over a lease duration (12 s) after it, and what a follower granted must
 * have been persisted by then (ADR 0012's 7 s, less this).
 */
export const LOAN_MS = 1000;
/**
 * How long the allocator keeps a lapsed loan reserved when its follower neither returned it nor
 * reported it spent: a follower that spent it and froze or died before reporting may still see
 * the Service persisted within the API server's webhook timeout (5 s) and the watch's delay.
 */
export const LAPSED_LOAN_KEPT_MS = 10_000;

/** One (pool, family) a follower wants an address of at hand. */
interface LoanWant {
  readonly pool: string;
  readonly family: Family;
}

/** A loan a follower granted to a Service, as it reports it: the grant, in wire form. */
interface SpentLoan {
  readonly ref: string;
  readonly holder: Holder;
  readonly addresses: readonly string[];
  readonly pool: string;
}

/** What a follower sends the allocator: what it did with its loans, and what it wants. */
export interface LoanRequest {
  readonly follower: string;
  /** Where the allocator reaches this follower for a recall (`host:port`). */
  readonly endpoint: string;
  readonly unspent: readonly string[];
  readonly spent: readonly SpentLoan[];
  readonly returned: readonly string[];
  readonly wants: readonly LoanWant[];
}

/** The allocator's answer: every address lent to that follower now. */
export interface LoanAnswer {
  readonly allocator: string;
  readonly loans: readonly { readonly address: string; readonly pool: string }[];
}

/** A follower's answer to a recall: each address given back, or the grant it went to. */
export interface RecallAnswer {
  readonly follower: string;
  readonly returned: readonly string[];
  readonly spent: readonly SpentLoan[];
}

/** What the allocator's ledger reads and writes of its state. */
export interface LedgerState {
  /** The lowest free address of the pool in that family now; undefined when none (or no pool). */
  lowestFree(pool: string, family: Family): IPAddress | undefined;
  /** Holds a grant's addresses, as an admission's: a loan's (its ref names it), or a spent one. */
  hold(grant: Grant): void;
  release(ref: string): void;
}

interface Loan {
  readonly address: IPAddress;
  readonly pool: string;
  readonly follower: string;
  readonly endpoint: string;
  /** Until when it stays reserved, on the allocator's clock. */
  keptUntil: number;
  /** No longer offered (a lower address came free): reserved until the follower accounts for it. */
  withdrawn: boolean;
}

const wantKey = (pool: string, family: Family): string => `${family} ${pool}`;

/** The hold a lent address is reserved under; no Service has such a name. */
const loanRef = (address: string): string => `loan:${address}`;

/** Reads a spent loan back into a grant; undefined when an address does not parse. */
function grantOfSpent(spent: SpentLoan): Grant | undefined {
  const addresses: IPAddress[] = [];
  for (const text of spent.addresses) {
    const parsed = parseAddress(text);
    if (!parsed.ok) return undefined;
    addresses.push(parsed.value);
  }
  return { ref: spent.ref, holder: spent.holder, addresses, pool: spent.pool };
}

function spentOf(grant: Grant): SpentLoan {
  return {
    ref: grant.ref,
    holder: grant.holder,
    addresses: grant.addresses.map(formatAddress),
    pool: grant.pool ?? "",
  };
}

/** The allocator's side: what it lent, to whom, until when. */
export class LoanLedger {
  readonly #state: LedgerState;
  readonly #granted: (grant: Grant) => void;
  readonly #now: () => number;
  readonly #loans = new Map<string, Loan>();

  /** `granted`: a spent loan is the allocator's grant from then on (claimed after, its Event). */
  constructor(state: LedgerState, granted: (grant: Grant) => void, now: () => number) {
    this.#state = state;
    this.#granted = granted;
    this.#now = now;
  }

  get size(): number {
    return this.#loans.size;
  }

  /**
   * A follower's exchange: spent loans become grants, returned ones are freed, and each (pool,
   * family) it wants is lent the lowest free address there. That is the loan it has while it
   * still is the lowest (kept another LOAN_MS); else a new one, and the old one is withdrawn:
   * not offered again, kept reserved until the follower's next exchange tells whether it was
   * spent meanwhile. Answers the addresses offered to it now.
   */
  exchange(request: LoanRequest, allocator: string): LoanAnswer {
    const { follower } = request;
    for (const spent of request.spent) this.#spent(spent);
    for (const address of request.returned) this.#free(address, follower);
    const keptUntil = this.#now() + LOAN_MS + LAPSED_LOAN_KEPT_MS;
    const named = new Set(request.unspent);
    const offered = new Map<string, Loan>();
    // Single-flight on the follower: every loan it accepted is in `unspent`, `spent` or
    // `returned`. One it does not name never reached it (its exchange timed out), was withdrawn
    // and not spent, or was refused as recalled since: it is freed.
    for (const [text, loan] of this.#loans) {
      if (loan.follower !== follower) continue;
      if (!named.has(text)) {
        this.#free(text, follower);
        continue;
      }
      loan.keptUntil = keptUntil;
      loan.withdrawn = true;
      offered.set(wantKey(loan.pool, loan.address.family), loan);
    }
    const lent: { address: string; pool: string }[] = [];
    for (const want of request.wants) {
      const loan = offered.get(wantKey(want.pool, want.family));
      const lowest = this.#lowestFree(want.pool, want.family, loan);
      if (lowest === undefined) continue;
      const text = formatAddress(lowest);
      if (loan === undefined || formatAddress(loan.address) !== text) {
        this.#reserve({
          address: lowest,
          pool: want.pool,
          follower,
          endpoint: request.endpoint,
          keptUntil,
          withdrawn: false,
        });
      } else {
        loan.withdrawn = false;
      }
      lent.push({ address: text, pool: want.pool });
    }
    return { allocator, loans: lent };
  }

  /**
   * The loans a refusal ran into, by follower endpoint: the lent addresses among those refused,
   * or every loan when a pool had no address left (a loan may be the one it lacked).
   */
  lentFor(refused: readonly IPAddress[], exhausted: boolean): Map<string, string[]> {
    const byEndpoint = new Map<string, string[]>();
    const wanted = exhausted
      ? [...this.#loans.keys()]
      : refused.map(formatAddress).filter((text) => this.#loans.has(text));
    for (const text of wanted) {
      const loan = this.#loans.get(text) as Loan;
      byEndpoint.set(loan.endpoint, [...(byEndpoint.get(loan.endpoint) ?? []), text]);
    }
    return byEndpoint;
  }

  /** Where the followers are reached whose offered loan is no longer the lowest free address. */
  outdated(): Set<string> {
    const endpoints = new Set<string>();
    for (const loan of this.#loans.values()) {
      if (loan.withdrawn || endpoints.has(loan.endpoint)) continue;
      const lowest = this.#lowestFree(loan.pool, loan.address.family, loan);
      if (lowest !== undefined && formatAddress(lowest) !== formatAddress(loan.address)) {
        endpoints.add(loan.endpoint);
      }
    }
    return endpoints;
  }

  /** A follower's answer to a recall, applied. Addresses it did not account for stay lent. */
  recalled(answer: RecallAnswer): void {
    for (const spent of answer.spent) this.#spent(spent);
    for (const address of answer.returned) this.#free(address, answer.follower);
  }

  /** Frees every loan past its keeping time; returns the addresses. */
  expire(): string[] {
    const now = this.#now();
    const freed: string[] = [];
    for (const [text, loan] of this.#loans) {
      if (loan.keptUntil > now) continue;
      this.#free(text, loan.follower);
      freed.push(text);
    }
    return freed;
  }

  /** This replica stopped allocating: its loans mean nothing any more. */
  clear(): void {
    for (const text of this.#loans.keys()) this.#state.release(loanRef(text));
    this.#loans.clear();
  }

  /** The lowest free address of the pool in that family, `own` (a loan there) not counted as used. */
  #lowestFree(pool: string, family: Family, own: Loan | undefined): IPAddress | undefined {
    if (own === undefined) return this.#state.lowestFree(pool, family);
    this.#state.release(loanRef(formatAddress(own.address)));
    const lowest = this.#state.lowestFree(pool, family);
    this.#reserve(own);
    return lowest;
  }

  #reserve(loan: Loan): void {
    const text = formatAddress(loan.address);
    this.#state.hold({
      ref: loanRef(text),
      holder: loanHolder(loan.follower),
      addresses: [loan.address],
    });
    this.#loans.set(text, loan);
  }

  #spent(spent: SpentLoan): void {
    const grant = grantOfSpent(spent);
    if (grant === undefined) return;
    for (const text of spent.addresses) {
      if (this.#loans.delete(text)) this.#state.release(loanRef(text));
    }
    this.#state.hold(grant);
    this.#granted(grant);
  }

  #free(address: string, follower: string): void {
    if (this.#loans.get(address)?.follower !== follower) return;
    this.#loans.delete(address);
    this.#state.release(loanRef(address));
  }
}

/** The holder a lent address is reserved under: it shares with nobody. */
function loanHolder(follower: string): Holder {
  return { ref: `loan to ${follower}`, sharingKey: "", ports: [], backendKey: "" };
}

interface Borrowed {
  readonly allocator: string;
  /** Until when it may be spent, on this follower's clock. */
  readonly spendUntil: number;
}

/** A follower's side: what it borrowed, what it spent and has not reported yet. */
export class LoanPurse {
  readonly #now: () => number;
  readonly #borrowed = new Map<string, Borrowed>();
  /** Spent loans the allocator has not acknowledged yet, by address. */
  readonly #spent = new Map<string, { readonly spent: SpentLoan; readonly at: number }>();
  /** Addresses recalled lately, and when: an exchange answered before the recall is stale. */
  readonly #recalled = new Map<string, number>();
  readonly #wants = new Map<string, LoanWant>();

  constructor(now: () => number) {
    this.#now = now;
  }

  get holding(): boolean {
    return this.#borrowed.size > 0;
  }

  /** Asks for an address of this pool and family at the next exchange, and from then on. */
  want(pool: string, family: Family): void {
    this.#wants.set(wantKey(pool, family), { pool, family });
  }

  /**
   * Spends the loans of a grant when every address of it is one, lent by `allocator`, and still
   * spendable: they are this Service's now. False otherwise, and nothing is spent.
   */
  spend(grant: Grant, allocator: string): boolean {
    if (grant.addresses.length === 0) return false;
    const now = this.#now();
    const texts = grant.addresses.map(formatAddress);
    const usable = texts.every((text) => {
      const loan = this.#borrowed.get(text);
      return loan !== undefined && loan.allocator === allocator && loan.spendUntil > now;
    });
    if (!usable) return false;
    const spent = spentOf(grant);
    for (const text of texts) {
      this.#borrowed.delete(text);
      this.#spent.set(text, { spent, at: now });
    }
    return true;
  }

  /** What to send at the next exchange; `returning` gives every loan back (this follower idles). */
  request(follower: string, endpoint: string, returning: boolean): LoanRequest {
    const unspent = [...this.#borrowed.keys()];
    return {
      follower,
      endpoint,
      unspent: returning ? [] : unspent,
      spent: this.#reports(),
      returned: returning ? unspent : [],
      wants: returning ? [] : [...this.#wants.values()],
    };
  }

  /**
   * The allocator's answer to an exchange sent at `sentAt`: the loans are those it lists, each
   * spendable until LOAN_MS after that, but none recalled since the exchange was sent. The spent
   * loans it carried are acknowledged.
   */
  accepted(answer: LoanAnswer, sent: LoanRequest, sentAt: number): void {
    const now = this.#now();
    for (const [text, at] of this.#recalled) if (now - at > LOAN_MS) this.#recalled.delete(text);
    this.#borrowed.clear();
    if (sent.returned.length === 0) {
      for (const { address: text } of answer.loans) {
        // Spent or recalled since the exchange went out: the answer is older than that.
        if (this.#spent.has(text) || (this.#recalled.get(text) ?? -1) >= sentAt) continue;
        this.#borrowed.set(text, { allocator: answer.allocator, spendUntil: sentAt + LOAN_MS });
      }
    }
    for (const spent of sent.spent) {
      for (const text of spent.addresses) this.#spent.delete(text);
    }
  }

  /**
   * Gives back what the allocator recalls, or says which Service each went to. An address this
   * follower does not hold (withdrawn, lapsed) is given back too: it will not spend it, since an
   * exchange answer that still offers it, if one is on its way, is refused as older than this.
   */
  recall(addresses: readonly string[], follower: string): RecallAnswer {
    const now = this.#now();
    const returned: string[] = [];
    const spent: SpentLoan[] = [];
    for (const text of addresses) {
      this.#recalled.set(text, now);
      this.#borrowed.delete(text);
      const report = this.#spent.get(text)?.spent;
      if (report === undefined) returned.push(text);
      else if (!spent.includes(report)) spent.push(report);
    }
    return { follower, returned, spent };
  }

  /** Drops everything (the allocator changed, or this replica became it). */
  clear(): void {
    this.#borrowed.clear();
    this.#wants.clear();
  }

  /** Spent loans to report: each grant once, kept until acknowledged (or LAPSED_LOAN_KEPT_MS). */
  #reports(): SpentLoan[] {
    const now = this.#now();
    const reports: SpentLoan[] = [];
    for (const [text, { spent, at }] of this.#spent) {
      if (now - at > LAPSED_LOAN_KEPT_MS) {
        this.#spent.delete(text);
        continue;
      }
      if (!reports.includes(spent)) reports.push(spent);
    }
    return reports;
  }
}
