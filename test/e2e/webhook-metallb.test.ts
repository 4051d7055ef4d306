// A Service never moves, with MetalLB v0.11.0's real controller as the judge: a LoadBalancer that
// MetalLB served before the webhook was registered (so with MetalLB's own pick), and one the
// webhook auto-assigned, keep their address through later edits (kubectl label, apply, replace
// of a manifest without spec.loadBalancerIP). What MetalLB serves, status.loadBalancer.ingress,
// is the address; the webhook must neither write another into spec nor refuse the edit.

import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import {
  type Allocation,
  type ControlPlane,
  describeE2E,
  type WebhookProcess,
  waitForAllocation,
} from "./harness.ts";
import {
  assertNoAllocationFailures,
  assertServedAsAdmitted,
  autoAssign,
  EXAMPLE_METALLB,
  loadBalancer,
  type Manifest,
  reviewRecords,
  servedAddresses,
  services,
  startExampleBed,
  stdin,
} from "./webhook-fixtures.ts";

const NS = "team-a";
const ASSIGNED_FROM = "lb-ip-guard.dev/assigned-from";

await describeE2E(
  "a Service never moves, with MetalLB v0.11.0 beside the webhook",
  { metallb: [EXAMPLE_METALLB] },
  () => {
    let cp: ControlPlane;
    let webhook: WebhookProcess;
    /** What MetalLB made of team-a/metallb-pick, created before the webhook was registered. */
    let early: Allocation;

    before(async () => {
      ({ cp, webhook } = await startExampleBed({
        beforeWebhook: async (plane) => {
          await plane.kubectl(["create", "-f", "-"], {
            stdin: stdin(loadBalancer(NS, "metallb-pick", undefined)),
          });
          early = await waitForAllocation(plane, NS, "metallb-pick");
        },
      }));
    });
    after(async () => {
      await cp?.stop();
    });

    /** The Service's address as the spec asks for it and as MetalLB serves it, and its labels. */
    async function addressOf(name: string) {
      const service = (await services(cp)).get(`${NS}/${name}`);
      return {
        type: service?.spec?.type,
        spec: service?.spec?.loadBalancerIP,
        assignedFrom: service?.metadata.annotations?.[ASSIGNED_FROM],
        served: servedAddresses(service),
      };
    }
    /**
     * How the webhook answered the UPDATE reviews of `name` so far, in order ("mutate allowed",
     * …), once there are `count` of them (the log line follows the answer by a moment).
     */
    async function updateReviews(name: string, count: number): Promise<string[]> {
      const deadline = Date.now() + 5000;
      for (;;) {
        const answers = (await reviewRecords(webhook))
          // MetalLB's status writes are reviewed too (ADR 0011): only the Service's own.
          .filter((r) => r.name === name && r.operation === "UPDATE" && r.subResource === undefined)
          .map((r) => `${r.webhook} ${r.decision}`);
        if (answers.length >= count || Date.now() > deadline) return answers;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    const labels = async (name: string) =>
      (await services(cp)).get(`${NS}/${name}`)?.metadata.labels;

    it("a LoadBalancer MetalLB served before the webhook keeps its address through kubectl label and apply", async () => {
      // MetalLB's own pick: the lowest free address of the pool.
      assert.deepEqual(early, { outcome: "assigned", ips: ["192.168.35.100"], ms: early.ms });
      const served = {
        type: "LoadBalancer",
        spec: undefined,
        assignedFrom: undefined,
        served: ["192.168.35.100"],
      };
      assert.deepEqual(await addressOf("metallb-pick"), served);

      await cp.kubectl(["label", "svc", "-n", NS, "metallb-pick", "tier=web"]);
      assert.equal((await labels("metallb-pick"))?.tier, "web");
      assert.deepEqual(await addressOf("metallb-pick"), served, "after kubectl label");

      const manifest = loadBalancer(NS, "metallb-pick", undefined);
      manifest.metadata.labels = { tier: "api" };
      await cp.kubectl(["apply", "-f", "-"], { stdin: stdin(manifest) });
      assert.equal((await labels("metallb-pick"))?.tier, "api");
      assert.deepEqual(await addressOf("metallb-pick"), served, "after kubectl apply");
      // Both edits went through the webhook, which admitted them as they were (no patch: a
      // mutation writing an address would have been logged as "assigned").
      assert.deepEqual(await updateReviews("metallb-pick", 4), [
        "mutate allowed",
        "validate allowed",
        "mutate allowed",
        "validate allowed",
      ]);

      // The webhook counts MetalLB's pick as held: the next LoadBalancer asking for no address
      // gets the next one.
      await cp.kubectl(["create", "-f", "-"], {
        stdin: stdin(loadBalancer(NS, "after-webhook", undefined)),
      });
      const next = await assertServedAsAdmitted(cp, [`${NS}/after-webhook`]);
      assert.deepEqual(next.get(`${NS}/after-webhook`), ["192.168.35.101"]);
    });

    it("an auto-assigned Service keeps its address through kubectl label and replace without spec.loadBalancerIP", async () => {
      await cp.kubectl(["create", "-f", "-"], { stdin: stdin(autoAssign(NS, "auto-kept")) });
      const granted = {
        type: "LoadBalancer",
        spec: "192.168.35.102",
        assignedFrom: "default",
        served: ["192.168.35.102"],
      };
      await assertServedAsAdmitted(cp, [`${NS}/auto-kept`]);
      assert.deepEqual(await addressOf("auto-kept"), granted);

      await cp.kubectl(["label", "svc", "-n", NS, "auto-kept", "tier=web"]);
      assert.equal((await labels("auto-kept"))?.tier, "web");
      assert.deepEqual(await addressOf("auto-kept"), granted, "after kubectl label");

      // The Service as it is, but without spec.loadBalancerIP (nor status: the API server keeps
      // the stored one). The webhook sees the address MetalLB serves in the stored status and
      // admits the Service on it, writing nothing: MetalLB keeps serving it, from status.
      const live = JSON.parse(
        (await cp.kubectl(["get", "svc", "-n", NS, "auto-kept", "-o", "json"])).stdout,
      ) as Manifest & { status?: unknown };
      delete live.spec?.loadBalancerIP;
      delete live.status;
      live.metadata.labels = { tier: "api" };
      const replace = await cp.kubectl(["replace", "-f", "-"], { stdin: stdin(live) });
      assert.match(replace.stdout, /service\/auto-kept replaced/);
      assert.equal((await labels("auto-kept"))?.tier, "api");
      const kept = await addressOf("auto-kept");
      assert.deepEqual(kept, { ...granted, spec: undefined }, "after kubectl replace");
      assert.deepEqual((await updateReviews("auto-kept", 4)).slice(2), [
        "mutate allowed",
        "validate allowed",
      ]);
      // MetalLB acts on an update within milliseconds; give it a second to move it, if it would.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      assert.deepEqual(await addressOf("auto-kept"), kept, "a second after kubectl replace");

      // The manifest it was created from, a ClusterIP with auto-assign: the mutation writes the
      // served address back (it once allocated the next free one, and MetalLB moved the Service).
      await cp.kubectl(["replace", "-f", "-"], { stdin: stdin(autoAssign(NS, "auto-kept")) });
      await new Promise((resolve) => setTimeout(resolve, 1000));
      assert.deepEqual(
        await addressOf("auto-kept"),
        granted,
        "after kubectl replace with the auto-assign manifest",
      );
    });

    it("MetalLB served the Services the webhook granted an address exactly that, and failed none", async () => {
      await assertServedAsAdmitted(cp, [`${NS}/after-webhook`]);
      // and the two that kept their address still have it.
      assert.deepEqual((await addressOf("metallb-pick")).served, ["192.168.35.100"]);
      assert.deepEqual((await addressOf("auto-kept")).served, ["192.168.35.102"]);
      await assertNoAllocationFailures(cp);
    });
  },
);
