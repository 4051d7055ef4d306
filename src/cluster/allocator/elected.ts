// The AllocatorPort of a replica in a cluster with an elected allocator (ADR 0012): grants here
// while this replica holds a fresh allocator Lease, forwards them to the holder otherwise. The
// holder's grants are claimed (ADR 0005's Leases) after the answer, off the critical path: the
// claims keep `pools`, the Events and a hand-over's relist seeing every grant.

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
import type { AllocatorElection } from "./election.ts";

/** Sends a review to the allocator at `endpoint`; never throws (failures are `failed`). */
export type Forwarder = (
  endpoint: string,
  webhook: Webhook,
  request: AdmissionRequest,
) => Promise<RemoteDecision>;

/** Time for a claim written after the answer (it is retried by the repair if it fails). */
const CLAIM_TIMEOUT_MS = 30_000;

const LOCAL: GrantRoute = { kind: "local" };

export class ElectedAllocator implements AllocatorPort {
  readonly #election: AllocatorElection;
  readonly #forward: Forwarder;
  readonly #claims: ClaimPort;
  readonly #logger: Logger;

  constructor(options: {
    readonly election: AllocatorElection;
    readonly forward: Forwarder;
    readonly claims: ClaimPort;
    readonly logger: Logger;
  }) {
    this.#election = options.election;
    this.#forward = options.forward;
    this.#claims = options.claims;
    this.#logger = options.logger;
  }

  route(forwarded: boolean): GrantRoute {
    const election = this.#election;
    if (election.leading()) return LOCAL;
    if (forwarded) {
      return { kind: "unavailable", why: `${election.identity} is not the allocator now` };
    }
    const holder = election.holder();
    if (holder === undefined) return { kind: "unavailable", why: election.unavailable() };
    return {
      kind: "forward",
      forward: (webhook, request) => this.#forward(holder.endpoint, webhook, request),
    };
  }

  granted(grant: Grant): void {
    // A claim lost or failed here is logged by the claimer; a Service that persists without
    // one is adopted by the repair.
    this.#claims.claim(grant, AbortSignal.timeout(CLAIM_TIMEOUT_MS)).catch((error: unknown) => {
      this.#logger.warn({ service: grant.ref, err: error }, "claim after the answer failed");
    });
  }
}
