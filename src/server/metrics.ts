// Prometheus metrics of the webhook, and the plain-HTTP server that exposes them on their own
// port (so a scraper needs no TLS trust and the admission port carries only admission traffic).

import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { inspectCertificate } from "../certs/inspect.ts";
import type { ClusterView } from "../ipam/decide.ts";
import {
  type PoolSetAside,
  type PoolUtilisation,
  poolSetAside,
  poolUtilisation,
} from "../ipam/utilisation.ts";
import type { ProbeAnswer } from "./probes.ts";

/** Label value for "no reason" (allowed, assigned, skipped): explicit, so it can be selected. */
const NO_REASON = "none";

/** Seconds: sub-millisecond resolution where an in-memory decision lands, up to a timeout. */
export const DURATION_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
];

export interface MetricsOptions {
  /** The pools and usage to report at scrape time; undefined when there is nothing to show yet. */
  readonly view: () => ClusterView | undefined;
  /** Collections whose list/watch is failing right now (cluster mode); none when absent. */
  readonly failing?: () => readonly { readonly resource: string }[];
  /**
   * The serving certificate in PEM, read at scrape time (it changes on rotation and reload);
   * absent, or undefined, when there is none to report.
   */
  readonly servingCertificate?: () => string | undefined;
  /**
   * Whether this replica is the elected allocator now (it grants) or not (it forwards); undefined
   * when there is no election (standalone, `--allocator claims`).
   */
  readonly allocating?: () => boolean | undefined;
  /** Process metrics (CPU, memory, event loop, GC); off in tests that build many registries. */
  readonly processMetrics?: boolean;
}

export class Metrics {
  readonly registry = new Registry();
  readonly #requests: Counter<"webhook" | "operation" | "decision" | "reason">;
  readonly #duration: Histogram<"webhook">;
  readonly #claims: Counter<"result">;
  readonly #collected: Counter;

  constructor(options: MetricsOptions) {
    const registers = [this.registry];
    this.#requests = new Counter({
      name: "lb_ip_guard_admission_requests_total",
      help: "Admission reviews answered, by webhook, operation, decision (allowed, assigned, denied, skipped, error) and reason code",
      labelNames: ["webhook", "operation", "decision", "reason"] as const,
      registers,
    });
    this.#duration = new Histogram({
      name: "lb_ip_guard_admission_duration_seconds",
      help: "Time from a parsed review to its answer, by webhook",
      labelNames: ["webhook"] as const,
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.#claims = new Counter({
      name: "lb_ip_guard_claims_total",
      help: "Address claims (Leases) made by admissions, per address: claimed (created), existing (already this Service's, or shared with it), lost (another Service's first), error (the API could not be asked)",
      labelNames: ["result"] as const,
      registers,
    });
    for (const result of ["claimed", "existing", "lost", "error"]) this.#claims.inc({ result }, 0);
    this.#collected = new Counter({
      name: "lb_ip_guard_claims_collected_total",
      help: "Address claims this replica deleted because their Service does not hold the address (gone, changed, or never created)",
      registers,
    });
    // Capacity and usage are two metrics, not one with a state label: a sum over a metric must
    // mean something (Prometheus' naming practice), and free is capacity - used in a query. So
    // are the retained and the reserved addresses: free for no one but whom they are kept for.
    const poolGauge = (
      name: string,
      help: string,
      rows: (view: ClusterView) => Iterable<{ pool: string; family: string; value: number }>,
    ) =>
      new Gauge({
        name,
        help,
        labelNames: ["pool", "family"] as const,
        registers,
        collect() {
          this.reset();
          const view = options.view();
          if (view === undefined) return;
          for (const { pool, family, value } of rows(view)) this.set({ pool, family }, value);
        },
      });
    // Prometheus values are doubles: an IPv6 /64 (2^64) is shown as the nearest one.
    const utilisation = (value: (entry: PoolUtilisation) => bigint) => (view: ClusterView) =>
      poolUtilisation(view.pools, view.usage).map((entry) => ({
        ...entry,
        value: Number(value(entry)),
      }));
    const setAside = (value: (entry: PoolSetAside) => number) => (view: ClusterView) =>
      poolSetAside(view.pools, view.retained, view.reservations).map((entry) => ({
        ...entry,
        value: value(entry),
      }));
    poolGauge(
      "lb_ip_guard_pool_capacity_addresses",
      "Usable addresses of each pool and family (avoidBuggyIPs left out)",
      utilisation((entry) => entry.total),
    );
    poolGauge(
      "lb_ip_guard_pool_used_addresses",
      "Addresses of each pool and family that Services request, were assigned or hold",
      utilisation((entry) => entry.used),
    );
    poolGauge(
      "lb_ip_guard_pool_retained_addresses",
      "Addresses of each pool and family retained for the Service that gave them up (--retain): other Services get them only when nothing else is free",
      setAside((entry) => entry.retained),
    );
    poolGauge(
      "lb_ip_guard_pool_reserved_addresses",
      "Addresses of each pool and family that an AddressReservation sets aside for a namespace or Service (held by it or not)",
      setAside((entry) => entry.reserved),
    );
    new Gauge({
      name: "lb_ip_guard_allocator",
      help: "1 while this replica is the elected allocator and may grant (its Lease fresh), 0 while it forwards grants to another; absent without an election",
      // A label, so that no election means no sample (an unlabelled gauge would show 0).
      labelNames: ["mode"] as const,
      registers,
      collect() {
        this.reset();
        const allocating = options.allocating?.();
        if (allocating !== undefined) this.set({ mode: "elected" }, allocating ? 1 : 0);
      },
    });
    new Gauge({
      name: "lb_ip_guard_watch_failing",
      help: "1 for each cluster collection whose list/watch is failing now (decisions use a stale cache for it); absent when all are healthy",
      labelNames: ["resource"] as const,
      registers,
      collect() {
        this.reset();
        for (const { resource } of options.failing?.() ?? []) this.set({ resource }, 1);
      },
    });
    new Gauge({
      name: "lb_ip_guard_serving_certificate_expiration_timestamp_seconds",
      help: "When the certificate the webhook serves expires (Unix seconds), by its subject; an expired one makes every Service write that reaches the webhook fail",
      // A label, so that no certificate means no sample (an unlabelled gauge would show 0).
      labelNames: ["subject"] as const,
      registers,
      collect() {
        this.reset();
        const certificate = inspectCertificate(options.servingCertificate?.());
        // None, or not a certificate: nothing to report (/readyz says why TLS cannot serve).
        if (certificate === undefined) return;
        this.set({ subject: certificate.subject }, certificate.notAfter / 1000);
      },
    });
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  /** One answered review. */
  review(
    webhook: string,
    operation: string,
    decision: string,
    reason: string | undefined,
    seconds: number,
  ): void {
    this.#requests.inc({ webhook, operation, decision, reason: reason ?? NO_REASON });
    this.#duration.observe({ webhook }, seconds);
  }

  /** One address claim and its result. */
  claim(result: "claimed" | "existing" | "lost" | "error"): void {
    this.#claims.inc({ result });
  }

  /** Claims deleted by collection. */
  collected(count: number): void {
    this.#collected.inc(count);
  }

  /** A request that was not an answerable review (bad body, internal error). */
  error(webhook: string, reason: "BadRequest" | "InternalError"): void {
    this.#requests.inc({ webhook, operation: "unknown", decision: "error", reason });
  }

  async text(): Promise<string> {
    return this.registry.metrics();
  }
}

/** `GET /metrics` over plain HTTP; anything else is a 404. */
/**
 * The plain-HTTP metrics port: GET /metrics, and the probes (`probes`: /healthz and /readyz as
 * the admission port answers them), which a kubelet reaches here even when the admission port
 * requires client certificates.
 */
export function createMetricsServer(
  metrics: Metrics,
  probes: (path: string) => ProbeAnswer | undefined = () => undefined,
): Server {
  return createServer((request, response) => {
    const path = (request.url ?? "").split("?")[0] ?? "";
    const read = request.method === "GET" || request.method === "HEAD";
    const probe = read ? probes(path) : undefined;
    if (probe !== undefined) {
      response.writeHead(probe.status, { "content-type": "text/plain; charset=utf-8" });
      response.end(request.method === "HEAD" ? undefined : probe.text);
      return;
    }
    if (path !== "/metrics" || !read) {
      response.writeHead(404, { "content-type": "application/json" });
      response.end(`${JSON.stringify({ error: "not found; metrics are at GET /metrics" })}\n`);
      return;
    }
    metrics.text().then(
      (text) => {
        response.writeHead(200, { "content-type": metrics.registry.contentType });
        response.end(request.method === "HEAD" ? undefined : text);
      },
      (error: unknown) => {
        response.writeHead(500, { "content-type": "application/json" });
        response.end(`${JSON.stringify({ error: `metrics: ${(error as Error).message}` })}\n`);
      },
    );
  });
}

/** Listens and resolves with the bound port (useful with port 0). */
export function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}
