// What `lb-ip-guard reserve` asks of the cluster beside what `check --cluster` reads: the
// namespace of the current context, and the create of one AddressReservation, which the webhook
// admits or refuses like any other write of one.

import { KubeApiError, KubeClient, loadKubeConfig } from "./kube.ts";
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
