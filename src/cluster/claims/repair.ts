// The repair of the address claims, as Kubernetes' repairip controller does for ClusterIPs:
// every interval, while the caches are current, claims whose holder does not hold the address
// are collected (deleted, guarded by their resourceVersion), and every address a Service holds
// without a claim is adopted (its claim created). A Service seen giving its address up frees its
// claim at once, or with `--retain` turns it into a retention of the address for the Service
// (ADR 0018), deleted when the retention ends. The rule of when a claim is stale is lease.ts's
// collectReason.
// See docs/decisions/0005-address-claims-with-leases.md.

import { formatAddress, type IPAddress } from "../../ipam/address.ts";
import type { Holder } from "../../ipam/usage.ts";
import { describeError, KubeApiError } from "../kube.ts";
import type { Claimer, ClaimerOptions } from "./claimer.ts";
import { admissionTailEnd, type Claim, leaseName } from "./lease.ts";

/** Adoptions in flight at once during a collection pass. */
const ADOPT_CONCURRENCY = 4;
/** How long after a claim's admission tail a release it could not count yet is judged again. */
const RECHECK_SLACK_MS = 250;
/** Time for the take-over of a retention by a Service that holds its address. */
const TAKE_OVER_TIMEOUT_MS = 4000;

/** The claimer's settings the repair shares, the claimer itself, and how often it runs. */
export interface ClaimRepairOptions
  extends Pick<
    ClaimerOptions,
    "usage" | "pools" | "graceMs" | "canCollect" | "logger" | "onCollected"
  > {
  /** Whose watch cache is judged, and who deletes and creates the Leases. */
  readonly claimer: Claimer;
  /** How often collection and adoption run. */
  readonly intervalMs: number;
}

/** Collection of stale claims and adoption of unclaimed addresses, on a timer and on release. */
export class ClaimRepair {
  readonly #options: ClaimRepairOptions;
  #timer: NodeJS.Timeout | undefined;
  readonly #rechecks = new Set<NodeJS.Timeout>();
  #passing: Promise<void> | undefined;
  #stopped = false;

  constructor(options: ClaimRepairOptions) {
    this.#options = options;
  }

  /**
   * The Services watch saw `ref` give up `addresses` (deleted, or changed to other ones): their
   * claims go now rather than after the grace period, so a deleted Service's address is free for
   * the next one at once.
   */
  serviceReleased(ref: string, addresses: readonly IPAddress[], now: number): void {
    const { claimer } = this.#options;
    for (const address of addresses) {
      const name = leaseName(address);
      claimer.noteReleased(ref, name, now);
      const claim = claimer.claimNamed(name);
      if (claim === undefined || claim.holder.ref !== ref) continue;
      void this.#collect(claim, now).then((collected) => {
        if (!collected) this.#recheckAfterTail(claim);
      });
    }
  }

  /**
   * A release the rule could not count yet (it came right after the claim's write): judged again
   * once the admission's tail is over rather than at a pass up to an interval later, so a pool
   * under create-and-delete churn gets its addresses back within seconds.
   */
  #recheckAfterTail(claim: Claim): void {
    if (this.#stopped || claim.retention !== undefined) return;
    const { claimer, canCollect, graceMs } = this.#options;
    const due = admissionTailEnd(claim, graceMs) + RECHECK_SLACK_MS;
    const timer = setTimeout(
      () => {
        this.#rechecks.delete(timer);
        const current = claimer.claimNamed(claim.name);
        if (this.#stopped || !canCollect() || current?.resourceVersion !== claim.resourceVersion)
          return;
        void this.#collect(current, Date.now());
      },
      Math.max(0, due - Date.now()),
    );
    timer.unref();
    this.#rechecks.add(timer);
  }

  async #collect(claim: Claim, now: number): Promise<boolean> {
    const { claimer } = this.#options;
    const reason = claimer.staleReason(claim, now);
    if (reason === undefined) return false;
    // A holder seen giving the address up keeps it retained; a claim whose Service never
    // appeared (or went while no replica watched) goes.
    const released = claim.retention === undefined ? claimer.releasedAt(claim) : undefined;
    if (released !== undefined && claimer.retaining) {
      if (!(await claimer.retain(claim, released))) return false;
      this.#options.logger.info(
        { lease: claim.name, holder: claim.holder.ref, address: formatAddress(claim.address) },
        `claim ${claim.name} retains ${formatAddress(claim.address)} for ${claim.holder.ref}: ${reason}`,
      );
      return true;
    }
    if (!(await claimer.delete(claim.name, claim.resourceVersion))) return false;
    this.#options.logger.info(
      { lease: claim.name, holder: claim.holder.ref, address: formatAddress(claim.address) },
      `claim ${claim.name} collected: ${reason}`,
    );
    this.#options.onCollected?.(1);
    return true;
  }

  /** One collection and adoption pass now (also run by the timer). */
  pass(): Promise<void> {
    this.#passing ??= this.#pass().finally(() => {
      this.#passing = undefined;
    });
    return this.#passing;
  }

  async #pass(): Promise<void> {
    if (this.#stopped || !this.#options.canCollect()) return;
    const now = Date.now();
    const { claimer, logger } = this.#options;
    claimer.forgetOldReleases(now);
    for (const claim of claimer.claims()) {
      if (this.#stopped) return;
      await this.#collect(claim, now);
    }
    // Adoption: every address a Service holds gets a claim, if it has none (Services that predate
    // the webhook, or were written while it was down). Create-if-absent: a 409 means another
    // replica (or an admission) was first, which is as good.
    const pools = this.#options.pools();
    const missing: { address: IPAddress; holder: Holder }[] = [];
    const retained: { address: IPAddress; holder: Holder }[] = [];
    const seen = new Set<string>();
    for (const [owner, holder, addresses] of this.#options.usage.index.entries()) {
      if (owner !== holder.ref) continue; // holds and claims, not Services
      for (const address of addresses) {
        const name = leaseName(address);
        if (seen.has(name)) continue;
        seen.add(name);
        const claim = claimer.claimNamed(name);
        if (claim === undefined) missing.push({ address, holder });
        else if (claim.retention !== undefined) retained.push({ address, holder });
      }
    }
    // A Service that holds a retained address (its grant's claim came after it, or was lost):
    // the retention is taken back or over as an admission would, and the claim is its.
    for (const { address, holder } of retained) {
      if (this.#stopped) return;
      const grant = { ref: holder.ref, holder, addresses: [address] };
      await claimer.claim(grant, AbortSignal.timeout(TAKE_OVER_TIMEOUT_MS));
    }
    let adopted = 0;
    const next = async (): Promise<void> => {
      for (let item = missing.shift(); item !== undefined; item = missing.shift()) {
        if (this.#stopped) return;
        const { address, holder } = item;
        const pool = pools.poolOf(address.family, address.value)?.name ?? "";
        try {
          await claimer.create(address, holder, pool);
          adopted += 1;
        } catch (error) {
          if (error instanceof KubeApiError && error.status === 409) continue;
          logger.warn(
            { service: holder.ref, address: formatAddress(address), error: describeError(error) },
            `cannot adopt ${formatAddress(address)} of ${holder.ref}: ${describeError(error)}`,
          );
        }
      }
    };
    await Promise.all(Array.from({ length: ADOPT_CONCURRENCY }, next));
    if (adopted > 0) {
      logger.info(
        { adopted },
        `adopted ${adopted} address(es) held by Services without a claim (created their Leases)`,
      );
    }
  }

  start(): void {
    if (this.#timer !== undefined || this.#stopped) return;
    this.#timer = setInterval(() => {
      this.pass().catch((error: unknown) => {
        this.#options.logger.error(
          { error: describeError(error) },
          `claim collection failed: ${describeError(error)}`,
        );
      });
    }, this.#options.intervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    for (const timer of this.#rechecks) clearTimeout(timer);
    this.#rechecks.clear();
    await this.#passing;
  }
}
