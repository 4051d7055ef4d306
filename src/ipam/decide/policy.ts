// What the decision is told about the guarded MetalLB: the release (which keys it reads), its
// loadBalancerClass, and which Services lb-ip-guard allocates for; and which Services are in scope.

import { type MetalLBVersion, type ReleaseReads, readsOf } from "../metallb-version.ts";
import { isLoadBalancer, type ServiceObject, wantsAutoAssign } from "../service.ts";

export interface Policy {
  /** The `loadBalancerClass` MetalLB answers to; undefined means Services without a class. */
  readonly loadBalancerClass: string | undefined;
  /** The MetalLB keys the guarded release reads (all of them when the release is unknown). */
  readonly reads: ReleaseReads;
  /**
   * Which Services that request no address lb-ip-guard allocates: `all` LoadBalancer Services
   * (and annotated ones), so MetalLB only ever announces what was granted here; or only the
   * `annotated` ones, leaving the rest to MetalLB, whose lowest-free pick races with ours.
   */
  readonly allocation: "all" | "annotated";
}

/**
 * The policy for a MetalLB release (unknown: every key read), with the contract's defaults: no
 * loadBalancerClass, and every Service that requests no address allocated here.
 */
export function policyFor(
  options: {
    readonly loadBalancerClass?: string | undefined;
    readonly release?: MetalLBVersion | undefined;
    readonly allocation?: Policy["allocation"];
  } = {},
): Policy {
  return {
    loadBalancerClass: options.loadBalancerClass,
    reads: readsOf(options.release),
    allocation: options.allocation ?? "all",
  };
}

/**
 * Whether a Service that requests no address (and holds none) gets one from lb-ip-guard: it asks
 * for auto-assign, or it is a LoadBalancer and lb-ip-guard is the one allocator.
 */
export function allocatesFor(service: ServiceObject, policy: Policy): boolean {
  return wantsAutoAssign(service) || (isLoadBalancer(service) && policy.allocation === "all");
}

/** Whether this tool has anything to say about the Service at all. */
export function isInScope(service: ServiceObject, policy: Policy): boolean {
  // MetalLB run with a class handles only that class; run without one, only classless Services.
  // Before v0.13 it knows no classes and serves them all.
  const serviceClass = service.spec?.loadBalancerClass ?? undefined;
  if (policy.reads.filtersByClass && serviceClass !== policy.loadBalancerClass) return false;
  return isLoadBalancer(service) || wantsAutoAssign(service);
}
