// The wording of decisions beyond their verdict: which addresses are free, which pools exist,
// what a pool's serviceAllocation admits, the release named, and deprecation warnings.

import type { Family, IPAddress } from "../address.ts";
import { freeRuns } from "../allocator.ts";
import { formatSelector } from "../labels.ts";
import { formatMetalLBVersion, type ReleaseReads } from "../metallb-version.ts";
import { describePool, type Pool, type PoolSet } from "../pool.ts";
import { formatRange } from "../range.ts";
import { ANNOTATION, annotations, type ServiceObject } from "../service.ts";
import { type ClusterView, type DecisionContext, type Denial, deny } from "./decision.ts";

/** The refusal of a pool whose serviceAllocation does not admit the Service: what it admits. */
export function notAllowed(
  context: DecisionContext,
  pool: Pool,
  addresses: readonly IPAddress[] = [],
): Denial {
  const allocation = pool.serviceAllocation;
  const rules = [
    ...(allocation?.namespaces.length ? [`namespaces ${allocation.namespaces.join(", ")}`] : []),
    ...(allocation?.namespaceSelectors.length
      ? [`namespace labels ${allocation.namespaceSelectors.map(formatSelector).join(" or ")}`]
      : []),
    ...(allocation?.serviceSelectors.length
      ? [`Service labels ${allocation.serviceSelectors.map(formatSelector).join(" or ")}`]
      : []),
  ];
  return deny(
    "PoolNotAllowed",
    `${context.ref} may not use pool "${pool.name}": its serviceAllocation admits ${rules.join("; ")}`,
    addresses,
    pool,
  );
}

const LEGACY_PREFIX = "metallb.universe.tf/";

/**
 * Hints towards the keys that last, only where the guarded release reads them: MetalLB v0.11
 * has no annotation for an address, so spec.loadBalancerIP is its one form. An address this
 * webhook wrote (the Service says where it came from) is not the user's to move.
 */
export function deprecationWarnings(service: ServiceObject, keys: ReleaseReads): readonly string[] {
  const present = annotations(service);
  const warnings: string[] = [];
  // Every review passes here: nothing is built for a Service without legacy keys.
  for (const key in present) {
    if (!key.startsWith(LEGACY_PREFIX)) continue;
    const instead = `metallb.io/${key.slice(LEGACY_PREFIX.length)}`;
    if (
      keys.loadBalancerIPs.includes(instead) ||
      keys.addressPool.includes(instead) ||
      keys.allowSharedIP.includes(instead)
    ) {
      warnings.push(`annotation ${key} is deprecated; use ${instead}`);
    }
  }
  const [lasting] = keys.loadBalancerIPs;
  if (
    lasting !== undefined &&
    (service.spec?.loadBalancerIP ?? "") !== "" &&
    present[ANNOTATION.assignedFrom] === undefined
  ) {
    warnings.push(
      `spec.loadBalancerIP is deprecated by Kubernetes; ${lasting} is the lasting form`,
    );
  }
  return warnings;
}

/** `MetalLB v0.11.0`, or `MetalLB` when the release is unknown. */
export function releaseName(keys: ReleaseReads): string {
  return keys.version === undefined ? "MetalLB" : `MetalLB ${formatMetalLBVersion(keys.version)}`;
}

/**
 * Up to three runs of free addresses of the pool, for a refusal to point at what would do:
 * retained and reserved addresses are passed over, as allocations pass over them.
 */
export function freeHint(pool: Pool, view: ClusterView): string {
  const { retained, reservations } = view;
  const runs = freeRuns(pool, view.usage, 4, {
    sets: (family) => [
      ...(retained === undefined ? [] : [retained.values(family)]),
      ...(reservations === undefined ? [] : [reservations.values(family)]),
    ],
  });
  if (runs.length === 0) return `pool "${pool.name}" has no free address`;
  const more = runs.length === 4 ? ", ..." : "";
  return `free in pool "${pool.name}": ${runs.slice(0, 3).map(formatRange).join(", ")}${more}`;
}

/** The pools of a family, for an address that lies in none. */
export function poolsHint(pools: PoolSet, family: Family): string {
  const ofFamily = pools.pools.filter((pool) =>
    pool.ranges.some((range) => range.family === family),
  );
  if (ofFamily.length === 0) return `no pool has ${family} addresses`;
  return `${family} pools: ${ofFamily.map(describePool).join("; ")}`;
}
