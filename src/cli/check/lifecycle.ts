// The address lifecycle as `check` and `pools` read it from their inputs (design.md, "Address
// lifecycle"): AddressReservations, the address quotas of Namespaces, and the webhook's claim
// Leases, whose retention keeps a released address for its Service and whose pending claim holds
// an address for a Service the API server has not stored (yet). The webhook reads the same
// objects from its watches; here they come from --existing files, the PATHs, or --cluster.

import { asRecord } from "../../base/objects.ts";
import { CLAIM_SELECTOR, type Claim, parseClaim } from "../../cluster/claims/lease.ts";
import { parseQuota, QUOTA_ANNOTATION } from "../../ipam/decide/quota.ts";
import {
  isReservationObject,
  parseReservation,
  type Reservation,
  reservationRef,
  reservationSpecOf,
} from "../../ipam/reservations.ts";
import { RetainedAddresses } from "../../ipam/retained.ts";
import type { ManifestObject } from "../../manifests/loader.ts";
import { collectNamespaces } from "./input.ts";

export interface Lifecycle {
  /** The retentions still running at the time of the run; expired ones are dropped. */
  readonly retained: RetainedAddresses;
  /** The AddressReservations whose addresses parse. */
  readonly reservations: readonly Reservation[];
  /** The valid `lb-ip-guard.dev/address-quota` of each Namespace that has one. */
  readonly quotas: ReadonlyMap<string, number>;
  /** Claims that hold their address (not retentions), in input order. */
  readonly claims: readonly Claim[];
}

const [MANAGED_BY_LABEL = "", MANAGED_BY = ""] = CLAIM_SELECTOR.split("=");

/**
 * What `objects` say of the lifecycle at `now` (ms): the time matters only for a retention's
 * end. A quota the webhook would not read, or a reservation whose addresses do not parse, is a
 * warning: the webhook enforces neither, and so decides as if they were absent.
 */
export function lifecycleOf(
  objects: readonly ManifestObject[],
  now: number,
  warnings: string[],
): Lifecycle {
  const retained = new RetainedAddresses();
  const reservations: Reservation[] = [];
  const claims: Claim[] = [];
  for (const manifest of objects) {
    const { object } = manifest;
    if (isReservationObject(object)) {
      const spec = reservationSpecOf(object, "default");
      const parsed = parseReservation(spec);
      if (parsed.ok) reservations.push(parsed.value);
      else {
        warnings.push(
          `AddressReservation ${reservationRef(spec)} left out: ${parsed.error} (${manifest.location})`,
        );
      }
      continue;
    }
    if (!isClaimLease(object)) continue;
    const claim = parseClaim(object);
    if (claim === undefined) continue;
    const { retention } = claim;
    if (retention === undefined) claims.push(claim);
    else if (retention.until > now)
      retained.retain(claim.address, { ref: claim.holder.ref, ...retention });
  }
  const quotas = new Map<string, number>();
  for (const [namespace, { annotations }] of collectNamespaces(objects)) {
    const given = annotations[QUOTA_ANNOTATION];
    if (given === undefined) continue;
    const quota = parseQuota(given);
    if (quota !== undefined) quotas.set(namespace, quota);
    else {
      warnings.push(
        `Namespace ${namespace}: ${QUOTA_ANNOTATION} ${JSON.stringify(given)} is not a number of addresses; the webhook enforces no quota there`,
      );
    }
  }
  return { retained, reservations, quotas, claims };
}

/** A claim Lease, as the webhook's label selector picks them out among a namespace's Leases. */
function isClaimLease(object: Record<string, unknown>): boolean {
  const labels = asRecord(asRecord(object.metadata).labels);
  return (
    object.kind === "Lease" &&
    object.apiVersion === "coordination.k8s.io/v1" &&
    labels[MANAGED_BY_LABEL] === MANAGED_BY
  );
}
