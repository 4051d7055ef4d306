import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  RELEASE_REFUSAL_MS,
  RELEASE_REST_MS,
  ServiceUsage,
} from "../../src/cluster/service-usage.ts";
import { holderOf, policyFor } from "../../src/ipam/decide.ts";
import type { ServiceObject } from "../../src/ipam/service.ts";
import { address } from "../ipam/fixtures.ts";

const policy = policyFor();

function service(
  name: string,
  ip?: string,
  extra: Partial<ServiceObject["spec"]> = {},
): ServiceObject {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace: "default" },
    spec: {
      type: "LoadBalancer",
      ports: [{ protocol: "TCP", port: 80 }],
      ...(ip ? { loadBalancerIP: ip } : {}),
      ...extra,
    },
  };
}

const holdersOf = (usage: ServiceUsage, text: string) => {
  const { family, value } = address(text);
  return usage.index.holdersOf(family, value).map((holder) => holder.ref);
};

function grant(name: string, ip: string) {
  const ref = `default/${name}`;
  return { ref, holder: holderOf(service(name, ip), policy, ref), addresses: [address(ip)] };
}

describe("ServiceUsage", () => {
  test("upsert, change and delete of Services", () => {
    const usage = new ServiceUsage(policy, 30_000);
    usage.upsert(service("a", "10.0.0.1"), 0);
    assert.deepEqual(holdersOf(usage, "10.0.0.1"), ["default/a"]);
    usage.upsert(service("a", "10.0.0.2"), 0);
    assert.deepEqual(holdersOf(usage, "10.0.0.1"), []);
    assert.deepEqual(holdersOf(usage, "10.0.0.2"), ["default/a"]);
    usage.upsert({ ...service("a"), spec: { type: "ClusterIP" } }, 0);
    assert.deepEqual(holdersOf(usage, "10.0.0.2"), []);
    usage.upsert(service("b", "10.0.0.3"), 0);
    usage.remove(service("b"), 0);
    assert.deepEqual(holdersOf(usage, "10.0.0.3"), []);
  });

  test("status addresses count as held", () => {
    const usage = new ServiceUsage(policy, 30_000);
    usage.upsert(
      { ...service("a"), status: { loadBalancer: { ingress: [{ ip: "10.0.0.9" }] } } },
      0,
    );
    assert.deepEqual(holdersOf(usage, "10.0.0.9"), ["default/a"]);
  });

  test("a hold keeps an address used until its Service appears, then the Service holds it", () => {
    const usage = new ServiceUsage(policy, 30_000);
    usage.hold(grant("new", "10.0.0.5"), 0);
    assert.equal(holdersOf(usage, "10.0.0.5").length, 1);
    usage.upsert(service("new", "10.0.0.5"), 0);
    assert.equal(usage.holds, 0);
    assert.deepEqual(holdersOf(usage, "10.0.0.5"), ["default/new"]);
  });

  test("holds expire after the TTL when the Service never shows up", () => {
    const usage = new ServiceUsage(policy, 1000);
    usage.hold(grant("ghost", "10.0.0.6"), 0);
    assert.equal(usage.expire(999), 0);
    assert.equal(holdersOf(usage, "10.0.0.6").length, 1);
    assert.equal(usage.expire(1000), 1);
    assert.deepEqual(holdersOf(usage, "10.0.0.6"), []);
  });

  test("a relist swaps in a new index: listed Services replace the old ones, holds survive", () => {
    const usage = new ServiceUsage(policy, 30_000);
    usage.upsert(service("old", "10.0.0.1"), 0);
    usage.upsert(service("kept", "10.0.0.2"), 0);
    usage.hold(grant("pending", "10.0.0.3"), 0);
    usage.hold(grant("arrived", "10.0.0.4"), 0);
    const before = usage.index;

    usage.replaceAll(
      [service("kept", "10.0.0.2"), service("arrived", "10.0.0.4"), service("other", "10.0.0.7")],
      0,
    );

    assert.notEqual(usage.index, before, "a new index, swapped in whole");
    assert.deepEqual(
      holdersOf(usage, "10.0.0.1"),
      [],
      "a Service gone from the list frees its address",
    );
    assert.deepEqual(holdersOf(usage, "10.0.0.2"), ["default/kept"]);
    assert.deepEqual(holdersOf(usage, "10.0.0.7"), ["default/other"]);
    assert.equal(
      holdersOf(usage, "10.0.0.3").length,
      1,
      "the in-flight hold moved to the new index",
    );
    assert.deepEqual(
      holdersOf(usage, "10.0.0.4"),
      ["default/arrived"],
      "the listed Service released its hold",
    );
    assert.equal(usage.holds, 1);
    // The moved hold still expires and releases on the new index.
    assert.equal(usage.expire(Number.MAX_SAFE_INTEGER), 1);
    assert.deepEqual(holdersOf(usage, "10.0.0.3"), []);
  });

  test("relist with many Services: every address stays used across the swap", () => {
    const usage = new ServiceUsage(policy, 30_000);
    const services = Array.from({ length: 2000 }, (_, i) =>
      service(`s${i}`, `10.1.${Math.floor(i / 250)}.${i % 250}`),
    );
    for (const each of services) usage.upsert(each, 0);
    usage.replaceAll(services, 0);
    for (const each of services.slice(0, 50)) {
      assert.equal(holdersOf(usage, each.spec?.loadBalancerIP ?? "").length, 1);
    }
    assert.equal(usage.index.used("IPv4").size, 2000);
  });

  test("says which addresses a changed or deleted Service gave up", () => {
    const usage = new ServiceUsage(policy, 30_000);
    assert.deepEqual(usage.upsert(service("a", "10.0.0.1"), 0), []);
    assert.deepEqual(
      usage.upsert(service("a", "10.0.0.2"), 0).map((each) => each.value),
      [address("10.0.0.1").value],
    );
    assert.deepEqual(
      usage.remove(service("a"), 0).map((each) => each.value),
      [address("10.0.0.2").value],
    );
  });

  test("what a Service gives up rests from its event (or the relist that finds it gone) for RELEASE_REST_MS", () => {
    const usage = new ServiceUsage(policy, 1000);
    const resting = (text: string) => {
      const { family, value } = address(text);
      return usage.resting.keepsFrom(family, value, "default/someone-else");
    };
    usage.upsert(service("moved", "10.0.0.1"), 0);
    usage.upsert(service("deleted", "10.0.0.2"), 0);
    usage.upsert(service("vanished", "10.0.0.3"), 0);
    usage.hold(grant("never-created", "10.0.0.4"), 0);
    usage.upsert(service("moved", "10.0.0.5"), 1000);
    usage.remove(service("deleted"), 2000);
    usage.replaceAll([service("moved", "10.0.0.5")], 3000);
    assert.deepEqual(["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"].map(resting), [
      true,
      true,
      true,
      false,
      false,
    ]);
    // A hold that expires was never a Service MetalLB saw: nothing to rest.
    assert.equal(usage.expire(3000), 1);
    assert.deepEqual(holdersOf(usage, "10.0.0.4"), []);
    assert.equal(resting("10.0.0.4"), false);
    const moved = usage.resting.refusalOf("IPv4", address("10.0.0.1").value);
    assert.deepEqual(
      [moved?.ref, moved?.refusedUntil],
      ["default/moved", 1000 + RELEASE_REFUSAL_MS],
    );
    usage.expire(1000 + RELEASE_REFUSAL_MS);
    assert.equal(usage.resting.refusalOf("IPv4", address("10.0.0.1").value), undefined);
    assert.equal(resting("10.0.0.1"), true, "refused no more, still resting");
    assert.equal(
      usage.resting.refusalOf("IPv4", address("10.0.0.3").value)?.ref,
      "default/vanished",
    );
    usage.expire(2000 + RELEASE_REST_MS);
    assert.deepEqual(["10.0.0.1", "10.0.0.2", "10.0.0.3"].map(resting), [false, false, true]);
    usage.expire(3000 + RELEASE_REST_MS);
    assert.equal(usage.resting.size, 0);
  });

  test("claims from the watch count as usage and survive a relist of the Services", () => {
    const usage = new ServiceUsage(policy, 30_000);
    const claimant = grant("claimant", "10.0.0.8").holder;
    usage.putClaim("claim:ip-10-0-0-8", claimant, [address("10.0.0.8")]);
    usage.replaceAll([service("x", "10.0.0.9")], 0);
    assert.deepEqual(holdersOf(usage, "10.0.0.8"), ["default/claimant"]);
    usage.replaceClaims([]);
    assert.deepEqual(holdersOf(usage, "10.0.0.8"), []);
  });

  test("a foreign claim met while claiming counts until the watch confirms it or the TTL passes", () => {
    const usage = new ServiceUsage(policy, 30_000);
    const other = grant("other", "10.0.0.5").holder;
    usage.recordForeign("claim:ip-10-0-0-5", other, [address("10.0.0.5")], 1000);
    assert.deepEqual(holdersOf(usage, "10.0.0.5"), ["default/other"]);
    usage.expire(1000 + 30_001);
    assert.deepEqual(holdersOf(usage, "10.0.0.5"), [], "never confirmed: dropped");
    usage.recordForeign("claim:ip-10-0-0-5", other, [address("10.0.0.5")], 2000);
    usage.putClaim("claim:ip-10-0-0-5", other, [address("10.0.0.5")]);
    usage.expire(Number.MAX_SAFE_INTEGER);
    assert.deepEqual(holdersOf(usage, "10.0.0.5"), ["default/other"], "confirmed: kept");
  });

  test("a relist returns what Services gave up while the watch was away, for their claims to retain", () => {
    const usage = new ServiceUsage(policy, 30_000);
    usage.replaceAll([service("web", "10.0.0.20"), service("api", "10.0.0.21")], 0);
    const released = usage.replaceAll([service("api", "10.0.0.21")], 1000);
    assert.deepEqual(
      [...released].map(([ref, addresses]) => [ref, addresses.map((each) => each.value)]),
      [["default/web", [address("10.0.0.20").value]]],
    );
  });

  test("a retention is no holding; seen within a rest of its release it rests from then; it ends", () => {
    const usage = new ServiceUsage(policy, 30_000);
    const since = 100_000;
    usage.putClaim("claim:ip-10-0-0-22", grant("web", "10.0.0.22").holder, [address("10.0.0.22")]);
    const retention = { ref: "default/web", since, until: since + 60_000 };
    usage.putRetention("claim:ip-10-0-0-22", address("10.0.0.22"), retention, since + 1000);
    assert.deepEqual(holdersOf(usage, "10.0.0.22"), []);
    const { family, value } = address("10.0.0.22");
    assert.equal(usage.retained.retentionOf(family, value)?.ref, "default/web");
    assert.equal(usage.resting.keepsFrom(family, value, "default/other"), true);
    usage.expire(since + RELEASE_REST_MS);
    assert.equal(
      usage.resting.keepsFrom(family, value, "default/other"),
      false,
      "rested from since",
    );
    // A replica that starts long after the release: retained, not resting.
    const later = new ServiceUsage(policy, 30_000);
    later.replaceRetentions(
      [["claim:ip-10-0-0-22", address("10.0.0.22"), retention]],
      since + RELEASE_REST_MS,
    );
    assert.equal(later.retained.size, 1);
    assert.equal(later.resting.keepsFrom(family, value, undefined), false);
    later.replaceRetentions([], since + RELEASE_REST_MS);
    assert.equal(later.retained.size, 0, "a relist without it drops it");
    usage.expire(since + 60_000);
    assert.equal(usage.retained.size, 0, "ended");
  });

  test("release ends a hold; isHeldBy sees the Service and its hold", () => {
    const usage = new ServiceUsage(policy, 30_000);
    usage.hold(grant("web", "10.0.0.6"), 0);
    assert.equal(usage.isHeldBy("default/web", address("10.0.0.6")), true);
    usage.release("default/web");
    assert.equal(usage.isHeldBy("default/web", address("10.0.0.6")), false);
    usage.upsert(service("web", "10.0.0.6"), 0);
    assert.equal(usage.isHeldBy("default/web", address("10.0.0.6")), true);
  });
});
