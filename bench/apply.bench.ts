/**
 * What a user feels: Service CREATE latency on the e2e control plane (real etcd and
 * kube-apiserver, test/e2e/harness.ts), with lb-ip-guard in cluster mode (the elected allocator,
 * ADR 0012, or with LB_IP_GUARD_BENCH_ALLOCATOR=claims the default, claims before the answer,
 * ADR 0005 and 0017), beside a CEL ValidatingAdmissionPolicy and a create no admission touches.
 *
 *   npm run bench:apply           (LB_IP_GUARD_BENCH_CREATES=300 for more creates per mode)
 *
 * One keep-alive HTTPS connection to the apiserver (the harness's admin client certificate),
 * creates sent one at a time, the modes interleaved one create each, so a neighbour's burst of
 * load lands on every mode alike. Each created Service is deleted again outside the timed part,
 * so the cluster does not grow. Modes, each in its own namespace:
 *   - plain: a ClusterIP Service; the webhooks' matchConditions leave it alone;
 *   - CEL policy: a LoadBalancer with an address that a ValidatingAdmissionPolicy checks with
 *     cidr().containsIP (its namespace is outside lb-ip-guard's webhooks);
 *   - bare HTTP/1.1, bare HTTP/2, bare, no matchCond: a LoadBalancer of another class, whose
 *     webhook configurations call a bare Node server (a process of its own, as lb-ip-guard's
 *     is) that answers "allowed" and does nothing else: over HTTP/1.1, offering HTTP/2 by ALPN,
 *     and without the shipped matchConditions. What the API server's two calls cost before
 *     lb-ip-guard does anything;
 *   - bare, patching: a LoadBalancer asking for no address, which the bare HTTP/1.1 server's
 *     mutation gives one, as lb-ip-guard's auto-assign does: what the API server's handling of
 *     a patch costs;
 *   - other class: a LoadBalancer of another loadBalancerClass: both webhooks are called, nothing
 *     is granted;
 *   - explicit: a LoadBalancer asking for an address of the pool (validate, granted);
 *   - auto-assign: a LoadBalancer asking for none (mutate, granted, then validate);
 *   - the last three again against two other replicas behind a round-robin TCP proxy (a Service
 *     in front of two pods; the proxy adds its own hop, which "other class x2" against "other
 *     class" shows). All three replicas share one certificate and one namespace, as one
 *     Deployment's pods do; the first is started alone, so it is the elected allocator, and the
 *     two behind the proxy are followers: every grant of the x2 modes is forwarded to it over the
 *     peer port, the worst case (with two replicas about half the grants are). With claims, each
 *     replica grants and claims what it is sent.
 * Latencies are whole requests as the client sees them (request written to response read).
 * Targets (issue 14) are printed ok/MISSED; a missed target still exits 0 (a benchmark reports),
 * a broken run (a create refused, a mode not doing what it should) exits 1.
 */

import { spawn } from "node:child_process";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createSecureServer, type Http2ServerRequest, type Http2ServerResponse } from "node:http2";
import { createServer as createHttpsServer } from "node:https";
import { performance } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import {
  e2eSkipReason,
  generateServingCertificate,
  startControlPlane,
  startRoundRobinProxy,
  type WebhookProcess,
  webhookManifests,
} from "../test/e2e/harness.ts";
import { ApiClient, adminUser } from "./api-client.ts";

const CREATES = Number(process.env.LB_IP_GUARD_BENCH_CREATES ?? 150);
const ALLOCATOR = process.env.LB_IP_GUARD_BENCH_ALLOCATOR ?? "elected";
if (ALLOCATOR !== "elected" && ALLOCATOR !== "claims") {
  console.error(`bench:apply: LB_IP_GUARD_BENCH_ALLOCATOR is elected or claims, not ${ALLOCATOR}`);
  process.exit(2);
}
const WARMUP = 10;
const POOL = "10.70.0.0/16";
/** Explicit addresses count up from here, above where auto-assign (lowest first) reaches. */
const EXPLICIT_BASE = (10 << 24) | (70 << 16) | (128 << 8);
const CEL_RANGE = "10.80.0.0/16";
const NS = {
  one: "bench-one",
  two: "bench-two",
  cel: "bench-cel",
  bareH1: "bench-bare-h1",
  bareH2: "bench-bare-h2",
  bareAll: "bench-bare-all",
  barePatch: "bench-bare-patch",
} as const;
const TARGETS = { grantOverNothingP50Ms: 1, twoCallsP50Ms: 2.6, addedP50Ms: 3 };

// The explicit addresses of both grant modes come from the upper half of the /16 pool.
if (!Number.isInteger(CREATES) || CREATES < 10 || CREATES > 10_000) {
  console.error(
    `LB_IP_GUARD_BENCH_CREATES=${process.env.LB_IP_GUARD_BENCH_CREATES}: expected a whole number of creates per mode from 10 to 10000`,
  );
  process.exit(2);
}

type Service = Record<string, unknown> & {
  metadata: { name: string; namespace: string; labels?: Record<string, string> };
};

interface Mode {
  readonly label: string;
  readonly namespace: string;
  /** The i-th Service of this mode. */
  readonly service: (i: number) => Service;
  /** Why a created Service shows that the mode did not do what it should, or undefined. */
  readonly check?: (created: Service) => string | undefined;
}

const ports = [{ name: "http", protocol: "TCP", port: 80, targetPort: 8080 }];
const service = (namespace: string, name: string, spec: Record<string, unknown>): Service => ({
  apiVersion: "v1",
  kind: "Service",
  metadata: { name, namespace, labels: { app: name } },
  spec: { selector: { app: name }, ports, ...spec },
});
let explicitCount = 0;
const nextExplicit = () => {
  const value = EXPLICIT_BASE + explicitCount++;
  return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join(".");
};
const celAddress = (i: number) => `10.80.${(i >> 8) & 255}.${i & 255}`;
const assigned = (created: Service) =>
  (created.spec as { loadBalancerIP?: string }).loadBalancerIP === undefined
    ? "the created Service has no spec.loadBalancerIP (was the mutating webhook called?)"
    : undefined;

/** A LoadBalancer that lb-ip-guard's matchConditions let through and that it grants nothing. */
const otherClass = (label: string, namespace: string): Mode => ({
  label,
  namespace,
  service: (i) =>
    service(namespace, `other-${i}`, {
      type: "LoadBalancer",
      loadBalancerClass: "example.com/other",
    }),
});

function grantModes(namespace: string, suffix: string): Mode[] {
  return [
    otherClass(`other class${suffix}`, namespace),
    {
      label: `explicit${suffix}`,
      namespace,
      service: (i) =>
        service(namespace, `explicit-${i}`, {
          type: "LoadBalancer",
          loadBalancerIP: nextExplicit(),
        }),
    },
    {
      label: `auto-assign${suffix}`,
      namespace,
      service: (i) => service(namespace, `auto-${i}`, { type: "LoadBalancer" }),
      check: assigned,
    },
  ];
}

const MODES: readonly Mode[] = [
  { label: "plain", namespace: NS.one, service: (i) => service(NS.one, `plain-${i}`, {}) },
  {
    label: "CEL policy",
    namespace: NS.cel,
    service: (i) =>
      service(NS.cel, `cel-${i}`, { type: "LoadBalancer", loadBalancerIP: celAddress(i) }),
  },
  otherClass("bare HTTP/1.1", NS.bareH1),
  otherClass("bare HTTP/2", NS.bareH2),
  otherClass("bare, no matchCond", NS.bareAll),
  {
    label: "bare, patching",
    namespace: NS.barePatch,
    service: (i) => service(NS.barePatch, `patched-${i}`, { type: "LoadBalancer" }),
    check: assigned,
  },
  ...grantModes(NS.one, ""),
  ...grantModes(NS.two, " x2"),
];

/**
 * The shipped webhook configurations under `name`, calling `url`, for the namespaces the
 * selector lets through (besides the shipped exclusions).
 */
async function webhookConfigurations(
  name: string,
  url: string,
  caPem: string,
  namespaces: { operator: "In" | "NotIn"; values: string[] },
  withMatchConditions = true,
): Promise<unknown> {
  type Hook = {
    name: string;
    // validate-reservations has none: AddressReservations are checked in every namespace.
    namespaceSelector?: {
      matchExpressions?: { key: string; operator: string; values: string[] }[];
    };
    matchConditions?: unknown;
  };
  const list = (await webhookManifests(url, caPem)) as {
    items: { metadata: { name: string }; webhooks: Hook[] }[];
  };
  for (const configuration of list.items) {
    configuration.metadata.name = name;
    for (const hook of configuration.webhooks) {
      hook.name = `${name}.${hook.name}`;
      if (!withMatchConditions) delete hook.matchConditions;
      hook.namespaceSelector = {
        matchExpressions: [
          ...(hook.namespaceSelector?.matchExpressions ?? []),
          { key: "kubernetes.io/metadata.name", ...namespaces },
        ],
      };
    }
  }
  return list;
}

/** The CEL range check, bound to its namespace only. */
const celPolicy = [
  {
    apiVersion: "admissionregistration.k8s.io/v1",
    kind: "ValidatingAdmissionPolicy",
    metadata: { name: "bench-lb-range" },
    spec: {
      failurePolicy: "Fail",
      matchConstraints: {
        resourceRules: [
          {
            apiGroups: [""],
            apiVersions: ["v1"],
            operations: ["CREATE", "UPDATE"],
            resources: ["services"],
          },
        ],
      },
      validations: [
        {
          expression: `!has(object.spec.loadBalancerIP) || cidr('${CEL_RANGE}').containsIP(object.spec.loadBalancerIP)`,
          message: `spec.loadBalancerIP must lie in ${CEL_RANGE}`,
        },
      ],
    },
  },
  {
    apiVersion: "admissionregistration.k8s.io/v1",
    kind: "ValidatingAdmissionPolicyBinding",
    metadata: { name: "bench-lb-range" },
    spec: {
      policyName: "bench-lb-range",
      validationActions: ["Deny"],
      matchResources: {
        namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": NS.cel } },
      },
    },
  },
];

/** What a bare webhook saw: the HTTP versions of its requests, and their bytes. */
interface BareCounts {
  versions: Record<string, number>;
  bytes: number;
  /** Patches answered; never reset, so that every patch gives a new address. */
  patched: number;
}

/**
 * The floor of any webhook in Node, in a process of its own as lb-ip-guard is: node:https (or
 * node:http2 offering h2 by ALPN, and HTTP/1.1) answering every review "allowed" and doing
 * nothing else. Reads its certificate from stdin, prints its port, then answers each line
 * "count" (or "reset") on stdin with what it saw so far, as one JSON line.
 */
/**
 * What lb-ip-guard's auto-assign patch does to a Service asking for no address (an address in
 * spec, the pool in an annotation), with addresses of their own: the API server's share of a
 * mutation, measured without lb-ip-guard.
 */
function barePatch(index: number): string {
  const operations = [
    {
      op: "add",
      path: "/spec/loadBalancerIP",
      value: `10.90.${(index >> 8) & 255}.${index & 255}`,
    },
    { op: "add", path: "/metadata/annotations", value: { "bench.lb-ip-guard.dev/pool": "bare" } },
  ];
  return Buffer.from(JSON.stringify(operations)).toString("base64");
}

async function serveBare(protocol: string): Promise<void> {
  const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  const tls = JSON.parse((await lines.next()).value as string) as { cert: string; key: string };
  let counts: BareCounts = { versions: {}, bytes: 0, patched: 0 };
  const handle = (
    req: IncomingMessage | Http2ServerRequest,
    res: ServerResponse | Http2ServerResponse,
  ) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      counts.versions[req.httpVersion] = (counts.versions[req.httpVersion] ?? 0) + 1;
      counts.bytes += Buffer.byteLength(text);
      const review = JSON.parse(text) as { request?: { uid?: string; namespace?: string } };
      const patching =
        review.request?.namespace === NS.barePatch && (req.url ?? "").startsWith("/mutate");
      const body = JSON.stringify({
        apiVersion: "admission.k8s.io/v1",
        kind: "AdmissionReview",
        response: {
          uid: review.request?.uid,
          allowed: true,
          ...(patching && { patchType: "JSONPatch", patch: barePatch(counts.patched++) }),
        },
      });
      res.statusCode = 200;
      res.setHeader("content-type", "application/json");
      res.setHeader("content-length", Buffer.byteLength(body));
      res.end(body);
    });
  };
  const server =
    protocol === "HTTP/2"
      ? createSecureServer({ ...tls, allowHTTP1: true }, handle)
      : createHttpsServer(tls, handle);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  console.log(JSON.stringify({ port: typeof address === "object" && address ? address.port : 0 }));
  for (let line = await lines.next(); !line.done; line = await lines.next()) {
    console.log(JSON.stringify(counts));
    if (line.value === "reset") counts = { versions: {}, bytes: 0, patched: counts.patched };
  }
  server.close();
}

interface BareWebhook {
  url: string;
  /** What it saw since the start or the last reset. */
  counts(): Promise<BareCounts>;
  reset(): Promise<void>;
  close(): Promise<void>;
}

async function startBareWebhook(
  protocol: "HTTP/1.1" | "HTTP/2",
  tls: { certPem: string; keyPem: string },
): Promise<BareWebhook> {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), "--bare", protocol], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const answers = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async () => {
    const line = await answers.next();
    if (line.done) throw new Error(`the bare ${protocol} webhook exited`);
    return JSON.parse(line.value) as unknown;
  };
  child.stdin.write(`${JSON.stringify({ cert: tls.certPem, key: tls.keyPem })}\n`);
  const { port } = (await next()) as { port: number };
  const ask = async (command: string) => {
    child.stdin.write(`${command}\n`);
    return (await next()) as BareCounts;
  };
  return {
    url: `https://127.0.0.1:${port}`,
    counts: () => ask("count"),
    reset: async () => {
      await ask("reset");
    },
    close: async () => {
      child.stdin.end();
      await exited;
    },
  };
}

const servicesPath = (namespace: string) => `/api/v1/namespaces/${namespace}/services`;

/** Dry-run creates until `expect` matches the answer: admission configurations load asynchronously. */
async function until(
  api: ApiClient,
  what: string,
  probe: Service,
  expect: (status: number, text: string) => boolean | Promise<boolean>,
): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const { status, text } = await api.send(
      "POST",
      `${servicesPath(probe.metadata.namespace)}?dryRun=All`,
      probe,
    );
    if (await expect(status, text)) return;
    if (Date.now() > deadline)
      throw new Error(`${what}: not in effect after 60 s (${status} ${text})`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** Nearest-rank percentile of sorted samples. */
function percentile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? NaN;
}

interface Figures {
  p50: number;
  p90: number;
  p99: number;
}

function figures(samples: readonly number[]): Figures {
  const sorted = [...samples].sort((x, y) => x - y);
  return {
    p50: percentile(sorted, 0.5),
    p90: percentile(sorted, 0.9),
    p99: percentile(sorted, 0.99),
  };
}

/** Sum and count of a histogram on a /metrics page, per `name` label (all other labels summed). */
function histogram(page: string, metric: string): Map<string, { sum: number; count: number }> {
  const byName = new Map<string, { sum: number; count: number }>();
  const sample = new RegExp(`^${metric}_(sum|count)\\{(.*)\\} (\\S+)$`);
  for (const line of page.split("\n")) {
    const match = sample.exec(line);
    if (match === null) continue;
    const name = /(?:^|,)name="([^"]*)"/.exec(match[2] ?? "")?.[1] ?? "";
    const entry = byName.get(name) ?? { sum: 0, count: 0 };
    entry[match[1] as "sum" | "count"] += Number(match[3]);
    byName.set(name, entry);
  }
  return byName;
}

/** One review a webhook answered, from its log. */
interface Review {
  /** The Service's name up to its number: the mode's prefix (`other`, `explicit`, `auto`). */
  readonly prefix: string;
  readonly webhook: string;
  readonly durationMs: number;
}

/** The reviews a webhook logged at or after `since` (ms epoch), dry runs left out. */
async function reviewsSince(webhook: WebhookProcess, since: number): Promise<Review[]> {
  const reviews: Review[] = [];
  for (const line of (await webhook.log()).split("\n")) {
    if (!line.startsWith("{")) continue;
    const record = JSON.parse(line) as {
      msg?: string;
      time?: number | string;
      webhook?: string;
      name?: string;
      durationMs?: number;
      dryRun?: boolean;
    };
    if (record.msg !== "admission review" || record.dryRun === true) continue;
    if (new Date(record.time ?? 0).getTime() < since) continue;
    reviews.push({
      prefix: (record.name ?? "").replace(/-\d+$/, ""),
      webhook: record.webhook ?? "",
      durationMs: record.durationMs ?? 0,
    });
  }
  return reviews;
}

const ms = (n: number) => `${n.toFixed(2)} ms`.padStart(10);
const signed = (n: number) => `${n >= 0 ? "+" : ""}${n.toFixed(2)} ms`.padStart(10);

async function main(): Promise<void> {
  const skip = await e2eSkipReason();
  if (skip) {
    console.error(`bench:apply needs the e2e control plane: ${skip}`);
    process.exit(1);
  }
  const startedAt = performance.now();
  // A /16 of ClusterIPs: thousands of creates, whatever the pace of the deletes.
  const cp = await startControlPlane({ serviceClusterIPRange: "10.0.0.0/16" });
  const api = new ApiClient(cp, await adminUser(cp));
  const closers: (() => Promise<void>)[] = [];
  try {
    await cp.kubectl(["apply", "-f", "-"], {
      stdin: JSON.stringify({
        apiVersion: "v1",
        kind: "List",
        items: [
          // The webhooks' own namespace too: three of them starting at once would each create it.
          ...["lb-ip-guard", "metallb-system", ...Object.values(NS)].map((name) => ({
            apiVersion: "v1",
            kind: "Namespace",
            metadata: { name },
          })),
          {
            apiVersion: "metallb.io/v1beta1",
            kind: "IPAddressPool",
            metadata: { name: "bench", namespace: "metallb-system" },
            spec: { addresses: [POOL] },
          },
          ...celPolicy,
        ],
      }),
    });
    // The first replica alone: it takes the allocator Lease before the others start.
    const certificate = await generateServingCertificate();
    const args = [`--allocator=${ALLOCATOR}`];
    const one = await cp.startWebhook({ certificate, args });
    const [a, b] = await Promise.all([
      cp.startWebhook({ certificate, args }),
      cp.startWebhook({ certificate, args }),
    ]);
    const proxy = await startRoundRobinProxy([a, b].map((w) => Number(new URL(w.url).port)));
    const bareTls = await generateServingCertificate();
    const bare = {
      h1: await startBareWebhook("HTTP/1.1", bareTls),
      h2: await startBareWebhook("HTTP/2", bareTls),
    };
    closers.push(proxy.close, bare.h1.close, bare.h2.close);
    const only = (namespace: string) => ({ operator: "In" as const, values: [namespace] });
    const configurations = [
      await webhookConfigurations("lb-ip-guard", one.url, one.caPem, {
        operator: "NotIn",
        values: [NS.two, NS.cel, NS.bareH1, NS.bareH2, NS.bareAll, NS.barePatch],
      }),
      await webhookConfigurations("lb-ip-guard-x2", proxy.url, certificate.caPem, only(NS.two)),
      await webhookConfigurations("bare-h1", bare.h1.url, bareTls.caPem, only(NS.bareH1)),
      await webhookConfigurations("bare-h2", bare.h2.url, bareTls.caPem, only(NS.bareH2)),
      await webhookConfigurations("bare-all", bare.h1.url, bareTls.caPem, only(NS.bareAll), false),
      await webhookConfigurations("bare-patch", bare.h1.url, bareTls.caPem, only(NS.barePatch)),
    ];
    for (const configuration of configurations) {
      await cp.kubectl(["apply", "-f", "-"], { stdin: JSON.stringify(configuration) });
    }
    const outside = (namespace: string) =>
      service(namespace, "probe", { type: "LoadBalancer", loadBalancerIP: "10.99.0.1" });
    for (const namespace of [NS.one, NS.two]) {
      await until(
        api,
        `lb-ip-guard for ${namespace}`,
        outside(namespace),
        (status, text) => status === 403 && text.includes("NotInAnyPool"),
      );
    }
    for (const [namespace, server] of [
      [NS.bareH1, bare.h1],
      [NS.bareH2, bare.h2],
      [NS.bareAll, bare.h1],
      [NS.barePatch, bare.h1],
    ] as const) {
      await until(
        api,
        `the bare webhook for ${namespace}`,
        outside(namespace),
        async () => Object.keys((await server.counts()).versions).length > 0,
      );
      await server.reset();
    }
    await until(
      api,
      "the CEL policy",
      outside(NS.cel),
      (status, text) => status >= 400 && text.includes(CEL_RANGE),
    );

    const samples = new Map<string, number[]>(MODES.map((mode) => [mode.label, []]));
    const createOne = async (mode: Mode, i: number, record: boolean) => {
      const manifest = mode.service(i);
      const created = await api.send("POST", servicesPath(mode.namespace), manifest);
      if (created.status !== 201) {
        throw new Error(
          `${mode.label}: create ${manifest.metadata.name}: ${created.status} ${created.text}`,
        );
      }
      const problem = mode.check?.(JSON.parse(created.text) as Service);
      if (problem !== undefined) throw new Error(`${mode.label}: ${problem}`);
      if (record) samples.get(mode.label)?.push(created.ms);
      const deleted = await api.send(
        "DELETE",
        `${servicesPath(mode.namespace)}/${manifest.metadata.name}`,
      );
      if (deleted.status !== 200) {
        throw new Error(
          `${mode.label}: delete ${manifest.metadata.name}: ${deleted.status} ${deleted.text}`,
        );
      }
    };
    for (let i = 0; i < WARMUP; i++) for (const mode of MODES) await createOne(mode, i, false);

    const metricsBefore = (await api.send("GET", "/metrics")).text;
    const since = Date.now();
    const measuring = performance.now();
    for (let i = WARMUP; i < WARMUP + CREATES; i++) {
      for (const mode of MODES) await createOne(mode, i, true);
    }
    const measuredSeconds = (performance.now() - measuring) / 1000;
    const metricsAfter = (await api.send("GET", "/metrics")).text;

    const byMode = new Map([...samples].map(([label, values]) => [label, figures(values)]));
    const of = (label: string): Figures => {
      const found = byMode.get(label);
      if (found === undefined) throw new Error(`no mode ${label}`);
      return found;
    };
    const plain = of("plain");
    console.log(
      `Service CREATE latency, ${CREATES} creates per mode (after ${WARMUP} warm-up rounds), ${MODES.length} modes interleaved, one keep-alive connection (${api.connections} opened in all); ${measuredSeconds.toFixed(1)} s measured, Node ${process.version}\n`,
    );
    console.log(
      `${"mode".padEnd(18)}${"p50".padStart(10)}${"p90".padStart(10)}${"p99".padStart(10)}${"p50-plain".padStart(11)}${"p99-plain".padStart(11)}`,
    );
    for (const { label } of MODES) {
      const f = of(label);
      console.log(
        `${label.padEnd(18)}${ms(f.p50)}${ms(f.p90)}${ms(f.p99)} ${signed(f.p50 - plain.p50)} ${signed(f.p99 - plain.p99)}`,
      );
    }

    console.log("\nwhere a webhook call's time goes, over the measured creates:");
    const metric = "apiserver_admission_webhook_admission_duration_seconds";
    const before = histogram(metricsBefore, metric);
    const called = new Map<string, number>();
    for (const [name, total] of histogram(metricsAfter, metric)) {
      const start = before.get(name) ?? { sum: 0, count: 0 };
      const calls = total.count - start.count;
      if (calls <= 0) continue;
      called.set(name, calls);
      console.log(
        `  ${name.padEnd(42)} ${String(calls).padStart(5)} calls, mean ${ms(((total.sum - start.sum) / calls) * 1000)} (the apiserver's histogram, its own work included)`,
      );
    }
    const single = await reviewsSince(one, since);
    const [reviewsA, reviewsB] = [await reviewsSince(a, since), await reviewsSince(b, since)];
    for (const [suffix, reviews] of [
      ["", single],
      [" x2", [...reviewsA, ...reviewsB]],
    ] as const) {
      for (const [prefix, label] of [
        ["other", "other class"],
        ["explicit", "explicit"],
        ["auto", "auto-assign"],
      ]) {
        const own = (webhook: string) =>
          figures(
            reviews
              .filter((r) => r.prefix === prefix && r.webhook === webhook)
              .map((r) => r.durationMs),
          );
        console.log(
          `  ${`${label}${suffix}`.padEnd(18)} the review inside lb-ip-guard (its log), p50/p99: /mutate ${ms(own("mutate").p50)} /${ms(own("mutate").p99)}, /validate ${ms(own("validate").p50)} /${ms(own("validate").p99)}`,
        );
      }
    }
    console.log(
      `  two replicas: connections the apiserver opened through the proxy ${proxy.served.join(" + ")}, reviews answered ${reviewsA.length} + ${reviewsB.length}`,
    );
    const seen = async (server: BareWebhook) => {
      const { versions, bytes } = await server.counts();
      const calls = Object.values(versions).reduce((sum, count) => sum + count, 0);
      const each = Object.entries(versions).map(
        ([version, count]) => `${count} over HTTP/${version}`,
      );
      return `${each.join(", ")} (reviews of ${Math.round(bytes / calls)} bytes)`;
    };
    console.log(
      `  bare webhooks: the HTTP/1.1 server got ${await seen(bare.h1)}, its three configurations together; the one offering h2 got ${await seen(bare.h2)}`,
    );
    const expected = [
      "lb-ip-guard",
      "lb-ip-guard-x2",
      "bare-h1",
      "bare-h2",
      "bare-all",
      "bare-patch",
    ].flatMap((configuration) =>
      ["mutate", "validate"].map((hook) => `${configuration}.${hook}.lb-ip-guard.dev`),
    );
    const uncalled = expected.filter((name) => !called.has(name));
    if (uncalled.length > 0) {
      throw new Error(`the apiserver never called ${uncalled.join(", ")} while measuring`);
    }

    console.log("\ntargets (issue 14):");
    const target = (label: string, value: number, limit: number, p99?: number) =>
      console.log(
        `${value <= limit ? "ok    " : "MISSED"} ${label.padEnd(58)} ${signed(value)} at p50 (target <= ${limit} ms)${p99 === undefined ? "" : `, ${signed(p99)} at p99`}`,
      );
    for (const suffix of ["", " x2"]) {
      const nothing = of(`other class${suffix}`);
      for (const grant of ["explicit", "auto-assign"]) {
        const f = of(`${grant}${suffix}`);
        target(
          `${grant}${suffix} minus other class${suffix} (a grant's cost)`,
          f.p50 - nothing.p50,
          TARGETS.grantOverNothingP50Ms,
          f.p99 - nothing.p99,
        );
      }
    }
    const patching = of("bare, patching").p50 - of("bare HTTP/1.1").p50;
    console.log(
      `       of the auto-assign's, the API server's handling of a patch (bare, patching minus bare HTTP/1.1) ${signed(patching)} at p50, and lb-ip-guard's on top ${signed(of("auto-assign").p50 - of("other class").p50 - patching)}`,
    );
    const twoCalls = of("other class");
    target(
      "other class minus plain (two webhook calls)",
      twoCalls.p50 - plain.p50,
      TARGETS.twoCallsP50Ms,
      twoCalls.p99 - plain.p99,
    );
    const floor = of("bare HTTP/1.1");
    console.log(
      `       of which the API server's calls to a bare Node webhook   ${signed(floor.p50 - plain.p50)} at p50, and lb-ip-guard's server on top ${signed(twoCalls.p50 - floor.p50)}`,
    );
    for (const label of ["explicit", "auto-assign"]) {
      const f = of(label);
      target(
        `${label} minus plain (lb-ip-guard's whole cost)`,
        f.p50 - plain.p50,
        TARGETS.addedP50Ms,
        f.p99 - plain.p99,
      );
    }
    console.log(`\ndone in ${((performance.now() - startedAt) / 1000).toFixed(0)} s`);
  } finally {
    for (const close of closers) await close();
    api.close();
    await cp.stop();
  }
}

if (process.argv[2] === "--bare") {
  await serveBare(process.argv[3] ?? "HTTP/1.1");
} else {
  await main().catch((error: unknown) => {
    console.error(`bench:apply: ${(error as Error).message}`);
    process.exit(1);
  });
}
