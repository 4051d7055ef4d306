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
  const kindField =
    typeof kind.group !== "string"
      ? "group"
      : typeof kind.version !== "string"
        ? "version"
        : undefined;
  if (kindField !== undefined)
    return fail(
      `AdmissionReview request.kind.${kindField} is missing or not a string; expected {group, version, kind} ("" is the core group)`,
    );
  if (typeof request.operation !== "string" || !OPERATIONS.has(request.operation)) {
    return fail(
      `AdmissionReview request operation is ${sentWord(request.operation, 32)}; expected CREATE, UPDATE, DELETE or CONNECT`,
    );
  }
  const nameField = notAString(request.namespace)
    ? "namespace"
    : notAString(request.name)
      ? "name"
      : notAString(request.subResource)
        ? "subResource"
        : undefined;
  if (nameField !== undefined) return fail(`AdmissionReview request.${nameField} is not a string`);
  if (request.dryRun !== undefined && typeof request.dryRun !== "boolean")
    return fail("AdmissionReview request.dryRun is not a boolean");
  // A Service is read field by field further on: each field read must have its type, so that
  // a wrong one is this 400 naming it, never a 500 nor a review skipped as allowed.
  const service = kind.group === "" && kind.kind === "Service";
  const problem =
    objectProblem(request.object, "request.object", service) ??
    objectProblem(request.oldObject, "request.oldObject", service);
  if (problem !== undefined) return fail(`AdmissionReview ${problem}`);
  return ok(request as unknown as AdmissionRequest);
}

/** Present and not a string. */
function notAString(value: unknown): boolean {
  return value !== undefined && typeof value !== "string";
}

/** Why the object or oldObject at `path` cannot be read, if it is there. */
function objectProblem(value: unknown, path: string, service: boolean): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isRecord(value)) return `${path} is not an object`;
  return service ? serviceShapeProblem(value, path) : undefined;
}

export function reply(response: AdmissionResponse): AdmissionReviewReply {
  return { apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview", response };
}
