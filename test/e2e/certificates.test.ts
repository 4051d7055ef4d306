// The certificate bootstrap against a real kube-apiserver: webhook configurations registered
// with no caBundle, two `lb-ip-guard serve` replicas started together on a cluster with no
// certificate flags, under the RBAC of deploy/rbac.yaml (a service-account token, not admin).
// They converge on one Secret and one CA, patch caBundle, and the API server then calls the
// webhook; then a load of admissions runs through serving-certificate and CA rotations (short
// validities) and none of them may fail.

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { appendFileSync, closeSync, openSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { Agent, request } from "node:https";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { connect } from "node:tls";
import { fileURLToPath } from "node:url";
import { parse, stringify } from "yaml";
import {
  type ControlPlane,
  describeE2E,
  freePort,
  metricSum,
  startControlPlane,
} from "./harness.ts";

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
const MAIN = join(repoRoot, "src/cli/main.ts");
const POOLS = join(repoRoot, "examples/kubeflow-v0.11/metallb-config.yaml");
const NS = "lb-ip-guard";
const SECRET = "lb-ip-guard-tls";
/** Short enough for rotations within seconds: a serving certificate is renewed every ~14 s and the CA every ~27 s. */
const VALIDITY = ["--cert-validity=20s", "--ca-validity=40s", "--ca-trust-delay=2s"];

interface Replica {
  name: string;
  port: number;
  child: ChildProcess;
  logFile: string;
  log(): Promise<string>;
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) assert.fail(`not within ${timeoutMs / 1000} s: ${what}`);
    await sleep(200);
  }
}

/** The certificate a fresh TLS connection to `port` is served, verified against `ca`. */
function served(port: number, ca: string): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port, ca, servername: undefined }, () => {
      const raw = socket.getPeerCertificate().raw;
      socket.end();
      resolve(new X509Certificate(raw));
    });
    socket.on("error", reject);
    socket.setTimeout(5000, () => socket.destroy(new Error("TLS connect timed out")));
  });
}

/** GET /readyz, trusting nothing (the certificate may still be the throwaway one). */
function ready(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(
      { host: "127.0.0.1", port, path: "/readyz", rejectUnauthorized: false, timeout: 3000 },
      (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      },
    );
    req.on("error", () => resolve(false));
    req.on("timeout", () => req.destroy());
    req.end();
  });
}

await describeE2E("certificate bootstrap and rotation against a real API server", () => {
  let cp: ControlPlane;
  let saKubeconfig: string;
  let api: { agent: Agent; server: URL };
  const replicas: Replica[] = [];

  /** A request to the API server as admin (client certificate), JSON both ways. */
  function call(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: Record<string, unknown> }> {
    return new Promise((resolve, reject) => {
      const req = request(
        new URL(path, api.server),
        {
          method,
          agent: api.agent,
          headers: { "Content-Type": "application/json", Accept: "application/json" },
          timeout: 30_000,
        },
        (res) => {
          let text = "";
          res.on("data", (chunk: Buffer) => {
            text += chunk;
          });
          res.on("end", () => {
            let parsed: Record<string, unknown> = {};
            try {
              parsed = JSON.parse(text) as Record<string, unknown>;
            } catch {
              parsed = { message: text };
            }
            resolve({ status: res.statusCode ?? 0, body: parsed });
          });
        },
      );
      req.on("error", reject);
      req.on("timeout", () => req.destroy(new Error(`${method} ${path}: timed out`)));
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
  }

  async function secret(): Promise<Record<string, string> | undefined> {
    const { status, body } = await call("GET", `/api/v1/namespaces/${NS}/secrets/${SECRET}`);
    if (status === 404) return undefined;
    assert.equal(status, 200, `GET Secret: ${JSON.stringify(body)}`);
    const data = body.data as Record<string, string>;
    return Object.fromEntries(
      Object.entries(data).map(([key, value]) => [key, Buffer.from(value, "base64").toString()]),
    );
  }

  async function caBundles(): Promise<string[]> {
    const bundles: string[] = [];
    for (const kind of ["mutatingwebhookconfigurations", "validatingwebhookconfigurations"]) {
      const { body } = await call(
        "GET",
        `/apis/admissionregistration.k8s.io/v1/${kind}/lb-ip-guard`,
      );
      for (const webhook of body.webhooks as { clientConfig: { caBundle?: string } }[]) {
        bundles.push(Buffer.from(webhook.clientConfig.caBundle ?? "", "base64").toString());
      }
    }
    return bundles;
  }

  const fingerprints = (bundle: string) =>
    [...bundle.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g)]
      .map(([pem]) => new X509Certificate(pem).fingerprint256)
      .sort();

  async function startReplica(name: string, port: number): Promise<Replica> {
    const logFile = join(cp.dir, `${name}.log`);
    const fd = openSync(logFile, "a");
    const { KUBECONFIG: _ignored, ...env } = process.env;
    const child = spawn(
      process.execPath,
      [
        MAIN,
        "serve",
        `--kubeconfig=${saKubeconfig}`,
        `--namespace=${NS}`,
        "--host=127.0.0.1",
        `--port=${port}`,
        "--metrics-port=0",
        "--peer-port=0",
        "--shutdown-delay=0",
        "--tls-san=127.0.0.1",
        ...VALIDITY,
      ],
      { cwd: cp.dir, detached: true, stdio: ["ignore", fd, fd], env },
    );
    closeSync(fd);
    // The harness's watchdog kills every process group listed there if this process dies.
    if (child.pid) appendFileSync(join(cp.dir, "pgids"), `${child.pid}\n`);
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    let stopped: Promise<void> | undefined;
    const replica: Replica = {
      name,
      port,
      child,
      logFile,
      log: () => readFile(logFile, "utf8").catch(() => ""),
      stop: () => {
        stopped ??= (async () => {
          if (child.exitCode !== null || child.signalCode !== null || !child.pid) return;
          process.kill(-child.pid, "SIGTERM");
          const timer = setTimeout(() => child.pid && process.kill(-child.pid, "SIGKILL"), 5000);
          await exited;
          clearTimeout(timer);
        })();
        return stopped;
      },
    };
    replicas.push(replica);
    return replica;
  }

  before(async () => {
    cp = await startControlPlane();
    process.once("exit", () => {
      for (const r of replicas)
        if (r.child.pid)
          try {
            process.kill(-r.child.pid, "SIGKILL");
          } catch {}
    });
    await cp.kubectl(["create", "namespace", "metallb-system"]);
    await cp.kubectl(["apply", "-f", POOLS]);
    // The shipped namespace and RBAC; the replicas run as the ServiceAccount they bind.
    await cp.kubectl(["apply", "-f", join(repoRoot, "deploy/namespace.yaml")]);
    await cp.kubectl(["apply", "-f", join(repoRoot, "deploy/rbac.yaml")]);
    const token = (
      await cp.kubectl(["create", "token", "lb-ip-guard", "-n", NS, "--duration=2h"])
    ).stdout.trim();
    const admin = parse(await readFile(cp.kubeconfigPath, "utf8")) as {
      clusters: { cluster: Record<string, string> }[];
      users: { user: Record<string, string> }[];
    };
    saKubeconfig = join(cp.dir, "lb-ip-guard.kubeconfig");
    await writeFile(
      saKubeconfig,
      stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name: "e2e", cluster: admin.clusters[0]?.cluster }],
        users: [{ name: "lb-ip-guard", user: { token } }],
        contexts: [
          { name: "e2e", context: { cluster: "e2e", user: "lb-ip-guard", namespace: NS } },
        ],
        "current-context": "e2e",
      }),
      { mode: 0o600 },
    );
    const user = admin.users[0]?.user ?? {};
    const b64 = (key: string) => Buffer.from(user[key] ?? "", "base64").toString();
    api = {
      server: new URL(cp.apiserverUrl),
      agent: new Agent({
        keepAlive: true,
        maxSockets: 8,
        ca: cp.caPem,
        cert: b64("client-certificate-data"),
        key: b64("client-key-data"),
      }),
    };
  });

  after(async () => {
    await Promise.all(replicas.map((r) => r.stop()));
    api?.agent.destroy();
    await cp?.stop();
  });

  it("two replicas started together create one Secret and one CA, and patch every caBundle", async (t) => {
    const [portA, portB] = [await freePort(), await freePort()];
    // Registered first, with no caBundle: the webhook fills it in.
    await cp.registerWebhook(`https://127.0.0.1:${portA}`);
    // Four entries: mutate, validate, validate-status (ADR 0011) and validate-reservations.
    assert.deepEqual(await caBundles(), ["", "", "", ""]);
    const started = Date.now();
    const [a, b] = await Promise.all([
      startReplica("replica-a", portA),
      startReplica("replica-b", portB),
    ]);
    // caBundle first (it does not wait for the cluster state), then readiness.
    const patchedAfter = await eventually("caBundle filled in both configurations", async () =>
      (await caBundles()).every((value) => value !== "") ? Date.now() - started : undefined,
    );
    await eventually("both replicas ready", async () =>
      (await ready(a.port)) && (await ready(b.port)) ? true : undefined,
    );
    const readyAfter = Date.now() - started;

    const stored = await eventually("the Secret", secret);
    assert.deepEqual(Object.keys(stored).sort(), [
      "ca-bundle.crt",
      "ca.crt",
      "ca.key",
      "tls.crt",
      "tls.key",
    ]);
    const bundle = stored["ca-bundle.crt"] ?? "";
    for (const value of await caBundles()) {
      assert.equal(
        fingerprints(value).join(),
        fingerprints(bundle).join(),
        "caBundle = the Secret's bundle",
      );
    }

    // Both serve a certificate of that one CA, valid for the Service names and 127.0.0.1.
    for (const replica of [a, b]) {
      const cert = await eventually(`${replica.name} serving the Secret's CA`, () =>
        served(replica.port, bundle).catch(() => undefined),
      );
      assert.match(cert.subjectAltName ?? "", /DNS:lb-ip-guard\.lb-ip-guard\.svc\b/);
      assert.match(cert.subjectAltName ?? "", /DNS:lb-ip-guard\.lb-ip-guard\.svc\.cluster\.local/);
      assert.match(cert.subjectAltName ?? "", /IP Address:127\.0\.0\.1/);
    }
    const logs = (await a.log()) + (await b.log());
    const created = logs
      .split("\n")
      .filter((line) => line.includes("certificate Secret lb-ip-guard/lb-ip-guard-tls created"));
    assert.equal(created.length, 1, "one replica created the Secret, the other took it");
    t.diagnostic(
      `caBundle filled ${patchedAfter} ms after the replicas started; both ready after ${readyAfter} ms`,
    );
  });

  it("the API server calls the webhook through the patched caBundle: a duplicate is refused", async () => {
    const service = (name: string) =>
      JSON.stringify({
        apiVersion: "v1",
        kind: "Service",
        metadata: { name, namespace: "default" },
        spec: { type: "LoadBalancer", loadBalancerIP: "192.168.35.101", ports: [{ port: 80 }] },
      });
    const first = await cp.kubectl(["apply", "-f", "-"], { stdin: service("web") });
    assert.match(first.stdout, /service\/web created/);
    const second = await cp.kubectl(["apply", "-f", "-"], {
      stdin: service("web-copy"),
      allowFailure: true,
    });
    assert.notEqual(second.code, 0);
    assert.match(
      second.stderr,
      /admission webhook "validate\.lb-ip-guard\.dev" denied the request: AddressInUse/,
    );
  });

  it("a rotation during a load of admissions loses none", async (t) => {
    const apiserverLog = join(cp.dir, "kube-apiserver.log");
    const logOffset = (await readFile(apiserverLog, "utf8")).length;
    const counts = { requests: 0, mutated: 0, refused: 0, kubectl: 0, failures: 0 };
    const failures: string[] = [];
    const fail = (what: string) => {
      counts.failures += 1;
      if (failures.length < 5) failures.push(what);
    };
    const caSeen = new Set<string>();
    const certsSeen = new Set<string>();
    const servedSeen = new Set<string>();
    let caRotatedAt: number | undefined;
    let stop = false;

    const autoAssign = (i: number) => ({
      apiVersion: "v1",
      kind: "Service",
      metadata: {
        name: `load-${i}`,
        namespace: "default",
        annotations: { "lb-ip-guard.dev/auto-assign": "true" },
      },
      spec: { ports: [{ port: 80 }] },
    });
    const duplicate = (i: number) => ({
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: `dup-${i}`, namespace: "default" },
      spec: { type: "LoadBalancer", loadBalancerIP: "192.168.35.101", ports: [{ port: 80 }] },
    });
    const createPath = "/api/v1/namespaces/default/services?dryRun=All";

    // Workers: dry-run creates straight to the API server, alternating a Service the mutating
    // webhook must assign an address to (a failed call there is ignored by the API server, so
    // the answer would come back unassigned) and a duplicate the validating one must refuse.
    const worker = async (id: number) => {
      for (let i = 0; !stop; i += 1) {
        const n = id * 1_000_000 + i;
        counts.requests += 1;
        if (i % 2 === 0) {
          const { status, body } = await call("POST", createPath, autoAssign(n)).catch(
            (error: Error) => ({
              status: 0,
              body: { message: error.message } as Record<string, unknown>,
            }),
          );
          const spec = (body.spec ?? {}) as { type?: string; loadBalancerIP?: string };
          if (status === 201 && spec.type === "LoadBalancer" && spec.loadBalancerIP)
            counts.mutated += 1;
          else fail(`auto-assign: ${status} ${JSON.stringify(body.message ?? spec)}`);
        } else {
          const { status, body } = await call("POST", createPath, duplicate(n)).catch(
            (error: Error) => ({
              status: 0,
              body: { message: error.message } as Record<string, unknown>,
            }),
          );
          if (status === 403 && /AddressInUse/.test(String(body.message))) counts.refused += 1;
          else fail(`duplicate: ${status} ${String(body.message)}`);
        }
      }
    };
    // And the real kubectl, one at a time.
    const kubectlLoop = async () => {
      for (let i = 0; !stop; i += 1) {
        counts.requests += 1;
        const out = await cp.kubectl(
          [
            "create",
            "--dry-run=server",
            "-o",
            "jsonpath={.spec.type} {.spec.loadBalancerIP}",
            "-f",
            "-",
          ],
          {
            stdin: JSON.stringify(autoAssign(9_000_000 + i)),
            allowFailure: true,
          },
        );
        if (out.code === 0 && /^LoadBalancer 192\.168\.35\.\d+$/.test(out.stdout.trim()))
          counts.kubectl += 1;
        else fail(`kubectl: ${out.code} ${out.stdout.trim()} ${out.stderr.trim()}`);
      }
    };
    // The Secret and replica A's served certificate, watched along.
    const observer = async () => {
      while (!stop) {
        const stored = await secret().catch(() => undefined);
        if (stored?.["ca.crt"] !== undefined && stored["tls.crt"] !== undefined) {
          const ca = new X509Certificate(stored["ca.crt"]).fingerprint256;
          if (caSeen.size > 0 && !caSeen.has(ca)) caRotatedAt ??= Date.now();
          caSeen.add(ca);
          certsSeen.add(new X509Certificate(stored["tls.crt"]).serialNumber);
          const cert = await served(replicas[0]?.port ?? 0, stored["ca-bundle.crt"] ?? "").catch(
            () => undefined,
          );
          if (cert !== undefined) servedSeen.add(cert.serialNumber);
        }
        await sleep(500);
      }
    };

    // New TLS connections to both replicas, verified against the caBundle the validating
    // configuration holds at that moment: what the API server does whenever it dials (it reuses
    // connections, so its own calls exercise few handshakes).
    const handshakes = { ok: 0, failed: 0 };
    const prober = async () => {
      while (!stop) {
        const bundle = (await caBundles().catch(() => []))[1] ?? "";
        for (const replica of replicas) {
          const cert = await served(replica.port, bundle).catch((error: Error) => {
            if (failures.length < 5) failures.push(`handshake ${replica.name}: ${error.message}`);
            return undefined;
          });
          if (cert === undefined) handshakes.failed += 1;
          else handshakes.ok += 1;
        }
        await sleep(100);
      }
    };

    const started = Date.now();
    const running = [worker(1), worker(2), worker(3), kubectlLoop(), observer(), prober()];
    // Until a CA rotation has happened and a certificate of the new CA has served for a while
    // under the load (the CA rotates about every 27 s), at most 60 s.
    while (Date.now() - started < 60_000) {
      await sleep(500);
      if (caRotatedAt !== undefined && Date.now() - caRotatedAt > 8000) break;
    }
    stop = true;
    await Promise.all(running);
    const seconds = (Date.now() - started) / 1000;

    const apiserverFailures = (await readFile(apiserverLog, "utf8"))
      .slice(logOffset)
      .split("\n")
      .filter((line) => /failed calling webhook/i.test(line));
    t.diagnostic(
      `${seconds.toFixed(1)} s of load: ${counts.requests} admissions (${counts.mutated} assigned, ${counts.refused} refused as duplicates, ${counts.kubectl} kubectl --dry-run=server), ${counts.failures} failed; ` +
        `CAs seen ${caSeen.size}, serving certificates in the Secret ${certsSeen.size}, served by replica A ${servedSeen.size}; ` +
        `new TLS connections verified against the live caBundle: ${handshakes.ok} ok, ${handshakes.failed} failed; ` +
        `apiserver "failed calling webhook" lines: ${apiserverFailures.length}`,
    );
    assert.deepEqual(failures, [], "no admission and no handshake failed");
    assert.equal(handshakes.failed, 0);
    assert.deepEqual(
      apiserverFailures.slice(0, 3),
      [],
      "the API server never failed to call the webhook",
    );
    assert.ok(
      caSeen.size >= 2,
      `a CA rotation happened during the load (CAs seen: ${caSeen.size})`,
    );
    assert.ok(
      certsSeen.size >= 3,
      `serving certificates rotated during the load (${certsSeen.size})`,
    );
    assert.ok(
      servedSeen.size >= 2,
      `replica A swapped its certificate in place (${servedSeen.size})`,
    );
    assert.ok(counts.mutated + counts.refused > 100, "a load worth the name");
    // The shipped RBAC covered everything: the Secret's list+watch by name, writes, patches.
    for (const replica of replicas) {
      assert.equal(replica.child.exitCode, null, `${replica.name} still runs (no restart)`);
      const problems = (await replica.log())
        .split("\n")
        .filter((line) => /list\/watch failed|certificate management failed|forbidden/i.test(line));
      assert.deepEqual(problems.slice(0, 3), [], `${replica.name} logged no failure`);
    }
    // Each replica's expiry metric is that of the certificate it serves now, rotations included.
    const bundle = (await caBundles())[1] ?? "";
    for (const replica of replicas) {
      const metricsPort = /"metricsPort":(\d+)/.exec(await replica.log())?.[1];
      assert.ok(metricsPort, `${replica.name} logged its metrics port`);
      let compared = false;
      for (let attempt = 0; attempt < 5 && !compared; attempt += 1) {
        const before = await served(replica.port, bundle);
        const shown = await metricSum(
          `http://127.0.0.1:${metricsPort}/metrics`,
          /^lb_ip_guard_serving_certificate_expiration_timestamp_seconds\{/,
        );
        const after = await served(replica.port, bundle);
        if (before.serialNumber !== after.serialNumber) continue; // rotated meanwhile
        assert.equal(shown, Date.parse(after.validTo) / 1000, `${replica.name} expiry`);
        compared = true;
      }
      assert.ok(compared, `${replica.name}: a scrape between two handshakes of one certificate`);
    }
  });
});
