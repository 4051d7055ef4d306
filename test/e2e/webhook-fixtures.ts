// What the webhook e2e suites (and `npm run dev:cluster`) share: the Kubeflow-on-MetalLB-v0.11
// example of examples/kubeflow-v0.11/, Service manifests, polling with a deadline, and MetalLB
// v0.11.0 beside the webhook with the assertions that it served what the webhook admitted.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import {
  allocationFailures,
  type ControlPlane,
  type KubectlResult,
  type MetalLBProcess,
  startControlPlane,
  type WebhookProcess,
} from "./harness.ts";

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

/** The addresses of the example's pool `default` (its METALLB_CONFIG). */
export const EXAMPLE_RANGE: readonly string[] = ["192.168.35.100-192.168.35.110"];

/** A pool of the legacy ConfigMap, as MetalLB v0.11 reads it. */
export interface LegacyPool {
  name: string;
  addresses: readonly string[];
  /** `auto-assign: false` when false: MetalLB hands its addresses out only when asked for them. */
  autoAssign?: boolean;
}

/**
 * The legacy MetalLB ConfigMap of the example, with `addresses` instead of the example's, and
 * `more` pools after its pool `default`.
 */
export function legacyConfigMap(
  addresses: readonly string[],
  more: readonly LegacyPool[] = [],
): Manifest {
  const pools = [{ name: "default", addresses }, ...more].map(
    (pool) =>
      `- name: ${pool.name}\n  protocol: layer2\n` +
      (pool.autoAssign === false ? "  auto-assign: false\n" : "") +
      `  addresses:\n${pool.addresses.map((range) => `  - ${range}\n`).join("")}`,
  );
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "config", namespace: "metallb-system" },
    data: { config: `address-pools:\n${pools.join("")}` },
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

/** One line of the webhook's log about an answered review (src/server/app.ts writes them). */
export interface ReviewRecord {
  readonly webhook: string;
  readonly operation: string;
  readonly namespace?: string;
  readonly name?: string;
  readonly subResource?: string;
  readonly decision: string;
  readonly time: string;
}

/** Every review the webhook has logged so far, in order. */
export async function reviewRecords(webhook: WebhookProcess): Promise<ReviewRecord[]> {
  return (await webhook.log())
    .split("\n")
    .filter((line) => line.includes('"admission review"'))
    .map((line) => JSON.parse(line) as ReviewRecord);
}

/**
 * The logged reviews that `match`, once there is one: the webhook writes its log asynchronously,
 * so on a loaded machine a review's record can land after the kubectl it answered returned.
 * Empty when none is logged within `timeoutMs`.
 */
export async function loggedReviews(
  webhook: WebhookProcess,
  match: (record: ReviewRecord) => boolean,
  timeoutMs = 5000,
): Promise<ReviewRecord[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const matching = (await reviewRecords(webhook)).filter(match);
    if (matching.length > 0 || Date.now() > deadline) return matching;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

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

// ---------------------------------------------------------------------------------------------
// MetalLB's real controller beside the webhook: the judge of what the webhook admitted.

/** The release of the example (its legacy ConfigMap), run beside the webhook suites. */
export const EXAMPLE_METALLB = "v0.11.0";

export interface ExampleBed {
  cp: ControlPlane;
  webhook: WebhookProcess;
  metallb: MetalLBProcess;
}

/**
 * The example's bed: a control plane (kubeadm's service range), the example's namespaces and
 * ConfigMap (or `pools` instead), `lb-ip-guard serve --metallb-version v0.11.0` registered, and
 * then MetalLB v0.11.0's controller, so that MetalLB only ever sees Services that went through
 * the webhook. With `beforeWebhook`, MetalLB starts first and `beforeWebhook` runs while it
 * serves with no webhook registered (Services created then get MetalLB's own pick).
 */
export async function startExampleBed(
  options: { pools?: Manifest; beforeWebhook?: (cp: ControlPlane) => Promise<void> } = {},
): Promise<ExampleBed> {
  const cp = await startControlPlane({ serviceClusterIPRange: KUBEADM_SERVICE_RANGE });
  try {
    if (options.pools === undefined) await applyExamplePools(cp);
    else {
      await applyNamespaces(cp, EXAMPLE_NAMESPACES);
      await cp.kubectl(["apply", "-f", "-"], { stdin: stdin(options.pools) });
    }
    const startMetalLB = () => cp.startMetalLB({ version: EXAMPLE_METALLB });
    const first = options.beforeWebhook && (await startMetalLB());
    await options.beforeWebhook?.(cp);
    const webhook = await cp.startWebhook({ args: [`--metallb-version=${EXAMPLE_METALLB}`] });
    await webhook.register();
    return { cp, webhook, metallb: first || (await startMetalLB()) };
  } catch (err) {
    await cp.stop();
    throw err;
  }
}

/**
 * The addresses the webhook let a Service in with, which MetalLB must serve it: what it asks for
 * in spec.loadBalancerIP (the user's request, or the mutation's grant) or in a MetalLB address
 * annotation; none when it asks for none.
 */
export function admittedAddresses(service: Manifest): string[] {
  const annotated =
    service.metadata.annotations?.["metallb.io/loadBalancerIPs"] ??
    service.metadata.annotations?.["metallb.universe.tf/loadBalancerIPs"];
  if (annotated !== undefined) return annotated.split(",").map((ip) => ip.trim());
  const ip = service.spec?.loadBalancerIP;
  return typeof ip === "string" && ip !== "" ? [ip] : [];
}

/** The addresses MetalLB wrote into the Service's status. */
export function servedAddresses(service: Manifest | undefined): string[] {
  const status = (service as { status?: { loadBalancer?: { ingress?: { ip?: string }[] } } })
    ?.status;
  return (status?.loadBalancer?.ingress ?? []).flatMap((entry) => entry.ip ?? []);
}

/** `namespace/name` of every LoadBalancer Service in the cluster, but those of `except` namespaces. */
export async function loadBalancerRefs(
  cp: ControlPlane,
  except: readonly string[] = [],
): Promise<string[]> {
  return [...(await services(cp))]
    .filter(
      ([, s]) => s.spec?.type === "LoadBalancer" && !except.includes(s.metadata.namespace ?? ""),
    )
    .map(([ref]) => ref)
    .sort();
}

/** What MetalLB made of a Service the webhook admitted. */
export interface MetalLBVerdict {
  /** `namespace/name` */
  ref: string;
  /** What the Service asks for (admittedAddresses); undefined when the Service is gone. */
  admitted: string[] | undefined;
  /** What MetalLB wrote into its status. */
  served: string[];
  /** MetalLB's AllocationFailed messages about this very Service (by uid). */
  failed: string[];
}

/**
 * Waits until MetalLB has decided every Service of `refs`: an address in status, or an
 * AllocationFailed Event about that very Service. Two kubectl calls a round, however many
 * Services; `timeoutMs` for all of them. `undecided` names those still without either then.
 */
export async function metallbVerdicts(
  cp: ControlPlane,
  refs: readonly string[],
  timeoutMs = 30_000,
): Promise<{ verdicts: MetalLBVerdict[]; undecided: string[] }> {
  const start = Date.now();
  for (;;) {
    const live = await services(cp);
    const failures = await allocationFailures(cp);
    const verdicts = refs.map((ref): MetalLBVerdict => {
      const service = live.get(ref);
      const uid = (service?.metadata as { uid?: string } | undefined)?.uid;
      return {
        ref,
        admitted: service && admittedAddresses(service),
        served: servedAddresses(service),
        failed: failures.filter((e) => e.uid === uid).map((e) => e.message),
      };
    });
    const undecided = verdicts
      .filter((v) => v.served.length === 0 && v.failed.length === 0)
      .map((v) => v.ref);
    if (undecided.length === 0 || Date.now() - start > timeoutMs) return { verdicts, undecided };
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/**
 * Waits for MetalLB's verdicts on `refs` (metallbVerdicts), then asserts that each Service is
 * served exactly the addresses it was admitted with (admittedAddresses, never none) and never
 * failed. Resolves with what MetalLB served.
 */
export async function assertServedAsAdmitted(
  cp: ControlPlane,
  refs: readonly string[],
  timeoutMs = 30_000,
): Promise<Map<string, string[]>> {
  const { verdicts, undecided } = await metallbVerdicts(cp, refs, timeoutMs);
  const wrong = verdicts.filter(
    (v) =>
      v.admitted === undefined ||
      v.admitted.length === 0 ||
      v.failed.length > 0 ||
      [...v.served].sort().join() !== [...v.admitted].sort().join(),
  );
  const late =
    undecided.length > 0 ? `nothing within ${timeoutMs} ms for ${undecided.join(", ")}; ` : "";
  assert.deepEqual(
    wrong,
    [],
    `MetalLB: ${late}Services not served exactly the addresses they were admitted with`,
  );
  return new Map(verdicts.map((v) => [v.ref, v.served]));
}

/** Asserts that MetalLB recorded no AllocationFailed Event, but in `except` namespaces; lists them. */
export async function assertNoAllocationFailures(
  cp: ControlPlane,
  except: readonly string[] = [],
): Promise<void> {
  const failures = (await allocationFailures(cp)).filter((e) => !except.includes(e.namespace));
  assert.deepEqual(
    failures.map((e) => `${e.namespace}/${e.service} (x${e.count}): ${e.message}`),
    [],
    "MetalLB recorded AllocationFailed",
  );
}
