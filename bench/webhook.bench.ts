/**
 * Webhook benchmark: HTTPS keep-alive load (autocannon) on POST /validate and POST /mutate of the
 * real app, beside a bare fastify HTTPS server that answers a constant AdmissionReview, in one
 * run on one machine. Sized for 2 cores: each server runs alone in a child process (one core)
 * while autocannon drives it from this process (the other core).
 *
 *   npm run bench:webhook         (LB_IP_GUARD_BENCH_SECONDS=10 to lengthen each phase)
 *
 * The webhook's state: 10,000 existing Services in memory (7,500 IPv4 addresses at the start of
 * a /16, 2,500 IPv6 addresses at the start of a /64), in a mix of pools (a /24, the /16, the
 * /64, and a dual-stack pool with serviceAllocation). Reviews are realistic (labels, ports,
 * kubectl's last-applied annotation; ~2.5 KB):
 *   - validate: a Service asking for a free IPv4 address of the /16. The webhook records the
 *     grant, under the same Service every time, so the state does not grow;
 *   - mutate: a dry-run auto-assign in the IPv6 /64 (next free address after the 2,500 used).
 *     Dry run, so nothing is recorded and every request does the same work.
 * The webhook logs one JSON line per review (to /dev/null) and counts metrics, as in production.
 *
 * Phases: saturation (autocannon, no rate limit, 10 connections) of the bare server, /validate
 * and /mutate, in interleaved 1 s runs (5 each) so that other work on the machine hits all three
 * alike; then each webhook endpoint at half of its own saturation rate, paced open loop (see
 * `paced`: latency from when each request was due), the bare server paced the same for
 * reference, and the webhook with autocannon's overallRate, whose per-second quota is fired back
 * to back and so shows near-saturation latency. Percentiles come from every response
 * time (microsecond resolution), not autocannon's millisecond histogram. Each server reports its
 * garbage collections over the run when stopped: their pauses are what a latency tail is made
 * of (ADR 0008).
 *
 * On a machine shared with other work, requests/s swing with whatever else runs; the server's CPU
 * time per request (from /proc, Linux) hardly does, so the throughput target is also judged as
 * bare CPU per request / webhook CPU per request: the share of the bare server's throughput the
 * webhook reaches on the same core.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { constants, PerformanceObserver } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { type TLSSocket, connect as tlsConnect } from "node:tls";
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";
import Fastify from "fastify";
import { pino } from "pino";
import { type Certificate, generateCertificate } from "../src/certs/issue.ts";
import { parseAddress } from "../src/ipam/address.ts";
import { poolsFromDocument } from "../src/ipam/config/document.ts";
import { mergePools } from "../src/ipam/config/merge.ts";
import { holderOf, policyFor } from "../src/ipam/decide.ts";
import type { ServiceObject } from "../src/ipam/service.ts";
import { UsageIndex } from "../src/ipam/usage.ts";
import { buildApp, type WebhookApp } from "../src/server/app.ts";
import { createLogger } from "../src/server/log.ts";
import { Metrics } from "../src/server/metrics.ts";
import { StandaloneState } from "../src/server/standalone.ts";
import { secureContextOptions } from "../src/server/tls.ts";

const SECONDS = Number(process.env.LB_IP_GUARD_BENCH_SECONDS ?? 5);
const WARMUP_SECONDS = 2;
/**
 * A paced phase is longer: a p99 is a steady-state figure, and a server's major collections come
 * every so many seconds (sooner after saturation or start-up). In a 5 s window one of them made
 * the p99 of whichever paced phase caught it (25-55 ms, the next phase under 5 ms); over 15 s it
 * weighs as often as it happens.
 */
const PACED_SECONDS = 3 * SECONDS;
/** Saturation runs per target, interleaved across targets. */
const ROUNDS = 5;
const CONNECTIONS = 10;
const SERVICES = { IPv4: 7_500, IPv6: 2_500 };
const TARGETS = { throughput: 0.7, p99Ms: 5 };

// ---------------------------------------------------------------------------------------------
// The state and the reviews.

const POOLS_DOCUMENTS = [
  {
    apiVersion: "metallb.io/v1beta1",
    kind: "IPAddressPool",
    metadata: { name: "default", namespace: "metallb-system" },
    spec: { addresses: ["192.168.35.0/24"] },
  },
  {
    apiVersion: "metallb.io/v1beta1",
    kind: "IPAddressPool",
    metadata: { name: "big", namespace: "metallb-system" },
    spec: { addresses: ["10.40.0.0/16"], autoAssign: false },
  },
  {
    apiVersion: "metallb.io/v1beta1",
    kind: "IPAddressPool",
    metadata: { name: "v6", namespace: "metallb-system" },
    spec: { addresses: ["fd00:1:2:3::/64"], autoAssign: false },
  },
  {
    apiVersion: "metallb.io/v1beta1",
    kind: "IPAddressPool",
    metadata: { name: "team-a", namespace: "metallb-system" },
    spec: {
      addresses: ["10.50.0.0/24", "fd00:50::/112"],
      avoidBuggyIPs: true,
      serviceAllocation: { priority: 10, namespaces: ["team-a"] },
    },
  },
];

export function benchState(): StandaloneState {
  const pools = POOLS_DOCUMENTS.flatMap((document, index) => {
    const found = poolsFromDocument(document, `bench#${index + 1}`);
    if (found === undefined || found.errors.length > 0) throw new Error("bad bench pool");
    return found.pools;
  });
  const merged = mergePools(pools);
  if (merged.errors.length > 0) throw new Error("bench pools do not merge");
  const entries = function* () {
    for (let i = 0; i < SERVICES.IPv4 + SERVICES.IPv6; i++) {
      const v4 = i < SERVICES.IPv4;
      const text = v4
        ? `10.40.${Math.floor(i / 256)}.${i % 256}`
        : `fd00:1:2:3::${(i - SERVICES.IPv4).toString(16)}`;
      const parsed = parseAddress(text);
      if (!parsed.ok) throw new Error(parsed.error);
      const service = existingService(`svc-${i}`, `ns-${i % 50}`, text);
      const ref = `${service.metadata?.namespace}/${service.metadata?.name}`;
      yield [ref, holderOf(service, policyFor(), ref), [parsed.value]] as const;
    }
  };
  return new StandaloneState(merged.poolSet, {
    policy: policyFor(),
    ipTarget: "spec",
    usage: UsageIndex.from(entries()),
  });
}

function existingService(name: string, namespace: string, ip: string): ServiceObject {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace, labels: { app: name } },
    spec: {
      type: "LoadBalancer",
      selector: { app: name },
      ports: [{ protocol: "TCP", port: 443 }],
      externalTrafficPolicy: "Cluster",
    },
    status: { loadBalancer: { ingress: [{ ip }] } },
  };
}

function reviewOf(service: Record<string, unknown>, dryRun: boolean): string {
  const metadata = service.metadata as { name: string; namespace: string };
  const lastApplied = JSON.stringify(service);
  return JSON.stringify({
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid: "2f0e1c9a-6b7d-4a51-9d1e-5c3b8f0a7e21",
      kind: { group: "", version: "v1", kind: "Service" },
      resource: { group: "", version: "v1", resource: "services" },
      requestKind: { group: "", version: "v1", kind: "Service" },
      requestResource: { group: "", version: "v1", resource: "services" },
      name: metadata.name,
      namespace: metadata.namespace,
      operation: "CREATE",
      userInfo: {
        username: "system:serviceaccount:ci:deployer",
        uid: "7d4c2f0e-1111-4a51-9d1e-5c3b8f0a7e21",
        groups: ["system:serviceaccounts", "system:serviceaccounts:ci", "system:authenticated"],
      },
      object: {
        ...service,
        metadata: {
          ...(service.metadata as object),
          annotations: {
            ...((service.metadata as { annotations?: object }).annotations ?? {}),
            "kubectl.kubernetes.io/last-applied-configuration": lastApplied,
          },
          uid: "0c5b0a1e-2222-4a51-9d1e-5c3b8f0a7e21",
          creationTimestamp: "2026-01-01T00:00:00Z",
        },
      },
      oldObject: null,
      dryRun,
      options: {
        apiVersion: "meta.k8s.io/v1",
        kind: "CreateOptions",
        fieldManager: "kubectl-client-side-apply",
      },
    },
  });
}

const serviceSpec = (extra: Record<string, unknown>) => ({
  selector: { "app.kubernetes.io/name": "checkout", "app.kubernetes.io/instance": "prod" },
  ports: [
    { name: "https", protocol: "TCP", port: 443, targetPort: 8443 },
    { name: "metrics", protocol: "TCP", port: 9090, targetPort: 9090 },
  ],
  sessionAffinity: "None",
  externalTrafficPolicy: "Cluster",
  ...extra,
});

const labels = {
  "app.kubernetes.io/name": "checkout",
  "app.kubernetes.io/instance": "prod",
  "app.kubernetes.io/part-of": "shop",
  "app.kubernetes.io/managed-by": "kustomize",
};

/** An explicit free address of the /16 (the 10,000 existing addresses fill it from the start). */
export const VALIDATE_BODY = reviewOf(
  {
    apiVersion: "v1",
    kind: "Service",
    metadata: {
      name: "checkout",
      namespace: "shop",
      labels,
      annotations: {
        "metallb.io/loadBalancerIPs": "10.40.200.17",
        "metallb.io/address-pool": "big",
      },
    },
    spec: serviceSpec({ type: "LoadBalancer" }),
  },
  false,
);

/** A dry-run auto-assign in the IPv6 /64, behind 2,500 used addresses. */
export const MUTATE_BODY = reviewOf(
  {
    apiVersion: "v1",
    kind: "Service",
    metadata: {
      name: "checkout-v6",
      namespace: "shop",
      labels,
      annotations: { "lb-ip-guard.dev/auto-assign": "true", "metallb.io/address-pool": "v6" },
    },
    spec: serviceSpec({ type: "ClusterIP", ipFamilies: ["IPv6"], ipFamilyPolicy: "SingleStack" }),
  },
  true,
);

// ---------------------------------------------------------------------------------------------
// The servers (child processes).

async function serveChild(kind: string, certFile: string): Promise<void> {
  const certificate = JSON.parse(await readFile(certFile, "utf8")) as Certificate;
  const https = secureContextOptions(certificate);
  if (kind === "bare") {
    const answer = {
      apiVersion: "admission.k8s.io/v1",
      kind: "AdmissionReview",
      response: {
        uid: "2f0e1c9a-6b7d-4a51-9d1e-5c3b8f0a7e21",
        allowed: true,
        auditAnnotations: { decision: "allowed" },
      },
    };
    const app = Fastify({ https, bodyLimit: 3 * 1024 * 1024 });
    app.post("/validate", async () => answer);
    app.post("/mutate", async () => answer);
    await serve(app);
    return;
  }
  const state = benchState();
  const logger = createLogger({
    level: "info",
    format: "json",
    destination: pino.destination({ dest: "/dev/null", sync: false }),
  });
  const metrics = new Metrics({ view: () => state.view });
  await serve(buildApp({ state, logger, metrics, https }));
}

interface Pauses {
  count: number;
  totalMs: number;
  maxMs: number;
}

/** Garbage collections of a server over the run, by kind: the usual cause of a latency tail. */
interface Collections {
  readonly minor: Pauses;
  readonly major: Pauses;
}

/**
 * Listens, says on which port, and counts the process's garbage collections from then on. On
 * SIGTERM it reports them and closes cleanly (so that `node --cpu-prof` writes its profile).
 */
async function serve(app: WebhookApp): Promise<void> {
  await app.listen({ port: 0, host: "127.0.0.1" });
  const collections: Collections = {
    minor: { count: 0, totalMs: 0, maxMs: 0 },
    major: { count: 0, totalMs: 0, maxMs: 0 },
  };
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = (entry as { detail?: { kind?: number } }).detail?.kind;
      const bucket =
        kind === constants.NODE_PERFORMANCE_GC_MINOR ? collections.minor : collections.major;
      bucket.count += 1;
      bucket.totalMs += entry.duration;
      bucket.maxMs = Math.max(bucket.maxMs, entry.duration);
    }
  });
  observer.observe({ entryTypes: ["gc"] });
  process.once("SIGTERM", () => {
    observer.disconnect();
    process.stdout.write(`${JSON.stringify({ collections })}\n`);
    void app.close();
  });
  process.stdout.write(
    `${JSON.stringify({ port: (app.server.address() as { port: number }).port })}\n`,
  );
}

interface Child {
  readonly child: ChildProcess;
  readonly port: number;
  /** What the server reports when stopped. */
  readonly collections: Promise<Collections | undefined>;
}

async function startChild(kind: string, certFile: string): Promise<Child> {
  const child = spawn(
    process.execPath,
    [fileURLToPath(import.meta.url), "--serve", kind, certFile],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const port = await new Promise<number>((resolve, reject) => {
    lines.once("line", (line) => resolve((JSON.parse(line) as { port: number }).port));
    child.once("exit", (code) => reject(new Error(`${kind} server exited ${code}`)));
  });
  const collections = new Promise<Collections | undefined>((resolve) => {
    lines.on("line", (line) => {
      if (line.startsWith('{"collections"'))
        resolve((JSON.parse(line) as { collections: Collections }).collections);
    });
    child.once("exit", () => resolve(undefined));
  });
  return { child, port, collections };
}

async function stopChild({ child, collections }: Child): Promise<Collections | undefined> {
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  await exited;
  return collections;
}

// ---------------------------------------------------------------------------------------------
// Load.

interface Measure {
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly errors: number;
  /** Server CPU time (user + system, all threads) per answered request, in µs; Linux only. */
  readonly cpuPerRequest?: number;
}

/** CPU seconds a process used so far, from /proc (Linux); undefined elsewhere. */
function cpuSeconds(pid: number | undefined): number | undefined {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

/** Raw samples of one autocannon run: 2xx latencies (ms), its duration (s), failures. */
interface Samples {
  readonly times: number[];
  readonly seconds: number;
  readonly errors: number;
}

async function run(
  url: string,
  body: string,
  ca: string,
  seconds: number,
  overallRate?: number,
): Promise<Samples> {
  const times: number[] = [];
  let failed = 0;
  const instance = autocannon({
    url,
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
    connections: CONNECTIONS,
    duration: seconds,
    pipelining: 1,
    tlsOptions: { ca, servername: "localhost" },
    ...(overallRate !== undefined && { overallRate }),
  });
  instance.on("response", (_client: unknown, status: number, _bytes: number, ms: number) => {
    if (status === 200) times.push(ms);
    else failed += 1;
  });
  const result = await instance;
  return { times, seconds: result.duration, errors: failed + result.errors + result.timeouts };
}

function summarise(samples: readonly Samples[], cpuSpent?: number): Measure {
  const times = samples.flatMap((sample) => sample.times).sort((a, b) => a - b);
  const seconds = samples.reduce((sum, sample) => sum + sample.seconds, 0);
  const at = (q: number) =>
    times[Math.min(times.length - 1, Math.floor(q * times.length))] ?? Number.NaN;
  return {
    rps: times.length / seconds,
    p50: at(0.5),
    p99: at(0.99),
    errors: samples.reduce((sum, sample) => sum + sample.errors, 0),
    ...(cpuSpent !== undefined && { cpuPerRequest: (cpuSpent * 1e6) / times.length }),
  };
}

async function load(
  url: string,
  body: string,
  ca: string,
  seconds: number,
  overallRate?: number,
): Promise<Measure> {
  return summarise([await run(url, body, ca, seconds, overallRate)]);
}

interface Target {
  readonly url: string;
  readonly body: string;
  readonly server: ChildProcess;
}

/**
 * Closed-loop saturation of several targets, interleaved: ROUNDS short runs of each in turn, so
 * that whatever else the machine does in the meantime hits every target alike. Also the server's
 * CPU time per request over its runs, which other work on the machine skews far less than
 * requests/s.
 */
async function saturate(targets: readonly Target[], ca: string): Promise<Measure[]> {
  for (const target of targets) await run(target.url, target.body, ca, WARMUP_SECONDS);
  const samples = targets.map((): Samples[] => []);
  const cpu = targets.map(() => 0);
  let measured = true;
  for (let round = 0; round < ROUNDS; round++) {
    for (const [index, target] of targets.entries()) {
      const before = cpuSeconds(target.server.pid);
      samples[index]?.push(await run(target.url, target.body, ca, SECONDS / ROUNDS));
      const after = cpuSeconds(target.server.pid);
      if (before === undefined || after === undefined) measured = false;
      else cpu[index] = (cpu[index] ?? 0) + after - before;
    }
  }
  return targets.map((_, index) =>
    summarise(samples[index] ?? [], measured ? (cpu[index] ?? 0) : undefined),
  );
}

/**
 * Open-loop load at a steady `rate`: request i is due at start + i/rate and goes out on an idle
 * one of CONNECTIONS keep-alive HTTPS connections (one request in flight per connection, as the
 * apiserver does); its latency counts from when it was due (to the client timer's millisecond,
 * below), so a server that falls behind is charged for the wait (no coordinated omission). This
 * is what "half of saturation" means; autocannon's overallRate is a per-second quota that each
 * connection fires back to back, so its percentiles are those of saturation for half of every
 * second. The client writes a prebuilt request and parses only the status line and
 * Content-Length: as light as autocannon's.
 *
 * The schedule runs on a timer, never a busy loop: at these rates the gap between requests is
 * under the timer's 1 ms, and spinning on setImmediate instead took a whole core, the one the
 * server's GC and I/O threads need on a two-core machine (p99 of either server then swung from a
 * few ms to 30-100 ms run to run). So each tick sends every request that has come due, and a
 * request counts from the tick that handles it, at most about a millisecond after it came due:
 * the timer's lag is the client's, and any wait for a free connection is still the server's.
 * Requests go out in small bursts (about rate/1000 at a time), harder on the server than an
 * even spacing.
 */
async function paced(
  url: string,
  body: string,
  ca: string,
  rate: number,
  seconds: number,
): Promise<Measure> {
  const target = new URL(url);
  const request = Buffer.from(
    `POST ${target.pathname} HTTP/1.1\r\nHost: ${target.host}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
  const connections = await Promise.all(
    Array.from(
      { length: CONNECTIONS },
      () =>
        new Promise<TLSSocket>((resolve, reject) => {
          const socket = tlsConnect(
            { host: target.hostname, port: Number(target.port), ca, servername: "localhost" },
            () => resolve(socket),
          );
          socket.setNoDelay(true);
          socket.once("error", reject);
        }),
    ),
  );
  const total = Math.max(1, Math.round(rate * seconds));
  const interval = 1000 / rate;
  const times: number[] = [];
  let errors = 0;
  const idle: TLSSocket[] = [...connections];
  const waiting: number[] = [];
  const inFlight = new Map<TLSSocket, number>();
  let finished = 0;
  let done: () => void = () => {};
  const send = (socket: TLSSocket, due: number) => {
    inFlight.set(socket, due);
    socket.write(request);
  };
  for (const socket of connections) {
    let pending: Buffer = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      for (;;) {
        const end = pending.indexOf("\r\n\r\n");
        if (end < 0) return;
        const head = pending.subarray(0, end).toString("latin1");
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        if (pending.length < end + 4 + length) return;
        pending = pending.subarray(end + 4 + length);
        const due = inFlight.get(socket) ?? performance.now();
        inFlight.delete(socket);
        if (head.startsWith("HTTP/1.1 200")) times.push(performance.now() - due);
        else errors += 1;
        finished += 1;
        const next = waiting.shift();
        if (next !== undefined) send(socket, next);
        else idle.push(socket);
        if (finished === total) done();
      }
    });
  }
  const started = performance.now() + 20;
  await new Promise<void>((resolve) => {
    done = resolve;
    let sent = 0;
    const tick = () => {
      const now = performance.now();
      while (sent < total && started + sent * interval <= now) {
        sent += 1;
        const socket = idle.pop();
        if (socket === undefined) waiting.push(now);
        else send(socket, now);
      }
      if (sent >= total) return;
      setTimeout(tick, Math.max(1, started + sent * interval - performance.now()));
    };
    tick();
  });
  for (const socket of connections) socket.destroy();
  times.sort((a, b) => a - b);
  const at = (q: number) =>
    times[Math.min(times.length - 1, Math.floor(q * times.length))] ?? Number.NaN;
  return { rps: times.length / seconds, p50: at(0.5), p99: at(0.99), errors };
}

async function pacedWithWarmup(
  url: string,
  body: string,
  ca: string,
  rate: number,
): Promise<Measure> {
  await paced(url, body, ca, rate, WARMUP_SECONDS);
  return paced(url, body, ca, rate, PACED_SECONDS);
}

function row(name: string, measure: Measure): string {
  const cpu =
    measure.cpuPerRequest === undefined
      ? ""
      : `   server CPU ${measure.cpuPerRequest.toFixed(0).padStart(4)} µs/req`;
  return `${name.padEnd(40)} ${measure.rps.toFixed(0).padStart(8)} req/s   p50 ${measure.p50.toFixed(2).padStart(6)} ms   p99 ${measure.p99.toFixed(2).padStart(6)} ms${cpu}${measure.errors > 0 ? `   ${measure.errors} errors` : ""}`;
}

async function main(): Promise<void> {
  const directory = await mkdtemp(join(tmpdir(), "lb-ip-guard-bench-"));
  const generated = await generateCertificate();
  const certFile = join(directory, "cert.json");
  await writeFile(certFile, JSON.stringify({ cert: generated.cert, key: generated.key }));
  const ca = generated.ca;
  console.log(
    `webhook benchmark: ${SECONDS} s per phase, ${PACED_SECONDS} s per paced one (+ warm-up), ${CONNECTIONS} keep-alive HTTPS connections, node ${process.version}, ${cpus().length} CPUs, load average ${loadavg()[0]?.toFixed(2)}; review bodies ${VALIDATE_BODY.length} and ${MUTATE_BODY.length} bytes; ${SERVICES.IPv4 + SERVICES.IPv6} existing Services\n`,
  );
  try {
    // Both servers run side by side (the idle one costs nothing) so that their runs interleave.
    const bare = await startChild("bare", certFile);
    const webhook = await startChild("webhook", certFile);
    const bareUrl = `https://127.0.0.1:${bare.port}/validate`;
    const base = `https://127.0.0.1:${webhook.port}`;
    const [bareSaturated, validate, mutate] = await saturate(
      [
        { url: bareUrl, body: VALIDATE_BODY, server: bare.child },
        { url: `${base}/validate`, body: VALIDATE_BODY, server: webhook.child },
        { url: `${base}/mutate`, body: MUTATE_BODY, server: webhook.child },
      ],
      ca,
    );
    if (bareSaturated === undefined || validate === undefined || mutate === undefined) return;
    const half = { validate: Math.round(validate.rps / 2), mutate: Math.round(mutate.rps / 2) };
    const validatePaced = await pacedWithWarmup(
      `${base}/validate`,
      VALIDATE_BODY,
      ca,
      half.validate,
    );
    const mutatePaced = await pacedWithWarmup(`${base}/mutate`, MUTATE_BODY, ca, half.mutate);
    const barePaced = await pacedWithWarmup(bareUrl, VALIDATE_BODY, ca, half.validate);
    const validateQuota = await load(`${base}/validate`, VALIDATE_BODY, ca, SECONDS, half.validate);
    const mutateQuota = await load(`${base}/mutate`, MUTATE_BODY, ca, SECONDS, half.mutate);
    const webhookCollections = await stopChild(webhook);
    const bareCollections = await stopChild(bare);

    console.log(
      `saturation (autocannon, no rate limit; ${ROUNDS} interleaved runs of ${SECONDS / ROUNDS} s each)`,
    );
    console.log(row("bare fastify, constant answer", bareSaturated));
    console.log(row("lb-ip-guard POST /validate", validate));
    console.log(row("lb-ip-guard POST /mutate (dry run)", mutate));
    console.log(
      "\nhalf of saturation, paced open loop (latency from when each request was due, to 1 ms)",
    );
    console.log(row(`/validate at ${half.validate} req/s`, validatePaced));
    console.log(row(`/mutate at ${half.mutate} req/s`, mutatePaced));
    console.log(row(`bare at ${half.validate} req/s (reference)`, barePaced));
    console.log(
      "\nhalf of saturation, autocannon overallRate (a per-second quota fired back to back)",
    );
    console.log(row(`/validate at ${half.validate} req/s`, validateQuota));
    console.log(row(`/mutate at ${half.mutate} req/s`, mutateQuota));

    const ratios = {
      validate: validate.rps / bareSaturated.rps,
      mutate: mutate.rps / bareSaturated.rps,
    };
    const verdict = (ok: boolean) => (ok ? "ok" : "MISSED");
    const bareCpu = bareSaturated.cpuPerRequest ?? Number.NaN;
    console.log("\ntargets");
    for (const [name, ratio] of Object.entries(ratios)) {
      console.log(
        `  ${name} throughput ${(ratio * 100).toFixed(0)} % of bare (target >= ${TARGETS.throughput * 100} %): ${verdict(ratio >= TARGETS.throughput)}`,
      );
    }
    for (const [name, measure] of [
      ["validate", validate],
      ["mutate", mutate],
    ] as const) {
      if (measure.cpuPerRequest === undefined || Number.isNaN(bareCpu)) continue;
      const ratio = bareCpu / measure.cpuPerRequest;
      console.log(
        `  ${name} throughput by server CPU per request ${(ratio * 100).toFixed(0)} % of bare (${measure.cpuPerRequest.toFixed(0)} vs ${bareCpu.toFixed(0)} µs; target >= ${TARGETS.throughput * 100} %): ${verdict(ratio >= TARGETS.throughput)}`,
      );
    }
    for (const [name, measure] of [
      ["validate", validatePaced],
      ["mutate", mutatePaced],
    ] as const) {
      console.log(
        `  ${name} p99 at half saturation, paced: ${measure.p99.toFixed(2)} ms (target < ${TARGETS.p99Ms} ms): ${verdict(measure.p99 < TARGETS.p99Ms)}`,
      );
    }
    console.log(
      "\ngarbage collection in each server over the whole run (pauses of its main thread)",
    );
    for (const [name, collections] of [
      ["bare fastify", bareCollections],
      ["lb-ip-guard", webhookCollections],
    ] as const) {
      if (collections === undefined) continue;
      const { minor, major } = collections;
      const mean = (kind: Pauses) => (kind.count > 0 ? kind.totalMs / kind.count : 0);
      console.log(
        `  ${name.padEnd(14)} ${String(minor.count).padStart(5)} scavenges (mean ${mean(minor).toFixed(2)} ms, max ${minor.maxMs.toFixed(2)} ms), ${major.count} full or incremental (mean ${mean(major).toFixed(2)} ms, max ${major.maxMs.toFixed(2)} ms)`,
      );
    }
    console.log(
      `\nload average at the end: ${loadavg()[0]?.toFixed(2)} (other work on the machine skews every figure)`,
    );
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}

if (process.argv[2] === "--serve") {
  await serveChild(process.argv[3] ?? "webhook", process.argv[4] ?? "");
} else if (import.meta.main) {
  await main();
}
