// parseAdmissionReview and reply: what the server accepts as an AdmissionReview, and the one-line
// reason it gives for everything else.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseAdmissionReview, reply } from "../../src/admission/review.ts";
import { review, service } from "./fixtures.ts";

function refused(body: unknown): string {
  const parsed = parseAdmissionReview(body);
  // Described only on failure: some bodies are too deep for JSON.stringify.
  if (parsed.ok) assert.fail(`expected ${JSON.stringify(body)?.slice(0, 80)} to be refused`);
  assert.ok(!parsed.error.includes("\n"), parsed.error);
  return parsed.error;
}

const valid = () => review(service("web", { ip: "192.168.35.100" }));
const withRequest = (patch: Record<string, unknown>) => {
  const body = valid();
  return { ...body, request: { ...(body.request as object), ...patch } };
};

describe("parseAdmissionReview", () => {
  it("accepts an admission.k8s.io/v1 AdmissionReview and returns its request", () => {
    const parsed = parseAdmissionReview(valid());
    assert.ok(parsed.ok);
    assert.equal(parsed.value.operation, "CREATE");
    assert.equal(parsed.value.kind.kind, "Service");
  });

  it("refuses bodies that are not a JSON object", () => {
    for (const body of [null, undefined, "text", 42, true, [], [valid()]]) {
      assert.match(refused(body), /not a JSON object/);
    }
  });

  it("refuses other API versions and kinds", () => {
    assert.match(
      refused({ ...valid(), apiVersion: "admission.k8s.io/v1beta1" }),
      /admission\.k8s\.io\/v1beta1\/AdmissionReview; expected apiVersion admission\.k8s\.io\/v1/,
    );
    assert.match(refused({ ...valid(), kind: "Service" }), /kind AdmissionReview/);
    assert.match(refused({ apiVersion: "v1", kind: "Service" }), /expected apiVersion/);
    assert.match(refused({}), /expected apiVersion/);
  });

  it("refuses a review without a request object", () => {
    const { request: _, ...bare } = valid();
    assert.match(refused(bare), /no request object/);
    assert.match(refused({ ...bare, request: null }), /no request object/);
    assert.match(refused({ ...bare, request: "CREATE" }), /no request object/);
    assert.match(refused({ ...bare, request: [] }), /no request object/);
  });

  it("refuses a request without a uid", () => {
    assert.match(refused(withRequest({ uid: undefined })), /no uid/);
    assert.match(refused(withRequest({ uid: "" })), /no uid/);
    assert.match(refused(withRequest({ uid: 7 })), /no uid/);
  });

  it("refuses a request without a kind", () => {
    assert.match(refused(withRequest({ kind: undefined })), /no kind/);
    assert.match(refused(withRequest({ kind: "Service" })), /no kind/);
    assert.match(refused(withRequest({ kind: { group: "", version: "v1" } })), /no kind/);
  });

  it("refuses unknown or missing operations", () => {
    assert.match(refused(withRequest({ operation: "PATCH" })), /operation is PATCH; expected/);
    assert.match(refused(withRequest({ operation: "create" })), /operation is create/);
    assert.match(refused(withRequest({ operation: undefined })), /operation is undefined/);
  });

  // Found by the fuzz suite: String() of a list nested a few thousand levels deep overflowed the
  // stack, and the server answered 500.
  it("names a list or object sent as apiVersion, kind or operation by its type, however deep", () => {
    let deep: unknown = "x";
    for (let level = 0; level < 5_000; level++) deep = [deep];
    const wide = Array.from({ length: 1_000_000 }, (_, index) => index);
    assert.match(
      refused({ ...valid(), apiVersion: deep }),
      /^body is \(a list\)\/AdmissionReview;/,
    );
    assert.match(
      refused({ ...valid(), kind: { kind: deep } }),
      /^body is admission\.k8s\.io\/v1\/\(an object\);/,
    );
    assert.match(refused(withRequest({ operation: wide })), /operation is \(a list\); expected/);
    assert.match(refused(withRequest({ operation: 5 })), /operation is 5; expected/);
  });

  // A subResource that is not a string was skipped as allowed (seen beside the fuzz finding above).
  it("refuses a subResource that is not a string", () => {
    for (const subResource of [5, ["status"], { name: "status" }, true]) {
      assert.match(refused(withRequest({ subResource })), /request\.subResource is not a string/);
    }
    assert.ok(parseAdmissionReview(withRequest({ subResource: "status" })).ok);
  });

  it("names the field of kind that is missing or not a string", () => {
    const kind = { group: "", version: "v1", kind: "Service" };
    assert.match(refused(withRequest({ kind: { ...kind, group: 1 } })), /request\.kind\.group is/);
    assert.match(
      refused(withRequest({ kind: { ...kind, version: undefined } })),
      /kind\.version is/,
    );
  });

  it("names namespace and name when they are not strings, in that order", () => {
    assert.match(refused(withRequest({ namespace: 5, name: 5 })), /request\.namespace is not/);
    assert.match(refused(withRequest({ name: ["web"] })), /request\.name is not a string/);
  });

  it("names the first wrongly typed field of a Service by its path, object before oldObject", () => {
    const object = service("web", { ip: "192.168.35.100" });
    const broken = {
      ...object,
      spec: { ...object.spec, ports: [{ port: 80 }, { protocol: "TCP", port: "80" }], type: 1 },
    };
    assert.match(
      refused(withRequest({ object: broken, oldObject: { metadata: { labels: { a: 1 } } } })),
      /^AdmissionReview request\.object\.spec\.type is a number; expected a string$/,
    );
    assert.match(
      refused(withRequest({ object: { spec: { ports: broken.spec.ports } } })),
      /^AdmissionReview request\.object\.spec\.ports\[1\]\.port is a string; expected a number$/,
    );
    assert.match(
      refused(withRequest({ oldObject: { metadata: { labels: { "a\nb": true } } } })),
      /^AdmissionReview request\.oldObject\.metadata\.labels\["a\\nb"\] is a boolean; expected a string$/,
    );
    assert.match(
      refused(withRequest({ object: { status: { loadBalancer: { ingress: "10.0.0.1" } } } })),
      /^AdmissionReview request\.object\.status\.loadBalancer\.ingress is a string; expected a list of objects$/,
    );
    // A review of another kind is not read as a Service.
    const other = { group: "apps", version: "v1", kind: "Deployment" };
    assert.ok(parseAdmissionReview(withRequest({ kind: other, object: broken })).ok);
  });

  it("refuses an object that is not an object, but accepts a missing one (DELETE)", () => {
    assert.match(refused(withRequest({ object: "svc" })), /request\.object is not an object/);
    assert.match(refused(withRequest({ object: [1] })), /request\.object is not an object/);
    assert.ok(parseAdmissionReview(withRequest({ operation: "DELETE", object: null })).ok);
    assert.ok(parseAdmissionReview(withRequest({ operation: "DELETE", object: undefined })).ok);
  });
});

describe("reply", () => {
  it("wraps a response in an admission.k8s.io/v1 AdmissionReview", () => {
    assert.deepEqual(reply({ uid: "u", allowed: true }), {
      apiVersion: "admission.k8s.io/v1",
      kind: "AdmissionReview",
      response: { uid: "u", allowed: true },
    });
  });
});
