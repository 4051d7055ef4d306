// Running the server (src/server/run.ts) in standalone mode end to end, as `lb-ip-guard serve`
// starts it: over real HTTPS with the generated CA, and a clean stop on SIGTERM.

import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { decodePatch } from "../admission/fixtures.ts";
import { httpsCall, ROOT, startServe } from "./helpers.ts";

const POOLS = join(ROOT, "examples/kubeflow-v0.11/metallb-config.yaml");
const EXAMPLE = join(ROOT, "examples/admission-review.json");

describe("serve --standalone end to end", () => {
  let directory: string;
  let child: ChildProcess | undefined;
  before(async () => {
    directory = await mkdtemp(join(tmpdir(), "lb-ip-guard-standalone-"));
  });
  after(async () => {
    if (child !== undefined && child.exitCode === null) child.kill("SIGKILL");
    await rm(directory, { recursive: true, force: true });
  });

  it("assigns over HTTPS with the generated CA, denies a duplicate, counts, and stops cleanly on SIGTERM", async () => {
    const caOut = join(directory, "ca.crt");
    const serving = await startServe(["--standalone", "--pools", POOLS, "--ca-out", caOut]);
    const { process: server, startup, records, rawLines } = serving;
    child = server;
    assert.equal(startup.mode, "standalone");
    assert.equal(startup.caFile, caOut);
    assert.deepEqual(startup.pools, ['pool "default" (192.168.35.100-192.168.35.110)']);
    assert.match(String(startup.msg), new RegExp(`CA: ${caOut}`));
    const base = String(startup.url);
    assert.match(base, /^https:\/\/127\.0\.0\.1:\d+$/);
    const ca = await readFile(caOut, "utf8");
    const example = await readFile(EXAMPLE, "utf8");
    const post = (path: string, body: string) =>
      httpsCall(`${base}${path}`, ca, {
        method: "POST",
        body,
        headers: { "content-type": "application/json" },
      });

    const mutated = await post("/mutate", example);
    assert.equal(mutated.status, 200);
    const answer = JSON.parse(mutated.body).response;
    assert.equal(answer.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert.equal(answer.allowed, true);
    assert.deepEqual(decodePatch(answer.patch), [
      { op: "add", path: "/spec/type", value: "LoadBalancer" },
      { op: "add", path: "/spec/loadBalancerIP", value: "192.168.35.100" },
      { op: "add", path: "/metadata/annotations/lb-ip-guard.dev~1assigned-from", value: "default" },
    ]);

    // Another Service asking for the address just assigned.
    const duplicate = JSON.parse(example);
    duplicate.request.uid = "705ab4f5-6393-11e8-b7cc-42010a800003";
    duplicate.request.name = "copy";
    duplicate.request.namespace = "team-a";
    duplicate.request.object.metadata = { name: "copy", namespace: "team-a" };
    duplicate.request.object.spec.type = "LoadBalancer";
    duplicate.request.object.spec.loadBalancerIP = "192.168.35.100";
    const denied = JSON.parse((await post("/validate", JSON.stringify(duplicate))).body).response;
    assert.equal(denied.allowed, false);
    assert.equal(denied.status.code, 403);
    assert.match(
      denied.status.message,
      /^AddressInUse: team-a\/copy requests 192\.168\.35\.100, which kubeflow\/ml-pipeline-ui already holds/,
    );

    assert.equal((await post("/validate", "{")).status, 400);
    assert.equal((await httpsCall(`${base}/readyz`, ca)).status, 200);
    const metrics = await (await fetch(`http://127.0.0.1:${startup.metricsPort}/metrics`)).text();
    assert.match(metrics, /lb_ip_guard_pool_used_addresses\{pool="default",family="IPv4"\} 1/);
    assert.match(metrics, /decision="denied",reason="AddressInUse"\} 1/);

    server.kill("SIGTERM");
    assert.equal(await serving.exited, 0, serving.stderr());
    assert.ok(records.some((record) => record.msg === "stopped"));
    const reviews = records.filter((record) => record.msg === "admission review");
    // No key twice in a record (a collector keeps only one of them): `name` is the Service's.
    const reviewLine = rawLines.find((line) => line.includes('"admission review"')) ?? "";
    assert.equal(reviewLine.match(/"name":/g)?.length, 1, reviewLine);
    assert.match(reviewLine, /"name":"ml-pipeline-ui"/);
    assert.deepEqual(
      reviews.map((record) => [record.webhook, record.decision, record.reason ?? null]),
      [
        ["mutate", "assigned", null],
        ["validate", "denied", "AddressInUse"],
      ],
    );
  });
});
