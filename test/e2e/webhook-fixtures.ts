// What the webhook e2e suites (and `npm run dev:cluster`) share: the Kubeflow-on-MetalLB-v0.11
// example of examples/kubeflow-v0.11/, Service manifests, and polling with a deadline.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import type { ControlPlane, KubectlResult } from "./harness.ts";

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
export const EXAMPLE_DIR = join(repoRoot, "examples/kubeflow-v0.11");
export const METALLB_CONFIG = join(EXAMPLE_DIR, "metallb-config.yaml");
export const DASHBOARDS = join(EXAMPLE_DIR, "dashboards.yaml");

/**
 * The example's Services carry the fixed ClusterIPs of a kubeadm cluster; a control plane started
 * with this range accepts them as they are.
 */
export const KUBEADM_SERVICE_RANGE = "10.96.0.0/12";

/** The four dashboards the guide exposes by hand, in the order of dashboards.yaml. */
export const DASHBOARD_SERVICES = [
  "istio-system/istio-ingressgateway",
  "kubeflow/minio-service",
  "mlflow-system/mlflow-server-service",
  "seldon-system/seldon-core-analytics-grafana",
] as const;

/** Every namespace the example uses, plus MetalLB's. */
export const EXAMPLE_NAMESPACES = [
  "metallb-system",
  "istio-system",
  "kubeflow",
  "mlflow-system",
  "seldon-system",
  "team-a",
] as const;

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
}

/** The Services of dashboards.yaml by `namespace/name`, exactly as the file has them. */
export function exampleServices(): Map<string, Manifest> {
  const docs = parseAllDocuments(readFileSync(DASHBOARDS, "utf8")).map(
    (doc) => doc.toJS() as Manifest,
  );
  return new Map(docs.map((doc) => [`${doc.metadata.namespace}/${doc.metadata.name}`, doc]));
}

/** One example Service by `namespace/name`; throws if the example no longer has it. */
export function exampleService(ref: string): Manifest {
  const doc = exampleServices().get(ref);
  if (doc === undefined) throw new Error(`${DASHBOARDS} has no Service ${ref}`);
  return doc;
}

/** The legacy MetalLB ConfigMap of the example, with `addresses` instead of the example's. */
export function legacyConfigMap(addresses: readonly string[]): Manifest {
  const lines = addresses.map((range) => `  - ${range}\n`).join("");
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "config", namespace: "metallb-system" },
    data: {
      config: `address-pools:\n- name: default\n  protocol: layer2\n  addresses:\n${lines}`,
    },
  };
}

/** An IPAddressPool (metallb.io/v1beta1) in metallb-system. */
export function ipAddressPool(name: string, addresses: readonly string[]): Manifest {
  return {
    apiVersion: "metallb.io/v1beta1",
    kind: "IPAddressPool",
    metadata: { name, namespace: "metallb-system" },
    spec: { addresses: [...addresses] },
  };
}

/** Namespaces first (kubectl refuses objects in a missing one), then the example's ConfigMap. */
export async function applyExamplePools(cp: ControlPlane): Promise<void> {
  await applyNamespaces(cp, EXAMPLE_NAMESPACES);
  await cp.kubectl(["apply", "-f", METALLB_CONFIG]);
}

export async function applyNamespaces(cp: ControlPlane, names: readonly string[]): Promise<void> {
  const namespaces = names.map((name) => ({
    apiVersion: "v1",
    kind: "Namespace",
    metadata: { name },
  }));
  await cp.kubectl(["apply", "-f", "-"], {
    stdin: JSON.stringify({ apiVersion: "v1", kind: "List", items: namespaces }),
  });
}

/**
 * A LoadBalancer Service asking for `ip` in spec.loadBalancerIP (the MetalLB v0.11 way), or for
 * no address in particular; `spec` adds fields (e.g. ipFamilies).
 */
export function loadBalancer(
  namespace: string,
  name: string,
  ip: string | undefined,
  spec: Record<string, unknown> = {},
): Manifest {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace },
    spec: {
      type: "LoadBalancer",
      ...(ip !== undefined && { loadBalancerIP: ip }),
      selector: { app: name },
      ports: [{ name: "http", port: 80, protocol: "TCP" }],
      ...spec,
    },
  };
}

/** A ClusterIP Service that opts in to auto-assign. */
export function autoAssign(namespace: string, name: string): Manifest {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace, annotations: { "lb-ip-guard.dev/auto-assign": "true" } },
    spec: {
      type: "ClusterIP",
      selector: { app: name },
      ports: [{ name: "http", port: 80, protocol: "TCP" }],
    },
  };
}

export const stdin = (...manifests: Manifest[]): string =>
  JSON.stringify(
    manifests.length === 1 ? manifests[0] : { apiVersion: "v1", kind: "List", items: manifests },
  );

/** `kubectl get svc -A -o json`, as `namespace/name` → Service. */
export async function services(cp: ControlPlane): Promise<Map<string, Manifest>> {
  const list = JSON.parse((await cp.kubectl(["get", "svc", "-A", "-o", "json"])).stdout) as {
    items: Manifest[];
  };
  return new Map(list.items.map((s) => [`${s.metadata.namespace}/${s.metadata.name}`, s]));
}

/**
 * Runs `attempt` until `done` holds for its result, at most `timeoutMs`; resolves with the last
 * result and how long it took. Fails with the last result when the deadline passes.
 */
export async function until(
  what: string,
  attempt: () => Promise<KubectlResult>,
  done: (result: KubectlResult) => boolean,
  timeoutMs = 15_000,
): Promise<{ result: KubectlResult; ms: number }> {
  const start = Date.now();
  for (;;) {
    const result = await attempt();
    if (done(result)) return { result, ms: Date.now() - start };
    if (Date.now() - start > timeoutMs) {
      throw new Error(
        `not within ${timeoutMs} ms: ${what}; last kubectl exit ${result.code}: ${(result.stderr || result.stdout).trim()}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
