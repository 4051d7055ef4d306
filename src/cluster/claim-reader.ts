// What `check --cluster` and `pools --cluster` read of the address lifecycle beside the snapshot:
// the claim Leases the webhook writes (pending claims, and the retentions of released addresses)
// and the AddressReservations, read once, read-only, as plain objects that the CLI reads like
// manifests. Kept apart from the snapshot because a cluster that refuses them (RBAC, no CRD)
// still gets its check and its map, with a warning.

import { RESERVATION_GROUP } from "../ipam/reservations.ts";
import { CLAIM_SELECTOR } from "./claims/lease.ts";
import { KubeApiError, KubeClient, loadKubeConfig } from "./kube.ts";
import type { KubeObject } from "./reflector.ts";

const RESERVATIONS_PATH = `/apis/${RESERVATION_GROUP}/v1alpha1/addressreservations`;

/** Throws KubeConfigError (no usable kubeconfig); a list that fails is a warning. */
export async function readLifecycleObjects(
  target: { readonly kubeconfig?: string; readonly context?: string },
  claimsNamespace: string,
): Promise<{ readonly objects: readonly KubeObject[]; readonly warnings: readonly string[] }> {
  const client = new KubeClient(loadKubeConfig(target.kubeconfig, target.context));
  const warnings: string[] = [];
  const claimsPath = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(claimsNamespace)}/leases`;
  const [claims, reservations] = await Promise.all([
    client.list(claimsPath, { labelSelector: CLAIM_SELECTOR }).then(
      ({ items }) => items,
      (error: Error) => {
        warnings.push(`address claims in namespace ${claimsNamespace} not read: ${error.message}`);
        return [];
      },
    ),
    client.list(RESERVATIONS_PATH).then(
      ({ items }) => items,
      (error: Error) => {
        // No CRD installed: no reservation can exist.
        if (!(error instanceof KubeApiError && error.status === 404)) {
          warnings.push(`AddressReservations not read: ${error.message}`);
        }
        return [];
      },
    ),
  ]);
  return { objects: [...reservations, ...claims], warnings };
}
