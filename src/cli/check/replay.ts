// The replay behind `check`: each Service goes through the webhook's own admission path, as the
// API server would send it (the mutating webhook, its patch applied, then the validating one; an
// UPDATE with the stored object when the Service already exists), so CI and `kubectl apply`
// cannot disagree. What is admitted is recorded, as the webhook's watch would record it. The
// view holds what the webhook's holds of the address lifecycle too: retained addresses,
// reservations (an admitted AddressReservation of the manifests joins them), quotas, and the
// pending claims that hold an address.

import {
  type AdmissionContext,
  type AdmissionOutcome,
  admit,
  withStoredStatus,
} from "../../admission/admit.ts";
import { applyPatch, type PatchOperation } from "../../admission/patch.ts";
import type { AdmissionRequest } from "../../admission/review.ts";
import { asRecord } from "../../base/objects.ts";
import { claimOwner } from "../../cluster/claims/lease.ts";
import { formatAddressList, type IPAddress, sameAddress } from "../../ipam/address.ts";
import {
  type ClusterView,
  decide,
  externalOwner,
  holderOf,
  type Policy,
  type ReasonCode,
  recordService,
  servedAddresses,
  usageEntriesOf,
} from "../../ipam/decide.ts";
import type { Labels } from "../../ipam/labels.ts";
import type { PoolSet } from "../../ipam/pool.ts";
import {
  RESERVATION_API_VERSION,
  RESERVATION_GROUP,
  RESERVATION_KIND,
  ReservationIndex,
  type ReservationSpec,
} from "../../ipam/reservations.ts";
import { RetainedAddresses } from "../../ipam/retained.ts";
import type { ServiceObject } from "../../ipam/service.ts";
import { UsageIndex } from "../../ipam/usage.ts";
import type { Lifecycle } from "./lifecycle.ts";

/** What `check` reports of one Service. */
export interface Verdict {
  readonly kind: "allowed" | "assigned" | "denied";
  readonly addresses: readonly IPAddress[];
  readonly pool: string | undefined;
  readonly reason: ReasonCode | undefined;
  readonly message: string;
  /** What the webhooks would return as admission warnings, deduplicated. */
  readonly warnings: readonly string[];
  /** The mutating webhook's patch (what `--assign` writes). */
  readonly patch: readonly PatchOperation[];
  /** Admitted under the ratchet: the refusal the stored Service meets too (the message warns). */
  readonly ratchet?: ReasonCode;
}

export interface ReplayOptions {
  readonly pools: PoolSet;
  readonly namespaceLabels: (namespace: string) => Labels;
  readonly policy: Policy;
  /** The Services already in the cluster, by `namespace/name`. */
  readonly existing: ReadonlyMap<string, ServiceObject>;
  /**
   * Retentions, reservations, quotas, and the claims that hold an address for their Service.
   * The replay drops a retention whose address it grants, as the webhook's claim of it does, and
   * a claim whose Service gives its address up, as the webhook frees it then.
   */
  readonly lifecycle?: Lifecycle;
}

/**
 * Stateful over one run: every admitted Service holds its addresses for the next ones, and
 * replaces the stored Service of the same name (a later manifest of it is an UPDATE).
 */
export class Replay {
  readonly #stored: Map<string, ServiceObject>;
  readonly #usage: UsageIndex;
  readonly #context: AdmissionContext;
  readonly #policy: Policy;
  readonly #retained: RetainedAddresses;
  readonly #reservations: ReservationIndex;
  /** The claims holding an address: owner (in the usage index) by holder ref. */
  readonly #claims = new Map<string, string[]>();
  #reviews = 0;

  constructor(options: ReplayOptions) {
    const { policy, lifecycle } = options;
    this.#policy = policy;
    this.#stored = new Map(options.existing);
    this.#usage = UsageIndex.from([
      ...[...this.#stored].flatMap(([ref, service]) => usageEntriesOf(service, policy, ref)),
      ...(lifecycle?.claims ?? []).map(
        (claim) => [claimOwner(claim.name), claim.holder, [claim.address]] as const,
      ),
    ]);
    for (const claim of lifecycle?.claims ?? []) {
      const owners = this.#claims.get(claim.holder.ref) ?? [];
      this.#claims.set(claim.holder.ref, [...owners, claimOwner(claim.name)]);
    }
    this.#retained = lifecycle?.retained ?? new RetainedAddresses();
    this.#reservations = ReservationIndex.from(lifecycle?.reservations ?? []);
    const quotas = lifecycle?.quotas;
    const view: ClusterView = {
      pools: options.pools,
      usage: this.#usage,
      retained: this.#retained,
      reservations: this.#reservations,
      namespaceLabels: options.namespaceLabels,
      // Without a quota anywhere, no grant pays for counting what its namespace holds.
      ...(quotas !== undefined &&
        quotas.size > 0 && { quotaOf: (namespace: string) => quotas.get(namespace) }),
    };
    this.#context = { view, ready: true, policy, ipTarget: "spec" };
  }

  /**
   * Admits an AddressReservation of the manifests, as the validating webhook admits its CREATE
   * (or UPDATE, when one of that name is known); admitted, it reserves for the next ones.
   */
  admitReservation(object: Record<string, unknown>, spec: ReservationSpec): Verdict {
    const known = this.#reservations.named(spec.namespace, spec.name);
    const request: AdmissionRequest = {
      uid: `check-${++this.#reviews}`,
      kind: {
        group: RESERVATION_GROUP,
        version: RESERVATION_API_VERSION.split("/")[1] ?? "",
        kind: RESERVATION_KIND,
      },
      operation: known === undefined ? "CREATE" : "UPDATE",
      namespace: spec.namespace,
      name: spec.name,
      object: { ...object, metadata: { ...asRecord(object.metadata), namespace: spec.namespace } },
    };
    const outcome = admit("validate", request, this.#context);
    const verdict = verdictOf(outcome, outcome, [], () => "");
    if (verdict.kind !== "denied")
      this.#reservations.put({ ...spec, addresses: verdict.addresses });
    return verdict;
  }

  /**
   * Admits a Service from the manifests: a CREATE, or an UPDATE of the stored one. `name` is the
   * name the API server would give it (a generateName gets one made up by the caller).
   */
  admitManifest(service: ServiceObject, name: string): Verdict {
    const namespace = service.metadata?.namespace ?? "default";
    const stored = this.#stored.get(`${namespace}/${name}`);
    return this.#review(service, name, stored);
  }

  /**
   * Audits a Service already in the cluster, as its creation would have been decided given what
   * MetalLB serves it (its status). A refused one still holds what MetalLB serves it and what it
   * lists in externalIPs: those addresses are taken whatever anyone thinks of them.
   */
  audit(service: ServiceObject): Verdict {
    const namespace = service.metadata?.namespace ?? "default";
    const name = service.metadata?.name ?? "";
    const verdict = this.#review(service, name, undefined);
    const served = servedAddresses(service);
    if (verdict.kind === "denied") {
      const ref = `${namespace}/${name}`;
      if (served.length > 0) this.#usage.set(ref, holderOf(service, this.#policy, ref), served);
      for (const [owner, holder, addresses] of usageEntriesOf(service, this.#policy, ref)) {
        if (owner === externalOwner(ref)) this.#usage.set(owner, holder, addresses);
      }
      return served.length > 0
        ? {
            ...verdict,
            addresses: served,
            message: `${verdict.message} (MetalLB serves it ${list(served)})`,
          }
        : verdict;
    }
    const notes = auditNotes(service, verdict, served);
    return notes.length === 0 ? verdict : { ...verdict, warnings: [...verdict.warnings, ...notes] };
  }

  #review(service: ServiceObject, name: string, stored: ServiceObject | undefined): Verdict {
    const namespace = service.metadata?.namespace ?? "default";
    const object: ServiceObject = {
      ...service,
      metadata: { ...service.metadata, name, namespace },
    };
    const request: AdmissionRequest = {
      uid: `check-${++this.#reviews}`,
      kind: { group: "", version: "v1", kind: "Service" },
      operation: stored === undefined ? "CREATE" : "UPDATE",
      namespace,
      name,
      object,
      ...(stored !== undefined && { oldObject: stored }),
    };
    const mutated = admit("mutate", request, this.#context);
    const patch = patchOf(mutated);
    const patched = patch.length > 0 ? applyPatch(object, patch) : object;
    const validated =
      mutated.decision === "denied"
        ? mutated
        : admit("validate", { ...request, object: patched }, this.#context);
    const verdict = verdictOf(
      mutated,
      validated,
      patch,
      () => decide(object, this.#context.view, this.#policy).message,
    );
    if (verdict.kind !== "denied") {
      // Stored as the API server stores an update: the status stays what it was.
      const kept = withStoredStatus(patched, stored);
      const ref = `${namespace}/${name}`;
      // A run without claims or retentions (most of them) pays nothing for them here.
      const claimed = this.#claims.has(ref);
      const before = claimed ? this.#usage.addressesOf(ref) : [];
      this.#stored.set(ref, kept);
      recordService(this.#usage, kept, this.#policy, ref);
      if (this.#retained.size > 0) {
        for (const address of verdict.addresses) this.#retained.drop(address);
      }
      if (claimed) this.#freeClaims(ref, before);
    }
    return verdict;
  }

  /** Frees the claims of the addresses `ref` held (`before`) and holds no longer. */
  #freeClaims(ref: string, before: readonly IPAddress[]): void {
    const owners = this.#claims.get(ref) ?? [];
    const after = this.#usage.addressesOf(ref);
    const among = (list: readonly IPAddress[], address: IPAddress) =>
      list.some((each) => sameAddress(each, address));
    const kept = owners.filter((owner) => {
      const [claimed] = this.#usage.addressesOf(owner);
      const released = claimed !== undefined && among(before, claimed) && !among(after, claimed);
      if (released) this.#usage.delete(owner);
      return !released;
    });
    this.#claims.set(ref, kept);
  }
}

function patchOf(outcome: AdmissionOutcome): readonly PatchOperation[] {
  const encoded = outcome.response.patch;
  if (encoded === undefined) return [];
  return JSON.parse(Buffer.from(encoded, "base64").toString("utf8")) as PatchOperation[];
}

function verdictOf(
  mutated: AdmissionOutcome,
  validated: AdmissionOutcome,
  patch: readonly PatchOperation[],
  skippedMessage: () => string,
): Verdict {
  const warnings = [
    ...new Set([...(mutated.response.warnings ?? []), ...(validated.response.warnings ?? [])]),
  ];
  const final =
    validated.decision === "denied"
      ? validated
      : mutated.decision === "assigned"
        ? mutated
        : validated;
  const decided = final.decided;
  if (decided === undefined) {
    // Out of scope: nothing to check, said the way the core says it.
    return {
      kind: "allowed",
      addresses: [],
      pool: undefined,
      reason: undefined,
      message: skippedMessage(),
      warnings,
      patch,
    };
  }
  if (final.decision === "denied" && decided.kind === "denied") {
    return {
      kind: "denied",
      addresses: decided.addresses,
      pool: decided.pool,
      reason: decided.reason,
      message: decided.message,
      warnings: [],
      patch: [],
    };
  }
  if (decided.kind === "denied") {
    // Admitted under the ratchet: the warning says why.
    return {
      kind: "allowed",
      addresses: decided.addresses,
      pool: decided.pool,
      reason: undefined,
      message: warnings[0] ?? decided.message,
      warnings: warnings.slice(1),
      patch,
      ratchet: decided.reason,
    };
  }
  return {
    kind: final.decision === "assigned" ? "assigned" : "allowed",
    addresses: decided.addresses,
    pool: decided.pool,
    reason: undefined,
    message: decided.message,
    warnings,
    patch,
  };
}

/** What an audit adds: MetalLB serving something else than was decided, or nothing at all. */
function auditNotes(
  service: ServiceObject,
  verdict: Verdict,
  served: readonly IPAddress[],
): string[] {
  if (verdict.addresses.length === 0 && service.spec?.type !== "LoadBalancer") return [];
  if (served.length === 0) {
    return service.spec?.type === "LoadBalancer" && verdict.addresses.length > 0
      ? [
          `MetalLB has not given it an address (<pending>); kubectl describe service shows its events`,
        ]
      : [];
  }
  const same =
    served.length === verdict.addresses.length &&
    served.every((address) => verdict.addresses.some((other) => sameAddress(other, address)));
  return same ? [] : [`MetalLB serves it ${list(served)}, not ${list(verdict.addresses)}`];
}

function list(addresses: readonly IPAddress[]): string {
  return addresses.length === 0 ? "nothing" : formatAddressList(addresses);
}
