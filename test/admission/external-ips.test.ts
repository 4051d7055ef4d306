// spec.externalIPs and writes of services/status through the admission entry point: which
// reviews are decided, by which webhook, with which answer.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type AdmissionContext, admit, type Webhook } from "../../src/admission/admit.ts";
import { policyFor, recordService } from "../../src/ipam/decide.ts";
import type { ServiceObject } from "../../src/ipam/service.ts";
import { UsageIndex } from "../../src/ipam/usage.ts";
import { context, request, review, service } from "./fixtures.ts";

const minio = service("minio-service", { namespace: "kubeflow", ip: "192.168.35.101" });
const edge = service("edge", {
  namespace: "team-b",
  type: "ClusterIP",
  spec: { externalIPs: ["192.168.35.108"] },
});

/** The fixture pools, with `held` recorded as the watch records them (externalIPs too). */
function cluster(options: { ready?: boolean } = {}, ...held: ServiceObject[]): AdmissionContext {
  const usage = new UsageIndex();
  for (const one of held) recordService(usage, one, policyFor());
  return context({ usage, ...options });
}

const external = (name: string, ips: string[], type = "ClusterIP") =>
  service(name, { type, spec: { externalIPs: ips } });

function run(webhook: Webhook, body: Record<string, unknown>, ctx: AdmissionContext) {
  return admit(webhook, request(body), ctx);
}

describe("spec.externalIPs in admission", () => {
  const ctx = cluster({}, minio, edge);

  it("a ClusterIP Service listing another's address is refused by the validating webhook, 403 AddressInUse naming it", () => {
    const body = review(external("steal", ["192.168.35.101"]));
    const outcome = run("validate", body, ctx);
    assert.equal(outcome.response.allowed, false);
    assert.equal(outcome.response.status?.code, 403);
    assert.equal(outcome.reason, "AddressInUse");
    assert.match(
      outcome.response.status?.message ?? "",
      /^AddressInUse: team-a\/steal lists 192\.168\.35\.101 in spec\.externalIPs, which kubeflow\/minio-service already holds/,
    );
    // The mutating webhook leaves refusals to the validating one.
    assert.equal(run("mutate", body, ctx).decision, "skipped");
  });

  it("a free address of a pool is ExternalIPInPool; one outside every pool is allowed", () => {
    const inPool = run("validate", review(external("x", ["192.168.35.105"], "NodePort")), ctx);
    assert.equal(inPool.reason, "ExternalIPInPool");
    assert.equal(inPool.response.status?.code, 403);
    const outside = run("validate", review(external("y", ["10.99.0.1"])), ctx);
    assert.equal(outside.response.allowed, true);
    assert.equal(outside.decision, "allowed");
    assert.equal(outside.grant, undefined, "externalIPs are not claimed");
  });

  it("a Service of another loadBalancerClass is still decided on its externalIPs", () => {
    const classed = service("classed", {
      spec: { loadBalancerClass: "other", externalIPs: ["192.168.35.101"] },
    });
    assert.equal(run("validate", review(classed), ctx).reason, "AddressInUse");
  });

  it("a LoadBalancer asking for an address a Service lists in externalIPs is refused naming it", () => {
    const outcome = run("validate", review(service("lb", { ip: "192.168.35.108" })), ctx);
    assert.equal(outcome.reason, "AddressInUse");
    assert.match(
      outcome.response.status?.message ?? "",
      /192\.168\.35\.108, which team-b\/edge already holds/,
    );
  });

  it("fails closed until synced, like every validation", () => {
    const outcome = run(
      "validate",
      review(external("early", ["10.99.0.1"])),
      cluster({ ready: false }),
    );
    assert.equal(outcome.reason, "NotReady");
  });

  it("an UPDATE of a Service whose stored object lists the same address is admitted under the ratchet; adding one is refused", () => {
    const stored = external("old", ["192.168.35.101"]);
    const relabelled = { ...stored, metadata: { ...stored.metadata, labels: { tier: "web" } } };
    const kept = run(
      "validate",
      review(relabelled, { operation: "UPDATE", oldObject: stored }),
      ctx,
    );
    assert.equal(kept.response.allowed, true);
    assert.match(
      kept.response.warnings?.[0] ?? "",
      /^AddressInUse: .*the stored Service is refused the same way/,
    );
    const clean = external("old", ["10.99.0.1"]);
    const added = run(
      "validate",
      review(external("old", ["10.99.0.1", "192.168.35.101"]), {
        operation: "UPDATE",
        oldObject: clean,
      }),
      ctx,
    );
    assert.equal(added.reason, "AddressInUse");
  });
});

describe("writes of services/status", () => {
  const own = service("own", { ip: "192.168.35.104" });
  const ctx = cluster({}, minio, edge, own);
  const served = (base: ServiceObject, ip: string): ServiceObject => ({
    ...base,
    status: { loadBalancer: { ingress: [{ ip }] } },
  });
  const statusWrite = (object: ServiceObject, stored: ServiceObject) =>
    review(object, { operation: "UPDATE", oldObject: stored, subResource: "status" });

  it("MetalLB's write of the Service's own address is allowed", () => {
    const outcome = run("validate", statusWrite(served(own, "192.168.35.104"), own), ctx);
    assert.equal(outcome.response.allowed, true);
    assert.equal(outcome.decision, "allowed");
  });

  it("a forged write of another Service's address is refused, 403 AddressInUse naming the holder", () => {
    const outcome = run("validate", statusWrite(served(own, "192.168.35.101"), own), ctx);
    assert.equal(outcome.response.allowed, false);
    assert.equal(outcome.reason, "AddressInUse");
    assert.match(
      outcome.response.status?.message ?? "",
      /status\.loadBalancer\.ingress, which kubeflow\/minio-service already holds/,
    );
    // and one a Service lists in externalIPs.
    assert.equal(
      run("validate", statusWrite(served(own, "192.168.35.108"), own), ctx).reason,
      "AddressInUse",
    );
  });

  it("is the validating webhook's alone, and passes while not synced (the writer is MetalLB)", () => {
    assert.equal(
      run("mutate", statusWrite(served(own, "192.168.35.101"), own), ctx).decision,
      "skipped",
    );
    const early = run(
      "validate",
      statusWrite(served(own, "192.168.35.101"), own),
      cluster({ ready: false }),
    );
    assert.equal(early.response.allowed, true);
    assert.equal(early.decision, "skipped");
  });

  it("a write of another subresource is not decided", () => {
    const body = review(served(own, "192.168.35.101"), {
      operation: "UPDATE",
      oldObject: own,
      subResource: "scale",
    });
    assert.equal(run("validate", body, ctx).decision, "skipped");
  });
});
