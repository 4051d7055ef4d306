// The address space as a person wants to see it (`lb-ip-guard pools`): every pool with its size,
// use and free ranges, every held address with all its holders, and what is wrong. Pure. Costs
// grow with the number of holders and ranges, never with the size of a pool: free ranges are the
// gaps between sorted held addresses, so an IPv6 /64 costs what a /24 costs.

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
import { addressRequest, isLoadBalancer, type ServiceObject, statusAddresses } from "./service.ts";
import { type Holder, mayShare } from "./usage.ts";
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
}

export interface MappedPool {
  readonly pool: Pool;
  /** Every address of its ranges. */
  readonly size: bigint;
  /** The addresses it hands out: `size` without .0 and .255 under avoidBuggyIPs. */
  readonly usable: bigint;
  readonly used: number;
  /** Usable addresses nobody holds. */
  readonly free: bigint;
  /** `used / usable`, 0 for a pool without usable addresses. */
  readonly shareUsed: number;
  /** Ascending. */
  readonly held: readonly HeldAddress[];
  /**
   * Runs of usable addresses nobody holds, in range declaration order. Under avoidBuggyIPs a run
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
  | { readonly kind: "claim-without-service"; readonly address: IPAddress; readonly ref: string };

export interface PoolMap {
  readonly pools: readonly MappedPool[];
  /** Held addresses that lie in no pool, ascending. */
  readonly outside: readonly HeldAddress[];
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
 * `check`'s audit orders them) and the claims read from the cluster (none offline).
 */
export function poolMap(
  pools: PoolSet,
  services: readonly MappedService[],
  claims: readonly ClaimRecord[],
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

  const perPool = new Map<Pool, HeldAddress[]>(pools.pools.map((pool) => [pool, []]));
  const outside: HeldAddress[] = [];
  for (const family of FAMILIES) {
    const values = [...byAddress[family].keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (const value of values) {
      const address = { family, value };
      const claimants = (byAddress[family].get(value) as Claimant[]).sort(
        (a, b) => a.rank - b.rank,
      );
      const held = judge(address, claimants, byRef, problems);
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
  return {
    pools: pools.pools.map((pool) => mapPool(pool, perPool.get(pool) ?? [])),
    outside,
    problems: problems.sort(problemOrder),
  };
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
  };
}

function mapPool(pool: Pool, held: readonly HeldAddress[]): MappedPool {
  let size = 0n;
  let usable = 0n;
  let heldUsable = 0n;
  for (const family of FAMILIES) usable += usableCount(pool, family);
  for (const range of pool.ranges) size += rangeSize(range);
  for (const entry of held) {
    if (isUsableAddress(pool, entry.address.family, entry.address.value)) heldUsable += 1n;
  }
  const free = usable - heldUsable;
  return {
    pool,
    size,
    usable,
    used: held.length,
    free,
    shareUsed: usable === 0n ? 0 : Number((BigInt(held.length) * 1_000_000n) / usable) / 1_000_000,
    held,
    freeRanges: pool.ranges.flatMap((range) =>
      freeRunsOf(range, held).flatMap((run) => withoutAvoidedEnds(pool, run)),
    ),
  };
}

/** The runs of `range` that no held address (ascending) falls in: a walk over the held ones. */
export function freeRunsOf(range: AddressRange, held: readonly HeldAddress[]): AddressRange[] {
  const runs: AddressRange[] = [];
  let next = range.first;
  for (const { address } of held) {
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
  if (a.address.family !== b.address.family) return a.address.family === "IPv4" ? -1 : 1;
  return a.address.value < b.address.value ? -1 : a.address.value > b.address.value ? 1 : 0;
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

/** A problem on one line, for the text report and the page alike. */
export function describeProblem(problem: MapProblem): string {
  const address = formatAddress(problem.address);
  switch (problem.kind) {
    case "outside-pools":
      return `${address} is held outside every pool by ${problem.refs.join(", ")}`;
    case "claim-without-service":
      return `${address} is claimed for ${problem.ref}, which does not exist (a refused or deleted Service; the claim expires)`;
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
