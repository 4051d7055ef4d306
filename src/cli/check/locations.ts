// Where each `check` result points: the file (relative to the current folder, so the same between
// runs and on every CI runner), the document, and the line of the field the decision is about
// (the requested address, the externalIPs entry, the pool annotation, the ignored key), else the
// first line of the object. A Service rendered by kustomize with origin annotations points at the
// file it came from rather than at the rendered stream.

import { readFile, stat } from "node:fs/promises";
import { dirname, isAbsolute, join, relative } from "node:path";
import { isMap, isScalar, isSeq, type Node, parse } from "yaml";
import { isRecord } from "../../base/objects.ts";
import { type IPAddress, parseAddress, sameAddress } from "../../ipam/address.ts";
import type { ReasonCode } from "../../ipam/decide.ts";
import type { ReleaseReads } from "../../ipam/metallb-version.ts";
import {
  ANNOTATION,
  addressRequest,
  externalIPs,
  firstAnnotation,
  ignoredKey,
  type ServiceObject,
} from "../../ipam/service.ts";
import { type ManifestObject, parseManifests } from "../../manifests/loader.ts";
import type { Verdict } from "./replay.ts";

/** Where a result points; undefined for a Service read from the cluster or --existing. */
export interface Location {
  readonly file: string;
  /** 0-based index of the document in its file. */
  readonly document: number;
  /** 1-based. */
  readonly line: number;
  /** 1-based: where the field's key (or the list entry) starts on that line. */
  readonly column: number;
}

/** A path into a Service: ["spec", "loadBalancerIP"], ["spec", "externalIPs", 1]. */
type FieldPath = readonly (string | number)[];

/** The refusals about the pool a Service names rather than the address it asks for. */
const POOL_REASONS: ReadonlySet<ReasonCode | undefined> = new Set<ReasonCode>([
  "PoolNotFound",
  "PoolNotAllowed",
  "PoolExhausted",
]);

/**
 * The field of `service` its verdict is about, or undefined when none is (the object's first line
 * is then the place): read with the keys the guarded release reads, as the decision read them.
 */
export function decisionField(
  service: ServiceObject,
  verdict: Verdict,
  reads: ReleaseReads,
): FieldPath | undefined {
  const annotation = (key: string): FieldPath => ["metadata", "annotations", key];
  if (verdict.reason === "IgnoredAnnotation") {
    const ignored = ignoredKey(service, reads);
    if (ignored !== undefined) return annotation(ignored.key);
  }
  if (verdict.reason === "AddressInUse" || verdict.reason === "ExternalIPInPool") {
    // The externalIPs are decided first: a refused one is the entry holding the address.
    const index = externalIndex(service, verdict.addresses[0]);
    if (index !== undefined) return ["spec", "externalIPs", index];
  }
  const pool = firstAnnotation(service, reads.addressPool);
  if (pool !== undefined && POOL_REASONS.has(verdict.reason)) return annotation(pool.key);
  const request = addressRequest(service, reads);
  if (request.source === "spec") return ["spec", "loadBalancerIP"];
  // Both set (ConflictingFields): the annotation, the one MetalLB asks to keep.
  if (request.source !== "none") return annotation(request.key);
  if (pool !== undefined) return annotation(pool.key);
  return service.metadata?.annotations?.[ANNOTATION.autoAssign] === undefined
    ? undefined
    : annotation(ANNOTATION.autoAssign);
}

function externalIndex(service: ServiceObject, address: IPAddress | undefined): number | undefined {
  if (address === undefined) return undefined;
  const index = externalIPs(service).findIndex((entry) => {
    const parsed = parseAddress(entry);
    return parsed.ok && sameAddress(parsed.value, address);
  });
  return index < 0 ? undefined : index;
}

/**
 * Turns loaded file names into the names results carry: relative to the current folder, each
 * worked out once (20,000 Services of one file ask for one name 20,000 times). A stdin named by
 * --stdin-filename is a path like any other; an unnamed one keeps its name, `<stdin>`.
 */
export class FileNames {
  readonly #names = new Map<string, string>();
  readonly #unnamedStdin: string | undefined;

  constructor(unnamedStdin: string | undefined) {
    this.#unnamedStdin = unnamedStdin;
  }

  of(file: string): string {
    let name = this.#names.get(file);
    if (name === undefined) {
      name = file === this.#unnamedStdin ? file : relative(process.cwd(), file) || file;
      this.#names.set(file, name);
    }
    return name;
  }
}

/** The location of `field` in `manifest` (or of the object itself when it has no such field). */
export function locate(
  manifest: ManifestObject,
  field: FieldPath | undefined,
  names: FileNames,
): Location {
  const { source } = manifest;
  const object = nodeAt(source.yaml.contents, manifest.path);
  const found = field === undefined ? undefined : nodeAt(object, field);
  const range = (found ?? object)?.range;
  const { line, col } = range ? source.lines.linePos(range[0]) : { line: 1, col: 1 };
  return { file: names.of(source.file), document: source.document - 1, line, column: col };
}

/**
 * The node at `path` below `node`: for a mapping's key, the key node (its line is the field's
 * line, also for a block scalar whose value starts below it), for a list's entry the entry.
 */
function nodeAt(node: unknown, path: FieldPath): Node | undefined {
  let current = node;
  let anchor: Node | undefined = isScalar(node) || isMap(node) || isSeq(node) ? node : undefined;
  for (const segment of path) {
    if (typeof segment === "string" && isMap(current)) {
      const pair = current.items.find((item) => isScalar(item.key) && item.key.value === segment);
      if (pair === undefined) return undefined;
      anchor = isScalar(pair.key) ? pair.key : undefined;
      current = pair.value;
    } else if (typeof segment === "number" && isSeq(current)) {
      current = current.items[segment];
      if (current === undefined) return undefined;
      anchor = current as Node;
    } else {
      return undefined;
    }
  }
  return anchor;
}

/** kustomize's record of where a rendered object came from (`buildMetadata: [originAnnotations]`). */
const ORIGIN = "config.kubernetes.io/origin";

/**
 * The object a kustomize-rendered Service came from, when its origin annotation names a local file
 * that holds it; otherwise undefined (the rendered stream is the place). Origin paths are relative
 * to the kustomization that was built: the folder of the stream's name (`--stdin-filename
 * overlays/prod/kustomization.yaml`, or the folder `overlays/prod` itself), the current folder
 * for an unnamed stdin.
 */
export class Origins {
  readonly #files = new Map<string, Promise<readonly ManifestObject[]>>();
  readonly #stdinName: string;
  readonly #stdinIsNamed: boolean;

  constructor(stdinName: string, stdinIsNamed: boolean) {
    this.#stdinName = stdinName;
    this.#stdinIsNamed = stdinIsNamed;
  }

  /** Whether kustomize recorded where `manifest` came from (most Services: no, and no wait). */
  has(manifest: ManifestObject): boolean {
    return originAnnotation(manifest) !== undefined;
  }

  async of(manifest: ManifestObject): Promise<ManifestObject | undefined> {
    const annotation = originAnnotation(manifest);
    if (annotation === undefined) return undefined;
    const path = originPath(annotation);
    if (path === undefined) return undefined;
    const file = join(await this.#root(manifest.source.file), path);
    const objects = await this.#load(file);
    const { kind, metadata } = manifest.object;
    const name = isRecord(metadata) ? metadata.name : undefined;
    const sameKind = objects.filter((candidate) => candidate.object.kind === kind);
    // A namePrefix or nameSuffix renames the object: the file's only one of its kind is it then.
    return (
      sameKind.find((candidate) => {
        const candidateMetadata = candidate.object.metadata;
        return isRecord(candidateMetadata) && candidateMetadata.name === name;
      }) ?? (sameKind.length === 1 ? sameKind[0] : undefined)
    );
  }

  async #root(file: string): Promise<string> {
    if (file === this.#stdinName && !this.#stdinIsNamed) return ".";
    const isDirectory = await stat(file).then(
      (info) => info.isDirectory(),
      () => false,
    );
    return isDirectory ? file : dirname(file);
  }

  #load(file: string): Promise<readonly ManifestObject[]> {
    let loaded = this.#files.get(file);
    if (loaded === undefined) {
      // A file that is gone, unreadable or broken leaves the rendered stream as the place.
      loaded = readFile(file, "utf8").then(
        (text) => {
          try {
            return parseManifests(text, file);
          } catch {
            return [];
          }
        },
        () => [],
      );
      this.#files.set(file, loaded);
    }
    return loaded;
  }
}

function originAnnotation(manifest: ManifestObject): string | undefined {
  const { metadata } = manifest.object;
  const annotations = isRecord(metadata) ? metadata.annotations : undefined;
  const origin = isRecord(annotations) ? annotations[ORIGIN] : undefined;
  return typeof origin === "string" ? origin : undefined;
}

/** The local file of an origin annotation; undefined for a remote base (it names a repo). */
function originPath(annotation: string): string | undefined {
  let origin: unknown;
  try {
    origin = parse(annotation);
  } catch {
    return undefined;
  }
  if (!isRecord(origin) || typeof origin.path !== "string" || origin.repo !== undefined) {
    return undefined;
  }
  return isAbsolute(origin.path) ? undefined : origin.path;
}
