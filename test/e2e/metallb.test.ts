// MetalLB's real controller in the test bed, with no webhook registered: proof that what MetalLB
// does to a Service (the address it writes to status, the AllocationFailed event it records) can
// be observed here, for the legacy ConfigMap of v0.11 and the IPAddressPools of v0.16, IPv4 and
// IPv6. The webhook suites can then compare lb-ip-guard's decisions with MetalLB's own.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type MetalLBVersion, metallbAssets } from "../../scripts/metallb-assets.ts";
import {
  allocationFailures,
  type ControlPlane,
  DUAL_STACK_SERVICE_RANGE,
  describeE2E,
  type MetalLBProcess,
  startControlPlane,
  waitForAllocation,
} from "./harness.ts";
import {
  applyExamplePools,
  applyNamespaces,
  ipAddressPool,
  loadBalancer,
  stdin,
} from "./webhook-fixtures.ts";

const NAMESPACE = "team-a";

interface Family {
  family: "IPv4" | "IPv6";
  /** Fields a Service of this family needs (none for the cluster's first family). */
  spec: Record<string, unknown>;
  /** Asked for explicitly. */
  explicit: string;
  /** The two lowest addresses of the pool, neither asked for explicitly. */
  lowest: [string, string];
  /** Held by one Service and then asked for by another. */
  contested: string;
}

/**
 * The addresses the tests use of a pool whose first address is `${stem}${first}`. The offsets
 * are written in decimal; an IPv6 pool reads them as hex, and they stay inside it all the same.
 */
function family(name: Family["family"], stem: string, first: number): Family {
  return {
    family: name,
    spec: name === "IPv6" ? { ipFamilies: ["IPv6"], ipFamilyPolicy: "SingleStack" } : {},
    explicit: `${stem}${first + 5}`,
    lowest: [`${stem}${first}`, `${stem}${first + 1}`],
    contested: `${stem}${first + 8}`,
  };
}

interface Bed {
  version: MetalLBVersion;
  pools: string;
  /** A control plane with the pools in place, MetalLB not started yet. */
  start(): Promise<ControlPlane>;
  families: Family[];
  /** The service range is dual-stack: check what MetalLB makes of dual-stack Services. */
  dualStack: boolean;
}

const BEDS: Bed[] = [
  {
    version: "v0.11.0",
    pools: "the legacy ConfigMap of examples/kubeflow-v0.11 (192.168.35.100-192.168.35.110)",
    start: async () => {
      const cp = await startControlPlane();
      await applyExamplePools(cp);
      return cp;
    },
    families: [family("IPv4", "192.168.35.", 100)],
    dualStack: false,
  },
  {
    version: "v0.16.2",
    pools: "IPAddressPools v4 (192.168.40.10-20) and v6 (fd00:40::10-20), dual-stack Services",
    start: async () => {
      const { crdDir } = await metallbAssets("v0.16.2");
      const cp = await startControlPlane({
        serviceClusterIPRange: DUAL_STACK_SERVICE_RANGE,
        crds: crdDir === undefined ? undefined : [crdDir],
      });
      await applyNamespaces(cp, ["metallb-system", NAMESPACE]);
      await cp.kubectl(["apply", "-f", "-"], {
        stdin: stdin(
          ipAddressPool("v4", ["192.168.40.10-192.168.40.20"]),
          ipAddressPool("v6", ["fd00:40::10-fd00:40::20"]),
        ),
      });
      return cp;
    },
    families: [family("IPv4", "192.168.40.", 10), family("IPv6", "fd00:40::", 10)],
    dualStack: true,
  },
];

await describeE2E(
  "MetalLB's real controller, no webhook",
  { metallb: BEDS.map((bed) => bed.version) },
  () => {
    for (const bed of BEDS) {
      describe(`MetalLB ${bed.version} with ${bed.pools}`, () => {
        let cp: ControlPlane;
        let metallb: MetalLBProcess;

        before(async () => {
          cp = await bed.start();
          const started = Date.now();
          metallb = await cp.startMetalLB({ version: bed.version });
          console.log(`# MetalLB ${bed.version} ready ${Date.now() - started} ms after its start`);
        });
        after(async () => {
          await cp?.stop();
        });

        const create = async (name: string, spec: Record<string, unknown>, ip?: string) => {
          await cp.kubectl(["create", "-f", "-"], {
            stdin: stdin(loadBalancer(NAMESPACE, name, ip, spec)),
          });
          return waitForAllocation(cp, NAMESPACE, name);
        };

        it("runs with no admission webhook registered", async () => {
          const { stdout } = await cp.kubectl([
            "get",
            "validatingwebhookconfigurations,mutatingwebhookconfigurations",
            "-o",
            "name",
          ]);
          assert.equal(stdout.trim(), "");
          process.kill(metallb.pid, 0); // throws if it has exited
        });

        for (const f of bed.families) {
          const prefix = f.family.toLowerCase();

          it(`${f.family}: a Service with spec.loadBalancerIP ${f.explicit} gets exactly that address`, async () => {
            const got = await create(`${prefix}-explicit`, f.spec, f.explicit);
            assert.deepEqual(
              got.outcome === "assigned" && got.ips,
              [f.explicit],
              JSON.stringify(got),
            );
            console.log(`# ${bed.version} ${f.family}: ${f.explicit} in status after ${got.ms} ms`);
          });

          it(`${f.family}: Services asking for no address get the lowest free ones, ${f.lowest.join(" then ")}`, async () => {
            const first = await create(`${prefix}-any-1`, f.spec);
            const second = await create(`${prefix}-any-2`, f.spec);
            assert.deepEqual(
              [first, second].map((got) => (got.outcome === "assigned" ? got.ips : got.message)),
              [[f.lowest[0]], [f.lowest[1]]],
            );
          });

          it(`${f.family}: a second Service asking for ${f.contested} ends with AllocationFailed and no address`, async () => {
            const holder = await create(`${prefix}-holder`, f.spec, f.contested);
            assert.deepEqual(holder.outcome === "assigned" && holder.ips, [f.contested]);

            const dup = await create(`${prefix}-dup`, f.spec, f.contested);
            assert.equal(dup.outcome, "failed", JSON.stringify(dup));
            const message = dup.outcome === "failed" ? dup.message : "";
            // v0.11.0 adds ": existing service does not allow sharing"; v0.16.2 ends at the holder.
            assert.match(
              message,
              new RegExp(
                `^Failed to allocate IP for "${NAMESPACE}/${prefix}-dup": can't change sharing key for "${NAMESPACE}/${prefix}-dup", address also in use by ${NAMESPACE}/${prefix}-holder`,
              ),
            );
            console.log(
              `# ${bed.version} ${f.family}: AllocationFailed after ${dup.ms} ms: ${message}`,
            );

            const { stdout } = await cp.kubectl(
              ["get", "service", "-n", NAMESPACE, `${prefix}-dup`, `${prefix}-holder`, "-o"].concat(
                "jsonpath={range .items[*]}{.metadata.name}={.status.loadBalancer.ingress[*].ip};{end}",
              ),
            );
            assert.equal(stdout, `${prefix}-dup=;${prefix}-holder=${f.contested};`);

            const here = await allocationFailures(cp, NAMESPACE);
            const everywhere = await allocationFailures(cp);
            for (const events of [here, everywhere]) {
              assert.deepEqual(
                events
                  .filter((e) => e.service === `${prefix}-dup`)
                  .map((e) => [e.namespace, e.type, e.message]),
                [[NAMESPACE, "Warning", message]],
              );
            }
          });
        }

        // MetalLB takes both addresses of a dual-stack Service from one pool, and neither pool
        // here has both families.
        if (bed.dualStack) {
          it("dual-stack: RequireDualStack ends with AllocationFailed, PreferDualStack gets IPv4 only", async () => {
            const dual = { ipFamilies: ["IPv4", "IPv6"] };
            const required = await create("dual-required", {
              ...dual,
              ipFamilyPolicy: "RequireDualStack",
            });
            assert.deepEqual(required, {
              outcome: "failed",
              message: `Failed to allocate IP for "${NAMESPACE}/dual-required": no available IPs`,
              ms: required.ms,
            });

            const preferred = await create("dual-preferred", {
              ...dual,
              ipFamilyPolicy: "PreferDualStack",
            });
            assert.equal(preferred.outcome, "assigned", JSON.stringify(preferred));
            assert.match(
              String(preferred.outcome === "assigned" && preferred.ips),
              /^192\.168\.40\.\d+$/,
            );
            const { stdout } = await cp.kubectl(
              ["get", "service", "-n", NAMESPACE, "dual-preferred", "-o"].concat(
                "jsonpath={.spec.clusterIPs}",
              ),
            );
            assert.equal(JSON.parse(stdout).length, 2, "the Service itself is dual-stack");
          });
        }
      });
    }
  },
);
