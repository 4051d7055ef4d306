// Shared by the tests of `lb-ip-guard check`, which run it as CI does: a child process, exit
// codes, stdout and stderr. Also the builders of their manifests.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type ChildOutput, outputOf } from "../../../scripts/child-output.ts";
import { claimLease, retentionAnnotations } from "../../../src/cluster/claims/lease.ts";
import { parseAddress } from "../../../src/ipam/address.ts";
import { QUOTA_ANNOTATION } from "../../../src/ipam/decide/quota.ts";
import { RESERVATION_API_VERSION } from "../../../src/ipam/reservations.ts";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const main = join(root, "src/cli/main.ts");
export const KUBEFLOW = join(root, "examples/kubeflow-v0.11");
export const KUBEFLOW_POOLS = join(KUBEFLOW, "metallb-config.yaml");
export const KUBEFLOW_DASHBOARDS = join(KUBEFLOW, "dashboards.yaml");
export const IPADDRESSPOOL = join(root, "examples/ipaddresspool");

// Each run is a fresh Node process (~0.2 s of CPU with the compile cache, twice that without):
// a shared compile cache for the type-stripped sources, and a bound on how many run at once.
const childEnv: NodeJS.ProcessEnv = {
  ...process.env,
  NODE_COMPILE_CACHE: process.env.NODE_COMPILE_CACHE ?? join(tmpdir(), "lb-ip-guard-compile-cache"),
};
delete childEnv.NODE_TEST_CONTEXT;
const maxChildren = Math.max(2, availableParallelism() + 1);
let running = 0;
const waiting: (() => void)[] = [];

export async function cli(args: readonly string[], stdin = ""): Promise<ChildOutput> {
  if (running >= maxChildren) await new Promise<void>((resolve) => waiting.push(resolve));
  running += 1;
  try {
    return await spawnCli(args, stdin);
  } finally {
    running -= 1;
    waiting.shift()?.();
  }
}

function spawnCli(args: readonly string[], stdin: string): Promise<ChildOutput> {
  const child = spawn(process.execPath, [main, ...args], { cwd: root, env: childEnv });
  const output = outputOf(child);
  child.stdin.end(stdin);
  return output;
}

export interface Result {
  namespace: string;
  name: string;
  decision: "allowed" | "assigned" | "denied";
  ips: string[];
  pool: string | null;
  reason: string | null;
  message: string;
  file: string | null;
  document: number | null;
  line: number | null;
}

export interface Report {
  summary: { services: number; allowed: number; assigned: number; denied: number };
  results: Result[];
}

export async function checkJson(
  args: readonly string[],
  stdin = "",
): Promise<ChildOutput & { report: Report }> {
  const run = await cli(["check", "--format", "json", ...args], stdin);
  assert.ok(run.code === 0 || run.code === 1, `exit ${run.code}: ${run.stderr}`);
  return { ...run, report: JSON.parse(run.stdout) as Report };
}

/** Each result as [namespace/name, decision, ips, pool, reason], in report order. */
export function rows(report: Report): unknown[][] {
  return report.results.map((result) => [
    `${result.namespace}/${result.name}`,
    result.decision,
    result.ips,
    result.pool,
    result.reason,
  ]);
}

export function find(report: Report, ref: string): Result {
  const result = report.results.find((entry) => `${entry.namespace}/${entry.name}` === ref);
  assert.ok(result !== undefined, `no result for ${ref}`);
  return result;
}

export function yaml(...documents: string[]): string {
  return documents.map((document) => `---\n${document.trim()}\n`).join("");
}

/** A legacy MetalLB ConfigMap with the given pools (YAML list items of the config). */
export function configMap(pools: string): string {
  const indented = pools
    .trim()
    .split("\n")
    .map((line) => `    ${line}`)
    .join("\n");
  return `apiVersion: v1
kind: ConfigMap
metadata:
  name: config
  namespace: metallb-system
data:
  config: |
    address-pools:
${indented}`;
}

export const LAN = configMap(`
- name: lan
  protocol: layer2
  addresses:
  - 10.0.0.10-10.0.0.19
- name: other
  protocol: layer2
  addresses:
  - 10.0.1.0/28
`);

export function service(
  ref: string,
  spec: Record<string, unknown> = {},
  annotations: Record<string, string> = {},
  labels: Record<string, string> = {},
): string {
  const [namespace, name] = ref.split("/");
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace, annotations, labels },
    spec: { type: "LoadBalancer", ports: [{ port: 80, protocol: "TCP" }], ...spec },
  });
}

/** An AddressReservation: for `serviceName` of its namespace, or any Service of it. */
export function reservation(ref: string, addresses: string[], serviceName?: string): string {
  const [namespace, name] = ref.split("/");
  return JSON.stringify({
    apiVersion: RESERVATION_API_VERSION,
    kind: "AddressReservation",
    metadata: { name, namespace },
    spec: { addresses, ...(serviceName !== undefined && { serviceName }) },
  });
}

/** A Namespace, with an address quota when given one. */
export function namespace(name: string, quota?: string, labels: Record<string, string> = {}) {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Namespace",
    metadata: {
      name,
      labels,
      ...(quota !== undefined && { annotations: { [QUOTA_ANNOTATION]: quota } }),
    },
  });
}

/**
 * The claim Lease the webhook writes for `holderRef` (claims/lease.ts itself), retaining the
 * address from `retained.since` to `retained.until` when given.
 */
export function claim(
  ip: string,
  holderRef: string,
  retained?: { since: number; until: number },
): string {
  const parsed = parseAddress(ip);
  assert.ok(parsed.ok);
  const holder = { ref: holderRef, sharingKey: "", ports: ["TCP/80"], backendKey: "Cluster" };
  const lease = claimLease("lb-ip-guard", parsed.value, holder, "lan", Date.now(), "replica-0");
  const metadata = lease.metadata as { annotations: Record<string, string> };
  if (retained !== undefined) {
    Object.assign(metadata.annotations, retentionAnnotations(retained.since, retained.until));
  }
  return JSON.stringify(lease);
}
