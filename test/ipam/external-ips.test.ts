// spec.externalIPs is an address too (CVE-2020-8554), and a write of services/status may not put
// another Service's address into status.loadBalancer.ingress: the core's decisions.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { formatAddress } from "../../src/ipam/address.ts";
import {
  type ClusterView,
  checkStatusWrite,
  type Decision,
  decide,
  externalOwner,
  forgetService,
  policyFor,
  recordService,
} from "../../src/ipam/decide.ts";
import { PoolSet } from "../../src/ipam/pool.ts";
import type { ServiceObject } from "../../src/ipam/service.ts";
import { UsageIndex } from "../../src/ipam/usage.ts";
import { pool } from "./fixtures.ts";

const policy = policyFor();

function svc(
  ref: string,
  spec: Record<string, unknown>,
  extra: { annotations?: Record<string, string>; ingress?: string[] } = {},
): ServiceObject {
  const [namespace, name] = ref.split("/");
  return {
    metadata: { namespace, name, annotations: extra.annotations ?? {} },
    spec: { ports: [{ port: 80 }], selector: { app: name ?? "" }, ...spec },
    ...(extra.ingress && {
      status: { loadBalancer: { ingress: extra.ingress.map((ip) => ({ ip })) } },
    }),
  };
}

/** The Kubeflow pool, and Services recorded as the watch records them. */
function cluster(...services: ServiceObject[]): ClusterView {
  const view: ClusterView = {
    pools: new PoolSet([pool("default", ["192.168.35.100-192.168.35.110"])]),
    usage: new UsageIndex(),
    namespaceLabels: () => ({}),
  };
  for (const service of services) recordService(view.usage, service, policy);
  return view;
}

function refusal(decision: Decision | undefined, reason: string): string {
  assert.ok(decision !== undefined, "expected a refusal");
  assert.equal(decision.kind, "denied", decision.message);
  assert.equal(decision.kind === "denied" && decision.reason, reason, decision.message);
  return decision.message;
}

const minio = svc("kubeflow/minio-service", {
  type: "LoadBalancer",
  loadBalancerIP: "192.168.35.101",
});
const legacy = svc("team-b/edge", { type: "ClusterIP", externalIPs: ["192.168.35.108"] });

describe("spec.externalIPs", () => {
  test("an address another Service holds is refused AddressInUse naming it, whatever the type", () => {
    const view = cluster(minio);
    for (const type of ["ClusterIP", "NodePort", "LoadBalancer"]) {
      const message = refusal(
        decide(svc("team-a/steal", { type, externalIPs: ["192.168.35.101"] }), view, policy),
        "AddressInUse",
      );
      assert.match(
        message,
        /team-a\/steal lists 192\.168\.35\.101 in spec\.externalIPs, which kubeflow\/minio-service already holds/,
      );
    }
  });

  test("a sharing key does not let a Service take another's address through externalIPs", () => {
    const shared = { "metallb.universe.tf/allow-shared-ip": "k" };
    const view = cluster(
      svc(
        "team-a/a",
        { type: "LoadBalancer", loadBalancerIP: "192.168.35.104" },
        { annotations: shared },
      ),
    );
    refusal(
      decide(
        svc(
          "team-a/b",
          { type: "ClusterIP", externalIPs: ["192.168.35.104"] },
          { annotations: shared },
        ),
        view,
        policy,
      ),
      "AddressInUse",
    );
  });

  test("a free address of a pool is refused ExternalIPInPool, naming the pool and what is free", () => {
    const message = refusal(
      decide(
        svc("team-a/x", { type: "ClusterIP", externalIPs: ["10.9.9.9", "192.168.35.105"] }),
        cluster(minio),
        policy,
      ),
      "ExternalIPInPool",
    );
    assert.match(message, /192\.168\.35\.105 in spec\.externalIPs, which lies in pool "default"/);
    assert.match(
      message,
      /free in pool "default": 192\.168\.35\.100, 192\.168\.35\.102-192\.168\.35\.110/,
    );
  });

  test("an address outside every pool that no one holds is allowed; out of scope it says so", () => {
    const decision = decide(
      svc("team-a/x", { type: "ClusterIP", externalIPs: ["10.9.9.9"] }),
      cluster(minio),
      policy,
    );
    assert.equal(decision.kind, "allowed");
    assert.match(decision.message, /externalIPs lie in no pool and no other Service holds them/);
  });

  test("a Service's own externalIPs are no conflict when it is decided again (an UPDATE)", () => {
    const own = svc("team-a/own", { type: "ClusterIP", externalIPs: ["10.9.9.9"] });
    const decision = decide(own, cluster(own), policy);
    assert.equal(decision.kind, "allowed", decision.message);
  });

  test("an address a Service lists in externalIPs is held: a LoadBalancer request for it is refused naming it, and auto-assign skips it", () => {
    const view = cluster(legacy);
    const message = refusal(
      decide(
        svc("team-a/lb", { type: "LoadBalancer", loadBalancerIP: "192.168.35.108" }),
        view,
        policy,
      ),
      "AddressInUse",
    );
    assert.match(message, /192\.168\.35\.108, which team-b\/edge already holds/);
    // The holder shares with no one, whatever key the other Service sets.
    refusal(
      decide(
        svc(
          "team-a/lb2",
          { type: "LoadBalancer", loadBalancerIP: "192.168.35.108" },
          { annotations: { "metallb.universe.tf/allow-shared-ip": "" } },
        ),
        view,
        policy,
      ),
      "AddressInUse",
    );
    assert.ok(
      view.usage
        .used("IPv4")
        .has(view.usage.addressesOf(externalOwner("team-b/edge"))[0]?.value ?? 0n),
    );
  });

  test("recordService replaces what a Service holds, both kinds; forgetService drops both", () => {
    const usage = new UsageIndex();
    const both = svc("team-a/both", {
      type: "LoadBalancer",
      loadBalancerIP: "192.168.35.100",
      externalIPs: ["10.9.9.9"],
    });
    recordService(usage, both, policy);
    assert.deepEqual(usage.addressesOf("team-a/both").map(formatAddress), ["192.168.35.100"]);
    assert.deepEqual(usage.addressesOf(externalOwner("team-a/both")).map(formatAddress), [
      "10.9.9.9",
    ]);
    recordService(
      usage,
      svc("team-a/both", { type: "ClusterIP", externalIPs: ["10.9.9.8"] }),
      policy,
    );
    assert.equal(usage.has("team-a/both"), false);
    assert.deepEqual(usage.addressesOf(externalOwner("team-a/both")).map(formatAddress), [
      "10.9.9.8",
    ]);
    forgetService(usage, "team-a/both");
    assert.deepEqual([...usage.entries()], []);
  });
});

describe("a write of services/status", () => {
  const lb = (ref: string, ip?: string, annotations: Record<string, string> = {}) =>
    svc(
      ref,
      { type: "LoadBalancer", ...(ip !== undefined && { loadBalancerIP: ip }) },
      { annotations },
    );
  const withIngress = (service: ServiceObject, ...ips: string[]): ServiceObject => ({
    ...service,
    status: { loadBalancer: { ingress: ips.map((ip) => ({ ip })) } },
  });

  test("MetalLB's write of the address the Service requested, or was granted, passes", () => {
    const own = lb("team-a/own", "192.168.35.104");
    const view = cluster(minio, own);
    assert.equal(
      checkStatusWrite(withIngress(own, "192.168.35.104"), own, view, policy, "team-a/own"),
      undefined,
    );
    // An address no one holds (MetalLB's own pick under --allocate annotated) takes nothing.
    const plain = lb("team-a/plain");
    assert.equal(
      checkStatusWrite(withIngress(plain, "192.168.35.106"), plain, view, policy, "team-a/plain"),
      undefined,
    );
  });

  test("an address another Service holds is refused AddressInUse naming it, also one it lists in externalIPs", () => {
    const forger = lb("team-a/forger", "192.168.35.104");
    const view = cluster(minio, legacy, forger);
    const message = refusal(
      checkStatusWrite(
        withIngress(forger, "192.168.35.101"),
        forger,
        view,
        policy,
        "team-a/forger",
      ),
      "AddressInUse",
    );
    assert.match(
      message,
      /puts 192\.168\.35\.101 into status\.loadBalancer\.ingress, which kubeflow\/minio-service already holds/,
    );
    assert.match(
      refusal(
        checkStatusWrite(
          withIngress(forger, "192.168.35.108"),
          forger,
          view,
          policy,
          "team-a/forger",
        ),
        "AddressInUse",
      ),
      /team-b\/edge already holds/,
    );
    // A ClusterIP Service too: status is what is served, whatever the type.
    const cip = svc("team-a/cip", { type: "ClusterIP" });
    refusal(
      checkStatusWrite(withIngress(cip, "192.168.35.101"), cip, view, policy, "team-a/cip"),
      "AddressInUse",
    );
  });

  test("an address the stored status already has passes (nothing new), and so does one it may share", () => {
    const key = { "metallb.universe.tf/allow-shared-ip": "k" };
    const a = svc(
      "team-a/a",
      { type: "LoadBalancer", loadBalancerIP: "192.168.35.105", ports: [{ port: 80 }] },
      { annotations: key },
    );
    const b = svc(
      "team-a/b",
      { type: "LoadBalancer", loadBalancerIP: "192.168.35.105", ports: [{ port: 443 }] },
      { annotations: key },
    );
    const view = cluster(a, b);
    assert.equal(
      checkStatusWrite(withIngress(b, "192.168.35.105"), b, view, policy, "team-a/b"),
      undefined,
    );
    const stale = withIngress(lb("team-a/c"), "192.168.35.105");
    assert.equal(checkStatusWrite(stale, stale, view, policy, "team-a/c"), undefined);
  });
});
