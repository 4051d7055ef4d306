// The shipped manifests against a real kube-apiserver: the rendered kustomize base and the
// rendered Helm chart must be accepted by a server-side dry run (schemas, RBAC rules, webhook
// configurations with their CEL matchConditions, which the apiserver compiles on admission).
// deploy/monitoring is left out: its PrometheusRule and ServiceMonitor need the Prometheus
// operator's CRDs, which a bare control plane does not have.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, it } from "node:test";
import { fileURLToPath } from "node:url";
import { helmBinary } from "../../scripts/helm-assets.ts";
import { type ControlPlane, describeE2E, startControlPlane } from "./harness.ts";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));

function render(command: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { cwd: repoRoot, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${command} ${args.join(" ")}: ${stderr.trim()}`));
      else resolve(stdout);
    });
  });
}

/** Every object of `manifests` passes a server-side dry run; returns kubectl's lines. */
async function dryRun(cp: ControlPlane, manifests: string): Promise<string[]> {
  const result = await cp.kubectl(["apply", "--dry-run=server", "-f", "-"], {
    stdin: manifests,
    allowFailure: true,
  });
  assert.equal(result.code, 0, `server-side dry run refused: ${result.stderr}`);
  return result.stdout.trim().split("\n");
}

await describeE2E("shipped manifests, server-side dry run", { helm: true }, () => {
  let cp: ControlPlane;

  before(async () => {
    cp = await startControlPlane();
    // A dry run creates nothing, so the namespaces that namespaced objects land in must exist.
    for (const namespace of ["lb-ip-guard", "metallb-system"]) {
      await cp.kubectl(["create", "namespace", namespace]);
    }
  });
  after(async () => {
    await cp?.stop();
  });

  it("accepts the kustomize base (kubectl apply -k deploy/)", async () => {
    const manifests = (await cp.kubectl(["kustomize", "deploy/"])).stdout;
    const lines = await dryRun(cp, manifests);
    for (const object of [
      "deployment.apps/lb-ip-guard",
      "mutatingwebhookconfiguration.admissionregistration.k8s.io/lb-ip-guard",
      "validatingwebhookconfiguration.admissionregistration.k8s.io/lb-ip-guard",
      "clusterrole.rbac.authorization.k8s.io/lb-ip-guard",
      "poddisruptionbudget.policy/lb-ip-guard",
    ]) {
      assert.ok(
        lines.some((line) => line.startsWith(`${object} `) && line.endsWith("(server dry run)")),
        `${object} not in: ${lines.join(" | ")}`,
      );
    }
    const stored = await cp.kubectl(["get", "deployments", "-n", "lb-ip-guard", "-o", "name"]);
    assert.equal(stored.stdout.trim(), "", "a dry run stored a Deployment");
  });

  it("accepts the Helm chart's default render", async () => {
    const manifests = await render(await helmBinary(), [
      "template",
      "lb-ip-guard",
      "deploy/helm/lb-ip-guard",
      "--namespace",
      "lb-ip-guard",
    ]);
    const lines = await dryRun(cp, manifests);
    assert.ok(
      lines.some((line) => line.startsWith("deployment.apps/lb-ip-guard ")),
      lines.join(" | "),
    );
    assert.ok(
      lines.some((line) =>
        line.startsWith("validatingwebhookconfiguration.admissionregistration.k8s.io/lb-ip-guard "),
      ),
      lines.join(" | "),
    );
  });
});
