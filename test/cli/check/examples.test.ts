// `lb-ip-guard check` on the examples of the repository: the MetalLB v0.11 Kubeflow scenario and
// the IPAddressPool example, in JSON and text, with --assign.
// Subtests run concurrently: each is a separate process.

import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { parseAllDocuments } from "yaml";
import {
  checkJson,
  cli,
  find,
  IPADDRESSPOOL,
  KUBEFLOW,
  KUBEFLOW_DASHBOARDS,
  KUBEFLOW_POOLS,
  rows,
  service,
  yaml,
} from "./helpers.ts";

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
        "file",
        "document",
        "line",
      ]);
      assert.equal(typeof result.message, "string");
      assert.equal(result.file, "examples/kubeflow-v0.11/dashboards.yaml");
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

describe("the README's In CI run", () => {
  test("its annotations and SARIF result are what check writes on the Kubeflow example", async () => {
    const readme = await readFile(new URL("../../../README.md", import.meta.url), "utf8");
    const block =
      /```console\n\$ lb-ip-guard check examples\/kubeflow-v0\.11 ([^\n]*) \\\n {4}([^\n]*)\n([\s\S]*?)\$ echo \$\?\n(\d)\n\$ jq [^\n]*\n([^\n]*)\n```/.exec(
        readme,
      );
    assert.ok(block !== null, "README: the In CI console block");
    const [, first = "", second = "", annotations = "", status = "", sarifRow = ""] = block;
    const dir = await mkdtemp(join(tmpdir(), "lb-ip-guard-readme-"));
    try {
      const args = `${first} ${second}`
        .split(" ")
        .map((arg) => (arg === "lb-ip-guard.sarif" ? join(dir, arg) : arg));
      const run = await cli(["check", KUBEFLOW, ...args]);
      assert.equal(run.code, Number(status));
      assert.equal(run.stdout, annotations);
      const sarif = JSON.parse(await readFile(join(dir, "lb-ip-guard.sarif"), "utf8"));
      const rows = sarif.runs[0].results.map(
        (result: {
          ruleId: string;
          level: string;
          locations: {
            physicalLocation: { artifactLocation: { uri: string }; region: { startLine: number } };
          }[];
        }) =>
          JSON.stringify([
            result.ruleId,
            result.level,
            result.locations[0]?.physicalLocation.artifactLocation.uri,
            result.locations[0]?.physicalLocation.region.startLine,
          ]),
      );
      assert.deepEqual(rows, [sarifRow]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("the README's Addresses that stay", () => {
  test("its check and pools transcripts are what they print on examples/address-lifecycle", async () => {
    const readme = await readFile(new URL("../../../README.md", import.meta.url), "utf8");
    const blocks = [
      ...readme.matchAll(
        /```console\n\$ lb-ip-guard ((?:check|pools) [^\n]*address-lifecycle[^\n]*)\n([\s\S]*?)```/g,
      ),
    ];
    assert.deepEqual(
      blocks.map(([, command]) => command?.split(" ")[0]),
      ["check", "pools"],
    );
    for (const [, command = "", output = ""] of blocks) {
      const run = await cli(command.split(" "));
      assert.equal(run.code, command.startsWith("check") ? 1 : 0, run.stderr);
      assert.equal(run.stdout, output, command);
    }
  });
});
