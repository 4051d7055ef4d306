// The ports the edges implement for the admission layer: the state a review is decided on, and
// the arbiter its grants are claimed through. Types only.

import type { IPAddress } from "../ipam/address.ts";
import type { Holder } from "../ipam/usage.ts";
import type { AdmissionContext, AdmissionOutcome, AdmissionReason, Webhook } from "./admit.ts";
import type { Grant } from "./holds.ts";
import type { AdmissionRequest, AdmissionResponse } from "./review.ts";

/**
 * The port between the HTTP edge and whatever keeps cluster state: the watch-cache state of
 * a cluster deployment, or the in-memory state of standalone mode.
 */
export interface AdmissionState {
  /** The pools, usage and readiness to decide on now. */
  context(): AdmissionContext;
  /**
   * Records a grant synchronously, right after the decision that made it, so that no other
   * request can be granted the same address in between.
   */
  record(grant: Grant, now: number): void;
  /**
   * Cluster mode: the arbiter shared by all replicas. A grant is answered only once its
   * addresses are claimed there (see `admitWithClaims`). Absent in standalone mode, where this
   * process is the only one deciding.
   */
  readonly claims?: ClaimPort;
  /**
   * Cluster mode with an elected allocator (ADR 0012): where grants are decided. When present,
   * grants are not claimed before the answer: the allocator's decision is the only one.
   */
  readonly allocator?: AllocatorPort;
}

/** The one replica that grants addresses, as seen from this one (ADR 0012). */
export interface AllocatorPort {
  /** Whether this replica is the allocator now (it grants what it decides). */
  allocating(): boolean;
  /**
   * Where a grant decided here goes now. A review forwarded by another replica is never
   * forwarded again: it is decided here, or refused.
   */
  route(grant: Grant, forwarded: boolean): GrantRoute;
  /** A grant this replica made as the allocator, answered now: its claim is written after. */
  granted(grant: Grant): void;
  /**
   * A refusal this replica decided as the allocator that ran into addresses lent to another
   * replica (ADR 0015): resolves once they are recalled (decide again then), or with why they
   * could not be. Undefined when nothing lent is in the way.
   */
  recalling(outcome: AdmissionOutcome): Promise<string | undefined> | undefined;
}

export type GrantRoute =
  /** This replica is the allocator and its lease is fresh: decide and answer here. */
  | { readonly kind: "local" }
  /** Another replica is: its decision is the answer. */
  | {
      readonly kind: "forward";
      readonly forward: (webhook: Webhook, request: AdmissionRequest) => Promise<RemoteDecision>;
    }
  /**
   * The allocator granted exactly these addresses to this Service: a moment ago, through this
   * replica (the mutating call of the create whose validating call this is), or ahead, as a loan
   * to this replica spent now (ADR 0015). Its grant stands, and it is the allocator's, not this
   * replica's.
   */
  | { readonly kind: "relayed"; readonly allocator: string }
  /** None can be asked now (no allocator elected, or this one's lease may have lapsed). */
  | { readonly kind: "unavailable"; readonly why: string };

/** What the allocator answered a forwarded review: its outcome, without the grant it recorded. */
export type RemoteDecision =
  | {
      readonly kind: "decided";
      readonly response: AdmissionResponse;
      readonly decision: AdmissionOutcome["decision"];
      readonly reason: AdmissionReason | undefined;
      readonly service: string | undefined;
      readonly allocator: string;
      /** The addresses the allocator granted (canonical text); none when it granted nothing. */
      readonly granted: readonly string[];
    }
  | { readonly kind: "failed"; readonly message: string };

/** Claims through the shared arbiter, and what the state does when one is lost. */
export interface ClaimPort {
  /**
   * Claims every address of the grant, all or nothing: on a loss or an error, whatever this call
   * created is removed again. Never throws for API failures: they are `error` results.
   */
  claim(grant: Grant, signal: AbortSignal): Promise<ClaimResult>;
  /**
   * Resolves once the claims in flight in this process right now have settled; undefined when
   * there are none. A decision that refused an address because of a hold whose claim is still
   * in flight (it may lose, say to the very Service being refused) waits for it and decides again.
   */
  settled(): Promise<void> | undefined;
  /** Drops the in-process hold of a grant whose claim failed. */
  release(grant: Grant): void;
  /**
   * Records another holder's claim seen while claiming, so the next decision already counts the
   * address as used (the claims watch confirms or removes it shortly after).
   */
  recordForeign(owner: string, holder: Holder, addresses: readonly IPAddress[], now: number): void;
}

export type ClaimResult =
  /** Every address is claimed for the grant's holder (new claims, its own, or shared ones). */
  | { readonly kind: "claimed" }
  /** Another holder, with whom sharing is not allowed, claimed `address` first. */
  | {
      readonly kind: "lost";
      /** The usage owner to record the other claim under (`claim:<lease>`). */
      readonly owner: string;
      readonly holder: Holder;
      readonly address: IPAddress;
    }
  /** The arbiter could not be asked or did not answer: nothing is claimed. */
  | { readonly kind: "error"; readonly message: string }
  /**
   * The claims stand but a rule settled across replicas refuses the grant (a quota that grants
   * of other replicas filled first): nothing is claimed.
   */
  | { readonly kind: "refused"; readonly reason: "QuotaExceeded"; readonly message: string };
