// One nemesis run (issue 26): three `lb-ip-guard serve` replicas sharing one certificate behind
// an endpoints proxy, MetalLB's real controller beside them, one pool of 48 addresses, clients
// storming it, and the nemesis freezing and killing replicas on a seeded schedule; then a calm
// (no faults, every replica thawed and running), the claim grace period, and the checks
// (checks.ts). The npm-test suite (test/e2e/nemesis.test.ts) and `npm run soak:chaos` run this.

import { writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type MetalLBVersion, metallbAssets } from "../../../scripts/metallb-assets.ts";
import {
  type ControlPlane,
  generateServingCertificate,
  metricSum,
  type ServingCertificate,
  startControlPlane,
} from "../harness.ts";
import { type AllocatorMode, allocatorHolder, type Replica, startReplica } from "../replicas.ts";
import {
  claimsAtEnd,
  type EndState,
  endState,
  type Failures,
  metallbFailures,
  type Overlap,
  poolsReport,
  replayOverlaps,
} from "./checks.ts";
import { type Load, runLoad } from "./clients.ts";
import { recordHistory } from "./history.ts";
import { kubeClient } from "./kube.ts";
import { type EndpointsProxy, startEndpointsProxy } from "./proxy.ts";
import { type Random, stream } from "./random.ts";
import { progressLine } from "./report.ts";
import { type Fault, type FaultKind, faultSchedule } from "./schedule.ts";

export interface ChaosOptions {
  seed: number;
  allocator: AllocatorMode;
  metallb: MetalLBVersion;
  stormMs: number;
  /** Concurrent clients (default 4). */
  clients?: number;
  /** A line of progress (setup steps, and with `progressEveryMs` the storm's figures). */
  log: (line: string) => void;
  progressEveryMs?: number;
}

export interface ChaosReport {
  options: Omit<ChaosOptions, "log">;
  load: Load;
  /** Faults carried out, by kind ("(no allocator: random)" when the Lease named no live replica). */
  faults: Map<string, number>;
  overlaps: Overlap[];
  end: EndState;
  failures: Failures;
  claims: { claims: number; leaked: string[] };
  pools: { held: number; problems: string[] };
  /** Why the history cannot be trusted, if it cannot. */
  historyBroken: string | undefined;
  /** Auto-assign Services admitted as they were (ClusterIP, no address): the mutation was skipped. */
  unmutatedAutoAssigns: number;
  wallMs: number;
  /** The history and the creates as JSON, for a look at a run after it. */
  historyFile: string;
}

const WEBHOOK_NAMESPACE = "lb-ip-guard";
const APPS = "chaos";
const REPLICAS = 3;
const GRACE_MS = 10_000;
const CALM_MS = 10_000;
/** 10.70.0.0-10.70.0.47: 48 addresses. */
const POOL_RANGE = "10.70.0.0-10.70.0.47";
const POOL = Array.from({ length: 48 }, (_, i) => `10.70.0.${i}`);
/**
 * The clients' bound in count beside the one in time: at most this many operations each per
 * second of storm and calm (they make about 15).
 */
const OPERATIONS_BOUND_PER_SECOND = 50;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const { log, seed, allocator } = options;
  const began = Date.now();
  const { crdDir } = await metallbAssets(options.metallb);
  const cp = await startControlPlane({
    // Room for the ClusterIPs of every Service live at once, deleted ones given back.
    serviceClusterIPRange: "10.0.0.0/20",
    ...(crdDir !== undefined && { crds: [crdDir] }),
  });
  const client = await kubeClient(cp.kubeconfigPath);
  let fleet: Fleet | undefined;
  let progress: NodeJS.Timeout | undefined;
  try {
    await setUpCluster(cp, options.metallb);
    const certificate = await generateServingCertificate();
    const current = await startFleet(cp, certificate, options, stream(seed, "proxy"));
    fleet = current;
    log(`${REPLICAS} replicas behind the proxy; starting MetalLB ${options.metallb}`);
    await cp.startMetalLB({ version: options.metallb });
    const history = await recordHistory(client, APPS);

    const started = Date.now();
    const storm = new AbortController();
    const load = new AbortController();
    const schedule = faultSchedule(seed, allocator, options.stormMs);
    const planned = schedule.map(
      (f) => `${f.kind}@${f.at / 1000}s${f.freezeMs ? `/${f.freezeMs / 1000}s` : ""}`,
    );
    log(
      `storm: ${options.stormMs / 1000} s, ${schedule.length} faults scheduled: ${planned.join(" ")}`,
    );
    const { load: loadResult, finished } = runLoad({
      client,
      history,
      seed,
      namespace: APPS,
      pool: POOL,
      clients: options.clients ?? 4,
      started,
      maxOperations: Math.ceil(((options.stormMs + CALM_MS) / 1000) * OPERATIONS_BOUND_PER_SECOND),
      signal: load.signal,
    });
    // Its error (a fresh replica that would not start) is thrown once the storm is over.
    const nemesis = runNemesis(
      current,
      schedule,
      started,
      storm.signal,
      stream(seed, "targets"),
    ).then(
      () => undefined,
      (err: unknown) => err,
    );
    progress =
      options.progressEveryMs === undefined
        ? undefined
        : setInterval(
            () =>
              log(
                progressLine(Date.now() - started, loadResult, current.faults, history.live.size),
              ),
            options.progressEveryMs,
          );
    await sleep(options.stormMs);
    storm.abort();
    const failed = await nemesis;
    if (failed !== undefined) throw failed;
    await current.heal();
    log(
      `calm: ${CALM_MS / 1000} s, every replica running (${current.replicas.map((r) => r.name).join(", ")})`,
    );
    await sleep(CALM_MS);
    load.abort();
    await finished;
    clearInterval(progress);
    log(`grace: ${GRACE_MS / 1000} s (and MetalLB catching up)`);
    // The claim interval (1 s) and a repair pass on top of the grace period.
    await sleep(GRACE_MS + 3000);
    const end = await endState(cp, APPS);
    await history.stop();
    const failures = await metallbFailures(cp, APPS, history.versions, end);
    const report: ChaosReport = {
      options: {
        seed,
        allocator,
        metallb: options.metallb,
        stormMs: options.stormMs,
        clients: options.clients ?? 4,
      },
      load: loadResult,
      faults: current.faults,
      overlaps: replayOverlaps(history.versions),
      end,
      failures,
      claims: await claimsAtEnd(cp, WEBHOOK_NAMESPACE),
      pools: await poolsReport(cp.kubeconfigPath, WEBHOOK_NAMESPACE, options.metallb),
      historyBroken: history.broken,
      unmutatedAutoAssigns: new Set(
        history.versions.filter((v) => v.autoAssign && v.type !== "LoadBalancer").map((v) => v.uid),
      ).size,
      wallMs: 0,
      historyFile: join(tmpdir(), `lb-ip-guard-nemesis-${allocator}-${seed}.json`),
    };
    await writeFile(
      report.historyFile,
      JSON.stringify({ versions: history.versions, creates: loadResult.creates }),
    );
    report.wallMs = Date.now() - began;
    return report;
  } finally {
    clearInterval(progress);
    client.close();
    await fleet?.stop();
    await cp.stop();
  }
}

async function setUpCluster(cp: ControlPlane, version: MetalLBVersion): Promise<void> {
  const namespaces = [WEBHOOK_NAMESPACE, "metallb-system", APPS].map((name) => ({
    apiVersion: "v1",
    kind: "Namespace",
    metadata: { name },
  }));
  // v0.11.0 reads the legacy ConfigMap; v0.16.2 IPAddressPools (with MetalLB's CRDs installed).
  const pool =
    version === "v0.11.0"
      ? {
          apiVersion: "v1",
          kind: "ConfigMap",
          metadata: { name: "config", namespace: "metallb-system" },
          data: {
            config: `address-pools:\n- name: chaos\n  protocol: layer2\n  addresses:\n  - ${POOL_RANGE}\n`,
          },
        }
      : {
          apiVersion: "metallb.io/v1beta1",
          kind: "IPAddressPool",
          metadata: { name: "chaos", namespace: "metallb-system" },
          spec: { addresses: [POOL_RANGE] },
        };
  for (const items of [namespaces, [pool]]) {
    await cp.kubectl(["apply", "-f", "-"], {
      stdin: JSON.stringify({ apiVersion: "v1", kind: "List", items }),
    });
  }
}

/** The replicas as the nemesis sees them: which run, which are frozen, and the proxy in front. */
interface Fleet {
  cp: ControlPlane;
  replicas: Replica[];
  frozen: Map<Replica, NodeJS.Timeout>;
  proxy: EndpointsProxy;
  faults: Map<string, number>;
  /** Each replica's admission requests at the last look (busiest). */
  answeredBefore: Map<Replica, number>;
  /** Replaces `replica` (killed) by a fresh one. */
  replace(replica: Replica): Promise<void>;
  /** Every replica thawed, and as many running as at the start. */
  heal(): Promise<void>;
  stop(): Promise<void>;
}

async function startFleet(
  cp: ControlPlane,
  certificate: ServingCertificate,
  options: ChaosOptions,
  proxyRandom: Random,
): Promise<Fleet> {
  let count = 0;
  const proxy = await startEndpointsProxy(proxyRandom);
  const start = async () => {
    const replica = await startReplica(cp, {
      name: `replica-${++count}`,
      namespace: WEBHOOK_NAMESPACE,
      certificate,
      allocator: options.allocator,
      grace: `${GRACE_MS / 1000}s`,
      args: [`--metallb-version=${options.metallb}`],
    });
    proxy.add(replica.name, {
      port: replica.port,
      readyUrl: replica.metricsUrl.replace(/\/metrics$/, "/readyz"),
    });
    return replica;
  };
  const fleet: Fleet = {
    cp,
    replicas: await Promise.all(Array.from({ length: REPLICAS }, start)),
    frozen: new Map(),
    proxy,
    faults: new Map(),
    answeredBefore: new Map(),
    async replace(replica) {
      clearTimeout(fleet.frozen.get(replica));
      fleet.frozen.delete(replica);
      fleet.replicas = fleet.replicas.filter((r) => r !== replica);
      await replica.kill();
      proxy.gone(replica.name);
      fleet.replicas.push(await start());
    },
    async heal() {
      for (const [replica, timer] of fleet.frozen) {
        clearTimeout(timer);
        replica.thaw();
      }
      fleet.frozen.clear();
      while (fleet.replicas.length < REPLICAS) fleet.replicas.push(await start());
    },
    async stop() {
      for (const timer of fleet.frozen.values()) clearTimeout(timer);
      await Promise.all(fleet.replicas.map((replica) => replica.kill()));
      await proxy.close();
    },
  };
  // The API server calls the proxy; it loads webhook configurations asynchronously, so a probe
  // (an address in no pool, refused NotInAnyPool) runs until the webhook's answer comes back.
  while (proxy.endpoints().length < REPLICAS) await sleep(100);
  await cp.registerWebhook(proxy.url, certificate.caPem);
  const probe = JSON.stringify({
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: "probe", namespace: APPS },
    spec: { type: "LoadBalancer", loadBalancerIP: "10.99.0.1", ports: [{ port: 80 }] },
  });
  for (let attempt = 0; ; attempt++) {
    const run = await cp.kubectl(["create", "--dry-run=server", "-f", "-"], {
      stdin: probe,
      allowFailure: true,
    });
    if (/NotInAnyPool/.test(run.stderr)) break;
    if (attempt === 100)
      throw new Error(`the API server does not call the replicas: ${run.stderr}`);
    await sleep(250);
  }
  return fleet;
}

/** Carries out `schedule` until it is done or `signal` aborts. */
async function runNemesis(
  fleet: Fleet,
  schedule: readonly Fault[],
  started: number,
  signal: AbortSignal,
  random: Random,
): Promise<void> {
  for (const fault of schedule) {
    const wait = started + fault.at - Date.now();
    if (wait > 0) await sleep(wait);
    if (signal.aborted) return;
    const done = await carryOut(fleet, fault, random);
    fleet.faults.set(done, (fleet.faults.get(done) ?? 0) + 1);
  }
}

/** One fault; resolves with the kind to count it under. */
async function carryOut(fleet: Fleet, fault: Fault, random: Random): Promise<string> {
  const { kind } = fault;
  if (kind === "kill-all") {
    await Promise.all(fleet.replicas.map((replica) => fleet.replace(replica)));
    return kind;
  }
  const { target, fallback } = await targetOf(fleet, kind, random);
  if (kind.startsWith("kill")) await fleet.replace(target);
  else if (fleet.frozen.has(target)) return `${kind} (already frozen)`;
  else {
    target.freeze();
    fleet.frozen.set(
      target,
      setTimeout(() => {
        fleet.frozen.delete(target);
        target.thaw();
      }, fault.freezeMs),
    );
  }
  return fallback ? `${kind} (no such replica: random)` : kind;
}

async function targetOf(
  fleet: Fleet,
  kind: Exclude<FaultKind, "kill-all">,
  random: Random,
): Promise<{ target: Replica; fallback: boolean }> {
  const any = random.pick(fleet.replicas);
  if (kind === "freeze-any" || kind === "kill-any") return { target: any, fallback: false };
  const holder = await allocatorHolder(fleet.cp, WEBHOOK_NAMESPACE);
  const allocator = fleet.replicas.find((r) => r.identity === holder);
  if (kind !== "freeze-lender-follower") {
    return allocator === undefined
      ? { target: any, fallback: true }
      : { target: allocator, fallback: false };
  }
  const followers = fleet.replicas.filter((r) => r !== allocator && !fleet.frozen.has(r));
  const lender = await busiest(fleet, followers);
  return lender === undefined
    ? { target: any, fallback: true }
    : { target: lender, fallback: false };
}

/**
 * The replica of `among` that answered the most admission requests since the last look: the one
 * most likely to hold loans right now, since a follower asks for one after each grant and a loan
 * lasts a second (no metric names the loans held).
 */
async function busiest(fleet: Fleet, among: readonly Replica[]): Promise<Replica | undefined> {
  let best: { replica: Replica; delta: number } | undefined;
  for (const replica of among) {
    const total = await metricSum(replica.metricsUrl, /^lb_ip_guard_admission_requests_total/);
    const delta = total - (fleet.answeredBefore.get(replica) ?? 0);
    fleet.answeredBefore.set(replica, total);
    if (best === undefined || delta > best.delta) best = { replica, delta };
  }
  return best?.replica;
}
