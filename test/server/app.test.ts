// The fastify app through app.inject (no sockets): every endpoint, every malformed request, the
// record-after-decision contract with the state, logs and metrics.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { describe, it } from "node:test";
import { pino } from "pino";
import type { AdmissionState } from "../../src/admission/ports.ts";
import { generateCa, issueServingCertificate } from "../../src/certs/issue.ts";
import { buildApp } from "../../src/server/app.ts";
import { Metrics } from "../../src/server/metrics.ts";
import { autoAssign, context, decodePatch, review, service } from "../admission/fixtures.ts";
import { harness } from "./helpers.ts";

const EXAMPLE = readFileSync(
  new URL("../../examples/admission-review.json", import.meta.url),
  "utf8",
);
const JSON_TYPE = { "content-type": "application/json" };

async function post(
  h: ReturnType<typeof harness>,
  path: string,
  payload: unknown,
  headers: Record<string, string> = JSON_TYPE,
) {
  const response = await h.app.inject({
    method: "POST",
    url: path,
    headers,
    payload: typeof payload === "string" ? payload : JSON.stringify(payload),
  });
  return response;
}

/** A 4xx whose body is exactly one line of JSON `{"error": "..."}`. */
function assertClientError(
  response: { statusCode: number; body: string },
  status: number,
  pattern: RegExp,
) {
  assert.equal(response.statusCode, status, response.body);
  assert.ok(!response.body.trimEnd().includes("\n"), response.body);
  const body = JSON.parse(response.body);
  assert.deepEqual(Object.keys(body), ["error"]);
  assert.match(body.error, pattern);
}

describe("POST /mutate and /validate", () => {
  it("answers the example AdmissionReview with the uid and a JSONPatch", async () => {
    const h = harness();
    const response = await post(h, "/mutate", EXAMPLE);
    assert.equal(response.statusCode, 200);
    assert.match(String(response.headers["content-type"]), /^application\/json/);
    const answer = JSON.parse(response.body);
    assert.equal(answer.apiVersion, "admission.k8s.io/v1");
    assert.equal(answer.kind, "AdmissionReview");
    assert.equal(answer.response.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert.equal(answer.response.allowed, true);
    assert.equal(answer.response.patchType, "JSONPatch");
    assert.deepEqual(decodePatch(answer.response.patch)[1], {
      op: "add",
      path: "/spec/loadBalancerIP",
      value: "192.168.35.100",
    });
  });

  it("records the grant: a later Service asking for the same address is denied", async () => {
    const h = harness();
    assert.equal((await post(h, "/mutate", EXAMPLE)).statusCode, 200);
    const response = await post(h, "/validate", review(service("copy", { ip: "192.168.35.100" })));
    assert.equal(response.statusCode, 200);
    const answer = JSON.parse(response.body).response;
    assert.equal(answer.allowed, false);
    assert.equal(answer.status.code, 403);
    assert.match(
      answer.status.message,
      /^AddressInUse: team-a\/copy requests 192\.168\.35\.100, which kubeflow\/ml-pipeline-ui already holds/,
    );
    // Auto-assign moves on to the next address.
    const next = JSON.parse((await post(h, "/mutate", review(autoAssign("next")))).body).response;
    assert.equal(decodePatch(next.patch)[1]?.value, "192.168.35.101");
  });

  it("records nothing for dry runs: two dry-run mutations get the same address", async () => {
    const h = harness();
    for (const name of ["a", "b"]) {
      const response = await post(h, "/mutate", review(autoAssign(name), { dryRun: true }));
      const answer = JSON.parse(response.body).response;
      assert.equal(decodePatch(answer.patch)[1]?.value, "192.168.35.100");
    }
    assert.equal(h.state.view.usage.used("IPv4").size, 0);
  });

  it("records a validated explicit address", async () => {
    const h = harness();
    await post(h, "/validate", review(service("web", { ip: "192.168.35.107" })));
    assert.equal(h.state.view.usage.has("team-a/web"), true);
  });

  it("allows reviews of other resources untouched", async () => {
    const h = harness();
    const body = review(
      { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "x", namespace: "a" } },
      { kind: { group: "", version: "v1", kind: "ConfigMap" } },
    );
    const response = await post(h, "/validate", body);
    assert.equal(response.statusCode, 200);
    const answer = JSON.parse(response.body).response;
    assert.deepEqual(answer, { uid: (body.request as { uid: string }).uid, allowed: true });
  });

  it("accepts application/json with parameters", async () => {
    const h = harness();
    const response = await post(h, "/mutate", EXAMPLE, {
      "content-type": "application/json; charset=utf-8",
    });
    assert.equal(response.statusCode, 200);
  });

  it("logs one JSON record per review with uid, Service, operation, webhook, decision, reason, dryRun, granted, duration", async () => {
    const h = harness();
    await post(h, "/mutate", EXAMPLE);
    await post(h, "/validate", review(service("copy", { ip: "192.168.35.100" }), { dryRun: true }));
    await new Promise((resolve) => setImmediate(resolve)); // written once the turn's answers are out
    const reviews = h.logs.filter((record) => record.msg === "admission review");
    assert.equal(reviews.length, 2);
    const [mutated, denied] = reviews;
    assert.equal(mutated?.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert.equal(mutated?.namespace, "kubeflow");
    assert.equal(mutated?.name, "ml-pipeline-ui");
    assert.equal(mutated?.operation, "CREATE");
    assert.equal(mutated?.webhook, "mutate");
    assert.equal(mutated?.decision, "assigned");
    assert.equal(mutated?.dryRun, false);
    assert.equal(typeof mutated?.durationMs, "number");
    assert.equal(denied?.decision, "denied");
    assert.equal(denied?.reason, "AddressInUse");
    assert.equal(denied?.dryRun, true);
    // The fields of a record, in order; none is written without a value.
    const fields = ["level", "time", "pid", "hostname", "uid", "webhook", "operation", "kind"];
    const tail = ["namespace", "name", "service", "decision"];
    // A grant this process made is marked: the one place a log tells who granted what.
    assert.deepEqual(Object.keys(mutated ?? {}), [
      ...fields,
      ...tail,
      "dryRun",
      "granted",
      "durationMs",
      "msg",
    ]);
    assert.equal(mutated?.granted, true);
    assert.deepEqual(Object.keys(denied ?? {}), [
      ...fields,
      ...tail,
      "reason",
      "dryRun",
      "durationMs",
      "msg",
    ]);
    // fastify's own per-request lines are off.
    assert.equal(h.logs.filter((record) => record.msg === "incoming request").length, 0);
  });

  it("writes a review's log line and metrics after its answer, and what is pending on close", async () => {
    const h = harness();
    const answered = await post(h, "/mutate", EXAMPLE);
    assert.equal(answered.statusCode, 200);
    const logged = () => h.logs.filter((record) => record.msg === "admission review").length;
    assert.equal(logged(), 0, "not on the way to the answer");
    await h.app.close();
    assert.equal(logged(), 1, "closing writes what is pending");
    assert.match(
      await h.metrics.text(),
      /lb_ip_guard_admission_requests_total\{webhook="mutate",operation="CREATE",decision="assigned",reason="none"\} 1/,
    );
  });

  it("counts reviews and their latency, and shows pool utilisation at scrape time", async () => {
    const h = harness();
    await post(h, "/mutate", EXAMPLE);
    await post(h, "/validate", review(service("copy", { ip: "192.168.35.100" })));
    await post(h, "/validate", "{");
    const text = await h.metrics.text();
    assert.match(
      text,
      /lb_ip_guard_admission_requests_total\{webhook="mutate",operation="CREATE",decision="assigned",reason="none"\} 1/,
    );
    assert.match(
      text,
      /lb_ip_guard_admission_requests_total\{webhook="validate",operation="CREATE",decision="denied",reason="AddressInUse"\} 1/,
    );
    assert.match(
      text,
      /lb_ip_guard_admission_requests_total\{webhook="validate",operation="unknown",decision="error",reason="BadRequest"\} 1/,
    );
    assert.match(
      text,
      /lb_ip_guard_admission_duration_seconds_bucket\{le="0.0001",webhook="mutate"\}/,
    );
    assert.match(text, /lb_ip_guard_admission_duration_seconds_count\{webhook="validate"\} 1/);
    assert.match(text, /lb_ip_guard_pool_capacity_addresses\{pool="default",family="IPv4"\} 11/);
    assert.match(text, /lb_ip_guard_pool_used_addresses\{pool="default",family="IPv4"\} 1/);
    // Split by meaning: no state label, and no free series (capacity - used in a query).
    assert.doesNotMatch(text, /state=|lb_ip_guard_pool_addresses/);
    // An IPv6 /64: 2^64 as a double, no address walk.
    assert.match(
      text,
      /lb_ip_guard_pool_capacity_addresses\{pool="dual",family="IPv6"\} 18446744073709552000/,
    );
  });
});

describe("malformed requests: a 4xx with one line of JSON, and the server keeps going", () => {
  const cases: [string, string | undefined, Record<string, string>, number, RegExp][] = [
    ["not JSON", "{not json", JSON_TYPE, 400, /^body is not valid JSON/],
    ["truncated JSON", EXAMPLE.slice(0, 100), JSON_TYPE, 400, /^body is not valid JSON/],
    ["an empty body", "", JSON_TYPE, 400, /^empty body/],
    ["a blank body", "  \n", JSON_TYPE, 400, /^empty body/],
    ["no body and no content type", undefined, {}, 400, /^empty body/],
    [
      "text/plain",
      EXAMPLE,
      { "content-type": "text/plain" },
      415,
      /content type "text\/plain" is not supported; send the AdmissionReview as application\/json/,
    ],
    [
      "form data",
      "a=b",
      { "content-type": "application/x-www-form-urlencoded" },
      415,
      /not supported/,
    ],
    ["YAML", "apiVersion: v1", { "content-type": "application/yaml" }, 415, /not supported/],
    ["a JSON array", "[]", JSON_TYPE, 400, /not a JSON object/],
    ["a JSON string", '"review"', JSON_TYPE, 400, /not a JSON object/],
    ["JSON null", "null", JSON_TYPE, 400, /^empty body|not a JSON object/],
    [
      "another kind",
      JSON.stringify({ apiVersion: "v1", kind: "Service" }),
      JSON_TYPE,
      400,
      /expected apiVersion admission\.k8s\.io\/v1, kind AdmissionReview/,
    ],
    [
      "admission.k8s.io/v1beta1",
      EXAMPLE.replace('"admission.k8s.io/v1"', '"admission.k8s.io/v1beta1"'),
      JSON_TYPE,
      400,
      /v1beta1/,
    ],
    [
      "no request",
      JSON.stringify({ apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview" }),
      JSON_TYPE,
      400,
      /no request object/,
    ],
    [
      "no uid",
      EXAMPLE.replace('"uid": "705ab4f5-6393-11e8-b7cc-42010a800002"', '"uid": ""'),
      JSON_TYPE,
      400,
      /no uid/,
    ],
    [
      "an unknown operation",
      EXAMPLE.replace('"CREATE"', '"PATCH"'),
      JSON_TYPE,
      400,
      /operation is PATCH/,
    ],
  ];
  for (const [what, payload, headers, status, pattern] of cases) {
    for (const path of ["/mutate", "/validate"]) {
      it(`${what} to ${path} → ${status}`, async () => {
        const h = harness();
        const response = await h.app.inject({
          method: "POST",
          url: path,
          headers,
          ...(payload !== undefined && { payload }),
        });
        assertClientError(response, status, pattern);
        assert.equal((await post(h, path, EXAMPLE)).statusCode, 200, "the next review is answered");
      });
    }
  }

  const typed = (
    object: unknown,
    options: Parameters<typeof review>[1] = {},
    request: Record<string, unknown> = {},
  ) => {
    const body = review(object, options);
    return { ...body, request: { ...(body.request as object), ...request } };
  };
  const web = (spec: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
    ...service("web", { spec }),
    ...extra,
  });
  const wronglyTyped: [string, unknown, RegExp][] = [
    [
      "loadBalancerIP: 5",
      typed(web({ loadBalancerIP: 5 })),
      /request\.object\.spec\.loadBalancerIP is a number; expected a string/,
    ],
    [
      'ports: "x"',
      typed(web({ ports: "x" })),
      /request\.object\.spec\.ports is a string; expected a list of objects/,
    ],
    [
      "ingress: [null]",
      typed(web({}, { status: { loadBalancer: { ingress: [null] } } })),
      /request\.object\.status\.loadBalancer\.ingress\[0\] is null; expected an object/,
    ],
    [
      'ipFamilies: "IPv4"',
      typed(web({ ipFamilies: "IPv4" })),
      /request\.object\.spec\.ipFamilies is a string; expected a list of strings/,
    ],
    [
      "an external IP that is a number",
      typed(web({ externalIPs: ["192.168.35.120", 5] })),
      /request\.object\.spec\.externalIPs\[1\] is a number; expected a string/,
    ],
    [
      "a port number as a string",
      typed(web({ ports: [{ port: "80" }] })),
      /request\.object\.spec\.ports\[0\]\.port is a string; expected a number/,
    ],
    [
      "an annotation that is a number, in oldObject",
      typed(web({}), {
        operation: "UPDATE",
        oldObject: { ...web({}), metadata: { name: "web", annotations: { a: 5 } } },
      }),
      /request\.oldObject\.metadata\.annotations\["a"\] is a number; expected a string/,
    ],
    ['dryRun: "true"', typed(web({}), {}, { dryRun: "true" }), /request\.dryRun is not a boolean/],
    [
      "a kind without a group",
      typed(web({}), {}, { kind: { version: "v1", kind: "Service" } }),
      /request\.kind\.group is missing/,
    ],
  ];
  for (const [what, body, pattern] of wronglyTyped) {
    it(`a wrongly typed field (${what}) → 400 naming it, on both webhooks`, async () => {
      const h = harness();
      for (const path of ["/mutate", "/validate"]) {
        assertClientError(await post(h, path, body), 400, pattern);
      }
      assert.equal((await post(h, "/validate", EXAMPLE)).statusCode, 200);
    });
  }

  it("a 150,000-address annotation is refused at once, with a short message", async () => {
    const h = harness();
    const many = Array.from(
      { length: 150_000 },
      (_, i) => `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`,
    );
    const body = review(
      service("web", { annotations: { "metallb.io/loadBalancerIPs": many.join(",") } }),
    );
    const started = performance.now();
    const response = await post(h, "/validate", body);
    const elapsed = performance.now() - started;
    assert.equal(response.statusCode, 200);
    const answer = JSON.parse(response.body).response;
    assert.equal(answer.allowed, false);
    assert.match(answer.status.message, /^FamilyMismatch: .*at most two addresses/);
    assert.ok(answer.status.message.length < 300, answer.status.message);
    // Parsing the 2 MB body is most of it; parsing every address took seconds.
    assert.ok(elapsed < 400, `answered in ${elapsed.toFixed(0)} ms`);
  });

  it("echoes a long value from the request as a short prefix", async () => {
    const h = harness();
    const long = "x".repeat(100_000);
    for (const object of [
      service("web", { ip: long }),
      service("web", { ip: `${long}/24` }),
      service("web", { annotations: { "metallb.io/address-pool": long } }),
      service("web", { spec: { loadBalancerClass: long } }),
    ]) {
      const response = await post(h, "/validate", review(object));
      assert.equal(response.statusCode, 200);
      const answer = JSON.parse(response.body).response;
      const message: string = answer.status?.message ?? "";
      assert.ok(
        response.body.length < 2000,
        `${message.slice(0, 200)}: ${response.body.length} bytes`,
      );
      if (message !== "") assert.match(message, /"x{64}"… \(100\d{3} characters\)/);
    }
  });

  it("a body over the limit → 413", async () => {
    const h = harness({ bodyLimit: 1024 });
    const big = JSON.stringify({ ...JSON.parse(EXAMPLE), padding: "x".repeat(2048) });
    assertClientError(await post(h, "/mutate", big), 413, /larger than the limit of 1024 bytes/);
  });

  it("the default limit is 3 MiB", async () => {
    const h = harness();
    const padded = (size: number) =>
      JSON.stringify({ ...JSON.parse(EXAMPLE), padding: "x".repeat(size) });
    assert.equal((await post(h, "/validate", padded(2 * 1024 * 1024))).statusCode, 200);
    assertClientError(await post(h, "/validate", padded(3 * 1024 * 1024)), 413, /3145728 bytes/);
  });

  it("a failing state → 500 with one line of JSON, counted, and the next request is answered", async () => {
    const logs: string[] = [];
    let broken = true;
    const good = context();
    const state: AdmissionState = {
      context: () => {
        if (broken) throw new Error("cache\nexploded");
        return good;
      },
      record: () => {},
    };
    const metrics = new Metrics({ view: () => undefined, processMetrics: false });
    const app = buildApp({
      state,
      logger: pino({}, { write: (line: string) => void logs.push(line) }),
      metrics,
    });
    const response = await app.inject({
      method: "POST",
      url: "/validate",
      headers: JSON_TYPE,
      payload: EXAMPLE,
    });
    assert.equal(response.statusCode, 500);
    assert.deepEqual(JSON.parse(response.body), { error: "internal error: cache exploded" });
    assert.match(await metrics.text(), /decision="error",reason="InternalError"\} 1/);
    broken = false;
    assert.equal(
      (await app.inject({ method: "POST", url: "/validate", headers: JSON_TYPE, payload: EXAMPLE }))
        .statusCode,
      200,
    );
  });

  it("unknown routes and methods → 404 naming the endpoints", async () => {
    const h = harness();
    for (const [method, url] of [
      ["GET", "/mutate"],
      ["PUT", "/validate"],
      ["GET", "/"],
      ["POST", "/metrics"],
    ] as const) {
      assertClientError(await h.app.inject({ method, url }), 404, /POST \/mutate, POST \/validate/);
    }
  });
});

describe("/healthz and /readyz", () => {
  it("healthz answers ok", async () => {
    const response = await harness().app.inject({ method: "GET", url: "/healthz" });
    assert.equal(response.statusCode, 200);
    assert.equal(response.body, "ok\n");
  });

  it("readyz answers ok when the state is ready and TLS is loaded", async () => {
    const response = await harness({ tlsProblem: () => undefined }).app.inject({
      method: "GET",
      url: "/readyz",
    });
    assert.equal(response.statusCode, 200);
  });

  it("readyz answers 503 with one line while the state is not synced", async () => {
    const state: AdmissionState = { context: () => context({ ready: false }), record: () => {} };
    const app = buildApp({ state, logger: pino({ level: "silent" }) });
    const response = await app.inject({ method: "GET", url: "/readyz" });
    assert.equal(response.statusCode, 503);
    assert.equal(response.body, "not ready: pools and Services are not synced yet\n");
    // The validating path fails closed meanwhile.
    const answer = await app.inject({
      method: "POST",
      url: "/validate",
      headers: JSON_TYPE,
      payload: JSON.stringify(review(service("web", { ip: "192.168.35.101" }))),
    });
    assert.match(JSON.parse(answer.body).response.status.message, /^NotReady: /);
  });

  it("readyz stays 200 with a broken watch once synced, and says so (ADR 0002)", async () => {
    const state: AdmissionState = { context: () => context(), record: () => {} };
    const failing = [{ resource: "services", error: "connection refused" }];
    const metrics = new Metrics({
      view: () => undefined,
      failing: () => failing,
      processMetrics: false,
    });
    const app = buildApp({
      state,
      logger: pino({ level: "silent" }),
      metrics,
      degraded: () => failing.map(({ resource, error }) => `${resource} watch failing: ${error}`),
    });
    const response = await app.inject({ method: "GET", url: "/readyz" });
    assert.equal(response.statusCode, 200);
    assert.equal(response.body, "ok, degraded: services watch failing: connection refused\n");
    assert.match(await metrics.text(), /lb_ip_guard_watch_failing\{resource="services"\} 1/);
    failing.pop();
    assert.doesNotMatch(await metrics.text(), /lb_ip_guard_watch_failing\{/);
  });

  it("reports when the serving certificate expires, following a rotation, and nothing without one", async () => {
    const window = (notAfter: string) => ({
      notBefore: new Date("2026-01-01T00:00:00Z"),
      notAfter: new Date(notAfter),
    });
    const ca = await generateCa("metrics test CA", window("2030-01-01T00:00:00Z"));
    const names = { dns: ["localhost"], ips: [] };
    let served: string | undefined = (
      await issueServingCertificate(ca, names, window("2027-03-04T05:06:07Z"))
    ).cert;
    const metrics = new Metrics({
      view: () => undefined,
      servingCertificate: () => served,
      processMetrics: false,
    });
    const expiry = async () =>
      /^lb_ip_guard_serving_certificate_expiration_timestamp_seconds\{subject="CN=localhost"\} (\d+)$/m.exec(
        await metrics.text(),
      )?.[1];
    assert.equal(await expiry(), String(Date.parse("2027-03-04T05:06:07Z") / 1000));
    served = (await issueServingCertificate(ca, names, window("2028-01-01T00:00:00Z"))).cert;
    assert.equal(await expiry(), String(Date.parse("2028-01-01T00:00:00Z") / 1000));
    served = undefined;
    assert.doesNotMatch(await metrics.text(), /^lb_ip_guard_serving_certificate_expiration\S* /m);
    served = "not a certificate";
    assert.doesNotMatch(await metrics.text(), /^lb_ip_guard_serving_certificate_expiration\S* /m);
  });

  it("readyz answers 503 once shutdown began, while reviews are still answered", async () => {
    const state: AdmissionState = { context: () => context(), record: () => {} };
    const app = buildApp({ state, logger: pino({ level: "silent" }), stopping: () => true });
    const response = await app.inject({ method: "GET", url: "/readyz" });
    assert.equal(response.statusCode, 503);
    assert.equal(response.body, "not ready: shutting down\n");
    const answer = await app.inject({
      method: "POST",
      url: "/mutate",
      headers: JSON_TYPE,
      payload: EXAMPLE,
    });
    assert.equal(answer.statusCode, 200);
  });

  it("closes each connection after its answer once shutdown began, so callers' pools drain", async () => {
    const state: AdmissionState = { context: () => context(), record: () => {} };
    let stopping = false;
    const app = buildApp({ state, logger: pino({ level: "silent" }), stopping: () => stopping });
    const review = () =>
      app.inject({ method: "POST", url: "/validate", headers: JSON_TYPE, payload: EXAMPLE });
    assert.notEqual((await review()).headers.connection, "close");
    stopping = true;
    const answer = await review();
    assert.equal(answer.statusCode, 200);
    assert.equal(answer.headers.connection, "close");
  });

  it("readyz answers 503 when TLS cannot serve", async () => {
    const h = harness({
      tlsProblem: () => "serving certificate expired at Jan 1 00:00:00 2020 GMT",
    });
    const response = await h.app.inject({ method: "GET", url: "/readyz" });
    assert.equal(response.statusCode, 503);
    assert.match(response.body, /^not ready: serving certificate expired/);
  });
});
