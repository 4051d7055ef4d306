// The Lease of an address claim: one coordination.k8s.io/v1 Lease per address in the webhook's
// namespace, what it is called, what it records so that any replica can apply MetalLB's sharing
// rules to it, and when it is stale (the rule both the claimer's take-over and the repair's
// collection apply). Pure. See docs/decisions/0005-address-claims-with-leases.md.

import { asRecord } from "../../base/objects.ts";
import { formatAddress, type IPAddress, parseAddress } from "../../ipam/address.ts";
import type { Holder } from "../../ipam/usage.ts";
import type { KubeObject } from "../reflector.ts";

const MANAGED_BY_LABEL = "app.kubernetes.io/managed-by";
const MANAGED_BY = "lb-ip-guard";
/** Selects the claims among the namespace's Leases (others, e.g. a leader election, are not). */
export const CLAIM_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY}`;
/** The namespace of a claim's holder, so that a quota's count lists only that namespace's. */
const NAMESPACE_LABEL = "lb-ip-guard.dev/service-namespace";

/** Selects the claims of Services of `namespace`. */
export const namespaceClaimSelector = (namespace: string): string =>
  `${CLAIM_SELECTOR},${NAMESPACE_LABEL}=${namespace}`;

/** What a claim records, so that any replica can apply MetalLB's sharing rules to it. */
const CLAIM_ANNOTATION = {
  address: "lb-ip-guard.dev/address",
  holder: "lb-ip-guard.dev/holder",
  pool: "lb-ip-guard.dev/pool",
  sharingKey: "lb-ip-guard.dev/sharing-key",
  ports: "lb-ip-guard.dev/ports",
  backendKey: "lb-ip-guard.dev/backend-key",
  claimedBy: "lb-ip-guard.dev/claimed-by",
  /** Set once the holder gave the address up: the claim then retains it (design.md). */
  retainedSince: "lb-ip-guard.dev/retained-since",
  retainedUntil: "lb-ip-guard.dev/retained-until",
  /** Why the holder got the address, when not simply free: the grant Event names it. */
  origin: "lb-ip-guard.dev/origin",
  /**
   * The resourceVersion the claim was created at, kept once a renewal changes resourceVersion:
   * quotas order a namespace's claims by it (claimer.ts).
   */
  createdAt: "lb-ip-guard.dev/created-revision",
} as const;

/**
 * A holder seen giving an address up frees its claim at once, unless the claim was written less
 * than this before (then it may be a newer admission of the same name; clocks of two replicas
 * may differ a little): such a claim goes once its admission's tail is over.
 */
export const RELEASE_MARGIN_MS = 2000;
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

/** The usage-index owner of a claim: `claim:<lease>`. */
export const claimOwner = (lease: string): string => `claim:${lease}`;

/** A claim as read from its Lease. */
export interface Claim {
  readonly name: string;
  readonly resourceVersion: string;
  readonly address: IPAddress;
  readonly holder: Holder;
  readonly pool: string;
  /** The replica that last wrote the claim (its pod name). */
  readonly claimedBy: string;
  /**
   * When the address was first granted to this holder (acquireTime, else creation; ms): the
   * grace period counts from here, however often the holder's admissions repeat.
   */
  readonly acquiredAt: number;
  /** When the claim was last written: the latest of renewTime, acquireTime, creation (ms). */
  readonly writtenAt: number;
  /**
   * Present once the holder gave the address up: the claim no longer holds the address, it
   * retains it for the holder's namespace and name (retained.ts) until `until`.
   */
  readonly retention?: { readonly since: number; readonly until: number };
  readonly origin?: string;
  /** The resourceVersion it was created at (its place in its namespace's quota). */
  readonly createdRevision: string;
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
  const time = (value: unknown) => (typeof value === "string" ? Date.parse(value) : Number.NaN);
  const times = [spec.renewTime, spec.acquireTime, metadata.creationTimestamp]
    .map(time)
    .filter((value) => !Number.isNaN(value));
  const acquired = [spec.acquireTime, metadata.creationTimestamp]
    .map(time)
    .find((value) => !Number.isNaN(value));
  const ports = text(CLAIM_ANNOTATION.ports) ?? "";
  const since = time(text(CLAIM_ANNOTATION.retainedSince));
  const until = time(text(CLAIM_ANNOTATION.retainedUntil));
  const retained = !Number.isNaN(since) && !Number.isNaN(until);
  const resourceVersion =
    typeof metadata.resourceVersion === "string" ? metadata.resourceVersion : "";
  const origin = text(CLAIM_ANNOTATION.origin);
  return {
    name,
    resourceVersion,
    createdRevision: text(CLAIM_ANNOTATION.createdAt) ?? resourceVersion,
    address: parsed.value,
    holder: {
      ref,
      sharingKey: text(CLAIM_ANNOTATION.sharingKey) ?? "",
      ports: ports === "" ? [] : ports.split(","),
      backendKey: text(CLAIM_ANNOTATION.backendKey) ?? "",
    },
    pool: text(CLAIM_ANNOTATION.pool) ?? "",
    claimedBy: text(CLAIM_ANNOTATION.claimedBy) ?? "",
    acquiredAt: acquired ?? 0,
    writtenAt: times.length > 0 ? Math.max(...times) : 0,
    ...(retained && { retention: { since, until } }),
    ...(origin !== undefined && { origin }),
  };
}

/** The annotations that turn a claim into a retention, for a write (or a merge patch). */
export function retentionAnnotations(since: number, until: number): Record<string, string> {
  return {
    [CLAIM_ANNOTATION.retainedSince]: new Date(since).toISOString(),
    [CLAIM_ANNOTATION.retainedUntil]: new Date(until).toISOString(),
  };
}

/** The retention annotations' keys: a holder's new claim of the address drops them. */
export const RETENTION_KEYS: readonly string[] = [
  CLAIM_ANNOTATION.retainedSince,
  CLAIM_ANNOTATION.retainedUntil,
];

/**
 * `current` (a claim Lease as read) turned into a retention from `since` until `until`; the
 * write is guarded by the resourceVersion it keeps.
 */
export function retainedLease(current: KubeObject, since: number, until: number): KubeObject {
  const metadata = asRecord(current.metadata);
  return {
    ...current,
    metadata: {
      ...metadata,
      annotations: { ...asRecord(metadata.annotations), ...retentionAnnotations(since, until) },
    },
  };
}

/** The annotations a claim carries for `holder`. */
function claimAnnotations(
  address: IPAddress,
  holder: Holder,
  pool: string,
  claimedBy: string,
  origin: string | undefined,
): Record<string, string> {
  return {
    ...(origin !== undefined && { [CLAIM_ANNOTATION.origin]: origin }),
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
  origin?: string,
): KubeObject {
  const time = microTime(now);
  const serviceNamespace = holder.ref.slice(0, holder.ref.indexOf("/"));
  return {
    apiVersion: "coordination.k8s.io/v1",
    kind: "Lease",
    metadata: {
      name: leaseName(address),
      namespace,
      labels: { [MANAGED_BY_LABEL]: MANAGED_BY, [NAMESPACE_LABEL]: serviceNamespace },
      annotations: claimAnnotations(address, holder, pool, claimedBy, origin),
    },
    spec: { holderIdentity: holder.ref, acquireTime: time, renewTime: time },
  };
}

/**
 * How long an admission can still take after its validating call (the other webhooks, the write
 * to etcd): a claim its holder renewed is kept this long after the renewal (or one grace, if
 * shorter), even past its grace.
 */
export const ADMISSION_TAIL_MS = 10_000;

/** When the admission that last wrote `claim` is over: its tail after the write, or one grace. */
export function admissionTailEnd(claim: Claim, graceMs: number): number {
  return claim.writtenAt + Math.min(ADMISSION_TAIL_MS, graceMs);
}

/**
 * `current` (a claim Lease as read) written again for its holder at the time of `fresh` (its
 * claimLease of now): annotations, holder and renewTime from `fresh`, and acquireTime too when
 * the earlier grant's grace was over (`regranted`: a grant anew). Everything else is kept (the
 * resourceVersion the write is guarded by, other annotations), but a retention (the holder takes
 * its address back) and, for a grant anew, the place in the quota order (it is a new claim
 * then; its place is this write's). A renewal never moves
 * acquireTime: the grace counts from the first grant, however often the holder's admissions
 * repeat, so a Service that never appears loses its claim at most {@link ADMISSION_TAIL_MS}
 * after its grace.
 */
export function renewedLease(
  current: KubeObject,
  fresh: KubeObject,
  regranted: boolean,
): KubeObject {
  const metadata = asRecord(current.metadata);
  const spec = asRecord(current.spec);
  const renewed = asRecord(fresh.spec);
  const annotations: Record<string, unknown> = {
    ...asRecord(metadata.annotations),
    ...asRecord(asRecord(fresh.metadata).annotations),
  };
  for (const key of RETENTION_KEYS) delete annotations[key];
  if (regranted) delete annotations[CLAIM_ANNOTATION.createdAt];
  else if (annotations[CLAIM_ANNOTATION.createdAt] === undefined) {
    annotations[CLAIM_ANNOTATION.createdAt] = metadata.resourceVersion;
  }
  return {
    ...current,
    metadata: {
      ...metadata,
      labels: { ...asRecord(metadata.labels), ...asRecord(asRecord(fresh.metadata).labels) },
      annotations,
    },
    spec: {
      ...spec,
      holderIdentity: renewed.holderIdentity,
      ...(regranted && { acquireTime: renewed.acquireTime }),
      renewTime: renewed.renewTime,
    },
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
 * is kept. Otherwise it goes once the grace period since its first grant is over (its admission
 * was refused later, its Service is gone, or it never existed) and its last renewal is
 * {@link ADMISSION_TAIL_MS} old, or when the holder was seen giving the address up: at once if
 * that was after the claim was written, else once the last renewal is that tail old (not after
 * the grace: a Service created and deleted within seconds must not keep its address a minute).
 * A retention holds nothing: it goes when it ends.
 */
export function collectReason(
  claim: Claim,
  view: HolderView,
  now: number,
  graceMs: number,
): string | undefined {
  const { ref } = claim.holder;
  if (claim.retention !== undefined) {
    return now < claim.retention.until
      ? undefined
      : `the retention of ${formatAddress(claim.address)} for ${ref} ended`;
  }
  if (view.holds(ref, claim.address)) return undefined;
  const tailOver = now > admissionTailEnd(claim, graceMs);
  const released = view.releasedAt(ref, claim.name);
  // A release right around the write may be an older Service of the name seen after a newer
  // admission wrote the claim; once that admission's tail is over, its Service would show.
  if (released !== undefined && (released - claim.writtenAt > RELEASE_MARGIN_MS || tailOver)) {
    return `${ref} gave up ${formatAddress(claim.address)}`;
  }
  const age = now - claim.acquiredAt;
  if (age > graceMs && tailOver) {
    return `${ref} does not hold ${formatAddress(claim.address)} and was granted it ${Math.round(age / 1000)} s ago (grace ${graceMs / 1000} s)`;
  }
  return undefined;
}

/** A Kubernetes MicroTime: RFC 3339 with six fractional digits. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}
