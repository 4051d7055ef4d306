// `lb-ip-guard check`: the webhook's decisions, offline, for CI. Every Service of the manifests is
// decided in input order against the pools, the Services already in the cluster (--existing) and
// the manifests before it, exactly as the admission webhook would decide them one `kubectl apply`
// at a time. Without manifests it audits the Services already there, in the order they were
// created.

import { parseArgs } from "node:util";
import { isRecord } from "../base/objects.ts";
import { formatAddress } from "../ipam/address.ts";
import { poolsFromDocument } from "../ipam/config/document.ts";
import { formatPoolConfigError, type PoolsFound } from "../ipam/config/errors.ts";
import { mergePools } from "../ipam/config/merge.ts";
import { type Policy, policyFor, type ReasonCode } from "../ipam/decide.ts";
import type { Labels } from "../ipam/labels.ts";
import {
  formatMetalLBVersion,
  type MetalLBVersion,
  parseMetalLBVersion,
  type ReleaseReads,
} from "../ipam/metallb-version.ts";
import type { PoolSet } from "../ipam/pool.ts";
import { type ServiceObject, statusAddresses } from "../ipam/service.ts";
import {
  ManifestError,
  ManifestLoader,
  type ManifestObject,
  parseManifests,
  pathText,
  type SourceDocument,
  STDIN_NAME,
  serializeDocuments,
} from "../manifests/loader.ts";
import { Replay, type Verdict } from "./replay.ts";

export const CHECK_SUMMARY = "check Service manifests against MetalLB pools, offline (for CI)";

export const CHECK_USAGE = `Usage: lb-ip-guard check [PATH|-]... [--pools FILE]... [--existing FILE]...
                         [--cluster [--kubeconfig FILE]]
                         [--format text|json] [--assign] [--load-balancer-class NAME]
                         [--metallb-version VERSION] [--allocate all|annotated]

Decides every Service in the manifests as the admission webhook would, in input order, through
the webhook's own admission path (mutation, then validation; a Service already in the cluster
is an UPDATE, with the ratchet): each is checked against the address pools, the Services
already in the cluster, and the Services before it in the manifests (two manifests asking for
one address: the second is denied). Services that get an address from lb-ip-guard (the
lb-ip-guard.dev/auto-assign: "true" annotation, and LoadBalancer Services that request none)
get the address they would receive (decision "assigned"), and later Services see it as used.

Inputs:
  PATH                      a YAML/JSON file (multi-document, kind: List and *List flattened),
                            a directory (*.yaml, *.yml, *.json below it, in sorted order),
                            or - for stdin. With no PATH, --cluster or --existing alone audits
                            the Services already there, each against the pools and those before
                            it: first the Services MetalLB gave an address (in status), then the
                            others, each group in creation order. A Service asking for an
                            address another holds (MetalLB left it <pending>) is denied
  --pools FILE              MetalLB pools: the legacy ConfigMap metallb-system/config,
                            IPAddressPool objects, or a bare config with address-pools
                            (repeatable). Pool sources among the PATHs are used too; an object
                            given twice (same kind and name) counts once, the PATHs' copy winning
  --existing FILE           Services (and Namespaces) already in the cluster, e.g. the output of
                            kubectl get svc,ns -A -o yaml (repeatable). A manifest Service with
                            the same namespace/name is an update: it replaces the existing one
  --cluster                 read pools (ConfigMap metallb-system/config, IPAddressPools),
                            Services and Namespaces from the live cluster, read-only (it claims
                            nothing); --pools and --existing add to them
  --kubeconfig FILE         the cluster for --cluster (default: $KUBECONFIG, ~/.kube/config,
                            in-cluster)

Options:
  --format text|json        text (default): one line per Service and a summary;
                            json: one object {summary, results}
  --assign                  print the manifests (the PATHs' documents, in order) with the
                            assignments applied, as YAML on stdout, and the report on stderr:
                              lb-ip-guard check --assign DIR | kubectl apply -f -
                            An assigned Service becomes type: LoadBalancer with its address in
                            spec.loadBalancerIP (in the MetalLB annotation it already uses, or
                            metallb.io/loadBalancerIPs for two addresses) and the annotation
                            lb-ip-guard.dev/assigned-from: <pool>. When anything is denied,
                            nothing is printed on stdout
  --load-balancer-class NAME
                            the loadBalancerClass MetalLB answers to (default: none, i.e.
                            Services without a class); Services of other classes are ignored
  --metallb-version VERSION the MetalLB release guarded, e.g. v0.11.0: only the Service keys
                            it reads are read, and a MetalLB key it ignores is denied
                            (IgnoredAnnotation). Default: with --cluster, the release its
                            controller Deployment runs; otherwise unknown (every key read)
  --allocate all|annotated  as serve's flag: all (default) gives every LoadBalancer Service
                            that requests no address the next free one (decision
                            "assigned"), as the webhook does; annotated only those with
                            lb-ip-guard.dev/auto-assign
  -h, --help                this help

Namespace labels (for serviceAllocation.namespaceSelectors) come from Namespace objects among the
PATHs and --existing files, plus kubernetes.io/metadata.name, which Kubernetes sets on every
Namespace. Services without a namespace are in "default".

Text output, one line per Service:
  <decision> <namespace>/<name> <ips|-> [<pool>] <Reason>: <message>
(no reason for allowed and assigned), then a summary line. Locations in messages are FILE#N,
N counting the YAML documents of FILE from 1.

Exit status: 0 nothing denied, 1 something denied, 2 usage or input error.
`;

/** Where a command writes; tests and the entry point supply it. */
export interface CheckIO {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly readStdin?: () => Promise<string>;
}

export const EXIT = { ok: 0, denied: 1, usage: 2 } as const;

type Format = "text" | "json";

interface CheckOptions {
  readonly paths: readonly string[];
  readonly pools: readonly string[];
  readonly existing: readonly string[];
  readonly cluster: { readonly kubeconfig?: string } | undefined;
  readonly format: Format;
  readonly assign: boolean;
  readonly loadBalancerClass: string | undefined;
  /** Given with --metallb-version; with --cluster, read from the cluster when not given. */
  readonly metallbVersion: MetalLBVersion | undefined;
  readonly allocation: Policy["allocation"];
}

/** A JSON result of the contract: one per Service, in input order. */
export interface CheckResult {
  readonly namespace: string;
  readonly name: string;
  readonly decision: Verdict["kind"];
  readonly ips: readonly string[];
  readonly pool: string | null;
  readonly reason: ReasonCode | null;
  readonly message: string;
}

export interface CheckReport {
  readonly summary: {
    readonly services: number;
    readonly allowed: number;
    readonly assigned: number;
    readonly denied: number;
  };
  readonly results: readonly CheckResult[];
}

/** Input that cannot be checked at all: every line is printed, the exit status is 2. */
class InputError extends Error {
  readonly lines: readonly string[];
  constructor(lines: readonly string[]) {
    super(lines.join("\n"));
    this.lines = lines;
  }
}

export async function runCheck(args: readonly string[], io: CheckIO): Promise<number> {
  let options: CheckOptions | "help";
  try {
    options = parseCheckArgs(args);
  } catch (error) {
    io.stderr(`lb-ip-guard check: ${usageProblem(error)} (see lb-ip-guard check --help)\n`);
    return EXIT.usage;
  }
  if (options === "help") {
    io.stdout(CHECK_USAGE);
    return EXIT.ok;
  }
  try {
    const outcome = await check(options, io);
    const reportText =
      options.format === "json"
        ? `${JSON.stringify(outcome.report, null, 2)}\n`
        : formatText(outcome.report, outcome.serviceWarnings);
    for (const warning of outcome.warnings) io.stderr(`lb-ip-guard check: warning: ${warning}\n`);
    const denied = outcome.report.summary.denied > 0;
    if (options.assign) {
      io.stderr(reportText);
      if (!denied) io.stdout(outcome.assigned);
    } else {
      io.stdout(reportText);
    }
    return denied ? EXIT.denied : EXIT.ok;
  } catch (error) {
    if (error instanceof ManifestError) {
      io.stderr(`lb-ip-guard check: ${error.message}\n`);
      return EXIT.usage;
    }
    if (error instanceof InputError) {
      for (const line of error.lines) io.stderr(`lb-ip-guard check: ${line}\n`);
      return EXIT.usage;
    }
    throw error;
  }
}

/** parseArgs's messages, shortened to the point (its unknown-option advice is about `--`). */
function usageProblem(error: unknown): string {
  const { code, message } = error as { code?: string; message: string };
  const option = /'([^']+)'/.exec(message)?.[1];
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && option !== undefined) {
    return `unknown option '${option}'`;
  }
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE" && option !== undefined) {
    const name = option.split(" ")[0];
    if (/missing/.test(message)) return `option '${name}' needs a value`;
    if (/does not take/.test(message)) return `option '${name}' takes no value`;
    return `invalid value for option '${name}'`;
  }
  return message.split("\n")[0] ?? message;
}

function parseCheckArgs(args: readonly string[]): CheckOptions | "help" {
  const { values, positionals } = parseArgs({
    args: [...args],
    strict: true,
    allowPositionals: true,
    options: {
      pools: { type: "string", multiple: true },
      existing: { type: "string", multiple: true },
      cluster: { type: "boolean" },
      kubeconfig: { type: "string" },
      format: { type: "string" },
      assign: { type: "boolean" },
      "load-balancer-class": { type: "string" },
      "metallb-version": { type: "string" },
      allocate: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return "help";
  const format = values.format ?? "text";
  if (format !== "text" && format !== "json") {
    throw new Error(`--format must be text or json, not ${JSON.stringify(format)}`);
  }
  const audit = positionals.length === 0;
  if (audit && values.cluster !== true && (values.existing ?? []).length === 0) {
    throw new Error(
      "no manifests given: name files or directories, or - for stdin (or audit the Services already in a cluster with --cluster or --existing FILE alone)",
    );
  }
  if (audit && values.assign === true) {
    throw new Error("--assign writes the manifests it is given: name files or directories, or -");
  }
  const loadBalancerClass = values["load-balancer-class"];
  if (loadBalancerClass === "") throw new Error("--load-balancer-class needs a non-empty name");
  for (const [flag, files] of [
    ["--pools", values.pools],
    ["--existing", values.existing],
  ] as const) {
    if (files?.some((file) => file === "")) throw new Error(`${flag} needs a file name`);
  }
  return {
    paths: positionals,
    pools: values.pools ?? [],
    existing: values.existing ?? [],
    cluster: clusterOption(values.cluster, values.kubeconfig),
    format,
    assign: values.assign ?? false,
    loadBalancerClass,
    metallbVersion: versionOption(values["metallb-version"]),
    allocation: allocationOption(values.allocate),
  };
}

interface Outcome {
  readonly report: CheckReport;
  /** Per result: what the webhook would return as admission warnings (text format only). */
  readonly serviceWarnings: readonly (readonly string[])[];
  /** Notes about the input as a whole (stderr, in every format). */
  readonly warnings: readonly string[];
  /** The manifests with the assignments applied (`--assign`). */
  readonly assigned: string;
}

interface DecidedService {
  readonly manifest: ManifestObject;
  readonly service: ServiceObject;
  readonly verdict: Verdict;
}

async function check(options: CheckOptions, io: CheckIO): Promise<Outcome> {
  const loader = new ManifestLoader(io.readStdin === undefined ? {} : { readStdin: io.readStdin });
  // --pools first, then the manifests: a manifest's copy of a pool source is the newer one.
  const poolObjects: ManifestObject[] = [];
  for (const path of options.pools) {
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
  const existingObjects = await loader.load(options.existing);
  const warnings: string[] = [];
  let release = options.metallbVersion;
  if (options.cluster !== undefined) {
    const cluster = await clusterObjects(options.cluster);
    poolObjects.unshift(...cluster.pools);
    existingObjects.unshift(...cluster.existing);
    if (release === undefined) {
      release = cluster.release.version;
      if (cluster.release.version === undefined) {
        warnings.push(
          `MetalLB release unknown (${cluster.release.why}): every MetalLB key is read; give --metallb-version`,
        );
      }
    }
  }
  const policy = policyFor({
    loadBalancerClass: options.loadBalancerClass,
    release,
    allocation: options.allocation,
  });
  // No manifests: an audit. The Services already there are the ones checked, as the webhook would
  // have decided them one at a time (see auditOrder), so a Service asking for an address that
  // another holds is the one MetalLB left <pending>.
  const audit = options.paths.length === 0;
  const manifests = audit ? auditOrder(existingObjects) : await loader.load(options.paths);

  const poolSet = collectPools([...poolObjects, ...manifests], policy.reads, warnings);
  const namespaces = collectNamespaces([...existingObjects, ...manifests]);

  // Services already in the cluster: last copy of a namespace/name wins. An audit decides them
  // one by one instead.
  const existing = new Map<string, ServiceObject>();
  for (const manifest of audit ? [] : existingObjects) {
    const service = asService(manifest);
    if (service !== undefined) existing.set(refOf(service, manifest), service);
  }
  const replay = new Replay({
    pools: poolSet,
    // Kubernetes (1.21+) labels every Namespace with its own name, overriding any other value.
    namespaceLabels: (namespace) => ({
      ...namespaces.get(namespace),
      "kubernetes.io/metadata.name": namespace,
    }),
    policy,
    existing,
  });

  const decided: DecidedService[] = [];
  for (const manifest of manifests) {
    const service = asService(manifest);
    if (service === undefined) continue;
    const verdict = audit
      ? replay.audit(service)
      : replay.admitManifest(service, refOf(service, manifest).split("/").slice(1).join("/"));
    decided.push({ manifest, service, verdict });
  }

  if (poolSet.size === 0 && decided.some(({ verdict }) => verdict.addresses.length > 0)) {
    warnings.push(
      "no address pools found: pass --pools FILE or include the MetalLB ConfigMap or IPAddressPools among the manifests",
    );
  }
  return {
    report: reportOf(decided),
    serviceWarnings: decided.map((entry) => entry.verdict.warnings),
    warnings,
    assigned: options.assign ? applyAssignments(manifests, decided) : "",
  };
}

/**
 * The order of an audit: Services that MetalLB gave an address (it is in their status) first, as
 * the holders they are, then the others; each group in the order created
 * (`metadata.creationTimestamp`, to the second; ties, and objects without one, last, keep their
 * order). Creation order alone would blame the wrong Service when an address was asked for by
 * patching Services created long before, as the seed guide does by hand.
 */
function auditOrder(objects: readonly ManifestObject[]): ManifestObject[] {
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
function collectPools(
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

function collectNamespaces(objects: readonly ManifestObject[]): ReadonlyMap<string, Labels> {
  const namespaces = new Map<string, Labels>();
  for (const manifest of objects) {
    const { object } = manifest;
    if (object.kind !== "Namespace" || !isCoreV1(object.apiVersion)) continue;
    const metadata = mapping(object.metadata, "metadata", manifest);
    const name = metadata?.name;
    if (typeof name !== "string" || name === "") {
      throw inputError(manifest, "Namespace without metadata.name");
    }
    namespaces.set(name, stringMap(metadata?.labels, "metadata.labels", manifest) ?? {});
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
function asService(manifest: ManifestObject): ServiceObject | undefined {
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
  list(spec?.ipFamilies, "spec.ipFamilies", manifest)?.forEach((family, index) => {
    optionalString(family, `spec.ipFamilies[${index}]`, manifest);
  });
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
function refOf(service: ServiceObject, manifest: ManifestObject): string {
  const namespace = service.metadata?.namespace ?? "default";
  const name = service.metadata?.name;
  if (name) return `${namespace}/${name}`;
  return `${namespace}/${service.metadata?.generateName ?? ""}<generated ${manifest.location}>`;
}

function reportOf(decided: readonly DecidedService[]): CheckReport {
  const results = decided.map(({ service, verdict }): CheckResult => {
    const metadata = service.metadata;
    return {
      namespace: metadata?.namespace ?? "default",
      name: metadata?.name || `${metadata?.generateName ?? ""}<generated>`,
      decision: verdict.kind,
      ips: verdict.addresses.map(formatAddress),
      pool: verdict.pool ?? null,
      reason: verdict.reason ?? null,
      message: verdict.message,
    };
  });
  const count = (kind: Verdict["kind"]) =>
    results.filter((result) => result.decision === kind).length;
  return {
    summary: {
      services: results.length,
      allowed: count("allowed"),
      assigned: count("assigned"),
      denied: count("denied"),
    },
    results,
  };
}

function formatText(report: CheckReport, serviceWarnings: readonly (readonly string[])[]): string {
  const lines = report.results.flatMap((result, index) => {
    const ref = `${result.namespace}/${result.name}`;
    const ips = result.ips.length > 0 ? result.ips.join(",") : "-";
    const pool = result.pool === null ? "" : ` [${result.pool}]`;
    const reason = result.reason === null ? "" : ` ${result.reason}:`;
    // The message starts with the Service's ref, already on the line.
    const message = result.message.replace(new RegExp(`^${escapeRegExp(ref)}:? `), "");
    return [
      `${result.decision.padEnd(8)} ${ref} ${ips}${pool}${reason} ${message}`,
      ...(serviceWarnings[index] ?? []).map((warning) => `         warning: ${warning}`),
    ];
  });
  const { services, allowed, assigned, denied } = report.summary;
  lines.push(
    `${services} ${services === 1 ? "service" : "services"}: ${allowed} allowed, ${assigned} assigned, ${denied} denied`,
  );
  return `${lines.join("\n")}\n`;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * The PATHs' documents with every assigned Service mutated as the webhook would mutate it:
 * type LoadBalancer, the address, and where it came from.
 */
function applyAssignments(
  manifests: readonly ManifestObject[],
  decided: readonly DecidedService[],
): string {
  const edited = new Set<SourceDocument>();
  for (const { manifest, verdict } of decided) {
    if (verdict.kind !== "assigned") continue;
    edited.add(manifest.source);
    try {
      // The webhook's own patch, so `check --assign` writes exactly what admission would.
      for (const operation of verdict.patch) {
        const segments = operation.path
          .split("/")
          .slice(1)
          .map((segment) => segment.replaceAll("~1", "/").replaceAll("~0", "~"));
        manifest.source.yaml.setIn([...manifest.path, ...segments], operation.value);
      }
    } catch (error) {
      throw new ManifestError(
        manifest.source.file,
        manifest.source.document,
        `cannot write the assignment into this document: ${(error as Error).message}`,
      );
    }
  }
  // Each document once, in input order (a List document holds many objects).
  const documents = [...new Set(manifests.map((manifest) => manifest.source))];
  return serializeDocuments(documents, edited);
}

function versionOption(given: string | undefined): MetalLBVersion | undefined {
  if (given === undefined) return undefined;
  const parsed = parseMetalLBVersion(given);
  if (!parsed.ok) throw new Error(`--metallb-version: ${parsed.error}`);
  return parsed.value;
}

function allocationOption(given: string | undefined): Policy["allocation"] {
  if (given === undefined || given === "all" || given === "annotated") return given ?? "all";
  throw new Error(`--allocate must be all or annotated, not ${JSON.stringify(given)}`);
}

function clusterOption(cluster: boolean | undefined, kubeconfig: string | undefined) {
  if (kubeconfig !== undefined && !cluster) throw new Error("--kubeconfig needs --cluster");
  if (kubeconfig === "") throw new Error("--kubeconfig needs a file name");
  return cluster ? (kubeconfig === undefined ? {} : { kubeconfig }) : undefined;
}

/** The live cluster's pool sources and existing objects, read through the webhook's client. */
async function clusterObjects(options: { readonly kubeconfig?: string }) {
  // Loaded only here: an offline check never pays for the Kubernetes client.
  const { readClusterSnapshot } = await import("../cluster/snapshot.ts");
  let snapshot: Awaited<ReturnType<typeof readClusterSnapshot>>;
  try {
    snapshot = await readClusterSnapshot(options);
  } catch (error) {
    throw new InputError([`--cluster: ${(error as Error).message}`]);
  }
  const asList = (items: readonly unknown[]) => JSON.stringify({ kind: "List", items });
  const file = `cluster ${snapshot.server}`;
  return {
    pools: parseManifests(asList(snapshot.pools), file),
    existing: parseManifests(asList(snapshot.existing), file),
    release: snapshot.release,
  };
}
