// Writes of AddressReservations through the admission entry point, as the API server sends them
// to the validating webhook (validate-reservations.lb-ip-guard.dev): decided by decideReservation,
// refused NotReady before the state is synced, never mutated, and never confused with a Service.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type AdmissionContext, admit, type Webhook } from "../../src/admission/admit.ts";
import { ReservationIndex } from "../../src/ipam/reservations.ts";
import { address } from "../ipam/fixtures.ts";
import { context, request, review, service, usageOf } from "./fixtures.ts";

const KIND = { group: "lb-ip-guard.dev", version: "v1alpha1", kind: "AddressReservation" };

function reservationObject(name: string, addresses: unknown[], namespace = "team-a") {
  return {
    apiVersion: "lb-ip-guard.dev/v1alpha1",
    kind: "AddressReservation",
    metadata: { name, namespace },
    spec: { addresses },
  };
}

function write(
  webhook: Webhook,
  object: unknown,
  ctx: AdmissionContext,
  options: { operation?: string; subResource?: string } = {},
) {
  return admit(webhook, request(review(object, { kind: KIND, ...options })), ctx);
}

describe("admission of AddressReservations", () => {
  it("admits a free address of a pool, with the decision's message", () => {
    const outcome = write("validate", reservationObject("web", ["192.168.35.104"]), context());
    assert.equal(outcome.response.allowed, true);
    assert.equal(outcome.decision, "allowed");
    assert.equal(outcome.service, "team-a/web");
    assert.equal(outcome.grant, undefined, "a reservation holds nothing in flight");
    assert.match(outcome.decided?.message ?? "", /reserves 192\.168\.35\.104 of pool "default"/);
  });

  it("refuses with the reason code first, 403, on one line: another namespace's address", () => {
    const ctx = context({
      usage: usageOf([service("db", { namespace: "team-b", ip: "192.168.35.104" })]),
    });
    const outcome = write("validate", reservationObject("web", ["192.168.35.104"]), ctx);
    assert.equal(outcome.response.allowed, false);
    assert.equal(outcome.reason, "AddressInUse");
    assert.equal(outcome.response.status?.code, 403);
    const message = outcome.response.status?.message ?? "";
    assert.match(
      message,
      /^AddressInUse: AddressReservation team-a\/web reserves 192\.168\.35\.104, which team-b\/db/,
    );
    assert.ok(!message.includes("\n"));
  });

  it("refuses an address another reservation has, on CREATE and UPDATE alike", () => {
    const ctx = context();
    const reservations = ReservationIndex.from([
      {
        namespace: "team-b",
        name: "theirs",
        addresses: [address("192.168.35.104")],
        serviceName: undefined,
      },
    ]);
    const view = { ...ctx.view, reservations };
    for (const operation of ["CREATE", "UPDATE"]) {
      const outcome = write(
        "validate",
        reservationObject("web", ["192.168.35.104"]),
        { ...ctx, view },
        { operation },
      );
      assert.equal(outcome.reason, "AddressReserved", operation);
      assert.match(outcome.response.status?.message ?? "", /team-b\/theirs/);
    }
  });

  it("refuses NotReady until the state is synced, as a grant is", () => {
    const outcome = write(
      "validate",
      reservationObject("web", ["192.168.35.104"]),
      context({ ready: false }),
    );
    assert.equal(outcome.reason, "NotReady");
    assert.match(
      outcome.response.status?.message ?? "",
      /^NotReady: AddressReservation team-a\/web: /,
    );
  });

  it("is never mutated, and its status subresource is not the webhook's", () => {
    const object = reservationObject("web", ["not-an-address"]);
    assert.equal(write("mutate", object, context()).decision, "skipped");
    assert.equal(
      write("validate", object, context(), { subResource: "status", operation: "UPDATE" }).decision,
      "skipped",
    );
    assert.equal(write("validate", object, context()).reason, "InvalidAddress");
  });
});
