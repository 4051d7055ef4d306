// decide(): one Service against the pools, the addresses held by others and the policy of the
// guarded MetalLB release. Pure: decisions are data, never exceptions. The steps live in decide/:
// policy (scope), requested (explicit addresses), allocate (auto-assign), messages, holdings,
// external (spec.externalIPs, of every Service) and status (writes of services/status).

import { quoted } from "../base/text.ts";
import { allocate } from "./decide/allocate.ts";
import {
  type ClusterView,
  type Decision,
  type DecisionContext,
  type Denial,
  deny,
} from "./decide/decision.ts";
import { checkExternalIPs } from "./decide/external.ts";
import { deprecationWarnings, notAllowed, releaseName } from "./decide/messages.ts";
import { allocatesFor, isInScope, type Policy } from "./decide/policy.ts";
import { checkRequested } from "./decide/requested.ts";
import { type Pool, poolAllowsService } from "./pool.ts";
import {
  type AddressRequest,
  addressRequest,
  externalIPs,
  firstAnnotation,
  ignoredKey,
  isLoadBalancer,
  type ServiceObject,
  serviceRef,
  statusAddresses,
  wantsAutoAssign,
} from "./service.ts";

export type {
  Assignment,
  ClusterView,
  Decision,
  Denial,
  ReasonCode,
} from "./decide/decision.ts";
export {
  externalHoldingsOf,
  externalOwner,
  forgetService,
  holderOf,
  holdingsOf,
  recordService,
  servedAddresses,
  usageEntriesOf,
} from "./decide/holdings.ts";
export { allocatesFor, isInScope, type Policy, policyFor } from "./decide/policy.ts";
export { namespaceAddresses, parseQuota, QUOTA_ANNOTATION } from "./decide/quota.ts";
export { decideReservation } from "./decide/reservation.ts";
export { checkStatusWrite } from "./decide/status.ts";
export { checkExternalIPs };

/**
 * Decides one Service against the pools and the addresses held by others. `ref` identifies the
 * Service as a holder (its own holdings never conflict with it); callers pass a unique one for
 * objects that have only a generateName.
 */
export function decide(
  service: ServiceObject,
  view: ClusterView,
  policy: Policy,
  ref: string = serviceRef(service),
): Decision {
  if (!isInScope(service, policy))
    return checkExternalIPs(service, view, ref) ?? outOfScope(service, policy, ref);
  return decideInScope(service, addressRequest(service, policy.reads), view, policy, ref);
}

/**
 * `decide` for a Service its caller has already found in scope (`isInScope`) and whose request it
 * has already read (`addressRequest` with `policy.reads`), as admission does before it decides:
 * nothing is read twice, and the decision carries the request on to the patch.
 */
export function decideInScope(
  service: ServiceObject,
  request: AddressRequest,
  view: ClusterView,
  policy: Policy,
  ref: string,
): Decision {
  const external = checkExternalIPs(service, view, ref);
  if (external !== undefined) return external;
  const context: DecisionContext = {
    ref,
    service,
    view,
    policy,
    request,
    identity: {
      namespace: service.metadata?.namespace ?? "default",
      labels: service.metadata?.labels ?? {},
      namespaceLabels: view.namespaceLabels(service.metadata?.namespace ?? "default"),
    },
    warnings: deprecationWarnings(service, policy.reads),
  };

  const ignored = ignoredKey(service, policy.reads);
  if (ignored !== undefined) {
    return deny(
      "IgnoredAnnotation",
      `${ref} sets ${ignored.key}, which ${releaseName(policy.reads)} does not read: it would serve the Service as if the annotation were not there; use ${ignored.instead}`,
    );
  }
  if (request.source === "both") {
    return deny(
      "ConflictingFields",
      `${ref} sets both spec.loadBalancerIP and the ${request.key} annotation; MetalLB refuses a Service with both: keep only the annotation`,
    );
  }
  const named = namedPool(context);
  if (named !== undefined && "kind" in named) return named;

  if (request.source !== "none") {
    const where = request.source === "spec" ? "spec.loadBalancerIP" : `annotation ${request.key}`;
    return checkRequested(context, request.texts, where, named?.pool);
  }
  // What MetalLB already serves stays where it is: a Service is never moved to another address,
  // not even by a `kubectl replace` of the auto-assign ClusterIP manifest it was created from
  // (an UPDATE carries the stored status).
  const current = statusAddresses(service);
  if ((isLoadBalancer(service) || wantsAutoAssign(service)) && current.length > 0) {
    return checkRequested(context, current, "status.loadBalancer.ingress", named?.pool);
  }
  if (allocatesFor(service, policy)) return allocate(context, named?.pool);
  if (named !== undefined && !poolAllowsService(named.pool, context.identity))
    return notAllowed(context, named.pool);
  const from = named === undefined ? "" : ` from pool "${named.pool.name}"`;
  return {
    kind: "allowed",
    addresses: [],
    pool: named?.pool.name,
    message: `${ref} requests no address; MetalLB assigns one${from}`,
    warnings: context.warnings,
    request,
  };
}

function outOfScope(service: ServiceObject, policy: Policy, ref: string): Decision {
  const serviceClass = service.spec?.loadBalancerClass ?? undefined;
  const why =
    serviceClass !== policy.loadBalancerClass
      ? serviceClass === undefined
        ? `it has no loadBalancerClass; MetalLB handles class "${policy.loadBalancerClass}" only`
        : `loadBalancerClass ${quoted(serviceClass)} is not MetalLB's`
      : "not a LoadBalancer Service and no auto-assign annotation";
  return {
    kind: "allowed",
    addresses: [],
    pool: undefined,
    message:
      externalIPs(service).length > 0
        ? `${ref}: its externalIPs lie in no pool and no other Service holds them; ${why}`
        : `${ref}: ${why}; nothing to check`,
    warnings: [],
    request: undefined,
  };
}

function namedPool(context: DecisionContext): { readonly pool: Pool } | Denial | undefined {
  const annotation = firstAnnotation(context.service, context.policy.reads.addressPool);
  // An empty value names no pool, in MetalLB too (and hides a legacy key behind it).
  if (annotation === undefined || annotation.value === "") return undefined;
  const pool = context.view.pools.byName(annotation.value);
  if (pool !== undefined) return { pool };
  const known = context.view.pools.pools.map((candidate) => candidate.name);
  return deny(
    "PoolNotFound",
    `${context.ref} names pool ${quoted(annotation.value)} (${annotation.key}), which does not exist; known pools: ${known.length > 0 ? known.join(", ") : "none"}`,
  );
}
