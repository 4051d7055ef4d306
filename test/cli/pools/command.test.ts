// `lb-ip-guard pools` as a user runs it: a child process, its exit code and output, on the
// examples and on small inputs written here. The page's behaviour is test/browser's.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { outputOf } from "../../../scripts/child-output.ts";
import type { PoolsReport } from "../../../src/cli/pools/report.ts";
import {
  claim,
  cli,
  IPADDRESSPOOL,
  KUBEFLOW,
  LAN,
  namespace,
  reservation,
  yaml,
} from "../check/helpers.ts";

const PLUGIN = fileURLToPath(new URL("../../../src/cli/kubectl-plugin.ts", import.meta.url));

async function poolsJson(args: readonly string[], stdin = "") {
  const run = await cli(["pools", "--format", "json", ...args], stdin);
  assert.ok(run.code === 0 || run.code === 1, `exit ${run.code}: ${run.stderr}`);
  return { ...run, report: JSON.parse(run.stdout) as PoolsReport };
}

const lb = (namespace: string, name: string, ip: string, extra = "") => `
apiVersion: v1
kind: Service
metadata:
  name: ${name}
  namespace: ${namespace}
${extra}
spec:
  type: LoadBalancer
  loadBalancerIP: ${ip}
  ports:
  - port: 80
`;

describe("lb-ip-guard pools", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "lb-ip-guard-pools-"));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it("the Kubeflow example: a kubectl-like table within 100 columns, the duplicate as a problem", async () => {
    const run = await cli(["pools", KUBEFLOW, "--metallb-version", "v0.11.0"]);
    assert.equal(run.code, 1, run.stderr);
    const lines = run.stdout.trimEnd().split("\n");
    for (const line of lines) assert.ok(line.length <= 100, `${line.length} columns: ${line}`);
    assert.match(lines[0] ?? "", /^NAME\s+SIZE\s+USED\s+FREE\s+USED%\s+AUTO-ASSIGN\s+ALLOCATION$/);
    assert.match(lines[1] ?? "", /^default\s+11\s+4\s+7\s+36%\s+true\s+any Service$/);
    assert.match(run.stdout, /192\.168\.35\.101\s+conflicting\s+kubeflow\/minio-service\s+request/);
    assert.match(run.stdout, /free: 192\.168\.35\.104-192\.168\.35\.110 \(7\)/);
    assert.match(
      run.stdout,
      /PROBLEMS\n {2}team-a\/minio-copy requests 192\.168\.35\.101, which kubeflow\/minio-service holds/,
    );
  });

  it("JSON: pools with sizes as strings, held addresses with holders, free ranges, problems", async () => {
    const { code, report } = await poolsJson([KUBEFLOW, "--metallb-version", "v0.11.0"]);
    assert.equal(code, 1);
    assert.deepEqual(report.summary, { pools: 1, held: 4, retained: 0, reserved: 0, problems: 1 });
    const [pool] = report.pools;
    assert.equal(pool?.name, "default");
    assert.deepEqual(pool?.ranges, ["192.168.35.100-192.168.35.110"]);
    assert.deepEqual([pool?.size, pool?.usable, pool?.used, pool?.free], ["11", "11", 4, "7"]);
    assert.equal(pool?.serviceAllocation, "any Service");
    assert.deepEqual(pool?.freeRanges, [{ range: "192.168.35.104-192.168.35.110", size: "7" }]);
    const conflict = pool?.addresses.find((entry) => entry.address === "192.168.35.101");
    assert.equal(conflict?.state, "conflicting");
    assert.deepEqual(
      conflict?.holders.map((h) => [h.ref, h.via, h.ports]),
      [
        ["kubeflow/minio-service", "request", ["TCP/9000"]],
        ["team-a/minio-copy", "request", ["TCP/9000"]],
      ],
    );
    assert.deepEqual(
      report.problems.map((p) => [p.kind, p.address]),
      [["address-taken", "192.168.35.101"]],
    );
  });

  it("no problem: exit 0, an IPv6 pool counted without a grid of it", async () => {
    const { code, report } = await poolsJson([
      "--pools",
      join(IPADDRESSPOOL, "pools.yaml"),
      IPADDRESSPOOL,
    ]);
    assert.equal(code, 0);
    const ipv6 = report.pools.find((pool) => pool.name === "ipv6");
    assert.deepEqual([ipv6?.size, ipv6?.used, ipv6?.free], ["65520", 1, "65519"]);
    const shared = report.pools.find((pool) => pool.name === "general")?.addresses[0];
    assert.equal(shared?.state, "shared");
    assert.equal(report.summary.problems, 0);
  });

  it("an audit of --existing: the Service in status keeps its address, the one asking sits pending", async () => {
    const existing = join(dir, "existing.yaml");
    await writeFile(
      existing,
      yaml(
        lb("a", "asker", "10.0.0.12"),
        `${lb("b", "served", "10.0.0.13")}status:\n  loadBalancer:\n    ingress:\n    - ip: 10.0.0.12\n`,
      ),
    );
    const pools = join(dir, "lan.yaml");
    await writeFile(pools, yaml(LAN));
    const { code, report } = await poolsJson(["--pools", pools, "--existing", existing]);
    assert.equal(code, 1);
    const lan = report.pools.find((pool) => pool.name === "lan");
    assert.deepEqual(
      lan?.addresses.map((entry) => [
        entry.address,
        entry.state,
        entry.holders.map((h) => `${h.ref}/${h.via}`),
      ]),
      [
        ["10.0.0.12", "conflicting", ["b/served/status", "a/asker/request"]],
        ["10.0.0.13", "held", ["b/served/request"]],
      ],
    );
    assert.deepEqual(
      report.problems.map((p) => p.message),
      [
        "a/asker requests 10.0.0.12, which b/served holds and does not share with it: it stays <pending>",
      ],
    );
  });

  it("a manifest replaces the existing Service of its name: its new request counts, not the old", async () => {
    const existing = join(dir, "old.yaml");
    await writeFile(existing, yaml(lb("a", "web", "10.0.0.11")));
    const { report } = await poolsJson(
      ["--existing", existing, "-"],
      yaml(LAN, lb("a", "web", "10.0.0.15")),
    );
    const lan = report.pools.find((pool) => pool.name === "lan");
    assert.deepEqual(
      lan?.addresses.map((entry) => entry.address),
      ["10.0.0.15"],
    );
  });

  it("the lifecycle: retained (for whom, until when), reserved (for whom, who holds it), quotas, a reservation held by another", async () => {
    const now = Date.now();
    const day = 86_400_000;
    const existing = join(dir, "lifecycle.yaml");
    await writeFile(
      existing,
      yaml(
        LAN,
        namespace("team-q", "2"),
        namespace("team-z", "many"),
        lb("team-q", "web", "10.0.0.10"),
        lb("team-b", "intruder", "10.0.0.12"),
        reservation("team-a/db", ["10.0.0.12"], "db"),
        reservation("team-q/spare", ["10.0.0.13"]),
        claim("10.0.0.11", "team-a/gone", { since: now - day, until: now + day }),
        claim("10.0.0.14", "team-a/long-gone", { since: now - 2 * day, until: now - 1000 }),
      ),
    );
    const { code, report, stderr } = await poolsJson(["--existing", existing]);
    assert.equal(code, 1, "the reserved address held by another is a problem");
    assert.match(
      stderr,
      /Namespace team-z: lb-ip-guard\.dev\/address-quota "many" is not a number/,
    );
    const lan = report.pools.find((pool) => pool.name === "lan");
    assert.deepEqual(
      lan?.retained.map((entry) => [entry.address, entry.for, Date.parse(entry.until)]),
      // The expired retention of .14 is gone: .14 is free again.
      [["10.0.0.11", "team-a/gone", Math.floor((now + day) / 1000) * 1000]],
    );
    assert.deepEqual(
      lan?.reserved.map((entry) => [entry.address, entry.reservation, entry.for, entry.heldBy]),
      [
        ["10.0.0.12", "team-a/db", "team-a/db", ["team-b/intruder"]],
        ["10.0.0.13", "team-q/spare", "namespace team-q", []],
      ],
    );
    assert.deepEqual([lan?.used, lan?.free], [2, "6"]);
    assert.deepEqual(lan?.freeRanges, [{ range: "10.0.0.14-10.0.0.19", size: "6" }]);
    assert.deepEqual(
      { ...report.summary },
      { pools: 2, held: 2, retained: 1, reserved: 2, problems: 1 },
    );
    assert.deepEqual(report.namespaces, [
      { namespace: "team-q", quota: 2, used: 2, addresses: ["10.0.0.10", "10.0.0.13"] },
    ]);
    assert.deepEqual(
      report.problems.map((problem) => [problem.kind, problem.address]),
      [["reserved-held-elsewhere", "10.0.0.12"]],
    );

    const text = await cli(["pools", "--existing", existing]);
    for (const line of text.stdout.split("\n")) assert.ok(line.length <= 100, line);
    assert.match(
      text.stdout,
      /\n {2}retained: 10\.0\.0\.11 for team-a\/gone since \S+Z, until \S+Z\n/,
    );
    assert.match(
      text.stdout,
      /\n {2}reserved: 10\.0\.0\.12 by AddressReservation team-a\/db for team-a\/db, held by team-b\/intruder\n/,
    );
    assert.match(
      text.stdout,
      /\n {2}reserved: 10\.0\.0\.13 by AddressReservation team-q\/spare for namespace team-q, not held\n/,
    );
    assert.match(
      text.stdout,
      /\nNAMESPACE +QUOTA +USED +ADDRESSES\nteam-q +2 +2 +10\.0\.0\.10, 10\.0\.0\.13\n/,
    );
    assert.match(
      text.stdout,
      /PROBLEMS\n {2}10\.0\.0\.12 is reserved by AddressReservation team-a\/db for team-a\/db,\s+but\s+team-b\/intruder\s+holds\s+it/,
    );
  });

  it("--format html --output: one page, manifest strings only as escaped data", async () => {
    const hostile = "</script><script>alert(1)</script><!--";
    const input = join(dir, "hostile.yaml");
    await writeFile(
      input,
      yaml(
        LAN,
        lb(
          "a",
          "web",
          "10.0.0.12",
          `  annotations:\n    metallb.universe.tf/allow-shared-ip: '${hostile}'`,
        ),
      ),
    );
    const output = join(dir, "map.html");
    const run = await cli(["pools", input, "--format", "html", "--output", output]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, "");
    const page = await readFile(output, "utf8");
    assert.match(page, /^<!doctype html>/);
    assert.match(
      page,
      /Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-/,
    );
    assert.equal(page.includes(hostile), false);
    assert.equal(page.match(/<script/g)?.length, 2, "the data element and the one script, no more");
    assert.ok(page.includes("\\u003c/script>\\u003cscript>alert(1)"));
    assert.doesNotMatch(page, /https?:\/\//, "nothing from the network");
  });

  it("usage and input errors exit 2 with one line naming the problem", async () => {
    const cases: [string[], RegExp][] = [
      [["pools"], /no manifests given/],
      [["pools", KUBEFLOW, "--format", "yaml"], /--format must be text, json or html, not "yaml"/],
      [["pools", KUBEFLOW, "--claims-namespace", "x"], /--claims-namespace needs --cluster/],
      [["pools", KUBEFLOW, "--context", "x"], /--context needs --cluster/],
      [
        ["pools", "--cluster", "--claims-namespace", "Not_A_Name"],
        /--claims-namespace must be a namespace name/,
      ],
      [["pools", join(KUBEFLOW, "missing.yaml")], /missing\.yaml/],
      [["pools", KUBEFLOW, "--output", join(KUBEFLOW, "no/such/dir/map.html")], /--output: ENOENT/],
    ];
    for (const [args, message] of cases) {
      const run = await cli(args);
      assert.equal(run.code, 2, `${args.join(" ")}: ${run.stderr}`);
      assert.match(run.stderr, message);
      assert.equal(run.stderr.trimEnd().split("\n").length, 1, run.stderr);
    }
  });

  it("--help, and the command list names pools", async () => {
    const help = await cli(["pools", "--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^Usage: lb-ip-guard pools /);
    const top = await cli(["--help"]);
    assert.match(top.stdout, /\n {2}pools +show every pool/);
  });
});

describe("kubectl-lb_ip_guard (the kubectl plugin's entry point)", () => {
  const plugin = (args: readonly string[], env: NodeJS.ProcessEnv = {}) => {
    const child = spawn(process.execPath, [PLUGIN, ...args], {
      env: { ...process.env, NODE_TEST_CONTEXT: "", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    return outputOf(child);
  };
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "lb-ip-guard-plugin-"));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it("says it is kubectl lb-ip-guard, and that check and pools read the cluster", async () => {
    const run = await plugin(["--help"]);
    assert.equal(run.code, 0);
    assert.match(run.stdout, /^Usage: kubectl lb-ip-guard <command>/);
    assert.match(run.stdout, /check and pools read the cluster of the current\nkubeconfig context/);
  });

  it("pools reads the cluster without --cluster: --kubeconfig, --context and KUBECONFIG pick it", async () => {
    const kubeconfig = join(dir, "config");
    // A cluster nobody listens on: what matters is which one the plugin tries.
    await writeFile(
      kubeconfig,
      JSON.stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name: "c", cluster: { server: "https://127.0.0.1:65533" } }],
        users: [{ name: "u", user: { token: "t" } }],
        contexts: [{ name: "lab", context: { cluster: "c", user: "u" } }],
        "current-context": "lab",
      }),
    );
    const missing = await plugin(["pools", "--kubeconfig", join(dir, "nothing")]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--cluster: cannot load kubeconfig .*nothing/);
    const context = await plugin(["pools", "--kubeconfig", kubeconfig, "--context", "prod"]);
    assert.equal(context.code, 2);
    assert.match(context.stderr, /context "prod" is not in the kubeconfig; its contexts: lab/);
    const fromEnv = await plugin(["check", "--context", "prod"], { KUBECONFIG: kubeconfig });
    assert.equal(fromEnv.code, 2);
    assert.match(fromEnv.stderr, /context "prod" is not in the kubeconfig/);
    const unreachable = await plugin(["pools", "--context", "lab"], { KUBECONFIG: kubeconfig });
    assert.equal(unreachable.code, 2);
    assert.match(unreachable.stderr, /ECONNREFUSED 127\.0\.0\.1:65533/);
  });
});
