import { formatAddress, type IPAddress, sameAddress } from "../ipam/address.ts";
import {
  allocatesFor,
  type ClusterView,
  checkStatusWrite,
  type Decision,
  type Denial,
  decide,
  decideInScope,
  decideReservation,
  holderOf,
  holdingsOf,
  isInScope,
  type Policy,
  type ReasonCode,
} from "../ipam/decide.ts";
import { RESERVATION_GROUP, RESERVATION_KIND, reservationSpecOf } from "../ipam/reservations.ts";
import {
  type AddressRequest,
  addressRequest,
  externalIPs,
  type ServiceObject,
  serviceRef,
  statusAddresses,
  wantsAutoAssign,
} from "../ipam/service.ts";
import type { Grant } from "./holds.ts";
import { assignmentPatch, type IPTarget } from "./patch.ts";
import type { AdmissionRequest, AdmissionResponse } from "./review.ts";

export interface AdmissionContext {
  readonly view: ClusterView;
  /** False until pools and Services are synced: the validating path then refuses (fails closed). */
  readonly ready: boolean;
  readonly policy: Policy;
  readonly ipTarget: IPTarget;
}

/**
 * The contract's reason codes: the core's, and `NotReady`, the admission layer's own refusal
 * while the state is not synced or a claim could not be made.
 */
export type AdmissionReason = ReasonCode | "NotReady";

/** What one review produced: the response, and what the edges log, count and record. */
export interface AdmissionOutcome {
  readonly response: AdmissionResponse;
  readonly decision: "allowed" | "assigned" | "denied" | "skipped";
  readonly reason: AdmissionReason | undefined;
  readonly service: string | undefined;
  /** Addresses to hold until the Service is seen; absent for dry runs and denials. */
  readonly grant: Grant | undefined;
  /** What the core decided (what `check` reports); absent when the review was not decided. */
  readonly decided: Decision | undefined;
}

export type Webhook = "mutate" | "validate";

/** One AdmissionRequest in, one outcome out; no I/O. */
export function admit(
  webhook: Webhook,
  request: AdmissionRequest,
  context: AdmissionContext,
): AdmissionOutcome {
  const service = request.object as ServiceObject | undefined;
  if (
    request.kind.group === RESERVATION_GROUP &&
    request.kind.kind === RESERVATION_KIND &&
    (request.subResource ?? "") === ""
  ) {
    return webhook === "validate" ? admitReservation(request, context) : skipped(request);
  }
  const isServiceWrite =
    request.kind.group === "" &&
    request.kind.kind === "Service" &&
    (request.operation === "CREATE" || request.operation === "UPDATE") &&
    service !== undefined &&
    service !== null;
  if (!isServiceWrite) return skipped(request);
  if (request.subResource === "status") {
    return webhook === "validate" ? admitStatusWrite(request, service, context) : skipped(request);
  }
  if ((request.subResource ?? "") !== "") return skipped(request);
  // Out of scope, a Service is still decided on its externalIPs: they are addresses too.
  const inScope = isInScope(service, context.policy);
  if (!inScope && externalIPs(service).length === 0) return skipped(request);

  // The mutating webhook sees objects before the apiserver generates a name; the validating one
  // sees the name. A hold under a temporary identity would then conflict with its own Service,
  // so nameless objects get no hold at mutation time and the validating webhook makes it.
  const named = (service.metadata?.name ?? request.name ?? "") !== "";
  const stored = storedService(request);
  const scoped = withStoredStatus(withNamespace(service, request), stored);
  const ref = named ? serviceRef(scoped) : `${request.namespace ?? "default"}/<${request.uid}>`;
  // Read once: the decision carries it on to the patch.
  const asked = addressRequest(scoped, context.policy.reads);

  if (
    !context.ready &&
    (webhook === "validate" || needsAllocation(scoped, asked, context.policy))
  ) {
    return deny(
      request,
      ref,
      "NotReady",
      `${ref}: lb-ip-guard has not synced pools and Services yet; retry in a few seconds`,
      403,
    );
  }
  if (!context.ready) return skipped(request);

  const decision = inScope
    ? decideInScope(scoped, asked, context.view, context.policy, ref)
    : decide(scoped, context.view, context.policy, ref);
  if (decision.kind === "denied" && stored !== undefined) {
    // The ratchet: a Service already stored that the pools (changed since) would now refuse may
    // still be updated, but only when the stored object meets the same refusal; a refusal the
    // update brings (a new address, port clash or backend) stands.
    const before = decide(stored, context.view, context.policy, ref);
    if (sameRefusal(before, decision)) {
      return {
        ...allow(request, ref, "allowed", [
          `${decision.reason}: ${decision.message} (admitted: the stored Service is refused the same way, so this update adds no problem)`,
        ]),
        decided: decision,
      };
    }
  }
  return webhook === "mutate"
    ? mutate(
        request,
        ref,
        scoped,
        decision,
        context,
        named,
        needsAllocation(scoped, asked, context.policy),
      )
    : validate(request, ref, scoped, stored, decision, context.policy);
}

/**
 * A write of services/status (the validating webhook's own entry for it, which fails open): an
 * address put into status.loadBalancer.ingress that another Service holds is refused; anything
 * else passes, and so does every write while the state is not synced, since the writer is
 * MetalLB serving what was granted (ADR 0011).
 */
function admitStatusWrite(
  request: AdmissionRequest,
  service: ServiceObject,
  context: AdmissionContext,
): AdmissionOutcome {
  if (request.operation !== "UPDATE" || !context.ready) return skipped(request);
  const scoped = withNamespace(service, request);
  const ref = serviceRef(scoped);
  const stored = storedService(request);
  const refusal = checkStatusWrite(scoped, stored, context.view, context.policy, ref);
  return refusal === undefined ? allow(request, ref, "allowed", []) : refuse(request, ref, refusal);
}

/**
 * A write of an AddressReservation: decided by the same rules as a grant (decideReservation),
 * refused while the state is not synced, as a grant would be.
 */
function admitReservation(request: AdmissionRequest, context: AdmissionContext): AdmissionOutcome {
  if (request.operation !== "CREATE" && request.operation !== "UPDATE") return skipped(request);
  if (request.object === undefined || request.object === null) return skipped(request);
  const spec = reservationSpecOf(request.object, request.namespace ?? "default");
  const named = { ...spec, name: spec.name || (request.name ?? "") };
  const ref = `${named.namespace}/${named.name}`;
  if (!context.ready) {
    return deny(
      request,
      ref,
      "NotReady",
      `AddressReservation ${ref}: lb-ip-guard has not synced pools and Services yet; retry in a few seconds`,
      403,
    );
  }
  const decision = decideReservation(named, context.view);
  if (decision.kind === "denied") return refuse(request, ref, decision);
  return { ...allow(request, ref, "allowed", decision.warnings), decided: decision };
}

/** The stored Service of an UPDATE, trusted only when it is the same namespace and name. */
function storedService(request: AdmissionRequest): ServiceObject | undefined {
  if (request.operation !== "UPDATE") return undefined;
  const old = request.oldObject as ServiceObject | null | undefined;
  if (old === undefined || old === null || typeof old !== "object") return undefined;
  const name = old.metadata?.name ?? "";
  const namespace = old.metadata?.namespace ?? request.namespace;
  if (name === "" || name !== request.name || namespace !== request.namespace) return undefined;
  return withNamespace(old, request);
}

/**
 * An update carries the stored status: the API server keeps it whatever the request says (only
 * the status subresource writes it), and it is what MetalLB serves.
 */
export function withStoredStatus(
  service: ServiceObject,
  stored: ServiceObject | undefined,
): ServiceObject {
  if (stored === undefined || statusAddresses(service).length > 0) return service;
  if (statusAddresses(stored).length === 0) return service;
  return { ...service, status: stored.status };
}

function sameRefusal(before: Decision, after: Denial): boolean {
  return (
    before.kind === "denied" &&
    before.reason === after.reason &&
    before.addresses.map(formatAddress).join() === after.addresses.map(formatAddress).join()
  );
}

function mutate(
  request: AdmissionRequest,
  ref: string,
  service: ServiceObject,
  decision: Decision,
  context: AdmissionContext,
  named: boolean,
  allocating: boolean,
): AdmissionOutcome {
  if (decision.kind === "denied") {
    // Explicit requests are the validating webhook's to refuse; a failed allocation is this
    // webhook's own, and is refused here: let through unmutated, a LoadBalancer asking for
    // nothing would be admitted by a validating call that finds a free address (or none) and
    // served whatever MetalLB picks.
    if (!allocating) return skipped(request, ref);
    return refuse(request, ref, decision);
  }
  if (decision.kind === "allowed")
    return { ...allow(request, ref, "allowed", decision.warnings), decided: decision };
  const patch = assignmentPatch(service, decision, context.ipTarget, context.policy.reads);
  const grant =
    named && request.dryRun !== true
      ? {
          ref,
          holder: holderOf(service, context.policy, ref),
          addresses: decision.addresses,
          pool: decision.pool,
          assigned: true,
          ...(decision.origin !== undefined && { origin: decision.origin }),
        }
      : undefined;
  return {
    response: {
      uid: request.uid,
      allowed: true,
      ...(patch.length > 0 && {
        patchType: "JSONPatch" as const,
        patch: Buffer.from(JSON.stringify(patch)).toString("base64"),
      }),
      ...warnings(decision.warnings),
      auditAnnotations: { decision: "assigned", pool: decision.pool },
    },
    decision: "assigned",
    reason: undefined,
    service: ref,
    grant,
    decided: decision,
  };
}

function validate(
  request: AdmissionRequest,
  ref: string,
  service: ServiceObject,
  stored: ServiceObject | undefined,
  decision: Decision,
  policy: Policy,
): AdmissionOutcome {
  if (decision.kind === "denied") return refuse(request, ref, decision);
  if (decision.kind === "assigned") {
    // The mutating webhook (which fails open) did not answer, or its answer was dropped: the
    // Service lacks the address it must be granted. Admitted as it is, MetalLB would serve its
    // own pick, racing every grant of ours (ADR 0003), so it is refused until a retry reaches a
    // mutating call.
    const asked = wantsAutoAssign(service) ? "asks for auto-assign" : "requests no address";
    return {
      ...denial(
        request,
        ref,
        "NotReady",
        `${ref} ${asked} but reached the validating webhook without the address the mutating one grants (it did not answer in time); nothing was granted, retry in a few seconds`,
      ),
      decided: decision,
    };
  }
  const grant =
    request.dryRun !== true && decision.addresses.length > 0
      ? {
          ref,
          holder: holderOf(service, policy, ref),
          addresses: decision.addresses,
          ...(decision.pool !== undefined && { pool: decision.pool }),
          ...(keeps(stored, decision.addresses, policy) && { kept: true }),
          ...(decision.origin !== undefined && { origin: decision.origin }),
        }
      : undefined;
  return { ...allow(request, ref, "allowed", decision.warnings), grant, decided: decision };
}

/** An UPDATE whose (trusted) stored Service already holds every one of these addresses. */
function keeps(
  stored: ServiceObject | undefined,
  addresses: readonly IPAddress[],
  policy: Policy,
): boolean {
  if (stored === undefined) return false;
  const held = holdingsOf(stored, policy);
  return addresses.every((address) => held.some((old) => sameAddress(old, address)));
}

/** Whether the mutating webhook would allocate: it cannot, and must say so, until synced. */
function needsAllocation(service: ServiceObject, asked: AddressRequest, policy: Policy): boolean {
  const unrequested = asked.source === "none" && statusAddresses(service).length === 0;
  return unrequested && allocatesFor(service, policy);
}

function withNamespace(service: ServiceObject, request: AdmissionRequest): ServiceObject {
  if (service.metadata?.namespace !== undefined || request.namespace === undefined) return service;
  return { ...service, metadata: { ...service.metadata, namespace: request.namespace } };
}

function statusCode(reason: AdmissionReason): number {
  return reason === "InvalidAddress" ? 422 : 403;
}

/** Each warning once: kubectl prints every one, and a review may repeat a finding. */
function warnings(list: readonly string[]): { warnings?: readonly string[] } {
  if (list.length === 0) return {};
  return { warnings: list.length === 1 ? list : [...new Set(list)] };
}

function skipped(request: AdmissionRequest, ref?: string): AdmissionOutcome {
  return {
    response: { uid: request.uid, allowed: true },
    decision: "skipped",
    reason: undefined,
    service: ref,
    grant: undefined,
    decided: undefined,
  };
}

function allow(
  request: AdmissionRequest,
  ref: string,
  decision: "allowed",
  notes: readonly string[],
): AdmissionOutcome {
  return {
    response: {
      uid: request.uid,
      allowed: true,
      ...warnings(notes),
      auditAnnotations: { decision },
    },
    decision,
    reason: undefined,
    service: ref,
    grant: undefined,
    decided: undefined,
  };
}

/** A denial outcome with the contract's status code for `reason` (for the claim layer). */
export function denial(
  request: AdmissionRequest,
  ref: string,
  reason: AdmissionReason,
  message: string,
): AdmissionOutcome {
  return deny(request, ref, reason, message, statusCode(reason));
}

/** The core's refusal as the webhook's answer. */
function refuse(request: AdmissionRequest, ref: string, decision: Denial): AdmissionOutcome {
  const refused = deny(
    request,
    ref,
    decision.reason,
    decision.message,
    statusCode(decision.reason),
  );
  return { ...refused, decided: decision };
}

function deny(
  request: AdmissionRequest,
  ref: string,
  reason: AdmissionReason,
  message: string,
  code: number,
): AdmissionOutcome {
  return {
    response: {
      uid: request.uid,
      allowed: false,
      status: {
        code,
        reason: code === 422 ? "Invalid" : "Forbidden",
        message: `${reason}: ${message}`,
      },
      auditAnnotations: { decision: "denied", reason },
    },
    decision: "denied",
    reason,
    service: ref,
    grant: undefined,
    decided: undefined,
  };
}
