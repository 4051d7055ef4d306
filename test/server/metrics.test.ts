// Real sockets: the plain-HTTP metrics port (src/server/metrics.ts).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ReservationIndex } from "../../src/ipam/reservations.ts";
import { RetainedAddresses } from "../../src/ipam/retained.ts";
import { UsageIndex } from "../../src/ipam/usage.ts";
import { closeServer, createMetricsServer, listen, Metrics } from "../../src/server/metrics.ts";
import { HEALTHY, type ProbeSources, readiness } from "../../src/server/probes.ts";
import { poolSet } from "../admission/fixtures.ts";
import { address } from "../ipam/fixtures.ts";
import { harness } from "./helpers.ts";

describe("metrics port", () => {
  it("serves Prometheus text at GET /metrics over plain HTTP, with process metrics, and 404 elsewhere", async () => {
    const h = harness();
    const metrics = new Metrics({ view: () => h.state.view });
    const server = createMetricsServer(metrics);
    const port = await listen(server, 0, "127.0.0.1");
    try {
      const response = await fetch(`http://127.0.0.1:${port}/metrics`);
      assert.equal(response.status, 200);
      assert.match(response.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
      const text = await response.text();
      assert.match(text, /# TYPE lb_ip_guard_admission_requests_total counter/);
      assert.match(text, /# TYPE lb_ip_guard_admission_duration_seconds histogram/);
      assert.match(text, /lb_ip_guard_pool_capacity_addresses\{pool="reserved",family="IPv4"\} 8/);
      assert.match(text, /process_cpu_seconds_total/);
      assert.match(text, /nodejs_eventloop_lag_seconds/);
      const missing = await fetch(`http://127.0.0.1:${port}/`);
      assert.equal(missing.status, 404);
      assert.match(((await missing.json()) as { error: string }).error, /GET \/metrics/);
    } finally {
      await closeServer(server);
    }
  });

  it("answers the probes too, as the admission port does (kubelets reach it without a client certificate)", async () => {
    const h = harness();
    let ready = false;
    const sources: ProbeSources = {
      state: {
        context: () => ({ ...h.state.context(), ready }),
        record: (grant, now) => h.state.record(grant, now),
      },
    };
    const server = createMetricsServer(new Metrics({ view: () => h.state.view }), (path) =>
      path === "/healthz" ? HEALTHY : path === "/readyz" ? readiness(sources) : undefined,
    );
    const port = await listen(server, 0, "127.0.0.1");
    try {
      const get = async (path: string) => {
        const response = await fetch(`http://127.0.0.1:${port}${path}`);
        return `${response.status} ${await response.text()}`;
      };
      assert.equal(await get("/healthz"), "200 ok\n");
      assert.equal(await get("/readyz"), "503 not ready: pools and Services are not synced yet\n");
      ready = true;
      assert.equal(await get("/readyz"), "200 ok\n");
      const posted = await fetch(`http://127.0.0.1:${port}/readyz`, { method: "POST" });
      assert.equal(posted.status, 404);
    } finally {
      await closeServer(server);
    }
  });

  it("says whether this replica is the allocator: 1 granting, 0 forwarding, absent without an election", async () => {
    let allocating: boolean | undefined = true;
    const metrics = new Metrics({ view: () => undefined, allocating: () => allocating });
    const sample = async () =>
      (await metrics.text()).split("\n").find((line) => line.startsWith("lb_ip_guard_allocator{"));
    assert.equal(await sample(), 'lb_ip_guard_allocator{mode="elected"} 1');
    allocating = false;
    assert.equal(await sample(), 'lb_ip_guard_allocator{mode="elected"} 0');
    allocating = undefined;
    assert.equal(await sample(), undefined);
  });

  it("counts the retained and the reserved addresses of each pool and family, zeros included", async () => {
    const retained = new RetainedAddresses();
    retained.retain(address("192.168.35.101"), { ref: "kubeflow/ui", since: 1, until: 2 });
    const reservations = ReservationIndex.from([
      {
        namespace: "team-a",
        name: "web",
        addresses: [address("192.168.35.104")],
        serviceName: undefined,
      },
      {
        namespace: "team-a",
        name: "dual",
        addresses: [address("10.30.0.1"), address("fd00:30::1")],
        serviceName: undefined,
      },
    ]);
    const metrics = new Metrics({
      view: () => ({
        pools: poolSet(),
        usage: new UsageIndex(),
        retained,
        reservations,
        namespaceLabels: () => ({}),
      }),
      processMetrics: false,
    });
    const samples = (await metrics.text())
      .split("\n")
      .filter((line) => /^lb_ip_guard_pool_(retained|reserved)_addresses\{/.test(line));
    assert.deepEqual(samples.sort(), [
      'lb_ip_guard_pool_reserved_addresses{pool="default",family="IPv4"} 1',
      'lb_ip_guard_pool_reserved_addresses{pool="dual",family="IPv4"} 1',
      'lb_ip_guard_pool_reserved_addresses{pool="dual",family="IPv6"} 1',
      'lb_ip_guard_pool_reserved_addresses{pool="reserved",family="IPv4"} 0',
      'lb_ip_guard_pool_retained_addresses{pool="default",family="IPv4"} 1',
      'lb_ip_guard_pool_retained_addresses{pool="dual",family="IPv4"} 0',
      'lb_ip_guard_pool_retained_addresses{pool="dual",family="IPv6"} 0',
      'lb_ip_guard_pool_retained_addresses{pool="reserved",family="IPv4"} 0',
    ]);
  });
});
