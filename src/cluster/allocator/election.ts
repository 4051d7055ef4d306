// The election of the one replica that grants addresses (ADR 0012): a Lease in the webhook's
// namespace, taken and renewed as kube-controller-manager's leader election does, and fenced.
// The holder grants only while its last successful renew began less than the renew deadline
// ago; another replica takes the Lease over only after seeing it unchanged for a whole lease
// duration. Both are measured on each process's monotonic clock, so the rule bounds how fast
// clocks run, not how far apart they are. A replica that becomes the holder first relists what
// it decides on (the hand-over), so every grant of the previous holder is in its state.

import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import { describeError } from "../kube.ts";

/** The Lease as the election reads and writes it. */
export interface LeaseRecord {
  /** The holder's identity; "" once released. */
  readonly holder: string;
  /** Where the holder takes forwarded grants: `host:port`. */
  readonly endpoint: string;
  readonly durationMs: number;
  /** When the holder took it (wall clock, for people); renewals keep it. */
  readonly acquiredAt: number;
  readonly transitions: number;
  /** The version read; "" for a Lease not written yet. Every write changes it. */
  readonly version: string;
}

/** The one Lease, read and written with optimistic concurrency. */
export interface LeaseStore {
  /** The Lease, or undefined when there is none. Throws when the API cannot be asked. */
  read(signal: AbortSignal): Promise<LeaseRecord | undefined>;
  /**
   * Creates the Lease (`record.version` "") or replaces the version read; the version written.
   * Undefined when another write came first (the create or the precondition failed). Throws on
   * other failures.
   */
  write(record: LeaseRecord, renewedAt: number, signal: AbortSignal): Promise<string | undefined>;
}

interface ElectionTimings {
  /** How long a holder's Lease stands without a renew; others take over after it. */
  readonly leaseDurationMs: number;
  /** The holder grants only while its last renew began less than this ago. */
  readonly renewDeadlineMs: number;
  /** How often the Lease is read, and renewed by its holder. */
  readonly retryPeriodMs: number;
}

/**
 * Lease 12 s, deadline 5 s, every 2 s. An answer sent by a holder that froze just before its
 * deadline reaches an API server whose call (5 s webhook timeout) has ended before anyone else
 * may grant: deadline + webhook timeout < lease duration, with 2 s to spare.
 */
export const TIMINGS: ElectionTimings = {
  leaseDurationMs: 12_000,
  renewDeadlineMs: 5_000,
  retryPeriodMs: 2_000,
};

export interface ElectionOptions {
  readonly store: LeaseStore;
  /** Unique per process (a restarted pod is another candidate). */
  readonly identity: string;
  /** Where this replica takes forwarded grants, written on the Lease while it holds it. */
  readonly endpoint: string;
  /**
   * Makes this replica's state current before its first grant as the holder: resolves once
   * everything written before the call is in it.
   */
  readonly handOver: () => Promise<void>;
  readonly logger: Logger;
  /** A monotonic clock in ms; performance.now by default. */
  readonly now?: () => number;
  /** The wall clock, for the times written on the Lease. */
  readonly wallClock?: () => number;
}

/** This replica's term as the holder. */
interface Term {
  /** When the last successful write of the Lease began (monotonic). */
  renewStartedAt: number;
  /** The version that write produced, expected by the next one. */
  version: string;
  readonly acquiredAt: number;
  readonly transitions: number;
  /** True once the hand-over relist is done: only then does it grant. */
  handedOver: boolean;
}

/** Another holder's Lease, and since when it has been seen unchanged (monotonic). */
interface Observed {
  readonly record: LeaseRecord;
  readonly since: number;
}

export class AllocatorElection {
  readonly #options: ElectionOptions;
  readonly #now: () => number;
  readonly #stop = new AbortController();
  #term: Term | undefined;
  #observed: Observed | undefined;
  #settled = false;
  #lastError: string | undefined;
  #running: Promise<void> | undefined;

  constructor(options: ElectionOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => performance.now());
  }

  get identity(): string {
    return this.#options.identity;
  }

  /** True once a round found a holder (this replica or a live other): sticky, as readiness is. */
  get settled(): boolean {
    return this.#settled;
  }

  /** Whether this replica may grant now: it holds the Lease, handed over, inside its deadline. */
  leading(): boolean {
    const term = this.#term;
    if (term === undefined || !term.handedOver) return false;
    return this.#now() - term.renewStartedAt < TIMINGS.renewDeadlineMs;
  }

  /** The other replica that holds the Lease, as last read, while its Lease stands. */
  holder(): { readonly identity: string; readonly endpoint: string } | undefined {
    const observed = this.#observed;
    if (this.#term !== undefined || observed === undefined) return undefined;
    const { holder, endpoint, durationMs } = observed.record;
    if (holder === "" || endpoint === "") return undefined;
    if (this.#now() - observed.since >= durationMs) return undefined;
    return { identity: holder, endpoint };
  }

  /** Why no replica can grant now, in words, for a refusal. */
  unavailable(): string {
    const term = this.#term;
    if (term !== undefined) {
      return term.handedOver
        ? "this replica holds the allocator Lease but could not renew it in time"
        : "this replica was just elected allocator and is still reading the cluster state";
    }
    if (this.#lastError !== undefined) {
      return `the allocator Lease cannot be read: ${this.#lastError}`;
    }
    const observed = this.#observed;
    if (observed === undefined || observed.record.holder === "") {
      return "no replica is elected allocator yet";
    }
    return `the allocator ${observed.record.holder} stopped renewing its Lease; another replica takes over when it lapses`;
  }

  start(): void {
    this.#running ??= this.#loop();
  }

  /** Stops, and as the holder gives the Lease up, so that another replica takes over at once. */
  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#running;
    const term = this.#term;
    if (term === undefined) return;
    this.#term = undefined;
    try {
      const written = await this.#options.store.write(
        this.#record("", "", term, term.version),
        this.#wall(),
        AbortSignal.timeout(2000),
      );
      this.#options.logger.info(
        written === undefined
          ? "the allocator Lease changed meanwhile: nothing to give up"
          : "gave up the allocator Lease",
      );
    } catch (error) {
      this.#options.logger.warn(
        { error: describeError(error) },
        `could not give up the allocator Lease (it lapses by itself): ${describeError(error)}`,
      );
    }
  }

  async #loop(): Promise<void> {
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      await this.round(signal);
      await sleep(TIMINGS.retryPeriodMs, undefined, { signal }).catch(() => {});
    }
  }

  /** One read of the Lease and what follows from it: a renew, a take-over, or nothing. */
  async round(signal: AbortSignal): Promise<void> {
    const { store, identity, logger } = this.#options;
    const started = this.#now();
    try {
      const record = await store.read(signal);
      if (record === undefined) {
        await this.#take(undefined, started, signal);
        return;
      }
      if (record.holder === identity) {
        const term = this.#term;
        if (term === undefined) {
          // Ours, though no term says so: a write that succeeded while its answer was lost.
          await this.#take(record, started, signal);
          return;
        }
        const written = await store.write(
          this.#record(identity, this.#options.endpoint, term, record.version),
          this.#wall(),
          signal,
        );
        this.#clearError();
        if (this.#term !== term) return;
        if (written === undefined) {
          this.#lose("another replica wrote the allocator Lease");
          return;
        }
        term.renewStartedAt = started;
        term.version = written;
        return;
      }
      if (this.#term !== undefined) this.#lose(`${record.holder || "nobody"} holds it now`);
      const observed = this.#observed;
      const since =
        observed !== undefined && observed.record.version === record.version
          ? observed.since
          : started;
      this.#observed = { record, since };
      this.#clearError();
      if (record.holder === "" || started - since >= record.durationMs) {
        await this.#take(record, started, signal);
      } else {
        this.#settled = true;
      }
    } catch (error) {
      if (signal.aborted) return;
      const message = describeError(error);
      if (message !== this.#lastError) {
        logger.warn({ error: message }, `allocator election: ${message}; retrying`);
      }
      this.#lastError = message;
    }
  }

  /** Creates the Lease, or takes over `current` (released or lapsed). */
  async #take(
    current: LeaseRecord | undefined,
    started: number,
    signal: AbortSignal,
  ): Promise<void> {
    const { store, identity, endpoint, logger } = this.#options;
    const acquiredAt = this.#wall();
    const term: Term = {
      renewStartedAt: started,
      version: "",
      acquiredAt,
      transitions: current === undefined ? 0 : current.transitions + 1,
      handedOver: false,
    };
    const written = await store.write(
      this.#record(identity, endpoint, term, current?.version ?? ""),
      acquiredAt,
      signal,
    );
    this.#clearError();
    if (written === undefined) return; // another replica came first: the next round reads who
    term.version = written;
    this.#term = term;
    this.#observed = undefined;
    this.#settled = true;
    logger.info(
      { identity, previous: current?.holder || undefined },
      `elected allocator${current?.holder ? ` after ${current.holder}` : ""}: reading the cluster state again before granting`,
    );
    // Not awaited: the renewals go on meanwhile, however long the relist takes.
    void this.#handOver(term);
  }

  async #handOver(term: Term): Promise<void> {
    const started = this.#now();
    await this.#options.handOver();
    if (this.#term !== term) return;
    term.handedOver = true;
    this.#options.logger.info(
      { identity: this.#options.identity, handOverMs: Math.round(this.#now() - started) },
      "allocator: granting addresses",
    );
  }

  #lose(why: string): void {
    this.#term = undefined;
    this.#options.logger.warn(`no longer the allocator: ${why}`);
  }

  #clearError(): void {
    if (this.#lastError === undefined) return;
    this.#options.logger.info("allocator election: the Lease can be read again");
    this.#lastError = undefined;
  }

  #record(holder: string, endpoint: string, term: Term, version: string): LeaseRecord {
    return {
      holder,
      endpoint,
      durationMs: TIMINGS.leaseDurationMs,
      acquiredAt: term.acquiredAt,
      transitions: term.transitions,
      version,
    };
  }

  #wall(): number {
    return (this.#options.wallClock ?? Date.now)();
  }
}
