// Address claims in the Kubernetes API: one coordination.k8s.io/v1 Lease per address, in the
// webhook's own namespace, created with create-if-absent semantics, so etcd decides which of two
// replicas admitting the same address at the same moment wins (as KEP-1880's IPAddress objects
// do for ClusterIPs). Also: the claims watch's view of them, the collection of claims whose
// holder is gone, and the adoption of Services that hold addresses without a claim.
// See docs/decisions/0005-address-claims-with-leases.md.

import { hostname } from "node:os";
import type { Logger } from "pino";
import type { Grant } from "../admission/holds.ts";
import type { ClaimPort, ClaimResult } from "../admission/ports.ts";
import { asRecord } from "../base/objects.ts";
import { formatAddress, type IPAddress, parseAddress } from "../ipam/address.ts";
import type { PoolSet } from "../ipam/pool.ts";
import { type Holder, mayShare } from "../ipam/usage.ts";
import { describeError, KubeApiError, type KubeClient } from "./kube.ts";
import type { KubeObject } from "./reflector.ts";
import type { ServiceUsage } from "./service-usage.ts";

const MANAGED_BY_LABEL = "app.kubernetes.io/managed-by";
const MANAGED_BY = "lb-ip-guard";
/** Selects the claims among the namespace's Leases (others, e.g. a leader election, are not). */
export const CLAIM_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY}`;

/** What a claim records, so that any replica can apply MetalLB's sharing rules to it. */
const CLAIM_ANNOTATION = {
  address: "lb-ip-guard.dev/address",
  holder: "lb-ip-guard.dev/holder",
  pool: "lb-ip-guard.dev/pool",
  sharingKey: "lb-ip-guard.dev/sharing-key",
  ports: "lb-ip-guard.dev/ports",
  backendKey: "lb-ip-guard.dev/backend-key",
  claimedBy: "lb-ip-guard.dev/claimed-by",
} as const;

/**
 * A claim older than this is rewritten when its holder claims it again (see `claim`); one
 * younger is known to stand without asking the API: nothing deletes a claim that young (the
 * grace period is at least this long, and a release counts only {@link RELEASE_MARGIN_MS} after
 * the write).
 */
const TOUCH_AFTER_MS = 1000;
/**
 * A holder seen giving an address up frees its claim at once, unless the claim was written less
 * than this before (then it may be a newer admission of the same name; clocks of two replicas
 * may differ a little).
 */
export const RELEASE_MARGIN_MS = 2000;
/** Create-if-absent rounds for one address (each round: a POST, and a GET or a DELETE). */
const ROUNDS = 4;
/** Adoptions in flight at once during a collection pass. */
const ADOPT_CONCURRENCY = 4;

/**
 * The Lease name of an address: `ip-` and the canonical text, lowercase, `.` and `:` as `-`
 * (`ip-192-168-35-100`, `ip-fd00-10--5`). A name may not end in `-`, so an IPv6 address whose
 * canonical form ends in `::` gets a `0` (`fd00::` → `ip-fd00--0`, which no other address
 * maps to). IPv4 names have four groups; IPv6 names with no `--` have eight: they never meet.
 */
export function leaseName(address: IPAddress): string {
  const name = `ip-${formatAddress(address).toLowerCase().replace(/[.:]/g, "-")}`;
  return name.endsWith("-") ? `${name}0` : name;
}

const claimOwner = (lease: string): string => `claim:${lease}`;

/** A claim as read from its Lease. */
export interface Claim {
  readonly name: string;
  readonly resourceVersion: string;
  readonly address: IPAddress;
  readonly holder: Holder;
  readonly pool: string;
  /** When the claim was last written: the latest of renewTime, acquireTime, creation (ms). */
  readonly writtenAt: number;
}

/** Reads a claim from a Lease; undefined when the Lease is not a well-formed claim. */
export function parseClaim(lease: KubeObject): Claim | undefined {
  const metadata = asRecord(lease.metadata);
  const spec = asRecord(lease.spec);
  const annotations = asRecord(metadata.annotations);
  const text = (key: string): string | undefined =>
    typeof annotations[key] === "string" ? (annotations[key] as string) : undefined;
  const name = typeof metadata.name === "string" ? metadata.name : "";
  const parsed = parseAddress(text(CLAIM_ANNOTATION.address) ?? "");
  const ref = text(CLAIM_ANNOTATION.holder) ?? "";
  if (!parsed.ok || ref === "" || leaseName(parsed.value) !== name) return undefined;
  const times = [spec.renewTime, spec.acquireTime, metadata.creationTimestamp]
    .map((value) => (typeof value === "string" ? Date.parse(value) : Number.NaN))
    .filter((value) => !Number.isNaN(value));
  const ports = text(CLAIM_ANNOTATION.ports) ?? "";
  return {
    name,
    resourceVersion: typeof metadata.resourceVersion === "string" ? metadata.resourceVersion : "",
    address: parsed.value,
    holder: {
      ref,
      sharingKey: text(CLAIM_ANNOTATION.sharingKey) ?? "",
      ports: ports === "" ? [] : ports.split(","),
      backendKey: text(CLAIM_ANNOTATION.backendKey) ?? "",
    },
    pool: text(CLAIM_ANNOTATION.pool) ?? "",
    writtenAt: times.length > 0 ? Math.max(...times) : 0,
  };
}

/** The annotations a claim carries for `holder`. */
function claimAnnotations(
  address: IPAddress,
  holder: Holder,
  pool: string,
  claimedBy: string,
): Record<string, string> {
  return {
    [CLAIM_ANNOTATION.address]: formatAddress(address),
    [CLAIM_ANNOTATION.holder]: holder.ref,
    [CLAIM_ANNOTATION.pool]: pool,
    [CLAIM_ANNOTATION.sharingKey]: holder.sharingKey,
    [CLAIM_ANNOTATION.ports]: holder.ports.join(","),
    [CLAIM_ANNOTATION.backendKey]: holder.backendKey,
    [CLAIM_ANNOTATION.claimedBy]: claimedBy,
  };
}

/** The Lease that claims `address` for `holder`. */
export function claimLease(
  namespace: string,
  address: IPAddress,
  holder: Holder,
  pool: string,
  now: number,
  claimedBy: string,
): KubeObject {
  const time = microTime(now);
  return {
    apiVersion: "coordination.k8s.io/v1",
    kind: "Lease",
    metadata: {
      name: leaseName(address),
      namespace,
      labels: { [MANAGED_BY_LABEL]: MANAGED_BY },
      annotations: claimAnnotations(address, holder, pool, claimedBy),
    },
    spec: { holderIdentity: holder.ref, acquireTime: time, renewTime: time },
  };
}

/** What the collection rule needs to know of the cluster besides the claim. */
export interface HolderView {
  /** Whether the Service `ref` holds `address` (requests it or has it in status), per the cache. */
  holds(ref: string, address: IPAddress): boolean;
  /** When this process saw `ref` give up the address of `lease` (deleted, changed), if it did. */
  releasedAt(ref: string, lease: string): number | undefined;
}

/**
 * Why a claim may be deleted now, or undefined to keep it. A claim whose holder holds the address
 * is kept. Otherwise it goes once it is older than the grace period (its admission was refused
 * later, or its Service is gone), or at once when the holder was seen giving the address up after
 * the claim was written.
 */
export function collectReason(
  claim: Claim,
  view: HolderView,
  now: number,
  graceMs: number,
): string | undefined {
  const { ref } = claim.holder;
  if (view.holds(ref, claim.address)) return undefined;
  const released = view.releasedAt(ref, claim.name);
  if (released !== undefined && released - claim.writtenAt > RELEASE_MARGIN_MS) {
    return `${ref} gave up ${formatAddress(claim.address)}`;
  }
  const age = now - claim.writtenAt;
  if (age > graceMs) {
    return `${ref} does not hold ${formatAddress(claim.address)} and the claim is ${Math.round(age / 1000)} s old (grace ${graceMs / 1000} s)`;
  }
  return undefined;
}

export type ClaimMetric = "claimed" | "existing" | "lost" | "error";

export interface ClaimsOptions {
  readonly client: KubeClient;
  /** The webhook's own namespace: the Leases live there. */
  readonly namespace: string;
  readonly usage: ServiceUsage;
  readonly pools: () => PoolSet;
  /** A claim whose holder does not hold its address is deleted after this long. */
  readonly graceMs: number;
  /** How often collection and adoption run. */
  readonly intervalMs: number;
  /**
   * Whether the caches are current enough to judge a holder gone (synced, and the Services and
   * claims watches healthy for a while); collection and adoption wait while not.
   */
  readonly canCollect: () => boolean;
  readonly logger: Logger;
  /** Written on each claim, for people reading Leases: the pod name by default. */
  readonly identity?: string;
  readonly onClaim?: (result: ClaimMetric) => void;
  readonly onCollected?: (count: number) => void;
}

type AddressClaim =
  | { readonly kind: "created"; readonly name: string; readonly resourceVersion: string }
  | { readonly kind: "existing" }
  | { readonly kind: "lost"; readonly claim: Claim }
  | { readonly kind: "error"; readonly message: string };

/** The claims of every replica, and this replica's part in making, collecting and adopting them. */
export class Claims implements ClaimPort {
  readonly #options: ClaimsOptions;
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
  #timer: NodeJS.Timeout | undefined;
  #passing: Promise<void> | undefined;
  #stopped = false;

  constructor(options: ClaimsOptions) {
    this.#options = options;
    this.#path = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(options.namespace)}/leases`;
    this.#identity = options.identity ?? hostname();
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

  /** Every Lease after a (re)list. */
  replace(items: readonly KubeObject[]): void {
    this.#cache.clear();
    for (const item of items) {
      const claim = parseClaim(item);
      if (claim !== undefined) this.#cache.set(claim.name, claim);
    }
    this.#options.usage.replaceClaims(
      [...this.#cache.values()].map(
        (claim) => [claimOwner(claim.name), claim.holder, [claim.address]] as const,
      ),
    );
  }

  apply(type: "ADDED" | "MODIFIED" | "DELETED", object: KubeObject): void {
    const claim = parseClaim(object);
    const name = asRecord(object.metadata).name;
    if (typeof name !== "string") return;
    if (type === "DELETED" || claim === undefined) {
      this.#cache.delete(name);
      this.#options.usage.deleteClaim(claimOwner(name));
      return;
    }
    this.#cache.set(name, claim);
    this.#options.usage.putClaim(claimOwner(name), claim.holder, [claim.address]);
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
    for (const address of grant.addresses) {
      const result = await this.#claimAddress(address, grant, signal);
      this.#options.onClaim?.(result.kind === "created" ? "claimed" : result.kind);
      if (result.kind === "created") {
        created.push(result);
        continue;
      }
      if (result.kind === "existing") continue;
      // All or nothing: what this attempt created goes again (a dual-stack grant's first family).
      await Promise.all(created.map((each) => this.#delete(each.name, each.resourceVersion)));
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
    return { kind: "claimed" };
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
    if (grant.kept === true && standing !== undefined && sameClaim(standing, grant.holder, pool)) {
      return { kind: "existing" };
    }
    try {
      for (let round = 0; round < ROUNDS; round += 1) {
        const lease = claimLease(
          namespace,
          address,
          grant.holder,
          pool,
          Date.now(),
          this.#identity,
        );
        try {
          const made = await this.#options.client.request("POST", this.#path, {
            body: lease,
            signal,
          });
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
        // to share, or one to take over is read first.
        const cached = this.#cache.get(name);
        if (
          cached !== undefined &&
          cached.holder.ref !== grant.ref &&
          !mayShare(grant.holder, cached.holder) &&
          this.#collectable(cached) === undefined
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
          // Ours (a reinvocation, the validating call after the mutating one, a re-apply). An
          // older claim is rewritten, which also makes any collection based on it fail its
          // resourceVersion precondition; so is one whose sharing data changed.
          const stale =
            Date.now() - claim.writtenAt > TOUCH_AFTER_MS || !sameClaim(claim, grant.holder, pool);
          if (!stale) return { kind: "existing" };
          const touched = await this.#touch(current, address, grant.holder, pool, signal);
          if (touched) {
            this.#wrote(name, grant.holder, pool);
            return { kind: "existing" };
          }
          continue; // changed or deleted meanwhile: look again
        }
        if (mayShare(grant.holder, claim.holder)) return { kind: "existing" };
        const reason = this.#collectable(claim);
        if (reason === undefined) return { kind: "lost", claim };
        logger.info(
          { lease: name, holder: claim.holder.ref, service: grant.ref },
          `claim ${name} of ${claim.holder.ref} is stale (${reason}); taking it over for ${grant.ref}`,
        );
        if (await this.#delete(name, claim.resourceVersion)) this.#options.onCollected?.(1);
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

  /** Why another holder's claim may be deleted now (see collectReason), or undefined. */
  #collectable(claim: Claim): string | undefined {
    if (!this.#options.canCollect()) return undefined;
    return collectReason(claim, this.#view(), Date.now(), this.#options.graceMs);
  }

  #freshlyOurs(name: string, holder: Holder, pool: string): boolean {
    const now = Date.now();
    const same = (other: { holder: Holder; pool: string }) => sameClaim(other, holder, pool);
    const deleted = this.#deleted.get(name);
    if (deleted !== undefined && now - deleted < TOUCH_AFTER_MS) return false;
    const written = this.#written.get(name);
    if (written !== undefined && now - written.at < TOUCH_AFTER_MS && same(written)) return true;
    const cached = this.#cache.get(name);
    return cached !== undefined && now - cached.writtenAt < TOUCH_AFTER_MS && same(cached);
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
  ): Promise<boolean> {
    const metadata = asRecord(current.metadata);
    const spec = asRecord(current.spec);
    const updated = {
      ...current,
      metadata: {
        ...metadata,
        annotations: {
          ...asRecord(metadata.annotations),
          ...claimAnnotations(address, holder, pool, this.#identity),
        },
      },
      spec: { ...spec, holderIdentity: holder.ref, renewTime: microTime(Date.now()) },
    };
    try {
      await this.#options.client.request("PUT", `${this.#path}/${String(metadata.name)}`, {
        body: updated,
        signal,
      });
      return true;
    } catch (error) {
      if (status(error) === 409 || status(error) === 404) return false;
      throw error;
    }
  }

  /**
   * Deletes a claim if it is still at `resourceVersion`; true when this call deleted it. A 409
   * (someone changed it: it is theirs now) or 404 (gone already) is not an error.
   */
  async #delete(name: string, resourceVersion: string): Promise<boolean> {
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

  // ----- releases, collection, adoption --------------------------------------------------------

  /**
   * The Services watch saw `ref` give up `addresses` (deleted, or changed to other ones): their
   * claims go now rather than after the grace period, so a deleted Service's address is free for
   * the next one at once.
   */
  serviceReleased(ref: string, addresses: readonly IPAddress[], now: number): void {
    for (const address of addresses) {
      const name = leaseName(address);
      this.#released.set(releaseKey(ref, name), now);
      const claim = this.#cache.get(name);
      if (claim === undefined || claim.holder.ref !== ref) continue;
      void this.#collect(claim, now);
    }
  }

  async #collect(claim: Claim, now: number): Promise<boolean> {
    if (!this.#options.canCollect()) return false;
    const reason = collectReason(claim, this.#view(), now, this.#options.graceMs);
    if (reason === undefined) return false;
    if (!(await this.#delete(claim.name, claim.resourceVersion))) return false;
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
    const { graceMs, logger } = this.#options;
    for (const [key, at] of this.#released) {
      if (now - at > graceMs + RELEASE_MARGIN_MS) this.#released.delete(key);
    }
    for (const claim of [...this.#cache.values()]) {
      if (this.#stopped) return;
      await this.#collect(claim, now);
    }
    // Adoption: every address a Service holds gets a claim, if it has none (Services that predate
    // the webhook, or were written while it was down). Create-if-absent: a 409 means another
    // replica (or an admission) was first, which is as good.
    const pools = this.#options.pools();
    const missing: { address: IPAddress; holder: Holder }[] = [];
    const seen = new Set<string>();
    for (const [owner, holder, addresses] of this.#options.usage.index.entries()) {
      if (owner !== holder.ref) continue; // holds and claims, not Services
      for (const address of addresses) {
        const name = leaseName(address);
        if (this.#cache.has(name) || seen.has(name)) continue;
        seen.add(name);
        missing.push({ address, holder });
      }
    }
    let adopted = 0;
    const next = async (): Promise<void> => {
      for (let item = missing.shift(); item !== undefined; item = missing.shift()) {
        if (this.#stopped) return;
        const { address, holder } = item;
        const pool = pools.poolOf(address.family, address.value)?.name ?? "";
        const lease = claimLease(
          this.#options.namespace,
          address,
          holder,
          pool,
          Date.now(),
          this.#identity,
        );
        try {
          await this.#options.client.request("POST", this.#path, { body: lease });
          adopted += 1;
        } catch (error) {
          if (status(error) === 409) continue;
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
    await this.#passing;
  }
}

/** A claim (or one just written) for exactly this holder's sharing data and pool. */
function sameClaim(claim: { holder: Holder; pool: string }, holder: Holder, pool: string): boolean {
  return (
    JSON.stringify(claim.holder) === JSON.stringify(holder) && (pool === "" || claim.pool === pool)
  );
}

const releaseKey = (ref: string, lease: string) => `${ref}\n${lease}`;

/** A Kubernetes MicroTime: RFC 3339 with six fractional digits. */
function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

function status(error: unknown): number | undefined {
  return error instanceof KubeApiError ? error.status : undefined;
}
