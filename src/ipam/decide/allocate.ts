// Auto-assign: the pools in MetalLB's order for the Service, the families it needs, and the
// lowest free address of each family in the first pool that has them all.

import { isoTime } from "../../base/text.ts";
import { FAMILIES, type Family, formatAddress, type IPAddress, parseAddress } from "../address.ts";
import { type Avoided, earlierGrantInPool, firstFreeInPool } from "../allocator.ts";
import type { ReleaseReads } from "../metallb-version.ts";
import {
  isUsableAddress,
  type Pool,
  type PoolSet,
  poolAllowsService,
  type ServiceIdentity,
} from "../pool.ts";
import { rangeContains } from "../range.ts";
import { reservationAdmits, reservationRef } from "../reservations.ts";
import { declaredFamilies, isDualStack, type ServiceObject, sharingKey } from "../service.ts";
import type { SortedBigIntSet } from "../sorted-set.ts";
import { type Holder, mayShare } from "../usage.ts";
import {
  type ClusterView,
  type Decision,
  type DecisionContext,
  deny,
  GrantDecision,
} from "./decision.ts";
import { holderOf } from "./holdings.ts";
import { notAllowed } from "./messages.ts";
import { quotaDenial } from "./quota.ts";

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

/**
 * Auto-assign: what is kept for the Service (an earlier grant, a reservation, a retained
 * address), else the first pool in allocation order with a free address of every family needed.
 */
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
  const granted = keptFor(context, named, passes) ?? firstFree(context, candidates, passes, holder);
  if (granted === undefined) {
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
  const overQuota = quotaDenial(view, ref, granted.addresses, view.usage.addressesOf(ref), {
    service: ref,
  });
  return overQuota === undefined ? granted : { ...overQuota, pool: granted.pool };
}

/** Each pool in turn: its lowest free address of every family, else the one retained longest. */
function firstFree(
  context: DecisionContext,
  candidates: readonly Pool[],
  passes: readonly (readonly Family[])[],
  holder: Holder | undefined,
): GrantDecision<"assigned"> | undefined {
  const { ref, view } = context;
  const avoided = avoidedFor(view, ref);
  for (const families of passes) {
    for (const pool of candidates) {
      const notes: string[] = [];
      const picked: IPAddress[] = [];
      for (const family of families) {
        const free =
          firstFreeInPool(pool, family, view.usage, holder, avoided) ??
          longestRetainedIn(context, pool, family, notes);
        if (free === undefined) break;
        picked.push(free);
      }
      if (picked.length < families.length) continue;
      const origin = notes.length === 0 ? undefined : { note: notes.join("; "), warnings: notes };
      return new GrantDecision("assigned", context, "gets", picked, pool.name, origin);
    }
  }
  return undefined;
}

/**
 * What an allocation for `ref` passes over: addresses resting for another Service, retained ones
 * and reserved ones (those kept for `ref` itself were offered first, by keptFor).
 */
function avoidedFor(view: ClusterView, ref: string): Avoided | undefined {
  const { resting, retained, reservations } = view;
  const sets: ((family: Family) => SortedBigIntSet)[] = [];
  if (retained !== undefined && retained.size > 0) sets.push((family) => retained.values(family));
  if (reservations !== undefined && reservations.size > 0)
    sets.push((family) => reservations.values(family));
  if (resting === undefined && sets.length === 0) return undefined;
  return {
    sets: (family) => sets.map((set) => set(family)),
    ...(resting !== undefined && {
      skipped: (family: Family, value: bigint) => resting.keepsFrom(family, value, ref),
    }),
  };
}

/**
 * A pool's address of one family retained for another Service, the one retained longest, for
 * an allocation that found the pool otherwise full; `notes` gets whose it was.
 */
function longestRetainedIn(
  context: DecisionContext,
  pool: Pool,
  family: Family,
  notes: string[],
): IPAddress | undefined {
  const { view, ref } = context;
  const found = view.retained?.longestRetained(family, (value) =>
    availableTo(context, pool, { family, value }),
  );
  if (found === undefined) return undefined;
  const address = { family, value: found.value };
  notes.push(
    `${formatAddress(address)} was retained for ${found.retention.ref} since ${isoTime(found.retention.since)}; pool "${pool.name}" has no other free address, so ${ref} gets it and ${found.retention.ref} will not`,
  );
  return address;
}

/**
 * Whether `address` of `pool` can go to the Service: usable there, held by no one it may not
 * share with, resting for no one else, and reserved for no one else.
 */
function availableTo(context: DecisionContext, pool: Pool, address: IPAddress): boolean {
  const { view, ref } = context;
  const { family, value } = address;
  if (!pool.ranges.some((range) => rangeContains(range, family, value))) return false;
  if (!isUsableAddress(pool, family, value)) return false;
  if (view.resting?.keepsFrom(family, value, ref) === true) return false;
  const reservation = view.reservations?.reservationOf(family, value);
  if (reservation !== undefined && !reservationAdmits(reservation, ref)) return false;
  const holders = view.usage.holdersOf(family, value);
  if (holders.length === 0) return true;
  const holder = holderOf(context.service, context.policy, ref);
  return holders.every((other) => other.ref === ref || mayShare(holder, other));
}

/**
 * The addresses kept for the Service: a reservation made for it (by name first, then for its
 * namespace), else what was retained for it when it went. Each must cover every family of a
 * pass, from one pool the Service may use (the named one, if any).
 */
function keptFor(
  context: DecisionContext,
  named: Pool | undefined,
  passes: readonly (readonly Family[])[],
): GrantDecision<"assigned"> | undefined {
  const { view, ref } = context;
  const usable = (address: IPAddress): Pool | undefined => {
    const pool = view.pools.poolOf(address.family, address.value);
    if (pool === undefined || (named !== undefined && pool !== named)) return undefined;
    if (!poolAllowsService(pool, context.identity)) return undefined;
    return availableTo(context, pool, address) ? pool : undefined;
  };
  const fromOnePool = (
    families: readonly Family[],
    choose: (family: Family) => IPAddress | undefined,
  ): { addresses: IPAddress[]; pool: Pool } | undefined => {
    const addresses: IPAddress[] = [];
    const pools = new Set<Pool>();
    for (const family of families) {
      const address = choose(family);
      const pool = address === undefined ? undefined : usable(address);
      if (address === undefined || pool === undefined) return undefined;
      addresses.push(address);
      pools.add(pool);
    }
    const [pool] = pools;
    return pools.size === 1 && pool !== undefined ? { addresses, pool } : undefined;
  };
  for (const families of passes) {
    for (const reservation of view.reservations?.reservationsFor(ref) ?? []) {
      const kept = fromOnePool(families, (family) =>
        reservation.addresses.find((address) => address.family === family),
      );
      if (kept !== undefined) {
        const note = `reserved by AddressReservation ${reservationRef(reservation)}`;
        return new GrantDecision("assigned", context, "gets", kept.addresses, kept.pool.name, {
          note,
        });
      }
    }
    const retained = view.retained;
    if (retained === undefined || retained.size === 0) continue;
    const kept = fromOnePool(families, (family) =>
      retained.retainedFor(ref, family).find((address) => usable(address) !== undefined),
    );
    if (kept !== undefined) {
      const since = Math.min(
        ...kept.addresses.map(
          (address) => retained.retentionOf(address.family, address.value)?.since ?? 0,
        ),
      );
      const note = `retained for ${ref} since ${isoTime(since)}`;
      return new GrantDecision("assigned", context, "gets back", kept.addresses, kept.pool.name, {
        note,
      });
    }
  }
  return undefined;
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
