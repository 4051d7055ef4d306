// The layering of src/, checked on every run rather than hoped for: each folder may import only
// from folders below it, the core imports no I/O and no Kubernetes client, and no file imports
// itself through others. A new folder must be given its place here first.

import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const SRC = fileURLToPath(new URL("../../src/", import.meta.url));

/** From the bottom up; a folder may import its own files and those of lower ranks only. */
const RANK: Readonly<Record<string, number>> = {
  base: 0,
  ipam: 1,
  admission: 2,
  certs: 3,
  manifests: 3,
  cluster: 4,
  server: 5,
  cli: 6,
};

/** The pure core: decisions as data, no I/O, so it is tested exhaustively and benchmarked alone. */
const CORE = new Set(["base", "ipam", "admission"]);
const IO_MODULES = [
  "@kubernetes/client-node",
  "fastify",
  "pino",
  "prom-client",
  "selfsigned",
  "node:fs",
  "node:fs/promises",
  "node:http",
  "node:https",
  "node:net",
  "node:tls",
  "node:child_process",
];

interface SourceFile {
  readonly path: string;
  readonly folder: string;
  /** Project files it imports (resolved), and the bare specifiers of packages. */
  readonly imports: readonly string[];
  readonly packages: readonly string[];
}

async function sourceFiles(dir = SRC): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const nested = await Promise.all(
    entries.map((entry) => {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) return sourceFiles(path);
      return Promise.resolve(entry.name.endsWith(".ts") ? [path] : []);
    }),
  );
  return nested.flat();
}

const SPECIFIER = /(?:\bfrom\s+|\bimport\s*\(\s*|^\s*import\s+)"([^"]+)"/gm;

async function parse(path: string): Promise<SourceFile> {
  const text = await readFile(path, "utf8");
  const specifiers = [...text.matchAll(SPECIFIER)].map((match) => match[1] ?? "");
  const local = specifiers.filter((specifier) => specifier.startsWith("."));
  return {
    path: relative(SRC, path),
    folder: relative(SRC, path).split("/")[0] ?? "",
    imports: local.map((specifier) => relative(SRC, resolve(dirname(path), specifier))),
    packages: specifiers.filter((specifier) => !specifier.startsWith(".")),
  };
}

const files = await Promise.all((await sourceFiles()).map(parse));

test("every folder of src/ has its place in the layering", () => {
  const unplaced = [...new Set(files.map((file) => file.folder))].filter(
    (folder) => RANK[folder] === undefined,
  );
  assert.deepEqual(unplaced, [], "give each new folder a rank in test/architecture/layers.test.ts");
});

test("imports run one way: down the layers, or within a folder", () => {
  const upward = files.flatMap((file) =>
    file.imports.flatMap((target) => {
      const folder = target.split("/")[0] ?? "";
      const from = RANK[file.folder] ?? -1;
      const to = RANK[folder] ?? Number.POSITIVE_INFINITY;
      return folder === file.folder || to < from ? [] : [`${file.path} -> ${target}`];
    }),
  );
  assert.deepEqual(upward, []);
});

/** The package a bare specifier imports from: `@scope/name` or `name`, without a subpath. */
function packageOf(specifier: string): string {
  const parts = specifier.split("/");
  return parts.slice(0, specifier.startsWith("@") ? 2 : 1).join("/");
}

test("the core (base, ipam, admission) does no I/O and knows no Kubernetes client", () => {
  const io = files.flatMap((file) =>
    CORE.has(file.folder)
      ? file.packages
          .filter((specifier) => IO_MODULES.includes(packageOf(specifier)))
          .map((specifier) => `${file.path} -> ${specifier}`)
      : [],
  );
  assert.deepEqual(io, []);
});

test("only src/cluster/kube.ts imports the Kubernetes client, and never the package's index", () => {
  // The index loads every generated API client (client-imports.ts).
  const imports = files.flatMap((file) =>
    file.packages
      .filter((specifier) => packageOf(specifier) === "@kubernetes/client-node")
      .map((specifier) => `${file.path} -> ${specifier}`),
  );
  assert.ok(imports.length > 0, "kube.ts imports the client");
  assert.deepEqual(
    imports.filter(
      (entry) => !entry.startsWith("cluster/kube.ts -> @kubernetes/client-node/dist/"),
    ),
    [],
  );
});

test("no file imports itself through others", () => {
  const graph = new Map(files.map((file) => [file.path, file.imports]));
  const circles: string[] = [];
  const state = new Map<string, "open" | "done">();
  const visit = (path: string, trail: string[]) => {
    if (state.get(path) === "done") return;
    if (state.get(path) === "open") {
      circles.push([...trail.slice(trail.indexOf(path)), path].join(" -> "));
      return;
    }
    state.set(path, "open");
    for (const next of graph.get(path) ?? []) visit(next, [...trail, path]);
    state.set(path, "done");
  };
  for (const path of graph.keys()) visit(path, []);
  assert.deepEqual(circles, []);
});
