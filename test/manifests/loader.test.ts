import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { parseAllDocuments } from "yaml";
import {
  ManifestError,
  ManifestLoader,
  manifestFiles,
  parseManifests,
  STDIN_NAME,
  serializeDocuments,
} from "../../src/manifests/loader.ts";

function catchManifestError(run: () => unknown): ManifestError {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof ManifestError, `expected a ManifestError, got ${String(error)}`);
    return error;
  }
  assert.fail("expected a ManifestError");
}

async function rejectsWithManifestError(promise: Promise<unknown>): Promise<ManifestError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ManifestError, `expected a ManifestError, got ${String(error)}`);
    return error;
  }
  assert.fail("expected a ManifestError");
}

describe("parseManifests", () => {
  test("multi-document YAML: objects in order, numbered by document from 1, empty ones skipped", () => {
    const text = [
      "# leading comment",
      "apiVersion: v1",
      "kind: Service",
      "metadata: {name: a}",
      "---",
      "# only a comment",
      "---",
      "apiVersion: v1",
      "kind: Namespace",
      "metadata: {name: b}",
      "---",
      "",
    ].join("\n");
    const objects = parseManifests(text, "all.yaml");
    assert.deepEqual(
      objects.map((object) => [object.object.kind, object.source.document, object.location]),
      [
        ["Service", 1, "all.yaml#1"],
        ["Namespace", 3, "all.yaml#3"],
      ],
    );
    assert.deepEqual(objects[0]?.path, []);
  });

  test("JSON is read by the same parser", () => {
    const objects = parseManifests(
      '{\n\t"apiVersion": "v1",\n\t"kind": "Service",\n\t"metadata": {"name": "j"}\n}\n',
      "svc.json",
    );
    assert.equal(objects.length, 1);
    assert.deepEqual(objects[0]?.object.metadata, { name: "j" });
  });

  test("kind: List is flattened, with the path of each item", () => {
    const text = `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: a}
- apiVersion: v1
  kind: List
  items:
  - apiVersion: v1
    kind: Namespace
    metadata: {name: n}
`;
    const objects = parseManifests(text, "list.yaml");
    assert.deepEqual(
      objects.map((object) => [object.object.kind, object.location, object.path]),
      [
        ["Service", "list.yaml#1 items[0]", ["items", 0]],
        ["Namespace", "list.yaml#1 items[1].items[0]", ["items", 1, "items", 0]],
      ],
    );
  });

  test("*List items without kind (straight from the API) get the list's item kind and apiVersion", () => {
    const text = `apiVersion: v1
kind: ServiceList
items:
- metadata: {name: a, namespace: x}
- apiVersion: v1
  kind: Service
  metadata: {name: b}
`;
    const objects = parseManifests(text, "svc.yaml");
    assert.deepEqual(
      objects.map((object) => object.object),
      [
        { apiVersion: "v1", kind: "Service", metadata: { name: "a", namespace: "x" } },
        { apiVersion: "v1", kind: "Service", metadata: { name: "b" } },
      ],
    );
  });

  test("an empty List contributes nothing", () => {
    assert.deepEqual(parseManifests("apiVersion: v1\nkind: List\nitems: []\n", "e.yaml"), []);
    assert.deepEqual(parseManifests("apiVersion: v1\nkind: ServiceList\nitems:\n", "e.yaml"), []);
  });

  test("broken YAML: a ManifestError naming file, document and line, on one line", () => {
    const error = catchManifestError(() =>
      parseManifests("kind: Service\n---\nkind: Service\nmetadata: {name: [\n", "bad.yaml"),
    );
    assert.equal(error.file, "bad.yaml");
    assert.equal(error.document, 2);
    assert.match(error.message, /^bad\.yaml#2: not valid YAML or JSON: .*line \d+/);
    assert.doesNotMatch(error.message, /\n/);
  });

  test("duplicate keys are an error, as for kubectl", () => {
    const error = catchManifestError(() =>
      parseManifests("kind: Service\nkind: Namespace\n", "dup.yaml"),
    );
    assert.equal(error.document, 1);
    assert.match(error.message, /unique/);
  });

  test("an unresolved alias is an input error, not a crash", () => {
    const error = catchManifestError(() => parseManifests("kind: *nowhere\n", "alias.yaml"));
    assert.equal(error.document, 1);
  });

  test("a document that is not a mapping is refused with what it is", () => {
    const scalar = catchManifestError(() =>
      parseManifests("kind: Service\n---\njust text\n", "s.yaml"),
    );
    assert.equal(scalar.document, 2);
    assert.match(scalar.message, /expected a Kubernetes object.*the string "just text"/);
    const list = catchManifestError(() => parseManifests("- kind: Service\n", "l.yaml"));
    assert.match(list.message, /found a list/);
    const item = catchManifestError(() =>
      parseManifests("kind: List\nitems:\n- kind: Service\n- 42\n", "i.yaml"),
    );
    assert.match(item.message, /^i\.yaml#1: items\[1\]: expected a Kubernetes object/);
    const items = catchManifestError(() => parseManifests("kind: List\nitems: {a: 1}\n", "i.yaml"));
    assert.match(items.message, /items of a List must be a list/);
  });
});

describe("loading paths", () => {
  let dir = "";
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "lb-ip-guard-manifests-"));
    await mkdir(join(dir, "b"));
    await mkdir(join(dir, "a", "deep"), { recursive: true });
    await writeFile(join(dir, "b", "one.yaml"), "kind: Service\nmetadata: {name: b1}\n");
    await writeFile(join(dir, "a", "deep", "two.yml"), "kind: Service\nmetadata: {name: a2}\n");
    await writeFile(join(dir, "a", "Z.json"), '{"kind": "Service", "metadata": {"name": "aZ"}}');
    await writeFile(join(dir, "a", "notes.txt"), "not a manifest: [");
    await writeFile(join(dir, "a", "README.md"), "# not a manifest");
    // A link back up the tree must not loop.
    await symlink(dir, join(dir, "a", "loop"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test("a directory: manifest files below it, recursively, in code-point order", async () => {
    const files = await manifestFiles(dir);
    assert.deepEqual(files, [
      join(dir, "a", "Z.json"),
      join(dir, "a", "deep", "two.yml"),
      join(dir, "b", "one.yaml"),
    ]);
    const objects = await new ManifestLoader().load([dir]);
    assert.deepEqual(
      objects.map((object) => (object.object.metadata as { name: string }).name),
      ["aZ", "a2", "b1"],
    );
  });

  test("paths in the order given; a file is read whatever its extension", async () => {
    const objects = await new ManifestLoader().load([
      join(dir, "b", "one.yaml"),
      join(dir, "a", "deep", "two.yml"),
    ]);
    assert.deepEqual(
      objects.map((object) => object.source.file),
      [join(dir, "b", "one.yaml"), join(dir, "a", "deep", "two.yml")],
    );
    const error = await rejectsWithManifestError(
      new ManifestLoader().load([join(dir, "a", "notes.txt")]),
    );
    assert.equal(error.file, join(dir, "a", "notes.txt"));
  });

  test("a missing path is a ManifestError, not an ENOENT stack", async () => {
    const missing = join(dir, "missing.yaml");
    const error = await rejectsWithManifestError(new ManifestLoader().load([missing]));
    assert.equal(error.message, `${missing}: cannot read: no such file or directory`);
  });

  test("- reads stdin once; naming it twice is an error", async () => {
    let reads = 0;
    const loader = new ManifestLoader({
      readStdin: async () => {
        reads += 1;
        return "kind: Service\nmetadata: {name: s}\n---\nkind: Namespace\nmetadata: {name: n}\n";
      },
    });
    const objects = await loader.load(["-"]);
    assert.deepEqual(
      objects.map((object) => object.location),
      [`${STDIN_NAME}#1`, `${STDIN_NAME}#2`],
    );
    const error = await rejectsWithManifestError(loader.load(["-"]));
    assert.equal(error.file, STDIN_NAME);
    assert.equal(reads, 1);
  });
});

describe("serializeDocuments", () => {
  test("unedited documents are copied as written; edited ones keep their comments", () => {
    const text = `# first file comment
apiVersion: v1
kind: Namespace
metadata:
  name: n   # odd spacing kept
---
apiVersion: v1
kind: Service   # the one to edit
metadata:
  name: s
spec:
  type: ClusterIP
`;
    const [namespace, service] = parseManifests(text, "f.yaml");
    assert.ok(namespace !== undefined && service !== undefined);
    service.source.yaml.setIn(["spec", "type"], "LoadBalancer");
    const out = serializeDocuments([namespace.source, service.source], new Set([service.source]));
    assert.ok(out.startsWith("---\n# first file comment\n"));
    assert.match(out, /name: n {3}# odd spacing kept/);
    assert.match(out, /kind: Service # the one to edit/);
    assert.match(out, /type: LoadBalancer/);
    const reparsed = parseAllDocuments(out).map((document) => document.toJS());
    assert.equal(reparsed.length, 2);
    assert.deepEqual(reparsed[1].spec, { type: "LoadBalancer" });
  });

  test("flow mappings of an edited document become block style; List items edit in place", () => {
    const [object] = parseManifests(
      'kind: List\nitems:\n- kind: Service\n  metadata: {name: a, annotations: {x: "true"}}\n',
      "l.yaml",
    );
    assert.ok(object !== undefined);
    object.source.yaml.setIn([...object.path, "metadata", "annotations", "y"], "z");
    const out = serializeDocuments([object.source], new Set([object.source]));
    assert.equal(
      out,
      '---\nkind: List\nitems:\n  - kind: Service\n    metadata:\n      name: a\n      annotations:\n        x: "true"\n        y: z\n',
    );
  });

  test("an edited JSON document comes out as block YAML", () => {
    const [object] = parseManifests('{"kind": "Service", "spec": {"type": "ClusterIP"}}', "s.json");
    assert.ok(object !== undefined);
    object.source.yaml.setIn(["spec", "type"], "LoadBalancer");
    const out = serializeDocuments([object.source], new Set([object.source]));
    assert.equal(out, "---\nkind: Service\nspec:\n  type: LoadBalancer\n");
  });
});
