// The shipped manifests against a real kube-apiserver: the kustomize base, its monitoring set and
// components, and the Helm chart with its defaults and with every option on must be accepted by
// a server-side dry run (schemas, RBAC rules, webhook configurations with their CEL
// matchConditions, which the apiserver compiles on admission). The ServiceMonitor,
// PrometheusRule, Certificate and Issuer are checked against their projects' real CRDs
// (scripts/crd-assets.ts), installed first.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { fileURLToPath } from "node:url";
import { thirdPartyCrds } from "../../scripts/crd-assets.ts";
import { helmBinary } from "../../scripts/helm-assets.ts";
import { EVERY_CHART_OPTION, writeComponentsOverlay } from "../deploy/tools.ts";
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

function assertApplied(lines: readonly string[], objects: readonly string[]): void {
  for (const object of objects) {
    assert.ok(
      lines.some((line) => line.startsWith(`${object} `) && line.endsWith("(server dry run)")),
      `${object} not in: ${lines.join(" | ")}`,
    );
  }
}

await describeE2E(
  "shipped manifests, server-side dry run",
  { helm: true, thirdPartyCrds: true },
  () => {
    let cp: ControlPlane;
    let scratch: string | undefined;

    before(async () => {
      cp = await startControlPlane();
      await cp.installCrds([await thirdPartyCrds()]);
      // A dry run creates nothing, so the namespaces that namespaced objects land in must exist.
      for (const namespace of ["lb-ip-guard", "metallb-system"]) {
        await cp.kubectl(["create", "namespace", namespace]);
      }
    });
    after(async () => {
      await cp?.stop();
      if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
    });

    it("accepts the kustomize base (kubectl apply -k deploy/)", async () => {
      const manifests = (await cp.kubectl(["kustomize", "deploy/"])).stdout;
      const lines = await dryRun(cp, manifests);
      assertApplied(lines, [
        "customresourcedefinition.apiextensions.k8s.io/addressreservations.lb-ip-guard.dev",
        "deployment.apps/lb-ip-guard",
        "mutatingwebhookconfiguration.admissionregistration.k8s.io/lb-ip-guard",
        "validatingwebhookconfiguration.admissionregistration.k8s.io/lb-ip-guard",
        "clusterrole.rbac.authorization.k8s.io/lb-ip-guard",
        "poddisruptionbudget.policy/lb-ip-guard",
      ]);
      const stored = await cp.kubectl(["get", "deployments", "-n", "lb-ip-guard", "-o", "name"]);
      assert.equal(stored.stdout.trim(), "", "a dry run stored a Deployment");
    });

    it("accepts deploy/monitoring against the Prometheus Operator's CRDs", async () => {
      const manifests = (await cp.kubectl(["kustomize", "deploy/monitoring"])).stdout;
      assertApplied(await dryRun(cp, manifests), [
        "servicemonitor.monitoring.coreos.com/lb-ip-guard",
        "prometheusrule.monitoring.coreos.com/lb-ip-guard",
        "configmap/lb-ip-guard-dashboard",
      ]);
    });

    it("accepts the base with the network-policy (patched) and client-auth components", async () => {
      scratch ??= await mkdtemp(join(tmpdir(), "lb-ip-guard-overlay-"));
      await writeComponentsOverlay(scratch);
      const manifests = (await cp.kubectl(["kustomize", scratch])).stdout;
      assertApplied(await dryRun(cp, manifests), [
        "networkpolicy.networking.k8s.io/lb-ip-guard",
        "deployment.apps/lb-ip-guard",
      ]);
      // Unpatched, the API server refuses the policy: its placeholder is no CIDR.
      const shipped = (await cp.kubectl(["kustomize", "deploy/components/network-policy"])).stdout;
      const refused = await cp.kubectl(["apply", "--dry-run=server", "-f", "-"], {
        stdin: shipped,
        allowFailure: true,
      });
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /API-SERVER-CIDR/);
    });

    it("accepts the Helm chart's default render, and the render with every option on", async () => {
      const helm = await helmBinary();
      const chart = ["template", "lb-ip-guard", "deploy/helm/lb-ip-guard", "-n", "lb-ip-guard"];
      assertApplied(await dryRun(cp, await render(helm, [...chart, "--include-crds"])), [
        "customresourcedefinition.apiextensions.k8s.io/addressreservations.lb-ip-guard.dev",
        "deployment.apps/lb-ip-guard",
        "validatingwebhookconfiguration.admissionregistration.k8s.io/lb-ip-guard",
      ]);
      const everything = await render(helm, [
        ...chart,
        ...EVERY_CHART_OPTION.flatMap((set) => ["--set", set]),
      ]);
      assertApplied(await dryRun(cp, everything), [
        "deployment.apps/lb-ip-guard",
        "servicemonitor.monitoring.coreos.com/lb-ip-guard",
        "prometheusrule.monitoring.coreos.com/lb-ip-guard",
        "configmap/lb-ip-guard-dashboard",
        "issuer.cert-manager.io/lb-ip-guard-selfsigned",
        "certificate.cert-manager.io/lb-ip-guard-serving",
        "networkpolicy.networking.k8s.io/lb-ip-guard",
        "mutatingwebhookconfiguration.admissionregistration.k8s.io/lb-ip-guard",
      ]);
    });
  },
);
