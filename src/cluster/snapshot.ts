// A read-only, one-shot copy of what the webhook watches, for `lb-ip-guard check --cluster`:
// the same collections through the same client as the watches, returned as plain documents
// (each with apiVersion and kind) that the check pipeline reads like manifests. Claims nothing.

import { KubeApiError, KubeClient, loadKubeConfig } from "./kube.ts";
import { type Detected, detectMetalLBRelease } from "./metallb-release.ts";
import { clusterResources, type Resource } from "./resources.ts";

export interface SnapshotOptions {
  /** A kubeconfig file; else KUBECONFIG, ~/.kube/config, or the in-cluster service account. */
  readonly kubeconfig?: string;
  /** A context of that kubeconfig; else its current one. */
  readonly context?: string;
  /** Default "metallb-system". */
  readonly metallbNamespace?: string;
}

export interface ClusterSnapshot {
  /** The API server, for messages: `https://10.0.0.1:6443`. */
  readonly server: string;
  /** Pool sources: the legacy ConfigMap (when there is one), then the IPAddressPools. */
  readonly pools: readonly Record<string, unknown>[];
  /** Namespaces (for namespace selectors), then every Service. */
  readonly existing: readonly Record<string, unknown>[];
  /** The MetalLB release its controller Deployment runs, or why that is unknown. */
  readonly release: Detected;
}

/** Throws KubeConfigError (no usable kubeconfig) or KubeApiError (a list failed). */
export async function readClusterSnapshot(options: SnapshotOptions = {}): Promise<ClusterSnapshot> {
  const client = new KubeClient(loadKubeConfig(options.kubeconfig, options.context));
  const resources = clusterResources(options.metallbNamespace ?? "metallb-system");
  const list = async (resource: Resource) => {
    try {
      return (await client.list(resource.path, selector(resource))).items;
    } catch (error) {
      if (resource.optional && error instanceof KubeApiError && error.status === 404) return [];
      throw error;
    }
  };
  const [configMaps, ipAddressPools, namespaces, services, release] = await Promise.all([
    list(resources.configMap),
    list(resources.ipAddressPools),
    list(resources.namespaces),
    list(resources.services),
    detectMetalLBRelease(client, options.metallbNamespace ?? "metallb-system"),
  ]);
  return {
    server: client.server,
    pools: [...configMaps, ...ipAddressPools],
    existing: [...namespaces, ...services],
    release,
  };
}

function selector(resource: Resource): { fieldSelector?: string } {
  return resource.fieldSelector === undefined ? {} : { fieldSelector: resource.fieldSelector };
}
