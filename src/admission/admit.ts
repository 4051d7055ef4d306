import { type IPAddress, sameAddress } from "../ipam/address.ts";
import {
  type ClusterView,
  type Decision,
  decide,
  holderOf,
  holdingsOf,
  isInScope,
  type Policy,
  type ReasonCode,
} from "../ipam/decide.ts";
import {
  ANNOTATION,
  addressRequest,
  firstAnnotation,
  type ServiceObject,
  serviceRef,
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

/** What one review produced: the response, and what the edges log, count and record. */
export interface AdmissionOutcome {
  readonly response: AdmissionResponse;
  readonly decision: "allowed" | "assigned" | "denied" | "skipped";
  readonly reason: ReasonCode | undefined;
  readonly service: string | undefined;
  /** Addresses to hold until the Service is seen; absent for dry runs and denials. */
  readonly grant: Grant | undefined;
}

export type Webhook = "mutate" | "validate";

/** One AdmissionRequest in, one outcome out; no I/O. */
export function admit(
  webhook: Webhook,
  request: AdmissionRequest,
  context: AdmissionContext,
): AdmissionOutcome {
  const service = request.object as ServiceObject | undefined;
  const isServiceWrite =
    request.kind.group === "" &&
    request.kind.kind === "Service" &&
    (request.operation === "CREATE" || request.operation === "UPDATE") &&
    service !== undefined &&
    service !== null;
  if (!isServiceWrite || !isInScope(service, context.policy)) return skipped(request);

  // The mutating webhook sees objects before the apiserver generates a name; the validating one
  // sees the name. A hold under a temporary identity would then conflict with its own Service,
  // so nameless objects get no hold at mutation time and the validating webhook makes it.
  const named = (service.metadata?.name ?? request.name ?? "") !== "";
  const scoped = withNamespace(service, request);
  const ref = named ? serviceRef(scoped) : `${request.namespace ?? "default"}/<${request.uid}>`;

  if (!context.ready && (webhook === "validate" || needsAllocation(scoped))) {
    return deny(
      request,
      ref,
      "NotReady",
      `${ref}: lb-ip-guard has not synced pools and Services yet; retry in a few seconds`,
      403,
    );
  }
  if (!context.ready) return skipped(request);

  const decision = decide(scoped, context.view, context.policy, ref);
  const ratchet =
    request.operation === "UPDATE" &&
    decision.kind === "denied" &&
    sameRequest(request.oldObject, scoped);
  if (ratchet) {
    return allow(request, ref, "allowed", [
      `${decision.reason}: ${decision.message} (admitted: the requested addresses did not change)`,
    ]);
  }
  return webhook === "mutate"
    ? mutate(request, ref, scoped, decision, context, named)
    : validate(request, ref, scoped, decision, context.policy);
}

function mutate(
  request: AdmissionRequest,
  ref: string,
  service: ServiceObject,
  decision: Decision,
  context: AdmissionContext,
  named: boolean,
): AdmissionOutcome {
  if (decision.kind === "denied") {
    // Explicit requests are the validating webhook's to refuse; only a failed allocation, which
    // this webhook was asked to perform, is refused here.
    if (!wantsAutoAssign(service)) return skipped(request, ref);
    return deny(request, ref, decision.reason, decision.message, statusCode(decision.reason));
  }
  if (decision.kind === "allowed") return allow(request, ref, "allowed", decision.warnings);
  const patch = assignmentPatch(service, decision.addresses, decision.pool, context.ipTarget);
  const grant =
    named && request.dryRun !== true
      ? {
          ref,
          holder: holderOf(service, ref),
          addresses: decision.addresses,
          pool: decision.pool,
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
  };
}

function validate(
  request: AdmissionRequest,
  ref: string,
  service: ServiceObject,
  decision: Decision,
  policy: Policy,
): AdmissionOutcome {
  if (decision.kind === "denied")
    return deny(request, ref, decision.reason, decision.message, statusCode(decision.reason));
  if (decision.kind === "assigned") {
    // The mutating webhook (which fails open) did not run: admit the Service as it is.
    return allow(request, ref, "allowed", [
      ...decision.warnings,
      `${ref} asked for auto-assign but was not mutated (is the mutating webhook up?); it stays as it is`,
    ]);
  }
  const grant =
    request.dryRun !== true && decision.addresses.length > 0
      ? {
          ref,
          holder: holderOf(service, ref),
          addresses: decision.addresses,
          ...(decision.pool !== undefined && { pool: decision.pool }),
          ...(keeps(request, decision.addresses, policy) && { kept: true }),
        }
      : undefined;
  return { ...allow(request, ref, "allowed", decision.warnings), grant };
}

/** An UPDATE whose stored Service already holds every one of these addresses. */
function keeps(
  request: AdmissionRequest,
  addresses: readonly IPAddress[],
  policy: Policy,
): boolean {
  if (
    request.operation !== "UPDATE" ||
    request.oldObject === undefined ||
    request.oldObject === null
  )
    return false;
  const held = holdingsOf(request.oldObject as ServiceObject, policy);
  return addresses.every((address) => held.some((old) => sameAddress(old, address)));
}

function needsAllocation(service: ServiceObject): boolean {
  return wantsAutoAssign(service) && addressRequest(service).source === "none";
}

/** The ratchet compares what the Service asks for, not the whole object. */
function sameRequest(oldObject: unknown, service: ServiceObject): boolean {
  if (oldObject === undefined || oldObject === null) return false;
  const old = oldObject as ServiceObject;
  const asked = (candidate: ServiceObject) =>
    JSON.stringify([
      candidate.spec?.type,
      addressRequest(candidate),
      firstAnnotation(candidate, ANNOTATION.addressPool)?.value,
      firstAnnotation(candidate, ANNOTATION.allowSharedIP)?.value,
    ]);
  return asked(old) === asked(service);
}

function withNamespace(service: ServiceObject, request: AdmissionRequest): ServiceObject {
  if (service.metadata?.namespace !== undefined || request.namespace === undefined) return service;
  return { ...service, metadata: { ...service.metadata, namespace: request.namespace } };
}

function statusCode(reason: ReasonCode): number {
  return reason === "InvalidAddress" ? 422 : 403;
}

function warnings(list: readonly string[]): { warnings?: readonly string[] } {
  return list.length > 0 ? { warnings: list } : {};
}

function skipped(request: AdmissionRequest, ref?: string): AdmissionOutcome {
  return {
    response: { uid: request.uid, allowed: true },
    decision: "skipped",
    reason: undefined,
    service: ref,
    grant: undefined,
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
  };
}

/** A denial outcome with the contract's status code for `reason` (for the claim layer). */
export function denial(
  request: AdmissionRequest,
  ref: string,
  reason: ReasonCode,
  message: string,
): AdmissionOutcome {
  return deny(request, ref, reason, message, statusCode(reason));
}

function deny(
  request: AdmissionRequest,
  ref: string,
  reason: ReasonCode,
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
  };
}
