// The Event a replica records on a Service whose address it granted (src/cluster/grant-events.ts):
// which replica records it, its reason, pool and name. Writing it is e2e (test/e2e/ha.test.ts).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { asRecord } from "../../src/base/objects.ts";
import { claimLease, parseClaim } from "../../src/cluster/claims/lease.ts";
import { grantEvent } from "../../src/cluster/grant-events.ts";
import { formatAddress, type IPAddress } from "../../src/ipam/address.ts";
import { holderOf, policyFor } from "../../src/ipam/decide.ts";
import type { ServiceObject } from "../../src/ipam/service.ts";
import { NAMESPACE } from "./claims/fake-leases.ts";

const policy = policyFor();
const NOW = Date.UTC(2026, 10, 30, 12);

function service(ip: string, options: { uid?: string; assignedFrom?: string } = {}) {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: {
      name: "web",
      namespace: "team-a",
      uid: options.uid ?? "uid-1",
      resourceVersion: "42",
      ...(options.assignedFrom !== undefined && {
        annotations: { "lb-ip-guard.dev/assigned-from": options.assignedFrom },
      }),
    },
    spec: { type: "LoadBalancer", loadBalancerIP: ip, ports: [{ port: 80, protocol: "TCP" }] },
  };
}

/** Claims of `ip` for team-a/web, written by `by`, as the claims watch shows them. */
function claimsBy(by: string, pool = "lan") {
  return (ip: IPAddress) => {
    const holder = holderOf(service(formatAddress(ip)) as ServiceObject, policy);
    return parseClaim(claimLease(NAMESPACE, ip, holder, pool, NOW, by));
  };
}

describe("grantEvent", () => {
  it("an auto-assigned address: AddressAssigned on the Service, naming the pool, from the replica that claimed it", () => {
    const event = grantEvent(
      service("10.0.0.7", { assignedFrom: "lan" }),
      policy,
      claimsBy("pod-1"),
      "pod-1",
      NOW,
    );
    assert.equal(event?.reason, "AddressAssigned");
    assert.equal(event?.type, "Normal");
    assert.equal(event?.message, 'lb-ip-guard assigned 10.0.0.7 from pool "lan"');
    assert.deepEqual(event?.involvedObject, {
      apiVersion: "v1",
      kind: "Service",
      namespace: "team-a",
      name: "web",
      uid: "uid-1",
      resourceVersion: "42",
    });
    assert.equal(asRecord(event?.metadata).namespace, "team-a");
  });

  it("a returned or taken-over address names whose it was", () => {
    const origin = "retained for team-a/web since 2026-11-29T12:00:00.000Z";
    const claimOf = (ip: IPAddress) => {
      const claim = claimsBy("pod-1")(ip);
      return claim === undefined ? undefined : { ...claim, origin };
    };
    const event = grantEvent(
      service("10.0.0.7", { assignedFrom: "lan" }),
      policy,
      claimOf,
      "pod-1",
      NOW,
    );
    assert.equal(event?.message, `lb-ip-guard assigned 10.0.0.7, ${origin}, from pool "lan"`);
    // The same grant without it is the same Event (replicas agree on its name).
    const plain = grantEvent(service("10.0.0.7"), policy, claimsBy("pod-1"), "pod-1", NOW);
    assert.deepEqual(asRecord(event?.metadata).name, asRecord(plain?.metadata).name);
  });

  it("an address the Service asked for: AddressGranted, with the pool its claim names", () => {
    const event = grantEvent(service("10.0.0.7"), policy, claimsBy("pod-1", "edge"), "pod-1", NOW);
    assert.equal(event?.reason, "AddressGranted");
    assert.equal(event?.message, 'lb-ip-guard granted 10.0.0.7 from pool "edge"');
  });

  it("no Event from a replica that did not claim it, nor without a claim, nor for a Service holding nothing", () => {
    assert.equal(
      grantEvent(service("10.0.0.7"), policy, claimsBy("pod-2"), "pod-1", NOW),
      undefined,
    );
    assert.equal(
      grantEvent(service("10.0.0.7"), policy, () => undefined, "pod-1", NOW),
      undefined,
    );
    const clusterIP = { ...service("10.0.0.7"), spec: { type: "ClusterIP" } };
    assert.equal(grantEvent(clusterIP, policy, claimsBy("pod-1"), "pod-1", NOW), undefined);
  });

  it("one name per grant: the same Service and addresses give the same name, another uid another", () => {
    const name = (object: ReturnType<typeof service>) =>
      String(asRecord(grantEvent(object, policy, claimsBy("pod-1"), "pod-1", NOW)?.metadata).name);
    assert.equal(name(service("10.0.0.7")), name(service("10.0.0.7")));
    assert.match(name(service("10.0.0.7")), /^web\.[0-9a-f]{16}$/);
    assert.notEqual(name(service("10.0.0.7")), name(service("10.0.0.7", { uid: "uid-2" })));
    assert.notEqual(name(service("10.0.0.7")), name(service("10.0.0.8")));
  });
});
