// A Service that asks for addresses (or that MetalLB already serves): each address parsed, of the
// right families, in one pool that admits the Service, and free or shareable under MetalLB's rules.

import { cut, isoTime, quoted } from "../../base/text.ts";
import {
  formatAddress,
  formatAddressList,
  type IPAddress,
  isBuggyIPv4,
  parseAddress,
  sameAddress,
} from "../address.ts";
import { describePool, type Pool, poolAllowsService } from "../pool.ts";
import { rangeContains } from "../range.ts";
import { reservationAdmits, reservationRef } from "../reservations.ts";
import { declaredFamilies, isDualStack, isLoadBalancer } from "../service.ts";
import {
  type Decision,
  type DecisionContext,
  type Denial,
  deny,
  GrantDecision,
} from "./decision.ts";
import { holderOf } from "./holdings.ts";
import { freeHint, notAllowed, poolsHint } from "./messages.ts";
import { quotaDenial } from "./quota.ts";

/**
 * The addresses a Service asks for (`where` says in which field), or those MetalLB already serves
 * it: each parsed, of families the Service can take, in one pool (the named one, if any) that
 * admits the Service, and free or shareable under MetalLB's rules.
 */
export function checkRequested(
  context: DecisionContext,
  texts: readonly string[],
  where: string,
  named: Pool | undefined,
): Decision {
  const { ref, view } = context;
  const addresses: IPAddress[] = [];
  for (const text of texts) {
    const parsed = parseAddress(text);
    if (!parsed.ok) return deny("InvalidAddress", `${ref} requests ${parsed.error} (in ${where})`);
    addresses.push(parsed.value);
  }
  const familyProblem = familyMismatch(context, addresses);
  if (familyProblem !== undefined)
    return deny(
      "FamilyMismatch",
      `${ref} requests ${formatAddressList(addresses)}: ${familyProblem}`,
      addresses,
    );

  const pools: Pool[] = [];
  for (const address of addresses) {
    const pool = named ?? view.pools.poolOf(address.family, address.value);
    if (pool === undefined) {
      return deny(
        "NotInAnyPool",
        `${ref} requests ${formatAddress(address)}, which lies in no pool; ${poolsHint(view.pools, address.family)}`,
        addresses,
      );
    }
    if (!pool.ranges.some((range) => rangeContains(range, address.family, address.value))) {
      return deny(
        "PoolMismatch",
        `${ref} requests ${formatAddress(address)}, which is not in the pool it names: ${describePool(pool)}; ${freeHint(pool, view)}`,
        addresses,
        pool,
      );
    }
    // MetalLB's poolFor skips .0 and .255 of such a pool: to MetalLB the address is in no pool.
    if (pool.avoidBuggyIPs && address.family === "IPv4" && isBuggyIPv4(address.value)) {
      return deny(
        named === undefined ? "NotInAnyPool" : "PoolMismatch",
        `${ref} requests ${formatAddress(address)}, which pool "${pool.name}" never hands out: it has avoidBuggyIPs, so MetalLB skips addresses ending in .0 and .255; ${freeHint(pool, view)}`,
        addresses,
        pool,
      );
    }
    pools.push(pool);
  }
  const [pool, other] = pools;
  if (pool === undefined)
    return deny("InvalidAddress", `${ref} requests an empty address list (in ${where})`);
  if (other !== undefined && other !== pool) {
    return deny(
      "PoolMismatch",
      `${ref} requests ${formatAddressList(addresses)} from two pools ("${pool.name}", "${other.name}"); dual-stack addresses must come from one pool`,
      addresses,
      pool,
    );
  }
  if (!poolAllowsService(pool, context.identity)) return notAllowed(context, pool, addresses);
  // What the Service holds already (an UPDATE's stored object, what MetalLB serves it) stays
  // its own, whatever was reserved or how full its namespace is since: nothing held is moved.
  const own = view.usage.addressesOf(ref);
  for (const address of addresses) {
    const conflict =
      findConflict(context, address, pool) ?? reservedConflict(context, address, pool, own);
    if (conflict !== undefined) return conflict;
  }
  const overQuota = quotaDenial(view, ref, addresses, own, { service: ref });
  if (overQuota !== undefined) return { ...overQuota, pool: pool.name };
  const notes = retainedNotes(context, addresses);
  const origin = notes.length === 0 ? undefined : { note: notes.join("; "), warnings: notes };
  return isLoadBalancer(context.service)
    ? new GrantDecision("allowed", context, "may use", addresses, pool.name, origin)
    : new GrantDecision(
        "assigned",
        context,
        "becomes a LoadBalancer with",
        addresses,
        pool.name,
        origin,
      );
}

/** An address reserved for another namespace or Service, which the Service does not hold yet. */
function reservedConflict(
  context: DecisionContext,
  address: IPAddress,
  pool: Pool,
  own: readonly IPAddress[],
): Denial | undefined {
  const { ref, view } = context;
  const reservation = view.reservations?.reservationOf(address.family, address.value);
  if (reservation === undefined || reservationAdmits(reservation, ref)) return undefined;
  if (own.some((held) => sameAddress(held, address))) return undefined;
  const forWhom =
    reservation.serviceName === undefined
      ? `the Services of namespace ${reservation.namespace}`
      : `${reservation.namespace}/${reservation.serviceName}`;
  return deny(
    "AddressReserved",
    `${ref} requests ${formatAddress(address)}, which AddressReservation ${reservationRef(reservation)} reserves for ${forWhom} (pool "${pool.name}"); take a free one: ${freeHint(pool, view)}`,
    [address],
    pool,
  );
}

/** Warnings for addresses retained for another Service: admitted, and that one loses them. */
function retainedNotes(context: DecisionContext, addresses: readonly IPAddress[]): string[] {
  const retained = context.view.retained;
  if (retained === undefined || retained.size === 0) return [];
  return addresses.flatMap((address) => {
    const retention = retained.retentionOf(address.family, address.value);
    if (retention === undefined || retention.ref === context.ref) return [];
    return [
      `${formatAddress(address)} is retained for ${retention.ref} until ${isoTime(retention.until)} (it gave the address up at ${isoTime(retention.since)}); ${context.ref} takes it, and ${retention.ref} gets another address when it is created again`,
    ];
  });
}

function familyMismatch(
  context: DecisionContext,
  addresses: readonly IPAddress[],
): string | undefined {
  if (addresses.length > 2) return "at most two addresses are allowed, one per family";
  const [first, second] = addresses;
  if (first !== undefined && second !== undefined && first.family === second.family) {
    return `two addresses must be of different families, both are ${first.family}`;
  }
  const declared = declaredFamilies(context.service);
  const foreign = addresses.find(
    (address) => declared.length > 0 && !declared.includes(address.family),
  );
  if (foreign !== undefined) {
    return `${formatAddress(foreign)} is ${foreign.family} but spec.ipFamilies is [${declared.join(", ")}]`;
  }
  if (addresses.length === 2 && context.service.spec?.ipFamilyPolicy === "SingleStack") {
    return "two addresses need ipFamilyPolicy PreferDualStack or RequireDualStack, not SingleStack";
  }
  if (
    addresses.length === 1 &&
    context.policy.reads.loadBalancerIPs.length > 0 &&
    isDualStack(context.service)
  ) {
    return "the Service is dual-stack and MetalLB serves it only with one address of each family: request two (comma-separated)";
  }
  return undefined;
}

function findConflict(
  context: DecisionContext,
  address: IPAddress,
  pool: Pool,
): Denial | undefined {
  const { ref, view } = context;
  const others = view.usage.holdersOf(address.family, address.value);
  // The Service's sharing identity matters only against other holders, and most addresses
  // asked for have none.
  if (others.length === 0) return restingConflict(context, address, pool);
  const holder = holderOf(context.service, context.policy, ref);
  for (const other of others) {
    if (other.ref === holder.ref) continue;
    const held = `${ref} requests ${formatAddress(address)}, which ${other.ref} already holds (pool "${pool.name}")`;
    if (holder.sharingKey === "" || holder.sharingKey !== other.sharingKey) {
      const sharing =
        other.sharingKey === ""
          ? `${other.ref} does not allow sharing`
          : `to share it, set ${context.policy.reads.allowSharedIP[0]}: ${quoted(other.sharingKey)} (the key ${other.ref} uses)`;
      return deny("AddressInUse", `${held}; ${sharing}; ${freeHint(pool, view)}`, [address], pool);
    }
    const port = holder.ports.find((candidate) => other.ports.includes(candidate));
    if (port !== undefined) {
      return deny(
        "SharingConflict",
        `${held} with sharing key ${quoted(holder.sharingKey)}, but both expose ${port}; use another port or address`,
        [address],
        pool,
      );
    }
    if (holder.backendKey !== other.backendKey) {
      return deny(
        "SharingConflict",
        `${held} with sharing key ${quoted(holder.sharingKey)}, but their backends differ (${cut(holder.backendKey)} vs ${cut(other.backendKey)}); shared Services need the same externalTrafficPolicy and, for Local, the same selector`,
        [address],
        pool,
      );
    }
  }
  return undefined;
}

/**
 * An address no one holds that another Service released a moment ago: MetalLB may still hold it
 * for that Service, so it is refused for the first part of its rest (ADR 0016).
 */
function restingConflict(
  context: DecisionContext,
  address: IPAddress,
  pool: Pool,
): Denial | undefined {
  const { ref, view } = context;
  const release = view.resting?.refusalOf(address.family, address.value);
  if (release === undefined || release.ref === ref) return undefined;
  return deny(
    "AddressInUse",
    `${ref} requests ${formatAddress(address)}, which ${release.ref} gave up a moment ago (pool "${pool.name}"); MetalLB may still hold it for ${release.ref} until it has processed the release, so it is refused to others until ${new Date(release.refusedUntil).toISOString()}; retry then, or take a free one; ${freeHint(pool, view)}`,
    [address],
    pool,
  );
}
