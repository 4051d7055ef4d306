// `lb-ip-guard check` as CI runs it: a child process, exit codes, stdout and stderr.
// Subtests run concurrently: each is a separate process.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import { type ChildOutput, outputOf } from "../../scripts/child-output.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));
const main = join(root, "src/cli/main.ts");
const KUBEFLOW = join(root, "examples/kubeflow-v0.11");
const KUBEFLOW_POOLS = join(KUBEFLOW, "metallb-config.yaml");
const KUBEFLOW_DASHBOARDS = join(KUBEFLOW, "dashboards.yaml");
const IPADDRESSPOOL = join(root, "examples/ipaddresspool");

// Each run is a fresh Node process (~0.2 s of CPU with the compile cache, twice that without):
// a shared compile cache for the type-stripped sources, and a bound on how many run at once.
const childEnv: NodeJS.ProcessEnv = {
  ...process.env,
  NODE_COMPILE_CACHE: process.env.NODE_COMPILE_CACHE ?? join(tmpdir(), "lb-ip-guard-compile-cache"),
};
delete childEnv.NODE_TEST_CONTEXT;
const maxChildren = Math.max(2, availableParallelism() + 1);
let running = 0;
const waiting: (() => void)[] = [];

async function cli(args: readonly string[], stdin = ""): Promise<ChildOutput> {
  if (running >= maxChildren) await new Promise<void>((resolve) => waiting.push(resolve));
  running += 1;
  try {
    return await spawnCli(args, stdin);
  } finally {
    running -= 1;
    waiting.shift()?.();
  }
}

function spawnCli(args: readonly string[], stdin: string): Promise<ChildOutput> {
  const child = spawn(process.execPath, [main, ...args], { cwd: root, env: childEnv });
  const output = outputOf(child);
  child.stdin.end(stdin);
  return output;
}

interface Result {
  namespace: string;
  name: string;
  decision: "allowed" | "assigned" | "denied";
  ips: string[];
  pool: string | null;
  reason: string | null;
  message: string;
}

interface Report {
  summary: { services: number; allowed: number; assigned: number; denied: number };
  results: Result[];
}

async function checkJson(
  args: readonly string[],
  stdin = "",
): Promise<ChildOutput & { report: Report }> {
  const run = await cli(["check", "--format", "json", ...args], stdin);
  assert.ok(run.code === 0 || run.code === 1, `exit ${run.code}: ${run.stderr}`);
  return { ...run, report: JSON.parse(run.stdout) as Report };
}

/** Each result as [namespace/name, decision, ips, pool, reason], in report order. */
function rows(report: Report): unknown[][] {
  return report.results.map((result) => [
    `${result.namespace}/${result.name}`,
    result.decision,
    result.ips,
    result.pool,
    result.reason,
  ]);
}

function find(report: Report, ref: string): Result {
  const result = report.results.find((entry) => `${entry.namespace}/${entry.name}` === ref);
  assert.ok(result !== undefined, `no result for ${ref}`);
  return result;
}

function yaml(...documents: string[]): string {
  return documents.map((document) => `---\n${document.trim()}\n`).join("");
}

/** A legacy MetalLB ConfigMap with the given pools (YAML list items of the config). */
function configMap(pools: string): string {
  const indented = pools
    .trim()
    .split("\n")
    .map((line) => `    ${line}`)
    .join("\n");
  return `apiVersion: v1
kind: ConfigMap
metadata:
  name: config
  namespace: metallb-system
data:
  config: |
    address-pools:
${indented}`;
}

const LAN = configMap(`
- name: lan
  protocol: layer2
  addresses:
  - 10.0.0.10-10.0.0.19
- name: other
  protocol: layer2
  addresses:
  - 10.0.1.0/28
`);

function service(
  ref: string,
  spec: Record<string, unknown> = {},
  annotations: Record<string, string> = {},
  labels: Record<string, string> = {},
): string {
  const [namespace, name] = ref.split("/");
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace, annotations, labels },
    spec: { type: "LoadBalancer", ports: [{ port: 80, protocol: "TCP" }], ...spec },
  });
}

describe("check on the MetalLB v0.11 Kubeflow example", { concurrency: true }, () => {
  test("JSON: the contract's shape, decisions in input order, exit 1 for the duplicate", async () => {
    const { code, report, stderr } = await checkJson([KUBEFLOW]);
    assert.equal(code, 1, stderr);
    assert.deepEqual(report.summary, { services: 6, allowed: 4, assigned: 1, denied: 1 });
    assert.deepEqual(Object.keys(report), ["summary", "results"]);
    assert.deepEqual(rows(report), [
      ["istio-system/istio-ingressgateway", "allowed", ["192.168.35.100"], "default", null],
      ["kubeflow/minio-service", "allowed", ["192.168.35.101"], "default", null],
      ["mlflow-system/mlflow-server-service", "allowed", ["192.168.35.102"], "default", null],
      [
        "seldon-system/seldon-core-analytics-grafana",
        "allowed",
        ["192.168.35.103"],
        "default",
        null,
      ],
      ["kubeflow/ml-pipeline-ui", "assigned", ["192.168.35.104"], "default", null],
      ["team-a/minio-copy", "denied", ["192.168.35.101"], "default", "AddressInUse"],
    ]);
    for (const result of report.results) {
      assert.deepEqual(Object.keys(result), [
        "namespace",
        "name",
        "decision",
        "ips",
        "pool",
        "reason",
        "message",
      ]);
      assert.equal(typeof result.message, "string");
    }
    const denied = find(report, "team-a/minio-copy");
    assert.match(denied.message, /kubeflow\/minio-service/);
    assert.match(denied.message, /192\.168\.35\.101/);
    // The hint names what would be accepted: .104 went to ml-pipeline-ui.
    assert.match(denied.message, /192\.168\.35\.105-192\.168\.35\.110/);
  });

  test("text: one line per Service (warnings indented below), then the summary", async () => {
    const { code, stdout } = await cli(["check", KUBEFLOW]);
    assert.equal(code, 1);
    const lines = stdout.trimEnd().split("\n");
    const decisions = lines.filter((line) => !line.startsWith(" "));
    assert.equal(decisions.length, 7);
    assert.match(
      decisions[0] ?? "",
      /^allowed +istio-system\/istio-ingressgateway 192\.168\.35\.100 \[default\] /,
    );
    assert.match(
      decisions[4] ?? "",
      /^assigned kubeflow\/ml-pipeline-ui 192\.168\.35\.104 \[default\] gets 192\.168\.35\.104/,
    );
    assert.match(
      decisions[5] ?? "",
      /^denied +team-a\/minio-copy 192\.168\.35\.101 \[default\] AddressInUse: .*kubeflow\/minio-service/,
    );
    assert.equal(decisions[6], "6 services: 4 allowed, 1 assigned, 1 denied");
    assert.match(lines[1] ?? "", /^ +warning: spec\.loadBalancerIP is deprecated/);
  });

  test("paths in any order: the pools of a later file apply to the Services of an earlier one", async () => {
    const { report } = await checkJson([KUBEFLOW_DASHBOARDS, KUBEFLOW_POOLS]);
    assert.deepEqual(report.summary, { services: 6, allowed: 4, assigned: 1, denied: 1 });
  });

  test("--pools instead of a PATH; the same ConfigMap given twice counts once", async () => {
    const alone = await checkJson([KUBEFLOW_DASHBOARDS, "--pools", KUBEFLOW_POOLS]);
    assert.deepEqual(alone.report.summary, { services: 6, allowed: 4, assigned: 1, denied: 1 });
    const twice = await checkJson([KUBEFLOW, "--pools", KUBEFLOW_POOLS]);
    assert.deepEqual(twice.report.summary, alone.report.summary);
  });

  test("input order decides who holds an address: the copy first, and minio is refused", async () => {
    const { report } = await checkJson(
      [KUBEFLOW_POOLS, "-"],
      yaml(
        service("team-a/minio-copy", { loadBalancerIP: "192.168.35.101" }),
        service("kubeflow/minio-service", { loadBalancerIP: "192.168.35.101" }),
      ),
    );
    assert.deepEqual(
      report.results.map((result) => [result.name, result.decision]),
      [
        ["minio-copy", "allowed"],
        ["minio-service", "denied"],
      ],
    );
    assert.match(find(report, "kubeflow/minio-service").message, /team-a\/minio-copy/);
  });

  test("--assign with a denial: the report on stderr, nothing to apply on stdout", async () => {
    const { code, stdout, stderr } = await cli(["check", "--assign", KUBEFLOW]);
    assert.equal(code, 1);
    assert.equal(stdout, "");
    assert.match(stderr, /6 services: 4 allowed, 1 assigned, 1 denied/);
  });
});

describe("check on the IPAddressPool example", { concurrency: true }, () => {
  test("serviceAllocation, IPv6 and a sharing pair: all accepted, exit 0", async () => {
    const { code, report } = await checkJson([IPADDRESSPOOL]);
    assert.equal(code, 0);
    assert.deepEqual(report.summary, { services: 7, allowed: 4, assigned: 3, denied: 0 });
    assert.deepEqual(
      report.results.map((result) => [
        `${result.namespace}/${result.name}`,
        result.decision,
        result.ips,
        result.pool,
      ]),
      [
        ["payments/api", "allowed", ["192.168.40.1"], "team-payments"],
        ["checkout/web", "assigned", ["192.168.40.2"], "team-payments"],
        ["default/blog", "assigned", ["192.168.41.10"], "general"],
        ["edge/dns-v6", "allowed", ["2001:db8:40::53"], "ipv6"],
        ["edge/resolver-v6", "assigned", ["2001:db8:40::10"], "ipv6"],
        ["default/dns-tcp", "allowed", ["192.168.41.53"], "general"],
        ["default/dns-udp", "allowed", ["192.168.41.53"], "general"],
      ],
    );
  });

  test("--assign: every document of the PATHs on stdout, assigned Services mutated", async () => {
    const { code, stdout, stderr } = await cli(["check", "--assign", IPADDRESSPOOL]);
    assert.equal(code, 0, stderr);
    assert.match(stderr, /7 services: 4 allowed, 3 assigned, 0 denied/);
    const documents = parseAllDocuments(stdout).map((document) => {
      assert.deepEqual(document.errors, []);
      return document.toJS();
    });
    // 3 Namespaces, 3 IPAddressPools, 1 L2Advertisement, 7 Services.
    assert.equal(documents.length, 14);
    const web = documents.find((document) => document.metadata?.name === "web");
    assert.equal(web.spec.type, "LoadBalancer");
    assert.equal(web.spec.loadBalancerIP, "192.168.40.2");
    assert.equal(web.metadata.annotations["lb-ip-guard.dev/assigned-from"], "team-payments");
    const api = documents.find((document) => document.metadata?.name === "api");
    assert.equal(api.metadata.annotations["lb-ip-guard.dev/assigned-from"], undefined);
    // Comments of the source survive.
    assert.match(stdout, /# A sharing pair: DNS over TCP and UDP on one address/);
  });

  test("the --assign output checks clean: every assigned Service is now a plain LoadBalancer", async () => {
    const assigned = await cli(["check", "--assign", IPADDRESSPOOL]);
    const { code, report } = await checkJson(["-"], assigned.stdout);
    assert.equal(code, 0);
    assert.deepEqual(report.summary, { services: 7, allowed: 7, assigned: 0, denied: 0 });
    assert.deepEqual(find(report, "checkout/web").ips, ["192.168.40.2"]);
  });
});

describe("check: one test per reason code", { concurrency: true }, () => {
  // One run decides them all: each case in its own namespace and addresses, so none interferes.
  const pools = yaml(
    LAN,
    `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: team-b-only, namespace: metallb-system}
spec:
  addresses: [10.5.0.0/29]
  serviceAllocation:
    namespaces: [team-b]`,
    `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: tiny, namespace: metallb-system}
spec:
  addresses: [10.7.0.1/32]
  autoAssign: false`,
  );
  const shared = { "metallb.io/allow-shared-ip": "k", "metallb.io/loadBalancerIPs": "10.0.0.13" };
  const tiny = { "lb-ip-guard.dev/auto-assign": "true", "metallb.io/address-pool": "tiny" };
  const services = yaml(
    service("invalid/s", { loadBalancerIP: "10.0.0.300" }),
    service(
      "conflicting/s",
      { loadBalancerIP: "10.0.0.10" },
      { "metallb.io/loadBalancerIPs": "10.0.0.11" },
    ),
    service("family/s", {
      ipFamilies: ["IPv6"],
      ipFamilyPolicy: "SingleStack",
      loadBalancerIP: "10.0.0.10",
    }),
    service("nopool/s", { loadBalancerIP: "10.9.9.9" }),
    service("poolnotfound/s", {}, { "metallb.io/address-pool": "nope" }),
    service(
      "poolmismatch/s",
      { loadBalancerIP: "10.0.0.10" },
      { "metallb.io/address-pool": "other" },
    ),
    service("team-a/s", { loadBalancerIP: "10.5.0.1" }),
    service("team-b/s", { loadBalancerIP: "10.5.0.1" }),
    service("inuse/first", { loadBalancerIP: "10.0.0.12" }),
    service("inuse/second", { loadBalancerIP: "10.0.0.12" }),
    service("sharing/one", {}, shared),
    service("sharing/two", {}, shared),
    service("exhausted/one", { type: "ClusterIP" }, tiny),
    service("exhausted/two", { type: "ClusterIP" }, tiny),
  );
  let report: Report = {
    summary: { services: 0, allowed: 0, assigned: 0, denied: 0 },
    results: [],
  };
  before(async () => {
    const run = await checkJson(["-"], pools + services);
    assert.equal(run.code, 1);
    report = run.report;
  });

  const cases: readonly [ReasonCode: string, ref: string, message: RegExp][] = [
    ["InvalidAddress", "invalid/s", /"10\.0\.0\.300" is not an IP address/],
    [
      "ConflictingFields",
      "conflicting/s",
      /both spec\.loadBalancerIP and the metallb\.io\/loadBalancerIPs/,
    ],
    ["FamilyMismatch", "family/s", /10\.0\.0\.10 is IPv4 but spec\.ipFamilies is \[IPv6\]/],
    ["NotInAnyPool", "nopool/s", /10\.9\.9\.9, which lies in no pool/],
    ["PoolNotFound", "poolnotfound/s", /"nope".*known pools: lan, other, team-b-only, tiny/],
    ["PoolMismatch", "poolmismatch/s", /not in the pool it names: pool "other"/],
    ["PoolNotAllowed", "team-a/s", /"team-b-only".*namespaces team-b/],
    ["AddressInUse", "inuse/second", /10\.0\.0\.12, which inuse\/first already holds/],
    ["SharingConflict", "sharing/two", /sharing key "k", but both expose TCP\/80/],
    ["PoolExhausted", "exhausted/two", /no free IPv4 address is left in pool "tiny"/],
  ];
  for (const [reason, ref, message] of cases) {
    test(reason, () => {
      const result = find(report, ref);
      assert.equal(result.decision, "denied");
      assert.equal(result.reason, reason);
      assert.match(result.message, new RegExp(ref.replace("/", "\\/")));
      assert.match(result.message, message);
    });
  }

  test("the Services beside the denials are accepted", () => {
    assert.equal(find(report, "team-b/s").decision, "allowed");
    assert.equal(find(report, "inuse/first").decision, "allowed");
    assert.equal(find(report, "sharing/one").decision, "allowed");
    assert.deepEqual(find(report, "exhausted/one").ips, ["10.7.0.1"]);
    assert.equal(find(report, "exhausted/one").decision, "assigned");
    assert.equal(report.summary.denied, cases.length);
  });
});

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

describe("command line", { concurrency: true }, () => {
  test("no arguments, -h and --help print the usage and exit 0", async () => {
    for (const { code, stdout } of await Promise.all([cli([]), cli(["-h"]), cli(["--help"])])) {
      assert.equal(code, 0);
      assert.match(stdout, /Usage: lb-ip-guard <command>/);
      assert.match(stdout, /check +check Service manifests/);
    }
  });

  test("check --help documents the flags and --assign", async () => {
    const { code, stdout } = await cli(["check", "--help"]);
    assert.equal(code, 0);
    for (const flag of ["--pools", "--existing", "--format", "--assign", "kubectl apply -f -"]) {
      assert.ok(stdout.includes(flag), flag);
    }
  });

  test("unknown command, unknown flag, bad values: exit 2 with one line", async () => {
    const runs = await Promise.all([
      cli(["frobnicate"]),
      cli(["--frobnicate"]),
      cli(["check", KUBEFLOW, "--frobnicate"]),
      cli(["check", KUBEFLOW, "--format", "yaml"]),
      cli(["check", KUBEFLOW, "--format"]),
      cli(["check"]),
      cli(["check", "-", "--existing", "-"]),
      cli(["check", "--existing", KUBEFLOW_DASHBOARDS, "--assign"]),
    ]);
    const expected = [
      /unknown command 'frobnicate'/,
      /unknown option '--frobnicate'/,
      /unknown option '--frobnicate'/,
      /--format must be text or json/,
      /'--format' needs a value/,
      /no manifests given/,
      /stdin \(-\) can be read only once/,
      /--assign writes the manifests it is given/,
    ];
    runs.forEach((run, index) => {
      assert.equal(run.code, 2, run.stderr);
      assert.equal(run.stdout, "");
      assert.equal(run.stderr.trimEnd().split("\n").length, 1, run.stderr);
      assert.match(run.stderr, expected[index] as RegExp);
    });
  });
});
