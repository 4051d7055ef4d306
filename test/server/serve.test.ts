// `lb-ip-guard serve`: flags and environment (parsed in-process), exit 2 with one line for every
// bad start (spawned), and standalone mode end to end over real HTTPS.

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { type ChildOutput, outputOf } from "../../scripts/child-output.ts";
import { envName, parseServeArgs } from "../../src/cli/serve.ts";
import { decodePatch } from "../admission/fixtures.ts";
import { httpsCall, serveConfig, serveRefusal } from "./helpers.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const MAIN = join(ROOT, "src/cli/main.ts");
const POOLS = join(ROOT, "examples/kubeflow-v0.11/metallb-config.yaml");
const EXAMPLE = join(ROOT, "examples/admission-review.json");

describe("serve flags and environment", () => {
  it("has the contract's defaults", async () => {
    const defaults = await serveConfig([]);
    assert.equal(defaults.port, 8443);
    assert.equal(defaults.metricsPort, 9090);
    assert.equal(defaults.ipTarget, "spec");
    assert.equal(defaults.logLevel, "info");
    assert.equal(defaults.logFormat, "json");
    assert.equal(defaults.metallbNamespace, "metallb-system");
    assert.equal(defaults.loadBalancerClass, undefined);
    assert.equal(defaults.standalone, false);
    assert.deepEqual(defaults.pools, []);
    assert.match(defaults.caOut, /\.lb-ip-guard\/ca\.crt$/);
    assert.equal(defaults.shutdownDelaySeconds, 5);
    assert.equal((await serveConfig(["--standalone", "--pools", POOLS])).shutdownDelaySeconds, 0);
    assert.equal((await serveConfig(["--shutdown-delay", "1.5"])).shutdownDelaySeconds, 1.5);
  });

  it("names each variable LB_IP_GUARD_<FLAG> in upper snake case", () => {
    assert.equal(envName("metrics-port"), "LB_IP_GUARD_METRICS_PORT");
    assert.equal(envName("load-balancer-class"), "LB_IP_GUARD_LOAD_BALANCER_CLASS");
  });

  it("reads every flag from the environment, and the flag wins over its variable", async () => {
    const env = {
      LB_IP_GUARD_PORT: "9443",
      LB_IP_GUARD_METRICS_PORT: "9091",
      LB_IP_GUARD_IP_TARGET: "annotation",
      LB_IP_GUARD_LOG_LEVEL: "debug",
      LB_IP_GUARD_POOLS: `${POOLS}, ${POOLS}`,
      LB_IP_GUARD_STANDALONE: "true",
      LB_IP_GUARD_METALLB_NAMESPACE: "lb",
      LB_IP_GUARD_LOAD_BALANCER_CLASS: "metallb",
      LB_IP_GUARD_NAMESPACE: "guard",
    };
    const fromEnv = await serveConfig([], env);
    assert.equal(fromEnv.port, 9443);
    assert.equal(fromEnv.metricsPort, 9091);
    assert.equal(fromEnv.ipTarget, "annotation");
    assert.equal(fromEnv.logLevel, "debug");
    assert.deepEqual(fromEnv.pools, [POOLS, POOLS]);
    assert.equal(fromEnv.standalone, true);
    assert.equal(fromEnv.metallbNamespace, "lb");
    assert.equal(fromEnv.loadBalancerClass, "metallb");
    assert.equal(fromEnv.namespace, "guard");
    const flags = await serveConfig(
      ["--port", "8444", "--ip-target", "spec", "--pools", POOLS, "--log-level=warn"],
      { ...env, LB_IP_GUARD_IP_TARGET: "bogus" },
    );
    assert.equal(flags.port, 8444);
    assert.equal(flags.ipTarget, "spec");
    assert.deepEqual(flags.pools, [POOLS]);
    assert.equal(flags.logLevel, "warn");
    assert.equal((await serveConfig([], { LB_IP_GUARD_STANDALONE: "0" })).standalone, false);
  });

  it("names the variable when a bad value came from the environment", async () => {
    assert.equal(
      await serveRefusal([], { LB_IP_GUARD_PORT: "https" }),
      'LB_IP_GUARD_PORT must be a port number from 0 to 65535, not "https"',
    );
    assert.match(
      await serveRefusal([], { LB_IP_GUARD_STANDALONE: "maybe" }),
      /LB_IP_GUARD_STANDALONE must be true or false/,
    );
  });

  it("reads the claim grace period and collection interval as durations", async () => {
    const defaults = await serveConfig([]);
    assert.equal(defaults.claimGraceMs, 60_000);
    assert.equal(defaults.claimIntervalMs, 10_000);
    const short = await serveConfig(["--claim-grace", "3s"], {
      LB_IP_GUARD_CLAIM_INTERVAL: "500ms",
    });
    assert.equal(short.claimGraceMs, 3000);
    assert.equal(short.claimIntervalMs, 500);
    assert.match(
      await serveRefusal(["--claim-grace", "0"]),
      /--claim-grace must be a duration from 1s/,
    );
    assert.match(
      await serveRefusal(["--claim-interval", "soon"]),
      /--claim-interval must be a duration/,
    );
  });

  it("refuses a MetalLB release that is no release number, an unknown --allocate, and an annotation target the release cannot read", async () => {
    assert.match(
      await serveRefusal(["--metallb-version", "latest"]),
      /--metallb-version: MetalLB version "latest" is not a release number; expected vMAJOR\.MINOR\.PATCH.*, or auto/,
    );
    assert.match(
      await serveRefusal(["--allocate", "some"]),
      /--allocate must be one of all, annotated/,
    );
    assert.match(
      await serveRefusal(["--ip-target", "annotation", "--metallb-version", "v0.11.0"]),
      /MetalLB v0\.11\.0 reads no address annotation, only spec\.loadBalancerIP; use --ip-target spec/,
    );
    const config = await serveConfig(["--ip-target", "annotation", "--metallb-version", "v0.12.1"]);
    assert.deepEqual(
      [config.metallbVersion, config.allocation],
      [{ major: 0, minor: 12, patch: 1 }, "all"],
    );
    assert.equal((await serveConfig([])).metallbVersion, "auto");
  });

  it("accepts port 0 (a free port, logged) and --help", async () => {
    assert.equal((await serveConfig(["--port", "0", "--metrics-port", "0"])).port, 0);
    assert.equal((await parseServeArgs(["--help"], {})).ok && "help", "help");
    assert.equal((await parseServeArgs(["-h", "--bogus"], {})).ok, false);
  });
});

function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<ChildOutput> {
  const child = spawn(process.execPath, [MAIN, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  // A start that wrongly succeeds would serve forever: stop it and fail on the exit code.
  const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
  return outputOf(child).finally(() => clearTimeout(timer));
}

describe("serve refuses a bad start: exit 2, one line on stderr", { concurrency: 4 }, () => {
  let directory: string;
  before(async () => {
    directory = await mkdtemp(join(tmpdir(), "lb-ip-guard-serve-"));
    await writeFile(
      join(directory, "broken.yaml"),
      "address-pools:\n- name: lan\n  protocol: layer2\n  addresses:\n  - 10.0.0.1/24\n",
    );
    await writeFile(
      join(directory, "no-pools.yaml"),
      "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n",
    );
    await writeFile(join(directory, "junk.pem"), "not a certificate\n");
  });
  after(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  const cases: [string, string[], NodeJS.ProcessEnv, RegExp][] = [
    ["an unknown flag", ["--prot", "8443"], {}, /unknown flag --prot/],
    ["a positional argument", ["8443"], {}, /unexpected argument 8443/],
    ["a port that is not a number", ["--port", "https"], {}, /--port must be a port number/],
    [
      "a port out of range",
      ["--metrics-port", "70000"],
      {},
      /--metrics-port must be a port number from 0 to 65535, not "70000"/,
    ],
    ["a negative port", ["--port=-1"], {}, /--port must be a port number/],
    ["a flag without its value", ["--port"], {}, /--port needs a value/],
    [
      "one port for both servers",
      ["--port", "9000", "--metrics-port", "9000"],
      {},
      /need two ports/,
    ],
    [
      "a bad --ip-target",
      ["--ip-target", "status"],
      {},
      /--ip-target must be one of spec, annotation, not "status"/,
    ],
    [
      "a bad --shutdown-delay",
      ["--shutdown-delay", "5s"],
      {},
      /--shutdown-delay must be a number of seconds/,
    ],
    ["a bad --log-level", ["--log-level", "loud"], {}, /--log-level must be one of/],
    [
      "a bad namespace",
      ["--metallb-namespace", "MetalLB"],
      {},
      /--metallb-namespace must be a Kubernetes namespace name/,
    ],
    [
      "--standalone without --pools",
      ["--standalone"],
      {},
      /--standalone needs at least one --pools FILE/,
    ],
    [
      "--tls-cert without --tls-key",
      ["--tls-cert", POOLS],
      {},
      /--tls-cert is given without --tls-key/,
    ],
    [
      "--tls-key without --tls-cert",
      ["--tls-key", POOLS],
      {},
      /--tls-key is given without --tls-cert/,
    ],
    [
      "a missing pools file",
      ["--standalone", "--pools", "no/such.yaml"],
      {},
      /--pools no\/such\.yaml: no such file/,
    ],
    [
      "a missing kubeconfig",
      ["--kubeconfig", "no/such/config"],
      {},
      /--kubeconfig no\/such\/config: no such file/,
    ],
    [
      "a broken pools file",
      ["--standalone", "--pools", "BROKEN"],
      {},
      /broken\.yaml#1: pool "lan": .*10\.0\.0\.1\/24/,
    ],
    [
      "a pools file without pools",
      ["--standalone", "--pools", "NOPOOLS"],
      {},
      /no address pool found in .*no-pools\.yaml/,
    ],
    [
      "a certificate that is not one",
      ["--standalone", "--pools", POOLS, "--tls-cert", "JUNK", "--tls-key", "JUNK"],
      {},
      /do not form a usable pair/,
    ],
    [
      "a bad variable",
      [],
      { LB_IP_GUARD_IP_TARGET: "status" },
      /LB_IP_GUARD_IP_TARGET must be one of spec, annotation/,
    ],
    [
      "a cluster without --namespace (outside a pod)",
      ["--kubeconfig", "JUNK", "--tls-cert", "JUNK", "--tls-key", "JUNK"],
      {},
      /keeps its address claims \(Leases\) .* in its own namespace: give --namespace/,
    ],
  ];
  for (const [what, args, env, pattern] of cases) {
    it(what, async () => {
      const resolved = args.map((arg) =>
        arg === "BROKEN"
          ? join(directory, "broken.yaml")
          : arg === "NOPOOLS"
            ? join(directory, "no-pools.yaml")
            : arg === "JUNK"
              ? join(directory, "junk.pem")
              : arg,
      );
      const run = await runCli(["serve", ...resolved], env);
      assert.equal(run.code, 2, `${run.stderr}${run.stdout}`);
      const lines = run.stderr.trimEnd().split("\n");
      assert.equal(lines.length, 1, run.stderr);
      assert.match(lines[0] ?? "", /^lb-ip-guard serve: /);
      assert.match(lines[0] ?? "", pattern);
    });
  }

  it("prints its help and exits 0", async () => {
    const run = await runCli(["serve", "--help"]);
    assert.equal(run.code, 0);
    assert.match(run.stdout, /^Usage: lb-ip-guard serve/);
    assert.match(run.stdout, /LB_IP_GUARD_<FLAG>/);
  });
});

describe("serve --standalone end to end", () => {
  let directory: string;
  let child: ChildProcess | undefined;
  before(async () => {
    directory = await mkdtemp(join(tmpdir(), "lb-ip-guard-standalone-"));
  });
  after(async () => {
    if (child !== undefined && child.exitCode === null) child.kill("SIGKILL");
    await rm(directory, { recursive: true, force: true });
  });

  it("assigns over HTTPS with the generated CA, denies a duplicate, counts, and stops cleanly on SIGTERM", async () => {
    const caOut = join(directory, "ca.crt");
    const server = spawn(
      process.execPath,
      [
        MAIN,
        "serve",
        "--standalone",
        "--pools",
        POOLS,
        "--port",
        "0",
        "--metrics-port",
        "0",
        "--host",
        "127.0.0.1",
        "--ca-out",
        caOut,
      ],
      {
        cwd: ROOT,
        stdio: ["ignore", "pipe", "pipe"],
        env: { PATH: process.env.PATH, HOME: process.env.HOME },
      },
    );
    child = server;
    let stderr = "";
    server.stderr?.on("data", (chunk) => (stderr += chunk));
    const records: Record<string, unknown>[] = [];
    const rawLines: string[] = [];
    const lines = createInterface({ input: server.stdout as NodeJS.ReadableStream });
    const started = new Promise<Record<string, unknown>>((resolve, reject) => {
      lines.on("line", (line) => {
        rawLines.push(line);
        const record = JSON.parse(line) as Record<string, unknown>;
        records.push(record);
        if (typeof record.url === "string") resolve(record);
      });
      server.on("exit", (code) => reject(new Error(`serve exited ${code}: ${stderr}`)));
    });
    const startup = await started;
    assert.equal(startup.mode, "standalone");
    assert.equal(startup.caFile, caOut);
    assert.deepEqual(startup.pools, ['pool "default" (192.168.35.100-192.168.35.110)']);
    assert.match(String(startup.msg), new RegExp(`CA: ${caOut}`));
    const base = String(startup.url);
    assert.match(base, /^https:\/\/127\.0\.0\.1:\d+$/);
    const ca = await readFile(caOut, "utf8");
    const example = await readFile(EXAMPLE, "utf8");
    const post = (path: string, body: string) =>
      httpsCall(`${base}${path}`, ca, {
        method: "POST",
        body,
        headers: { "content-type": "application/json" },
      });

    const mutated = await post("/mutate", example);
    assert.equal(mutated.status, 200);
    const answer = JSON.parse(mutated.body).response;
    assert.equal(answer.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert.equal(answer.allowed, true);
    assert.deepEqual(decodePatch(answer.patch), [
      { op: "add", path: "/spec/type", value: "LoadBalancer" },
      { op: "add", path: "/spec/loadBalancerIP", value: "192.168.35.100" },
      { op: "add", path: "/metadata/annotations/lb-ip-guard.dev~1assigned-from", value: "default" },
    ]);

    // Another Service asking for the address just assigned.
    const duplicate = JSON.parse(example);
    duplicate.request.uid = "705ab4f5-6393-11e8-b7cc-42010a800003";
    duplicate.request.name = "copy";
    duplicate.request.namespace = "team-a";
    duplicate.request.object.metadata = { name: "copy", namespace: "team-a" };
    duplicate.request.object.spec.type = "LoadBalancer";
    duplicate.request.object.spec.loadBalancerIP = "192.168.35.100";
    const denied = JSON.parse((await post("/validate", JSON.stringify(duplicate))).body).response;
    assert.equal(denied.allowed, false);
    assert.equal(denied.status.code, 403);
    assert.match(
      denied.status.message,
      /^AddressInUse: team-a\/copy requests 192\.168\.35\.100, which kubeflow\/ml-pipeline-ui already holds/,
    );

    assert.equal((await post("/validate", "{")).status, 400);
    assert.equal((await httpsCall(`${base}/readyz`, ca)).status, 200);
    const metrics = await (await fetch(`http://127.0.0.1:${startup.metricsPort}/metrics`)).text();
    assert.match(
      metrics,
      /lb_ip_guard_pool_addresses\{pool="default",family="IPv4",state="used"\} 1/,
    );
    assert.match(metrics, /decision="denied",reason="AddressInUse"\} 1/);

    const exited = new Promise<number | null>((resolve) =>
      server.on("exit", (code) => resolve(code)),
    );
    server.kill("SIGTERM");
    assert.equal(await exited, 0, stderr);
    assert.ok(records.some((record) => record.msg === "stopped"));
    const reviews = records.filter((record) => record.msg === "admission review");
    // No key twice in a record (a collector keeps only one of them): `name` is the Service's.
    const reviewLine = rawLines.find((line) => line.includes('"admission review"')) ?? "";
    assert.equal(reviewLine.match(/"name":/g)?.length, 1, reviewLine);
    assert.match(reviewLine, /"name":"ml-pipeline-ui"/);
    assert.deepEqual(
      reviews.map((record) => [record.webhook, record.decision, record.reason ?? null]),
      [
        ["mutate", "assigned", null],
        ["validate", "denied", "AddressInUse"],
      ],
    );
  });
});
