// The admission layer through its entry point: review JSON in (parsed as the server parses it),
// `admit`, response out. No HTTP: the server tests cover the transport.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { AdmissionContext } from "../../src/admission/admit.ts";
import { type AdmissionOutcome, admit, type Webhook } from "../../src/admission/admit.ts";
import { HoldBook } from "../../src/admission/holds.ts";
import { pointerSegment } from "../../src/admission/patch.ts";
import { policyFor } from "../../src/ipam/decide.ts";
import { RestingAddresses } from "../../src/ipam/resting.ts";
import type { ServiceObject } from "../../src/ipam/service.ts";
import { UsageIndex } from "../../src/ipam/usage.ts";
import { address, policyOfRelease } from "../ipam/fixtures.ts";
import {
  applyPatch,
  autoAssign,
  context,
  decodePatch,
  poolSet,
  request,
  review,
  service,
  usageOf,
} from "./fixtures.ts";

function run(
  webhook: Webhook,
  body: Record<string, unknown>,
  ctx: AdmissionContext = context(),
): AdmissionOutcome {
  const outcome = admit(webhook, request(body), ctx);
  const uid = (body.request as { uid: string }).uid;
  assert.equal(outcome.response.uid, uid, "response.uid must echo request.uid");
  return outcome;
}

function assertUntouched(outcome: AdmissionOutcome): void {
  assert.deepEqual(Object.keys(outcome.response).sort(), ["allowed", "uid"]);
  assert.equal(outcome.response.allowed, true);
  assert.equal(outcome.decision, "skipped");
  assert.equal(outcome.grant, undefined);
}

function assertDenied(outcome: AdmissionOutcome, reason: string, code: 403 | 422): string {
  assert.equal(outcome.response.allowed, false);
  assert.equal(outcome.decision, "denied");
  assert.equal(outcome.reason, reason);
  assert.equal(outcome.grant, undefined);
  assert.equal(outcome.response.patch, undefined);
  const status = outcome.response.status;
  assert.ok(status !== undefined);
  assert.equal(status.code, code);
  assert.equal(status.reason, code === 422 ? "Invalid" : "Forbidden");
  assert.ok(status.message.startsWith(`${reason}: `), status.message);
  assert.ok(!status.message.includes("\n"));
  assert.deepEqual(outcome.response.auditAnnotations, { decision: "denied", reason });
  return status.message;
}

const minio = service("minio-service", { namespace: "kubeflow", ip: "192.168.35.101" });

describe("operations and kinds that are not Service writes", () => {
  it("allows DELETE and CONNECT untouched, even of an invalid Service", () => {
    const bad = service("web", { ip: "not-an-ip" });
    for (const operation of ["DELETE", "CONNECT"]) {
      for (const webhook of ["mutate", "validate"] as const) {
        assertUntouched(run(webhook, review(bad, { operation, oldObject: bad })));
        assertUntouched(run(webhook, review(null, { operation, name: "web", namespace: "a" })));
      }
    }
  });

  it("allows other kinds untouched, even when they look like a LoadBalancer Service", () => {
    const lookalike = { ...service("web", { ip: "not-an-ip" }), kind: "ConfigMap" };
    for (const kind of [
      { group: "", version: "v1", kind: "ConfigMap" },
      { group: "apps", version: "v1", kind: "Deployment" },
      { group: "example.com", version: "v1", kind: "Service" },
    ]) {
      for (const webhook of ["mutate", "validate"] as const) {
        assertUntouched(run(webhook, review(lookalike, { kind })));
      }
    }
  });

  it("allows Services that are neither LoadBalancer nor auto-assign untouched", () => {
    const plain = service("web", { type: "ClusterIP" });
    assertUntouched(run("validate", review(plain)));
    assertUntouched(run("mutate", review(plain)));
  });

  it("ignores Services of another loadBalancerClass entirely", () => {
    const foreign = service("web", { ip: "not-an-ip", spec: { loadBalancerClass: "cilium" } });
    assertUntouched(run("validate", review(foreign)));
  });
});

describe("validate", () => {
  it("admits a free address of a pool, with a grant and the deprecation warning", () => {
    const outcome = run("validate", review(service("web", { ip: "192.168.35.105" })));
    assert.equal(outcome.response.allowed, true);
    assert.equal(outcome.decision, "allowed");
    assert.equal(outcome.service, "team-a/web");
    assert.deepEqual(outcome.response.auditAnnotations, { decision: "allowed" });
    assert.ok(outcome.response.warnings?.some((w) => /spec\.loadBalancerIP is deprecated/.test(w)));
    assert.equal(outcome.grant?.ref, "team-a/web");
    assert.deepEqual(
      outcome.grant?.addresses.map((a) => a.family),
      ["IPv4"],
    );
  });

  it("warns about deprecated metallb.universe.tf keys", () => {
    const old = service("web", {
      annotations: { "metallb.universe.tf/loadBalancerIPs": "192.168.35.105" },
    });
    const outcome = run("validate", review(old));
    assert.equal(outcome.response.allowed, true);
    assert.ok(
      outcome.response.warnings?.some((w) =>
        w.includes(
          "metallb.universe.tf/loadBalancerIPs is deprecated; use metallb.io/loadBalancerIPs",
        ),
      ),
      String(outcome.response.warnings),
    );
  });

  it("denies an address another Service holds: 403, reason first, both Services named", () => {
    const ctx = context({ usage: usageOf([minio]) });
    const message = assertDenied(
      run("validate", review(service("minio-copy", { ip: "192.168.35.101" })), ctx),
      "AddressInUse",
      403,
    );
    assert.match(message, /team-a\/minio-copy/);
    assert.match(message, /kubeflow\/minio-service/);
    assert.match(message, /192\.168\.35\.101/);
    assert.match(message, /free in pool "default"/);
  });

  it("answers 422 Invalid for an address that does not parse", () => {
    assertDenied(
      run("validate", review(service("web", { ip: "192.168.35.999" }))),
      "InvalidAddress",
      422,
    );
  });

  it("answers 403 Forbidden with the contract's codes for the other refusals", () => {
    const cases: [ServiceObject, string][] = [
      [service("a", { ip: "172.16.0.1" }), "NotInAnyPool"],
      [
        service("b", {
          ip: "192.168.35.101",
          annotations: { "metallb.io/loadBalancerIPs": "192.168.35.102" },
        }),
        "ConflictingFields",
      ],
      [service("c", { annotations: { "metallb.io/address-pool": "nope" } }), "PoolNotFound"],
      [
        service("d", {
          ip: "192.168.35.101",
          annotations: { "metallb.io/address-pool": "reserved" },
        }),
        "PoolMismatch",
      ],
      [service("e", { ip: "192.168.35.101", spec: { ipFamilies: ["IPv6"] } }), "FamilyMismatch"],
    ];
    for (const [object, reason] of cases)
      assertDenied(run("validate", review(object)), reason, 403);
  });

  it("fails closed while not ready: every in-scope Service is refused with NotReady", () => {
    const notReady = context({ ready: false });
    const message = assertDenied(
      run("validate", review(service("web", { ip: "192.168.35.105" })), notReady),
      "NotReady",
      403,
    );
    assert.match(message, /retry/);
    // Out-of-scope objects are not blocked by readiness.
    assertUntouched(run("validate", review(service("web", { type: "ClusterIP" })), notReady));
  });

  it("gives no grant to a dry run but the same decision", () => {
    const outcome = run(
      "validate",
      review(service("web", { ip: "192.168.35.105" }), { dryRun: true }),
    );
    assert.equal(outcome.response.allowed, true);
    assert.equal(outcome.grant, undefined);
    const ctx = context({ usage: usageOf([minio]) });
    const denied = run(
      "validate",
      review(service("x", { ip: "192.168.35.101" }), { dryRun: true }),
      ctx,
    );
    assertDenied(denied, "AddressInUse", 403);
  });

  it("refuses a Service it must allocate for that reached it unmutated, NotReady: MetalLB would serve its own pick", () => {
    for (const unmutated of [autoAssign("web"), service("web")]) {
      const message = assertDenied(run("validate", review(unmutated)), "NotReady", 403);
      assert.match(message, /team-a\/web .*without the address the mutating one grants.*retry/);
    }
    // Left to MetalLB on purpose, a LoadBalancer asking for nothing is admitted as it is.
    const annotated = context({ policy: policyFor({ allocation: "annotated" }) });
    assert.equal(run("validate", review(service("web")), annotated).response.allowed, true);
  });

  it("holds a granted address against a parallel request until released", () => {
    const usage = new UsageIndex();
    const holds = new HoldBook(usage, 10_000);
    const ctx = context({ usage });
    const first = run("validate", review(service("one", { ip: "192.168.35.105" })), ctx);
    assert.ok(first.grant !== undefined);
    holds.hold(first.grant, 0);
    assertDenied(
      run("validate", review(service("two", { ip: "192.168.35.105" })), ctx),
      "AddressInUse",
      403,
    );
    // The holder itself is not in conflict with its own hold (reinvocation, UPDATE).
    assert.equal(
      run("validate", review(service("one", { ip: "192.168.35.105" })), ctx).response.allowed,
      true,
    );
    holds.expire(10_001);
    assert.equal(
      run("validate", review(service("two", { ip: "192.168.35.105" })), ctx).response.allowed,
      true,
    );
  });
});

describe("UPDATE ratchet", () => {
  const shrunk = poolSet(`
address-pools:
- name: default
  protocol: layer2
  addresses:
  - 192.168.35.100-192.168.35.104
`);

  it("admits an update that does not change the requested address, with a warning, after the pool shrank", () => {
    const old = service("web", { ip: "192.168.35.108" });
    const edited = service("web", { ip: "192.168.35.108", labels: { tier: "front" } });
    const outcome = run(
      "validate",
      review(edited, { operation: "UPDATE", oldObject: old }),
      context({ pools: shrunk }),
    );
    assert.equal(outcome.response.allowed, true);
    assert.ok(
      outcome.response.warnings?.some(
        (w) =>
          w.startsWith("NotInAnyPool: ") &&
          w.includes("the stored Service is refused the same way"),
      ),
      String(outcome.response.warnings),
    );
  });

  it("denies an update that changes the requested address to a bad one", () => {
    const old = service("web", { ip: "192.168.35.108" });
    const moved = service("web", { ip: "192.168.35.109" });
    assertDenied(
      run(
        "validate",
        review(moved, { operation: "UPDATE", oldObject: old }),
        context({ pools: shrunk }),
      ),
      "NotInAnyPool",
      403,
    );
  });

  it("denies an update that starts requesting a held address", () => {
    const old = service("web", { ip: "192.168.35.105" });
    const moved = service("web", { ip: "192.168.35.101" });
    assertDenied(
      run(
        "validate",
        review(moved, { operation: "UPDATE", oldObject: old }),
        context({ usage: usageOf([minio]) }),
      ),
      "AddressInUse",
      403,
    );
  });

  it("does not ratchet a CREATE", () => {
    assertDenied(
      run("validate", review(service("web", { ip: "192.168.35.108" })), context({ pools: shrunk })),
      "NotInAnyPool",
      403,
    );
  });
});

describe("mutate", () => {
  it("assigns the next free address: type, spec.loadBalancerIP and assigned-from with ~1 escaping", () => {
    const ctx = context({ usage: usageOf([service("first", { ip: "192.168.35.100" })]) });
    const object = autoAssign("web");
    const outcome = run("mutate", review(object), ctx);
    assert.equal(outcome.response.allowed, true);
    assert.equal(outcome.decision, "assigned");
    assert.equal(outcome.response.patchType, "JSONPatch");
    assert.deepEqual(outcome.response.auditAnnotations, { decision: "assigned", pool: "default" });
    const patch = decodePatch(outcome.response.patch);
    assert.deepEqual(patch, [
      { op: "add", path: "/spec/type", value: "LoadBalancer" },
      { op: "add", path: "/spec/loadBalancerIP", value: "192.168.35.101" },
      { op: "add", path: "/metadata/annotations/lb-ip-guard.dev~1assigned-from", value: "default" },
    ]);
    assert.equal(outcome.grant?.ref, "team-a/web");
  });

  it("is idempotent: the patched object gets no patch, and validate admits it", () => {
    const ctx = context();
    const object = autoAssign("web");
    const first = run("mutate", review(object), ctx);
    const patched = applyPatch(object, decodePatch(first.response.patch));
    assert.equal(patched.spec?.loadBalancerIP, "192.168.35.100");
    // With the grant recorded (as the server does) and without.
    const usage = new UsageIndex();
    assert.ok(first.grant !== undefined);
    usage.set(first.grant.ref, first.grant.holder, first.grant.addresses);
    for (const again of [ctx, context({ usage })]) {
      const second = run("mutate", review(patched), again);
      assert.equal(second.response.allowed, true);
      assert.equal(second.response.patch, undefined);
      assert.equal(second.response.patchType, undefined);
      assert.equal(run("validate", review(patched), again).response.allowed, true);
    }
  });

  it("writes the address into the MetalLB annotation with --ip-target annotation", () => {
    const object = autoAssign("web");
    const outcome = run("mutate", review(object), context({ ipTarget: "annotation" }));
    const patch = decodePatch(outcome.response.patch);
    assert.deepEqual(
      patch.map((op) => op.path),
      [
        "/spec/type",
        "/metadata/annotations/lb-ip-guard.dev~1assigned-from",
        "/metadata/annotations/metallb.io~1loadBalancerIPs",
      ].sort((a, b) => (a === "/spec/type" ? -1 : b === "/spec/type" ? 1 : 0)),
    );
    const patched = applyPatch(object, patch);
    assert.equal(patched.metadata?.annotations?.["metallb.io/loadBalancerIPs"], "192.168.35.100");
    assert.equal(patched.spec?.loadBalancerIP, undefined);
    assert.equal(
      run("mutate", review(patched), context({ ipTarget: "annotation" })).response.patch,
      undefined,
    );
  });

  it("uses the annotation for dual-stack, with one address of each family from one pool", () => {
    const object = service("web", {
      type: "ClusterIP",
      annotations: { "lb-ip-guard.dev/auto-assign": "true", "metallb.io/address-pool": "dual" },
      spec: { ipFamilyPolicy: "RequireDualStack", ipFamilies: ["IPv4", "IPv6"] },
    });
    const outcome = run("mutate", review(object));
    const patched = applyPatch(object, decodePatch(outcome.response.patch));
    assert.equal(
      patched.metadata?.annotations?.["metallb.io/loadBalancerIPs"],
      "10.30.0.0,fd00:30::",
    );
    assert.equal(patched.metadata?.annotations?.["lb-ip-guard.dev/assigned-from"], "dual");
    assert.equal(patched.spec?.loadBalancerIP, undefined);
    assert.equal(outcome.grant?.addresses.length, 2);
    assert.equal(run("mutate", review(patched)).response.patch, undefined);
  });

  it("escapes ~ and / in JSON pointer segments (RFC 6901)", () => {
    assert.equal(pointerSegment("example.com/a~b"), "example.com~1a~0b");
    assert.equal(pointerSegment("~1"), "~01");
  });

  it("gives a dry run the full patch but no grant", () => {
    const outcome = run("mutate", review(autoAssign("web"), { dryRun: true }));
    assert.equal(outcome.decision, "assigned");
    assert.ok(decodePatch(outcome.response.patch).length > 0);
    assert.equal(outcome.grant, undefined);
  });

  it("grants nothing to a nameless object (generateName) and leaves the hold to validate", () => {
    const object = autoAssign("");
    const nameless = {
      ...object,
      metadata: { ...object.metadata, name: undefined, generateName: "web-" },
    };
    const outcome = run("mutate", review(nameless, { name: "" }));
    assert.equal(outcome.decision, "assigned");
    assert.equal(outcome.grant, undefined);
  });

  it("refuses an auto-assign it cannot satisfy (PoolExhausted), 403", () => {
    const full = usageOf(
      Array.from({ length: 11 }, (_, i) => service(`s${i}`, { ip: `192.168.35.${100 + i}` })),
    );
    const message = assertDenied(
      run("mutate", review(autoAssign("web")), context({ usage: full })),
      "PoolExhausted",
      403,
    );
    assert.match(message, /team-a\/web/);
  });

  it("refuses a LoadBalancer asking for nothing when the pools have no address for it, as it would an auto-assign", () => {
    const full = usageOf(
      Array.from({ length: 11 }, (_, i) => service(`s${i}`, { ip: `192.168.35.${100 + i}` })),
    );
    assertDenied(
      run("mutate", review(service("web")), context({ usage: full })),
      "PoolExhausted",
      403,
    );
  });

  it("leaves explicit requests to the validating webhook, even bad ones", () => {
    const outcome = run("mutate", review(service("web", { ip: "not-an-ip" })));
    assert.equal(outcome.response.allowed, true);
    assert.equal(outcome.response.patch, undefined);
  });

  it("while not ready, refuses only what needs an allocation", () => {
    const notReady = context({ ready: false });
    assertDenied(run("mutate", review(autoAssign("web")), notReady), "NotReady", 403);
    assertUntouched(run("mutate", review(service("web", { ip: "192.168.35.105" })), notReady));
  });
});

describe("one allocator, and nothing MetalLB serves is moved", () => {
  it("a LoadBalancer that requests no address is given the next free one by the mutation", () => {
    const ctx = context({ usage: usageOf([minio]) });
    const outcome = run("mutate", review(service("plain")), ctx);
    assert.equal(outcome.decision, "assigned");
    const patched = applyPatch(service("plain"), decodePatch(outcome.response.patch));
    assert.equal(patched.spec?.loadBalancerIP, "192.168.35.100");
    assert.deepEqual(outcome.grant?.addresses.map(String).length, 1);
  });

  it("--allocate annotated leaves it to MetalLB", () => {
    const ctx = context({ policy: policyFor({ allocation: "annotated" }) });
    const outcome = run("mutate", review(service("plain")), ctx);
    assert.equal(outcome.decision, "allowed");
    assert.equal(outcome.response.patch, undefined);
  });

  it("an update of a Service MetalLB serves keeps the served address, even when the request drops the field", () => {
    const stored = {
      ...service("web", { ip: "192.168.35.107" }),
      status: { loadBalancer: { ingress: [{ ip: "192.168.35.107" }] } },
    };
    // `kubectl replace` of the original manifest: no address, no status in the request.
    const replaced = service("web", { labels: { tier: "front" } });
    const body = review(replaced, { operation: "UPDATE", oldObject: stored });
    const mutated = run("mutate", body, context());
    assert.equal(mutated.response.patch, undefined, "nothing written: the address stays");
    const validated = run("validate", body, context());
    assert.equal(validated.response.allowed, true);
    assert.deepEqual(
      validated.grant?.addresses.map((address) => address.value),
      [3232244587n],
      "granted 192.168.35.107, not the lowest free",
    );
    assert.equal(validated.grant?.kept, true);
  });

  it("an oldObject of another name is not trusted for its status nor the ratchet", () => {
    const other = {
      ...service("someone-else", { ip: "192.168.35.108" }),
      status: { loadBalancer: { ingress: [{ ip: "192.168.35.107" }] } },
    };
    const outcome = run(
      "mutate",
      review(service("web"), { operation: "UPDATE", oldObject: other }),
      context(),
    );
    assert.equal(
      applyPatch(service("web"), decodePatch(outcome.response.patch)).spec?.loadBalancerIP,
      "192.168.35.100",
    );
  });
});

describe("the ratchet admits no new problem", () => {
  it("an update that keeps its address but now repeats a port of the Service it shares with is refused", () => {
    const shared = { "metallb.io/allow-shared-ip": "k" };
    const peer = service("peer", { ip: "192.168.35.105", annotations: shared });
    const old = service("web", {
      ip: "192.168.35.105",
      annotations: shared,
      spec: { ports: [{ protocol: "TCP", port: 443 }] },
    });
    const clashing = service("web", { ip: "192.168.35.105", annotations: shared });
    const ctx = context({ usage: usageOf([peer, old]) });
    assertDenied(
      run("validate", review(clashing, { operation: "UPDATE", oldObject: old }), ctx),
      "SharingConflict",
      403,
    );
  });
});

describe("the guarded release's keys", () => {
  const v011 = () => policyOfRelease("v0.11.0");
  const v012 = () => policyOfRelease("v0.12.1");

  it("v0.11: an ignored address annotation is refused by the validating webhook", () => {
    const object = service("ui", {
      annotations: { "metallb.universe.tf/loadBalancerIPs": "192.168.35.110" },
    });
    const message = assertDenied(
      run("validate", review(object), context({ policy: v011() })),
      "IgnoredAnnotation",
      403,
    );
    assert.match(message, /use spec\.loadBalancerIP/);
  });

  it("v0.12: --ip-target annotation writes the one annotation that release reads", () => {
    const outcome = run(
      "mutate",
      review(autoAssign("dash")),
      context({ policy: v012(), ipTarget: "annotation" }),
    );
    const patched = applyPatch(autoAssign("dash"), decodePatch(outcome.response.patch));
    assert.equal(
      patched.metadata?.annotations?.["metallb.universe.tf/loadBalancerIPs"],
      "192.168.35.100",
    );
    assert.equal(patched.metadata?.annotations?.["metallb.io/loadBalancerIPs"], undefined);
  });

  it("the validating answer after an auto-assign carries no warning about the field the mutation wrote", () => {
    const mutated = run("mutate", review(autoAssign("dash")), context());
    const patched = applyPatch(autoAssign("dash"), decodePatch(mutated.response.patch));
    const validated = run("validate", review(patched), context());
    assert.equal(validated.response.allowed, true);
    assert.equal(validated.response.warnings, undefined, String(validated.response.warnings));
  });
});

describe("a replace with the manifest a Service was auto-assigned from", () => {
  it("keeps the address MetalLB serves: the mutation writes that one back, not the next free", () => {
    const stored = {
      ...service("dash", {
        ip: "192.168.35.102",
        annotations: {
          "lb-ip-guard.dev/auto-assign": "true",
          "lb-ip-guard.dev/assigned-from": "default",
        },
      }),
      status: { loadBalancer: { ingress: [{ ip: "192.168.35.102" }] } },
    };
    const body = review(autoAssign("dash"), { operation: "UPDATE", oldObject: stored });
    const mutated = run("mutate", body, context());
    const patched = applyPatch(autoAssign("dash"), decodePatch(mutated.response.patch));
    assert.deepEqual(
      [patched.spec?.type, patched.spec?.loadBalancerIP],
      ["LoadBalancer", "192.168.35.102"],
    );
  });
});

describe("released addresses rest (ADR 0016)", () => {
  /** A context where `released` (address → the Service that gave it up) are refused until 60 s. */
  function restingContext(released: Record<string, string>, usage = new UsageIndex()) {
    const resting = new RestingAddresses();
    for (const [ip, ref] of Object.entries(released)) {
      resting.rest(address(ip), ref, { refusals: 60_000, rest: 90_000 });
    }
    const ctx = context({ usage });
    return { ...ctx, view: { ...ctx.view, resting } };
  }
  const patchedIP = (outcome: AdmissionOutcome, object: ServiceObject) =>
    applyPatch(object, decodePatch(outcome.response.patch)).spec?.loadBalancerIP;

  it("an allocation passes over an address another Service released, and gives it back to that Service", () => {
    const ctx = restingContext({ "192.168.35.100": "team-a/old" });
    assert.equal(
      patchedIP(run("mutate", review(service("new")), ctx), service("new")),
      "192.168.35.101",
    );
    assert.equal(
      patchedIP(run("mutate", review(service("old")), ctx), service("old")),
      "192.168.35.100",
    );
  });

  it("refuses PoolExhausted when every free address rests, saying a retry may succeed", () => {
    const held = usageOf(
      Array.from({ length: 10 }, (_, i) => service(`s${i}`, { ip: `192.168.35.${101 + i}` })),
    );
    const ctx = restingContext({ "192.168.35.100": "team-a/old" }, held);
    const message = assertDenied(run("mutate", review(service("new")), ctx), "PoolExhausted", 403);
    assert.match(message, /1 address released a moment ago.*retry in a few seconds/);
  });

  it("refuses another Service's explicit request for it AddressInUse, naming who released it and until when; its releaser may ask for it", () => {
    const ctx = restingContext({ "192.168.35.100": "team-a/old" });
    const message = assertDenied(
      run("validate", review(service("new", { ip: "192.168.35.100" })), ctx),
      "AddressInUse",
      403,
    );
    assert.match(
      message,
      /team-a\/old gave up a moment ago.*refused to others until 1970-01-01T00:01:00.000Z/,
    );
    const back = run("validate", review(service("old", { ip: "192.168.35.100" })), ctx);
    assert.equal(back.response.allowed, true);
  });
});
