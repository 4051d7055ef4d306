// Address claims as Leases, against an in-memory Lease API with the API server's semantics
// (create-if-absent, resourceVersion preconditions on update and delete) and a watch that can be
// switched off. The real API server is test/e2e/ha.test.ts.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pino } from "pino";
import { holdKey } from "../../src/admission/holds.ts";
import {
  type Claim,
  Claims,
  claimLease,
  collectReason,
  type HolderView,
  leaseName,
  parseClaim,
  RELEASE_MARGIN_MS,
} from "../../src/cluster/claims.ts";
import { KubeApiError, type KubeClient } from "../../src/cluster/kube.ts";
import type { KubeObject } from "../../src/cluster/reflector.ts";
import { ServiceUsage } from "../../src/cluster/service-usage.ts";
import { type IPAddress, parseAddress } from "../../src/ipam/address.ts";
import { holderOf, policyFor } from "../../src/ipam/decide.ts";
import type { ServiceObject } from "../../src/ipam/service.ts";
import type { Holder } from "../../src/ipam/usage.ts";
import { poolSet } from "../admission/fixtures.ts";

const NAMESPACE = "lb-ip-guard";
const PATH = `/apis/coordination.k8s.io/v1/namespaces/${NAMESPACE}/leases`;
const policy = policyFor();
const signal = new AbortController().signal;

function address(text: string): IPAddress {
  const parsed = parseAddress(text);
  assert.ok(parsed.ok, text);
  return parsed.value;
}

function holder(ref: string, extra: Partial<Holder> = {}): Holder {
  return { ref, sharingKey: "", ports: ["TCP/80"], backendKey: "Cluster", ...extra };
}

function lb(name: string, ip: string): ServiceObject {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace: "default" },
    spec: { type: "LoadBalancer", loadBalancerIP: ip, ports: [{ protocol: "TCP", port: 80 }] },
  };
}

const clone = <T>(value: T): T => structuredClone(value);

/** The Lease API of one namespace: what the claims use of it, with the API server's rules. */
class FakeLeases {
  readonly leases = new Map<string, KubeObject>();
  readonly calls: string[] = [];
  /** Watch events go here (when set), as the claims watch would deliver them. */
  watcher: Claims | undefined;
  /** Makes the next requests of a method fail with this status (undefined: no answer). */
  failing: { method: string; status: number | undefined } | undefined;
  #version = 100;

  request(
    method: string,
    path: string,
    options: { body?: unknown } = {},
  ): Promise<Record<string, unknown>> {
    this.calls.push(`${method} ${path.replace(PATH, "") || "/"}`);
    return Promise.resolve().then(() => this.#handle(method, path, options.body as KubeObject));
  }

  #handle(method: string, path: string, body: KubeObject): Record<string, unknown> {
    if (this.failing?.method === method) {
      throw new KubeApiError(`${method} ${path}: failing`, this.failing.status);
    }
    const name = path.startsWith(`${PATH}/`) ? path.slice(PATH.length + 1) : "";
    const existing = this.leases.get(name);
    const meta = (object: KubeObject | undefined) =>
      (object?.metadata ?? {}) as Record<string, unknown>;
    switch (method) {
      case "POST": {
        const created = meta(body).name as string;
        if (this.leases.has(created)) throw new KubeApiError("AlreadyExists", 409);
        return this.put(body, "ADDED");
      }
      case "GET":
        if (existing === undefined) throw new KubeApiError("NotFound", 404);
        return clone(existing);
      case "PUT":
        if (existing === undefined) throw new KubeApiError("NotFound", 404);
        if (meta(body).resourceVersion !== meta(existing).resourceVersion)
          throw new KubeApiError("Conflict", 409);
        return this.put(body, "MODIFIED");
      case "DELETE": {
        if (existing === undefined) throw new KubeApiError("NotFound", 404);
        const wanted = (body.preconditions as { resourceVersion?: string } | undefined)
          ?.resourceVersion;
        if (wanted !== undefined && wanted !== meta(existing).resourceVersion)
          throw new KubeApiError("Conflict", 409);
        this.leases.delete(name);
        this.watcher?.apply("DELETED", clone(existing));
        return {};
      }
      default:
        throw new Error(method);
    }
  }

  /** Stores a Lease (a new resourceVersion; creationTimestamp kept or now) and "watches" it. */
  put(object: KubeObject, type: "ADDED" | "MODIFIED" = "ADDED"): KubeObject {
    const metadata = object.metadata as Record<string, unknown>;
    const previous = this.leases.get(metadata.name as string)?.metadata as
      | Record<string, unknown>
      | undefined;
    this.#version += 1;
    const stored = {
      ...clone(object),
      metadata: {
        creationTimestamp: previous?.creationTimestamp ?? new Date().toISOString(),
        ...clone(metadata),
        resourceVersion: String(this.#version),
      },
    };
    this.leases.set(metadata.name as string, stored);
    this.watcher?.apply(type, clone(stored));
    return clone(stored);
  }

  holderOf(name: string): string | undefined {
    const annotations = (this.leases.get(name)?.metadata as Record<string, unknown> | undefined)
      ?.annotations as Record<string, string> | undefined;
    return annotations?.["lb-ip-guard.dev/holder"];
  }
}

function setup(options: { graceMs?: number; canCollect?: boolean; watch?: boolean } = {}) {
  const api = new FakeLeases();
  const usage = new ServiceUsage(policy, 30_000);
  const events: string[] = [];
  const claims = new Claims({
    client: api as unknown as KubeClient,
    namespace: NAMESPACE,
    usage,
    pools: () => poolSet(),
    graceMs: options.graceMs ?? 60_000,
    intervalMs: 60_000,
    canCollect: () => options.canCollect ?? true,
    logger: pino({ level: "silent" }),
    identity: "replica-test",
    onClaim: (result) => events.push(result),
    onCollected: (count) => events.push(`collected ${count}`),
  });
  if (options.watch !== false) api.watcher = claims;
  return { api, usage, claims, events };
}

function grant(ref: string, ips: string[], extra: Partial<Holder> = {}) {
  return { ref, holder: holder(ref, extra), addresses: ips.map(address), pool: "default" };
}

/** A claim Lease written `ageMs` ago. */
function oldLease(ip: string, ref: string, ageMs: number): KubeObject {
  const lease = claimLease(NAMESPACE, address(ip), holder(ref), "default", Date.now() - ageMs, "x");
  const metadata = lease.metadata as Record<string, unknown>;
  metadata.creationTimestamp = new Date(Date.now() - ageMs).toISOString();
  return lease;
}

describe("Lease names and contents", () => {
  it("names a claim after the canonical address", () => {
    assert.equal(leaseName(address("192.168.35.100")), "ip-192-168-35-100");
    assert.equal(leaseName(address("FD00:10:0::5")), "ip-fd00-10--5");
    assert.equal(leaseName(address("fd00::")), "ip-fd00--0");
    assert.equal(leaseName(address("::")), "ip---0");
    assert.equal(leaseName(address("2001:db8:1:2:3:4:5:6")), "ip-2001-db8-1-2-3-4-5-6");
  });

  it("records holder, pool and the sharing data, and reads them back", () => {
    const sharing = holder("team-a/dns", {
      sharingKey: "dns",
      ports: ["UDP/53", "TCP/53"],
      backendKey: "Local{app=dns}",
    });
    const lease = claimLease(
      NAMESPACE,
      address("10.0.0.7"),
      sharing,
      "lan",
      Date.UTC(2026, 0, 2),
      "pod-1",
    );
    assert.deepEqual(lease.metadata, {
      name: "ip-10-0-0-7",
      namespace: NAMESPACE,
      labels: { "app.kubernetes.io/managed-by": "lb-ip-guard" },
      annotations: {
        "lb-ip-guard.dev/address": "10.0.0.7",
        "lb-ip-guard.dev/holder": "team-a/dns",
        "lb-ip-guard.dev/pool": "lan",
        "lb-ip-guard.dev/sharing-key": "dns",
        "lb-ip-guard.dev/ports": "UDP/53,TCP/53",
        "lb-ip-guard.dev/backend-key": "Local{app=dns}",
        "lb-ip-guard.dev/claimed-by": "pod-1",
      },
    });
    assert.deepEqual(lease.spec, {
      holderIdentity: "team-a/dns",
      acquireTime: "2026-01-02T00:00:00.000000Z",
      renewTime: "2026-01-02T00:00:00.000000Z",
    });
    const claim = parseClaim(lease);
    assert.deepEqual(claim?.holder, sharing);
    assert.equal(claim?.pool, "lan");
    assert.equal(claim?.writtenAt, Date.UTC(2026, 0, 2));
  });

  it("ignores Leases that are not well-formed claims", () => {
    assert.equal(parseClaim({ metadata: { name: "leader" } }), undefined);
    const lease = claimLease(NAMESPACE, address("10.0.0.7"), holder("a/b"), "", 0, "x");
    (lease.metadata as Record<string, unknown>).name = "ip-10-0-0-8";
    assert.equal(parseClaim(lease), undefined);
  });
});

describe("collectReason", () => {
  const claim: Claim = {
    name: "ip-10-0-0-7",
    resourceVersion: "1",
    address: address("10.0.0.7"),
    holder: holder("team-a/web"),
    pool: "",
    writtenAt: 1_000_000,
  };
  const view = (holds: boolean, releasedAt?: number): HolderView => ({
    holds: () => holds,
    releasedAt: () => releasedAt,
  });

  it("keeps a claim whose Service holds the address, however old", () => {
    assert.equal(collectReason(claim, view(true), 1e12, 60_000), undefined);
  });

  it("keeps a young claim whose Service is not seen yet (an admission in flight)", () => {
    assert.equal(collectReason(claim, view(false), 1_000_000 + 59_000, 60_000), undefined);
  });

  it("collects it once the grace period is over", () => {
    assert.match(
      collectReason(claim, view(false), 1_000_000 + 61_000, 60_000) ?? "",
      /team-a\/web does not hold 10\.0\.0\.7 and the claim is 61 s old \(grace 60 s\)/,
    );
  });

  it("collects at once when the Service was seen giving the address up after the claim", () => {
    const released = 1_000_000 + RELEASE_MARGIN_MS + 1;
    assert.match(
      collectReason(claim, view(false, released), released + 5, 60_000) ?? "",
      /team-a\/web gave up 10\.0\.0\.7/,
    );
    // Released right around the claim's write: it may be a newer admission of the same name.
    assert.equal(collectReason(claim, view(false, 1_000_500), 1_000_600, 60_000), undefined);
  });
});

describe("Claims", () => {
  it("creates a Lease per address, and the watch puts it in the usage index", async () => {
    const { api, usage, claims, events } = setup();
    const result = await claims.claim(grant("default/web", ["10.20.0.1"]), signal);
    assert.deepEqual(result, { kind: "claimed" });
    assert.equal(api.holderOf("ip-10-20-0-1"), "default/web");
    const { family, value } = address("10.20.0.1");
    assert.deepEqual(
      usage.index.holdersOf(family, value).map((h) => h.ref),
      ["default/web"],
    );
    assert.deepEqual(events, ["claimed"]);
  });

  it("the same holder again is success; a just-written claim is not even asked for", async () => {
    const { api, claims, events } = setup();
    await claims.claim(grant("default/web", ["10.20.0.1"]), signal);
    api.calls.length = 0;
    assert.deepEqual(await claims.claim(grant("default/web", ["10.20.0.1"]), signal), {
      kind: "claimed",
    });
    assert.deepEqual(api.calls, []);
    assert.deepEqual(events, ["claimed", "existing"]);
  });

  it("an UPDATE keeping its address trusts the claim the watch shows, and makes one if there is none", async () => {
    const { api, claims } = setup();
    api.put(oldLease("10.20.0.9", "default/web", 30_000));
    api.calls.length = 0;
    const kept = { ...grant("default/web", ["10.20.0.9"]), kept: true };
    assert.deepEqual(await claims.claim(kept, signal), { kind: "claimed" });
    assert.deepEqual(api.calls, []);
    const unclaimed = { ...grant("default/web", ["10.20.0.19"]), kept: true };
    assert.deepEqual(await claims.claim(unclaimed, signal), { kind: "claimed" });
    assert.deepEqual(api.calls, ["POST /"]);
  });

  it("an older claim of the same holder is rewritten, so a collection based on it fails", async () => {
    const { api, claims } = setup();
    api.put(oldLease("10.20.0.2", "default/web", 30_000));
    const version = () =>
      (api.leases.get("ip-10-20-0-2")?.metadata as { resourceVersion?: string } | undefined)
        ?.resourceVersion;
    const before = version();
    assert.deepEqual(await claims.claim(grant("default/web", ["10.20.0.2"]), signal), {
      kind: "claimed",
    });
    assert.notEqual(version(), before);
    const after = parseClaim(api.leases.get("ip-10-20-0-2") ?? {});
    assert.ok((after?.writtenAt ?? 0) > Date.now() - 5000);
  });

  it("another holder's claim is lost, naming it; one it may share with is success", async () => {
    const { claims } = setup();
    await claims.claim(grant("default/first", ["10.20.0.3"], { sharingKey: "k" }), signal);
    const lost = await claims.claim(grant("default/second", ["10.20.0.3"]), signal);
    assert.equal(lost.kind, "lost");
    assert.ok(lost.kind === "lost");
    assert.equal(lost.holder.ref, "default/first");
    assert.equal(lost.owner, "claim:ip-10-20-0-3");
    const shared = await claims.claim(
      grant("default/third", ["10.20.0.3"], { sharingKey: "k", ports: ["UDP/53"] }),
      signal,
    );
    assert.deepEqual(shared, { kind: "claimed" });
  });

  it("without the watch, the Lease read after AlreadyExists decides", async () => {
    const { api, claims } = setup({ watch: false });
    api.put(
      claimLease(NAMESPACE, address("10.20.0.4"), holder("default/first"), "", Date.now(), "x"),
    );
    const lost = await claims.claim(grant("default/second", ["10.20.0.4"]), signal);
    assert.equal(lost.kind, "lost");
    assert.deepEqual(api.calls, ["POST /", "GET /ip-10-20-0-4"]);
  });

  it("dual-stack is all or nothing: the first family's new claim is removed when the second is lost", async () => {
    const { api, claims } = setup();
    await claims.claim(grant("default/other", ["fd00:20::5"]), signal);
    const result = await claims.claim(grant("default/dual", ["10.20.0.5", "fd00:20::5"]), signal);
    assert.equal(result.kind, "lost");
    assert.equal(api.leases.has("ip-10-20-0-5"), false);
    assert.equal(api.holderOf("ip-fd00-20--5"), "default/other");
    // And a new attempt does not take the removed claim for a fresh one of its own.
    await claims.claim(grant("default/dual", ["10.20.0.5"]), signal);
    assert.equal(api.holderOf("ip-10-20-0-5"), "default/dual");
  });

  it("an API failure is an error result, not an exception", async () => {
    const { api, claims, events } = setup();
    api.failing = { method: "POST", status: 500 };
    const result = await claims.claim(grant("default/web", ["10.20.0.6"]), signal);
    assert.equal(result.kind, "error");
    assert.ok(result.kind === "error");
    assert.match(result.message, /POST .*failing/);
    assert.deepEqual(events, ["error"]);
  });

  it("a stale claim of another holder (gone past the grace period) is taken over", async () => {
    const { api, claims, events } = setup({ graceMs: 10_000 });
    api.put(oldLease("10.20.0.7", "default/gone", 20_000));
    assert.deepEqual(await claims.claim(grant("default/new", ["10.20.0.7"]), signal), {
      kind: "claimed",
    });
    assert.equal(api.holderOf("ip-10-20-0-7"), "default/new");
    assert.deepEqual(events, ["collected 1", "claimed"]);
  });

  it("but not while the caches cannot be trusted to say the holder is gone", async () => {
    const { api, claims } = setup({ graceMs: 10_000, canCollect: false });
    api.put(oldLease("10.20.0.7", "default/gone", 20_000));
    assert.equal((await claims.claim(grant("default/new", ["10.20.0.7"]), signal)).kind, "lost");
  });

  it("settled() waits for the claims in flight", async () => {
    const { claims } = setup();
    assert.equal(claims.settled(), undefined);
    const running = claims.claim(grant("default/web", ["10.20.0.8"]), signal);
    const settled = claims.settled();
    assert.ok(settled !== undefined);
    await settled;
    assert.deepEqual(await running, { kind: "claimed" });
    assert.equal(claims.settled(), undefined);
  });
});

describe("collection and adoption", () => {
  it("collects old claims whose Service does not hold the address, keeps the rest, adopts Services without one", async () => {
    const { api, usage, claims, events } = setup({ graceMs: 10_000 });
    usage.upsert(lb("held", "10.20.0.10"));
    usage.upsert(lb("unclaimed", "10.20.0.11"));
    api.put(oldLease("10.20.0.10", "default/held", 60_000));
    api.put(oldLease("10.20.0.12", "default/gone", 60_000));
    api.put(oldLease("10.20.0.13", "default/in-flight", 1_000));
    await claims.pass();
    assert.deepEqual([...api.leases.keys()].sort(), [
      "ip-10-20-0-10",
      "ip-10-20-0-11",
      "ip-10-20-0-13",
    ]);
    assert.equal(api.holderOf("ip-10-20-0-11"), "default/unclaimed");
    assert.deepEqual(events, ["collected 1"]);
  });

  it("keeps a claim whose admission is in flight here (a hold), even when old", async () => {
    const { api, usage, claims } = setup({ graceMs: 10_000 });
    api.put(oldLease("10.20.0.14", "default/slow", 60_000));
    usage.hold(grant("default/slow", ["10.20.0.14"]), Date.now());
    assert.ok(usage.index.has(holdKey("default/slow")));
    await claims.pass();
    assert.equal(api.holderOf("ip-10-20-0-14"), "default/slow");
  });

  it("a claim changed since it was seen is not deleted (resourceVersion precondition)", async () => {
    const { api, claims } = setup({ graceMs: 10_000 });
    api.put(oldLease("10.20.0.15", "default/gone", 60_000));
    // Rewritten behind the watch's back (as if the event were still on its way).
    api.watcher = undefined;
    api.put(api.leases.get("ip-10-20-0-15") ?? {}, "MODIFIED");
    await claims.pass();
    assert.equal(api.leases.has("ip-10-20-0-15"), true);
    assert.ok(api.calls.includes("DELETE /ip-10-20-0-15"));
  });

  it("a Service seen giving its address up frees the claim at once", async () => {
    const { api, usage, claims } = setup({ graceMs: 60_000 });
    const service = lb("web", "10.20.0.16");
    usage.upsert(service);
    api.put(oldLease("10.20.0.16", "default/web", 10_000));
    const released = usage.remove(service);
    claims.serviceReleased("default/web", released, Date.now());
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(api.leases.has("ip-10-20-0-16"), false);
  });

  it("adopts a Service without a claim with its sharing data", async () => {
    const { api, usage, claims } = setup();
    const plain = lb("dns", "10.20.0.17");
    const service: ServiceObject = {
      ...plain,
      metadata: { ...plain.metadata, annotations: { "metallb.io/allow-shared-ip": "k" } },
    };
    usage.upsert(service);
    await claims.pass();
    assert.deepEqual(
      parseClaim(api.leases.get("ip-10-20-0-17") ?? {})?.holder,
      holderOf(service, policy, "default/dns"),
    );
  });
});
