// Admission on a state shared by replicas: the pure decision, then, for a grant, one of two ways
// to keep replicas from granting one address twice. With an elected allocator (ADR 0012, the
// default in cluster mode) a grant is decided and held by the allocator alone, here or where it
// is forwarded, and answered at once. With claims before the answer (ADR 0005) every replica
// grants, holds, and claims the addresses through an arbiter they share (Leases in etcd): only a
// grant whose claim holds is answered as decided; a lost claim is recorded as usage and the review
// decided again, so an auto-assign moves on to the next free address and an explicit request is
// refused naming the other holder.

import { formatAddress, formatAddressList } from "../ipam/address.ts";
import { type AdmissionOutcome, admit, denial, type Webhook } from "./admit.ts";
import type { Grant } from "./holds.ts";
import type { AdmissionState, AllocatorPort, ClaimResult } from "./ports.ts";
import type { AdmissionRequest } from "./review.ts";

export interface ClaimOptions {
  /** Decisions (and claims) per review before giving up; default 16. */
  readonly maxAttempts?: number;
  /**
   * Time for all claims of one review; default 4 s, under the webhook configurations' 5 s
   * timeout, so the answer is ours and not the API server's "failed calling webhook".
   */
  readonly timeoutMs?: number;
  readonly now?: () => number;
  /** The review came from another replica, to be decided by this one as the allocator. */
  readonly forwarded?: boolean;
  /** Lent addresses were recalled for this review already: its refusal now stands. */
  readonly recalled?: boolean;
}

export interface ClaimedOutcome extends AdmissionOutcome {
  /** Claims lost on the way to this outcome (to other holders), for the log. */
  readonly lostClaims: readonly string[];
  /**
   * The allocator replica whose decision this is, when the review was forwarded to it or the
   * allocator's grant was relayed here a moment ago.
   */
  readonly allocator?: string;
}

/**
 * Replicas all allocate lowest-first, so in a burst of auto-assigns about half the claims of
 * each round lose to the other replica's requests, which then move on to the same next
 * addresses: an unlucky request loses about log2(burst per replica) rounds (a limit of 5 was
 * hit in a burst of 50 on two replicas). 16 covers any realistic burst; the time budget bounds it too.
 */
export const DEFAULT_CLAIM_ATTEMPTS = 16;

/** True when `pending` settled before `signal` aborted. */
function settledWithin(pending: Promise<void>, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const abort = () => resolve(false);
    signal.addEventListener("abort", abort, { once: true });
    pending.then(
      () => {
        signal.removeEventListener("abort", abort);
        resolve(true);
      },
      () => {
        signal.removeEventListener("abort", abort);
        resolve(true);
      },
    );
  });
}
const DEFAULT_CLAIM_TIMEOUT_MS = 4000;

/**
 * Decides a review, records its grant, and (when the state has claims) claims the granted
 * addresses before answering. Without claims it is `admit` and `record`, nothing more.
 *
 * The answer is synchronous whenever nothing has to be awaited: every review in standalone mode,
 * and in cluster mode every review that grants nothing (denials, dry runs, skipped objects)
 * unless it must wait for another claim to settle. Most reviews thus skip the promise hops of
 * an async call, which under load cost more than deciding.
 */
export function admitWithClaims(
  webhook: Webhook,
  request: AdmissionRequest,
  state: AdmissionState,
  options: ClaimOptions = {},
): ClaimedOutcome | Promise<ClaimedOutcome> {
  const outcome = admit(webhook, request, state.context());
  const grant = outcome.grant;
  if (grant === undefined) {
    if (state.allocator !== undefined) {
      // The allocator's refusal is final, unless it ran into addresses it lent: recalled, the
      // review is decided once more.
      const recall = options.recalled === true ? undefined : state.allocator.recalling(outcome);
      if (recall === undefined) return { ...outcome, lostClaims: [] };
      return recall.then((failure) =>
        failure === undefined
          ? admitWithClaims(webhook, request, state, { ...options, recalled: true })
          : {
              ...denial(
                request,
                outcome.service ?? "",
                "NotReady",
                `${outcome.service}: ${failure}; nothing was granted, retry in a few seconds`,
              ),
              lostClaims: [],
            },
      );
    }
    const pending = settlingConflict(outcome, state);
    if (pending === undefined) return { ...outcome, lostClaims: [] };
    return claimed(webhook, request, state, options, outcome, pending);
  }
  if (state.allocator !== undefined) {
    return allocated(webhook, request, state, state.allocator, options, outcome, grant);
  }
  if (state.claims === undefined) {
    state.record(grant, (options.now ?? Date.now)());
    return { ...outcome, lostClaims: [] };
  }
  return claimed(webhook, request, state, options, outcome, undefined);
}

/**
 * A grant with an elected allocator (ADR 0012): granted here, synchronously, when this replica
 * is the allocator; else the allocator's own decision of the same review is the answer. Nothing
 * is written to the API before the answer: the claim follows it.
 */
function allocated(
  webhook: Webhook,
  request: AdmissionRequest,
  state: AdmissionState,
  allocator: AllocatorPort,
  options: ClaimOptions,
  outcome: AdmissionOutcome,
  grant: Grant,
): ClaimedOutcome | Promise<ClaimedOutcome> {
  const route = allocator.route(grant, options.forwarded === true);
  const ref = grant.ref;
  switch (route.kind) {
    case "local":
      state.record(grant, (options.now ?? Date.now)());
      allocator.granted(grant);
      return { ...outcome, lostClaims: [] };
    case "relayed":
      return { ...outcome, grant: undefined, lostClaims: [], allocator: route.allocator };
    case "unavailable":
      return {
        ...denial(
          request,
          ref,
          "NotReady",
          `${ref}: no replica can grant addresses right now (${route.why}); nothing was granted, retry in a few seconds`,
        ),
        lostClaims: [],
      };
    case "forward":
      return route.forward(webhook, request).then((remote) =>
        remote.kind === "decided"
          ? {
              response: remote.response,
              decision: remote.decision,
              reason: remote.reason,
              service: remote.service,
              grant: undefined,
              decided: undefined,
              lostClaims: [],
              allocator: remote.allocator,
            }
          : {
              ...denial(
                request,
                ref,
                "NotReady",
                `${ref}: the replica granting addresses did not answer (${remote.message}); nothing was granted, retry in a few seconds`,
              ),
              lostClaims: [],
            },
      );
  }
}

/**
 * What a refusal over an address that another request of this replica holds, while its claim is
 * in flight, waits for: that claim may lose (to this very Service, whose claim the other replica
 * made), so the review lets it settle and is decided once more.
 */
function settlingConflict(
  outcome: AdmissionOutcome,
  state: AdmissionState,
): Promise<void> | undefined {
  const conflict = outcome.reason === "AddressInUse" || outcome.reason === "SharingConflict";
  return conflict ? state.claims?.settled() : undefined;
}

async function claimed(
  webhook: Webhook,
  request: AdmissionRequest,
  state: AdmissionState,
  options: ClaimOptions,
  first: AdmissionOutcome,
  firstWait: Promise<void> | undefined,
): Promise<ClaimedOutcome> {
  const now = options.now ?? Date.now;
  const claims = state.claims;
  const maxAttempts = Math.max(1, options.maxAttempts ?? DEFAULT_CLAIM_ATTEMPTS);
  const lost: string[] = [];
  let signal: AbortSignal | undefined;
  let outcome = first;
  let pending = firstWait;
  let waited = false;
  let attempt = 1;
  for (;;) {
    if (pending !== undefined) {
      waited = true;
      signal ??= AbortSignal.timeout(options.timeoutMs ?? DEFAULT_CLAIM_TIMEOUT_MS);
      if (!(await settledWithin(pending, signal))) return { ...outcome, lostClaims: lost };
      pending = undefined;
      outcome = admit(webhook, request, state.context());
    }
    const grant = outcome.grant;
    if (grant === undefined) {
      pending = waited ? undefined : settlingConflict(outcome, state);
      if (pending === undefined) return { ...outcome, lostClaims: lost };
      continue;
    }
    // Synchronously after the decision: no other request of this replica can be granted the
    // same address while the claim is in flight.
    state.record(grant, now());
    if (claims === undefined) return { ...outcome, lostClaims: lost };

    signal ??= AbortSignal.timeout(options.timeoutMs ?? DEFAULT_CLAIM_TIMEOUT_MS);
    let result: ClaimResult;
    try {
      result = await claims.claim(grant, signal);
    } catch (error) {
      result = { kind: "error", message: (error as Error).message ?? String(error) };
    }
    if (result.kind === "claimed") return { ...outcome, lostClaims: lost };

    claims.release(grant);
    const ref = grant.ref;
    const addresses = formatAddressList(grant.addresses);
    if (result.kind === "refused") {
      return { ...denial(request, ref, result.reason, result.message), lostClaims: lost };
    }
    if (result.kind === "error") {
      // Fail closed: an address whose claim could not be made is not granted (ADR 0005).
      return {
        ...denial(
          request,
          ref,
          "NotReady",
          `${ref}: could not claim ${addresses} through the Kubernetes API (${result.message}); nothing was granted, retry in a few seconds`,
        ),
        lostClaims: lost,
      };
    }
    claims.recordForeign(result.owner, result.holder, [result.address], now());
    lost.push(`${formatAddress(result.address)} (${result.holder.ref})`);
    if (attempt >= maxAttempts) {
      const assigning = outcome.decision === "assigned";
      return {
        ...denial(
          request,
          ref,
          assigning ? "PoolExhausted" : "AddressInUse",
          `${ref}: ${assigning ? "auto-assign" : "the requested address"} lost ${lost.length} claim${lost.length > 1 ? "s" : ""} in a row to admissions of other Services running at the same moment (${lost.join(", ")}); retry`,
        ),
        lostClaims: lost,
      };
    }
    attempt += 1;
    outcome = admit(webhook, request, state.context());
  }
}
