// spec.externalIPs and writes of services/status (docs/decisions/0011), with MetalLB v0.11.0's
// real controller beside the webhook: a Service's externalIPs may not take a pool's address nor
// another Service's, an address a Service lists there is held for later requests, MetalLB's own
// status writes for admitted Services go through (also while lb-ip-guard is down: that webhook
// entry fails open), and a forged status write of another Service's address is refused.

import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { describeE2E } from "./harness.ts";
import {
  assertNoAllocationFailures,
  assertServedAsAdmitted,
  EXAMPLE_METALLB,
  type ExampleBed,
  loadBalancer,
  reviewRecords,
  startExampleBed,
  stdin,
} from "./webhook-fixtures.ts";

const NS = "team-a";

/** A ClusterIP Service listing `externalIPs`. */
const withExternalIPs = (name: string, externalIPs: string[]) =>
  loadBalancer(NS, name, undefined, { type: "ClusterIP", externalIPs });

await describeE2E(
  "spec.externalIPs and services/status, with MetalLB v0.11.0 beside the webhook",
  { metallb: [EXAMPLE_METALLB] },
  () => {
    let bed: ExampleBed;
    before(async () => {
      // From before the webhook: a ClusterIP Service listing a pool address in externalIPs.
      const edge = stdin(withExternalIPs("edge", ["192.168.35.108"]));
      bed = await startExampleBed({
        beforeWebhook: async (plane) => {
          await plane.kubectl(["create", "-f", "-"], { stdin: edge });
        },
      });
    });
    after(() => bed?.cp.stop());

    const create = (manifest: ReturnType<typeof loadBalancer>) =>
      bed.cp.kubectl(["create", "-f", "-"], { stdin: stdin(manifest), allowFailure: true });
    /** The webhook's answers to status writes so far, as "namespace/name decision". */
    const statusReviews = async () =>
      (await reviewRecords(bed.webhook))
        .filter((r) => r.subResource === "status")
        .map((r) => `${r.namespace}/${r.name} ${r.decision}`);
    const servedOf = async (name: string) =>
      (
        await bed.cp.kubectl([
          "get",
          "svc",
          "-n",
          NS,
          name,
          "-o",
          "jsonpath={.status.loadBalancer.ingress[*].ip}",
        ])
      ).stdout.trim();

    /** `kubectl patch --subresource=status`: the Service `name` served on `ip`, as anyone may write it. */
    const forgeStatus = (name: string, ip: string) =>
      bed.cp.kubectl(
        [
          "patch",
          "svc",
          "-n",
          NS,
          name,
          "--subresource=status",
          "--type=merge",
          "-p",
          JSON.stringify({ status: { loadBalancer: { ingress: [{ ip }] } } }),
        ],
        { allowFailure: true },
      );

    it("externalIPs of another Service's address or of a pool are refused; outside the pools they are not", async () => {
      assert.equal((await create(loadBalancer(NS, "minio", "192.168.35.101"))).code, 0);
      await assertServedAsAdmitted(bed.cp, [`${NS}/minio`]);

      const steal = await create(withExternalIPs("steal", ["192.168.35.101"]));
      assert.notEqual(steal.code, 0);
      assert.match(
        steal.stderr,
        /AddressInUse: team-a\/steal lists 192\.168\.35\.101 in spec\.externalIPs, which team-a\/minio already holds/,
      );
      const inPool = await create({ ...withExternalIPs("in-pool", ["192.168.35.105"]) });
      assert.notEqual(inPool.code, 0);
      assert.match(inPool.stderr, /ExternalIPInPool: team-a\/in-pool lists 192\.168\.35\.105/);
      assert.equal((await create(withExternalIPs("outside", ["10.200.0.5"]))).code, 0);
    });

    it("an address a Service lists in externalIPs is held: a request for it is refused naming it, and auto-assign skips it", async () => {
      const asks = await create(loadBalancer(NS, "asks-edge", "192.168.35.108"));
      assert.notEqual(asks.code, 0);
      assert.match(
        asks.stderr,
        /AddressInUse: team-a\/asks-edge requests 192\.168\.35\.108, which team-a\/edge already holds/,
      );

      const plain = ["plain-1", "plain-2", "plain-3", "plain-4", "plain-5", "plain-6", "plain-7"];
      for (const name of plain)
        assert.equal((await create(loadBalancer(NS, name, undefined))).code, 0);
      const served = await assertServedAsAdmitted(
        bed.cp,
        plain.map((name) => `${NS}/${name}`),
      );
      const all = [...served.values()].flat().sort();
      assert.ok(
        !all.includes("192.168.35.108"),
        `auto-assign skipped edge's address: ${all.join(", ")}`,
      );
      assert.ok(!all.includes("192.168.35.101"));
    });

    it("MetalLB's status writes for admitted Services were reviewed and allowed, and none failed", async () => {
      const reviewed = await statusReviews();
      for (const name of ["minio", "plain-1", "plain-7"]) {
        assert.ok(reviewed.includes(`${NS}/${name} allowed`), `${name}: ${reviewed.join("; ")}`);
      }
      assert.deepEqual(
        reviewed.filter((r) => !r.endsWith(" allowed")),
        [],
      );
      await assertNoAllocationFailures(bed.cp);
    });

    it("a forged status write of another Service's address is refused, naming the holder", async () => {
      const forged = await forgeStatus("plain-1", "192.168.35.101");
      assert.notEqual(forged.code, 0);
      assert.match(
        forged.stderr,
        /validate-status\.lb-ip-guard\.dev.*AddressInUse: team-a\/plain-1: a status write puts 192\.168\.35\.101 into status\.loadBalancer\.ingress, which team-a\/minio already holds/,
      );
      // and one a Service lists in externalIPs.
      const onEdge = await forgeStatus("plain-2", "192.168.35.108");
      assert.notEqual(onEdge.code, 0);
      assert.match(onEdge.stderr, /which team-a\/edge already holds/);
      assert.notEqual(await servedOf("plain-1"), "192.168.35.101");
      assert.equal(await servedOf("minio"), "192.168.35.101");
    });

    it("while lb-ip-guard is down, MetalLB's status writes still go through", async () => {
      // Admitted while the webhook is up, served only once it is down: MetalLB is stopped first.
      await bed.metallb.stop();
      assert.equal((await create(loadBalancer(NS, "while-down", "192.168.35.110"))).code, 0);
      await bed.webhook.stop();
      bed.metallb = await bed.cp.startMetalLB({ version: EXAMPLE_METALLB });
      const served = await assertServedAsAdmitted(bed.cp, [`${NS}/while-down`]);
      assert.deepEqual(served.get(`${NS}/while-down`), ["192.168.35.110"]);
      await assertNoAllocationFailures(bed.cp);
    });
  },
);
