// `lb-ip-guard pools` on a live cluster (a real kube-apiserver, driven by the real kubectl): the
// pools of an IPAddressPool and the legacy ConfigMap, Services held by status and by request,
// shared and conflicting, address claims pending and orphaned; the same through the kubectl
// plugin (`kubectl plugin list` finds it, `kubectl lb-ip-guard pools` prints the map), and the
// page of the live cluster in headless Chromium.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmod, mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { fileURLToPath } from "node:url";
import { type ChildOutput, outputOf } from "../../scripts/child-output.ts";
import { k8sAssets } from "../../scripts/k8s-assets.ts";
import type { PoolsReport } from "../../src/cli/pools/report.ts";
import { claimLease, retentionAnnotations } from "../../src/cluster/claims/lease.ts";
import { parseAddress } from "../../src/ipam/address.ts";
import { browserSkipReason, cell, launchBrowser, open, stateCounts } from "../browser/browser.ts";
import { type ControlPlane, describeE2E, startControlPlane } from "./harness.ts";
import { legacyConfigMap } from "./webhook-fixtures.ts";

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
const MAIN = join(repoRoot, "src/cli/main.ts");
const PLUGIN = join(repoRoot, "src/cli/kubectl-plugin.ts");

function run(
  command: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
): Promise<ChildOutput> {
  const child = spawn(command, args, {
    env: { ...process.env, NODE_TEST_CONTEXT: "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  return outputOf(child);
}

function lb(name: string, namespace: string, ip: string, extra: Record<string, unknown> = {}) {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace, ...(extra.metadata as object) },
    spec: {
      type: "LoadBalancer",
      loadBalancerIP: ip,
      selector: { app: name },
      ports: extra.ports ?? [{ port: 80, protocol: "TCP" }],
    },
  };
}

await describeE2E("lb-ip-guard pools on a live cluster, and as a kubectl plugin", () => {
  let cp: ControlPlane;
  let dir: string;
  /** `lb-ip-guard pools --cluster` on this API server. */
  const poolsOfCluster = (...args: string[]) =>
    run(process.execPath, [MAIN, "pools", "--cluster", "--kubeconfig", cp.kubeconfigPath, ...args]);
  const apply = (object: unknown) =>
    cp.kubectl(["apply", "-f", "-"], { stdin: JSON.stringify(object) });

  before(async () => {
    cp = await startControlPlane();
    dir = await mkdtemp(join(tmpdir(), "lb-ip-guard-pools-e2e-"));
    process.stderr.write(`pools e2e output: ${dir}\n`);
    for (const namespace of ["metallb-system", "team-a", "team-b", "lb-ip-guard"]) {
      await cp.kubectl(["create", "namespace", namespace]);
    }
    await apply(legacyConfigMap(["10.9.0.0/29"]));
    await apply({
      apiVersion: "metallb.io/v1beta1",
      kind: "IPAddressPool",
      metadata: { name: "lan", namespace: "metallb-system" },
      spec: { addresses: ["192.168.50.0/24"], avoidBuggyIPs: true },
    });
    // Served 192.168.50.10 by MetalLB (its status), and asked for again by team-b/copy.
    await apply(lb("web", "team-a", "192.168.50.10"));
    await cp.kubectl([
      "patch",
      "service",
      "web",
      "-n",
      "team-a",
      "--subresource=status",
      "--type=merge",
      "-p",
      JSON.stringify({ status: { loadBalancer: { ingress: [{ ip: "192.168.50.10" }] } } }),
    ]);
    await apply(lb("copy", "team-b", "192.168.50.10"));
    // One address, one sharing key, distinct ports: shared.
    const shared = { metadata: { annotations: { "metallb.universe.tf/allow-shared-ip": "dns" } } };
    await apply(
      lb("dns-tcp", "team-a", "192.168.50.53", {
        ...shared,
        ports: [{ port: 53, protocol: "TCP" }],
      }),
    );
    await apply(
      lb("dns-udp", "team-a", "192.168.50.53", {
        ...shared,
        ports: [{ port: 53, protocol: "UDP" }],
      }),
    );
    await apply(lb("old", "team-b", "10.9.0.3"));
    // Claims as the webhook writes them: one of a Service that does not hold it yet, one of none.
    const claim = (ip: string, ref: string) => {
      const parsed = parseAddress(ip);
      assert.ok(parsed.ok);
      const holder = { ref, sharingKey: "", ports: ["TCP/80"], backendKey: "Cluster" };
      return claimLease("lb-ip-guard", parsed.value, holder, "lan", Date.now(), "e2e");
    };
    await apply(claim("192.168.50.20", "team-b/old"));
    await apply(claim("192.168.50.21", "team-b/gone"));
    // The claim of an address team-a/gone-web gave up, retaining it (no AddressReservation CRD
    // is installed: reading none is no error).
    const retained = claim("192.168.50.30", "team-a/gone-web");
    Object.assign((retained.metadata as { annotations: object }).annotations, {
      ...retentionAnnotations(
        Date.parse("2026-12-07T06:00:00Z"),
        Date.parse("2099-01-01T00:00:00Z"),
      ),
    });
    await apply(retained);
  });
  after(async () => {
    // The folder stays: it holds the page, its screenshot and the plugin's output.
    await cp?.stop();
  });

  it("pools --cluster: both pools, every holder by how it holds, the problems", async () => {
    const result = await poolsOfCluster("--format", "json");
    assert.equal(result.code, 1, result.stderr);
    const report = JSON.parse(result.stdout) as PoolsReport;
    assert.deepEqual(
      report.pools.map((pool) => [pool.name, pool.size, pool.usable, pool.used, pool.free]),
      [
        ["default", "8", "8", 1, "7"],
        // 192.168.50.30 is retained: not free.
        ["lan", "256", "254", 4, "249"],
      ],
    );
    const lan = report.pools[1];
    assert.deepEqual(
      lan?.addresses.map((entry) => [
        entry.address,
        entry.state,
        entry.holders.map((h) => `${h.ref}/${h.via}`),
      ]),
      [
        ["192.168.50.10", "conflicting", ["team-a/web/status", "team-b/copy/request"]],
        ["192.168.50.20", "held", ["team-b/old/claim"]],
        ["192.168.50.21", "held", ["team-b/gone/claim"]],
        ["192.168.50.53", "shared", ["team-a/dns-tcp/request", "team-a/dns-udp/request"]],
      ],
    );
    assert.deepEqual(
      report.problems.map((problem) => problem.message),
      [
        "team-b/copy requests 192.168.50.10, which team-a/web holds and does not share with it: it stays <pending>",
        "192.168.50.21 is claimed for team-b/gone, which does not exist (a refused or deleted Service; the claim expires)",
      ],
    );
    assert.deepEqual(lan?.retained, [
      {
        address: "192.168.50.30",
        for: "team-a/gone-web",
        since: "2026-12-07T06:00:00Z",
        until: "2099-01-01T00:00:00Z",
      },
    ]);
    assert.doesNotMatch(result.stderr, /AddressReservation/, "no CRD: no reservations, no warning");
  });

  it("check --cluster reads the claims: the retained address goes back to its Service, a claimed one is held", async () => {
    const manifests = join(dir, "recreated.yaml");
    await writeFile(
      manifests,
      [lb("gone-web", "team-a", ""), lb("copy-of-old", "team-a", "192.168.50.20")]
        .map((object) => {
          const { loadBalancerIP: _, ...spec } = object.spec;
          return JSON.stringify(object.spec.loadBalancerIP === "" ? { ...object, spec } : object);
        })
        .join("\n---\n"),
    );
    const result = await run(process.execPath, [
      MAIN,
      "check",
      manifests,
      "--cluster",
      "--kubeconfig",
      cp.kubeconfigPath,
      "--format",
      "json",
    ]);
    assert.equal(result.code, 1, result.stderr);
    const { results } = JSON.parse(result.stdout) as {
      results: { name: string; decision: string; ips: string[]; reason: string | null }[];
    };
    assert.deepEqual(
      results.map((each) => [each.name, each.decision, each.ips, each.reason]),
      [
        ["gone-web", "assigned", ["192.168.50.30"], null],
        ["copy-of-old", "denied", ["192.168.50.20"], "AddressInUse"],
      ],
    );
  });

  it("kubectl finds the plugin on PATH and `kubectl lb-ip-guard pools` prints the live pools", async () => {
    const bin = join(dir, "bin");
    await mkdir(bin);
    const plugin = join(bin, "kubectl-lb_ip_guard");
    // What npm's bin link does: the plugin's entry point under this Node.
    await writeFile(plugin, `#!/bin/sh\nexec "${process.execPath}" "${PLUGIN}" "$@"\n`);
    await chmod(plugin, 0o755);
    const kubectl = join(await k8sAssets(), "kubectl");
    const env = { PATH: `${bin}:${process.env.PATH ?? ""}`, KUBECONFIG: "" };
    const list = await run(kubectl, ["plugin", "list"], env);
    assert.match(list.stdout, new RegExp(`${plugin}\\n`), list.stderr);

    const pools = await run(
      kubectl,
      ["lb-ip-guard", "pools", "--kubeconfig", cp.kubeconfigPath],
      env,
    );
    assert.equal(pools.code, 1, pools.stderr);
    await writeFile(join(dir, "kubectl-lb-ip-guard-pools.txt"), pools.stdout);
    const lines = pools.stdout.split("\n");
    assert.match(lines[0] ?? "", /^NAME\s+SIZE\s+USED\s+FREE\s+USED%\s+AUTO-ASSIGN\s+ALLOCATION$/);
    assert.match(lines[1] ?? "", /^default\s+8\s+1\s+7\s+13%\s+true\s+any Service$/);
    assert.match(lines[2] ?? "", /^lan\s+256\s+4\s+249\s+2%\s+true\s+any Service$/);
    assert.match(pools.stdout, /192\.168\.50\.10\s+conflicting\s+team-a\/web\s+status/);
    assert.match(
      pools.stdout,
      /192\.168\.50\.53\s+shared\s+team-a\/dns-tcp\s+request\s+dns\s+TCP\/53/,
    );
    assert.match(
      pools.stdout,
      /free: 192\.168\.50\.1-192\.168\.50\.9 \(9\), 192\.168\.50\.11-192\.168\.50\.19 \(9\)/,
    );
    assert.match(pools.stdout, /PROBLEMS\n {2}team-b\/copy requests 192\.168\.50\.10/);
    for (const line of lines) assert.ok(line.length <= 100, line);

    // KUBECONFIG and --context, as kubectl reads them.
    const fromEnv = await run(
      kubectl,
      ["lb-ip-guard", "pools", "--context", "e2e", "--format", "json"],
      {
        ...env,
        KUBECONFIG: cp.kubeconfigPath,
      },
    );
    assert.equal(fromEnv.code, 1, fromEnv.stderr);
    assert.equal((JSON.parse(fromEnv.stdout) as PoolsReport).summary.held, 5);
    const wrongContext = await run(kubectl, ["lb-ip-guard", "check", "--context", "prod"], {
      ...env,
      KUBECONFIG: cp.kubeconfigPath,
    });
    assert.equal(wrongContext.code, 2);
    assert.match(wrongContext.stderr, /context "prod" is not in the kubeconfig; its contexts: e2e/);
  });

  it("the page of the live cluster in headless Chromium", async (t) => {
    const skip = await browserSkipReason();
    if (skip) {
      t.skip(skip);
      return;
    }
    const file = join(dir, "live.html");
    const result = await poolsOfCluster("--format", "html", "--output", file);
    assert.equal(result.code, 1, result.stderr);
    const browser = await launchBrowser();
    try {
      const page = await browser.context.newPage();
      await open(page, file);
      // lan: a /24 with .0 and .255 avoided; default: 8 cells of another /24.
      assert.deepEqual(await stateCounts(page), { a: 2, c: 1, f: 249 + 7, h: 3, r: 1, s: 1 });
      assert.equal(await cell(page, "192.168.50.53").getAttribute("class"), "s");
      await cell(page, "192.168.50.21").hover();
      assert.equal(
        await cell(page, "192.168.50.21").getAttribute("title"),
        "192.168.50.21: held by team-b/gone (claim, TCP/80)",
      );
      await page.locator("#search").fill("team-a/dns");
      await page.locator("#search").press("Enter");
      assert.equal(await page.locator(".cells .hit").count(), 1);
      assert.equal(await page.locator("tr.hit").count(), 1);
      await page.screenshot({ path: join(dir, "live.png"), fullPage: true });
    } finally {
      await browser.close();
    }
  });
});
