// Which Services are MetalLB's: with a class configured, only that class; without one, only
// Services without a class (MetalLB's own filter). A Service outside is never judged.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { admit } from "../../src/admission/admit.ts";
import { decide, isInScope, policyFor } from "../../src/ipam/decide.ts";
import { context, request, review, service } from "./fixtures.ts";

const classless = service("web", { ip: "not-an-ip" });
const metallb = service("web", { ip: "not-an-ip", spec: { loadBalancerClass: "metallb" } });
const other = service("web", { ip: "not-an-ip", spec: { loadBalancerClass: "cilium" } });
const explicitNull = service("web", { ip: "not-an-ip", spec: { loadBalancerClass: null } });

describe("loadBalancerClass scope", () => {
  it("without a configured class, judges classless Services only", () => {
    const policy = policyFor();
    assert.equal(isInScope(classless, policy), true);
    assert.equal(isInScope(explicitNull, policy), true);
    assert.equal(isInScope(metallb, policy), false);
    assert.equal(isInScope(other, policy), false);
  });

  it("with a configured class, judges that class only, not classless Services", () => {
    const policy = policyFor({ loadBalancerClass: "metallb" });
    assert.equal(isInScope(metallb, policy), true);
    assert.equal(isInScope(classless, policy), false);
    assert.equal(isInScope(explicitNull, policy), false);
    assert.equal(isInScope(other, policy), false);
    const decision = decide(classless, context().view, policy);
    assert.equal(decision.kind, "allowed");
    assert.match(decision.message, /no loadBalancerClass; MetalLB handles class "metallb" only/);
  });

  it("admits an out-of-scope Service untouched and denies an in-scope one", () => {
    const ctx = context({ loadBalancerClass: "metallb" });
    const skipped = admit("validate", request(review(classless)), ctx);
    assert.equal(skipped.decision, "skipped");
    assert.equal(skipped.response.allowed, true);
    const judged = admit("validate", request(review(metallb)), ctx);
    assert.equal(judged.response.allowed, false);
    assert.equal(judged.reason, "InvalidAddress");
  });
});
