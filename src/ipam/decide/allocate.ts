// Auto-assign: the pools in MetalLB's order for the Service, the families it needs, and the
// lowest free address of each family in the first pool that has them all.

import { FAMILIES, type Family, type IPAddress, parseAddress } from "../address.ts";
import { earlierGrantInPool, firstFreeInPool } from "../allocator.ts";
import type { ReleaseReads } from "../metallb-version.ts";
import { type Pool, type PoolSet, poolAllowsService, type ServiceIdentity } from "../pool.ts";
import { declaredFamilies, isDualStack, type ServiceObject, sharingKey } from "../service.ts";
import { type Decision, type DecisionContext, deny, GrantDecision } from "./decision.ts";
import { holderOf } from "./holdings.ts";
import { notAllowed } from "./messages.ts";

/** Pools in the contract's allocation order for this Service. */
function allocationOrder(pools: PoolSet, identity: ServiceIdentity): readonly Pool[] {
  const selective = pools.pools
    .filter(
      (pool) =>
        pool.autoAssign &&
        pool.serviceAllocation !== undefined &&
        poolAllowsService(pool, identity),
    )
    .sort((a, b) => priorityRank(a) - priorityRank(b));
  const open = pools.pools.filter(
    (pool) => pool.autoAssign && pool.serviceAllocation === undefined,
  );
  return [...selective, ...open];
}

/**
 * MetalLB sorts a priority of 0 with the unset ones, after every positive number (its sortPools);
 * the sort is stable, so ties keep name order where MetalLB's order is undefined.
 */
function priorityRank(pool: Pool): number {
  return pool.serviceAllocation?.priority || Number.MAX_SAFE_INTEGER;
}

/** Auto-assign: the first pool in allocation order with a free address of every family needed. */
export function allocate(context: DecisionContext, named: Pool | undefined): Decision {
  const { ref, view } = context;
  if (named !== undefined && !poolAllowsService(named, context.identity))
    return notAllowed(context, named);
  const { required, optional } = wantedFamilies(context.service, context.policy.reads);
  // Only a Service with a sharing key can land on an address another holds.
  const holder =
    sharingKey(context.service, context.policy.reads) === ""
      ? undefined
      : holderOf(context.service, context.policy, ref);
  const candidates = named !== undefined ? [named] : allocationOrder(view.pools, context.identity);
  // PreferDualStack: a pool with both families first, as MetalLB's findBestPoolForService does.
  const passes = optional.length > 0 ? [[...required, ...optional], required] : [required];
  const earlier = reusableGrant(context, candidates, passes);
  if (earlier !== undefined) return earlier;
  const resting = view.resting;
  const skipped =
    resting === undefined
      ? undefined
      : (family: Family, value: bigint) => resting.keepsFrom(family, value, ref);
  for (const families of passes) {
    for (const pool of candidates) {
      const picked = families.map((family) =>
        firstFreeInPool(pool, family, view.usage, holder, skipped),
      );
      if (picked.some((address) => address === undefined)) continue;
      const addresses = picked as IPAddress[];
      return new GrantDecision("assigned", context, "gets", addresses, pool.name);
    }
  }
  const tried = candidates.map((pool) => `"${pool.name}"`).join(", ");
  return deny(
    "PoolExhausted",
    candidates.length === 0
      ? `${ref} asks for auto-assign, but no pool with autoAssign is open to it; name one with ${context.policy.reads.addressPool[0]}`
      : `${ref} asks for auto-assign, but no free ${required.join(" + ")} address is left in pool${candidates.length > 1 ? "s" : ""} ${tried}${restingNote(context)}`,
    [],
    named,
  );
}

/** What a PoolExhausted message adds while released addresses rest: that a retry may succeed. */
function restingNote(context: DecisionContext): string {
  const resting = context.view.resting;
  if (resting === undefined || resting.size === 0) return "";
  return ` (besides ${resting.size} address${resting.size > 1 ? "es" : ""} released a moment ago, which rest until MetalLB has processed the release; retry in a few seconds)`;
}

/**
 * The grant an earlier admission of this Service made (held or claimed, the Service not created
 * yet), when every family it needs is still there for it in one of the pools it may use.
 */
function reusableGrant(
  context: DecisionContext,
  candidates: readonly Pool[],
  passes: readonly (readonly Family[])[],
): Decision | undefined {
  const { ref, view } = context;
  if (!view.usage.hasGrantsFor(ref)) return undefined;
  const holder = holderOf(context.service, context.policy, ref);
  for (const families of passes) {
    for (const pool of candidates) {
      const picked = families.map((family) => earlierGrantInPool(pool, family, view.usage, holder));
      if (picked.some((address) => address === undefined)) continue;
      return new GrantDecision("assigned", context, "gets", picked as IPAddress[], pool.name);
    }
  }
  return undefined;
}

function wantedFamilies(
  service: ServiceObject,
  keys: ReleaseReads,
): {
  required: readonly Family[];
  optional: readonly Family[];
} {
  const declared = declaredFamilies(service);
  // A new Service has no clusterIP yet: no parse, and no error message formatted for nothing.
  const clusterIP = service.spec?.clusterIP ? parseAddress(service.spec.clusterIP) : undefined;
  const primary = declared[0] ?? (clusterIP?.ok ? clusterIP.value.family : "IPv4");
  const secondary = declared[1] ?? FAMILIES.find((family) => family !== primary) ?? "IPv6";
  // A release without an address annotation reads one address, from spec.loadBalancerIP.
  if (keys.loadBalancerIPs.length === 0) return { required: [primary], optional: [] };
  // A dual-stack Service (two families settled) gets two or none: MetalLB refuses one address.
  if (isDualStack(service)) return { required: [primary, secondary], optional: [] };
  switch (service.spec?.ipFamilyPolicy) {
    case "RequireDualStack":
      return { required: [primary, secondary], optional: [] };
    case "PreferDualStack":
      return { required: [primary], optional: [secondary] };
    default:
      return { required: [primary], optional: [] };
  }
}
