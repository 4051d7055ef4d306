// Two `lb-ip-guard serve` replicas against one real apiserver, sharing one serving certificate
// as a Deployment's pods share their Secret: one is elected allocator (the Lease
// lb-ip-guard-allocator) and grants; the other forwards its grants to it over the peer port
// (ADR 0012). The apiserver calls one URL: a TCP round-robin proxy (the harness's
// startRoundRobinProxy) that hands each new connection to the next live replica, TLS passing
// through untouched. Two entries per webhook configuration would make the apiserver call both
// replicas for every Service, which tests nothing about two requests racing; alternation by
// connection is what a Service in front of two pods does.
//
// Proof: 100 parallel `kubectl create` of one address → exactly one admitted; 50 parallel
// auto-assigns → 50 distinct addresses and 50 claims (written after the answers); the allocator
// SIGSTOPped under load → the other replica takes over, no duplicate, and once woken the old
// allocator grants nothing itself; the follower SIGKILLed during a load of auto-assigns → no
// duplicate among the Services, and no leaked claim once the grace period has passed. Also:
// adoption of a Service older than the webhook, collection of a claim whose holder never appeared.
// Then the same race with `--allocator claims` (ADR 0005: each replica claims before answering).

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { k8sAssets } from "../../scripts/k8s-assets.ts";
import { httpsCall } from "../server/helpers.ts";
import {
  type ControlPlane,
  describeE2E,
  generateServingCertificate,
  metricSum,
  type RoundRobinProxy,
  startControlPlane,
  startRoundRobinProxy,
} from "./harness.ts";
import {
  ALLOCATOR_LEASE,
  type AllocatorMode,
  allocatorHolder,
  type ClaimLease,
  claimLeases,
  type Replica,
  startReplica,
} from "./replicas.ts";

const NAMESPACE = "lb-ip-guard";
const APPS = "team-ha";
const GRACE = "10s";
const RACE_IP = "10.61.0.5";
/** kubectl processes creating Services at once while the allocator is lost. */
const HANDOVER_WORKERS = 2;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; annotations?: Record<string, string> };
  spec?: Record<string, unknown>;
}

const children = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});

/**
 * Two replicas sharing one certificate, as a Deployment's pods share their Secret, behind the
 * round-robin proxy the webhook configurations name; resolves once the apiserver calls them.
 */
async function startPair(
  cp: ControlPlane,
  names: readonly [string, string],
  allocator: AllocatorMode,
): Promise<{ replicas: Replica[]; proxy: RoundRobinProxy }> {
  const certificate = await generateServingCertificate();
  const replicas = await Promise.all(
    names.map((name) =>
      startReplica(cp, { name, namespace: NAMESPACE, certificate, allocator, grace: GRACE }),
    ),
  );
  const proxy = await startRoundRobinProxy(replicas.map((replica) => replica.port));
  await cp.registerWebhook(proxy.url, certificate.caPem);
  // The apiserver loads webhook configurations asynchronously: probe until our answer comes.
  const probe = JSON.stringify(explicit("probe", "10.99.0.1"));
  await eventually("the apiserver calling the replicas", async () => {
    const run = await cp.kubectl(["create", "--dry-run=server", "-f", "-"], {
      stdin: probe,
      allowFailure: true,
    });
    return /NotInAnyPool/.test(run.stderr) ? true : undefined;
  });
  return { replicas, proxy };
}

/**
 * An auto-assign review of a new Service, sent straight to `replica`'s /mutate with the
 * apiserver's client certificate; its answer, summed up.
 */
function askForGrant(cp: ControlPlane, replica: Replica, name: string, pool = "handover") {
  return askReplica(cp, replica, "mutate", name, autoAssigned(name, pool));
}

/** A CREATE review of `object`, sent straight to one of `replica`'s webhooks; its answer. */
async function askReplica(
  cp: ControlPlane,
  replica: Replica,
  webhook: "mutate" | "validate",
  name: string,
  object: Manifest,
): Promise<{
  allowed: boolean;
  patched: boolean;
  /** The address the patch writes, when it writes one. */
  address: string | undefined;
  decidedBy: string | undefined;
  message: string;
  summary: string;
}> {
  const review = {
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid: `ha-${name}`,
      kind: { group: "", version: "v1", kind: "Service" },
      resource: { group: "", version: "v1", resource: "services" },
      operation: "CREATE",
      namespace: APPS,
      name: object.metadata.name,
      object,
      dryRun: false,
    },
  };
  const answer = await httpsCall(`https://127.0.0.1:${replica.port}/${webhook}`, replica.caPem, {
    method: "POST",
    body: JSON.stringify(review),
    headers: { "content-type": "application/json" },
    client: cp.webhookClient,
  });
  const body = JSON.parse(answer.body) as {
    response?: { allowed?: boolean; patch?: string; status?: { message?: string } };
  };
  const response = body.response ?? {};
  const message = response.status?.message ?? "";
  const patched = response.allowed === true && typeof response.patch === "string";
  const line = await eventually(`${replica.name}'s log line of ${name}`, async () =>
    (await replica.records()).find((r) => r.msg === "admission review" && r.uid === `ha-${name}`),
  );
  const decidedBy = line.value.granted === true ? replica.identity : line.value.allocator;
  const written = Buffer.from(response.patch ?? "", "base64")
    .toString()
    .match(/\d+\.\d+\.\d+\.\d+/);
  return {
    allowed: response.allowed === true,
    patched,
    address: written?.[0],
    decidedBy: typeof decidedBy === "string" ? decidedBy : undefined,
    message,
    summary: `${name}: ${patched ? `granted by ${decidedBy}` : response.allowed ? "allowed unpatched" : message}`,
  };
}

interface CreateResult {
  readonly name: string;
  readonly code: number;
  readonly stderr: string;
}

/** CPU ticks (user + system) of a process, or undefined when it is gone. */
async function ticks(pid: number): Promise<number | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => undefined);
  if (stat === undefined) return undefined;
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

/**
 * `kubectl create -f -` for every manifest at once: the processes are started, left to settle
 * (no CPU used for 300 ms: all waiting for their input), then all get their manifest together,
 * so the requests reach the apiserver as close together as processes allow.
 */
async function createAll(
  cp: ControlPlane,
  kubectl: string,
  manifests: readonly Manifest[],
): Promise<CreateResult[] & { started: number }> {
  const runs = manifests.map((manifest) => {
    const { KUBECONFIG: _ignored, ...env } = process.env;
    const child = spawn(kubectl, [`--kubeconfig=${cp.kubeconfigPath}`, "create", "-f", "-"], {
      env: { ...env, KUBECACHEDIR: join(cp.dir, "kube-cache") },
      stdio: ["pipe", "ignore", "pipe"],
    });
    children.add(child);
    let stderr = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk;
    });
    const done = new Promise<CreateResult>((resolve) =>
      child.on("close", (code) => {
        children.delete(child);
        resolve({ name: manifest.metadata.name, code: code ?? 128, stderr });
      }),
    );
    return { child, manifest, done };
  });
  const settleDeadline = Date.now() + 30_000;
  let previous = "";
  for (;;) {
    await sleep(300);
    const now = (await Promise.all(runs.map(({ child }) => ticks(child.pid ?? 0)))).join(",");
    if ((now === previous && previous !== "") || Date.now() > settleDeadline) break;
    previous = now;
  }
  const started = Date.now();
  for (const { child, manifest } of runs) child.stdin?.end(JSON.stringify(manifest));
  return Object.assign(await Promise.all(runs.map(({ done }) => done)), { started });
}

function explicit(name: string, ip: string): Manifest {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace: APPS },
    spec: {
      type: "LoadBalancer",
      loadBalancerIP: ip,
      selector: { app: name },
      ports: [{ port: 80, protocol: "TCP" }],
    },
  };
}

function autoAssigned(name: string, pool = "auto"): Manifest {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: {
      name,
      namespace: APPS,
      annotations: { "lb-ip-guard.dev/auto-assign": "true", "metallb.io/address-pool": pool },
    },
    spec: { selector: { app: name }, ports: [{ port: 80, protocol: "TCP" }] },
  };
}

interface ServiceItem {
  metadata: { name: string; namespace: string; annotations?: Record<string, string> };
  spec: { loadBalancerIP?: string };
}

/** `namespace/name` → the address it holds (spec or annotation), for the Services of APPS. */
async function heldAddresses(cp: ControlPlane): Promise<Map<string, string>> {
  const { stdout } = await cp.kubectl(["get", "services", "-n", APPS, "-o", "json"]);
  const held = new Map<string, string>();
  for (const item of (JSON.parse(stdout) as { items: ServiceItem[] }).items) {
    const ip =
      item.spec.loadBalancerIP ?? item.metadata.annotations?.["metallb.io/loadBalancerIPs"] ?? "";
    if (ip !== "") held.set(`${item.metadata.namespace}/${item.metadata.name}`, ip);
  }
  return held;
}

const leaseOf = (ip: string) => `ip-${ip.replaceAll(".", "-")}`;

/** Claims not backed by a Service holding their address, and held addresses without a claim. */
function mismatch(
  held: Map<string, string>,
  leases: Map<string, ClaimLease>,
  others: ReadonlySet<string>,
): { leaked: string[]; unclaimed: string[] } {
  const leaked = [...leases]
    .filter(([name, { holder, address }]) => !others.has(name) && held.get(holder) !== address)
    .map(([name, { holder }]) => `${name} (${holder})`);
  const unclaimed = [...held]
    .filter(([ref, ip]) => leases.get(leaseOf(ip))?.holder !== ref)
    .map(([ref, ip]) => `${ref} ${ip}`);
  return { leaked, unclaimed };
}

/** Reviews a replica answered since `since` (ms epoch), their durations, and what it warned of. */
async function reviews(replica: Replica, since: number): Promise<string> {
  const durations: number[] = [];
  const problems = new Set<string>();
  let mostLost = 0;
  for (const line of await replica.records()) {
    const record = line as {
      level?: string;
      msg?: string;
      time?: string;
      durationMs?: number;
      lostClaims?: string[];
    };
    if (Date.parse(record.time ?? "") < since) continue;
    // Warnings and errors, once each: what a replica said about a call that failed.
    if (["warn", "error", "fatal"].includes(record.level ?? "")) problems.add(record.msg ?? "");
    if (record.msg !== "admission review") continue;
    durations.push(record.durationMs ?? 0);
    mostLost = Math.max(mostLost, record.lostClaims?.length ?? 0);
  }
  durations.sort((x, y) => x - y);
  const at = (q: number) =>
    durations[Math.min(durations.length - 1, Math.floor(q * durations.length))];
  const said = problems.size === 0 ? "" : `; warned: ${[...problems].join(" | ")}`;
  return `${replica.name}: ${durations.length} reviews, p50 ${at(0.5)} ms, max ${durations.at(-1)} ms, at most ${mostLost} claim(s) lost by one review${said}`;
}

async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<{ value: T; ms: number }> {
  const start = Date.now();
  for (;;) {
    const value = await probe();
    if (value !== undefined) return { value, ms: Date.now() - start };
    if (Date.now() - start > timeoutMs) assert.fail(`not within ${timeoutMs} ms: ${what}`);
    await sleep(250);
  }
}

await describeE2E("two replicas share address claims (Leases) through the real apiserver", () => {
  let cp: ControlPlane;
  let kubectl: string;
  let a: Replica;
  let b: Replica;
  let proxy: RoundRobinProxy;
  /** Claims made outside the tests' Services (adoption fixture). */
  const foreign = new Set<string>();

  before(async () => {
    // Room for the hand-over test's few hundred Services beside the others.
    cp = await startControlPlane({ serviceClusterIPRange: "10.0.0.0/20" });
    kubectl = join(await k8sAssets(), "kubectl");
    for (const namespace of [NAMESPACE, "metallb-system", APPS]) {
      await cp.kubectl(["create", "namespace", namespace]);
    }
    const pool = (name: string, addresses: string[]) => ({
      apiVersion: "metallb.io/v1beta1",
      kind: "IPAddressPool",
      metadata: { name, namespace: "metallb-system" },
      spec: { addresses, autoAssign: false },
    });
    // A Service from before the webhook (to be adopted), and a claim whose holder never came
    // (an admission another webhook refused): to be collected after the grace period.
    await cp.kubectl(["apply", "-f", "-"], {
      stdin: JSON.stringify({
        apiVersion: "v1",
        kind: "List",
        items: [
          pool("race", ["10.61.0.0/28"]),
          pool("auto", ["10.60.0.0/24"]),
          pool("handover", ["10.62.0.0/22"]),
          pool("lend", ["10.63.0.0/28"]),
          {
            ...explicit("legacy", "10.60.0.250"),
            metadata: { name: "legacy", namespace: "default" },
          },
          {
            apiVersion: "coordination.k8s.io/v1",
            kind: "Lease",
            metadata: {
              name: "ip-10-60-0-249",
              namespace: NAMESPACE,
              labels: { "app.kubernetes.io/managed-by": "lb-ip-guard" },
              annotations: {
                "lb-ip-guard.dev/address": "10.60.0.249",
                "lb-ip-guard.dev/holder": `${APPS}/never-created`,
                "lb-ip-guard.dev/pool": "auto",
              },
            },
            spec: { holderIdentity: `${APPS}/never-created` },
          },
        ],
      }),
    });
    let replicas: Replica[];
    ({ replicas, proxy } = await startPair(cp, ["replica-a", "replica-b"], "elected"));
    [a, b] = replicas as [Replica, Replica];
  });

  after(async () => {
    await Promise.all([a?.kill(), b?.kill()]);
    await proxy?.close();
    await cp?.stop();
  });

  it("adopts a Service older than the webhook, and collects a claim whose holder never appeared", async (t) => {
    const adopted = await eventually("a claim for default/legacy", async () => {
      const lease = (await claimLeases(cp, NAMESPACE)).get("ip-10-60-0-250");
      return lease?.holder === "default/legacy" ? lease : undefined;
    });
    foreign.add("ip-10-60-0-250");
    const collected = await eventually("the orphan claim collected", async () =>
      (await claimLeases(cp, NAMESPACE)).has("ip-10-60-0-249") ? undefined : true,
    );
    t.diagnostic(`adopted after ${adopted.ms} ms; orphan collected after ${collected.ms} ms`);
  });

  it("100 parallel creates of one address: exactly one admitted, one claim", async (t) => {
    const first = await createAll(
      cp,
      kubectl,
      Array.from({ length: 100 }, (_, i) => explicit(`race-${i}`, RACE_IP)),
    );
    const started = first.started;
    const seconds = (Date.now() - started) / 1000;
    // NotReady says "retry in a few seconds", and a client does: on a starved machine the
    // allocator may miss a renewal under the burst and refuse everything for a moment (the cost
    // ADR 0017 weighs). The race is over what the creates end with.
    let results: CreateResult[] = first;
    let retried = 0;
    for (let round = 0; round < 3; round++) {
      const again = results.filter((r) => /NotReady/.test(r.stderr));
      if (again.length === 0) break;
      retried += again.length;
      await sleep(3000);
      const names = new Set(again.map((r) => r.name));
      const rerun = await createAll(
        cp,
        kubectl,
        [...names].map((name) => explicit(name, RACE_IP)),
      );
      results = [...results.filter((r) => !names.has(r.name)), ...rerun];
    }
    const admitted = results.filter((result) => result.code === 0);
    const refused = results.filter((result) => result.code !== 0);
    const inUse = refused.filter((result) => /AddressInUse/.test(result.stderr));
    const lost =
      (await metricSum(a.metricsUrl, /^lb_ip_guard_claims_total\{result="lost"\}/)) +
      (await metricSum(b.metricsUrl, /^lb_ip_guard_claims_total\{result="lost"\}/));
    t.diagnostic(
      `100 creates of ${RACE_IP} in ${seconds.toFixed(1)} s: ${admitted.length} admitted, ${refused.length} refused (${inUse.length} AddressInUse), ${retried} retried after NotReady, ${lost} claim(s) lost at the arbiter; proxy connections a/b: ${proxy.served.join("/")}; ${await reviews(a, started)}; ${await reviews(b, started)}`,
    );
    assert.equal(admitted.length, 1, refused.map((r) => r.stderr).join("\n"));
    assert.equal(
      inUse.length,
      99,
      refused
        .filter((r) => !/AddressInUse/.test(r.stderr))
        .map((r) => r.stderr)
        .join("\n"),
    );
    const held = [...(await heldAddresses(cp))].filter(([, ip]) => ip === RACE_IP);
    assert.deepEqual(held, [[`${APPS}/${admitted[0]?.name}`, RACE_IP]]);
    const lease = await eventually("the winner's claim", async () => {
      const found = (await claimLeases(cp, NAMESPACE)).get(leaseOf(RACE_IP));
      return found?.holder === `${APPS}/${admitted[0]?.name}` ? found : undefined;
    });
    assert.equal(lease.value.address, RACE_IP);
  });

  it("50 parallel auto-assigns: 50 distinct addresses and 50 claims", async (t) => {
    const results = await createAll(
      cp,
      kubectl,
      Array.from({ length: 50 }, (_, i) => autoAssigned(`auto-${i}`)),
    );
    const started = results.started;
    const seconds = (Date.now() - started) / 1000;
    const refused = results.filter((result) => result.code !== 0);
    const held = [...(await heldAddresses(cp))].filter(([ref]) => ref.startsWith(`${APPS}/auto-`));
    const distinct = new Set(held.map(([, ip]) => ip));
    const lost =
      (await metricSum(a.metricsUrl, /^lb_ip_guard_claims_total\{result="lost"\}/)) +
      (await metricSum(b.metricsUrl, /^lb_ip_guard_claims_total\{result="lost"\}/));
    t.diagnostic(
      `50 auto-assigns in ${seconds.toFixed(1)} s: ${held.length} with an address, ${distinct.size} distinct, ${refused.length} refused; claims lost so far (both tests): ${lost}; ${await reviews(a, started)}; ${await reviews(b, started)}`,
    );
    assert.deepEqual(
      refused.map((r) => r.stderr),
      [],
    );
    assert.equal(held.length, 50);
    assert.equal(distinct.size, 50);
    const leases = await eventually("50 claims", async () => {
      const found = await claimLeases(cp, NAMESPACE);
      const matching = held.filter(([ref, ip]) => found.get(leaseOf(ip))?.holder === ref);
      return matching.length === 50 ? found : undefined;
    });
    assert.equal(
      [...leases.value.values()].filter(({ holder }) => holder.startsWith(`${APPS}/auto-`)).length,
      50,
    );
  });

  it("one grant, two replicas, exactly one Event on the Service: AddressAssigned or AddressGranted, naming the pool", async () => {
    await cp.kubectl(["create", "-f", "-"], {
      stdin: JSON.stringify({
        apiVersion: "v1",
        kind: "List",
        items: [autoAssigned("evented-auto"), explicit("evented-ip", "10.60.0.200")],
      }),
    });
    const eventsOf = async (name: string) => {
      const { stdout } = await cp.kubectl([
        "get",
        "events",
        "-n",
        APPS,
        "--field-selector",
        `involvedObject.kind=Service,involvedObject.name=${name}`,
        "-o",
        'jsonpath={range .items[*]}{.reason} {.message}{"\\n"}{end}',
      ]);
      return stdout.split("\n").filter((line) => line !== "");
    };
    const assigned = await eventually("the auto-assigned Service's Event", async () => {
      const found = await eventsOf("evented-auto");
      return found.length > 0 ? found : undefined;
    });
    await eventually("the granted Service's Event", async () =>
      (await eventsOf("evented-ip")).length > 0 ? true : undefined,
    );
    // Both replicas watched both Services appear; give a second writer time to show up.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    assert.deepEqual(await eventsOf("evented-auto"), assigned.value);
    assert.equal(assigned.value.length, 1);
    assert.match(
      assigned.value[0] ?? "",
      /^AddressAssigned lb-ip-guard assigned 10\.60\.0\.\d+ from pool "auto"$/,
    );
    assert.deepEqual(await eventsOf("evented-ip"), [
      'AddressGranted lb-ip-guard granted 10.60.0.200 from pool "auto"',
    ]);
  });

  it("loans (ADR 0015): the follower grants a lent address without asking; frozen, its loan is refused to others until it lapsed, and woken it spends nothing stale", async (t) => {
    const holder = await allocatorHolder(cp, NAMESPACE);
    const [leader, follower] = holder === a.identity ? [a, b] : [b, a];
    const followerIndex = follower === a ? 0 : 1;
    const forwardedTo = async (name: string) =>
      (await leader.records()).some(
        (r) => r.msg === "forwarded review decided" && r.uid === `ha-${name}`,
      );
    // Reviews sent straight to the follower, as the apiserver's connection to it would.
    const first = await askForGrant(cp, follower, "lend-0", "lend");
    assert.equal(first.address, "10.63.0.0", first.summary);
    assert.equal(await forwardedTo("lend-0"), true, "the first grant goes to the allocator");
    // The exchange after it (20 ms later) brought the next free address as a loan.
    await sleep(500);
    const second = await askForGrant(cp, follower, "lend-1", "lend");
    assert.equal(second.address, "10.63.0.1", second.summary);
    assert.equal(second.decidedBy, leader.identity, "the grant is the allocator's");
    await sleep(500);
    assert.equal(await forwardedTo("lend-1"), false, "granted by the follower without the hop");

    // Its next loan is 10.63.0.2. Frozen with it: the allocator cannot recall it. Asked
    // straight, as the apiserver's kept-alive connection to the allocator would.
    proxy.down.add(followerIndex);
    follower.freeze();
    t.after(() => {
      follower.thaw();
      proxy.down.delete(followerIndex);
    });
    const frozenAt = Date.now();
    const lent = explicit("lend-explicit", "10.63.0.2");
    const refused = await askReplica(cp, leader, "validate", "lend-explicit-0", lent);
    assert.equal(refused.allowed, false, refused.summary);
    assert.match(
      refused.message,
      /^NotReady: .*10\.63\.0\.2 lent to the replica at .*which did not answer a recall/,
    );
    // Admitted once the loan lapsed (LOAN_MS + LAPSED_LOAN_KEPT_MS, and the 2 s sweep).
    let tries = 0;
    const admitted = await eventually(
      "the lapsed loan's address admitted",
      async () => {
        tries += 1;
        const answer = await askReplica(cp, leader, "validate", `lend-explicit-${tries}`, lent);
        return answer.allowed ? answer : undefined;
      },
      30_000,
    );
    const lapsedAfter = Date.now() - frozenAt;
    follower.thaw();
    proxy.down.delete(followerIndex);
    await cp.kubectl(["create", "-f", "-"], { stdin: JSON.stringify(lent) });
    // Woken, its loans are past their time on its own clock: its next grant is not the address
    // now held, whether forwarded or from a loan lent after the wake.
    const woken = await askForGrant(cp, follower, "lend-2", "lend");
    await sleep(500);
    const wokenForwarded = await forwardedTo("lend-2");
    const held = await heldAddresses(cp);
    const byAddress = new Map<string, string[]>();
    for (const [ref, ip] of held) byAddress.set(ip, [...(byAddress.get(ip) ?? []), ref]);
    const duplicates = [...byAddress].filter(([, refs]) => refs.length > 1);
    t.diagnostic(
      `lend-0 ${first.summary} (forwarded); lend-1 ${second.summary} (not forwarded); ${follower.name} frozen holding 10.63.0.2: ${refused.summary}; admitted ${lapsedAfter} ms after the freeze (${admitted.ms} ms of retries); woken, lend-2 ${woken.summary} (forwarded: ${wokenForwarded}); duplicates: ${duplicates.length}`,
    );
    await cp.kubectl(["delete", "service", "-n", APPS, "lend-explicit"]);
    assert.equal(held.get(`${APPS}/lend-explicit`), "10.63.0.2");
    assert.equal(woken.allowed, true, woken.summary);
    assert.notEqual(woken.address, "10.63.0.2");
    assert.deepEqual(duplicates, []);
  });

  it("the allocator frozen under load: the other replica takes over, no duplicate, and the woken one grants nothing itself", async (t) => {
    const holder = await allocatorHolder(cp, NAMESPACE);
    const [leader, follower] = holder === a.identity ? [a, b] : [b, a];
    assert.equal(leader.identity, holder, `the Lease names ${holder}, neither replica`);
    const leaderIndex = leader === a ? 0 : 1;
    const results: (CreateResult & { at: number })[] = [];
    const started = Date.now();
    let stop = false;
    let next = 0;
    const worker = async () => {
      while (!stop) {
        const name = `handover-${next++}`;
        const run = await cp.kubectl(["create", "-f", "-"], {
          stdin: JSON.stringify(autoAssigned(name, "handover")),
          allowFailure: true,
        });
        results.push({ name, code: run.code, stderr: run.stderr, at: Date.now() });
      }
    };
    const load = Promise.all(Array.from({ length: HANDOVER_WORKERS }, worker));
    // Stopped even when an assertion fails first: the workers would create Services forever.
    t.after(() => {
      stop = true;
      return load;
    });
    await sleep(2000);
    // Frozen as a stalled pod is; new connections avoid it, as an endpoint whose readiness
    // fails does. Its open connections hang until the apiserver's timeout.
    proxy.down.add(leaderIndex);
    leader.freeze();
    const frozenAt = Date.now();
    const takeover = await eventually(
      `${follower.name} elected allocator`,
      async () => (await follower.records()).find((r) => r.msg === "allocator: granting addresses"),
      40_000,
    );
    await sleep(3000);
    leader.thaw();
    const wokeAt = Date.now();
    proxy.down.delete(leaderIndex);
    await sleep(6000);
    // The woken replica, asked directly as the apiserver would: at once (its renew deadline
    // long past), and after its next election round (the Lease read: a follower now).
    const asked = [await askForGrant(cp, leader, "woken-at-once")];
    await sleep(2500);
    asked.push(await askForGrant(cp, leader, "woken-later"));
    stop = true;
    await load;

    const held = await heldAddresses(cp);
    const byAddress = new Map<string, string[]>();
    for (const [ref, ip] of held) byAddress.set(ip, [...(byAddress.get(ip) ?? []), ref]);
    const duplicates = [...byAddress].filter(([, refs]) => refs.length > 1);
    const grantedAfter = (records: Record<string, unknown>[], since: number) =>
      records.filter((r) => r.granted === true && Date.parse(String(r.time)) >= since);
    // Lines of reviews answered before the freeze may be written just after the wake.
    const oldLeader = await leader.records();
    const wokenGrants = grantedAfter(oldLeader, wokeAt + 1000);
    const forwardedByWoken = oldLeader.filter(
      (r) => r.allocator === follower.identity && Date.parse(String(r.time)) >= wokeAt,
    );
    await cp.kubectl(["delete", "services", "-n", APPS, ...results.map((r) => r.name)], {
      allowFailure: true,
    });
    const newGrants = grantedAfter(await follower.records(), frozenAt);
    const refused = results.filter((r) => r.code !== 0);
    const admittedAfterWake = results.filter((r) => r.code === 0 && r.at > wokeAt).length;
    t.diagnostic(
      `${results.length} auto-assigns, ${HANDOVER_WORKERS} at a time; ${leader.name} (allocator) SIGSTOPped ${frozenAt - started} ms in; ${follower.name} granting ${takeover.ms} ms later; SIGCONT 3 s after that; ${results.length - refused.length} admitted (${admittedAfterWake} after the wake), ${refused.length} refused; ${newGrants.length} grants by ${follower.name} since the freeze; ${leader.name} after waking: ${wokenGrants.length} grants of its own, ${forwardedByWoken.length} reviews forwarded to ${follower.name}, asked directly: ${asked.map((answer) => answer.summary).join("; ")}; duplicates: ${duplicates.length}`,
    );
    assert.deepEqual(duplicates, []);
    assert.equal(await allocatorHolder(cp, NAMESPACE), follower.identity);
    assert.ok(newGrants.length > 0, `${follower.name} granted nothing after taking over`);
    assert.deepEqual(
      wokenGrants.map((r) => `${r.name} at ${r.time}`),
      [],
      "the woken allocator granted on its own",
    );
    assert.ok(forwardedByWoken.length > 0, `${leader.name} forwarded nothing after waking`);
    // Refused NotReady, or granted by the new allocator: never by the woken one itself.
    for (const answer of asked) {
      if (answer.allowed) assert.equal(answer.decidedBy, follower.identity, answer.summary);
      else assert.match(answer.message, /NotReady/, answer.summary);
    }
    assert.equal(asked[1]?.patched, true, `after its round: ${asked[1]?.summary}`);
    assert.ok(admittedAfterWake > 0, "nothing admitted after the wake");
    for (const failure of refused) {
      assert.match(failure.stderr, /failed calling webhook|NotReady|context deadline exceeded/);
    }
  });

  it("the follower frozen and SIGKILLed during a load of auto-assigns: no duplicate, no leaked claim after the grace period", async (t) => {
    // The follower: the allocator's own loss is the test above.
    const victim = (await allocatorHolder(cp, NAMESPACE)) === a.identity ? b : a;
    const victimIndex = victim === a ? 0 : 1;
    const total = 60;
    const concurrency = 10;
    const results: CreateResult[] = [];
    let killedAt: number | undefined;
    const started = Date.now();
    let nextIndex = 0;
    const worker = async () => {
      for (let i = nextIndex++; i < total; i = nextIndex++) {
        const run = await cp.kubectl(["create", "-f", "-"], {
          stdin: JSON.stringify(autoAssigned(`load-${i}`)),
          allowFailure: true,
        });
        results.push({ name: `load-${i}`, code: run.code, stderr: run.stderr });
        if (results.length === 20 && killedAt === undefined) {
          // Frozen first, wherever its requests are (claims made, answers not sent: the
          // apiserver times out, the mutation fails open), then killed: what it claimed for
          // admissions that never completed must not outlive the grace period.
          killedAt = Date.now() - started;
          proxy.down.add(victimIndex); // new connections avoid it; the open ones hang, then die with it
          victim.freeze();
          setTimeout(() => void victim.kill(), 2000);
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    const loadSeconds = (Date.now() - started) / 1000;

    const held = await heldAddresses(cp);
    const loadHeld = [...held].filter(([ref]) => ref.startsWith(`${APPS}/load-`));
    const byAddress = new Map<string, string[]>();
    for (const [ref, ip] of held) byAddress.set(ip, [...(byAddress.get(ip) ?? []), ref]);
    const duplicates = [...byAddress].filter(([, refs]) => refs.length > 1);
    const admitted = results.filter((result) => result.code === 0).length;
    const refused = results.filter((result) => result.code !== 0);
    const atEnd = mismatch(held, await claimLeases(cp, NAMESPACE), foreign);
    const leakedAtEnd = atEnd.leaked.length;

    const converged = await eventually(
      "claims == held addresses",
      async () => {
        const now = mismatch(await heldAddresses(cp), await claimLeases(cp, NAMESPACE), foreign);
        return now.leaked.length === 0 && now.unclaimed.length === 0 ? now : undefined;
      },
      30_000,
    );
    t.diagnostic(
      `${total} auto-assigns, ${concurrency} at a time, ${victim.name} SIGSTOPped after 20 answers (${killedAt} ms) and SIGKILLed 2 s later: ${loadSeconds.toFixed(1)} s; ${admitted} admitted (${loadHeld.length} with an address, ${admitted - loadHeld.length} unmutated while the mutating call failed), ${refused.length} refused; duplicates: ${duplicates.length}; claims without a holder right after the load: ${leakedAtEnd}${leakedAtEnd > 0 ? ` [${atEnd.leaked.join(", ")}]` : ""}, held addresses without a claim: ${atEnd.unclaimed.length}${atEnd.unclaimed.length > 0 ? ` [${atEnd.unclaimed.join(", ")}]` : ""}; ${converged.ms} ms later both 0 (grace ${GRACE})`,
    );
    for (const failure of refused) {
      assert.match(failure.stderr, /failed calling webhook|AddressInUse|PoolExhausted|NotReady/);
    }
    assert.deepEqual(duplicates, []);
    assert.ok(loadHeld.length >= 40, `only ${loadHeld.length} of ${total} got an address`);
  });
});

await describeE2E("two replicas with --allocator claims: each claims before it answers", () => {
  let cp: ControlPlane;
  let kubectl: string;
  let replicas: Replica[] = [];
  let proxy: RoundRobinProxy;

  before(async () => {
    cp = await startControlPlane();
    kubectl = join(await k8sAssets(), "kubectl");
    for (const namespace of [NAMESPACE, "metallb-system", APPS]) {
      await cp.kubectl(["create", "namespace", namespace]);
    }
    await cp.kubectl(["apply", "-f", "-"], {
      stdin: JSON.stringify({
        apiVersion: "metallb.io/v1beta1",
        kind: "IPAddressPool",
        metadata: { name: "race", namespace: "metallb-system" },
        spec: { addresses: ["10.61.0.0/28"], autoAssign: false },
      }),
    });
    ({ replicas, proxy } = await startPair(cp, ["claims-a", "claims-b"], "claims"));
  });

  after(async () => {
    await Promise.all(replicas.map((replica) => replica.kill()));
    await proxy?.close();
    await cp?.stop();
  });

  it("30 parallel creates of one address: exactly one admitted, its claim there when the create returns, no election", async (t) => {
    const results = await createAll(
      cp,
      kubectl,
      Array.from({ length: 30 }, (_, i) => explicit(`claims-race-${i}`, RACE_IP)),
    );
    const admitted = results.filter((result) => result.code === 0);
    const refused = results.filter((result) => result.code !== 0);
    // Read at once: with claims before the answer, the winner's claim exists before its create
    // could return (the elected allocator writes none for a Service that appeared).
    const leases = await claimLeases(cp, NAMESPACE);
    const lost = (
      await Promise.all(
        replicas.map((replica) =>
          metricSum(replica.metricsUrl, /^lb_ip_guard_claims_total\{result="lost"\}/),
        ),
      )
    ).reduce((sum, each) => sum + each, 0);
    t.diagnostic(
      `30 creates of ${RACE_IP}: ${admitted.length} admitted, ${refused.length} refused; proxy connections ${proxy.served.join("/")}; claims lost at the arbiter: ${lost}`,
    );
    assert.equal(admitted.length, 1, refused.map((r) => r.stderr).join("\n"));
    for (const failure of refused) assert.match(failure.stderr, /AddressInUse/);
    assert.equal(leases.get(leaseOf(RACE_IP))?.holder, `${APPS}/${admitted[0]?.name}`);
    const election = await cp.kubectl(["get", "lease", ALLOCATOR_LEASE, "-n", NAMESPACE], {
      allowFailure: true,
    });
    assert.match(election.stderr, /NotFound/, "no election in claims mode");
  });
});
