// Where `check` results point: the file relative to the current folder, the document (0-based) and
// the line of the field the decision is about, in YAML and JSON, multi-document files, List items
// and stdin, and the source file kustomize recorded in its origin annotation.

import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { checkJson, find, KUBEFLOW, KUBEFLOW_DASHBOARDS, KUBEFLOW_POOLS, LAN } from "./helpers.ts";

const root = fileURLToPath(new URL("../../../", import.meta.url));

/** The 1-based line of the only line of `text` that contains `marker`. */
function lineOf(text: string, marker: string): number {
  const lines = text.split("\n");
  const found = lines.flatMap((line, index) => (line.includes(marker) ? [index + 1] : []));
  assert.equal(found.length, 1, `${marker}: ${found.length} lines`);
  return found[0] ?? 0;
}

const MULTI = `# The pools first.
${LAN}
---
# A comment above the Service: the document's first line is its apiVersion.
apiVersion: v1
kind: Service
metadata:
  name: spec-ip
  namespace: a
spec:
  type: LoadBalancer
  loadBalancerIP: 10.0.0.10
---
apiVersion: v1
kind: Service
metadata:
  name: dup
  namespace: a
  annotations:
    metallb.io/loadBalancerIPs: 10.0.0.10
spec:
  type: LoadBalancer
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: a}
spec:
  type: ClusterIP
  externalIPs:
    - 192.0.2.1
    - 10.0.0.11
---
apiVersion: v1
kind: Service
metadata:
  name: wrong-pool
  namespace: a
  annotations:
    metallb.io/address-pool: nope
spec:
  type: LoadBalancer
  loadBalancerIP: 10.0.0.12
---
# Nothing to decide on, in flow style.
{apiVersion: v1, kind: Service, metadata: {name: plain, namespace: a}, spec: {type: ClusterIP}}
---
apiVersion: v1
kind: Service
metadata:
  name: auto
  namespace: a
  annotations:
    lb-ip-guard.dev/auto-assign: "true"
spec:
  type: ClusterIP
---
apiVersion: v1
kind: Service
metadata:
  name: key
  namespace: a
  annotations:
    metallb.universe.tf/loadBalancerIPs: |
      10.0.0.13
spec:
  type: LoadBalancer
---
apiVersion: v1
kind: Service
metadata:
  name: both
  namespace: a
  annotations:
    metallb.io/loadBalancerIPs: 10.0.0.14
spec:
  type: LoadBalancer
  loadBalancerIP: 10.0.0.14
`;

describe("check: where each result points", () => {
  test("multi-document YAML: the field decided on, else the document's first line", async () => {
    const { report } = await checkJson(["-", "--stdin-filename", "deploy/services.yaml"], MULTI);
    // Per Service: decision, reason, document, line.
    const expected: [string, string, string | null, number, number][] = [
      ["a/spec-ip", "allowed", null, 1, lineOf(MULTI, "loadBalancerIP: 10.0.0.10")],
      [
        "a/dup",
        "denied",
        "AddressInUse",
        2,
        lineOf(MULTI, "metallb.io/loadBalancerIPs: 10.0.0.10"),
      ],
      // The entry that lies in a pool, not the list.
      ["a/ext", "denied", "ExternalIPInPool", 3, lineOf(MULTI, "- 10.0.0.11")],
      // A refusal of the pool named points at the pool annotation, not the address.
      ["a/wrong-pool", "denied", "PoolNotFound", 4, lineOf(MULTI, "address-pool: nope")],
      // No field decided on: the object's first line, below its comment.
      ["a/plain", "allowed", null, 5, lineOf(MULTI, "name: plain")],
      ["a/auto", "assigned", null, 6, lineOf(MULTI, "lb-ip-guard.dev/auto-assign")],
      // A block scalar: the key's line, where the value starts below it.
      ["a/key", "allowed", null, 7, lineOf(MULTI, "metallb.universe.tf/loadBalancerIPs: |")],
      // Both fields: the annotation, the one MetalLB asks to keep.
      [
        "a/both",
        "denied",
        "ConflictingFields",
        8,
        lineOf(MULTI, "metallb.io/loadBalancerIPs: 10.0.0.14"),
      ],
    ];
    assert.deepEqual(
      expected.map(([ref]) => {
        const result = find(report, ref);
        return [ref, result.decision, result.reason, result.document, result.line];
      }),
      expected,
    );
    assert.ok(report.results.every((result) => result.file === "deploy/services.yaml"));
  });

  test("the key the guarded release ignores is the line of an IgnoredAnnotation", async () => {
    const { report } = await checkJson(["-", "--metallb-version", "v0.11.0"], MULTI);
    const result = find(report, "a/dup");
    assert.equal(result.reason, "IgnoredAnnotation");
    assert.equal(result.file, "<stdin>");
    assert.equal(result.line, lineOf(MULTI, "metallb.io/loadBalancerIPs: 10.0.0.10"));
  });

  test("JSON, and the items of a List: the item's field", async () => {
    const list = {
      apiVersion: "v1",
      kind: "List",
      items: [
        {
          apiVersion: "v1",
          kind: "Service",
          metadata: { name: "one", namespace: "j" },
          spec: { type: "LoadBalancer", loadBalancerIP: "10.0.0.14" },
        },
        {
          apiVersion: "v1",
          kind: "Service",
          metadata: { name: "two", namespace: "j" },
          spec: { type: "LoadBalancer", loadBalancerIP: "10.0.0.14" },
        },
      ],
    };
    const json = JSON.stringify(list, null, 2);
    const dir = await mkdtemp(join(tmpdir(), "lb-ip-guard-locations-"));
    try {
      const file = join(dir, "list.json");
      await writeFile(file, json);
      await writeFile(join(dir, "pools.yaml"), LAN);
      const { report } = await checkJson([file, "--pools", join(dir, "pools.yaml")]);
      const lines = json
        .split("\n")
        .flatMap((line, index) =>
          line.includes('"loadBalancerIP": "10.0.0.14"') ? [index + 1] : [],
        );
      assert.deepEqual(
        report.results.map((result) => [
          result.name,
          result.reason,
          result.file,
          result.document,
          result.line,
        ]),
        [
          ["one", null, relative(root, file), 0, lines[0]],
          ["two", "AddressInUse", relative(root, file), 0, lines[1]],
        ],
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("files relative to the current folder, however named; an audit's Services have none", async () => {
    const [relativeRun, absoluteRun, audit, namedStdin] = await Promise.all([
      checkJson([relative(root, KUBEFLOW)]),
      checkJson([KUBEFLOW]),
      checkJson(["--existing", KUBEFLOW_DASHBOARDS, "--pools", KUBEFLOW_POOLS]),
      checkJson(
        ["-", "--pools", KUBEFLOW_POOLS, "--stdin-filename", join(root, "charts/web")],
        MULTI,
      ),
    ]);
    assert.ok(namedStdin.report.results.every((result) => result.file === "charts/web"));
    const places = (report: typeof relativeRun.report) =>
      report.results.map((result) => [result.file, result.document, result.line]);
    assert.deepEqual(places(absoluteRun.report), places(relativeRun.report));
    const copy = find(relativeRun.report, "team-a/minio-copy");
    assert.equal(copy.file, "examples/kubeflow-v0.11/dashboards.yaml");
    assert.equal(copy.document, 5);
    assert.ok(
      audit.report.results.every(
        (result) => result.file === null && result.document === null && result.line === null,
      ),
    );
  });

  test("kustomize's origin annotation: the source file and its line, not the rendered stream", async () => {
    const dir = await mkdtemp(join(root, ".test-origins-"));
    try {
      await mkdir(join(dir, "base"));
      await mkdir(join(dir, "overlays", "prod"), { recursive: true });
      const base = `apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: LoadBalancer
  loadBalancerIP: 10.0.0.15
`;
      await writeFile(join(dir, "base", "service.yaml"), base);
      // What `kubectl kustomize overlays/prod` renders with buildMetadata: [originAnnotations]
      // and namePrefix: prod-.
      const rendered = (origin: string, name: string) => `apiVersion: v1
kind: Service
metadata:
  name: ${name}
  namespace: prod
  annotations:
    config.kubernetes.io/origin: |
      path: ${origin}
spec:
  type: LoadBalancer
  loadBalancerIP: 10.0.0.15
`;
      const stream = [
        LAN,
        rendered("../../base/service.yaml", "prod-web"),
        rendered("../../base/gone.yaml", "prod-other"),
      ].join("\n---\n");
      const { report } = await checkJson(
        ["-", "--stdin-filename", join(relative(root, dir), "overlays/prod/kustomization.yaml")],
        stream,
      );
      const web = find(report, "prod/prod-web");
      assert.deepEqual(
        [web.file, web.document, web.line],
        [join(relative(root, dir), "base/service.yaml"), 0, lineOf(base, "loadBalancerIP")],
      );
      // An origin file that is not there: the stream stays the place.
      const other = find(report, "prod/prod-other");
      assert.equal(other.file, join(relative(root, dir), "overlays/prod/kustomization.yaml"));
      assert.equal(other.reason, "AddressInUse");
      assert.equal(other.document, 2);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
