// `npm run dev:cluster`: a throwaway playground. A real etcd + kube-apiserver (the e2e harness),
// the real `lb-ip-guard serve` registered as its admission webhook, and the MetalLB v0.11
// ConfigMap of examples/kubeflow-v0.11/; then it prints the KUBECONFIG line and waits. Ctrl-C
// (or SIGTERM) removes everything: servers, webhook, temp folder.

import { existsSync } from "node:fs";
import { delimiter, relative } from "node:path";
import { startControlPlane } from "../test/e2e/harness.ts";
import {
  applyExamplePools,
  DASHBOARDS,
  EXAMPLE_NAMESPACES,
  KUBEADM_SERVICE_RANGE,
} from "../test/e2e/webhook-fixtures.ts";
import { K8S_VERSION, k8sAssets } from "./k8s-assets.ts";

const say = (text: string) => process.stderr.write(`${text}\n`);

async function main(): Promise<void> {
  const started = Date.now();
  say("dev:cluster: starting etcd and kube-apiserver …");
  // The harness installs SIGINT/SIGTERM/SIGHUP handlers that kill every server and remove the
  // folder; they run first, so the handler below only has to say so and exit.
  const cp = await startControlPlane({ serviceClusterIPRange: KUBEADM_SERVICE_RANGE });
  await applyExamplePools(cp);
  say("dev:cluster: starting lb-ip-guard serve …");
  const webhook = await cp.startWebhook();
  await webhook.register();

  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(signal, () => {
      const gone = existsSync(cp.dir) ? "is being removed" : "removed";
      say(`\ndev:cluster: ${signal}: control plane and webhook stopped, ${cp.dir} ${gone}`);
      process.exit(0);
    });
  }

  const bin = await k8sAssets();
  const onPath = (process.env.PATH ?? "").split(delimiter).includes(bin);
  const dashboards = relative(process.cwd(), DASHBOARDS) || DASHBOARDS;
  const out = [
    "",
    `lb-ip-guard dev cluster is up (${((Date.now() - started) / 1000).toFixed(1)} s): kube-apiserver ${cp.apiserverUrl}, webhook ${webhook.url} (pid ${webhook.pid})`,
    "Pools: metallb-system/config of examples/kubeflow-v0.11 (192.168.35.100-192.168.35.110)",
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
    "kubectl get svc -A -o custom-columns='NAMESPACE:.metadata.namespace,NAME:.metadata.name,TYPE:.spec.type,IP:.spec.loadBalancerIP,POOL:.metadata.annotations.lb-ip-guard\\.dev/assigned-from'",
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
    "Ctrl-C here stops everything.",
    "",
  ];
  process.stdout.write(`${out.join("\n")}\n`);

  // Nothing else to do but to notice a webhook that dies under us (its log goes with the folder,
  // so show its end first).
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    try {
      process.kill(webhook.pid, 0);
    } catch {
      const tail = (await webhook.log()).trim().split("\n").slice(-20).join("\n");
      throw new Error(`lb-ip-guard serve exited unexpectedly; the end of its log:\n${tail}`);
    }
  }
}

main().catch((error: unknown) => {
  say(`dev:cluster: ${(error as Error).message}`);
  // The harness's exit handler stops whatever was started and removes the folder.
  process.exit(1);
});
