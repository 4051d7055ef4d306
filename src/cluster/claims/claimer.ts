// Claiming addresses in the Kubernetes API: this replica's side of the address claims. A grant's
// addresses are claimed create-if-absent, so etcd decides which of two replicas admitting the
// same address at the same moment wins (as KEP-1880's IPAddress objects do for ClusterIPs); the
// claims watch keeps a cache of every replica's claims, and the usage index sees each as an owner
// `claim:<lease>`. The Lease itself is lease.ts; collection and adoption are repair.ts.
// See docs/decisions/0005-address-claims-with-leases.md.

import { hostname } from "node:os";
import type { Logger } from "pino";
import type { Grant } from "../../admission/holds.ts";
import type { ClaimPort, ClaimResult } from "../../admission/ports.ts";
import { asRecord } from "../../base/objects.ts";
import { isoTime } from "../../base/text.ts";
import { formatAddress, type IPAddress } from "../../ipam/address.ts";
import type { PoolSet } from "../../ipam/pool.ts";
import { addressKey, type Holder, mayShare, namespaceOf } from "../../ipam/usage.ts";
import { describeError, KubeApiError, type KubeClient } from "../kube.ts";
import type { KubeObject } from "../reflector.ts";
import type { ServiceUsage } from "../service-usage.ts";
import {
  type Claim,
  claimLease,
  claimOwner,
  collectReason,
  type HolderView,
  leaseName,
  namespaceClaimSelector,
  parseClaim,
  RELEASE_MARGIN_MS,
  renewedLease,
  retainedLease,
} from "./lease.ts";

/**
 * A claim older than this is rewritten when its holder claims it again (see `claim`); one
 * younger is known to stand without asking the API: nothing deletes a claim that young (the
 * grace period is at least this long, and a release counts only {@link RELEASE_MARGIN_MS} after
 * the write).
 */
const TOUCH_AFTER_MS = 1000;
/** Create-if-absent rounds for one address (each round: a POST, and a GET or a DELETE). */
const ROUNDS = 4;

export type ClaimMetric = "claimed" | "existing" | "lost" | "error";

export interface ClaimerOptions {
  readonly client: KubeClient;
  /** The webhook's own namespace: the Leases live there. */
  readonly namespace: string;
  readonly usage: ServiceUsage;
  readonly pools: () => PoolSet;
  /** A claim whose holder does not hold its address is deleted after this long. */
  readonly graceMs: number;
  /**
   * Whether the caches are current enough to judge a holder gone (synced, and the Services and
   * claims watches healthy for a while); no claim is judged stale (taken over, collected) while
   * not, and the repair does not run.
   */
  readonly canCollect: () => boolean;
  readonly logger: Logger;
  /** Written on each claim, for people reading Leases: the pod name by default. */
  readonly identity?: string;
  readonly onClaim?: (result: ClaimMetric) => void;
  readonly onCollected?: (count: number) => void;
  /** How long a released address's claim retains it for its holder (`--retain`); 0: off. */
  readonly retainMs?: number;
  /**
   * The address quota of a namespace, when it has one, and what it holds apart from claims
   * (addresses its Services hold without a claim, and its reservations), from this replica's
   * view: a grant there is checked against its namespace's claims after they are made.
   */
  readonly quotaOf?: (
    namespace: string,
  ) => { readonly quota: number; readonly beside: readonly IPAddress[] } | undefined;
}

type AddressClaim =
  | { readonly kind: "created"; readonly name: string; readonly resourceVersion: string }
  /** `placed`: a retention its holder took back, which counts against a quota as new. */
  | { readonly kind: "existing"; readonly placed?: string }
  | { readonly kind: "lost"; readonly claim: Claim }
  | { readonly kind: "error"; readonly message: string };

/** This replica's claims of addresses, and the claims watch's view of every replica's. */
export class Claimer implements ClaimPort {
  readonly #options: ClaimerOptions;
  readonly #path: string;
  readonly #identity: string;
  /** The claims watch's view, by Lease name. */
  readonly #cache = new Map<string, Claim>();
  /** `${ref}\n${lease}` → when this process saw `ref` give up that address. */
  readonly #released = new Map<string, number>();
  /** Claims this process deleted lately, by Lease name (the watch may still show them). */
  readonly #deleted = new Map<string, number>();
  /** Claims this process wrote, by Lease name, until the watch has surely brought them. */
  readonly #written = new Map<
    string,
    { readonly holder: Holder; readonly pool: string; readonly at: number }
  >();
  /** Claims of admissions in flight in this process. */
  readonly #inFlight = new Set<Promise<ClaimResult>>();

  constructor(options: ClaimerOptions) {
    this.#options = options;
    this.#path = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(options.namespace)}/leases`;
    this.#identity = options.identity ?? hostname();
  }

  /** The name this replica writes on its claims (`claimedBy`): its pod name by default. */
  get identity(): string {
    return this.#identity;
  }

  /** The collection the claims watch lists and watches. */
  get path(): string {
    return this.#path;
  }

  /** Claims currently known (from the watch). */
  get size(): number {
    return this.#cache.size;
  }

  // ----- the claims watch ----------------------------------------------------------------------

  /**
   * Every Lease after a (re)list. Claims hold their addresses in the usage index; retentions
   * go to the retained addresses instead (and rest, when their release was a moment ago).
   */
  replace(items: readonly KubeObject[]): void {
    this.#cache.clear();
    for (const item of items) {
      const claim = parseClaim(item);
      if (claim !== undefined) this.#cache.set(claim.name, claim);
    }
    const claims = [...this.#cache.values()];
    const { usage } = this.#options;
    usage.replaceClaims(
      claims
        .filter((claim) => claim.retention === undefined)
        .map((claim) => [claimOwner(claim.name), claim.holder, [claim.address]] as const),
    );
    usage.replaceRetentions(
      claims.flatMap(({ name, address, holder, retention }) =>
        retention === undefined
          ? []
          : [[claimOwner(name), address, { ref: holder.ref, ...retention }] as const],
      ),
      Date.now(),
    );
  }

  apply(type: "ADDED" | "MODIFIED" | "DELETED", object: KubeObject): void {
    const claim = parseClaim(object);
    const name = asRecord(object.metadata).name;
    if (typeof name !== "string") return;
    const { usage } = this.#options;
    const before = this.#cache.get(name);
    if (before?.retention !== undefined) usage.retained.drop(before.address);
    if (type === "DELETED" || claim === undefined) {
      this.#cache.delete(name);
      usage.deleteClaim(claimOwner(name));
      return;
    }
    this.#cache.set(name, claim);
    if (claim.retention !== undefined) {
      const retention = { ref: claim.holder.ref, ...claim.retention };
      usage.putRetention(claimOwner(name), claim.address, retention, Date.now());
      return;
    }
    usage.putClaim(claimOwner(name), claim.holder, [claim.address]);
    // A claim written again by its holder after a release is current: forget the release.
    const key = releaseKey(claim.holder.ref, name);
    const released = this.#released.get(key);
    if (released !== undefined && claim.writtenAt >= released) this.#released.delete(key);
  }

  // ----- ClaimPort -----------------------------------------------------------------------------

  claim(grant: Grant, signal: AbortSignal): Promise<ClaimResult> {
    const running = this.#claim(grant, signal);
    this.#inFlight.add(running);
    const forget = () => {
      this.#inFlight.delete(running);
    };
    running.then(forget, forget);
    return running;
  }

  settled(): Promise<void> | undefined {
    if (this.#inFlight.size === 0) return undefined;
    // Then one turn of the event loop, so the admissions that awaited them have acted on the
    // results (a lost claim releases its hold) before anyone decides again.
    return Promise.allSettled([...this.#inFlight]).then(
      () => new Promise<void>((resolve) => setImmediate(resolve)),
    );
  }

  async #claim(grant: Grant, signal: AbortSignal): Promise<ClaimResult> {
    const created: { name: string; resourceVersion: string }[] = [];
    const placed: string[] = [];
    for (const address of grant.addresses) {
      const result = await this.#claimAddress(address, grant, signal);
      this.#options.onClaim?.(result.kind === "created" ? "claimed" : result.kind);
      if (result.kind === "created") {
        created.push(result);
        placed.push(result.name);
        continue;
      }
      if (result.kind === "existing") {
        if (result.placed !== undefined) placed.push(result.placed);
        continue;
      }
      // All or nothing: what this attempt created goes again (a dual-stack grant's first family).
      await Promise.all(created.map((each) => this.delete(each.name, each.resourceVersion)));
      if (result.kind === "error") return result;
      this.#options.logger.info(
        {
          service: grant.ref,
          address: formatAddress(address),
          holder: result.claim.holder.ref,
          lease: result.claim.name,
        },
        `claim of ${formatAddress(address)} for ${grant.ref} lost: ${result.claim.holder.ref} claimed it first`,
      );
      return {
        kind: "lost",
        owner: claimOwner(result.claim.name),
        holder: result.claim.holder,
        address,
      };
    }
    const beyond = placed.length === 0 ? undefined : await this.#beyondQuota(grant, placed, signal);
    if (beyond === undefined) return { kind: "claimed" };
    await Promise.all(created.map((each) => this.delete(each.name, each.resourceVersion)));
    return beyond;
  }

  /**
   * Two replicas granting in one namespace at once each decided on a view without the other's
   * claim: the quota is settled on the namespace's claims as etcd has them (a quorum list),
   * ordered by the revision that created each. A grant any of whose new claims falls past the
   * quota is refused (and its new claims go again); the ones before it stand. Every replica
   * orders the same claims the same way, and a claim created after a list comes after every
   * claim in it, so of the grants racing for the last addresses, exactly as many stand as fit.
   */
  async #beyondQuota(
    grant: Grant,
    placed: readonly string[],
    signal: AbortSignal,
  ): Promise<ClaimResult | undefined> {
    const namespace = namespaceOf(grant.ref);
    const quota = this.#options.quotaOf?.(namespace);
    if (quota === undefined) return undefined;
    let listed: readonly Claim[];
    try {
      const list = await this.#options.client.list(this.#path, {
        labelSelector: namespaceClaimSelector(namespace),
        signal,
      });
      listed = list.items.flatMap((item) => parseClaim(item) ?? []);
    } catch (error) {
      return {
        kind: "error",
        message: `cannot count the claims of ${namespace}: ${describeError(error)}`,
      };
    }
    const claims = listed
      .filter(
        (claim) => claim.retention === undefined && namespaceOf(claim.holder.ref) === namespace,
      )
      .sort((a, b) => compareRevisions(a.createdRevision, b.createdRevision));
    const claimed = new Set(claims.map((claim) => addressKey(claim.address)));
    let count = new Set(quota.beside.map(addressKey).filter((key) => !claimed.has(key))).size;
    for (const claim of claims) {
      count += 1;
      if (count <= quota.quota || !placed.includes(claim.name)) continue;
      const message = `${grant.ref} would take ${formatAddress(claim.address)}, but namespace ${namespace} may hold ${quota.quota} address${quota.quota === 1 ? "" : "es"} and other grants there claimed the last of them first; free one, or raise the quota on the Namespace`;
      this.#options.logger.info({ service: grant.ref, namespace }, message);
      return { kind: "refused", reason: "QuotaExceeded", message };
    }
    return undefined;
  }

  release(grant: Grant): void {
    this.#options.usage.release(grant.ref);
  }

  recordForeign(owner: string, holder: Holder, addresses: readonly IPAddress[], now: number): void {
    this.#options.usage.recordForeign(owner, holder, addresses, now);
  }

  async #claimAddress(
    address: IPAddress,
    grant: Grant,
    signal: AbortSignal,
  ): Promise<AddressClaim> {
    const { namespace, logger } = this.#options;
    const name = leaseName(address);
    const pool =
      grant.pool ?? this.#options.pools().poolOf(address.family, address.value)?.name ?? "";
    // The validating call right after the mutating one (or a reinvocation): the claim was just
    // written for this holder, here or by the other replica, and cannot be gone yet.
    if (this.#freshlyOurs(name, grant.holder, pool)) return { kind: "existing" };
    // An UPDATE of a Service that holds the address in etcd right now: a claim of it that the
    // watch shows stands (nothing collects the claim of a holder that holds its address).
    const standing = this.#cache.get(name);
    if (
      grant.kept === true &&
      standing !== undefined &&
      standing.retention === undefined &&
      sameClaim(standing, grant.holder, pool)
    ) {
      return { kind: "existing" };
    }
    let origin = grant.origin;
    try {
      for (let round = 0; round < ROUNDS; round += 1) {
        try {
          const made = await this.create(address, grant.holder, pool, signal, origin);
          this.#wrote(name, grant.holder, pool);
          return {
            kind: "created",
            name,
            resourceVersion: String(asRecord(made.metadata).resourceVersion ?? ""),
          };
        } catch (error) {
          if (status(error) !== 409) throw error;
        }
        // Another holder's claim the watch already brought: lost, without reading it again (a
        // stale view can only make this a needless loss, never a shared address). Our own, one
        // to share, or one to take over (a retention among them) is read first.
        const cached = this.#cache.get(name);
        if (
          cached !== undefined &&
          cached.retention === undefined &&
          cached.holder.ref !== grant.ref &&
          !mayShare(grant.holder, cached.holder) &&
          this.staleReason(cached, Date.now()) === undefined
        ) {
          return { kind: "lost", claim: cached };
        }
        let current: KubeObject;
        try {
          current = await this.#options.client.request("GET", `${this.#path}/${name}`, { signal });
        } catch (error) {
          if (status(error) === 404) continue; // deleted since: create it again
          throw error;
        }
        const claim = parseClaim(current);
        if (claim === undefined) {
          return {
            kind: "error",
            message: `Lease ${namespace}/${name} exists but is not an lb-ip-guard address claim`,
          };
        }
        if (claim.holder.ref === grant.ref) {
          // Ours (a reinvocation, the validating call after the mutating one, a re-apply, a
          // retried create). An older claim is renewed, which also makes any collection based on
          // it fail its resourceVersion precondition; one whose grace is over is granted anew;
          // one whose sharing data changed is rewritten. A retention is taken back: a grant anew.
          const regranted =
            claim.retention !== undefined || Date.now() - claim.acquiredAt > this.#options.graceMs;
          const stale =
            regranted ||
            Date.now() - claim.writtenAt > TOUCH_AFTER_MS ||
            !sameClaim(claim, grant.holder, pool);
          if (!stale) return { kind: "existing" };
          const origin = grant.origin ?? retainedOrigin(claim);
          const touched = await this.#touch(current, address, grant.holder, pool, signal, {
            regranted,
            origin,
          });
          if (touched) {
            this.#wrote(name, grant.holder, pool);
            return claim.retention === undefined
              ? { kind: "existing" }
              : { kind: "existing", placed: name };
          }
          continue; // changed or deleted meanwhile: look again
        }
        if (claim.retention === undefined && mayShare(grant.holder, claim.holder)) {
          return { kind: "existing" };
        }
        // Another Service's retention: the decision gave its address away (an explicit request,
        // warned, or the one retained longest in a pool with nothing else free).
        const reason =
          claim.retention === undefined
            ? this.staleReason(claim, Date.now())
            : `retained for ${claim.holder.ref} until ${isoTime(claim.retention.until)}`;
        if (reason === undefined) return { kind: "lost", claim };
        logger.info(
          { lease: name, holder: claim.holder.ref, service: grant.ref },
          `claim ${name} of ${claim.holder.ref} is stale (${reason}); taking it over for ${grant.ref}`,
        );
        origin ??= retainedOrigin(claim);
        if (await this.delete(name, claim.resourceVersion)) this.#options.onCollected?.(1);
      }
      return { kind: "error", message: `the claim ${name} kept changing; gave up` };
    } catch (error) {
      const message = describeError(error);
      logger.warn(
        { service: grant.ref, address: formatAddress(address), error: message },
        `cannot claim ${formatAddress(address)} for ${grant.ref}: ${message}`,
      );
      return { kind: "error", message };
    }
  }

  #freshlyOurs(name: string, holder: Holder, pool: string): boolean {
    const now = Date.now();
    const same = (other: { holder: Holder; pool: string }) => sameClaim(other, holder, pool);
    const deleted = this.#deleted.get(name);
    if (deleted !== undefined && now - deleted < TOUCH_AFTER_MS) return false;
    const written = this.#written.get(name);
    if (written !== undefined && now - written.at < TOUCH_AFTER_MS && same(written)) return true;
    const cached = this.#cache.get(name);
    return (
      cached !== undefined &&
      cached.retention === undefined &&
      now - cached.writtenAt < TOUCH_AFTER_MS &&
      same(cached)
    );
  }

  #wrote(name: string, holder: Holder, pool: string): void {
    const now = Date.now();
    for (const [key, { at }] of this.#written) {
      if (now - at >= TOUCH_AFTER_MS) this.#written.delete(key);
    }
    for (const [key, at] of this.#deleted) {
      if (now - at >= TOUCH_AFTER_MS) this.#deleted.delete(key);
    }
    this.#written.set(name, { holder, pool, at: now });
  }

  /** Rewrites our own claim (time, sharing data); false when it changed or went meanwhile. */
  async #touch(
    current: KubeObject,
    address: IPAddress,
    holder: Holder,
    pool: string,
    signal: AbortSignal,
    grant: { readonly regranted: boolean; readonly origin: string | undefined },
  ): Promise<boolean> {
    const fresh = this.#lease(address, holder, pool, grant.origin);
    const updated = renewedLease(current, fresh, grant.regranted);
    try {
      const name = String(asRecord(current.metadata).name);
      await this.#options.client.request("PUT", `${this.#path}/${name}`, { body: updated, signal });
      return true;
    } catch (error) {
      if (status(error) === 409 || status(error) === 404) return false;
      throw error;
    }
  }

  /** Whether a holder's release keeps its address retained (`--retain` is not 0). */
  get retaining(): boolean {
    return (this.#options.retainMs ?? 0) > 0;
  }

  /**
   * Rewrites a claim whose holder gave its address up as a retention from `since` (for
   * `--retain`), if it is still at its resourceVersion; true when this call did (a 409: another
   * replica did, or the holder claimed it again).
   */
  async retain(claim: Claim, since: number): Promise<boolean> {
    const until = since + (this.#options.retainMs ?? 0);
    try {
      const current = await this.#options.client.request("GET", `${this.#path}/${claim.name}`);
      if (asRecord(current.metadata).resourceVersion !== claim.resourceVersion) return false;
      await this.#options.client.request("PUT", `${this.#path}/${claim.name}`, {
        body: retainedLease(current, since, until),
      });
      return true;
    } catch (error) {
      if (status(error) === 409 || status(error) === 404) return false;
      this.#options.logger.warn(
        { lease: claim.name, error: describeError(error) },
        `cannot retain claim ${claim.name}: ${describeError(error)}`,
      );
      return false;
    }
  }

  /**
   * Deletes a claim if it is still at `resourceVersion`; true when this call deleted it. A 409
   * (someone changed it: it is theirs now) or 404 (gone already) is not an error.
   */
  async delete(name: string, resourceVersion: string): Promise<boolean> {
    this.#written.delete(name);
    this.#deleted.set(name, Date.now());
    try {
      await this.#options.client.request("DELETE", `${this.#path}/${name}`, {
        body: {
          apiVersion: "v1",
          kind: "DeleteOptions",
          ...(resourceVersion !== "" && { preconditions: { resourceVersion } }),
        },
      });
      return true;
    } catch (error) {
      if (status(error) === 409 || status(error) === 404) return false;
      this.#options.logger.warn(
        { lease: name, error: describeError(error) },
        `cannot delete claim ${name}: ${describeError(error)}`,
      );
      return false;
    }
  }

  #view(): HolderView {
    const usage = this.#options.usage;
    return {
      // The Service, or this replica's hold of an admission still in flight.
      holds: (ref, address) => usage.isHeldBy(ref, address),
      releasedAt: (ref, lease) => this.#released.get(releaseKey(ref, lease)),
    };
  }

  // ----- what the repair (collection and adoption) uses ---------------------------------------

  /** The claims the watch shows now. */
  claims(): Claim[] {
    return [...this.#cache.values()];
  }

  /** The claim of the Lease `name`, as the watch shows it. */
  claimNamed(name: string): Claim | undefined {
    return this.#cache.get(name);
  }

  /**
   * Why a claim may be deleted now (see collectReason), or undefined: never while the caches
   * cannot be trusted to say its holder is gone.
   */
  staleReason(claim: Claim, now: number): string | undefined {
    if (!this.#options.canCollect()) return undefined;
    return collectReason(claim, this.#view(), now, this.#options.graceMs);
  }

  /** When this process saw the holder of `claim` give its address up, if it did. */
  releasedAt(claim: Claim): number | undefined {
    return this.#released.get(releaseKey(claim.holder.ref, claim.name));
  }

  /** The Services watch saw `ref` give up the address of the Lease `lease` at `now`. */
  noteReleased(ref: string, lease: string, now: number): void {
    this.#released.set(releaseKey(ref, lease), now);
  }

  /** Forgets the releases too old to matter to the rule any more. */
  forgetOldReleases(now: number): void {
    for (const [key, at] of this.#released) {
      if (now - at > this.#options.graceMs + RELEASE_MARGIN_MS) this.#released.delete(key);
    }
  }

  /** Creates the claim Lease of `address` for `holder` (a 409 if it exists: create-if-absent). */
  create(
    address: IPAddress,
    holder: Holder,
    pool: string,
    signal?: AbortSignal,
    origin?: string,
  ): Promise<Record<string, unknown>> {
    const lease = this.#lease(address, holder, pool, origin);
    return this.#options.client.request("POST", this.#path, { body: lease, signal });
  }

  /** The claim Lease of `address` for `holder`, written now by this replica. */
  #lease(address: IPAddress, holder: Holder, pool: string, origin?: string): KubeObject {
    const { namespace } = this.#options;
    return claimLease(namespace, address, holder, pool, Date.now(), this.#identity, origin);
  }
}

/** A claim (or one just written) for exactly this holder's sharing data and pool. */
function sameClaim(claim: { holder: Holder; pool: string }, holder: Holder, pool: string): boolean {
  return (
    JSON.stringify(claim.holder) === JSON.stringify(holder) && (pool === "" || claim.pool === pool)
  );
}

const releaseKey = (ref: string, lease: string) => `${ref}\n${lease}`;

/** What a grant Event says of an address taken from a retention (back, or over). */
function retainedOrigin(claim: Claim): string | undefined {
  return claim.retention === undefined
    ? undefined
    : `retained for ${claim.holder.ref} since ${isoTime(claim.retention.since)}`;
}

/** resourceVersions as etcd writes them (revisions, as integers); else as text. */
function compareRevisions(a: string, b: string): number {
  if (/^\d+$/.test(a) && /^\d+$/.test(b)) {
    const [x, y] = [BigInt(a), BigInt(b)];
    return x < y ? -1 : x > y ? 1 : 0;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

function status(error: unknown): number | undefined {
  return error instanceof KubeApiError ? error.status : undefined;
}
