// startClusterState without a reachable API server: it must neither crash nor turn ready, log
// one line per failure naming the collection, and stop at once. (The real API server is in
// test/e2e/cluster-state.test.ts.)

import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { pino } from "pino";
import { KubeConfigError } from "../../src/cluster/kube.ts";
import { startClusterState } from "../../src/cluster/state.ts";
import { policyFor } from "../../src/ipam/decide.ts";
import { parseMetalLBVersion } from "../../src/ipam/metallb-version.ts";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "lb-ip-guard-state-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  return typeof address === "object" && address !== null ? address.port : 0;
}

async function kubeconfig(server: string): Promise<string> {
  const file = join(dir, `kubeconfig-${Math.random().toString(36).slice(2)}`);
  await writeFile(
    file,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "c", cluster: { server, "insecure-skip-tls-verify": true } }],
      users: [{ name: "u", user: { token: "t" } }],
      contexts: [{ name: "c", context: { cluster: "c", user: "u" } }],
      "current-context": "c",
    }),
  );
  return file;
}

const base = {
  metallbNamespace: "metallb-system",
  staticPools: [],
  policy: policyFor(),
  holdTtlMs: 30_000,
  retry: { initialMs: 50, maxMs: 200 },
};

test("an unreachable API server: not ready, one warning per failure, no crash, quick stop", async () => {
  const lines: { level: number; msg: string; resource?: string }[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => lines.push(JSON.parse(line)) });
  const state = await startClusterState({
    ...base,
    kubeconfig: await kubeconfig(`https://127.0.0.1:${await closedPort()}`),
    logger,
  });
  const deadline = Date.now() + 10_000;
  while (state.failing.length < 5 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.equal(state.failing.length, 5);
  assert.equal(state.ready, false);
  assert.equal(state.context().ready, false);
  const warnings = lines.filter((line) => line.level === 40);
  for (const resource of [
    "Services",
    "Namespaces",
    "ConfigMap metallb-system/config",
    // Optional only in that a 404 is "none": an unreachable API server is a failure.
    "AddressReservations (lb-ip-guard.dev/v1alpha1)",
  ]) {
    const line = warnings.find((each) => each.resource === resource);
    assert.ok(line, `a warning for ${resource}`);
    assert.match(line.msg, /list\/watch failed: GET .*ECONNREFUSED.*retrying in \d/);
    assert.ok(!line.msg.includes("\n"), "one line");
  }
  const started = Date.now();
  await state.stop();
  assert.ok(Date.now() - started < 1000, "stop() interrupts the backoff");
});

test("no kubeconfig at all is a KubeConfigError, not a silent localhost:8080", async () => {
  await assert.rejects(
    startClusterState({
      ...base,
      kubeconfig: join(dir, "missing"),
      logger: pino({ level: "silent" }),
    }),
    (error: unknown) =>
      error instanceof KubeConfigError && /cannot load kubeconfig/.test(error.message),
  );
});

test("it watches only the pool source the guarded release reads", async () => {
  const failingFor = async (release: string) => {
    const parsed = parseMetalLBVersion(release);
    assert.ok(parsed.ok);
    const state = await startClusterState({
      ...base,
      policy: policyFor({ release: parsed.value }),
      kubeconfig: await kubeconfig(`https://127.0.0.1:${await closedPort()}`),
      logger: pino({ level: "silent" }),
    });
    const deadline = Date.now() + 10_000;
    while (state.failing.length < 4 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
    const watched = state.failing.map((each) => each.resource).sort();
    await state.stop();
    return watched;
  };
  assert.deepEqual(await failingFor("v0.11.0"), [
    "AddressReservations (lb-ip-guard.dev/v1alpha1)",
    "ConfigMap metallb-system/config",
    "Namespaces",
    "Services",
  ]);
  assert.deepEqual(await failingFor("v0.16.2"), [
    "AddressReservations (lb-ip-guard.dev/v1alpha1)",
    "IPAddressPools (metallb.io/v1beta1, metallb-system)",
    "Namespaces",
    "Services",
  ]);
});
