// The inputs `check` and `pools` share: their flags (manifests, --pools, --existing, --cluster
// with --kubeconfig and --context, the release and class guarded), what those flags read, and the
// policy they make. Each command adds its own flags and does its own thing with what is loaded.

import { writeFile } from "node:fs/promises";
import { type ParseArgsOptionsConfig, parseArgs } from "node:util";
import { isDnsLabel } from "../base/k8s-names.ts";
import { type Policy, policyFor } from "../ipam/decide.ts";
import type { Labels } from "../ipam/labels.ts";
import { type MetalLBVersion, parseMetalLBVersion } from "../ipam/metallb-version.ts";
import type { PoolSet } from "../ipam/pool.ts";
import {
  listManifests,
  ManifestError,
  ManifestLoader,
  type ManifestObject,
} from "../manifests/loader.ts";
import {
  auditOrder,
  clusterObjects,
  collectNamespaces,
  collectPools,
  InputError,
  loadPoolSources,
} from "./check/input.ts";

/** The flags of the shared inputs, for parseArgs. */
const SOURCE_FLAGS = {
  pools: { type: "string", multiple: true },
  existing: { type: "string", multiple: true },
  cluster: { type: "boolean" },
  kubeconfig: { type: "string" },
  context: { type: "string" },
  "load-balancer-class": { type: "string" },
  "metallb-version": { type: "string" },
} as const satisfies ParseArgsOptionsConfig;

/** The flag of the commands that read the webhook's claim Leases with --cluster. */
export const CLAIMS_NAMESPACE_FLAG = {
  "claims-namespace": { type: "string" },
} as const satisfies ParseArgsOptionsConfig;

/** Where the webhook keeps its claims unless told: the namespace deploy/ installs it in. */
const DEFAULT_CLAIMS_NAMESPACE = "lb-ip-guard";

/** A command's arguments: the shared flags, its own, and -h/--help; positionals are PATHs. */
export function parseSourceArgs<Flags extends ParseArgsOptionsConfig>(
  args: readonly string[],
  flags: Flags,
) {
  return parseArgs({
    args: [...args],
    strict: true,
    allowPositionals: true,
    // In order, for flags that pair up (check's --format and --output).
    tokens: true,
    options: { ...SOURCE_FLAGS, ...flags, help: { type: "boolean", short: "h" } } as const,
  });
}

/** The kubeconfig (file, context) a --cluster run reads. */
export interface ClusterTarget {
  readonly kubeconfig?: string;
  readonly context?: string;
  /** The webhook's namespace, where its claim Leases are (retentions and pending claims). */
  readonly claimsNamespace: string;
}

export interface Sources {
  readonly paths: readonly string[];
  readonly pools: readonly string[];
  readonly existing: readonly string[];
  readonly cluster: ClusterTarget | undefined;
  readonly loadBalancerClass: string | undefined;
  /** Given with --metallb-version; with --cluster, read from the cluster when not given. */
  readonly metallbVersion: MetalLBVersion | undefined;
}

interface SourceValues {
  readonly pools?: string[] | undefined;
  readonly existing?: string[] | undefined;
  readonly cluster?: boolean | undefined;
  readonly kubeconfig?: string | undefined;
  readonly context?: string | undefined;
  readonly "load-balancer-class"?: string | undefined;
  readonly "metallb-version"?: string | undefined;
  readonly "claims-namespace"?: string | undefined;
}

/** The shared flags' values, checked; throws an Error whose message is the usage problem. */
export function sourcesOf(values: SourceValues, positionals: readonly string[]): Sources {
  if (positionals.length === 0 && values.cluster !== true && (values.existing ?? []).length === 0) {
    throw new Error(
      "no manifests given: name files or directories, or - for stdin (or audit the Services already in a cluster with --cluster or --existing FILE alone)",
    );
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
    cluster: clusterTarget(values),
    loadBalancerClass,
    metallbVersion: versionOption(values["metallb-version"]),
  };
}

function clusterTarget(values: SourceValues): ClusterTarget | undefined {
  for (const flag of ["kubeconfig", "context"] as const) {
    const given = values[flag];
    if (given !== undefined && !values.cluster) throw new Error(`--${flag} needs --cluster`);
    if (given === "")
      throw new Error(`--${flag} needs a ${flag === "context" ? "name" : "file name"}`);
  }
  const claimsNamespace = values["claims-namespace"];
  if (claimsNamespace !== undefined && !values.cluster) {
    throw new Error("--claims-namespace needs --cluster");
  }
  if (claimsNamespace !== undefined && !isDnsLabel(claimsNamespace)) {
    throw new Error(
      `--claims-namespace must be a namespace name, not ${JSON.stringify(claimsNamespace)}`,
    );
  }
  if (!values.cluster) return undefined;
  return {
    ...(values.kubeconfig !== undefined && { kubeconfig: values.kubeconfig }),
    ...(values.context !== undefined && { context: values.context }),
    claimsNamespace: claimsNamespace ?? DEFAULT_CLAIMS_NAMESPACE,
  };
}

function versionOption(given: string | undefined): MetalLBVersion | undefined {
  if (given === undefined) return undefined;
  const parsed = parseMetalLBVersion(given);
  if (!parsed.ok) throw new Error(`--metallb-version: ${parsed.error}`);
  return parsed.value;
}

/** Where a command writes. */
interface Output {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

/** The exit status of a usage or input error, for every command. */
const USAGE_ERROR = 2;

/**
 * The frame of a command that reads sources: its arguments parsed (a usage problem is one line
 * and exit 2), its help, and its run, whose unreadable input (a manifest, a pool configuration,
 * the cluster) is one line per problem and exit 2.
 */
export async function runWithSources<Options>(
  command: { readonly name: string; readonly usage: string },
  args: readonly string[],
  io: Output,
  parse: (args: readonly string[]) => Options | "help",
  run: (options: Options) => Promise<number>,
): Promise<number> {
  const prefix = `lb-ip-guard ${command.name}:`;
  let options: Options | "help";
  try {
    options = parse(args);
  } catch (error) {
    io.stderr(`${prefix} ${usageProblem(error)} (see lb-ip-guard ${command.name} --help)\n`);
    return USAGE_ERROR;
  }
  if (options === "help") {
    io.stdout(command.usage);
    return 0;
  }
  try {
    return await run(options);
  } catch (error) {
    if (error instanceof ManifestError) {
      io.stderr(`${prefix} ${error.message}\n`);
      return USAGE_ERROR;
    }
    if (error instanceof InputError) {
      for (const line of error.lines) io.stderr(`${prefix} ${line}\n`);
      return USAGE_ERROR;
    }
    throw error;
  }
}

/**
 * Writes a command's result to `file` (`--output`), or to stdout without one. A file that cannot
 * be written is an input error (exit 2, one line), as a file that cannot be read is.
 */
export async function writeOutput(
  file: string | undefined,
  text: string,
  io: Output,
): Promise<void> {
  if (file === undefined) {
    io.stdout(text);
    return;
  }
  try {
    await writeFile(file, text);
  } catch (error) {
    throw new InputError([`--output: ${(error as Error).message}`]);
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

/** Everything the shared inputs say, loaded and merged. */
export interface LoadedSources {
  readonly policy: Policy;
  readonly poolSet: PoolSet;
  readonly namespaceLabels: (namespace: string) => Labels;
  /**
   * The objects already in the cluster: --cluster's (Namespaces, Services, AddressReservations,
   * the claim Leases), then --existing's.
   */
  readonly existingObjects: readonly ManifestObject[];
  /** No PATH: the existing objects in audit order. Otherwise the PATHs' objects, in order. */
  readonly manifests: readonly ManifestObject[];
  readonly audit: boolean;
  /** Notes about the input as a whole (stderr, in every format). */
  readonly warnings: string[];
}

export async function loadSources(
  sources: Sources,
  readStdin: (() => Promise<string>) | undefined,
  allocation: Policy["allocation"],
  stdinName?: string,
): Promise<LoadedSources> {
  const loader = new ManifestLoader({
    ...(readStdin !== undefined && { readStdin }),
    ...(stdinName !== undefined && { stdinName }),
  });
  // --pools first, then the manifests: a manifest's copy of a pool source is the newer one.
  const poolObjects = await loadPoolSources(loader, sources.pools);
  const existingObjects = await loader.load(sources.existing);
  const warnings: string[] = [];
  let release = sources.metallbVersion;
  if (sources.cluster !== undefined) {
    const cluster = await clusterObjects(sources.cluster);
    const lifecycle = await clusterLifecycle(sources.cluster, cluster.file);
    poolObjects.unshift(...cluster.pools);
    existingObjects.unshift(...cluster.existing, ...lifecycle.objects);
    warnings.push(...lifecycle.warnings);
    if (release === undefined) {
      release = cluster.release.version;
      if (cluster.release.version === undefined) {
        warnings.push(
          `MetalLB release unknown (${cluster.release.why}): every MetalLB key is read; give --metallb-version`,
        );
      }
    }
  }
  const policy = policyFor({ loadBalancerClass: sources.loadBalancerClass, release, allocation });
  // No manifests: an audit. The Services already there are the ones looked at, as the webhook
  // would have decided them one at a time (see auditOrder), so a Service asking for an address
  // that another holds is the one MetalLB left <pending>.
  const audit = sources.paths.length === 0;
  const manifests = audit ? auditOrder(existingObjects) : await loader.load(sources.paths);
  const poolSet = collectPools([...poolObjects, ...manifests], policy.reads, warnings);
  return {
    policy,
    poolSet,
    namespaceLabels: namespaceLabelsOf([...existingObjects, ...manifests]),
    existingObjects,
    manifests,
    audit,
    warnings,
  };
}

/** The claim Leases and AddressReservations of the cluster, as manifests of it. */
async function clusterLifecycle(target: ClusterTarget, file: string) {
  // Loaded only here: an offline run never pays for the Kubernetes client.
  const { readLifecycleObjects } = await import("../cluster/claim-reader.ts");
  const { objects, warnings } = await readLifecycleObjects(target, target.claimsNamespace);
  return {
    objects: listManifests(objects, file),
    warnings,
  };
}

/** The labels of each Namespace among `objects`, as the API server gives them. */
export function namespaceLabelsOf(
  objects: readonly ManifestObject[],
): (namespace: string) => Labels {
  const namespaces = collectNamespaces(objects);
  // Kubernetes (1.21+) labels every Namespace with its own name, overriding any other value.
  return (namespace) => ({
    ...namespaces.get(namespace)?.labels,
    "kubernetes.io/metadata.name": namespace,
  });
}
