// Loading Kubernetes manifests: files, directories, stdin; multi-document YAML and JSON;
// `kind: List` and `*List` flattened (what `check` reads, and serve's --pools files). Every
// object keeps where it came from (file, document number, path inside a List) so messages can
// point at it and `check --assign` can write a mutation back into the very document it came from.

import { readdir, readFile, realpath, stat } from "node:fs/promises";
import { join } from "node:path";
import {
  type Document,
  isCollection,
  LineCounter,
  parseAllDocuments,
  parseDocument,
  stringify,
  visit,
} from "yaml";
import { isRecord } from "../base/objects.ts";
import { oneLine } from "../base/text.ts";

/** The name stdin gets in locations and messages. */
export const STDIN_NAME = "<stdin>";

/** Files a directory contributes: YAML and JSON, as `kubectl apply -f DIR` reads them. */
const MANIFEST_FILE = /\.(ya?ml|json)$/i;

/** Broken input: which file, which document (counting from 1; undefined: the file itself), why. */
export class ManifestError extends Error {
  readonly file: string;
  readonly document: number | undefined;
  readonly reason: string;

  constructor(file: string, document: number | undefined, reason: string) {
    const where = document === undefined ? file : `${file}#${document}`;
    super(oneLine(`${where}: ${reason}`));
    this.name = "ManifestError";
    this.file = file;
    this.document = document;
    this.reason = oneLine(reason);
  }
}

/** One YAML document of one source, as parsed (comments and layout kept for re-serialising). */
export interface SourceDocument {
  readonly file: string;
  /** 1-based position of the document in its file. */
  readonly document: number;
  readonly yaml: Document.Parsed;
  /** The document's text as written, comments and `---` included. */
  readonly text: string;
  /** Line starts of the whole file: the yaml nodes' ranges are offsets into it. */
  readonly lines: LineCounter;
}

/** One Kubernetes object (a document, or an item of a List document). */
export interface ManifestObject {
  readonly object: Record<string, unknown>;
  readonly source: SourceDocument;
  /** Path of the object inside its document: [] at top level, ["items", 3] in a List. */
  readonly path: readonly (string | number)[];
  /** `file#document`, plus ` items[i]` inside a List (pathText of path): for messages. */
  readonly location: string;
}

export interface LoadOptions {
  /** Reads standard input; injectable for tests. Called at most once. */
  readonly readStdin?: () => Promise<string>;
  /** What stdin is called in locations and messages (`check --stdin-filename`). */
  readonly stdinName?: string;
}

/**
 * A loader for one command-line invocation: `-` (stdin) may be named once across every flag,
 * since stdin can be read only once.
 */
export class ManifestLoader {
  readonly #readStdin: () => Promise<string>;
  readonly #stdinName: string;
  #stdinUsed = false;

  constructor(options: LoadOptions = {}) {
    this.#readStdin = options.readStdin ?? readStdin;
    this.#stdinName = options.stdinName ?? STDIN_NAME;
  }

  /** Every object of every path, in order: paths as given, directory entries sorted. */
  async load(paths: readonly string[]): Promise<ManifestObject[]> {
    const objects: ManifestObject[] = [];
    for (const path of paths) objects.push(...(await this.loadPath(path)));
    return objects;
  }

  async loadPath(path: string): Promise<ManifestObject[]> {
    if (path === "-") {
      if (this.#stdinUsed) {
        throw new ManifestError(this.#stdinName, undefined, "stdin (-) can be read only once");
      }
      this.#stdinUsed = true;
      let text: string;
      try {
        text = await this.#readStdin();
      } catch (error) {
        throw new ManifestError(
          this.#stdinName,
          undefined,
          `cannot read: ${describeIOError(error)}`,
        );
      }
      return parseManifests(text, this.#stdinName);
    }
    const files = await manifestFiles(path);
    const objects: ManifestObject[] = [];
    for (const file of files) {
      let text: string;
      try {
        text = await readFile(file, "utf8");
      } catch (error) {
        throw new ManifestError(file, undefined, `cannot read: ${describeIOError(error)}`);
      }
      objects.push(...parseManifests(text, file));
    }
    return objects;
  }
}

/** `path` itself when it is a file; the manifest files below it, sorted, when a directory. */
export async function manifestFiles(path: string): Promise<string[]> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(path);
  } catch (error) {
    throw new ManifestError(path, undefined, `cannot read: ${describeIOError(error)}`);
  }
  if (!info.isDirectory()) return [path];
  const found: string[] = [];
  await walk(path, found, new Set());
  return found;
}

async function walk(directory: string, found: string[], visited: Set<string>): Promise<void> {
  let real: string;
  let entries: string[];
  try {
    real = await realpath(directory);
    entries = await readdir(directory);
  } catch (error) {
    throw new ManifestError(directory, undefined, `cannot read: ${describeIOError(error)}`);
  }
  // A symlink pointing back up the tree must not send the walk round in circles.
  if (visited.has(real)) return;
  visited.add(real);
  // Code-point order, not locale order: the same on every machine and in every CI runner.
  entries.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  for (const entry of entries) {
    const path = join(directory, entry);
    let info: Awaited<ReturnType<typeof stat>>;
    try {
      info = await stat(path);
    } catch (error) {
      throw new ManifestError(path, undefined, `cannot read: ${describeIOError(error)}`);
    }
    if (info.isDirectory()) await walk(path, found, visited);
    else if (info.isFile() && MANIFEST_FILE.test(entry)) found.push(path);
  }
}

/**
 * Every object in one file's text. YAML (one or many documents) and JSON (a JSON text is a YAML
 * document) go through one parser, so errors carry line and column either way. Empty documents
 * (a trailing `---`, comments only) are skipped; a List's items are flattened, recursively.
 */
export function parseManifests(text: string, file: string): ManifestObject[] {
  const objects: ManifestObject[] = [];
  // Counted while lexing, so that a result can name the line of the field it is about.
  const lines = new LineCounter();
  const documents = parseAllDocuments(text, { prettyErrors: true, lineCounter: lines });
  // Each document's text runs to the end of its node range, from where the previous one ended
  // (so the first keeps its leading comments).
  let previousEnd = 0;
  documents.forEach((yaml, index) => {
    const document = index + 1;
    const written = text.slice(previousEnd, yaml.range[2]);
    previousEnd = yaml.range[2];
    const [error] = yaml.errors;
    if (error !== undefined) {
      throw new ManifestError(
        file,
        document,
        `not valid YAML or JSON: ${firstLine(error.message)}`,
      );
    }
    let value: unknown;
    try {
      value = yaml.toJS({ maxAliasCount: 100 });
    } catch (error) {
      throw new ManifestError(file, document, `cannot be read: ${(error as Error).message}`);
    }
    if (value === null || value === undefined) return;
    const source: SourceDocument = { file, document, yaml, text: written, lines };
    flatten(value, source, [], objects);
  });
  return objects;
}

/**
 * Objects already parsed (a cluster's collections, read as JSON) as the objects of one List
 * document named `file`: what parseManifests gives for `{"kind": "List", "items": items}`, the
 * same objects and locations, without printing them and parsing them again into a YAML node tree
 * (at 10,000 Services that tree was most of `check --cluster`'s time and memory). Its document
 * has no nodes: nothing points at a line of the cluster, and --assign writes only PATHs.
 */
export function listManifests(
  items: readonly Record<string, unknown>[],
  file: string,
): ManifestObject[] {
  const source: SourceDocument = {
    file,
    document: 1,
    yaml: parseDocument(""),
    text: "",
    lines: new LineCounter(),
  };
  const objects: ManifestObject[] = [];
  flatten({ kind: "List", items }, source, [], objects);
  return objects;
}

function flatten(
  value: unknown,
  source: SourceDocument,
  path: readonly (string | number)[],
  into: ManifestObject[],
): void {
  if (!isRecord(value)) {
    throw new ManifestError(
      source.file,
      source.document,
      `${path.length === 0 ? "" : `${pathText(path)}: `}expected a Kubernetes object (a mapping with apiVersion and kind), found ${describe(value)}`,
    );
  }
  const kind = value.kind;
  if (typeof kind === "string" && kind.endsWith("List") && Object.hasOwn(value, "items")) {
    const items = value.items;
    if (items === null || items === undefined) return;
    if (!Array.isArray(items)) {
      throw new ManifestError(
        source.file,
        source.document,
        `${pathText([...path, "items"])} of a ${kind} must be a list, found ${describe(items)}`,
      );
    }
    // `ServiceList` items straight from the API carry no kind; `kubectl get` output does.
    const itemKind = kind === "List" ? undefined : kind.slice(0, -"List".length);
    items.forEach((item: unknown, index) => {
      const itemPath = [...path, "items", index];
      const completed =
        itemKind !== undefined && isRecord(item) && item.kind === undefined
          ? { apiVersion: value.apiVersion, kind: itemKind, ...item }
          : item;
      flatten(completed, source, itemPath, into);
    });
    return;
  }
  const location = `${source.file}#${source.document}${path.length === 0 ? "" : ` ${pathText(path)}`}`;
  into.push({ object: value, source, path, location });
}

/**
 * Documents as one multi-document YAML stream, in the order given. A document in `edited` is
 * re-serialised from its `yaml` node in block style (comments survive; one written as JSON comes
 * out as YAML); every other document is copied as written.
 */
export function serializeDocuments(
  documents: readonly SourceDocument[],
  edited: ReadonlySet<SourceDocument>,
): string {
  return documents
    .map((source) => {
      const { yaml } = source;
      let text = source.text;
      if (edited.has(source) && isCollection(yaml.contents) && yaml.contents.flow) {
        // A JSON document: as plain YAML, rather than JSON with YAML keys spliced in.
        text = stringify(yaml.toJS({ maxAliasCount: 100 }));
      } else if (edited.has(source)) {
        // Flow mappings (`metadata: {name: a}`) would wrap the edit in multi-line braces.
        visit(yaml, {
          Collection(_, node) {
            node.flow = false;
          },
        });
        text = yaml.toString();
      }
      if (!text.endsWith("\n")) text += "\n";
      return /^(---|%)/.test(text) ? text : `---\n${text}`;
    })
    .join("");
}

/** `items[3]`, `items[0].items[2]`: where an object sits inside its document. */
export function pathText(path: readonly (string | number)[]): string {
  return path
    .map((part) => (typeof part === "number" ? `[${part}]` : `.${part}`))
    .join("")
    .slice(1);
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return "a list";
  if (typeof value === "string") return `the string ${JSON.stringify(truncate(value))}`;
  if (value === null || value === undefined) return "nothing";
  if (typeof value === "object") return "a non-mapping value";
  return `${typeof value} ${String(value)}`;
}

function truncate(text: string): string {
  return text.length > 40 ? `${text.slice(0, 40)}...` : text;
}

function firstLine(message: string): string {
  return (message.split("\n")[0] ?? "").replace(/:$/, "");
}

function describeIOError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  switch (code) {
    case "ENOENT":
      return "no such file or directory";
    case "EACCES":
    case "EPERM":
      return "permission denied";
    case "EISDIR":
      return "is a directory";
    default:
      return (error as Error).message;
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}
