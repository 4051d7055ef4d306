// The repair of the claims (src/cluster/claims/repair.ts), against an in-memory Lease API:
// collection of stale claims guarded by their resourceVersion, a Service's release freeing its
// claim at once (or once the admission's tail is over), and adoption of Services that hold an
// address without a claim.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { holdKey } from "../../../src/admission/holds.ts";
import { parseClaim } from "../../../src/cluster/claims/lease.ts";
import { holderOf } from "../../../src/ipam/decide.ts";
import type { ServiceObject } from "../../../src/ipam/service.ts";
import { grant, lb, oldLease, policy, setup } from "./fake-leases.ts";

describe("collection and adoption", () => {
  it("collects old repair whose Service does not hold the address, keeps the rest, adopts Services without one", async () => {
    const { api, usage, repair, events } = setup({ graceMs: 10_000 });
    usage.upsert(lb("held", "10.20.0.10"), 0);
    usage.upsert(lb("unclaimed", "10.20.0.11"), 0);
    api.put(oldLease("10.20.0.10", "default/held", 60_000));
    api.put(oldLease("10.20.0.12", "default/gone", 60_000));
    api.put(oldLease("10.20.0.13", "default/in-flight", 1_000));
    await repair.pass();
    assert.deepEqual([...api.leases.keys()].sort(), [
      "ip-10-20-0-10",
      "ip-10-20-0-11",
      "ip-10-20-0-13",
    ]);
    assert.equal(api.holderOf("ip-10-20-0-11"), "default/unclaimed");
    assert.deepEqual(events, ["collected 1"]);
  });

  it("keeps a claim whose admission is in flight here (a hold), even when old", async () => {
    const { api, usage, repair } = setup({ graceMs: 10_000 });
    api.put(oldLease("10.20.0.14", "default/slow", 60_000));
    usage.hold(grant("default/slow", ["10.20.0.14"]), Date.now());
    assert.ok(usage.index.has(holdKey("default/slow")));
    await repair.pass();
    assert.equal(api.holderOf("ip-10-20-0-14"), "default/slow");
  });

  it("a claim changed since it was seen is not deleted (resourceVersion precondition)", async () => {
    const { api, repair } = setup({ graceMs: 10_000 });
    api.put(oldLease("10.20.0.15", "default/gone", 60_000));
    // Rewritten behind the watch's back (as if the event were still on its way).
    api.watcher = undefined;
    api.put(api.leases.get("ip-10-20-0-15") ?? {}, "MODIFIED");
    await repair.pass();
    assert.equal(api.leases.has("ip-10-20-0-15"), true);
    assert.ok(api.calls.includes("DELETE /ip-10-20-0-15"));
  });

  it("a Service seen giving its address up frees the claim at once", async () => {
    const { api, usage, repair } = setup({ graceMs: 60_000 });
    const service = lb("web", "10.20.0.16");
    usage.upsert(service, 0);
    api.put(oldLease("10.20.0.16", "default/web", 10_000));
    const released = usage.remove(service, 0);
    repair.serviceReleased("default/web", released, Date.now());
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(api.leases.has("ip-10-20-0-16"), false);
  });

  it("a Service deleted a moment after its claim was written frees it once the admission's tail is over, not after the grace", async (t) => {
    t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: Date.parse("2026-12-07T12:00:00Z") });
    const { api, usage, repair } = setup({ graceMs: 60_000 });
    const service = lb("brief", "10.20.0.18");
    usage.upsert(service, 0);
    api.put(oldLease("10.20.0.18", "default/brief", 1_000));
    repair.serviceReleased("default/brief", usage.remove(service, Date.now()), Date.now());
    await new Promise((resolve) => setImmediate(resolve));
    // Within the tail the release may be an older Service of the name's: the claim stays.
    assert.equal(api.leases.has("ip-10-20-0-18"), true);
    t.mock.timers.tick(8_900);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(api.leases.has("ip-10-20-0-18"), true);
    t.mock.timers.tick(500);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(api.leases.has("ip-10-20-0-18"), false);
  });

  it("adopts a Service without a claim with its sharing data", async () => {
    const { api, usage, repair } = setup();
    const plain = lb("dns", "10.20.0.17");
    const service: ServiceObject = {
      ...plain,
      metadata: { ...plain.metadata, annotations: { "metallb.io/allow-shared-ip": "k" } },
    };
    usage.upsert(service, 0);
    await repair.pass();
    assert.deepEqual(
      parseClaim(api.leases.get("ip-10-20-0-17") ?? {})?.holder,
      holderOf(service, policy, "default/dns"),
    );
  });
});
