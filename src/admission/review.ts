import { isRecord } from "../base/objects.ts";
import { fail, ok, type Result } from "../ipam/result.ts";

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
      `body is ${String(body.apiVersion)}/${String(body.kind)}; expected apiVersion admission.k8s.io/v1, kind AdmissionReview`,
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
  if (typeof request.operation !== "string" || !OPERATIONS.has(request.operation)) {
    return fail(
      `AdmissionReview request operation is ${String(request.operation)}; expected CREATE, UPDATE, DELETE or CONNECT`,
    );
  }
  if (request.object !== undefined && request.object !== null && !isRecord(request.object)) {
    return fail("AdmissionReview request.object is not an object");
  }
  return ok(request as unknown as AdmissionRequest);
}

export function reply(response: AdmissionResponse): AdmissionReviewReply {
  return { apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview", response };
}
