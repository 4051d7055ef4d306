// The flags of `lb-ip-guard serve` (src/cli/serve-flags.ts), parsed in-process: defaults, the
// environment variables, the flag winning over its variable, and refusals naming either.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { parseServeArgs } from "../../src/cli/serve-args.ts";
import { envName } from "../../src/cli/serve-flags.ts";
import { serveConfig, serveRefusal } from "./serve-config.ts";

const POOLS = fileURLToPath(
  new URL("../../examples/kubeflow-v0.11/metallb-config.yaml", import.meta.url),
);

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

  it("reads --retain as a duration, 24h by default and 0 to turn retention off", async () => {
    assert.equal((await serveConfig([])).retainMs, 86_400_000);
    assert.equal((await serveConfig(["--retain", "0"])).retainMs, 0);
    assert.equal((await serveConfig([], { LB_IP_GUARD_RETAIN: "2h30m" })).retainMs, 9_000_000);
    assert.match(await serveRefusal(["--retain", "a day"]), /--retain must be a duration/);
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
