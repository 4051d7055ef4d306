// `lb-ip-guard check`: the webhook's decisions, offline, for CI. Every Service of the manifests is
// decided in input order against the pools, the Services already in the cluster (--existing) and
// the manifests before it, exactly as the admission webhook would decide them one `kubectl apply`
// at a time. Without manifests it audits the Services already there, in the order they were
// created. Here: the arguments and the run; the input in ./input.ts, the replay through the
// webhook's admission path in ./replay.ts, the report and --assign in ./report.ts.

import { parseArgs } from "node:util";
import { type Policy, policyFor } from "../../ipam/decide.ts";
import { type MetalLBVersion, parseMetalLBVersion } from "../../ipam/metallb-version.ts";
import type { PoolSet } from "../../ipam/pool.ts";
import type { ServiceObject } from "../../ipam/service.ts";
import { ManifestError, ManifestLoader, type ManifestObject } from "../../manifests/loader.ts";
import {
  asService,
  auditOrder,
  clusterObjects,
  collectNamespaces,
  collectPools,
  InputError,
  loadPoolSources,
  refOf,
} from "./input.ts";
import { Replay } from "./replay.ts";
import {
  applyAssignments,
  type CheckReport,
  type DecidedService,
  formatText,
  reportOf,
} from "./report.ts";

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

export function runCheck(args: readonly string[], io: CheckIO): Promise<number> {
  return runCommand(
    {
      name: "check",
      usage: CHECK_USAGE,
      parse: parseCheckArgs,
      run: (options) => report(options, io),
    },
    args,
    io,
  );
}

async function report(options: CheckOptions, io: CheckIO): Promise<number> {
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
}

/** What runCommand needs of a command that reads manifests. */
export interface ManifestCommand<Options> {
  readonly name: string;
  readonly usage: string;
  /** Throws on a usage error (its message is shown, shortened by usageProblem). */
  readonly parse: (args: readonly string[]) => Options | "help";
  readonly run: (options: Options) => Promise<number>;
}

/**
 * The frame of check and convert: the arguments parsed (a usage error is exit 2), --help, and
 * bad input (a ManifestError or an InputError) reported one line each with exit 2.
 */
export async function runCommand<Options>(
  command: ManifestCommand<Options>,
  args: readonly string[],
  io: CheckIO,
): Promise<number> {
  const prefix = `lb-ip-guard ${command.name}`;
  let options: Options | "help";
  try {
    options = command.parse(args);
  } catch (error) {
    io.stderr(`${prefix}: ${usageProblem(error)} (see ${prefix} --help)\n`);
    return EXIT.usage;
  }
  if (options === "help") {
    io.stdout(command.usage);
    return EXIT.ok;
  }
  try {
    return await command.run(options);
  } catch (error) {
    if (error instanceof ManifestError) {
      io.stderr(`${prefix}: ${error.message}\n`);
      return EXIT.usage;
    }
    if (error instanceof InputError) {
      for (const line of error.lines) io.stderr(`${prefix}: ${line}\n`);
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

async function check(options: CheckOptions, io: CheckIO): Promise<Outcome> {
  const loader = new ManifestLoader(io.readStdin === undefined ? {} : { readStdin: io.readStdin });
  // --pools first, then the manifests: a manifest's copy of a pool source is the newer one.
  const poolObjects = await loadPoolSources(loader, options.pools);
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
  const decided = decideServices({ poolSet, policy, existingObjects, manifests, audit });

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

export interface ServicesToDecide {
  readonly poolSet: PoolSet;
  readonly policy: Policy;
  /** The cluster's objects (Services, Namespaces): stored Services, or those audited. */
  readonly existingObjects: readonly ManifestObject[];
  /** What is decided, in order: the manifests, or for an audit auditOrder(existingObjects). */
  readonly manifests: readonly ManifestObject[];
  readonly audit: boolean;
}

/** Every Service of the manifests through one Replay: what the webhook would answer, in order. */
export function decideServices(input: ServicesToDecide): DecidedService[] {
  const { poolSet, policy, existingObjects, manifests, audit } = input;
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
  return decided;
}

export function versionOption(given: string | undefined): MetalLBVersion | undefined {
  if (given === undefined) return undefined;
  const parsed = parseMetalLBVersion(given);
  if (!parsed.ok) throw new Error(`--metallb-version: ${parsed.error}`);
  return parsed.value;
}

function allocationOption(given: string | undefined): Policy["allocation"] {
  if (given === undefined || given === "all" || given === "annotated") return given ?? "all";
  throw new Error(`--allocate must be all or annotated, not ${JSON.stringify(given)}`);
}

export function clusterOption(cluster: boolean | undefined, kubeconfig: string | undefined) {
  if (kubeconfig !== undefined && !cluster) throw new Error("--kubeconfig needs --cluster");
  if (kubeconfig === "") throw new Error("--kubeconfig needs a file name");
  return cluster ? (kubeconfig === undefined ? {} : { kubeconfig }) : undefined;
}
