// `npm run dev:cluster`: a throwaway playground. A real etcd + kube-apiserver (the e2e harness),
// the real `lb-ip-guard serve` registered as its admission webhook, the MetalLB v0.11 ConfigMap
// of examples/kubeflow-v0.11/ and MetalLB v0.11.0's real controller reading it, so Services get
// the EXTERNAL-IP MetalLB assigns; then it prints the KUBECONFIG line and waits. Ctrl-C (or
// SIGTERM) removes everything: servers, webhook, MetalLB, temp folder.
//
// `npm run dev:cluster -- --node` starts a real node instead of the local `serve` (kubelet,
// containerd, kube-proxy, kube-controller-manager, kube-scheduler: test/e2e/node.ts, as root),
// with the image built from the Dockerfile loaded into it, so the README's `helm install` (or
// `kubectl apply -k deploy/`) runs as on a cluster. MetalLB's controller starts after that.

import { existsSync } from "node:fs";
import { delimiter, join, relative } from "node:path";
import { type ControlPlane, startControlPlane } from "../test/e2e/harness.ts";
import { startNodeCluster } from "../test/e2e/node.ts";
import {
  applyExamplePools,
  DASHBOARDS,
  EXAMPLE_NAMESPACES,
  KUBEADM_SERVICE_RANGE,
} from "../test/e2e/webhook-fixtures.ts";
import { helmBinary } from "./helm-assets.ts";
import { buildImage, exportImage, IMAGE } from "./image.ts";
import { K8S_VERSION, k8sAssets } from "./k8s-assets.ts";
import { metallbAssets } from "./metallb-assets.ts";

const say = (text: string) => process.stderr.write(`${text}\n`);
/** The version whose configuration is the example's: the legacy ConfigMap. */
const METALLB_VERSION = "v0.11.0";

/** The node playground: everything the test suite installs with, nothing installed yet. */
async function mainWithNode(): Promise<void> {
  const started = Date.now();
  await metallbAssets(METALLB_VERSION);
  const helm = await helmBinary();
  say("dev:cluster: building the image from the Dockerfile …");
  await buildImage(say);
  say("dev:cluster: starting the control plane and a node …");
  const cluster = await startNodeCluster();
  const cp: ControlPlane = cluster.cp;
  const archive = join(cluster.node.dir, "image.oci.tar");
  await exportImage(archive, say);
  await cluster.node.importImage(archive);
  await applyExamplePools(cp);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(signal, () => {
      void cluster.stop().finally(() => {
        say(`\ndev:cluster: ${signal}: node and control plane stopped, folders removed`);
        process.exit(0);
      });
    });
  }
  const bin = await k8sAssets();
  const out = [
    "",
    `lb-ip-guard dev cluster with a node is up (${((Date.now() - started) / 1000).toFixed(1)} s): kube-apiserver ${cp.apiserverUrl}, ${IMAGE} in the node's containerd`,
    "Pools: metallb-system/config of examples/kubeflow-v0.11. Nothing is installed yet. In another terminal:",
    "",
    `export KUBECONFIG=${cp.kubeconfigPath} PATH="${bin}:$PATH"`,
    `${helm} install lb-ip-guard deploy/helm/lb-ip-guard --namespace lb-ip-guard --create-namespace --wait`,
    "#   or: kubectl apply -k deploy/ && kubectl -n lb-ip-guard rollout status deployment/lb-ip-guard",
    `kubectl apply -f ${relative(process.cwd(), DASHBOARDS) || DASHBOARDS}`,
    "",
    `MetalLB's controller ${METALLB_VERSION} starts here once you press Enter (after the install, so it sees only admitted Services).`,
    "Ctrl-C here stops everything.",
    "",
  ];
  process.stdout.write(`${out.join("\n")}\n`);
  await new Promise<void>((resolve) => process.stdin.once("data", () => resolve()));
  const metallb = await cp.startMetalLB({ version: METALLB_VERSION });
  say(`dev:cluster: MetalLB's controller ${METALLB_VERSION} runs (log: ${metallb.logFile})`);
  await new Promise(() => {}); // until a signal
}

async function main(): Promise<void> {
  const started = Date.now();
  // Built on first use, like the k8s binaries (minutes): before the servers, not under them.
  await metallbAssets(METALLB_VERSION);
  say("dev:cluster: starting etcd and kube-apiserver …");
  // The harness installs SIGINT/SIGTERM/SIGHUP handlers that kill every server and remove the
  // folder; they run first, so the handler below only has to say so and exit.
  const cp = await startControlPlane({ serviceClusterIPRange: KUBEADM_SERVICE_RANGE });
  await applyExamplePools(cp);
  say(`dev:cluster: starting MetalLB's controller ${METALLB_VERSION} …`);
  const metallb = await cp.startMetalLB({ version: METALLB_VERSION });
  say("dev:cluster: starting lb-ip-guard serve …");
  // The release it guards, said outright: there is no MetalLB Deployment here to read it from.
  const webhook = await cp.startWebhook({ args: [`--metallb-version=${METALLB_VERSION}`] });
  await webhook.register();

  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(signal, () => {
      const gone = existsSync(cp.dir) ? "is being removed" : "removed";
      say(
        `\ndev:cluster: ${signal}: control plane, webhook and MetalLB stopped, ${cp.dir} ${gone}`,
      );
      process.exit(0);
    });
  }

  const bin = await k8sAssets();
  const onPath = (process.env.PATH ?? "").split(delimiter).includes(bin);
  const dashboards = relative(process.cwd(), DASHBOARDS) || DASHBOARDS;
  const out = [
    "",
    `lb-ip-guard dev cluster is up (${((Date.now() - started) / 1000).toFixed(1)} s): kube-apiserver ${cp.apiserverUrl}, webhook ${webhook.url} (pid ${webhook.pid}), MetalLB controller ${METALLB_VERSION} (pid ${metallb.pid})`,
    "Pools: metallb-system/config of examples/kubeflow-v0.11 (192.168.35.100-192.168.35.110)",
    "MetalLB writes the address it assigns to each LoadBalancer Service's status: EXTERNAL-IP in `kubectl get svc`.",
    `Namespaces: ${EXAMPLE_NAMESPACES.join(", ")}`,
    "",
    "In another terminal:",
    "",
    `export KUBECONFIG=${cp.kubeconfigPath}`,
    ...(onPath ? [] : [`export PATH="${bin}:$PATH"   # the kubectl ${K8S_VERSION} of the tests`]),
    "",
    "# The Kubeflow example: five Services admitted (kubeflow/ml-pipeline-ui auto-assigned),",
    "# team-a/minio-copy refused with AddressInUse naming kubeflow/minio-service:",
    `kubectl apply -f ${dashboards}`,
    "# What each asked for (IP), where lb-ip-guard took it from (POOL), what MetalLB assigned (EXTERNAL-IP):",
    "kubectl get svc -A -o custom-columns='NAMESPACE:.metadata.namespace,NAME:.metadata.name,TYPE:.spec.type,IP:.spec.loadBalancerIP,POOL:.metadata.annotations.lb-ip-guard\\.dev/assigned-from,EXTERNAL-IP:.status.loadBalancer.ingress[*].ip'",
    "# MetalLB's own verdicts (IPAllocated, AllocationFailed):",
    "kubectl get events -A --field-selector involvedObject.kind=Service",
    "",
    "# An address in no pool (NotInAnyPool):",
    "kubectl apply -f - <<'EOF'",
    "apiVersion: v1",
    "kind: Service",
    "metadata: {name: web, namespace: team-a}",
    "spec: {type: LoadBalancer, loadBalancerIP: 192.168.35.120, ports: [{port: 80}]}",
    "EOF",
    "",
    "# The auto-assign mutation, without creating anything:",
    "kubectl apply --dry-run=server -o yaml -f - <<'EOF'",
    "apiVersion: v1",
    "kind: Service",
    'metadata: {name: ui, namespace: team-a, annotations: {lb-ip-guard.dev/auto-assign: "true"}}',
    "spec: {ports: [{port: 80}]}",
    "EOF",
    "",
    "# More addresses, live (no restart):",
    "kubectl -n metallb-system edit configmap config",
    "",
    `Webhook log: tail -f ${webhook.logFile}`,
    `MetalLB log: tail -f ${metallb.logFile}`,
    "Ctrl-C here stops everything.",
    "",
  ];
  process.stdout.write(`${out.join("\n")}\n`);

  // Nothing else to do but to notice a webhook or MetalLB that dies under us (its log goes with
  // the folder, so show its end first).
  const watched = [
    { what: "lb-ip-guard serve", process: webhook },
    { what: `MetalLB's controller ${METALLB_VERSION}`, process: metallb },
  ];
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    for (const { what, process: child } of watched) {
      try {
        process.kill(child.pid, 0);
      } catch {
        const tail = (await child.log()).trim().split("\n").slice(-20).join("\n");
        throw new Error(`${what} exited unexpectedly; the end of its log:\n${tail}`);
      }
    }
  }
}

(process.argv.includes("--node") ? mainWithNode() : main()).catch((error: unknown) => {
  say(`dev:cluster: ${(error as Error).message}`);
  // The harness's exit handler stops whatever was started and removes the folder.
  process.exit(1);
});
