// `lb-ip-guard convert` judged by MetalLB itself: the seed scenario (examples/kubeflow-v0.11)
// under MetalLB v0.11.0 with its legacy ConfigMap, and under v0.16.2 with what convert makes of
// that ConfigMap, gives every Service the same address (or leaves the same one <pending>); and
// v0.16.2's CRDs accept the conversion of every legacy field. No webhook: only MetalLB's own
// allocations are compared.

import assert from "node:assert/strict";
import { after, it } from "node:test";
import { fileURLToPath } from "node:url";
import { type MetalLBVersion, metallbAssets } from "../../scripts/metallb-assets.ts";
import { cli } from "../cli/check/helpers.ts";
import { type ControlPlane, describeE2E, startControlPlane, waitForAllocation } from "./harness.ts";
import {
  applyExamplePools,
  applyNamespaces,
  EXAMPLE_NAMESPACES,
  exampleServices,
  KUBEADM_SERVICE_RANGE,
  type Manifest,
  METALLB_CONFIG,
  stdin,
} from "./webhook-fixtures.ts";

/**
 * The example's Services in order; ml-pipeline-ui, annotated for lb-ip-guard's auto-assign, is a
 * plain LoadBalancer here, so that MetalLB picks its address itself.
 */
function seedServices(): Manifest[] {
  return [...exampleServices().values()].map((service) =>
    service.metadata.name === "ml-pipeline-ui"
      ? { ...service, spec: { ...service.spec, type: "LoadBalancer" } }
      : service,
  );
}

/** Creates each Service, one at a time, and says what MetalLB made of it. */
async function allocations(cp: ControlPlane): Promise<Map<string, string>> {
  const outcomes = new Map<string, string>();
  for (const service of seedServices()) {
    const namespace = service.metadata.namespace ?? "default";
    await cp.kubectl(["create", "-f", "-"], { stdin: stdin(service) });
    const allocation = await waitForAllocation(cp, namespace, service.metadata.name);
    outcomes.set(
      `${namespace}/${service.metadata.name}`,
      allocation.outcome === "assigned" ? allocation.ips.join(",") : "<pending>",
    );
  }
  return outcomes;
}

const EVERY_FIELD = fileURLToPath(new URL("../cli/convert/every-field.yaml", import.meta.url));
const LEGACY: MetalLBVersion = "v0.11.0";
const NEWEST: MetalLBVersion = "v0.16.2";

await describeE2E(
  `convert: MetalLB ${LEGACY} on the ConfigMap and ${NEWEST} on the converted objects`,
  { metallb: [LEGACY, NEWEST] },
  () => {
    const served = new Map<MetalLBVersion, Map<string, string>>();
    /** Each bed's control plane, stopped at the end even when a test failed halfway. */
    const planes: ControlPlane[] = [];
    let cp: ControlPlane | undefined;
    const start = async (options: Parameters<typeof startControlPlane>[0]) => {
      cp = await startControlPlane(options);
      planes.push(cp);
      return cp;
    };
    after(async () => {
      await Promise.all(planes.map((plane) => plane.stop()));
    });

    it(`${LEGACY} with the legacy ConfigMap serves the seed scenario`, async () => {
      cp = await start({ serviceClusterIPRange: KUBEADM_SERVICE_RANGE });
      await applyExamplePools(cp);
      await cp.startMetalLB({ version: LEGACY });
      served.set(LEGACY, await allocations(cp));
      // The live cluster converted and proven: its Services (the API server's own `kubernetes`
      // too), audited with what MetalLB serves them, against the ConfigMap and the conversion.
      const live = await cli([
        "convert",
        "--cluster",
        "--kubeconfig",
        cp.kubeconfigPath,
        "--check",
        "--metallb-version",
        LEGACY,
      ]);
      assert.equal(live.code, 0, live.stderr);
      assert.match(live.stdout, /^kind: IPAddressPool$/m);
      assert.match(live.stderr, /^7 services: 7 decided the same, 0 differently$/m);
      assert.match(live.stderr, /^same {5}team-a\/minio-copy denied .*AddressInUse$/m);
      await cp.stop();
      // The scenario as the guide has it: four addresses by hand, MetalLB's pick, a duplicate.
      assert.deepEqual(Object.fromEntries(served.get(LEGACY) ?? []), {
        "istio-system/istio-ingressgateway": "192.168.35.100",
        "kubeflow/minio-service": "192.168.35.101",
        "mlflow-system/mlflow-server-service": "192.168.35.102",
        "seldon-system/seldon-core-analytics-grafana": "192.168.35.103",
        "kubeflow/ml-pipeline-ui": "192.168.35.104",
        "team-a/minio-copy": "<pending>",
      });
    });

    it(`${NEWEST} with convert's objects serves every Service the same`, async () => {
      const converted = await cli(["convert", METALLB_CONFIG]);
      assert.equal(converted.code, 0, converted.stderr);
      const { crdDir } = await metallbAssets(NEWEST);
      cp = await start({
        serviceClusterIPRange: KUBEADM_SERVICE_RANGE,
        crds: crdDir === undefined ? undefined : [crdDir],
      });
      await applyNamespaces(cp, EXAMPLE_NAMESPACES);
      const applied = await cp.kubectl(["apply", "-f", "-"], { stdin: converted.stdout });
      assert.match(applied.stdout, /ipaddresspool\.metallb\.io\/default created/);
      assert.match(applied.stdout, /l2advertisement\.metallb\.io\/default created/);
      await cp.startMetalLB({ version: NEWEST });
      served.set(NEWEST, await allocations(cp));
      assert.ok(served.has(LEGACY), `the ${LEGACY} bed ran first`);
      assert.deepEqual(
        Object.fromEntries(served.get(NEWEST) ?? []),
        Object.fromEntries(served.get(LEGACY) ?? []),
      );
    });

    it(`${NEWEST}'s own CRDs accept what convert makes of every legacy field`, async () => {
      assert.ok(cp !== undefined, `the ${NEWEST} bed is up`);
      const converted = await cli(["convert", EVERY_FIELD]);
      assert.equal(converted.code, 0, converted.stderr);
      const applied = await cp.kubectl(["apply", "--dry-run=server", "-f", "-"], {
        stdin: converted.stdout,
        allowFailure: true,
      });
      assert.equal(applied.code, 0, applied.stderr);
      for (const kind of [
        "community",
        "bfdprofile",
        "bgppeer",
        "ipaddresspool",
        "l2advertisement",
        "bgpadvertisement",
      ]) {
        assert.match(
          applied.stdout,
          new RegExp(`^${kind}\\.metallb\\.io/\\S+ created \\(server dry run\\)$`, "m"),
        );
      }
    });
  },
);
