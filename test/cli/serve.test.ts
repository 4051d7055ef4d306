// `lb-ip-guard serve`, the command as a process: exit 2 with one line on stderr for every bad
// start, whether the flags (src/cli/serve-flags.ts) or the server's first steps
// (src/server/run.ts) refuse it, exit 1 with one line when serving fails, and its help.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { type ChildOutput, outputOf } from "../../scripts/child-output.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const MAIN = join(ROOT, "src/cli/main.ts");
const POOLS = join(ROOT, "examples/kubeflow-v0.11/metallb-config.yaml");

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

describe("serve fails to serve: exit 1, one line on stderr", () => {
  it("a port already taken", async () => {
    const taken = createServer().listen(0, "127.0.0.1");
    await once(taken, "listening");
    const address = taken.address();
    const port = typeof address === "object" && address !== null ? address.port : 0;
    const directory = await mkdtemp(join(tmpdir(), "lb-ip-guard-serve-"));
    try {
      const run = await runCli([
        "serve",
        "--standalone",
        "--pools",
        POOLS,
        "--host",
        "127.0.0.1",
        "--port",
        String(port),
        "--metrics-port",
        "0",
        "--ca-out",
        join(directory, "ca.crt"),
        "--log-level",
        "silent",
      ]);
      assert.equal(run.code, 1, `${run.stderr}${run.stdout}`);
      const lines = run.stderr.trimEnd().split("\n");
      assert.equal(lines.length, 1, run.stderr);
      assert.match(lines[0] ?? "", /^lb-ip-guard serve: cannot listen: .*EADDRINUSE/);
    } finally {
      taken.close();
      await rm(directory, { recursive: true, force: true });
    }
  });
});
