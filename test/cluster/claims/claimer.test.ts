// Claiming addresses as Leases (src/cluster/claims/claimer.ts), against an in-memory Lease API:
// create-if-absent, the same holder again, sharing, losing, dual-stack all or nothing, API
// failures as results, and taking over a stale claim. The real API server is
// test/e2e/ha.test.ts.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { claimLease, parseClaim } from "../../../src/cluster/claims/lease.ts";
import { address, grant, holder, NAMESPACE, oldLease, setup, signal } from "./fake-leases.ts";

describe("Claimer", () => {
  it("creates a Lease per address, and the watch puts it in the usage index", async () => {
    const { api, usage, claimer, events } = setup();
    const result = await claimer.claim(grant("default/web", ["10.20.0.1"]), signal);
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
    const { api, claimer, events } = setup();
    await claimer.claim(grant("default/web", ["10.20.0.1"]), signal);
    api.calls.length = 0;
    assert.deepEqual(await claimer.claim(grant("default/web", ["10.20.0.1"]), signal), {
      kind: "claimed",
    });
    assert.deepEqual(api.calls, []);
    assert.deepEqual(events, ["claimed", "existing"]);
  });

  it("an UPDATE keeping its address trusts the claim the watch shows, and makes one if there is none", async () => {
    const { api, claimer } = setup();
    api.put(oldLease("10.20.0.9", "default/web", 30_000));
    api.calls.length = 0;
    const kept = { ...grant("default/web", ["10.20.0.9"]), kept: true };
    assert.deepEqual(await claimer.claim(kept, signal), { kind: "claimed" });
    assert.deepEqual(api.calls, []);
    const unclaimed = { ...grant("default/web", ["10.20.0.19"]), kept: true };
    assert.deepEqual(await claimer.claim(unclaimed, signal), { kind: "claimed" });
    assert.deepEqual(api.calls, ["POST /"]);
  });

  it("an older claim of the same holder is rewritten, so a collection based on it fails", async () => {
    const { api, claimer } = setup();
    api.put(oldLease("10.20.0.2", "default/web", 30_000));
    const version = () =>
      (api.leases.get("ip-10-20-0-2")?.metadata as { resourceVersion?: string } | undefined)
        ?.resourceVersion;
    const before = version();
    assert.deepEqual(await claimer.claim(grant("default/web", ["10.20.0.2"]), signal), {
      kind: "claimed",
    });
    assert.notEqual(version(), before);
    const after = parseClaim(api.leases.get("ip-10-20-0-2") ?? {});
    assert.ok((after?.writtenAt ?? 0) > Date.now() - 5000);
    // The grace still counts from the first grant.
    assert.ok((after?.acquiredAt ?? 0) < Date.now() - 29_000);
  });

  it("repeats of a grant whose Service never appears renew its claim but keep its first grant's time; past the grace, a repeat is a grant anew", async () => {
    const { api, claimer } = setup({ graceMs: 60_000 });
    const lease = (ip: string) => parseClaim(api.leases.get(`ip-${ip.replaceAll(".", "-")}`) ?? {});
    api.put(oldLease("10.20.0.5", "default/ghost", 50_000));
    const first = lease("10.20.0.5");
    await claimer.claim(grant("default/ghost", ["10.20.0.5"]), signal);
    assert.equal(lease("10.20.0.5")?.acquiredAt, first?.acquiredAt);
    assert.ok((lease("10.20.0.5")?.writtenAt ?? 0) > Date.now() - 5000);

    api.put(oldLease("10.20.0.4", "default/ghost", 65_000));
    await claimer.claim(grant("default/ghost", ["10.20.0.4"]), signal);
    assert.ok((lease("10.20.0.4")?.acquiredAt ?? 0) > Date.now() - 5000);
  });

  it("another holder's claim is lost, naming it; one it may share with is success", async () => {
    const { claimer } = setup();
    await claimer.claim(grant("default/first", ["10.20.0.3"], { sharingKey: "k" }), signal);
    const lost = await claimer.claim(grant("default/second", ["10.20.0.3"]), signal);
    assert.equal(lost.kind, "lost");
    assert.ok(lost.kind === "lost");
    assert.equal(lost.holder.ref, "default/first");
    assert.equal(lost.owner, "claim:ip-10-20-0-3");
    const shared = await claimer.claim(
      grant("default/third", ["10.20.0.3"], { sharingKey: "k", ports: ["UDP/53"] }),
      signal,
    );
    assert.deepEqual(shared, { kind: "claimed" });
  });

  it("without the watch, the Lease read after AlreadyExists decides", async () => {
    const { api, claimer } = setup({ watch: false });
    api.put(
      claimLease(NAMESPACE, address("10.20.0.4"), holder("default/first"), "", Date.now(), "x"),
    );
    const lost = await claimer.claim(grant("default/second", ["10.20.0.4"]), signal);
    assert.equal(lost.kind, "lost");
    assert.deepEqual(api.calls, ["POST /", "GET /ip-10-20-0-4"]);
  });

  it("dual-stack is all or nothing: the first family's new claim is removed when the second is lost", async () => {
    const { api, claimer } = setup();
    await claimer.claim(grant("default/other", ["fd00:20::5"]), signal);
    const result = await claimer.claim(grant("default/dual", ["10.20.0.5", "fd00:20::5"]), signal);
    assert.equal(result.kind, "lost");
    assert.equal(api.leases.has("ip-10-20-0-5"), false);
    assert.equal(api.holderOf("ip-fd00-20--5"), "default/other");
    // And a new attempt does not take the removed claim for a fresh one of its own.
    await claimer.claim(grant("default/dual", ["10.20.0.5"]), signal);
    assert.equal(api.holderOf("ip-10-20-0-5"), "default/dual");
  });

  it("an API failure is an error result, not an exception", async () => {
    const { api, claimer, events } = setup();
    api.failing = { method: "POST", status: 500 };
    const result = await claimer.claim(grant("default/web", ["10.20.0.6"]), signal);
    assert.equal(result.kind, "error");
    assert.ok(result.kind === "error");
    assert.match(result.message, /POST .*failing/);
    assert.deepEqual(events, ["error"]);
  });

  it("a stale claim of another holder (gone past the grace period) is taken over", async () => {
    const { api, claimer, events } = setup({ graceMs: 10_000 });
    api.put(oldLease("10.20.0.7", "default/gone", 20_000));
    assert.deepEqual(await claimer.claim(grant("default/new", ["10.20.0.7"]), signal), {
      kind: "claimed",
    });
    assert.equal(api.holderOf("ip-10-20-0-7"), "default/new");
    assert.deepEqual(events, ["collected 1", "claimed"]);
  });

  it("but not while the caches cannot be trusted to say the holder is gone", async () => {
    const { api, claimer } = setup({ graceMs: 10_000, canCollect: false });
    api.put(oldLease("10.20.0.7", "default/gone", 20_000));
    assert.equal((await claimer.claim(grant("default/new", ["10.20.0.7"]), signal)).kind, "lost");
  });

  it("settled() waits for the claimer in flight", async () => {
    const { claimer } = setup();
    assert.equal(claimer.settled(), undefined);
    const running = claimer.claim(grant("default/web", ["10.20.0.8"]), signal);
    const settled = claimer.settled();
    assert.ok(settled !== undefined);
    await settled;
    assert.deepEqual(await running, { kind: "claimed" });
    assert.equal(claimer.settled(), undefined);
  });
});
