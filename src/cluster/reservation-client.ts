// What `lb-ip-guard reserve` asks of the cluster: the reservations and retentions that the next
// free address must pass over (read once, read-only), and the create of one AddressReservation,
// which the webhook admits or refuses like any other write of one.

import { parseReservation, ReservationIndex, reservationSpecOf } from "../ipam/reservations.ts";
import { RetainedAddresses } from "../ipam/retained.ts";
import { CLAIM_SELECTOR, type Claim, parseClaim } from "./claims/lease.ts";
import { describeError, KubeApiError, KubeClient, loadKubeConfig } from "./kube.ts";
import { clusterResources } from "./resources.ts";

export interface ReserveTarget {
  readonly kubeconfig?: string;
  readonly context?: string;
}

/** The namespace of the kubeconfig's current context (kubectl's default for -n), if it names one. */
export function contextNamespace(target: ReserveTarget): string | undefined {
  const config = loadKubeConfig(target.kubeconfig, target.context);
  const namespace = config.getContextObject(config.getCurrentContext())?.namespace;
  return namespace === undefined || namespace === "" ? undefined : namespace;
}

/** What is set aside already: every reservation, the retentions, and the pending claims. */
export interface SetAside {
  readonly reservations: ReservationIndex;
  readonly retained: RetainedAddresses;
  /** Claims that retain nothing: addresses granted to Services that may not exist yet. */
  readonly claimed: readonly Pick<Claim, "name" | "address" | "holder">[];
  /** Why the retentions could not be read (the claims namespace is not readable), if so. */
  readonly warning: string | undefined;
}

/** Throws KubeConfigError, or KubeApiError when the reservations cannot be listed. */
export async function readSetAside(
  target: ReserveTarget,
  claimsNamespace: string,
): Promise<SetAside> {
  const client = new KubeClient(loadKubeConfig(target.kubeconfig, target.context));
  const { items } = await client.list(clusterResources("").reservations.path);
  // As the webhook's watch has them: one whose addresses do not parse reserves nothing.
  const reservations = ReservationIndex.from(
    items.flatMap((item) => {
      const parsed = parseReservation(reservationSpecOf(item, ""));
      return parsed.ok ? [parsed.value] : [];
    }),
  );
  const retained = new RetainedAddresses();
  const claimed: Claim[] = [];
  const path = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(claimsNamespace)}/leases`;
  try {
    const leases = await client.list(path, { labelSelector: CLAIM_SELECTOR });
    for (const lease of leases.items) {
      const claim = parseClaim(lease);
      if (claim === undefined) continue;
      if (claim.retention === undefined) claimed.push(claim);
      else retained.retain(claim.address, { ref: claim.holder.ref, ...claim.retention });
    }
    return { reservations, retained, claimed, warning: undefined };
  } catch (error) {
    const warning = `address claims in namespace ${claimsNamespace} not read (retained addresses are not passed over): ${describeError(error)}`;
    return { reservations, retained, claimed, warning };
  }
}

export type CreateOutcome =
  | { readonly kind: "created"; readonly object: Record<string, unknown> }
  /** The API server (or the webhook through it) refused it: its message, one line. */
  | { readonly kind: "refused"; readonly message: string };

/**
 * POSTs one AddressReservation (a server-side dry run with `dryRun`: the webhook decides it all
 * the same). Throws KubeConfigError, or KubeApiError for what is not a refusal of the object
 * (the API server unreachable).
 */
export async function createReservation(
  target: ReserveTarget,
  object: Record<string, unknown> & { metadata: { namespace: string } },
  dryRun: boolean,
): Promise<CreateOutcome> {
  const client = new KubeClient(loadKubeConfig(target.kubeconfig, target.context));
  const namespace = encodeURIComponent(object.metadata.namespace);
  const collection = clusterResources("").reservations.path.replace(
    "/addressreservations",
    `/namespaces/${namespace}/addressreservations`,
  );
  try {
    const created = await client.request("POST", `${collection}${dryRun ? "?dryRun=All" : ""}`, {
      body: object,
    });
    return { kind: "created", object: created };
  } catch (error) {
    if (!(error instanceof KubeApiError) || error.status === undefined) throw error;
    if (error.status === 404) {
      return {
        kind: "refused",
        message:
          "the AddressReservation CRD (addressreservations.lb-ip-guard.dev) is not installed: apply deploy/crds/addressreservations.lb-ip-guard.dev.yaml, or install the chart",
      };
    }
    if (error.status >= 500) throw error;
    return { kind: "refused", message: refusalOf(error.message) };
  }
}

/** The webhook's own words (reason code first), without the API server's wrapping. */
function refusalOf(message: string): string {
  const denied = /admission webhook "[^"]+" denied the request: (.*)$/s.exec(message)?.[1];
  return (denied ?? message.replace(/^POST \S+: \d{3} /, "")).replace(/\s*\n\s*/g, " ");
}
