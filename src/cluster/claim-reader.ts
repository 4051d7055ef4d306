// The address claims `lb-ip-guard pools --cluster` shows as pending holders: the Leases the
// webhook writes at admission, read once, read-only. Kept apart from the rest of the snapshot
// because the claims' format is the webhook's own and may change with it (claims/lease.ts).

import type { ClaimRecord } from "../ipam/pool-map.ts";
import { CLAIM_SELECTOR, parseClaim } from "./claims/lease.ts";
import { KubeClient, loadKubeConfig } from "./kube.ts";

/** Throws KubeConfigError (no usable kubeconfig) or KubeApiError (the list failed: 403, ...). */
export async function readClaims(
  target: { readonly kubeconfig?: string; readonly context?: string },
  namespace: string,
): Promise<readonly ClaimRecord[]> {
  const client = new KubeClient(loadKubeConfig(target.kubeconfig, target.context));
  const path = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/leases`;
  const { items } = await client.list(path, { labelSelector: CLAIM_SELECTOR });
  return items.flatMap((lease) => {
    const claim = parseClaim(lease);
    // A retention holds nothing (ADR 0018): its Service is gone, and its address is not pending.
    if (claim === undefined || claim.retention !== undefined) return [];
    return [{ address: claim.address, holder: claim.holder }];
  });
}
