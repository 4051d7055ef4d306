/**
 * Issue 24: what `check --cluster`, `pools --cluster` and `serve` cost on a big cluster. For each
 * N, a fresh e2e control plane (real etcd and kube-apiserver, test/e2e/harness.ts) with one /16
 * pool, 50 namespaces and N LoadBalancer Services, each asking for its own address with
 * `metallb.io/loadBalancerIPs`, two ports, a few labels and annotations, created by parallel
 * POSTs over keep-alive connections. Then:
 *   - `check --cluster --format json`, `pools --cluster` in each format, and `check` offline on
 *     the same Services written as files (one per namespace, --pools FILE): wall time, CPU time
 *     and maximum RSS (the child's getrusage), for this checkout and for a baseline revision
 *     exported beside it (default: where this branch left main; up to 10,000 Services), median
 *     of the rounds, the order alternating by round, and the ratio to the baseline;
 *   - `serve`, of this checkout and of the baseline (up to 10,000 Services), in turn on the same
 *     cluster: time from start to /readyz, RSS once ready and its peak after the reviews (/proc
 *     VmRSS, VmHWM), and the latency of dry-run Service creates through the API server with it
 *     registered, p50 (p99), median of the rounds;
 *   - MetalLB v0.16.2's controller on the same cluster, its peak RSS once it reports its first
 *     reload plus 20 s, or after its 90 s of waiting: the anchor.
 *
 *   npm run bench:scale                         (N = 1,000 and 10,000)
 *   npm run bench:scale -- --50k                (and 50,000)
 *   npm run bench:scale -- --services 2000 --rounds 1 --baseline REVISION --no-metallb
 *
 * The targets at 10,000 (check and pools under 3 s and 300 MB, serve under 200 MiB) and at
 * 50,000 (the command line under 1 GB) are printed ok/MISSED, with the cost per Service from the
 * smallest N to the largest (the slope). A missed target still exits 0; a broken run exits 1.
 */

import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { stringify } from "yaml";
import { metallbAssets } from "../scripts/metallb-assets.ts";
import { type ControlPlane, e2eSkipReason, startControlPlane } from "../test/e2e/harness.ts";
import { ApiClient, adminUser } from "./api-client.ts";
import { exportBaseline, median, root, runCli, type Sample } from "./child-runs.ts";

const { values } = parseArgs({
  options: {
    services: { type: "string" },
    "50k": { type: "boolean" },
    rounds: { type: "string" },
    baseline: { type: "string" },
    "no-metallb": { type: "boolean" },
  },
});
const SIZES = [
  ...(values.services ?? "1000,10000").split(",").map(Number),
  ...(values["50k"] ? [50_000] : []),
];
const ROUNDS = Number(values.rounds ?? 3);
if (SIZES.some((n) => !Number.isInteger(n) || n < 100 || n > 60_000) || !(ROUNDS >= 1)) {
  console.error("bench:scale: --services N,N... from 100 to 60000; --rounds at least 1");
  process.exit(2);
}
const RELEASE = "v0.16.2";
const NAMESPACES = 50;
const POOL = "10.200.0.0/16";
const REVIEWS = 200;
const BASELINE_UP_TO = 10_000;
const TARGETS = { seconds: 3, mb: 300, serveMiB: 200, mbAt50k: 1000 };

/** The n-th Service's address: 10.200.0.0 up, one each. */
const address = (n: number) => `10.200.${n >> 8}.${n & 255}`;

function serviceObject(n: number): Record<string, unknown> {
  const name = `svc-${n}`;
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: {
      name,
      namespace: `team-${n % NAMESPACES}`,
      labels: { app: name, tier: "web", "app.kubernetes.io/part-of": "bench" },
      annotations: {
        "metallb.io/loadBalancerIPs": address(n),
        "example.com/owner": `team-${n % NAMESPACES}`,
      },
    },
    spec: {
      type: "LoadBalancer",
      // No NodePorts: the default range (2,768 ports) would not hold two for each of 10,000.
      allocateLoadBalancerNodePorts: false,
      selector: { app: name },
      ports: [
        { name: "http", protocol: "TCP", port: 80, targetPort: 8080 },
        { name: "https", protocol: "TCP", port: 443, targetPort: 8443 },
      ],
    },
  };
}

const poolObject = {
  apiVersion: "metallb.io/v1beta1",
  kind: "IPAddressPool",
  metadata: { name: "bench", namespace: "metallb-system" },
  spec: { addresses: [POOL] },
};

async function createServices(api: ApiClient, count: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    for (let n = next++; n < count; n = next++) {
      const object = serviceObject(n);
      const namespace = (object.metadata as { namespace: string }).namespace;
      const answer = await api.send("POST", `/api/v1/namespaces/${namespace}/services`, object);
      if (answer.status !== 201)
        throw new Error(`create svc-${n}: ${answer.status} ${answer.text}`);
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
}

/** VmRSS and VmHWM of a process, in MiB. */
async function memoryOf(pid: number): Promise<{ rss: number; peak: number }> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { rss: kib("VmRSS") / 1024, peak: kib("VmHWM") / 1024 };
}

function percentile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
}

interface ServeFigures {
  readonly readySeconds: number;
  readonly readyMiB: number;
  readonly peakMiB: number;
  readonly p50: number;
  readonly p99: number;
}

async function measureServe(cp: ControlPlane, api: ApiClient, count: number, checkout: string) {
  const started = performance.now();
  const webhook = await cp.startWebhook({ args: [`--metallb-version=${RELEASE}`], checkout });
  const readySeconds = (performance.now() - started) / 1000;
  const ready = await memoryOf(webhook.pid);
  await webhook.register();
  const latencies: number[] = [];
  for (let i = 0; i < REVIEWS; i += 1) {
    // A free address of the pool, above the N taken ones: granted, nothing written (dry run).
    const object = serviceObject(count + 1 + i);
    const answer = await api.send("POST", "/api/v1/namespaces/team-0/services?dryRun=All", {
      ...object,
      metadata: { ...(object.metadata as object), name: `dry-${i}`, namespace: "team-0" },
    });
    if (answer.status !== 201) throw new Error(`dry-run create: ${answer.status} ${answer.text}`);
    latencies.push(answer.ms);
  }
  const after = await memoryOf(webhook.pid);
  await webhook.stop();
  latencies.sort((a, b) => a - b);
  return {
    readySeconds,
    readyMiB: ready.rss,
    peakMiB: after.peak,
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
  } satisfies ServeFigures;
}

/** MetalLB's controller peak RSS (MiB), and whether it reported its reload within 90 s. */
async function measureMetalLB(cp: ControlPlane): Promise<{ peakMiB: number; ready: boolean }> {
  const started = cp.startMetalLB({ version: RELEASE });
  // The harness writes each process's pid to `pgids` as it starts it: the controller is the last.
  let pid = 0;
  while (pid === 0) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    const pids = (await readFile(join(cp.dir, "pgids"), "utf8")).trim().split("\n");
    const last = Number(pids.at(-1));
    // Until then the last is the webhook, stopped and gone.
    const command = await readFile(`/proc/${last}/cmdline`, "utf8").catch(() => "");
    if (command.includes("metallb")) {
      pid = last;
    }
  }
  let peak = 0;
  const sample = async () => {
    peak = Math.max(peak, (await memoryOf(pid).catch(() => ({ peak: 0 }))).peak);
  };
  const timer = setInterval(sample, 500);
  const ready = await started.then(
    async (metallb) => {
      await new Promise((resolve) => setTimeout(resolve, 20_000));
      await sample();
      await metallb.stop();
      return true;
    },
    () => false,
  );
  clearInterval(timer);
  return { peakMiB: peak, ready };
}

const CLI_RUNS = {
  "check --cluster json": (kubeconfig: string) => [
    "check",
    "--cluster",
    `--kubeconfig=${kubeconfig}`,
    "--format=json",
  ],
  "pools --cluster text": (kubeconfig: string) => poolsArgs(kubeconfig, "text"),
  "pools --cluster json": (kubeconfig: string) => poolsArgs(kubeconfig, "json"),
  "pools --cluster html": (kubeconfig: string) => poolsArgs(kubeconfig, "html"),
  "check offline json": (_kubeconfig: string, files?: string) => [
    "check",
    join(files ?? "", "services"),
    `--pools=${join(files ?? "", "pools.yaml")}`,
    "--format=json",
  ],
} as const;
type CliRun = keyof typeof CLI_RUNS;

function poolsArgs(kubeconfig: string, format: string): string[] {
  return ["pools", "--cluster", `--kubeconfig=${kubeconfig}`, `--format=${format}`];
}

interface SizeFigures {
  readonly cli: Map<string, { current: Sample; baseline: Sample | undefined }>;
  readonly serve: { current: ServeFigures; baseline: ServeFigures | undefined };
  readonly metallb: { peakMiB: number; ready: boolean } | undefined;
}

async function measureSize(count: number, baseline: string, dir: string): Promise<SizeFigures> {
  const { crdDir } = await metallbAssets(RELEASE);
  const cp = await startControlPlane({
    // A ClusterIP for each of 50,000 Services (kubeadm's default range).
    serviceClusterIPRange: "10.96.0.0/12",
    ...(crdDir !== undefined && { crds: [crdDir] }),
  });
  const api = new ApiClient(cp, await adminUser(cp), 16);
  try {
    const namespaces = [
      "metallb-system",
      ...Array.from({ length: NAMESPACES }, (_, i) => `team-${i}`),
    ];
    const items = [
      ...namespaces.map((name) => ({ apiVersion: "v1", kind: "Namespace", metadata: { name } })),
      poolObject,
    ];
    await cp.kubectl(["apply", "-f", "-"], {
      stdin: JSON.stringify({ apiVersion: "v1", kind: "List", items }),
    });
    const creating = performance.now();
    await createServices(api, count);
    console.log(
      `N=${count}: ${count} Services created in ${((performance.now() - creating) / 1000).toFixed(1)} s`,
    );
    const files = join(dir, `files-${count}`);
    await mkdir(join(files, "services"), { recursive: true });
    await writeFile(join(files, "pools.yaml"), stringify(poolObject));
    for (let ns = 0; ns < NAMESPACES; ns += 1) {
      const documents: string[] = [];
      for (let n = ns; n < count; n += NAMESPACES) documents.push(stringify(serviceObject(n)));
      await writeFile(join(files, "services", `team-${ns}.yaml`), documents.join("---\n"));
    }

    const samples = new Map<string, { current: Sample[]; baseline: Sample[] }>();
    // Above 10,000 the baseline of issue 24 would need several GB (120 KB per Service).
    const sides =
      count > BASELINE_UP_TO
        ? ([["current", root]] as const)
        : ([
            ["current", root],
            ["baseline", baseline],
          ] as const);
    for (let round = 0; round < ROUNDS; round += 1) {
      for (const [name, build] of Object.entries(CLI_RUNS) as [
        CliRun,
        (typeof CLI_RUNS)[CliRun],
      ][]) {
        const entry = samples.get(name) ?? { current: [], baseline: [] };
        samples.set(name, entry);
        for (const [side, checkout] of round % 2 === 0 ? sides : [...sides].reverse()) {
          // pools exits 1 when it finds a problem; check's Services are all admitted (0).
          const sample = await runCli(checkout, build(cp.kubeconfigPath, files), {
            cwd: dir,
            codes: [0, 1],
          });
          entry[side].push(sample);
          console.log(
            `N=${count} round ${round + 1} ${side.padEnd(8)} ${name.padEnd(22)} ${sample.seconds.toFixed(2)} s, CPU ${sample.cpuSeconds.toFixed(2)} s, ${sample.maxRssMB.toFixed(0)} MB`,
          );
        }
      }
    }
    const medianOf = (list: readonly Sample[]): Sample => ({
      seconds: median(list.map((s) => s.seconds)),
      cpuSeconds: median(list.map((s) => s.cpuSeconds)),
      maxRssMB: median(list.map((s) => s.maxRssMB)),
    });
    const cli = new Map(
      [...samples].map(([name, entry]) => [
        name,
        {
          current: medianOf(entry.current),
          baseline: entry.baseline.length === 0 ? undefined : medianOf(entry.baseline),
        },
      ]),
    );
    const served: Record<(typeof sides)[number][0], ServeFigures[]> = { current: [], baseline: [] };
    for (let round = 0; round < ROUNDS; round += 1) {
      for (const [side, checkout] of round % 2 === 0 ? sides : [...sides].reverse()) {
        const figures = await measureServe(cp, api, count, checkout);
        served[side].push(figures);
        console.log(
          `N=${count} round ${round + 1} ${side.padEnd(8)} serve: ready in ${figures.readySeconds.toFixed(2)} s, ${figures.readyMiB.toFixed(0)} / ${figures.peakMiB.toFixed(0)} MiB`,
        );
      }
    }
    const serveMedian = (list: readonly ServeFigures[]): ServeFigures | undefined =>
      list.length === 0
        ? undefined
        : {
            readySeconds: median(list.map((f) => f.readySeconds)),
            readyMiB: median(list.map((f) => f.readyMiB)),
            peakMiB: median(list.map((f) => f.peakMiB)),
            p50: median(list.map((f) => f.p50)),
            p99: median(list.map((f) => f.p99)),
          };
    const serve = {
      current: serveMedian(served.current) as ServeFigures,
      baseline: serveMedian(served.baseline),
    };
    const metallb = values["no-metallb"] ? undefined : await measureMetalLB(cp);
    return { cli, serve, metallb };
  } finally {
    api.close();
    await cp.stop();
  }
}

function report(figures: Map<number, SizeFigures>, revision: string): void {
  console.log(
    `\nbench:scale, ${ROUNDS} round(s), medians; baseline ${revision.slice(0, 12)} in brackets, ratio current/baseline`,
  );
  console.log(
    "| N | run | time (s) | CPU (s) | max RSS (MB) | baseline time, RSS | ratio time, RSS |",
  );
  console.log("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
  for (const [count, size] of figures) {
    for (const [name, { current, baseline }] of size.cli) {
      const against =
        baseline === undefined
          ? "not run | -"
          : `${baseline.seconds.toFixed(2)}, ${baseline.maxRssMB.toFixed(0)} | ${(current.seconds / baseline.seconds).toFixed(2)}, ${(current.maxRssMB / baseline.maxRssMB).toFixed(2)}`;
      console.log(
        `| ${count} | ${name} | ${current.seconds.toFixed(2)} | ${current.cpuSeconds.toFixed(2)} | ${current.maxRssMB.toFixed(0)} | ${against} |`,
      );
    }
  }
  console.log(
    "\n| N | serve | ready (s) | RSS ready / peak (MiB) | peak ratio current/baseline | dry-run create p50 (p99) ms | MetalLB controller peak (MiB) |",
  );
  console.log("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
  for (const [count, { serve, metallb }] of figures) {
    const anchor =
      metallb === undefined
        ? "not run"
        : `${metallb.peakMiB.toFixed(0)}${metallb.ready ? "" : " (no first reload in 90 s)"}`;
    const { current, baseline } = serve;
    const ratio = baseline === undefined ? "-" : (current.peakMiB / baseline.peakMiB).toFixed(2);
    for (const [side, each] of [
      ["current", current],
      ["baseline", baseline],
    ] as const) {
      if (each === undefined) continue;
      console.log(
        `| ${count} | ${side} | ${each.readySeconds.toFixed(2)} | ${each.readyMiB.toFixed(0)} / ${each.peakMiB.toFixed(0)} | ${side === "current" ? ratio : ""} | ${each.p50.toFixed(2)} (${each.p99.toFixed(2)}) | ${side === "current" ? anchor : ""} |`,
      );
    }
  }

  const sizes = [...figures.keys()];
  const smallest = sizes[0] ?? 0;
  const largest = sizes.at(-1) ?? 0;
  if (largest > smallest) {
    console.log(`\nCost per Service from ${smallest} to ${largest} (the slope, current):`);
    for (const name of Object.keys(CLI_RUNS)) {
      const low = figures.get(smallest)?.cli.get(name)?.current;
      const high = figures.get(largest)?.cli.get(name)?.current;
      if (low === undefined || high === undefined) continue;
      const per = (a: number, b: number) => (b - a) / (largest - smallest);
      // CPU time: on a shared machine the wall time's slope is mostly the neighbours'.
      console.log(
        `  ${name.padEnd(22)} ${(per(low.cpuSeconds, high.cpuSeconds) * 1e6).toFixed(0)} µs of CPU (${(per(low.seconds, high.seconds) * 1e6).toFixed(0)} µs of wall time) and ${(per(low.maxRssMB, high.maxRssMB) * 1e3).toFixed(1)} KB of peak RSS per Service`,
      );
    }
  }

  console.log("\nTargets:");
  const verdict = (ok: boolean) => (ok ? "ok" : "MISSED");
  for (const [count, size] of figures) {
    for (const [name, { current }] of size.cli) {
      if (count === 10_000 && name.includes("--cluster")) {
        console.log(
          `  N=10000 ${name}: ${current.seconds.toFixed(2)} s < ${TARGETS.seconds} s ${verdict(current.seconds < TARGETS.seconds)}, ${current.maxRssMB.toFixed(0)} MB < ${TARGETS.mb} MB ${verdict(current.maxRssMB < TARGETS.mb)}`,
        );
      }
      if (count === 50_000) {
        console.log(
          `  N=50000 ${name}: ${current.maxRssMB.toFixed(0)} MB < ${TARGETS.mbAt50k} MB ${verdict(current.maxRssMB < TARGETS.mbAt50k)}`,
        );
      }
    }
    if (count === 10_000) {
      console.log(
        `  N=10000 serve: ${size.serve.current.peakMiB.toFixed(0)} MiB < ${TARGETS.serveMiB} MiB ${verdict(size.serve.current.peakMiB < TARGETS.serveMiB)}`,
      );
    }
  }
}

async function main(): Promise<void> {
  const skip = await e2eSkipReason({ metallb: [RELEASE] });
  if (skip) {
    console.error(`bench:scale: ${skip}`);
    process.exit(1);
  }
  const dir = await mkdtemp(join(tmpdir(), "lb-ip-guard-bench-scale-"));
  try {
    const baseline = join(dir, "baseline");
    const revision = await exportBaseline(baseline, values.baseline);
    const figures = new Map<number, SizeFigures>();
    for (const count of SIZES) figures.set(count, await measureSize(count, baseline, dir));
    report(figures, revision);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
