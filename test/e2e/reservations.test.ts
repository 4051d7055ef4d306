// AddressReservations on the real kube-apiserver, with the real MetalLB controller (v0.16.2 on
// IPAddressPools, v0.11.0 on the legacy ConfigMap) beside `lb-ip-guard serve` (the elected
// allocator, and claims):
// - the webhook turns ready on a cluster without the CRD, and picks the CRD up once installed;
// - `kubectl apply` of a reservation is admitted, or refused AddressReserved, AddressInUse (another
//   namespace's address) and NotInAnyPool by validate-reservations.lb-ip-guard.dev;
// - a reservation holds against an explicit request (AddressReserved) and against 20 parallel
//   auto-assigns into a nearly full pool (none gets it, the next one is PoolExhausted), and the
//   Service it is for gets it first when it asks for no address;
// - `lb-ip-guard reserve` (an address, --next, --dry-run, a refusal);
// - status.holder follows the Service holding the address; the reserved gauge counts it;
// - MetalLB serves every admitted Service exactly its address, with no AllocationFailed.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { fileURLToPath } from "node:url";
import { type ChildOutput, outputOf } from "../../scripts/child-output.ts";
import { metallbAssets } from "../../scripts/metallb-assets.ts";
import {
  type ControlPlane,
  describeE2E,
  type KubectlResult,
  metricSum,
  startControlPlane,
  type WebhookProcess,
} from "./harness.ts";
import type { MetalLBRelease } from "./metallb-scenarios.ts";
import {
  applyNamespaces,
  assertNoAllocationFailures,
  assertServedAsAdmitted,
  autoAssign,
  legacyConfigMap,
  loadBalancer,
  loadBalancerRefs,
  type Manifest,
  services,
  stdin,
  until,
} from "./webhook-fixtures.ts";

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
const MAIN = join(repoRoot, "src/cli/main.ts");
const PLUGIN = join(repoRoot, "src/cli/kubectl-plugin.ts");
const RESERVATION_CRD = join(repoRoot, "deploy/crds/addressreservations.lb-ip-guard.dev.yaml");
const NAMESPACES = ["metallb-system", "team-a", "team-b", "team-c"];
const POOL_ANNOTATION = "metallb.universe.tf/address-pool";
/** Pool `small`: 21 addresses, named by annotation only (auto-assign off). */
const SMALL = "10.70.0.1-10.70.0.21";
const PARALLEL = 20;
/**
 * Both ways status.holder is written (ADR 0018 notes): by the elected allocator alone, and with
 * claims by every replica, conditionally.
 */
const ALLOCATOR: Record<MetalLBRelease, "elected" | "claims"> = {
  "v0.16.2": "elected",
  "v0.11.0": "claims",
};

/** The pools of both releases: `default` (the example's range) and `small`. */
function pools(release: MetalLBRelease): Manifest[] {
  if (release === "v0.11.0") {
    return [
      legacyConfigMap(
        ["192.168.35.100-192.168.35.110"],
        [{ name: "small", addresses: [SMALL], autoAssign: false }],
      ),
    ];
  }
  const pool = (name: string, addresses: string, autoAssign: boolean): Manifest => ({
    apiVersion: "metallb.io/v1beta1",
    kind: "IPAddressPool",
    metadata: { name, namespace: "metallb-system" },
    spec: { addresses: [addresses], autoAssign },
  });
  return [pool("default", "192.168.35.100-192.168.35.110", true), pool("small", SMALL, false)];
}

function reservation(namespace: string, name: string, addresses: string[], serviceName?: string) {
  return {
    apiVersion: "lb-ip-guard.dev/v1alpha1",
    kind: "AddressReservation",
    metadata: { name, namespace },
    spec: { addresses, ...(serviceName !== undefined && { serviceName }) },
  };
}

interface ReservationStatus {
  holder?: string;
  observedGeneration?: number;
  conditions?: { type: string; status: string; reason: string; message: string }[];
}

/** `kubectl create` of every manifest at once: all processes start, then get their input together. */
async function createAll(
  cp: ControlPlane,
  manifests: readonly Manifest[],
): Promise<KubectlResult[]> {
  let go: () => void = () => {};
  const startLine = new Promise<void>((resolve) => {
    go = resolve;
  });
  const runs = manifests.map((manifest) =>
    cp.kubectl(["create", "--validate=false", "-f", "-"], {
      stdin: startLine.then(() => stdin(manifest)),
      allowFailure: true,
      timeoutMs: 60_000,
    }),
  );
  // kubectl's start-up (a second or so of CPU each on a shared machine) happens before the line.
  await new Promise((resolve) => setTimeout(resolve, 3000));
  go();
  return Promise.all(runs);
}

for (const release of ["v0.16.2", "v0.11.0"] as const) {
  await describeE2E(
    `AddressReservations, with MetalLB ${release} beside the webhook (--allocator ${ALLOCATOR[release]})`,
    { metallb: [release] },
    () => {
      let cp: ControlPlane;
      let webhook: WebhookProcess;
      /** The webhook's log lines, by message. */
      const messages = async () =>
        (await webhook.records()).map((record) => String(record.msg ?? ""));
      /** `lb-ip-guard reserve` on this cluster (or, with `entry`, `kubectl lb-ip-guard reserve`). */
      const run = (entry: string, args: string[]): Promise<ChildOutput> =>
        outputOf(
          spawn(process.execPath, [entry, "reserve", "--kubeconfig", cp.kubeconfigPath, ...args], {
            env: { ...process.env, NODE_TEST_CONTEXT: "" },
            stdio: ["ignore", "pipe", "pipe"],
          }),
        );
      const cli = (...args: string[]): Promise<ChildOutput> => run(MAIN, args);
      const apply = (object: unknown) =>
        cp.kubectl(["apply", "-f", "-"], { stdin: JSON.stringify(object), allowFailure: true });
      const statusOf = async (namespace: string, name: string): Promise<ReservationStatus> => {
        const { stdout } = await cp.kubectl(["get", "lbres", "-n", namespace, name, "-o", "json"]);
        return (JSON.parse(stdout) as { status?: ReservationStatus }).status ?? {};
      };
      /** Waits until the webhook wrote the reservation's status with `holder` ("" for none). */
      const heldBy = (namespace: string, name: string, holder: string) =>
        until(
          `status.holder of ${namespace}/${name} is ${JSON.stringify(holder)}`,
          () => cp.kubectl(["get", "lbres", "-n", namespace, name, "-o", "json"]),
          ({ stdout }) => {
            const status = (JSON.parse(stdout) as { status?: ReservationStatus }).status;
            return status?.holder === holder && status.conditions !== undefined;
          },
        );

      before(async () => {
        const crdDir = release === "v0.16.2" ? (await metallbAssets(release)).crdDir : undefined;
        cp = await startControlPlane(crdDir === undefined ? {} : { crds: [crdDir] });
        await applyNamespaces(cp, NAMESPACES);
        await cp.kubectl(["apply", "-f", "-"], { stdin: stdin(...pools(release)) });
        // No AddressReservation CRD yet: the webhook must turn ready all the same.
        webhook = await cp.startWebhook({
          args: [`--metallb-version=${release}`, `--allocator=${ALLOCATOR[release]}`],
        });
        await webhook.register();
      });
      after(async () => {
        await cp?.stop();
      });

      it("turns ready without the CRD, and picks the CRD up once it is installed", async () => {
        assert.ok(
          (await messages()).some((msg) =>
            /^AddressReservations \(lb-ip-guard\.dev\/v1alpha1\): not served/.test(msg),
          ),
          "one line saying the CRD is not installed",
        );
        await cp.installCrds([RESERVATION_CRD]);
        const deadline = Date.now() + 40_000;
        while (!(await messages()).some((msg) => /AddressReservations .*served now/.test(msg))) {
          assert.ok(Date.now() < deadline, "the webhook never watched the CRD once installed");
          await new Promise((resolve) => setTimeout(resolve, 250));
        }
        await cp.startMetalLB({ version: release });
      });

      it("kubectl apply: a free address admitted; AddressReserved, another namespace's address and one in no pool refused", async () => {
        const held = await cp.kubectl(["create", "-f", "-"], {
          stdin: stdin(loadBalancer("team-b", "db", "192.168.35.100")),
        });
        assert.equal(held.code, 0);
        const admitted = await apply(reservation("team-a", "web", ["192.168.35.105"], "web"));
        assert.equal(admitted.code, 0, admitted.stderr);
        // Its status, written by the webhook, says no one holds it (and that the watch has it).
        await heldBy("team-a", "web", "");
        const status = await statusOf("team-a", "web");
        assert.deepEqual(
          status.conditions?.map(({ type, status, reason }) => `${type}=${status} ${reason}`),
          ["Held=False NotHeld"],
        );
        const refusals: [ReturnType<typeof reservation>, RegExp][] = [
          [
            reservation("team-b", "theirs", ["192.168.35.105"]),
            /AddressReserved: AddressReservation team-b\/theirs reserves 192\.168\.35\.105, which AddressReservation team-a\/web reserves already/,
          ],
          [
            reservation("team-a", "taken", ["192.168.35.100"]),
            /AddressInUse: .*192\.168\.35\.100, which team-b\/db of another namespace holds/,
          ],
          [reservation("team-a", "nowhere", ["10.99.0.1"]), /NotInAnyPool: .*10\.99\.0\.1/],
        ];
        for (const [object, message] of refusals) {
          const refused = await apply(object);
          assert.notEqual(refused.code, 0, `${object.metadata.name} was admitted`);
          assert.match(refused.stderr, /denied the request/);
          assert.match(refused.stderr, message);
        }
        const { stdout } = await cp.kubectl(["get", "lbres", "-A", "-o", "name"]);
        assert.deepEqual(stdout.trim().split("\n"), ["addressreservation.lb-ip-guard.dev/web"]);
        const table = (await cp.kubectl(["get", "lbres", "-n", "team-a"])).stdout;
        assert.match(table, /^NAME\s+ADDRESSES\s+SERVICE\s+HOLDER\s+AGE$/m);
        assert.match(table, /^web\s+\["192\.168\.35\.105"\]\s+web\s+/m);
      });

      it("holds against explicit requests, and the Service it is for gets it first asking for no address", async () => {
        for (const [namespace, name] of [
          ["team-a", "other"],
          ["team-c", "intruder"],
        ] as const) {
          const refused = await cp.kubectl(["create", "-f", "-"], {
            stdin: stdin(loadBalancer(namespace, name, "192.168.35.105")),
            allowFailure: true,
          });
          assert.notEqual(refused.code, 0, `${namespace}/${name} was admitted`);
          assert.match(refused.stderr, /AddressReserved: .*AddressReservation team-a\/web/);
        }
        // The lowest free address of the pool is .101; the reservation comes first.
        await cp.kubectl(["create", "-f", "-"], {
          stdin: stdin(loadBalancer("team-a", "web", undefined)),
        });
        const served = await assertServedAsAdmitted(cp, ["team-a/web"]);
        assert.deepEqual(served.get("team-a/web"), ["192.168.35.105"]);
        await heldBy("team-a", "web", "team-a/web");
        const status = await statusOf("team-a", "web");
        assert.equal(status.conditions?.[0]?.reason, "HeldByService");
        assert.match(status.conditions?.[0]?.message ?? "", /team-a\/web holds 192\.168\.35\.105/);
      });

      it(`reserve --next, then ${PARALLEL} parallel auto-assigns into the nearly full pool: none gets it, the one after is PoolExhausted, the Service it is for gets it`, async () => {
        const reserved = await cli("--next", "--pool", "small", "-n", "team-a", "--service", "big");
        assert.equal(reserved.code, 0, reserved.stderr);
        assert.equal(
          reserved.stdout,
          "AddressReservation team-a/big created: 10.70.0.1 for team-a/big\n",
        );
        const other = await cli("10.70.0.1", "-n", "team-b", "--dry-run");
        assert.equal(other.code, 1);
        assert.match(
          other.stderr,
          /^lb-ip-guard reserve: refused: AddressReserved: AddressReservation team-b\/10\.70\.0\.1 reserves 10\.70\.0\.1, which AddressReservation team-a\/big reserves already[^\n]*\n$/,
        );
        // As a kubectl plugin, the same command.
        const next = await run(PLUGIN, ["--next", "--pool", "small", "-n", "team-b", "--dry-run"]);
        assert.deepEqual([next.code, next.stderr], [0, ""]);
        assert.match(
          next.stdout,
          /team-b\/10\.70\.0\.2 admitted \(server dry run, not written\): 10\.70\.0\.2/,
        );
        await heldBy("team-a", "big", "");

        const names = Array.from({ length: PARALLEL }, (_, i) => `auto-${i}`);
        const auto = (name: string) => {
          const manifest = autoAssign("team-b", name);
          manifest.metadata.annotations = {
            ...manifest.metadata.annotations,
            [POOL_ANNOTATION]: "small",
          };
          return manifest;
        };
        const results = await createAll(cp, names.map(auto));
        assert.deepEqual(
          results.filter((result) => result.code !== 0).map((result) => result.stderr.trim()),
          [],
          "every parallel auto-assign admitted",
        );
        const live = await services(cp);
        const granted = names.map((name) =>
          String(live.get(`team-b/${name}`)?.spec?.loadBalancerIP),
        );
        assert.equal(new Set(granted).size, PARALLEL, `distinct: ${granted.join(", ")}`);
        assert.ok(!granted.includes("10.70.0.1"), "none got the reserved address");
        const full = await cp.kubectl(["create", "-f", "-"], {
          stdin: stdin(auto("one-more")),
          allowFailure: true,
        });
        assert.notEqual(full.code, 0, "a 21st was admitted");
        assert.match(full.stderr, /PoolExhausted/);

        const big = loadBalancer("team-a", "big", undefined);
        big.metadata.annotations = { [POOL_ANNOTATION]: "small" };
        await cp.kubectl(["create", "-f", "-"], { stdin: stdin(big) });
        const served = await assertServedAsAdmitted(cp, ["team-a/big"]);
        assert.deepEqual(served.get("team-a/big"), ["10.70.0.1"]);
        await heldBy("team-a", "big", "team-a/big");
        // The dry runs wrote nothing.
        const { stdout } = await cp.kubectl(["get", "lbres", "-A", "-o", "name"]);
        assert.equal(stdout.trim().split("\n").length, 2, stdout);
        // One already there: the API server's refusal, one line, exit 1.
        const again = await cli("192.168.35.101", "-n", "team-a", "--name", "big");
        assert.equal(again.code, 1);
        assert.match(again.stderr, /^lb-ip-guard reserve: refused: .*"big" already exists\n$/);
      });

      it("counts the reserved addresses per pool, and MetalLB serves every admitted Service exactly its address", async () => {
        const reservedIn = (pool: string) =>
          metricSum(
            webhook.metricsUrl,
            new RegExp(`^lb_ip_guard_pool_reserved_addresses\\{pool="${pool}",family="IPv4"\\}`),
          );
        assert.equal(await reservedIn("default"), 1);
        assert.equal(await reservedIn("small"), 1);
        const refs = await loadBalancerRefs(cp);
        // team-b/db, team-a/web, team-a/big and the 20 auto-assigned.
        assert.equal(refs.length, 3 + PARALLEL, refs.join(", "));
        await assertServedAsAdmitted(cp, refs, 60_000);
        await assertNoAllocationFailures(cp);
        // And a Service gone lets go of it: the status says so.
        await cp.kubectl(["delete", "svc", "-n", "team-a", "web"]);
        await heldBy("team-a", "web", "");
      });
    },
  );
}
