// The address space as a person wants to see it (`lb-ip-guard pools`): every pool with its size,
// use and free ranges, every held address with all its holders, the addresses kept for someone
// (retained, reserved), each quota'd namespace's use, and what is wrong. Pure. Costs grow with
// the number of holders, kept addresses and ranges, never with the size of a pool: free ranges
// are the gaps between sorted taken addresses, so an IPv6 /64 costs what a /24 costs.

import {
  FAMILIES,
  type Family,
  formatAddress,
  type IPAddress,
  parseAddress,
  sameAddress,
} from "./address.ts";
import { externalHoldingsOf, holderOf, isInScope, type Policy } from "./decide.ts";
import type { LabelSelector } from "./labels.ts";
import { isUsableAddress, type Pool, type PoolSet, type ServiceAllocation } from "./pool.ts";
import { type AddressRange, rangeSize } from "./range.ts";
import { type Reservation, reservationAdmits, reservationRef } from "./reservations.ts";
import { RetainedAddresses, type Retention } from "./retained.ts";
import { addressRequest, isLoadBalancer, type ServiceObject, statusAddresses } from "./service.ts";
import { addressKey, type Holder, mayShare, namespaceOf } from "./usage.ts";
import { usableCount } from "./utilisation.ts";

/** How a holder holds an address. */
export type HoldVia = "status" | "request" | "externalIP" | "claim";

/** A Service as the map reads it: who it is (for sharing) and its addresses, by how it holds them. */
export interface MappedService {
  readonly holder: Holder;
  /** What MetalLB serves it (status.loadBalancer.ingress). */
  readonly served: readonly IPAddress[];
  /** What it asks for (spec.loadBalancerIP or MetalLB's annotation). */
  readonly requested: readonly IPAddress[];
  readonly externalIPs: readonly IPAddress[];
}

/** An address claim (a Lease the webhook wrote at admission), as read from the cluster. */
export interface ClaimRecord {
  readonly address: IPAddress;
  readonly holder: Holder;
}

/**
 * The state of a held address, worst first: two holders that may not share it; served to a
 * Service that asks for another address; shared under MetalLB's rules; held by one.
 */
export type HeldState = "conflicting" | "requested-elsewhere" | "shared" | "held";

export interface AddressHolder {
  readonly ref: string;
  readonly via: HoldVia;
  readonly sharingKey: string;
  readonly ports: readonly string[];
}

export interface HeldAddress {
  readonly address: IPAddress;
  readonly state: HeldState;
  /** Status holders first, then requests, externalIPs and pending claims; each in input order. */
  readonly holders: readonly AddressHolder[];
  /** The AddressReservation of the address, when it has one. */
  readonly reservation?: Reservation;
}

/** What the lifecycle keeps (design.md, "Address lifecycle"), as read from the cluster or files. */
export interface KeptAddresses {
  /** Running retentions (expired ones left out by the caller). */
  readonly retained: RetainedAddresses;
  readonly reservations: readonly Reservation[];
  /** Each Namespace's `lb-ip-guard.dev/address-quota`. */
  readonly quotas: ReadonlyMap<string, number>;
}

/**
 * An address nobody holds that the allocator keeps for someone: `reserved` (an
 * AddressReservation; a retention of it is then moot) or `retained` (for the Service that gave
 * it up, until `retention.until`).
 */
export type KeptAddress =
  | { readonly state: "reserved"; readonly address: IPAddress; readonly reservation: Reservation }
  | { readonly state: "retained"; readonly address: IPAddress; readonly retention: Retention };

/** A namespace with a quota: the distinct pool addresses it holds or has reserved. */
export interface NamespaceUse {
  readonly namespace: string;
  readonly quota: number;
  /** Ascending, IPv4 first. */
  readonly addresses: readonly IPAddress[];
}

export interface MappedPool {
  readonly pool: Pool;
  /** Every address of its ranges. */
  readonly size: bigint;
  /** The addresses it hands out: `size` without .0 and .255 under avoidBuggyIPs. */
  readonly usable: bigint;
  readonly used: number;
  /** Usable addresses nobody holds and nobody has kept (retained or reserved). */
  readonly free: bigint;
  /** `used / usable`, 0 for a pool without usable addresses. */
  readonly shareUsed: number;
  /** Ascending. */
  readonly held: readonly HeldAddress[];
  /** Ascending: the pool's addresses kept for someone and held by no one. */
  readonly kept: readonly KeptAddress[];
  /** Ascending: every reserved address of the pool, and who holds it (nobody yet: none). */
  readonly reserved: readonly {
    readonly address: IPAddress;
    readonly reservation: Reservation;
    readonly heldBy: readonly string[];
  }[];
  /**
   * Runs of free usable addresses, in range declaration order. Under avoidBuggyIPs a run
   * neither starts nor ends on .0 or .255, but may span one: cutting every /24 would make the
   * list grow with the pool.
   */
  readonly freeRanges: readonly AddressRange[];
}

export type MapProblem =
  | {
      /** A holder that cannot have the address: it asks for it (it sits `<pending>`), or more. */
      readonly kind: "address-taken";
      readonly ref: string;
      readonly via: HoldVia;
      readonly address: IPAddress;
      readonly heldBy: string;
    }
  | {
      readonly kind: "outside-pools";
      readonly address: IPAddress;
      readonly refs: readonly string[];
    }
  | { readonly kind: "claim-without-service"; readonly address: IPAddress; readonly ref: string }
  | {
      /** Held by a Service the reservation is not for (held before it, or past the webhook). */
      readonly kind: "reserved-held-elsewhere";
      readonly address: IPAddress;
      readonly reservation: Reservation;
      readonly heldBy: string;
    };

export interface PoolMap {
  readonly pools: readonly MappedPool[];
  /** Held addresses that lie in no pool, ascending. */
  readonly outside: readonly HeldAddress[];
  /** The namespaces with a quota, by name. */
  readonly namespaces: readonly NamespaceUse[];
  readonly problems: readonly MapProblem[];
}

/** What `service` holds, read as the decisions read it (out-of-scope Services: externalIPs only). */
export function mappedServiceOf(
  service: ServiceObject,
  policy: Policy,
  ref: string,
): MappedService {
  const inScope = isInScope(service, policy) && isLoadBalancer(service);
  const request = inScope ? addressRequest(service, policy.reads) : { source: "none" as const };
  const requestedTexts =
    request.source === "spec" || request.source === "annotation" ? request.texts : [];
  return {
    holder: holderOf(service, policy, ref),
    served: inScope ? parsed(statusAddresses(service)) : [],
    requested: parsed(requestedTexts),
    externalIPs: externalHoldingsOf(service),
  };
}

function parsed(texts: readonly string[]): IPAddress[] {
  return texts.flatMap((text) => {
    const result = parseAddress(text);
    return result.ok ? [result.value] : [];
  });
}

interface Claimant {
  readonly holder: Holder;
  readonly via: HoldVia;
  /** Status holders first: MetalLB serves them, whoever asked first. */
  readonly rank: number;
}

const VIA_RANK: Readonly<Record<HoldVia, number>> = {
  status: 0,
  request: 1,
  externalIP: 2,
  claim: 3,
};

/**
 * The map of `pools` given the Services (in the order they would have been admitted, as
 * `check`'s audit orders them), the pending claims, and what the lifecycle keeps.
 */
export function poolMap(
  pools: PoolSet,
  services: readonly MappedService[],
  claims: readonly ClaimRecord[],
  kept: KeptAddresses = { retained: new RetainedAddresses(), reservations: [], quotas: new Map() },
): PoolMap {
  const byAddress: Record<Family, Map<bigint, Claimant[]>> = { IPv4: new Map(), IPv6: new Map() };
  const add = (address: IPAddress, holder: Holder, via: HoldVia, order: number) => {
    const claimant = {
      holder,
      via,
      rank: VIA_RANK[via] * (services.length + claims.length) + order,
    };
    const list = byAddress[address.family].get(address.value);
    if (list === undefined) {
      byAddress[address.family].set(address.value, [claimant]);
      return;
    }
    // A Service that both is served and requests an address holds it once, the stronger way.
    const index = list.findIndex((other) => other.holder.ref === holder.ref);
    if (index < 0) list.push(claimant);
    else if ((list[index] as Claimant).rank > claimant.rank) list[index] = claimant;
  };
  const problems: MapProblem[] = [];
  const byRef = new Map<string, MappedService>();
  services.forEach((service, order) => {
    byRef.set(service.holder.ref, service);
    for (const address of service.served) add(address, service.holder, "status", order);
    for (const address of service.requested) add(address, service.holder, "request", order);
    for (const address of service.externalIPs) add(address, service.holder, "externalIP", order);
  });
  claims.forEach((claim, order) => {
    const service = byRef.get(claim.holder.ref);
    // A claim its Service already holds the address for is settled, not pending.
    if (service !== undefined && holdsAddress(service, claim.address)) return;
    if (service === undefined) {
      problems.push({
        kind: "claim-without-service",
        address: claim.address,
        ref: claim.holder.ref,
      });
    }
    add(claim.address, claim.holder, "claim", order);
  });

  const reserved = reservationsByAddress(kept.reservations);
  const perPool = new Map<Pool, HeldAddress[]>(pools.pools.map((pool) => [pool, []]));
  const outside: HeldAddress[] = [];
  for (const family of FAMILIES) {
    const values = [...byAddress[family].keys()].sort(compareValues);
    for (const value of values) {
      const address = { family, value };
      const claimants = (byAddress[family].get(value) as Claimant[]).sort(
        (a, b) => a.rank - b.rank,
      );
      const reservation = reserved[family].get(value);
      const held = judge(address, claimants, byRef, problems, reservation);
      const pool = pools.poolOf(family, value);
      if (pool === undefined) {
        outside.push(held);
        // An externalIP outside every pool is kube-proxy's business, and no one else's.
        if (held.holders.every((holder) => holder.via === "externalIP")) continue;
        problems.push({
          kind: "outside-pools",
          address,
          refs: held.holders.map((holder) => holder.ref),
        });
      } else perPool.get(pool)?.push(held);
    }
  }
  const keptPerPool = keptInPools(pools, kept.retained, reserved, byAddress);
  const mapped = pools.pools.map((pool) =>
    mapPool(pool, perPool.get(pool) ?? [], keptPerPool.get(pool) ?? []),
  );
  return {
    pools: mapped,
    outside,
    namespaces: namespaceUse(mapped, kept.quotas),
    problems: problems.sort(problemOrder),
  };
}

const compareValues = (a: bigint, b: bigint) => (a < b ? -1 : a > b ? 1 : 0);

/** The reserved addresses; one reserved twice (past the webhook) keeps its first reservation. */
function reservationsByAddress(
  reservations: readonly Reservation[],
): Record<Family, Map<bigint, Reservation>> {
  const byAddress: Record<Family, Map<bigint, Reservation>> = { IPv4: new Map(), IPv6: new Map() };
  for (const reservation of reservations) {
    for (const { family, value } of reservation.addresses) {
      if (!byAddress[family].has(value)) byAddress[family].set(value, reservation);
    }
  }
  return byAddress;
}

/**
 * Each pool's kept addresses nobody holds, ascending: reserved ones, then retained ones not
 * reserved. A retained or reserved address outside every pool keeps nothing: no allocation
 * reaches it.
 */
function keptInPools(
  pools: PoolSet,
  retained: RetainedAddresses,
  reserved: Record<Family, Map<bigint, Reservation>>,
  held: Record<Family, Map<bigint, unknown>>,
): Map<Pool, KeptAddress[]> {
  const found: KeptAddress[] = [];
  for (const family of FAMILIES) {
    for (const [value, reservation] of reserved[family]) {
      if (!held[family].has(value)) {
        found.push({ state: "reserved", address: { family, value }, reservation });
      }
    }
  }
  for (const [address, retention] of retained.entries()) {
    const { family, value } = address;
    if (!held[family].has(value) && !reserved[family].has(value)) {
      found.push({ state: "retained", address, retention });
    }
  }
  const perPool = new Map<Pool, KeptAddress[]>();
  for (const entry of found.sort((a, b) => compareAddresses(a.address, b.address))) {
    const pool = pools.poolOf(entry.address.family, entry.address.value);
    if (pool === undefined) continue;
    const list = perPool.get(pool);
    if (list === undefined) perPool.set(pool, [entry]);
    else list.push(entry);
  }
  return perPool;
}

function compareAddresses(a: IPAddress, b: IPAddress): number {
  if (a.family !== b.family) return a.family === "IPv4" ? -1 : 1;
  return compareValues(a.value, b.value);
}

/**
 * What each namespace with a quota counts against it, as the webhook counts (quota.ts): the
 * distinct pool addresses its Services hold, however they hold them, and its reservations'.
 */
function namespaceUse(
  pools: readonly MappedPool[],
  quotas: ReadonlyMap<string, number>,
): NamespaceUse[] {
  if (quotas.size === 0) return [];
  const counted = new Map<string, Map<string, IPAddress>>(
    [...quotas.keys()].map((namespace) => [namespace, new Map()]),
  );
  const count = (namespace: string, address: IPAddress) =>
    counted.get(namespace)?.set(addressKey(address), address);
  for (const pool of pools) {
    for (const entry of pool.held) {
      for (const holder of entry.holders) count(namespaceOf(holder.ref), entry.address);
      if (entry.reservation !== undefined) count(entry.reservation.namespace, entry.address);
    }
    for (const entry of pool.kept) {
      if (entry.state === "reserved") count(entry.reservation.namespace, entry.address);
    }
  }
  return [...counted]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([namespace, addresses]) => ({
      namespace,
      quota: quotas.get(namespace) ?? 0,
      addresses: [...addresses.values()].sort(compareAddresses),
    }));
}

function holdsAddress(service: MappedService, address: IPAddress): boolean {
  const same = (other: IPAddress) => sameAddress(other, address);
  return (
    service.served.some(same) || service.requested.some(same) || service.externalIPs.some(same)
  );
}

/**
 * Who keeps an address: the claimants in rank order, each accepted when it may share with every
 * one accepted before it (MetalLB's rule); the others are problems. An externalIP is shared with
 * no one (its holder has no sharing key).
 */
function judge(
  address: IPAddress,
  claimants: readonly Claimant[],
  byRef: ReadonlyMap<string, MappedService>,
  problems: MapProblem[],
  reservation: Reservation | undefined,
): HeldAddress {
  const accepted: Claimant[] = [];
  let conflicting = false;
  for (const claimant of claimants) {
    const holder =
      claimant.via === "externalIP" ? { ...claimant.holder, sharingKey: "" } : claimant.holder;
    const blocker = accepted.find((other) => !mayShare(other.holder, holder));
    if (blocker === undefined) {
      accepted.push({ ...claimant, holder });
      continue;
    }
    conflicting = true;
    problems.push({
      kind: "address-taken",
      ref: claimant.holder.ref,
      via: claimant.via,
      address,
      heldBy: blocker.holder.ref,
    });
  }
  const askedElsewhere = accepted.some((claimant) => {
    const service = byRef.get(claimant.holder.ref);
    return (
      claimant.via === "status" &&
      service !== undefined &&
      service.requested.length > 0 &&
      !service.requested.some((other) => sameAddress(other, address))
    );
  });
  const stranger =
    reservation === undefined
      ? undefined
      : accepted.find((claimant) => !reservationAdmits(reservation, claimant.holder.ref));
  if (reservation !== undefined && stranger !== undefined) {
    problems.push({
      kind: "reserved-held-elsewhere",
      address,
      reservation,
      heldBy: stranger.holder.ref,
    });
  }
  const state: HeldState = conflicting
    ? "conflicting"
    : askedElsewhere
      ? "requested-elsewhere"
      : accepted.length > 1
        ? "shared"
        : "held";
  return {
    address,
    state,
    holders: claimants.map(({ holder, via }) => ({
      ref: holder.ref,
      via,
      sharingKey: holder.sharingKey,
      ports: holder.ports,
    })),
    ...(reservation !== undefined && { reservation }),
  };
}

function mapPool(
  pool: Pool,
  held: readonly HeldAddress[],
  kept: readonly KeptAddress[],
): MappedPool {
  let size = 0n;
  let usable = 0n;
  let takenUsable = 0n;
  for (const family of FAMILIES) usable += usableCount(pool, family);
  for (const range of pool.ranges) size += rangeSize(range);
  // Both ascending and disjoint: their merge is what no allocation takes freely.
  const taken =
    kept.length === 0
      ? held
      : [...held, ...kept].sort((a, b) => compareAddresses(a.address, b.address));
  for (const entry of taken) {
    if (isUsableAddress(pool, entry.address.family, entry.address.value)) takenUsable += 1n;
  }
  const free = usable - takenUsable;
  return {
    pool,
    size,
    usable,
    used: held.length,
    free,
    shareUsed: usable === 0n ? 0 : Number((BigInt(held.length) * 1_000_000n) / usable) / 1_000_000,
    held,
    kept,
    reserved: taken.flatMap((entry) => {
      const reservation = "reservation" in entry ? entry.reservation : undefined;
      if (reservation === undefined) return [];
      const heldBy = "holders" in entry ? entry.holders.map(({ ref }) => ref) : [];
      return [{ address: entry.address, reservation, heldBy }];
    }),
    freeRanges: pool.ranges.flatMap((range) =>
      freeRunsOf(range, taken).flatMap((run) => withoutAvoidedEnds(pool, run)),
    ),
  };
}

/** The runs of `range` that no taken address (ascending) falls in: a walk over the taken ones. */
function freeRunsOf(
  range: AddressRange,
  taken: readonly { readonly address: IPAddress }[],
): AddressRange[] {
  const runs: AddressRange[] = [];
  let next = range.first;
  for (const { address } of taken) {
    if (address.family !== range.family || address.value < next) continue;
    if (address.value > range.last) break;
    if (address.value > next)
      runs.push({ family: range.family, first: next, last: address.value - 1n });
    next = address.value + 1n;
  }
  if (next <= range.last) runs.push({ family: range.family, first: next, last: range.last });
  return runs;
}

/** `run` without the .0/.255 at its ends that the pool avoids; nothing when that is all of it. */
function withoutAvoidedEnds(pool: Pool, run: AddressRange): AddressRange[] {
  let { first, last } = run;
  while (first <= last && !isUsableAddress(pool, run.family, first)) first += 1n;
  while (last >= first && !isUsableAddress(pool, run.family, last)) last -= 1n;
  return first <= last ? [{ family: run.family, first, last }] : [];
}

function problemOrder(a: MapProblem, b: MapProblem): number {
  return compareAddresses(a.address, b.address);
}

/** `serviceAllocation` on one line: `priority 10, namespaces [a, b], services app=web`. */
export function describeAllocation(allocation: ServiceAllocation | undefined): string {
  if (allocation === undefined) return "any Service";
  const parts: string[] = [];
  if (allocation.priority !== undefined) parts.push(`priority ${allocation.priority}`);
  if (allocation.namespaces.length > 0)
    parts.push(`namespaces [${allocation.namespaces.join(", ")}]`);
  if (allocation.namespaceSelectors.length > 0)
    parts.push(`namespaces ${allocation.namespaceSelectors.map(describeSelector).join(" or ")}`);
  if (allocation.serviceSelectors.length > 0)
    parts.push(`services ${allocation.serviceSelectors.map(describeSelector).join(" or ")}`);
  return parts.length > 0 ? parts.join(", ") : "any Service";
}

function describeSelector(selector: LabelSelector): string {
  const terms = [
    ...Object.entries(selector.matchLabels).map(([key, value]) => `${key}=${value}`),
    ...selector.matchExpressions.map((requirement) => {
      if (requirement.operator === "Exists") return requirement.key;
      if (requirement.operator === "DoesNotExist") return `!${requirement.key}`;
      const op = requirement.operator === "In" ? "in" : "notin";
      return `${requirement.key} ${op} (${requirement.values.join(",")})`;
    }),
  ];
  return terms.length > 0 ? `{${terms.join(",")}}` : "{}";
}

/** Whom a reservation is for: `team-a/web`, or `namespace team-a`. */
export function reservedFor(reservation: Reservation): string {
  return reservation.serviceName === undefined
    ? `namespace ${reservation.namespace}`
    : `${reservation.namespace}/${reservation.serviceName}`;
}

/** A problem on one line, for the text report and the page alike. */
export function describeProblem(problem: MapProblem): string {
  const address = formatAddress(problem.address);
  switch (problem.kind) {
    case "outside-pools":
      return `${address} is held outside every pool by ${problem.refs.join(", ")}`;
    case "claim-without-service":
      return `${address} is claimed for ${problem.ref}, which does not exist (a refused or deleted Service; the claim expires)`;
    case "reserved-held-elsewhere":
      return `${address} is reserved by AddressReservation ${reservationRef(problem.reservation)} for ${reservedFor(problem.reservation)}, but ${problem.heldBy} holds it (it is never moved: free it, or change the reservation)`;
    case "address-taken": {
      const how = {
        request: `requests ${address}, which ${problem.heldBy} holds and does not share with it: it stays <pending>`,
        status: `is served ${address}, which ${problem.heldBy} also holds and does not share with it`,
        externalIP: `lists ${address} in spec.externalIPs, which ${problem.heldBy} holds`,
        claim: `has a pending claim on ${address}, which ${problem.heldBy} holds`,
      }[problem.via];
      return `${problem.ref} ${how}`;
    }
  }
}
