// The admission of an AddressReservation: its addresses parse, lie in one pool whose
// serviceAllocation admits the namespace, are held by no other namespace's Service, are
// reserved by no other reservation, and keep the namespace within its quota. The same rules and
// reason codes as a grant; a Service of the namespace already holding the address keeps it.

import {
  formatAddress,
  formatAddressList,
  type IPAddress,
  isBuggyIPv4,
  parseAddress,
} from "../address.ts";
import { type Pool, poolAllowsService } from "../pool.ts";
import { type ReservationSpec, reservationRef } from "../reservations.ts";
import { namespaceOf } from "../usage.ts";
import { type ClusterView, type Decision, deny } from "./decision.ts";
import { freeHint, poolsHint } from "./messages.ts";
import { quotaDenial } from "./quota.ts";

export function decideReservation(spec: ReservationSpec, view: ClusterView): Decision {
  const ref = reservationRef(spec);
  const what = `AddressReservation ${ref}`;
  const addresses: IPAddress[] = [];
  for (const text of spec.addresses) {
    const parsed = parseAddress(text);
    if (!parsed.ok)
      return deny("InvalidAddress", `${what} reserves ${parsed.error} (in spec.addresses)`);
    addresses.push(parsed.value);
  }
  const [first, second] = addresses;
  if (first === undefined)
    return deny(
      "InvalidAddress",
      `${what} has no spec.addresses; give one address, or two of different families`,
    );
  if (addresses.length > 2 || (second !== undefined && second.family === first.family)) {
    return deny(
      "FamilyMismatch",
      `${what} reserves ${formatAddressList(addresses)}: one address, or two of different families`,
      addresses,
    );
  }
  const pool = poolOfAll(view, addresses);
  if (typeof pool === "string") return deny("NotInAnyPool", `${what} reserves ${pool}`, addresses);
  if (pool === undefined) {
    return deny(
      "PoolMismatch",
      `${what} reserves ${formatAddressList(addresses)} from two pools; both addresses must come from one`,
      addresses,
    );
  }
  if (!poolAllowsNamespace(pool, view, spec.namespace)) {
    return deny(
      "PoolNotAllowed",
      `${what} reserves ${formatAddressList(addresses)} of pool "${pool.name}", whose serviceAllocation does not admit namespace ${spec.namespace}`,
      addresses,
      pool,
    );
  }
  for (const address of addresses) {
    const foreign = view.usage
      .holdersOf(address.family, address.value)
      .find((holder) => namespaceOf(holder.ref) !== spec.namespace);
    if (foreign !== undefined) {
      return deny(
        "AddressInUse",
        `${what} reserves ${formatAddress(address)}, which ${foreign.ref} of another namespace holds (pool "${pool.name}"); ${freeHint(pool, view)}`,
        [address],
        pool,
      );
    }
    const other = view.reservations?.reservationOf(address.family, address.value);
    if (other !== undefined && reservationRef(other) !== ref) {
      return deny(
        "AddressReserved",
        `${what} reserves ${formatAddress(address)}, which AddressReservation ${reservationRef(other)} reserves already (pool "${pool.name}"); ${freeHint(pool, view)}`,
        [address],
        pool,
      );
    }
  }
  const overQuota = quotaDenial(view, ref, addresses, [], { reservation: spec.name });
  if (overQuota !== undefined) return { ...overQuota, pool: pool.name };
  const forWhom =
    spec.serviceName === undefined
      ? `the Services of namespace ${spec.namespace}`
      : `${spec.namespace}/${spec.serviceName}`;
  return {
    kind: "allowed",
    addresses,
    pool: pool.name,
    message: `${what} reserves ${formatAddressList(addresses)} of pool "${pool.name}" for ${forWhom}`,
    warnings: [],
    request: undefined,
  };
}

/**
 * The one pool all addresses lie in (as MetalLB's poolFor sees it: .0/.255 of an avoidBuggyIPs
 * pool lie in none); a message when one lies in no pool; undefined when they span two.
 */
function poolOfAll(view: ClusterView, addresses: readonly IPAddress[]): Pool | string | undefined {
  let found: Pool | undefined;
  for (const address of addresses) {
    const pool = view.pools.poolOf(address.family, address.value);
    if (
      pool === undefined ||
      (pool.avoidBuggyIPs && address.family === "IPv4" && isBuggyIPv4(address.value))
    )
      return `${formatAddress(address)}, which lies in no pool${pool === undefined ? "" : ` (pool "${pool.name}" has avoidBuggyIPs)`}; ${poolsHint(view.pools, address.family)}`;
    if (found !== undefined && found !== pool) return undefined;
    found = pool;
  }
  return found;
}

/** A pool's serviceAllocation on the namespace alone: a reservation has no labels of a Service. */
function poolAllowsNamespace(pool: Pool, view: ClusterView, namespace: string): boolean {
  const allocation = pool.serviceAllocation;
  if (allocation === undefined) return true;
  return poolAllowsService(
    { ...pool, serviceAllocation: { ...allocation, serviceSelectors: [] } },
    { namespace, labels: {}, namespaceLabels: view.namespaceLabels(namespace) },
  );
}
