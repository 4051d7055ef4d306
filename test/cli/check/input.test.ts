// `lb-ip-guard check`: its inputs and options (--existing, audits, updates, --metallb-version,
// --allocate, --load-balancer-class, Namespace labels, --assign) and the input errors (exit 2).
// Subtests run concurrently: each is a separate process.

import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { parseAllDocuments } from "yaml";
import {
  checkJson,
  cli,
  configMap,
  find,
  KUBEFLOW_DASHBOARDS,
  LAN,
  rows,
  service,
  yaml,
} from "./helpers.ts";

describe("check: inputs and options", { concurrency: true }, () => {
  let dir = "";
  let pools = "";
  let existingList = "";
  let existingApiList = "";
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "lb-ip-guard-check-"));
    pools = join(dir, "pools.yaml");
    await writeFile(pools, `${LAN}\n`);
    // As `kubectl get svc -A -o yaml` prints it: a List whose items carry kind.
    existingList = join(dir, "existing.yaml");
    await writeFile(
      existingList,
      `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: minio-service, namespace: kubeflow}
  spec:
    type: LoadBalancer
    loadBalancerIP: 10.0.0.11
    ports: [{port: 9000, protocol: TCP}]
  status:
    loadBalancer:
      ingress: [{ip: 10.0.0.11}]
- apiVersion: v1
  kind: Service
  metadata: {name: assigned-only, namespace: kubeflow}
  spec:
    type: LoadBalancer
    ports: [{port: 80, protocol: TCP}]
  status:
    loadBalancer:
      ingress: [{ip: 10.0.0.10}]
metadata:
  resourceVersion: ""
`,
    );
    // As the API returns it: a ServiceList whose items have no kind.
    existingApiList = join(dir, "existing.json");
    await writeFile(
      existingApiList,
      JSON.stringify({
        apiVersion: "v1",
        kind: "ServiceList",
        items: [
          {
            metadata: { name: "web", namespace: "shop" },
            spec: { type: "LoadBalancer", ports: [{ port: 443, protocol: "TCP" }] },
            status: { loadBalancer: { ingress: [{ ip: "10.0.0.14" }] } },
          },
        ],
      }),
    );
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** A ServiceList as the API returns it (items without kind), written to the test's folder. */
  async function serviceList(name: string, items: unknown[]): Promise<string> {
    const file = join(dir, name);
    await writeFile(file, JSON.stringify({ apiVersion: "v1", kind: "ServiceList", items }));
    return file;
  }

  test("--existing takes a kind: List: requested and status addresses are in use", async () => {
    const { code, report } = await checkJson(
      ["-", "--pools", pools, "--existing", existingList],
      yaml(
        service("team-a/wants-minio", { loadBalancerIP: "10.0.0.11" }),
        service("team-a/wants-status", { loadBalancerIP: "10.0.0.10" }),
        service("team-a/auto", { type: "ClusterIP" }, { "lb-ip-guard.dev/auto-assign": "true" }),
      ),
    );
    assert.equal(code, 1);
    assert.equal(find(report, "team-a/wants-minio").reason, "AddressInUse");
    assert.match(find(report, "team-a/wants-minio").message, /kubeflow\/minio-service/);
    assert.equal(find(report, "team-a/wants-status").reason, "AddressInUse");
    assert.match(find(report, "team-a/wants-status").message, /kubeflow\/assigned-only/);
    // .10 and .11 are taken: the next free address of lan.
    assert.deepEqual(find(report, "team-a/auto").ips, ["10.0.0.12"]);
  });

  test("--existing alone audits the Services already there: status holders first, then by creation", async () => {
    const created = (day: number) => `2024-01-0${day}T00:00:00Z`;
    const lb = (
      name: string,
      day: number,
      spec: Record<string, unknown>,
      status: string[] = [],
    ) => ({
      metadata: { name, namespace: "kubeflow", creationTimestamp: created(day) },
      spec: { type: "LoadBalancer", ports: [{ port: 80, protocol: "TCP" }], ...spec },
      status: { loadBalancer: { ingress: status.map((ip) => ({ ip })) } },
    });
    // Listed by name, as kubectl lists them; created in another order.
    const cluster = await serviceList("audit.json", [
      // Created first, but MetalLB gave 10.0.0.11 to ml-pipeline-ui (patched before it).
      lb("katib-ui", 3, { loadBalancerIP: "10.0.0.11" }),
      lb("minio-service", 2, { loadBalancerIP: "10.0.0.10" }),
      lb("ml-pipeline-ui", 4, { loadBalancerIP: "10.0.0.11" }, ["10.0.0.11"]),
      lb("tensorboard", 5, { loadBalancerIP: "192.168.99.1" }),
      lb("zz-gateway", 1, {}, ["10.0.0.10"]),
    ]);
    const { code, report } = await checkJson(["--pools", pools, "--existing", cluster]);
    assert.equal(code, 1);
    assert.deepEqual(rows(report), [
      // It requests nothing and keeps what MetalLB serves it.
      ["kubeflow/zz-gateway", "allowed", ["10.0.0.10"], "lan", null],
      ["kubeflow/ml-pipeline-ui", "allowed", ["10.0.0.11"], "lan", null],
      ["kubeflow/minio-service", "denied", ["10.0.0.10"], "lan", "AddressInUse"],
      ["kubeflow/katib-ui", "denied", ["10.0.0.11"], "lan", "AddressInUse"],
      ["kubeflow/tensorboard", "denied", ["192.168.99.1"], null, "NotInAnyPool"],
    ]);
    assert.match(find(report, "kubeflow/minio-service").message, /kubeflow\/zz-gateway/);
    assert.match(find(report, "kubeflow/katib-ui").message, /kubeflow\/ml-pipeline-ui/);
  });

  test("--existing takes a ServiceList straight from the API (items without kind)", async () => {
    const { report } = await checkJson(
      ["-", "--pools", pools, "--existing", existingApiList],
      yaml(service("team-a/s", { loadBalancerIP: "10.0.0.14" })),
    );
    assert.equal(find(report, "team-a/s").reason, "AddressInUse");
    assert.match(find(report, "team-a/s").message, /shop\/web/);
  });

  test("a manifest with an existing Service's namespace/name is an update, not a duplicate", async () => {
    const { report } = await checkJson(
      ["-", "--pools", pools, "--existing", existingList],
      yaml(
        // Same address as before: its own, no conflict.
        service("kubeflow/assigned-only", { loadBalancerIP: "10.0.0.10" }),
        // minio moves from .11 to .15, but MetalLB serves it .11 until it has moved it (the
        // stored status stays), so .11 is not free yet, as the webhook would see it too.
        service("kubeflow/minio-service", { loadBalancerIP: "10.0.0.15" }),
        service("team-a/takes-old-minio", { loadBalancerIP: "10.0.0.11" }),
      ),
    );
    assert.deepEqual(rows(report), [
      ["kubeflow/assigned-only", "allowed", ["10.0.0.10"], "lan", null],
      ["kubeflow/minio-service", "allowed", ["10.0.0.15"], "lan", null],
      ["team-a/takes-old-minio", "denied", ["10.0.0.11"], "lan", "AddressInUse"],
    ]);
    assert.match(find(report, "team-a/takes-old-minio").message, /kubeflow\/minio-service/);
  });

  test("an update of an existing Service whose address left the pools is admitted when it adds no problem, as the webhook's ratchet admits it", async () => {
    // minio's 10.0.0.11 is outside a pool that now ends at .10.
    const shrunk = join(dir, "shrunk.yaml");
    await writeFile(
      shrunk,
      `${configMap(`
- name: lan
  protocol: layer2
  addresses:
  - 10.0.0.10/32
`)}\n`,
    );
    const relabelled = service(
      "kubeflow/minio-service",
      { loadBalancerIP: "10.0.0.11", ports: [{ port: 9000, protocol: "TCP" }] },
      {},
      { tier: "storage" },
    );
    const { code, report, stdout } = await checkJson(
      ["-", "--pools", shrunk, "--existing", existingList],
      yaml(relabelled),
    );
    assert.equal(code, 0, stdout);
    assert.deepEqual(rows(report), [
      ["kubeflow/minio-service", "allowed", ["10.0.0.11"], null, null],
    ]);
    assert.match(
      find(report, "kubeflow/minio-service").message,
      /^NotInAnyPool: .*refused the same way/,
    );
    // A new address outside the pools is the update's own problem: refused.
    const moved = service("kubeflow/minio-service", { loadBalancerIP: "10.0.0.12" });
    const refused = await checkJson(
      ["-", "--pools", shrunk, "--existing", existingList],
      yaml(moved),
    );
    assert.equal(find(refused.report, "kubeflow/minio-service").reason, "NotInAnyPool");
  });

  test("--metallb-version v0.11.0 refuses a key that release ignores and reads spec.loadBalancerIP only", async () => {
    const { code, report } = await checkJson(
      ["-", "--pools", pools, "--metallb-version", "v0.11.0"],
      yaml(
        service("team-a/annotated", {}, { "metallb.universe.tf/loadBalancerIPs": "10.0.0.13" }),
        service("team-a/spec", { loadBalancerIP: "10.0.0.13" }),
      ),
    );
    assert.equal(code, 1);
    assert.deepEqual(rows(report), [
      ["team-a/annotated", "denied", [], null, "IgnoredAnnotation"],
      ["team-a/spec", "allowed", ["10.0.0.13"], "lan", null],
    ]);
    const bad = await cli(["check", "-", "--metallb-version", "latest"], "");
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--metallb-version: MetalLB version "latest" is not a release number/);
  });

  test("only the pool sources the guarded release reads count: an IPAddressPool beside MetalLB v0.11 holds nothing it serves", async () => {
    const crdPool = `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: extra, namespace: metallb-system}
spec:
  addresses: [10.20.30.0/28]`;
    const manifests = yaml(crdPool, service("team-a/from-crd", { loadBalancerIP: "10.20.30.5" }));
    const v011 = await checkJson(
      ["-", "--pools", pools, "--metallb-version", "v0.11.0"],
      manifests,
    );
    assert.deepEqual(rows(v011.report), [
      ["team-a/from-crd", "denied", ["10.20.30.5"], null, "NotInAnyPool"],
    ]);
    assert.match(
      v011.stderr,
      /IPAddressPool .* left out: MetalLB v0\.11\.0 reads its pools from the ConfigMap/,
    );
    const v016 = await checkJson(
      ["-", "--pools", pools, "--metallb-version", "v0.16.2"],
      manifests,
    );
    assert.deepEqual(rows(v016.report), [
      ["team-a/from-crd", "allowed", ["10.20.30.5"], "extra", null],
    ]);
    assert.match(
      v016.stderr,
      /ConfigMap .* left out: MetalLB v0\.16\.2 reads its pools from IPAddressPool objects only/,
    );
  });

  test("an audit keeps what MetalLB serves a refused Service, and says when MetalLB serves something else", async () => {
    const cluster = await serviceList("served.json", [
      {
        // MetalLB v0.11 ignored the annotation and served it 10.0.0.10.
        metadata: {
          name: "ui",
          namespace: "kubeflow",
          annotations: { "metallb.universe.tf/loadBalancerIPs": "10.0.0.19" },
        },
        spec: { type: "LoadBalancer", ports: [{ port: 80, protocol: "TCP" }] },
        status: { loadBalancer: { ingress: [{ ip: "10.0.0.10" }] } },
      },
      {
        metadata: {
          name: "pending",
          namespace: "kubeflow",
          annotations: { "lb-ip-guard.dev/auto-assign": "true" },
        },
        spec: { type: "ClusterIP", ports: [{ port: 80, protocol: "TCP" }] },
      },
    ]);
    const v011 = await checkJson([
      "--pools",
      pools,
      "--existing",
      cluster,
      "--metallb-version",
      "v0.11.0",
    ]);
    assert.deepEqual(rows(v011.report), [
      ["kubeflow/ui", "denied", ["10.0.0.10"], null, "IgnoredAnnotation"],
      // .10 is served to ui: the next free one is .11.
      ["kubeflow/pending", "assigned", ["10.0.0.11"], "lan", null],
    ]);
    const unknown = await cli(["check", "--pools", pools, "--existing", cluster]);
    assert.match(unknown.stdout, /allowed {2}kubeflow\/ui 10\.0\.0\.19 \[lan\]/);
    assert.match(unknown.stdout, /warning: MetalLB serves it 10\.0\.0\.10, not 10\.0\.0\.19/);
  });

  test("a refused update leaves the old object holding its address", async () => {
    const { report } = await checkJson(
      ["-", "--pools", pools, "--existing", existingList],
      yaml(
        service("kubeflow/minio-service", { loadBalancerIP: "10.9.9.9" }),
        service("team-a/takes-old-minio", { loadBalancerIP: "10.0.0.11" }),
      ),
    );
    assert.equal(find(report, "kubeflow/minio-service").reason, "NotInAnyPool");
    assert.equal(find(report, "team-a/takes-old-minio").reason, "AddressInUse");
  });

  test("Services needing no decision are allowed with no ips; a LoadBalancer asking for none is assigned one", async () => {
    const { code, report } = await checkJson(
      ["-", "--pools", pools],
      yaml(
        JSON.stringify({ apiVersion: "v1", kind: "Service", metadata: { name: "plain" } }),
        service("team-a/other-class", {
          loadBalancerClass: "example.com/other",
          loadBalancerIP: "10.9.9.9",
        }),
        service("team-a/metallb-picks", {}),
        `apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: knative, namespace: team-a}`,
      ),
    );
    assert.equal(code, 0);
    assert.deepEqual(rows(report), [
      ["default/plain", "allowed", [], null, null],
      ["team-a/other-class", "allowed", [], null, null],
      ["team-a/metallb-picks", "assigned", ["10.0.0.10"], "lan", null],
    ]);
  });

  test("--allocate annotated leaves a LoadBalancer asking for no address to MetalLB", async () => {
    const { report } = await checkJson(
      ["-", "--pools", pools, "--allocate", "annotated"],
      yaml(service("team-a/metallb-picks", {})),
    );
    assert.deepEqual(rows(report), [["team-a/metallb-picks", "allowed", [], null, null]]);
  });

  test("--load-balancer-class: Services of that class are checked, classless ones ignored", async () => {
    const { code, report } = await checkJson(
      ["-", "--pools", pools, "--load-balancer-class", "metallb"],
      yaml(
        service("team-a/classed", { loadBalancerClass: "metallb", loadBalancerIP: "10.9.9.9" }),
        service("team-a/classless", { loadBalancerIP: "10.9.9.9" }),
      ),
    );
    assert.equal(code, 1);
    assert.equal(find(report, "team-a/classed").reason, "NotInAnyPool");
    assert.deepEqual(find(report, "team-a/classless").ips, []);
  });

  test("namespaceSelectors see Namespace labels from the inputs and kubernetes.io/metadata.name", async () => {
    const pool = `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: prod, namespace: metallb-system}
spec:
  addresses: [10.6.0.0/29]
  serviceAllocation:
    namespaceSelectors:
    - matchLabels: {tier: production}
    - matchLabels: {kubernetes.io/metadata.name: ops}`;
    const { report } = await checkJson(
      ["-"],
      yaml(
        pool,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {tier: production}}",
        service("shop/web", { loadBalancerIP: "10.6.0.1" }),
        service("ops/grafana", { loadBalancerIP: "10.6.0.2" }),
        service("dev/web", { loadBalancerIP: "10.6.0.3" }),
      ),
    );
    assert.equal(find(report, "shop/web").decision, "allowed");
    assert.equal(find(report, "ops/grafana").decision, "allowed");
    assert.equal(find(report, "dev/web").reason, "PoolNotAllowed");
  });

  test("--assign: dual-stack goes to metallb.io/loadBalancerIPs; an annotation in use is kept", async () => {
    const pool = `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: dual, namespace: metallb-system}
spec:
  addresses: [10.8.0.0/29, "2001:db8:8::/120"]`;
    const optIn = { "lb-ip-guard.dev/auto-assign": "true" };
    const { code, stdout, stderr } = await cli(
      ["check", "--assign", "-"],
      yaml(
        pool,
        service(
          "team-a/dual",
          { type: "ClusterIP", ipFamilyPolicy: "RequireDualStack", ipFamilies: ["IPv4", "IPv6"] },
          optIn,
        ),
        service(
          "team-a/legacy-key",
          { type: "ClusterIP" },
          { ...optIn, "metallb.universe.tf/loadBalancerIPs": "" },
        ),
      ),
    );
    assert.equal(code, 0, stderr);
    const [, dual, legacy] = parseAllDocuments(stdout).map((document) => document.toJS());
    assert.equal(dual.spec.type, "LoadBalancer");
    assert.equal(dual.spec.loadBalancerIP, undefined);
    assert.equal(dual.metadata.annotations["metallb.io/loadBalancerIPs"], "10.8.0.0,2001:db8:8::");
    assert.equal(dual.metadata.annotations["lb-ip-guard.dev/assigned-from"], "dual");
    assert.equal(legacy.spec.loadBalancerIP, undefined);
    assert.equal(legacy.metadata.annotations["metallb.universe.tf/loadBalancerIPs"], "10.8.0.1");
  });

  test("broken YAML: exit 2, one line naming the file and the document", async () => {
    const broken = join(dir, "broken.yaml");
    await writeFile(broken, `${LAN}\n---\nkind: Service\nmetadata: {name: [oops\n`);
    const { code, stdout, stderr } = await cli(["check", broken]);
    assert.equal(code, 2);
    assert.equal(stdout, "");
    assert.equal(stderr.trimEnd().split("\n").length, 1, stderr);
    assert.match(stderr, new RegExp(`${broken.replace(/[.]/g, "\\.")}#2: not valid YAML`));
    assert.doesNotMatch(stderr, /\n\s+at /);
  });

  test("bad pool config: exit 2, naming the pool and the offending string", async () => {
    const { code, stderr } = await cli(
      ["check", "-"],
      yaml(
        configMap(`
- name: lab
  protocol: layer2
  addresses:
  - 192.168.35.100`),
        service("team-a/s", { loadBalancerIP: "192.168.35.100" }),
      ),
    );
    assert.equal(code, 2);
    assert.match(
      stderr,
      /<stdin>#1 \(ConfigMap metallb-system\/config\): pool "lab": .*"192\.168\.35\.100"/,
    );
  });

  test("overlapping pools across sources: exit 2 naming both", async () => {
    const { code, stderr } = await cli(
      ["check", "--pools", pools, "-"],
      yaml(`apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: clash, namespace: metallb-system}
spec:
  addresses: [10.0.0.0/24]`),
    );
    assert.equal(code, 2);
    assert.match(stderr, /pool "clash".*overlaps.*pool "lan"/);
  });

  test("a mistyped field the API server would refuse is an input error, not a silent pass", async () => {
    const { code, stderr } = await cli(
      ["check", "--pools", pools, "-"],
      "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n  annotations:\n    lb-ip-guard.dev/auto-assign: true\n",
    );
    assert.equal(code, 2);
    assert.match(
      stderr,
      /<stdin>#1: Service default\/s: metadata\.annotations\["lb-ip-guard\.dev\/auto-assign"\] must be a string/,
    );
  });

  test("a --pools file without any pool source: exit 2 naming it", async () => {
    const { code, stderr } = await cli([
      "check",
      KUBEFLOW_DASHBOARDS,
      "--pools",
      KUBEFLOW_DASHBOARDS,
    ]);
    assert.equal(code, 2);
    assert.match(stderr, /dashboards\.yaml: --pools: no MetalLB pool configuration in it/);
  });

  test("a missing file: exit 2 naming it", async () => {
    const { code, stderr } = await cli(["check", join(dir, "nope.yaml")]);
    assert.equal(code, 2);
    assert.match(stderr, /nope\.yaml: cannot read: no such file or directory/);
  });

  test("no pools at all: a warning on stderr, the report still complete", async () => {
    const { code, report, stderr } = await checkJson(
      ["-"],
      yaml(service("team-a/s", { loadBalancerIP: "10.0.0.10" })),
    );
    assert.equal(code, 1);
    assert.equal(find(report, "team-a/s").reason, "NotInAnyPool");
    assert.match(stderr, /warning: no address pools found/);
  });
});
