// The input of `lb-ip-guard check`: the --pools files, the live cluster's objects (--cluster),
// the order of an audit, the pools and namespace labels collected from every source, and each
// manifest Service checked for the field types Kubernetes gives them (asService), so that a
// malformed one is an input error rather than a Service silently left unchecked.

import { isRecord } from "../../base/objects.ts";
import { poolsFromDocument } from "../../ipam/config/document.ts";
import { formatPoolConfigError, type PoolsFound } from "../../ipam/config/errors.ts";
import { mergePools } from "../../ipam/config/merge.ts";
import type { Labels } from "../../ipam/labels.ts";
import { formatMetalLBVersion, type ReleaseReads } from "../../ipam/metallb-version.ts";
import type { PoolSet } from "../../ipam/pool.ts";
import { type ServiceObject, statusAddresses } from "../../ipam/service.ts";
import {
  listManifests,
  ManifestError,
  type ManifestLoader,
  type ManifestObject,
  pathText,
  STDIN_NAME,
} from "../../manifests/loader.ts";

/** Input that cannot be checked at all: every line is printed, the exit status is 2. */
export class InputError extends Error {
  readonly lines: readonly string[];
  constructor(lines: readonly string[]) {
    super(lines.join("\n"));
    this.lines = lines;
  }
}

/** The --pools files' objects, in order; a file without any pool source is an input error. */
export async function loadPoolSources(
  loader: ManifestLoader,
  paths: readonly string[],
): Promise<ManifestObject[]> {
  const poolObjects: ManifestObject[] = [];
  for (const path of paths) {
    const objects = await loader.loadPath(path);
    // A --pools file without any pool source is a mistake (a wrong file, an IPAddressPool in
    // another namespace) that would otherwise surface only as every Service "in no pool".
    if (!objects.some((manifest) => poolsFromDocument(manifest.object, "") !== undefined)) {
      throw new ManifestError(
        path === "-" ? STDIN_NAME : path,
        undefined,
        "--pools: no MetalLB pool configuration in it (expected the ConfigMap metallb-system/config, IPAddressPools in metallb-system, or a config with address-pools)",
      );
    }
    poolObjects.push(...objects);
  }
  return poolObjects;
}

/** The live cluster's pool sources and existing objects, read through the webhook's client. */
export async function clusterObjects(options: {
  readonly kubeconfig?: string;
  readonly context?: string;
}) {
  // Loaded only here: an offline check never pays for the Kubernetes client.
  const { readClusterSnapshot } = await import("../../cluster/snapshot.ts");
  let snapshot: Awaited<ReturnType<typeof readClusterSnapshot>>;
  try {
    snapshot = await readClusterSnapshot(options);
  } catch (error) {
    throw new InputError([`--cluster: ${(error as Error).message}`]);
  }
  const file = `cluster ${snapshot.server}`;
  return {
    pools: listManifests(snapshot.pools, file),
    existing: listManifests(snapshot.existing, file),
    release: snapshot.release,
    file,
  };
}

/**
 * The order of an audit: Services that MetalLB gave an address (it is in their status) first, as
 * the holders they are, then the others; each group in the order created
 * (`metadata.creationTimestamp`, to the second; ties, and objects without one, last, keep their
 * order). Creation order alone would blame the wrong Service when an address was asked for by
 * patching Services created long before, as the seed guide does by hand.
 */
export function auditOrder(objects: readonly ManifestObject[]): ManifestObject[] {
  const key = (manifest: ManifestObject): [pending: number, created: number] => {
    const { metadata } = manifest.object;
    const stamp = isRecord(metadata) ? metadata.creationTimestamp : undefined;
    const time =
      stamp instanceof Date ? stamp.getTime() : typeof stamp === "string" ? Date.parse(stamp) : NaN;
    // asService validates the Service (an input error names a malformed one) before its status
    // is read.
    const service = asService(manifest);
    const assigned = service !== undefined && statusAddresses(service).length > 0;
    return [assigned ? 0 : 1, Number.isNaN(time) ? Number.POSITIVE_INFINITY : time];
  };
  const compare = (a: number, b: number) => (a === b ? 0 : a < b ? -1 : 1);
  return objects
    .map((manifest) => ({ manifest, key: key(manifest) }))
    .sort((a, b) => compare(a.key[0], b.key[0]) || compare(a.key[1], b.key[1]))
    .map(({ manifest }) => manifest);
}

/**
 * Pools from every pool source. A ConfigMap or IPAddressPool given twice is one object applied
 * twice: the later copy replaces the earlier (and the earlier's errors). Config errors are input
 * errors: the report would be meaningless with a pool missing.
 */
export function collectPools(
  objects: readonly ManifestObject[],
  reads: ReleaseReads,
  warnings: string[],
): PoolSet {
  // Keyed by kind and name (both only ever in MetalLB's namespace); a bare config file has no
  // identity and always counts.
  const sources = new Map<string, PoolsFound>();
  objects.forEach((manifest, index) => {
    const found = poolsFromDocument(manifest.object, manifest.location);
    if (found === undefined) return;
    const { kind } = manifest.object;
    // Only the sources the guarded release reads: it hands out no address of the others.
    const read =
      kind === "ConfigMap"
        ? reads.legacyConfigMap
        : kind === "IPAddressPool"
          ? reads.ipAddressPools
          : true;
    if (!read) {
      const release = reads.version === undefined ? "" : formatMetalLBVersion(reads.version);
      warnings.push(
        `${String(kind)} ${manifest.location} left out: MetalLB ${release} reads its pools from ${reads.legacyConfigMap ? "the ConfigMap metallb-system/config" : "IPAddressPool objects"} only`,
      );
      return;
    }
    const name = isRecord(manifest.object.metadata) ? manifest.object.metadata.name : undefined;
    const identity =
      typeof kind === "string" && typeof name === "string" ? `${kind}/${name}` : `#${index}`;
    sources.set(identity, found);
  });
  const pools = [...sources.values()].flatMap((found) => found.pools);
  const merged = mergePools(pools);
  const errors = [...[...sources.values()].flatMap((found) => found.errors), ...merged.errors];
  if (errors.length > 0) throw new InputError(errors.map(formatPoolConfigError));
  return merged.poolSet;
}

/** What the decisions read of a Namespace: its labels (namespaceSelectors), its annotations (quota). */
export interface NamespaceInfo {
  readonly labels: Labels;
  readonly annotations: Readonly<Record<string, string>>;
}

export function collectNamespaces(
  objects: readonly ManifestObject[],
): ReadonlyMap<string, NamespaceInfo> {
  const namespaces = new Map<string, NamespaceInfo>();
  for (const manifest of objects) {
    const { object } = manifest;
    if (object.kind !== "Namespace" || !isCoreV1(object.apiVersion)) continue;
    const metadata = mapping(object.metadata, "metadata", manifest);
    const name = metadata?.name;
    if (typeof name !== "string" || name === "") {
      throw inputError(manifest, "Namespace without metadata.name");
    }
    namespaces.set(name, {
      labels: stringMap(metadata?.labels, "metadata.labels", manifest) ?? {},
      annotations: stringMap(metadata?.annotations, "metadata.annotations", manifest) ?? {},
    });
  }
  return namespaces;
}

function isCoreV1(apiVersion: unknown): boolean {
  // Knative's `serving.knative.dev/v1` Service is not a core Service.
  return apiVersion === "v1" || apiVersion === undefined;
}

/**
 * The object as a core/v1 Service, or undefined for any other kind. The fields the decisions read
 * must have the types Kubernetes gives them: an unquoted `lb-ip-guard.dev/auto-assign: true` is
 * rejected by the API server (annotations are strings), so it is an input error here too rather
 * than a Service silently left unchecked.
 */
export function asService(manifest: ManifestObject): ServiceObject | undefined {
  const { object } = manifest;
  if (object.kind !== "Service" || !isCoreV1(object.apiVersion)) return undefined;
  const metadata = mapping(object.metadata, "metadata", manifest);
  for (const key of ["name", "generateName", "namespace"]) {
    optionalString(metadata?.[key], `metadata.${key}`, manifest);
  }
  if (!metadata?.name && !metadata?.generateName) {
    throw inputError(manifest, "Service without metadata.name");
  }
  stringMap(metadata?.labels, "metadata.labels", manifest);
  stringMap(metadata?.annotations, "metadata.annotations", manifest);
  const spec = mapping(object.spec, "spec", manifest);
  for (const key of [
    "type",
    "loadBalancerIP",
    "loadBalancerClass",
    "clusterIP",
    "ipFamilyPolicy",
    "externalTrafficPolicy",
  ]) {
    optionalString(spec?.[key], `spec.${key}`, manifest);
  }
  for (const key of ["ipFamilies", "externalIPs"]) {
    list(spec?.[key], `spec.${key}`, manifest)?.forEach((item, index) => {
      optionalString(item, `spec.${key}[${index}]`, manifest);
    });
  }
  stringMap(spec?.selector, "spec.selector", manifest);
  list(spec?.ports, "spec.ports", manifest)?.forEach((item, index) => {
    const port = mapping(item, `spec.ports[${index}]`, manifest);
    if (port === undefined) throw inputError(manifest, `spec.ports[${index}] is empty`);
    optionalString(port.protocol, `spec.ports[${index}].protocol`, manifest);
    if (port.port !== undefined && port.port !== null && !Number.isInteger(port.port)) {
      throw inputError(
        manifest,
        `spec.ports[${index}].port must be a number, not ${JSON.stringify(port.port)}`,
      );
    }
  });
  const status = mapping(object.status, "status", manifest);
  const loadBalancer = mapping(status?.loadBalancer, "status.loadBalancer", manifest);
  list(loadBalancer?.ingress, "status.loadBalancer.ingress", manifest)?.forEach((item, index) => {
    const path = `status.loadBalancer.ingress[${index}]`;
    const ingress = mapping(item, path, manifest);
    optionalString(ingress?.ip, `${path}.ip`, manifest);
    optionalString(ingress?.hostname, `${path}.hostname`, manifest);
  });
  return object as ServiceObject;
}

function inputError(manifest: ManifestObject, reason: string): ManifestError {
  const { object } = manifest;
  const metadata = isRecord(object.metadata) ? object.metadata : {};
  const name = typeof metadata.name === "string" ? metadata.name : undefined;
  const namespace = typeof metadata.namespace === "string" ? metadata.namespace : "default";
  const what =
    name === undefined ? String(object.kind) : `${String(object.kind)} ${namespace}/${name}`;
  const inList = manifest.path.length === 0 ? "" : `${pathText(manifest.path)}: `;
  return new ManifestError(
    manifest.source.file,
    manifest.source.document,
    `${inList}${what}: ${reason}`,
  );
}

function mapping(
  value: unknown,
  path: string,
  manifest: ManifestObject,
): Record<string, unknown> | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isRecord(value)) throw inputError(manifest, `${path} must be a mapping`);
  return value;
}

function list(value: unknown, path: string, manifest: ManifestObject): unknown[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value)) throw inputError(manifest, `${path} must be a list`);
  return value;
}

function optionalString(value: unknown, path: string, manifest: ManifestObject): void {
  if (value === undefined || value === null || typeof value === "string") return;
  throw inputError(
    manifest,
    `${path} must be a string, not ${JSON.stringify(value)} (quote the value)`,
  );
}

function stringMap(
  value: unknown,
  path: string,
  manifest: ManifestObject,
): Record<string, string> | undefined {
  const map = mapping(value, path, manifest);
  if (map === undefined) return undefined;
  for (const [key, item] of Object.entries(map)) {
    if (typeof item !== "string") {
      throw inputError(
        manifest,
        `${path}["${key}"] must be a string, not ${JSON.stringify(item)} (quote the value)`,
      );
    }
  }
  return map as Record<string, string>;
}

/**
 * The holder identity of a manifest Service. A Service with only a generateName gets a fresh
 * name per document, as the API server would give it.
 */
export function refOf(service: ServiceObject, manifest: ManifestObject): string {
  const namespace = service.metadata?.namespace ?? "default";
  const name = service.metadata?.name;
  if (name) return `${namespace}/${name}`;
  return `${namespace}/${service.metadata?.generateName ?? ""}<generated ${manifest.location}>`;
}
