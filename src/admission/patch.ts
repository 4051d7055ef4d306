import { formatAddress } from "../ipam/address.ts";
import type { Assignment } from "../ipam/decide.ts";
import type { ReleaseReads } from "../ipam/metallb-version.ts";
import { ANNOTATION, firstAnnotation, type ServiceObject } from "../ipam/service.ts";

/** One RFC 6902 operation; `add` on an existing member replaces it, so it serves both cases. */
export interface PatchOperation {
  readonly op: "add";
  readonly path: string;
  readonly value: unknown;
}

/** Where the mutation writes an assigned address (`--ip-target`). */
export type IPTarget = "spec" | "annotation";

/** RFC 6901: `~` and `/` inside a key become `~0` and `~1`. */
export function pointerSegment(key: string): string {
  return key.replaceAll("~", "~0").replaceAll("/", "~1");
}

/**
 * The patch that turns a Service into a LoadBalancer holding the assignment's addresses from its
 * pool, written where the guarded MetalLB release reads them. Fields already right are left
 * alone, so the patch of an already-mutated Service is empty. The addresses are written only
 * where the Service asked for none: the assignment carries the request the decision read.
 */
export function assignmentPatch(
  service: ServiceObject,
  assignment: Assignment,
  target: IPTarget,
  keys: ReleaseReads,
): PatchOperation[] {
  const { addresses, pool } = assignment;
  const operations: PatchOperation[] = [];
  const existing = service.metadata?.annotations;
  const wanted: Record<string, string> = { [ANNOTATION.assignedFrom]: pool };
  if (service.spec?.type !== "LoadBalancer") {
    operations.push({ op: "add", path: "/spec/type", value: "LoadBalancer" });
  }
  if (assignment.request.source === "none") {
    const text = addresses.map(formatAddress).join(",");
    const used = firstAnnotation(service, keys.loadBalancerIPs)?.key;
    const key = used ?? keys.loadBalancerIPs[0];
    // A release without an address annotation (MetalLB v0.11) is never given two addresses, and
    // serve refuses --ip-target annotation for it.
    if (
      key !== undefined &&
      (target === "annotation" || addresses.length > 1 || used !== undefined)
    ) {
      wanted[key] = text;
    } else {
      operations.push({ op: "add", path: "/spec/loadBalancerIP", value: text });
    }
  }
  const missing = Object.entries(wanted).filter(([key, value]) => existing?.[key] !== value);
  if (missing.length === 0) return operations;
  if (existing === undefined) {
    operations.push({
      op: "add",
      path: "/metadata/annotations",
      value: Object.fromEntries(missing),
    });
  } else {
    for (const [key, value] of missing) {
      operations.push({ op: "add", path: `/metadata/annotations/${pointerSegment(key)}`, value });
    }
  }
  return operations;
}

/**
 * Applies the mutation's `add` operations to a copy of `object`, as the API server applies a
 * webhook's JSONPatch: a missing parent is an error, as it is there.
 */
export function applyPatch<T extends object>(object: T, operations: readonly PatchOperation[]): T {
  const copy = structuredClone(object) as Record<string, unknown>;
  for (const operation of operations) {
    const segments = operation.path
      .split("/")
      .slice(1)
      .map((segment) => segment.replaceAll("~1", "/").replaceAll("~0", "~"));
    const last = segments.pop();
    let parent: unknown = copy;
    for (const segment of segments) {
      parent = (parent as Record<string, unknown> | undefined)?.[segment];
    }
    if (last === undefined || typeof parent !== "object" || parent === null) {
      throw new Error(`cannot add ${operation.path}: its parent does not exist`);
    }
    (parent as Record<string, unknown>)[last] = structuredClone(operation.value);
  }
  return copy as T;
}
