// The cluster-state adapter against a real etcd + kube-apiserver, driven by the real kubectl:
// readiness after the first sync, pools from the legacy ConfigMap and IPAddressPools (edits
// honoured live, broken edits refused), usage from Services, in-flight holds, the CRD missing
// and appearing, `check --cluster`, and the API server going away.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { type ChildOutput, outputOf } from "../../scripts/child-output.ts";
import { type ClusterState, startClusterState } from "../../src/cluster/state.ts";
import { parseAddress } from "../../src/ipam/address.ts";
import { holderOf, policyFor } from "../../src/ipam/decide.ts";
import type { ServiceObject } from "../../src/ipam/service.ts";
import { type ControlPlane, CRD_FILE, describeE2E, startControlPlane } from "./harness.ts";
import { legacyConfigMap } from "./webhook-fixtures.ts";

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
const METALLB_CONFIG = join(repoRoot, "examples/kubeflow-v0.11/metallb-config.yaml");
const policy = policyFor();
const HOLD_TTL_MS = 4000;

/** A pino logger whose lines the test can read. */
function capturingLogger() {
  const lines: { level: number; msg: string; resource?: string }[] = [];
  const logger = pino(
    { level: "debug" },
    { write: (line: string) => lines.push(JSON.parse(line)) },
  );
  return { logger, lines };
}

function service(name: string, spec: Record<string, unknown>, namespace = "default") {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace },
    spec: { selector: { app: name }, ports: [{ port: 80, protocol: "TCP" }], ...spec },
  };
}

const lb = (name: string, ip: string) =>
  service(name, { type: "LoadBalancer", loadBalancerIP: ip });

function ipAddressPool(name: string, addresses: string[]) {
  return {
    apiVersion: "metallb.io/v1beta1",
    kind: "IPAddressPool",
    metadata: { name, namespace: "metallb-system" },
    spec: { addresses },
  };
}

function address(text: string) {
  const parsed = parseAddress(text);
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.value;
}

function holders(state: ClusterState, ip: string): string[] {
  const { family, value } = address(ip);
  return state
    .context()
    .view.usage.holdersOf(family, value)
    .map((holder) => holder.ref);
}

function poolRanges(state: ClusterState, name: string): string | undefined {
  const pool = state.context().view.pools.byName(name);
  return pool?.ranges.map((range) => `${range.first}-${range.last}`).join(",");
}

/** Polls until `check` holds; fails with `what` after `timeoutMs`. */
async function eventually(what: string, check: () => boolean, timeoutMs = 10_000): Promise<number> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > timeoutMs) assert.fail(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return Date.now() - start;
}

await describeE2E("cluster state against a real API server", () => {
  let cp: ControlPlane;
  let state: ClusterState;
  const log = capturingLogger();
  const apply = (object: unknown) =>
    cp.kubectl(["apply", "-f", "-"], { stdin: JSON.stringify(object) });
  /** `check --cluster` on this API server, in JSON: exit code, stderr and the results. */
  const checkCluster = async (...paths: string[]) => {
    const run = await runCli([
      "check",
      "--cluster",
      "--kubeconfig",
      cp.kubeconfigPath,
      "--format",
      "json",
      ...paths,
    ]);
    const report = JSON.parse(run.stdout || '{"results": []}') as {
      results: {
        namespace: string;
        name: string;
        decision: string;
        pool: string | null;
        reason: string | null;
        message: string;
      }[];
    };
    return { code: run.code, stderr: run.stderr, results: report.results };
  };

  before(async () => {
    cp = await startControlPlane();
    await cp.kubectl(["create", "namespace", "metallb-system"]);
    await cp.kubectl(["create", "namespace", "team-a"]);
    await cp.kubectl(["apply", "-f", METALLB_CONFIG]);
    await apply({
      apiVersion: "v1",
      kind: "List",
      items: [lb("web", "192.168.35.101"), lb("db", "192.168.35.102")],
    });
    // MetalLB's assignment lives in status: a Service that requested nothing still holds it.
    await apply(service("assigned", { type: "LoadBalancer" }, "team-a"));
    await cp.kubectl([
      "patch",
      "service",
      "assigned",
      "-n",
      "team-a",
      "--subresource=status",
      "--type=merge",
      "-p",
      JSON.stringify({ status: { loadBalancer: { ingress: [{ ip: "192.168.35.103" }] } } }),
    ]);
  });

  after(async () => {
    await state?.stop();
    await cp?.stop();
  });

  it("is not ready before the first sync, and ready after it", async () => {
    state = await startClusterState({
      kubeconfig: cp.kubeconfigPath,
      metallbNamespace: "metallb-system",
      staticPools: [],
      policy,
      ipTarget: "spec",
      holdTtlMs: HOLD_TTL_MS,
      logger: log.logger,
      retry: { initialMs: 100, maxMs: 1000 },
      expireIntervalMs: 200,
    });
    assert.equal(state.ready, false);
    assert.equal(state.context().ready, false);
    const took = await eventually("ready", () => state.ready);
    assert.equal(state.context().ready, true);
    assert.deepEqual(state.failing, []);
    console.log(`# first sync in ${took} ms`);
  });

  it("reads pools from the legacy ConfigMap", () => {
    const pool = state.context().view.pools.byName("default");
    assert.ok(pool, "pool default");
    assert.equal(pool.origin, "ConfigMap metallb-system/config");
    assert.equal(
      poolRanges(state, "default"),
      `${address("192.168.35.100").value}-${address("192.168.35.110").value}`,
    );
  });

  it("reads usage from Services: requested and assigned addresses", () => {
    assert.deepEqual(holders(state, "192.168.35.101"), ["default/web"]);
    assert.deepEqual(holders(state, "192.168.35.102"), ["default/db"]);
    assert.deepEqual(holders(state, "192.168.35.103"), ["team-a/assigned"]);
    assert.deepEqual(holders(state, "192.168.35.104"), []);
  });

  it("reads Namespace labels, and follows label changes", async () => {
    const labels = () => state.context().view.namespaceLabels("team-a");
    assert.equal(labels()["kubernetes.io/metadata.name"], "team-a");
    await cp.kubectl(["label", "namespace", "team-a", "team=a"]);
    await eventually("label team=a", () => labels().team === "a");
  });

  it("honours a ConfigMap edit within seconds, and refuses a broken one keeping the last good pools", async () => {
    await apply(legacyConfigMap(["192.168.35.100-192.168.35.109"]));
    const took = await eventually(
      "range widened",
      () =>
        poolRanges(state, "default") ===
        `${address("192.168.35.100").value}-${address("192.168.35.109").value}`,
    );
    console.log(`# ConfigMap edit seen ${took} ms after kubectl returned`);

    const before = log.lines.length;
    await apply(legacyConfigMap(["192.168.35.300", "10.1.0.1/24"]));
    await eventually("the refusal logged", () =>
      log.lines.slice(before).some((line) => line.msg.includes("192.168.35.300")),
    );
    const refused = log.lines.slice(before).filter((line) => line.level === 50);
    assert.equal(refused.length, 2, "one line per error");
    assert.match(
      refused[0]?.msg ?? "",
      /ConfigMap metallb-system\/config: pool "default": .*192\.168\.35\.300.*keeping its last good pools: default/,
    );
    assert.match(refused[1]?.msg ?? "", /10\.1\.0\.1\/24/);
    assert.equal(
      poolRanges(state, "default"),
      `${address("192.168.35.100").value}-${address("192.168.35.109").value}`,
      "the last good pools are kept",
    );
    assert.equal(state.ready, true);
    await apply(legacyConfigMap(["192.168.35.100-192.168.35.110"]));
    await eventually(
      "range restored",
      () =>
        poolRanges(state, "default") ===
        `${address("192.168.35.100").value}-${address("192.168.35.110").value}`,
    );
  });

  it("honours a new IPAddressPool within seconds, and its deletion", async () => {
    await apply(ipAddressPool("lan", ["10.20.0.0/24"]));
    const took = await eventually(
      "pool lan",
      () => state.context().view.pools.byName("lan") !== undefined,
    );
    console.log(`# new IPAddressPool seen ${took} ms after kubectl returned`);
    assert.equal(
      state.context().view.pools.byName("lan")?.origin,
      "IPAddressPool metallb-system/lan",
    );
    assert.ok(state.context().view.pools.byName("default"), "the ConfigMap's pool stays");
    await cp.kubectl(["delete", "ipaddresspool", "lan", "-n", "metallb-system"]);
    await eventually("pool lan gone", () => state.context().view.pools.byName("lan") === undefined);
  });

  it("frees the address of a deleted Service", async () => {
    await cp.kubectl(["delete", "service", "db"]);
    const took = await eventually(
      "192.168.35.102 free",
      () => holders(state, "192.168.35.102").length === 0,
    );
    console.log(`# Service deletion seen ${took} ms after kubectl returned`);
  });

  it("holds a granted address until its Service appears, then the Service holds it", async () => {
    const ref = "default/new";
    const svc = lb("new", "192.168.35.106") as ServiceObject;
    state.record(
      { ref, holder: holderOf(svc, policy, ref), addresses: [address("192.168.35.106")] },
      Date.now(),
    );
    assert.deepEqual(holders(state, "192.168.35.106"), [ref], "held at once");
    await apply(svc);
    // Held by the Service alone: the hold was released, not left to double-count or expire.
    await eventually("the Service holds it", () => state.context().view.usage.has(ref));
    assert.deepEqual(holders(state, "192.168.35.106"), [ref]);
    await new Promise((resolve) => setTimeout(resolve, HOLD_TTL_MS + 500));
    assert.deepEqual(holders(state, "192.168.35.106"), [ref], "still held, by the Service");
  });

  it("expires a hold whose Service never appears", async () => {
    const ref = "default/never";
    const svc = lb("never", "192.168.35.107") as ServiceObject;
    state.record(
      { ref, holder: holderOf(svc, policy, ref), addresses: [address("192.168.35.107")] },
      Date.now(),
    );
    assert.deepEqual(holders(state, "192.168.35.107"), [ref]);
    await new Promise((resolve) => setTimeout(resolve, HOLD_TTL_MS / 2));
    assert.deepEqual(holders(state, "192.168.35.107"), [ref], "held within the TTL");
    await eventually(
      "the hold expired",
      () => holders(state, "192.168.35.107").length === 0,
      HOLD_TTL_MS + 5000,
    );
  });

  it("check --cluster decides manifests against the live pools and Services", async () => {
    const dir = await mkdtemp(join(tmpdir(), "lb-ip-guard-check-cluster-"));
    try {
      const manifests = {
        apiVersion: "v1",
        kind: "List",
        items: [
          lb("copy", "192.168.35.101"),
          lb("fresh", "192.168.35.108"),
          lb("outside", "10.99.0.1"),
        ],
      };
      await writeFile(join(dir, "services.yaml"), JSON.stringify(manifests));
      const { code, stderr, results } = await checkCluster(dir);
      assert.equal(code, 1, stderr);
      const byName = new Map(results.map((r) => [r.name, r]));
      assert.equal(byName.get("copy")?.decision, "denied");
      assert.equal(byName.get("copy")?.reason, "AddressInUse");
      assert.match(byName.get("copy")?.message ?? "", /default\/web/);
      assert.equal(byName.get("fresh")?.decision, "allowed");
      assert.equal(byName.get("fresh")?.pool, "default");
      assert.equal(byName.get("outside")?.reason, "NotInAnyPool");
      // Read-only: nothing was created.
      const get = await cp.kubectl(["get", "service", "fresh"], { allowFailure: true });
      assert.notEqual(get.code, 0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("check --cluster without manifests audits the cluster's Services", async () => {
    // No webhook guards this API server: it stores what MetalLB would leave <pending>.
    await apply(lb("zz-first", "192.168.35.109"));
    // creationTimestamp has a resolution of one second; the later Service sorts first by name.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await apply({
      apiVersion: "v1",
      kind: "List",
      items: [lb("aa-second", "192.168.35.109"), lb("aa-wants-assigned", "192.168.35.103")],
    });
    try {
      const { code, stderr, results } = await checkCluster();
      assert.equal(code, 1, stderr);
      const refs = results.map((r) => `${r.namespace}/${r.name}`);
      const byRef = new Map(results.map((r) => [`${r.namespace}/${r.name}`, r]));
      assert.equal(byRef.get("default/zz-first")?.decision, "allowed");
      assert.equal(byRef.get("default/aa-second")?.reason, "AddressInUse");
      assert.match(byRef.get("default/aa-second")?.message ?? "", /default\/zz-first/);
      assert.equal(byRef.get("default/aa-wants-assigned")?.reason, "AddressInUse");
      assert.match(byRef.get("default/aa-wants-assigned")?.message ?? "", /team-a\/assigned/);
      // MetalLB's assignments (status) are decided first, as the holders they are.
      assert.ok(refs.indexOf("team-a/assigned") < refs.indexOf("default/aa-wants-assigned"));
      assert.ok(refs.indexOf("default/zz-first") < refs.indexOf("default/aa-second"));
    } finally {
      await cp.kubectl(["delete", "service", "zz-first", "aa-second", "aa-wants-assigned"]);
    }
  });

  it("treats a missing IPAddressPool CRD as no pools, and sees it appear later", async () => {
    await cp.kubectl(["delete", "crd", "ipaddresspools.metallb.io", "--wait=true"]);
    const second = capturingLogger();
    const fresh = await startClusterState({
      kubeconfig: cp.kubeconfigPath,
      metallbNamespace: "metallb-system",
      staticPools: [],
      policy,
      holdTtlMs: HOLD_TTL_MS,
      logger: second.logger,
      retry: { initialMs: 100, maxMs: 1000 },
    });
    try {
      await eventually("ready without the CRD", () => fresh.ready);
      assert.ok(fresh.context().view.pools.byName("default"), "ConfigMap pools still there");
      assert.deepEqual(fresh.failing, [], "a missing CRD is not a failure");
      assert.ok(second.lines.some((line) => /not served/.test(line.msg)));
      // The long-running state lost its IPAddressPool watch the same way: not a failure either.
      assert.equal(state.ready, true);
      await eventually(
        "the long-running state sees the CRD gone",
        () =>
          second.lines.length > 0 &&
          state.failing.length === 0 &&
          log.lines.some((line) => /not served/.test(line.msg)),
      );

      await cp.kubectl(["apply", "-f", CRD_FILE]);
      // `kubectl wait --for=condition=Established` fails at once while the new CRD has no status
      // yet, so poll the condition instead.
      for (let established = ""; established !== "True"; ) {
        const result = await cp.kubectl(
          [
            "get",
            "crd/ipaddresspools.metallb.io",
            "-o",
            "jsonpath={.status.conditions[?(@.type=='Established')].status}",
          ],
          { allowFailure: true },
        );
        established = result.stdout.trim();
        if (established !== "True") await new Promise((resolve) => setTimeout(resolve, 100));
      }
      await apply(ipAddressPool("late", ["10.30.0.0/24"]));
      const took = await eventually(
        "pool late",
        () => fresh.context().view.pools.byName("late") !== undefined,
      );
      console.log(`# IPAddressPool seen ${took} ms after kubectl returned (CRD installed late)`);
      await eventually(
        "pool late, long-running state",
        () => state.context().view.pools.byName("late") !== undefined,
      );
    } finally {
      await fresh.stop();
    }
  });

  it("keeps ready and reports the failing watches when the API server goes away, and stops cleanly", async () => {
    const before = log.lines.length;
    await cp.stop();
    // Services, ConfigMap, IPAddressPools, Namespaces, AddressReservations: an API server gone
    // is a failure of the optional ones too, not "not installed".
    await eventually("failures reported", () => state.failing.length === 5, 15_000);
    assert.equal(state.ready, true, "ADR 0002: stale state keeps the pod ready");
    const warnings = log.lines.slice(before).filter((line) => line.level === 40);
    assert.ok(warnings.length >= 5, "one line per failure");
    for (const resource of ["Services", "Namespaces"]) {
      assert.ok(
        warnings.some((line) => line.resource === resource && /list\/watch failed/.test(line.msg)),
      );
    }
    const stopStarted = Date.now();
    await state.stop();
    assert.ok(Date.now() - stopStarted < 2000, "stop() ends the backoff sleeps at once");
    assert.equal(state.ready, false);
  });
});

function runCli(args: string[]): Promise<ChildOutput> {
  return outputOf(
    spawn(process.execPath, [join(repoRoot, "src/cli/main.ts"), ...args], {
      stdio: ["ignore", "pipe", "pipe"],
    }),
  );
}

await describeE2E("cluster state when the API server has forgotten a watch's position", () => {
  let cp: ControlPlane;
  let state: ClusterState | undefined;
  const log = capturingLogger();
  const apply = (object: unknown) =>
    cp.kubectl(["apply", "-f", "-"], { stdin: JSON.stringify(object) });

  before(async () => {
    // Watches served straight from etcd, compacted every second: a watch that resumes from a
    // resourceVersion older than that gets 410 Gone, as after a long disconnect.
    cp = await startControlPlane({
      apiserverArgs: ["--watch-cache=false", "--etcd-compaction-interval=1s"],
    });
    await cp.kubectl(["create", "namespace", "metallb-system"]);
    await cp.kubectl(["apply", "-f", METALLB_CONFIG]);
    await apply(lb("web", "192.168.35.101"));
  });

  after(async () => {
    await state?.stop();
    await cp?.stop();
  });

  it("relists on 410 Gone and keeps every address in use across the relist", async () => {
    const started = await startClusterState({
      kubeconfig: cp.kubeconfigPath,
      metallbNamespace: "metallb-system",
      staticPools: [],
      policy,
      holdTtlMs: HOLD_TTL_MS,
      logger: log.logger,
      retry: { initialMs: 100, maxMs: 1000 },
    });
    state = started;
    await eventually("ready", () => started.ready);
    const readiness: boolean[] = [];
    // Writes elsewhere move etcd's revision on while the Services watch sees no event, and
    // compaction drops the revision it resumes from when its timeout (20-27 s) ends it.
    let writes = 0;
    const churn = setInterval(() => {
      writes += 1;
      void cp.kubectl(["create", "configmap", `tick-${writes}`], { allowFailure: true });
      readiness.push(started.ready, started.context().ready);
    }, 500);
    try {
      await eventually(
        "the Services watch relisted after 410 Gone",
        () =>
          log.lines.some((line) =>
            /^Services: resourceVersion expired \(410 Gone\)/.test(line.msg),
          ),
        45_000,
      );
    } finally {
      clearInterval(churn);
    }
    assert.ok(readiness.every(Boolean), "ready throughout");
    assert.deepEqual(started.failing, []);
    assert.deepEqual(holders(started, "192.168.35.101"), ["default/web"]);
    // The watch goes on from the relist.
    await apply(lb("after", "192.168.35.102"));
    await eventually("a Service created after the relist is seen", () =>
      started.context().view.usage.has("default/after"),
    );
  });
});
