// Retention in the claim Leases (ADR 0018), against the in-memory Lease API: a holder's release
// rewrites its claim as a retention instead of deleting it; a retention is no holding (the
// claims watch feeds it to the retained addresses); the holder takes it back, another Service's
// grant takes it over; it goes when it ends; and a quota settled across two replicas' claims.
// The real API server with the real MetalLB is test/e2e/lifecycle.test.ts.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RETENTION_KEYS } from "../../../src/cluster/claims/lease.ts";
import { RELEASE_REST_MS } from "../../../src/cluster/service-usage.ts";
import { address, grant, lb, oldLease, setup, signal } from "./fake-leases.ts";

const DAY = 86_400_000;
const flush = () => new Promise((resolve) => setImmediate(resolve));

/** A claim of `ip` for default/<name>, written a minute ago, whose Service then went. */
async function released(
  fixture: ReturnType<typeof setup>,
  name: string,
  ip: string,
): Promise<void> {
  const { api, usage, repair } = fixture;
  const service = lb(name, ip);
  usage.upsert(service, 0);
  api.put(oldLease(ip, `default/${name}`, 60_000));
  repair.serviceReleased(`default/${name}`, usage.remove(service, Date.now()), Date.now());
  for (let turn = 0; turn < 5; turn += 1) await flush();
}

describe("retention in the claims", () => {
  it("a Service seen giving its address up leaves its claim a retention: no holding, retained, resting", async () => {
    const fixture = setup({ retainMs: DAY });
    const before = Date.now();
    await released(fixture, "web", "10.20.0.30");
    const { api, usage } = fixture;
    const annotations = api.annotationsOf("ip-10-20-0-30");
    const since = Date.parse(annotations["lb-ip-guard.dev/retained-since"] ?? "");
    const until = Date.parse(annotations["lb-ip-guard.dev/retained-until"] ?? "");
    assert.ok(since >= before && since <= Date.now());
    assert.equal(until - since, DAY);
    const { family, value } = address("10.20.0.30");
    assert.deepEqual(usage.index.holdersOf(family, value), []);
    assert.deepEqual(usage.retained.retentionOf(family, value), {
      ref: "default/web",
      since,
      until,
    });
    assert.equal(usage.resting.keepsFrom(family, value, "default/other"), true);
  });

  it("with --retain 0 the claim is deleted, as before retention", async () => {
    const fixture = setup();
    await released(fixture, "web", "10.20.0.31");
    assert.equal(fixture.api.leases.has("ip-10-20-0-31"), false);
    assert.equal(fixture.usage.retained.size, 0);
  });

  it("a claim whose Service never appeared is collected past its grace, not retained", async () => {
    const { api, usage, repair } = setup({ retainMs: DAY, graceMs: 10_000 });
    api.put(oldLease("10.20.0.32", "default/never", 60_000));
    await repair.pass();
    assert.equal(api.leases.has("ip-10-20-0-32"), false);
    assert.equal(usage.retained.size, 0);
  });

  it("a retention is kept past the grace, and deleted by the repair once it ends", async () => {
    const fixture = setup({ retainMs: DAY, graceMs: 10_000 });
    await released(fixture, "web", "10.20.0.33");
    const { api, usage, repair } = fixture;
    await repair.pass();
    assert.equal(api.leases.has("ip-10-20-0-33"), true);
    const lease = api.leases.get("ip-10-20-0-33") ?? {};
    const annotations = (lease.metadata as { annotations: Record<string, string> }).annotations;
    annotations["lb-ip-guard.dev/retained-until"] = new Date(Date.now() - 1).toISOString();
    api.put(lease, "MODIFIED");
    usage.expire(Date.now());
    assert.equal(usage.retained.size, 0);
    await repair.pass();
    assert.equal(api.leases.has("ip-10-20-0-33"), false);
  });

  it("the holder's own claim takes it back: the retention annotations go, the claim holds again", async () => {
    const fixture = setup({ retainMs: DAY });
    await released(fixture, "web", "10.20.0.34");
    const { api, usage, claimer } = fixture;
    assert.deepEqual(await claimer.claim(grant("default/web", ["10.20.0.34"]), signal), {
      kind: "claimed",
    });
    const annotations = api.annotationsOf("ip-10-20-0-34");
    for (const key of RETENTION_KEYS) assert.equal(annotations[key], undefined);
    assert.match(annotations["lb-ip-guard.dev/origin"] ?? "", /^retained for default\/web since /);
    const { family, value } = address("10.20.0.34");
    assert.deepEqual(
      usage.index.holdersOf(family, value).map((each) => each.ref),
      ["default/web"],
    );
    assert.equal(usage.retained.size, 0);
  });

  it("another Service's grant takes it over (delete, then create), though the watch shows it", async () => {
    const fixture = setup({ retainMs: DAY });
    await released(fixture, "web", "10.20.0.35");
    const { api, claimer } = fixture;
    api.calls.length = 0;
    assert.deepEqual(await claimer.claim(grant("default/other", ["10.20.0.35"]), signal), {
      kind: "claimed",
    });
    assert.deepEqual(api.calls, [
      "POST /",
      "GET /ip-10-20-0-35",
      "DELETE /ip-10-20-0-35",
      "POST /",
    ]);
    assert.equal(api.holderOf("ip-10-20-0-35"), "default/other");
    assert.match(
      api.annotationsOf("ip-10-20-0-35")["lb-ip-guard.dev/origin"] ?? "",
      /^retained for default\/web since /,
    );
  });

  it("a Service holding a retained address (its claim came after it) takes it over in the repair", async () => {
    const fixture = setup({ retainMs: DAY });
    await released(fixture, "web", "10.20.0.36");
    const { api, usage, repair } = fixture;
    usage.upsert(lb("other", "10.20.0.36"), Date.now());
    await repair.pass();
    assert.equal(api.holderOf("ip-10-20-0-36"), "default/other");
    assert.equal(api.annotationsOf("ip-10-20-0-36")["lb-ip-guard.dev/retained-since"], undefined);
  });

  it("a replica that starts (or relists) reads retentions from the Leases, and rests the fresh ones", async () => {
    const fixture = setup({ retainMs: DAY });
    await released(fixture, "fresh", "10.20.0.37");
    await released(fixture, "old", "10.20.0.38");
    const old = fixture.api.leases.get("ip-10-20-0-38") ?? {};
    const annotations = (old.metadata as { annotations: Record<string, string> }).annotations;
    annotations["lb-ip-guard.dev/retained-since"] = new Date(
      Date.now() - RELEASE_REST_MS - 1000,
    ).toISOString();
    fixture.api.put(old, "MODIFIED");
    const restarted = setup({ retainMs: DAY, api: fixture.api, watch: false });
    restarted.claimer.replace([...fixture.api.leases.values()]);
    const { retained, resting, index } = restarted.usage;
    assert.deepEqual([...retained.entries()].map(([, retention]) => retention.ref).sort(), [
      "default/fresh",
      "default/old",
    ]);
    for (const ip of ["10.20.0.37", "10.20.0.38"]) {
      const { family, value } = address(ip);
      assert.deepEqual(index.holdersOf(family, value), []);
    }
    const fresh = address("10.20.0.37");
    const old38 = address("10.20.0.38");
    assert.equal(resting.keepsFrom(fresh.family, fresh.value, undefined), true);
    assert.equal(resting.keepsFrom(old38.family, old38.value, undefined), false);
  });
});

describe("a quota settled on the claims of two replicas", () => {
  it("of grants racing for the last addresses, exactly as many stand as the quota has room for", async () => {
    for (const quota of [1, 2, 3]) {
      const first = setup({
        retainMs: DAY,
        quotaOf: (namespace) => (namespace === "default" ? { quota, beside: [] } : undefined),
      });
      // The second replica's watch is behind: each replica decided on its own claims alone.
      const second = setup({
        api: first.api,
        watch: false,
        identity: "replica-two",
        quotaOf: (namespace) => (namespace === "default" ? { quota, beside: [] } : undefined),
      });
      const results = await Promise.all(
        Array.from({ length: 6 }, (_, index) =>
          (index % 2 === 0 ? first : second).claimer.claim(
            grant(`default/svc-${index}`, [`10.20.1.${index + 1}`]),
            signal,
          ),
        ),
      );
      const kinds = results.map((result) => result.kind);
      assert.equal(kinds.filter((kind) => kind === "claimed").length, quota, kinds.join());
      assert.equal(kinds.filter((kind) => kind === "refused").length, 6 - quota);
      assert.equal(first.api.leases.size, quota);
    }
  });

  it("counts what the namespace holds without a claim; other namespaces' claims are not listed", async () => {
    const beside = [address("10.20.1.50")];
    const { api, claimer } = setup({
      quotaOf: (namespace) => (namespace === "default" ? { quota: 2, beside } : undefined),
    });
    assert.equal((await claimer.claim(grant("other/a", ["10.20.1.60"]), signal)).kind, "claimed");
    assert.equal((await claimer.claim(grant("default/a", ["10.20.1.61"]), signal)).kind, "claimed");
    const refused = await claimer.claim(grant("default/b", ["10.20.1.62"]), signal);
    assert.equal(refused.kind, "refused");
    assert.ok(refused.kind === "refused");
    assert.match(refused.message, /namespace default may hold 2 addresses/);
    assert.equal(api.leases.has("ip-10-20-1-62"), false);
  });
});
