// What the deploy tests share: where the manifests are, the real kubectl and helm (built on first
// use, from the Go module proxy, like the e2e binaries), and readers of rendered objects.
//
// Where a tool cannot be built at all (no Go), the tests that need it are skipped with the
// reason, except under CI=true, where that fails them.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import type { TestContext } from "node:test";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import { helmBinary } from "../../scripts/helm-assets.ts";
import { AssetsUnavailableError, k8sAssets } from "../../scripts/k8s-assets.ts";

export const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
export const deployDir = join(repoRoot, "deploy");
export const chartDir = join(deployDir, "helm", "lb-ip-guard");
/** The alerts and the dashboard: in the chart, which reads them, and included by deploy/monitoring. */
export const monitoringFiles = join(chartDir, "files", "monitoring");
const ci = process.env.CI === "true";

// biome-ignore lint/suspicious/noExplicitAny: rendered Kubernetes objects are walked untyped
export type Obj = Record<string, any>;
export type Tool = { path: string; skip?: undefined } | { path?: undefined; skip: string };

export function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd: repoRoot, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) {
        const why = stderr.trim().split("\n").slice(-3).join(" | ") || err.message;
        reject(Object.assign(new Error(`${cmd} ${args.join(" ")}: ${why}`), { stderr }));
      } else resolve(stdout);
    });
  });
}

/**
 * A tool from its provider, built on first use. Where it cannot be had at all (no Go), the tests
 * that need it are skipped with the reason, except under CI=true, where that fails them.
 */
async function provide(name: string, provider: () => Promise<string>): Promise<Tool> {
  try {
    return { path: await provider() };
  } catch (error) {
    if (error instanceof AssetsUnavailableError && !ci) {
      return { skip: `${name} cannot be built here: ${error.message}` };
    }
    throw error;
  }
}

export const findKubectl = () => provide("kubectl", async () => join(await k8sAssets(), "kubectl"));
export const findHelm = () => provide("helm", helmBinary);

export function parseDocs(text: string, source: string): Obj[] {
  const docs = parseAllDocuments(text);
  const out: Obj[] = [];
  for (const doc of docs) {
    if (doc.errors.length > 0) assert.fail(`${source}: ${doc.errors[0]?.message}`);
    const value = doc.toJS() as Obj | null;
    if (value) out.push(value);
  }
  return out;
}

export const key = (o: Obj) => `${o.kind}/${o.metadata?.namespace ?? ""}/${o.metadata?.name}`;

export function find(objs: Obj[], kind: string, name: string, namespace?: string): Obj {
  const hit = objs.find(
    (o) =>
      o.kind === kind &&
      o.metadata?.name === name &&
      (namespace === undefined || o.metadata?.namespace === namespace),
  );
  assert.ok(hit, `no ${kind} ${namespace ? `${namespace}/` : ""}${name}`);
  return hit;
}

/** Skips the test (never passes it) when a tool is missing outside CI. */
export function need(t: TestContext, ...tools: Tool[]): boolean {
  const missing = tools.find((x) => x.skip);
  if (missing?.skip) t.skip(missing.skip);
  return !missing;
}

/** The API servers' address in the overlay below, as a user patches it into the component. */
export const OVERLAY_API_SERVER_CIDR = "10.0.0.10/32";

/**
 * Writes into `dir` the overlay a user of both kustomize components writes: the base, the
 * network-policy component with the API servers' CIDR patched in, and the client-auth component
 * with the ConfigMap of its CA bundle. `kubectl kustomize dir` builds it.
 */
export async function writeComponentsOverlay(dir: string): Promise<void> {
  const deploy = relative(dir, deployDir);
  await writeFile(
    join(dir, "kustomization.yaml"),
    `resources: [${deploy}]
components: [${deploy}/components/network-policy, ${deploy}/components/client-auth]
configMapGenerator:
  - name: lb-ip-guard-client-ca
    namespace: lb-ip-guard
    literals: [ca.crt=PEM]
patches:
  - target: {kind: NetworkPolicy, name: lb-ip-guard}
    patch: |-
      - op: replace
        path: /spec/ingress/0/from
        value: [{ipBlock: {cidr: ${OVERLAY_API_SERVER_CIDR}}}]
`,
  );
}

/**
 * Every option of the chart on, the elected allocator with its peer port off its default, as
 * `--set` values
 * (values.yaml documents each).
 */
export const EVERY_CHART_OPTION: readonly string[] = [
  "monitoring.serviceMonitor.enabled=true",
  "monitoring.prometheusRule.enabled=true",
  "monitoring.grafanaDashboard.enabled=true",
  "certManager.enabled=true",
  "networkPolicy.enabled=true",
  `networkPolicy.apiServerCIDRs={${OVERLAY_API_SERVER_CIDR}}`,
  "clientAuth.caSecret=apiserver-client-ca",
  "allocator=elected",
  "peerPort=9444",
];
