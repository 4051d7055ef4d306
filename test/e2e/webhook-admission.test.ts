// The real `lb-ip-guard serve` behind a real kube-apiserver, driven by the real kubectl: the
// MetalLB v0.11 Kubeflow scenario of examples/kubeflow-v0.11/, denials as the user reads them,
// the auto-assign mutation, `apply --dry-run=server`, pool edits honoured live, and the ratchet.
// MetalLB v0.11.0's real controller runs beside the webhook, reading the same ConfigMap: every
// Service admitted must end with exactly its address from MetalLB, and MetalLB must record no
// AllocationFailed. The concurrency scenarios are in webhook-races.test.ts.

import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { parse } from "yaml";
import { type ControlPlane, describeE2E, type WebhookProcess } from "./harness.ts";
import {
  assertNoAllocationFailures,
  assertServedAsAdmitted,
  autoAssign,
  DASHBOARD_SERVICES,
  EXAMPLE_METALLB,
  EXAMPLE_RANGE,
  exampleService,
  type LegacyPool,
  legacyConfigMap,
  loadBalancer,
  loadBalancerRefs,
  type Manifest,
  services,
  startExampleBed,
  stdin,
  until,
} from "./webhook-fixtures.ts";

const ASSIGNED_FROM = "lb-ip-guard.dev/assigned-from";
/** The pool the test adds while the webhook runs; used only when named. */
const EXTRA: LegacyPool = { name: "extra", addresses: ["10.20.30.0/28"], autoAssign: false };

await describeE2E("webhook admission through kubectl", { metallb: [EXAMPLE_METALLB] }, () => {
  let cp: ControlPlane;
  let webhook: WebhookProcess;
  let dryRunAddress: string | undefined;

  before(async () => {
    ({ cp, webhook } = await startExampleBed());
  });
  after(async () => {
    await webhook?.stop();
    await cp?.stop();
  });

  const create = (...manifests: Manifest[]) =>
    cp.kubectl(["create", "-f", "-"], { stdin: stdin(...manifests), allowFailure: true });
  const denied = (stderr: string) =>
    /admission webhook "\S+\.lb-ip-guard\.dev" denied/.test(stderr);

  it("admits the MetalLB v0.11 scenario: the four Kubeflow dashboards of the example", async () => {
    const dashboards = DASHBOARD_SERVICES.map(exampleService);
    const res = await cp.kubectl(["apply", "-f", "-"], { stdin: stdin(...dashboards) });
    for (const ref of DASHBOARD_SERVICES) {
      assert.match(res.stdout, new RegExp(`service/${ref.split("/")[1]} created`));
    }
    const live = await services(cp);
    const addresses = DASHBOARD_SERVICES.map((ref) => live.get(ref)?.spec?.loadBalancerIP);
    assert.deepEqual(addresses, [
      "192.168.35.100",
      "192.168.35.101",
      "192.168.35.102",
      "192.168.35.103",
    ]);
    for (const ref of DASHBOARD_SERVICES) assert.equal(live.get(ref)?.spec?.type, "LoadBalancer");
    await assertServedAsAdmitted(cp, DASHBOARD_SERVICES);
  });

  it("refuses a second Service asking for 192.168.35.101 and names kubeflow/minio-service", async () => {
    // The example's team-a/minio-copy: minio pasted with the original's address.
    const res = await cp.kubectl(["apply", "-f", "-"], {
      stdin: stdin(exampleService("team-a/minio-copy")),
      allowFailure: true,
    });
    assert.notEqual(res.code, 0);
    assert.ok(denied(res.stderr), res.stderr);
    assert.match(res.stderr, /AddressInUse/);
    assert.match(res.stderr, /kubeflow\/minio-service/);
    assert.match(res.stderr, /192\.168\.35\.101/);
    const get = await cp.kubectl(["get", "svc", "-n", "team-a", "minio-copy"], {
      allowFailure: true,
    });
    assert.match(get.stderr, /NotFound/);
  });

  it("refuses 192.168.35.120 as in no pool", async () => {
    const res = await create(loadBalancer("team-a", "outside", "192.168.35.120"));
    assert.notEqual(res.code, 0);
    assert.ok(denied(res.stderr), res.stderr);
    assert.match(res.stderr, /NotInAnyPool/);
    assert.match(res.stderr, /192\.168\.35\.120/);
  });

  it("apply --dry-run=server refuses a duplicate, shows the mutation, and leaves no trace", async () => {
    const duplicate = await cp.kubectl(["apply", "--dry-run=server", "-f", "-"], {
      stdin: stdin(exampleService("team-a/minio-copy")),
      allowFailure: true,
    });
    assert.notEqual(duplicate.code, 0);
    assert.match(duplicate.stderr, /AddressInUse/);
    assert.match(duplicate.stderr, /kubeflow\/minio-service/);

    const dry = await cp.kubectl(["apply", "--dry-run=server", "-o", "yaml", "-f", "-"], {
      stdin: stdin(autoAssign("kubeflow", "dry-run-ui")),
    });
    const shown = parse(dry.stdout) as Manifest;
    assert.equal(shown.spec?.type, "LoadBalancer");
    assert.equal(shown.spec?.loadBalancerIP, "192.168.35.104");
    assert.equal(shown.metadata.annotations?.[ASSIGNED_FROM], "default");
    dryRunAddress = shown.spec?.loadBalancerIP as string;

    const get = await cp.kubectl(["get", "svc", "-n", "kubeflow", "dry-run-ui"], {
      allowFailure: true,
    });
    assert.match(get.stderr, /NotFound/, "a dry run creates no Service");
    const leases = await cp.kubectl(["get", "leases", "-A", "-o", "json"]);
    assert.doesNotMatch(leases.stdout, /192[.-]168[.-]35[.-]104/, "nor a claim of the address");
    // No hold either: the next real auto-assign (next test) gets the address the dry run showed.
  });

  it("turns a ClusterIP Service with auto-assign into a LoadBalancer with the next free address", async () => {
    // The example's kubeflow/ml-pipeline-ui, which stays ClusterIP in Git.
    await cp.kubectl(["apply", "-f", "-"], {
      stdin: stdin(exampleService("kubeflow/ml-pipeline-ui")),
    });
    const table = await cp.kubectl(["get", "svc", "-n", "kubeflow", "ml-pipeline-ui"]);
    assert.match(table.stdout, /^ml-pipeline-ui\s+LoadBalancer\s/m, table.stdout);
    const columns = await cp.kubectl([
      "get",
      "svc",
      "-n",
      "kubeflow",
      "ml-pipeline-ui",
      "--no-headers",
      "-o",
      "custom-columns=TYPE:.spec.type,IP:.spec.loadBalancerIP,POOL:.metadata.annotations.lb-ip-guard\\.dev/assigned-from",
    ]);
    assert.deepEqual(columns.stdout.trim().split(/\s+/), [
      "LoadBalancer",
      "192.168.35.104",
      "default",
    ]);
    assert.equal(dryRunAddress, "192.168.35.104", "the dry run showed the address given now");

    // Applying the unchanged Git manifest again keeps the assignment: the mutation is idempotent
    // and kubectl's three-way merge does not fight it.
    const again = await cp.kubectl(["apply", "-f", "-"], {
      stdin: stdin(exampleService("kubeflow/ml-pipeline-ui")),
    });
    assert.match(again.stdout, /service\/ml-pipeline-ui (unchanged|configured)/);
    const live = (await services(cp)).get("kubeflow/ml-pipeline-ui");
    assert.equal(live?.spec?.type, "LoadBalancer");
    assert.equal(live?.spec?.loadBalancerIP, "192.168.35.104");
    const served = await assertServedAsAdmitted(cp, ["kubeflow/ml-pipeline-ui"]);
    assert.deepEqual(served.get("kubeflow/ml-pipeline-ui"), ["192.168.35.104"]);
  });

  it("gives a LoadBalancer asking for no address the next free one, and MetalLB serves it that", async () => {
    // The one allocator (ADR 0009): the webhook writes its pick into spec.loadBalancerIP, so
    // MetalLB never picks one of its own that an auto-assign admitted at the same moment got.
    await cp.kubectl(["create", "-f", "-"], {
      stdin: stdin(loadBalancer("team-a", "plain", undefined)),
    });
    const live = (await services(cp)).get("team-a/plain");
    assert.equal(live?.spec?.loadBalancerIP, "192.168.35.105");
    assert.equal(live?.metadata.annotations?.[ASSIGNED_FROM], "default");
    const served = await assertServedAsAdmitted(cp, ["team-a/plain"]);
    assert.deepEqual(served.get("team-a/plain"), ["192.168.35.105"]);
  });

  it("honours ConfigMap edits within seconds, a grown pool and a new one, without a restart", async (t) => {
    // Before the edit, 192.168.35.112 is in no pool.
    const before = await create(loadBalancer("team-a", "late", "192.168.35.112"));
    assert.match(before.stderr, /NotInAnyPool/);

    await cp.kubectl(["apply", "-f", "-"], {
      stdin: stdin(legacyConfigMap([...EXAMPLE_RANGE, "192.168.35.111-192.168.35.115"])),
    });
    const grown = await until(
      "a Service asking for 192.168.35.112 is admitted after the ConfigMap edit",
      () => create(loadBalancer("team-a", "late", "192.168.35.112")),
      (res) => res.code === 0,
    );

    // A new pool. It used to be an IPAddressPool here; but MetalLB v0.11, which this webhook
    // guards and which runs beside it, reads only the ConfigMap: it left a Service asking for an
    // address of an IPAddressPool <pending> (AllocationFailed "… is not allowed in config") while
    // the webhook admitted it. So the new pool is a pool of the ConfigMap, as v0.11 has them.
    await cp.kubectl(["apply", "-f", "-"], {
      stdin: stdin(legacyConfigMap([...EXAMPLE_RANGE, "192.168.35.111-192.168.35.115"], [EXTRA])),
    });
    const added = await until(
      "a Service asking for 10.20.30.5 is admitted after the pool extra was added",
      () => create(loadBalancer("team-a", "from-extra", "10.20.30.5")),
      (res) => res.code === 0,
    );
    // The new pool is named, not auto-assigned (auto-assign: false), and serves by name, under
    // the pool key MetalLB v0.11 reads (metallb.io/address-pool is refused as IgnoredAnnotation:
    // v0.11 would not read it and serve the Service from pool default).
    const named = autoAssign("team-a", "named-pool");
    named.metadata.annotations = {
      ...named.metadata.annotations,
      "metallb.universe.tf/address-pool": "extra",
    };
    await cp.kubectl(["create", "-f", "-"], { stdin: stdin(named) });
    const live = await services(cp);
    assert.equal(live.get("team-a/named-pool")?.spec?.loadBalancerIP, "10.20.30.0");
    assert.equal(live.get("team-a/named-pool")?.metadata.annotations?.[ASSIGNED_FROM], "extra");
    // MetalLB read the same edits: it serves all three.
    await assertServedAsAdmitted(cp, ["team-a/late", "team-a/from-extra", "team-a/named-pool"]);

    assert.doesNotThrow(() => process.kill(webhook.pid, 0), "the same webhook process");
    t.diagnostic(
      `pool changes honoured without restart: a grown pool after ${grown.ms} ms, a new pool after ${added.ms} ms`,
    );
  });

  it("admits an UPDATE that keeps the address after its pool shrank, with a warning", async () => {
    // Shrink the ConfigMap back: team-a/late's 192.168.35.112 is in no pool any more. (MetalLB
    // v0.11 refuses this edit, as it refuses any that would orphan an address it serves, and
    // goes on serving 192.168.35.112 on the pools it had.)
    await cp.kubectl(["apply", "-f", "-"], {
      stdin: stdin(legacyConfigMap(EXAMPLE_RANGE, [EXTRA])),
    });
    await until(
      "the webhook sees the shrunk pool (192.168.35.113 refused as in no pool)",
      () =>
        cp.kubectl(["apply", "--dry-run=server", "-f", "-"], {
          stdin: stdin(loadBalancer("team-a", "probe-shrink", "192.168.35.113")),
          allowFailure: true,
        }),
      (res) => /NotInAnyPool/.test(res.stderr),
    );

    const label = await cp.kubectl(["label", "svc", "-n", "team-a", "late", "tier=web"]);
    assert.match(label.stdout, /service\/late labeled/);
    assert.match(label.stderr, /Warning: .*NotInAnyPool/);
    // The ratchet now admits an UPDATE when the stored Service meets the same refusal (ADR 0009,
    // design.md), no longer when the requested addresses did not change; its warning says so.
    assert.match(label.stderr, /stored Service is refused the same way/);
    const live = (await services(cp)).get("team-a/late");
    assert.equal(live?.metadata.labels?.tier, "web");

    // The ratchet covers unchanged requests only: moving to another address outside the pools is
    // refused.
    const move = await cp.kubectl(
      [
        "patch",
        "svc",
        "-n",
        "team-a",
        "late",
        "-p",
        '{"spec":{"loadBalancerIP":"192.168.35.114"}}',
      ],
      { allowFailure: true },
    );
    assert.notEqual(move.code, 0);
    assert.match(move.stderr, /NotInAnyPool/);
  });

  it("MetalLB served every admitted Service exactly its address, and never failed an allocation", async (t) => {
    const refs = await loadBalancerRefs(cp);
    await assertServedAsAdmitted(cp, refs);
    await assertNoAllocationFailures(cp);
    t.diagnostic(`${refs.length} Services served as admitted, 0 AllocationFailed`);
  });
});
