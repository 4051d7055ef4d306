import { formatAddress, type IPAddress } from "../ipam/address.ts";
import {
  ANNOTATION,
  addressRequest,
  firstAnnotation,
  type ServiceObject,
} from "../ipam/service.ts";

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
 * The patch that turns a Service into a LoadBalancer holding `addresses` from `pool`. Fields
 * already right are left alone, so the patch of an already-mutated Service is empty.
 */
export function assignmentPatch(
  service: ServiceObject,
  addresses: readonly IPAddress[],
  pool: string,
  target: IPTarget,
): PatchOperation[] {
  const operations: PatchOperation[] = [];
  const existing = service.metadata?.annotations;
  const wanted: Record<string, string> = { [ANNOTATION.assignedFrom]: pool };
  if (service.spec?.type !== "LoadBalancer") {
    operations.push({ op: "add", path: "/spec/type", value: "LoadBalancer" });
  }
  if (addressRequest(service).source === "none") {
    const text = addresses.map(formatAddress).join(",");
    const usedKey = firstAnnotation(service, ANNOTATION.loadBalancerIPs)?.key;
    if (target === "annotation" || addresses.length > 1 || usedKey !== undefined) {
      wanted[usedKey ?? ANNOTATION.loadBalancerIPs[0]] = text;
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
