// Who may call the webhook, and what a caller sending the same review again can take (issue 13,
// ADR 0010): the real kube-apiserver presents its webhook client certificate (an
// AdmissionConfiguration, as Kubernetes documents webhook authentication) and is answered; a
// caller without one is refused at the TLS handshake; and auto-assign reviews of one Service
// that never appears, sent again and again, are granted one address under one claim, collected
// once the grace period since the first grant is over.

import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { httpsCall } from "../server/helpers.ts";
import {
  type ControlPlane,
  describeE2E,
  startControlPlane,
  type WebhookProcess,
} from "./harness.ts";
import {
  applyExamplePools,
  autoAssign,
  KUBEADM_SERVICE_RANGE,
  loadBalancer,
  loggedReviews,
  stdin,
} from "./webhook-fixtures.ts";

const GRACE_S = 6;

/** POSTs an AdmissionReview to the webhook, presenting `client` (or no certificate). */
async function post(
  webhook: WebhookProcess,
  path: string,
  review: unknown,
  client?: { cert: string; key: string },
): Promise<{ status: number; body: Record<string, unknown> }> {
  const answer = await httpsCall(`${webhook.url}${path}`, webhook.caPem, {
    method: "POST",
    body: JSON.stringify(review),
    headers: { "content-type": "application/json" },
    ...(client !== undefined && { client }),
  });
  return { status: answer.status, body: JSON.parse(answer.body) as Record<string, unknown> };
}

/** A CREATE review of `object` as the apiserver sends it (not a dry run). */
function createReview(object: ReturnType<typeof autoAssign>, uid: string) {
  return {
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid,
      kind: { group: "", version: "v1", kind: "Service" },
      resource: { group: "", version: "v1", resource: "services" },
      name: object.metadata.name,
      namespace: object.metadata.namespace,
      operation: "CREATE",
      userInfo: { username: "someone" },
      object,
      dryRun: false,
    },
  };
}

/** The address a mutate answer's patch grants (spec.loadBalancerIP). */
function grantedAddress(body: Record<string, unknown>): string {
  const response = body.response as { patch?: string };
  const patch = JSON.parse(Buffer.from(response.patch ?? "", "base64").toString()) as {
    path: string;
    value: unknown;
  }[];
  const ip = patch.find((op) => op.path === "/spec/loadBalancerIP")?.value;
  assert.equal(typeof ip, "string", JSON.stringify(patch));
  return ip as string;
}

await describeE2E("callers of the webhook: client certificates and repeated reviews", () => {
  let cp: ControlPlane;
  let webhook: WebhookProcess;
  before(async () => {
    cp = await startControlPlane({ serviceClusterIPRange: KUBEADM_SERVICE_RANGE });
    await applyExamplePools(cp);
    webhook = await cp.startWebhook({
      args: [`--claim-grace=${GRACE_S}s`, "--claim-interval=1s"],
    });
    await webhook.register();
  });
  after(() => cp?.stop());

  /** The claim Leases in the webhook's namespace, as "lease holder". */
  const claims = async () =>
    (
      await cp.kubectl([
        "get",
        "leases",
        "-n",
        "lb-ip-guard",
        "-l",
        "app.kubernetes.io/managed-by=lb-ip-guard",
        "-o",
        'jsonpath={range .items[*]}{.metadata.name} {.spec.holderIdentity}{"\\n"}{end}',
      ])
    ).stdout
      .split("\n")
      .filter((line) => line !== "");

  it("the API server is answered through its client certificate; a caller without one is refused at the handshake", async () => {
    const created = await cp.kubectl(["create", "-f", "-"], {
      stdin: stdin(loadBalancer("kubeflow", "dashboard", "192.168.35.103")),
    });
    assert.equal(created.code, 0);
    const seen = await loggedReviews(webhook, (r) => r.name === "dashboard");
    assert.ok(seen.length > 0, "the apiserver's review reached the webhook");
    const forged = createReview(autoAssign("team-a", "forged"), "forged-1");
    await assert.rejects(
      post(webhook, "/mutate", forged),
      /certificate required|ECONNRESET|socket hang up/,
    );
    const ours = await post(
      webhook,
      "/mutate",
      { ...forged, request: { ...forged.request, dryRun: true } },
      cp.webhookClient,
    );
    assert.equal(ours.status, 200);
    assert.equal((ours.body.response as { uid: string }).uid, "forged-1");
  });

  it("the same auto-assign review of a Service that never appears, sent again and again: one address, one claim, collected after the grace since the first grant", async () => {
    const ghost = autoAssign("team-a", "ghost");
    const granted: string[] = [];
    const firstGrant = Date.now();
    for (let i = 0; i < 8; i += 1) {
      const answer = await post(
        webhook,
        "/mutate",
        createReview(ghost, `ghost-${i}`),
        cp.webhookClient,
      );
      assert.equal(answer.status, 200);
      granted.push(grantedAddress(answer.body));
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    assert.equal(new Set(granted).size, 1, `one address for every repeat: ${granted.join(", ")}`);
    const held = (await claims()).filter((line) => line.endsWith(" team-a/ghost"));
    assert.equal(held.length, 1, `one claim: ${held.join("; ")}`);
    // A real Service still gets the next address, not the ghost's.
    const other = await post(
      webhook,
      "/mutate",
      createReview(autoAssign("team-a", "real"), "real-1"),
      cp.webhookClient,
    );
    assert.notEqual(grantedAddress(other.body), granted[0]);

    // The grace (6 s) counts from the first grant; the last renewal (~4 s in) is kept for one
    // more grace at most; then a collection pass (1 s) deletes it.
    const deadline = firstGrant + (3 * GRACE_S + 10) * 1000;
    for (;;) {
      const left = (await claims()).filter((line) => line.endsWith(" team-a/ghost"));
      if (left.length === 0) break;
      assert.ok(Date.now() < deadline, `the ghost's claim is still there: ${left.join("; ")}`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    const collectedAfter = (Date.now() - firstGrant) / 1000;
    assert.ok(collectedAfter > GRACE_S, `collected ${collectedAfter} s after the first grant`);
  });
});
