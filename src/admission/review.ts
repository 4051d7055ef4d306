import { isRecord } from "../base/objects.ts";
import { sentWord } from "../base/text.ts";
import { fail, ok, type Result } from "../ipam/result.ts";
import { serviceShapeProblem } from "../ipam/service.ts";

/** The fields of an `admission.k8s.io/v1` AdmissionRequest this webhook reads. */
export interface AdmissionRequest {
  readonly uid: string;
  readonly kind: { readonly group: string; readonly version: string; readonly kind: string };
  readonly operation: "CREATE" | "UPDATE" | "DELETE" | "CONNECT";
  readonly namespace?: string;
  readonly name?: string;
  /** `status` for a write of services/status; absent for the Service itself. */
  readonly subResource?: string;
  readonly object?: unknown;
  readonly oldObject?: unknown;
  readonly dryRun?: boolean;
}

export interface AdmissionStatus {
  readonly code: number;
  readonly reason: "Forbidden" | "Invalid";
  readonly message: string;
}

export interface AdmissionResponse {
  readonly uid: string;
  readonly allowed: boolean;
  readonly status?: AdmissionStatus;
  readonly patchType?: "JSONPatch";
  readonly patch?: string;
  readonly warnings?: readonly string[];
  readonly auditAnnotations?: Readonly<Record<string, string>>;
}

export interface AdmissionReviewReply {
  readonly apiVersion: "admission.k8s.io/v1";
  readonly kind: "AdmissionReview";
  readonly response: AdmissionResponse;
}

const OPERATIONS = new Set(["CREATE", "UPDATE", "DELETE", "CONNECT"]);

/**
 * Checks that a decoded body is an AdmissionReview this webhook can answer. The message is one
 * line saying what was expected, for the HTTP 400 the server sends back.
 */
export function parseAdmissionReview(body: unknown): Result<AdmissionRequest> {
  if (!isRecord(body))
    return fail("body is not a JSON object; expected an admission.k8s.io/v1 AdmissionReview");
  if (body.apiVersion !== "admission.k8s.io/v1" || body.kind !== "AdmissionReview") {
    return fail(
      `body is ${sentWord(body.apiVersion)}/${sentWord(body.kind)}; expected apiVersion admission.k8s.io/v1, kind AdmissionReview`,
    );
  }
  const request = body.request;
  if (!isRecord(request)) return fail("AdmissionReview has no request object");
  if (typeof request.uid !== "string" || request.uid === "")
    return fail("AdmissionReview request has no uid");
  const kind = request.kind;
  if (!isRecord(kind) || typeof kind.kind !== "string") {
    return fail("AdmissionReview request has no kind {group, version, kind}");
  }
  for (const field of ["group", "version"] as const) {
    if (typeof kind[field] !== "string")
      return fail(
        `AdmissionReview request.kind.${field} is missing or not a string; expected {group, version, kind} ("" is the core group)`,
      );
  }
  if (typeof request.operation !== "string" || !OPERATIONS.has(request.operation)) {
    return fail(
      `AdmissionReview request operation is ${sentWord(request.operation, 32)}; expected CREATE, UPDATE, DELETE or CONNECT`,
    );
  }
  for (const field of ["namespace", "name", "subResource"] as const) {
    if (request[field] !== undefined && typeof request[field] !== "string")
      return fail(`AdmissionReview request.${field} is not a string`);
  }
  if (request.dryRun !== undefined && typeof request.dryRun !== "boolean")
    return fail("AdmissionReview request.dryRun is not a boolean");
  // A Service is read field by field further on: each field read must have its type, so that
  // a wrong one is this 400 naming it, never a 500 nor a review skipped as allowed.
  const service = kind.group === "" && kind.kind === "Service";
  for (const field of ["object", "oldObject"] as const) {
    const value = request[field];
    if (value === undefined || value === null) continue;
    const problem = !isRecord(value)
      ? `request.${field} is not an object`
      : service
        ? serviceShapeProblem(value, `request.${field}`)
        : undefined;
    if (problem !== undefined) return fail(`AdmissionReview ${problem}`);
  }
  return ok(request as unknown as AdmissionRequest);
}

export function reply(response: AdmissionResponse): AdmissionReviewReply {
  return { apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview", response };
}
