// The address lifecycle (issue 22, ADR 0018) on the real kube-apiserver, with two `serve`
// replicas (claims before the answer, the default) behind a Service-like proxy and the real
// MetalLB controller, v0.16.2 (IPAddressPools) and v0.11.0 (the example's ConfigMap), as judge:
//
// - the Kubeflow example's dashboards (examples/kubeflow-v0.11, the auto-assigned ml-pipeline-ui
//   and a LoadBalancer asking for no address among them) deleted, every replica restarted, a
//   newcomer auto-assigned once the rest of the released addresses is over, and the dashboards
//   re-applied from their manifests in the reverse order: each is back on its address, the
//   newcomer got another, and the grant Event names whose the address was;
// - a namespace quota of 3 against 12 parallel creates spread over both replicas: exactly 3
//   admitted, the others refused QuotaExceeded; and since the API server's calls rarely meet at
//   the quota's edge, a quota of 2 against 24 reviews of distinct addresses sent to both
//   replicas at the same moment (each decides before the other's claims reach it, and no two
//   claim one address, which would tell them): exactly 2 granted;
// - MetalLB serves every admitted Service exactly its address, and records no AllocationFailed.
//
// Reservations (AddressReservation) have their own suite beside this one.

import assert from "node:assert/strict";
import { Agent } from "node:https";
import { after, before, it } from "node:test";
import { type MetalLBVersion, metallbAssets } from "../../scripts/metallb-assets.ts";
import { review } from "../admission/fixtures.ts";
import { httpsCall } from "../server/helpers.ts";
import {
  type ControlPlane,
  describeE2E,
  generateServingCertificate,
  type ServingCertificate,
  startControlPlane,
} from "./harness.ts";
import { kubeClient } from "./nemesis/kube.ts";
import { type EndpointsProxy, startEndpointsProxy } from "./nemesis/proxy.ts";
import { stream } from "./nemesis/random.ts";
import { claimLeases, type Replica, startReplica } from "./replicas.ts";
import {
  applyNamespaces,
  assertNoAllocationFailures,
  assertServedAsAdmitted,
  EXAMPLE_NAMESPACES,
  EXAMPLE_RANGE,
  exampleServices,
  ipAddressPool,
  legacyConfigMap,
  loadBalancer,
  type Manifest,
  services,
  stdin,
  until,
} from "./webhook-fixtures.ts";

const NAMESPACE = "lb-ip-guard";
const QUOTA_NAMESPACE = "team-quota";
const QUOTA = 3;
const QUOTA_CREATES = 12;
const RACE_NAMESPACE = "team-race";
const RACE_QUOTA = 2;
/** Reviews sent to each replica at once. */
const RACE_REVIEWS = 12;
/** A pool of its own, asked for by name: the race's grants never appear as Services. */
const RACE_POOL = { name: "race", addresses: ["10.62.0.0-10.62.0.63"], autoAssign: false };
/** ServiceUsage's RELEASE_REST_MS, and a margin: after it, only retention keeps an address. */
const REST_OVER_MS = 17_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The example's dashboards as their manifests have them, and a LoadBalancer asking for none. */
function dashboards(): Manifest[] {
  const example = [...exampleServices()]
    // team-a/minio-copy is the example's refused duplicate.
    .filter(([ref]) => ref !== "team-a/minio-copy")
    .map(([, manifest]) => manifest);
  return [...example, loadBalancer("kubeflow", "katib-ui", undefined)];
}
const refOf = (manifest: Manifest) => `${manifest.metadata.namespace}/${manifest.metadata.name}`;

/** The claims as the Leases have them, retentions included: address → holder, retained. */
async function claims(
  cp: ControlPlane,
): Promise<Map<string, { holder: string; retained: boolean }>> {
  const leases = await claimLeases(cp, NAMESPACE, { retentions: true });
  return new Map(
    [...leases.values()].map(({ address, holder, retained }) => [address, { holder, retained }]),
  );
}

for (const release of ["v0.16.2", "v0.11.0"] as const satisfies readonly MetalLBVersion[]) {
  await describeE2E(
    `addresses that stay, and quotas, with two replicas and MetalLB ${release}`,
    { metallb: [release] },
    () => {
      let cp: ControlPlane;
      let certificate: ServingCertificate;
      let proxy: EndpointsProxy;
      let replicas: Replica[] = [];
      let generation = 0;
      /** What MetalLB served each dashboard first. */
      let first: Map<string, string[]>;

      const startReplicas = async () => {
        generation += 1;
        replicas = await Promise.all(
          ["a", "b"].map((name) =>
            startReplica(cp, {
              name: `lifecycle-${name}${generation}`,
              namespace: NAMESPACE,
              certificate,
              allocator: "claims",
              grace: "10s",
              args: [`--metallb-version=${release}`, "--retain=1h"],
            }),
          ),
        );
        for (const replica of replicas) {
          proxy.add(replica.name, {
            port: replica.port,
            readyUrl: replica.metricsUrl.replace(/\/metrics$/, "/readyz"),
          });
        }
        await until(
          "both replicas among the proxy's endpoints",
          () => Promise.resolve({ code: 0, stdout: proxy.endpoints().join(), stderr: "" }),
          (result) => replicas.every((replica) => result.stdout.split(",").includes(replica.name)),
        );
      };

      /** Annotates the Namespace; the replicas' Namespace watches bring it well within a second. */
      const setQuota = async (namespace: string, quota: number) => {
        await cp.kubectl([
          "annotate",
          "namespace",
          namespace,
          `lb-ip-guard.dev/address-quota=${quota}`,
        ]);
        await sleep(1000);
      };

      before(async () => {
        const { crdDir } = await metallbAssets(release);
        cp = await startControlPlane({
          serviceClusterIPRange: "10.96.0.0/12",
          ...(crdDir !== undefined && { crds: [crdDir] }),
        });
        await applyNamespaces(cp, [
          ...EXAMPLE_NAMESPACES,
          NAMESPACE,
          QUOTA_NAMESPACE,
          RACE_NAMESPACE,
        ]);
        const pools =
          release === "v0.11.0"
            ? [legacyConfigMap(EXAMPLE_RANGE, [RACE_POOL])]
            : [
                ipAddressPool("default", EXAMPLE_RANGE),
                {
                  ...ipAddressPool(RACE_POOL.name, RACE_POOL.addresses),
                  spec: { addresses: RACE_POOL.addresses, autoAssign: false },
                },
              ];
        await cp.kubectl(["apply", "-f", "-"], { stdin: stdin(...pools) });
        certificate = await generateServingCertificate();
        proxy = await startEndpointsProxy(stream(22, "proxy"));
        await startReplicas();
        await cp.registerWebhook(proxy.url, certificate.caPem);
        await until(
          "the apiserver calling the replicas",
          () =>
            cp.kubectl(["create", "--dry-run=server", "-f", "-"], {
              stdin: stdin(loadBalancer("team-a", "probe", "10.99.0.1")),
              allowFailure: true,
            }),
          (result) => /NotInAnyPool/.test(result.stderr),
        );
        await cp.startMetalLB({ version: release });
      });
      after(async () => {
        await Promise.all(replicas.map((replica) => replica.kill()));
        await proxy?.close();
        await cp?.stop();
      });

      it("the dashboards deleted, every replica restarted, and re-applied in the reverse order come back on their addresses", async (t) => {
        const manifests = dashboards();
        const refs = manifests.map(refOf);
        for (const manifest of manifests) {
          await cp.kubectl(["apply", "-f", "-"], { stdin: stdin(manifest) });
        }
        first = await assertServedAsAdmitted(cp, refs);
        const addresses = refs.map((ref) => first.get(ref)?.[0] ?? "");
        assert.equal(new Set(addresses).size, refs.length, addresses.join());

        const deleted = Date.now();
        await cp.kubectl(["delete", "-f", "-"], { stdin: stdin(...manifests) });
        const retainedAll = await until(
          "every released address retained in its claim",
          async () => ({ code: 0, stdout: JSON.stringify([...(await claims(cp))]), stderr: "" }),
          (result) => {
            const found = new Map(
              JSON.parse(result.stdout) as [string, { holder: string; retained: boolean }][],
            );
            return refs.every((ref, index) => {
              const claim = found.get(addresses[index] ?? "");
              return claim?.holder === ref && claim.retained;
            });
          },
        );

        const restartStart = Date.now();
        for (const replica of replicas) {
          await replica.kill();
          proxy.gone(replica.name);
        }
        await startReplicas();
        const restartMs = Date.now() - restartStart;
        // Past the rest: only the retention in the Leases keeps the addresses from a newcomer,
        // which without it would get the lowest free one, istio's.
        await sleep(Math.max(0, deleted + REST_OVER_MS - Date.now()));
        const newcomer = loadBalancer("team-a", "newcomer", undefined);
        await cp.kubectl(["create", "-f", "-"], { stdin: stdin(newcomer) });
        const served = await assertServedAsAdmitted(cp, ["team-a/newcomer"]);
        const newcomerAddress = served.get("team-a/newcomer")?.[0] ?? "";
        assert.ok(!addresses.includes(newcomerAddress), `the newcomer got ${newcomerAddress}`);

        const reapplyStart = Date.now();
        for (const manifest of [...manifests].reverse()) {
          await cp.kubectl(["apply", "-f", "-"], { stdin: stdin(manifest) });
        }
        const again = await assertServedAsAdmitted(cp, refs);
        const reapplyMs = Date.now() - reapplyStart;
        assert.deepEqual(
          refs.map((ref) => again.get(ref)?.[0]),
          addresses,
          "every dashboard back on its address",
        );
        const after = await claims(cp);
        for (const [index, ref] of refs.entries()) {
          assert.deepEqual(after.get(addresses[index] ?? ""), { holder: ref, retained: false });
        }

        // The auto-assigned dashboard's grant Event names whose its address was.
        const events = await until(
          "the grant Event of kubeflow/ml-pipeline-ui naming its retention",
          () =>
            cp.kubectl([
              "get",
              "events",
              "-n",
              "kubeflow",
              "--field-selector",
              "involvedObject.name=ml-pipeline-ui,reason=AddressAssigned",
              "-o",
              "jsonpath={.items[*].message}",
            ]),
          (result) => /retained for kubeflow\/ml-pipeline-ui since \d{4}-/.test(result.stdout),
        );
        t.diagnostic(
          `${release}: ${refs.length} dashboards on ${addresses.join(", ")}; retained in their claims ${retainedAll.ms} ms after the delete; both replicas restarted in ${restartMs} ms; newcomer on ${newcomerAddress}; re-applied and served again in ${reapplyMs} ms; Event: ${events.result.stdout.trim()}`,
        );
      });

      it(`a quota of ${QUOTA} against ${QUOTA_CREATES} parallel creates over both replicas: exactly ${QUOTA} admitted`, async (t) => {
        await setQuota(QUOTA_NAMESPACE, QUOTA);
        const manifests = Array.from({ length: QUOTA_CREATES }, (_, index) =>
          loadBalancer(QUOTA_NAMESPACE, `quota-${index}`, undefined),
        );
        // All at once over kept-alive connections (a kubectl each would start ~100 ms apart, and
        // each replica's claims watch would have the other's claims before it decides).
        const client = await kubeClient(cp.kubeconfigPath);
        const path = `/api/v1/namespaces/${QUOTA_NAMESPACE}/services`;
        const results = await Promise.all(
          manifests.map((manifest) => client.send("POST", path, manifest)),
        ).finally(() => client.close());
        const admitted = manifests.filter((_, index) => results[index]?.status === 201).map(refOf);
        const refused = results.filter((result) => result.status !== 201);
        const byReplica = await Promise.all(
          replicas.map(async (replica) => {
            const reviews = (await replica.records()).filter(
              (record) =>
                record.msg === "admission review" &&
                record.namespace === QUOTA_NAMESPACE &&
                record.webhook === "mutate",
            );
            return `${replica.name} ${reviews.length}`;
          }),
        );
        // Refused by the count of the namespace's claims in etcd, not by the replica's own view.
        const settled = refused.filter((result) =>
          /claimed the last of them first/.test(result.body),
        );
        t.diagnostic(
          `${release}: ${admitted.length} admitted, ${refused.length} refused (${settled.length} of them by the count of the claims after a race); mutating reviews per replica: ${byReplica.join(", ")}`,
        );
        assert.equal(admitted.length, QUOTA, results.map((result) => result.body).join("\n"));
        for (const failure of refused) assert.match(failure.body, /QuotaExceeded/);
        const live = [...(await services(cp)).keys()].filter((ref) =>
          ref.startsWith(`${QUOTA_NAMESPACE}/`),
        );
        assert.deepEqual(live.sort(), [...admitted].sort());
        await assertServedAsAdmitted(cp, admitted);
      });

      it(`a quota of ${RACE_QUOTA} against ${2 * RACE_REVIEWS} reviews of distinct addresses sent to both replicas at once: exactly ${RACE_QUOTA} granted`, async (t) => {
        await setQuota(RACE_NAMESPACE, RACE_QUOTA);
        const reviewOf = (name: string, ip: string, dryRun: boolean) => {
          const object = loadBalancer(RACE_NAMESPACE, name, ip);
          object.metadata.annotations = { "metallb.universe.tf/address-pool": RACE_POOL.name };
          return JSON.stringify(review(object, { dryRun }));
        };
        // Connections opened first (dry runs grant nothing), then every review sent on them at
        // once, the two replicas' interleaved: a TLS handshake each would spread them out.
        const agents = replicas.map(() => new Agent({ keepAlive: true, maxSockets: RACE_REVIEWS }));
        const send = (index: number, each: number, dryRun: boolean) => {
          const replica = replicas[index] as Replica;
          const ip = `10.62.0.${index * RACE_REVIEWS + each}`;
          return httpsCall(`https://127.0.0.1:${replica.port}/validate`, replica.caPem, {
            method: "POST",
            body: reviewOf(`${replica.name}-${each}`, ip, dryRun),
            headers: { "content-type": "application/json" },
            client: cp.webhookClient,
            agent: agents[index] as Agent,
          });
        };
        const calls = (dryRun: boolean) =>
          Array.from({ length: RACE_REVIEWS }, (_, each) =>
            replicas.map(async (replica, index) => {
              const answer = await send(index, each, dryRun);
              const { response } = JSON.parse(answer.body) as {
                response: { allowed: boolean; patch?: string; status?: { message?: string } };
              };
              return { replica: replica.name, ...response, name: `${replica.name}-${each}` };
            }),
          ).flat();
        await Promise.all(calls(true));
        const answers = await Promise.all(calls(false)).finally(() => {
          for (const agent of agents) agent.destroy();
        });
        const granted = answers.filter((answer) => answer.allowed);
        const refused = answers.filter((answer) => !answer.allowed);
        const settled = refused.filter((answer) =>
          /claimed the last of them first/.test(answer.status?.message ?? ""),
        );
        const grantedBy = replicas.map(
          (replica) =>
            `${replica.name} ${granted.filter((answer) => answer.replica === replica.name).length}`,
        );
        t.diagnostic(
          `${release}: ${granted.length} granted (${grantedBy.join(", ")}), ${refused.length} refused QuotaExceeded, ${settled.length} of them by the count of the claims after they were made`,
        );
        assert.equal(
          granted.length,
          RACE_QUOTA,
          answers
            .map((answer) => `${answer.name}: ${answer.status?.message ?? "granted"}`)
            .join("\n"),
        );
        for (const answer of refused)
          assert.match(answer.status?.message ?? "", /QuotaExceeded|may hold/);
        const raced = [...(await claims(cp)).values()].filter((claim) =>
          claim.holder.startsWith(`${RACE_NAMESPACE}/`),
        );
        assert.equal(raced.length, RACE_QUOTA, "the refused grants' claims are gone again");
      });

      it("MetalLB served every admitted Service exactly its address, and failed none", async () => {
        await assertServedAsAdmitted(cp, [...first.keys(), "team-a/newcomer"]);
        await assertNoAllocationFailures(cp);
      });
    },
  );
}
