// lb-ip-guard as users run it: the image built from the Dockerfile (scripts/image.ts), loaded
// into a real node's containerd (no registry), installed by `helm install` with every default,
// then by `kubectl apply -k deploy/` (test/e2e/node.ts starts the node; README's install section
// is these steps). The API server calls the pods through the Service lb-ip-guard and the
// certificate's names; MetalLB v0.11.0's real controller runs beside it (as a process: its
// image cannot be pulled here) and must serve exactly what was granted.
//
// Under a steady load of Service creates and deletes, three disruptions users cause: `helm
// upgrade` rolling both pods, `kubectl delete pod` of a replica, `kubectl drain` of the node
// (the PodDisruptionBudget must keep one pod). Each must cost zero failed creates, zero
// Services admitted without their address, and zero addresses held twice.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { join } from "node:path";
import { after, before, it, type TestContext } from "node:test";
import { fileURLToPath } from "node:url";
import { outputOf } from "../../scripts/child-output.ts";
import { helmBinary } from "../../scripts/helm-assets.ts";
import { buildImage, describeImage, exportImage } from "../../scripts/image.ts";
import type { ControlPlane, KubectlResult } from "./harness.ts";
import {
  describeNode,
  kernelTunables,
  leftovers,
  NODE_NAME,
  type NodeCluster,
  startNodeCluster,
} from "./node.ts";
import {
  applyNamespaces,
  assertNoAllocationFailures,
  assertServedAsAdmitted,
  DASHBOARDS,
  EXAMPLE_METALLB,
  EXAMPLE_NAMESPACES,
  EXAMPLE_RANGE,
  legacyConfigMap,
  loadBalancer,
  type Manifest,
  stdin,
} from "./webhook-fixtures.ts";

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
const CHART = join(repoRoot, "deploy/helm/lb-ip-guard");
const NAMESPACE = "lb-ip-guard";
const SELECTOR = "app.kubernetes.io/name=lb-ip-guard";
const LOAD_NAMESPACE = "load";
/** The load's own pool: addresses released under load rest before reuse, so room for that. */
const LOAD_POOL = "load";
const LOAD_RANGE = "192.168.36.0/24";
/** Numbers the load's Services across every Load, so one never meets another's leftovers. */
let loadServices = 0;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Pod {
  metadata: { name: string; uid: string; deletionTimestamp?: string };
  status?: {
    phase?: string;
    conditions?: { type: string; status: string }[];
    containerStatuses?: { restartCount: number }[];
  };
}

async function webhookPods(cp: ControlPlane): Promise<Pod[]> {
  const { stdout } = await cp.kubectl([
    "get",
    "pods",
    "-n",
    NAMESPACE,
    "-l",
    SELECTOR,
    "-o",
    "json",
  ]);
  return (JSON.parse(stdout) as { items: Pod[] }).items;
}

const isReady = (pod: Pod) =>
  pod.metadata.deletionTimestamp === undefined &&
  (pod.status?.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True");

/** Waits until `count` pods are Ready (and no other pod of the webhook is left), or fails. */
async function waitReady(cp: ControlPlane, count: number, timeoutMs = 180_000): Promise<Pod[]> {
  const deadline = Date.now() + timeoutMs;
  let pods: Pod[] = [];
  while (Date.now() < deadline) {
    pods = await webhookPods(cp);
    if (pods.length === count && pods.every(isReady)) return pods;
    await sleep(250);
  }
  const state = pods.map((p) => `${p.metadata.name}: ${p.status?.phase}, ready ${isReady(p)}`);
  throw new Error(`not ${count} Ready webhook pods within ${timeoutMs} ms: ${state.join("; ")}`);
}

/** Creates and deletes Services at a steady pace; counts what went wrong. */
class Load {
  attempted = 0;
  readonly failed: string[] = [];
  readonly unassigned: string[] = [];
  /** The most Services that held one address at once, sampled every 250 ms. */
  maxHolders = 0;
  private running = false;
  private loops: Promise<void>[] = [];

  private readonly cp: ControlPlane;
  /** Services each worker keeps before deleting its oldest. */
  private readonly keep: number;
  private readonly workers: number;

  constructor(cp: ControlPlane, workers = 2, keep = 3) {
    this.cp = cp;
    this.workers = workers;
    this.keep = keep;
  }

  start(): void {
    this.running = true;
    this.loops = [
      ...Array.from({ length: this.workers }, () => this.worker()),
      this.sampleDuplicates(),
    ];
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  figures(): string {
    return `${this.attempted} creates, ${this.failed.length} failed, ${this.unassigned.length} without an address, at most ${this.maxHolders} Service(s) per address`;
  }

  private async worker(): Promise<void> {
    const mine: string[] = [];
    while (this.running) {
      const name = `load-${loadServices++}`;
      const service = loadBalancer(LOAD_NAMESPACE, name, undefined);
      service.metadata.annotations = { "metallb.universe.tf/address-pool": LOAD_POOL };
      this.attempted++;
      const created = await this.cp.kubectl(["create", "-o", "json", "-f", "-"], {
        stdin: stdin(service),
        allowFailure: true,
      });
      if (created.code !== 0) {
        this.failed.push(`${name}: ${created.stderr.trim()}`);
      } else {
        mine.push(name);
        const ip = (JSON.parse(created.stdout) as Manifest).spec?.loadBalancerIP;
        if (typeof ip !== "string" || ip === "") this.unassigned.push(name);
      }
      if (mine.length > this.keep) {
        const oldest = mine.shift() as string;
        await this.cp.kubectl(["delete", "svc", "-n", LOAD_NAMESPACE, oldest]);
      }
    }
  }

  private async sampleDuplicates(): Promise<void> {
    while (this.running) {
      const holders = new Map<string, number>();
      for (const svc of (await allServices(this.cp)).values()) {
        const ip = svc.spec?.loadBalancerIP;
        if (typeof ip === "string" && ip !== "") holders.set(ip, (holders.get(ip) ?? 0) + 1);
      }
      this.maxHolders = Math.max(this.maxHolders, ...holders.values());
      await sleep(250);
    }
  }
}

async function allServices(cp: ControlPlane): Promise<Map<string, Manifest>> {
  const list = JSON.parse((await cp.kubectl(["get", "svc", "-A", "-o", "json"])).stdout) as {
    items: Manifest[];
  };
  return new Map(list.items.map((s) => [`${s.metadata.namespace}/${s.metadata.name}`, s]));
}

/** Runs `disrupt` while the load runs (a few seconds before and after), and checks its figures. */
async function underLoad(
  t: TestContext,
  cp: ControlPlane,
  what: string,
  disrupt: () => Promise<void>,
): Promise<void> {
  const load = new Load(cp);
  load.start();
  const started = Date.now();
  try {
    await sleep(3000);
    await disrupt();
    await sleep(3000);
  } finally {
    await load.stop();
  }
  t.diagnostic(`${what}: ${load.figures()} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  assert.ok(load.attempted > 10, `${what}: only ${load.attempted} creates`);
  assert.deepEqual(load.failed, [], `${what}: failed creates`);
  assert.deepEqual(load.unassigned, [], `${what}: admitted without an address`);
  assert.ok(load.maxHolders <= 1, `${what}: an address held by ${load.maxHolders} Services`);
}

async function helm(cp: ControlPlane, args: string[]): Promise<void> {
  const { KUBECONFIG: _ignored, ...env } = process.env;
  const run = await outputOf(
    spawn(await helmBinary(), [`--kubeconfig=${cp.kubeconfigPath}`, ...args], {
      // Helm's caches in the control plane's folder, never in ~/.
      env: {
        ...env,
        HELM_CACHE_HOME: join(cp.dir, "helm-cache"),
        HELM_CONFIG_HOME: join(cp.dir, "helm-config"),
      },
      stdio: ["ignore", "pipe", "pipe"],
    }),
  );
  if (run.code !== 0) {
    throw new Error(`helm ${args.join(" ")}: exit ${run.code}: ${run.stderr.trim()}`);
  }
}

const refusal = (result: KubectlResult) => `${result.stderr}${result.stdout}`;

await describeNode("lb-ip-guard on a real node: helm install, kubectl apply -k", () => {
  let cluster: NodeCluster;
  let cp: ControlPlane;

  let tunables: Map<string, string>;

  before(async () => {
    tunables = await kernelTunables();
    const image = await buildImage(() => {});
    process.stderr.write(`${describeImage(image)}\n`);
    cluster = await startNodeCluster();
    cp = cluster.cp;
    const archive = join(cluster.node.dir, "image.oci.tar");
    await exportImage(archive, () => {});
    await cluster.node.importImage(archive);
    await applyNamespaces(cp, [...EXAMPLE_NAMESPACES, LOAD_NAMESPACE]);
    await cp.kubectl(["apply", "-f", "-"], {
      stdin: stdin(
        legacyConfigMap(EXAMPLE_RANGE, [
          { name: LOAD_POOL, addresses: [LOAD_RANGE], autoAssign: false },
        ]),
      ),
    });
    // MetalLB's controller Deployment as a cluster has it, which tells lb-ip-guard the release
    // (--metallb-version auto, the chart's default). Zero replicas: its image cannot be pulled
    // here, so the real controller runs beside the node (startMetalLB, after the webhook).
    await cp.kubectl(["apply", "-f", "-"], {
      stdin: JSON.stringify({
        apiVersion: "apps/v1",
        kind: "Deployment",
        metadata: { name: "controller", namespace: "metallb-system" },
        spec: {
          replicas: 0,
          selector: { matchLabels: { app: "metallb", component: "controller" } },
          template: {
            metadata: { labels: { app: "metallb", component: "controller" } },
            spec: {
              containers: [
                { name: "controller", image: `quay.io/metallb/controller:${EXAMPLE_METALLB}` },
              ],
            },
          },
        },
      }),
    });
  });
  after(async () => {
    await cluster?.stop();
    assert.deepEqual(await leftovers(tunables), [], "what the node left on the machine");
  });

  it("helm install with every default: two pods Ready as uid 65532 on a read-only root", async (t) => {
    const started = Date.now();
    await helm(cp, [
      "install",
      "lb-ip-guard",
      CHART,
      "--namespace",
      NAMESPACE,
      "--create-namespace",
    ]);
    const pods = await waitReady(cp, 2);
    t.diagnostic(`helm install to two pods Ready: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    assert.deepEqual(
      pods.map((p) => p.status?.containerStatuses?.[0]?.restartCount),
      [0, 0],
      "restarts",
    );
    // In the container: its uid, and what writing to / and to /tmp (the chart's emptyDir) does.
    const probe =
      "const fs=require('fs');let root;try{fs.writeFileSync('/probe','x');root='written'}catch(e){root=e.code}" +
      "fs.writeFileSync('/tmp/probe','x');process.stdout.write(JSON.stringify({uid:process.getuid(),gid:process.getgid(),root}))";
    const pod = pods[0]?.metadata.name ?? "";
    const { stdout } = await cp.kubectl([
      "exec",
      "-n",
      NAMESPACE,
      pod,
      "--",
      "/nodejs/bin/node",
      "-e",
      probe,
    ]);
    assert.deepEqual(JSON.parse(stdout), { uid: 65532, gid: 65532, root: "EROFS" });
  });

  it("bootstraps its certificate into the Secret and both caBundles, for the Service's names", async () => {
    const secret = JSON.parse(
      (await cp.kubectl(["get", "secret", "-n", NAMESPACE, "lb-ip-guard-tls", "-o", "json"]))
        .stdout,
    ) as { type: string; data: Record<string, string> };
    assert.equal(secret.type, "kubernetes.io/tls");
    const bundle = secret.data["ca-bundle.crt"] ?? "";
    const leaf = new X509Certificate(Buffer.from(secret.data["tls.crt"] ?? "", "base64"));
    assert.match(leaf.subjectAltName ?? "", /DNS:lb-ip-guard\.lb-ip-guard\.svc\b/);
    for (const kind of ["mutatingwebhookconfiguration", "validatingwebhookconfiguration"]) {
      const config = JSON.parse(
        (await cp.kubectl(["get", kind, "lb-ip-guard", "-o", "json"])).stdout,
      ) as {
        webhooks: {
          name: string;
          clientConfig: { caBundle?: string; service?: { name: string } };
        }[];
      };
      for (const hook of config.webhooks) {
        assert.equal(
          hook.clientConfig.service?.name,
          "lb-ip-guard",
          `${hook.name}: through the Service`,
        );
        assert.equal(hook.clientConfig.caBundle, bundle, `${hook.name}: caBundle`);
      }
    }
  });

  it("the Kubeflow example through the Service: allowed, assigned, the duplicate refused; MetalLB serves exactly that", async () => {
    const applied = await cp.kubectl(["apply", "-f", DASHBOARDS], { allowFailure: true });
    assert.notEqual(applied.code, 0, "team-a/minio-copy must be refused");
    assert.match(refusal(applied), /AddressInUse: team-a\/minio-copy requests 192\.168\.35\.101/);
    const live = await allServices(cp);
    assert.equal(live.has("team-a/minio-copy"), false);
    const ui = live.get("kubeflow/ml-pipeline-ui");
    assert.match(String(ui?.spec?.loadBalancerIP), /^192\.168\.35\.1(0[4-9]|10)$/, "auto-assigned");
    await cp.startMetalLB({ version: EXAMPLE_METALLB });
    await assertServedAsAdmitted(cp, [
      "istio-system/istio-ingressgateway",
      "kubeflow/minio-service",
      "kubeflow/ml-pipeline-ui",
      "mlflow-system/mlflow-server-service",
      "seldon-system/seldon-core-analytics-grafana",
    ]);
  });

  it("helm upgrade rolls both pods under load: no failed create, no duplicate", async (t) => {
    const before = new Set((await webhookPods(cp)).map((p) => p.metadata.name));
    await underLoad(t, cp, "helm upgrade", async () => {
      await helm(cp, [
        "upgrade",
        "lb-ip-guard",
        CHART,
        "--namespace",
        NAMESPACE,
        "--reuse-values",
        "--set-string",
        `podAnnotations.rolled=${Date.now()}`,
      ]);
      await sleep(1000);
      const pods = await waitReady(cp, 2);
      assert.ok(
        pods.every((p) => !before.has(p.metadata.name)),
        "both pods replaced",
      );
    });
  });

  it("kubectl delete pod of a replica under load: no failed create, no duplicate", async (t) => {
    await underLoad(t, cp, "kubectl delete pod", async () => {
      const [victim] = await webhookPods(cp);
      await cp.kubectl(["delete", "pod", "-n", NAMESPACE, victim?.metadata.name ?? ""]);
      await waitReady(cp, 2);
    });
  });

  it("each pod's memory after the load, from kubelet's stats", async (t) => {
    const memory = await cluster.node.podMemory(NAMESPACE);
    assert.equal(memory.size, 2);
    for (const [pod, bytes] of memory) {
      t.diagnostic(`${pod}: ${(bytes / 1024 / 1024).toFixed(1)} MiB working set`);
      // The chart's limit is 256Mi, its request 64Mi.
      assert.ok(bytes > 0 && bytes < 256 * 1024 * 1024, `${pod}: ${bytes} bytes`);
    }
  });

  it("kubectl drain under load: the PodDisruptionBudget keeps one pod, no failed create", async (t) => {
    let drained: KubectlResult | undefined;
    await underLoad(t, cp, "kubectl drain", async () => {
      // One node: the evicted pod's replacement has nowhere to go, so the budget (minAvailable 1)
      // must refuse the second eviction until the node is uncordoned.
      drained = await cp.kubectl(
        [
          "drain",
          NODE_NAME,
          "--ignore-daemonsets",
          "--delete-emptydir-data",
          `--pod-selector=${SELECTOR}`,
          "--timeout=20s",
        ],
        { allowFailure: true, timeoutMs: 60_000 },
      );
      const ready = (await webhookPods(cp)).filter(isReady);
      assert.equal(ready.length, 1, "one pod left serving during the drain");
      await cp.kubectl(["uncordon", NODE_NAME]);
      await waitReady(cp, 2);
    });
    assert.notEqual(drained?.code, 0, "the drain cannot finish on one node");
    assert.match(refusal(drained as KubectlResult), /disruption budget/);
    await assertNoAllocationFailures(cp);
  });

  it("kubectl apply -k deploy/ after helm uninstall: two pods Ready, allocating and refusing through the Service", async (t) => {
    await helm(cp, ["uninstall", "lb-ip-guard", "--namespace", NAMESPACE, "--wait"]);
    await waitReady(cp, 0);
    const started = Date.now();
    await cp.kubectl(["apply", "-k", join(repoRoot, "deploy")]);
    await waitReady(cp, 2);
    t.diagnostic(
      `kubectl apply -k to two pods Ready: ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    // The apiserver may still hold the uninstalled configurations' state for a moment: retry the
    // first create until the new configurations answer (an assigned address says they did).
    const service = loadBalancer("team-a", "after-kustomize", undefined);
    const deadline = Date.now() + 30_000;
    let created: KubectlResult;
    for (;;) {
      created = await cp.kubectl(["create", "-o", "json", "-f", "-"], {
        stdin: stdin(service),
        allowFailure: true,
      });
      if (created.code === 0 || Date.now() > deadline) break;
      await sleep(500);
    }
    assert.equal(created.code, 0, created.stderr);
    const ip = (JSON.parse(created.stdout) as Manifest).spec?.loadBalancerIP;
    assert.match(String(ip), /^192\.168\.35\.1(0[4-9]|10)$/);
    const duplicate = await cp.kubectl(["create", "-f", "-"], {
      stdin: stdin(loadBalancer("team-a", "duplicate", String(ip))),
      allowFailure: true,
    });
    assert.match(refusal(duplicate), /AddressInUse/);
  });
});
