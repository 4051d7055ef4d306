// `lb-ip-guard check`: the webhook's decisions, offline, for CI. Every Service of the manifests is
// decided in input order against the pools, the Services already in the cluster (--existing) and
// the manifests before it, exactly as the admission webhook would decide them one `kubectl apply`
// at a time. Without manifests it audits the Services already there, in the order they were
// created. Here: the arguments and the run; the input in ./input.ts, the replay through the
// webhook's admission path in ./replay.ts, the report and --assign in ./report.ts.

import type { Policy } from "../../ipam/decide.ts";
import type { ServiceObject } from "../../ipam/service.ts";
import {
  type LoadedSources,
  loadSources,
  parseSourceArgs,
  runWithSources,
  type Sources,
  sourcesOf,
} from "../sources.ts";
import { asService, refOf } from "./input.ts";
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
                         [--cluster [--kubeconfig FILE] [--context NAME]]
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
  --context NAME            the kubeconfig context for --cluster (default: its current one)

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
  readonly sources: Sources;
  readonly format: Format;
  readonly assign: boolean;
  readonly allocation: Policy["allocation"];
}

export function runCheck(args: readonly string[], io: CheckIO): Promise<number> {
  return runWithSources(
    { name: "check", usage: CHECK_USAGE },
    args,
    io,
    parseCheckArgs,
    async (options) => {
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
    },
  );
}

function parseCheckArgs(args: readonly string[]): CheckOptions | "help" {
  const { values, positionals } = parseSourceArgs(args, {
    format: { type: "string" },
    assign: { type: "boolean" },
    allocate: { type: "string" },
  });
  if (values.help) return "help";
  const format = values.format ?? "text";
  if (format !== "text" && format !== "json") {
    throw new Error(`--format must be text or json, not ${JSON.stringify(format)}`);
  }
  const sources = sourcesOf(values, positionals);
  if (positionals.length === 0 && values.assign === true) {
    throw new Error("--assign writes the manifests it is given: name files or directories, or -");
  }
  return {
    sources,
    format,
    assign: values.assign ?? false,
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
  const { policy, poolSet, namespaceLabels, existingObjects, manifests, audit, warnings } =
    await loadSources(options.sources, io.readStdin, options.allocation);

  const decided = decideServices({
    poolSet,
    policy,
    namespaceLabels,
    existingObjects,
    manifests,
    audit,
  });

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

/** What a replay of Services needs: the loaded sources, less their notes. */
export type ServicesToDecide = Omit<LoadedSources, "warnings">;

/** Every Service of the manifests through one Replay: what the webhook would answer, in order. */
export function decideServices(input: ServicesToDecide): DecidedService[] {
  const { poolSet, policy, namespaceLabels, existingObjects, manifests, audit } = input;
  // Services already in the cluster: last copy of a namespace/name wins. An audit decides them
  // one by one instead.
  const existing = new Map<string, ServiceObject>();
  for (const manifest of audit ? [] : existingObjects) {
    const service = asService(manifest);
    if (service !== undefined) existing.set(refOf(service, manifest), service);
  }
  const replay = new Replay({ pools: poolSet, namespaceLabels, policy, existing });
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

function allocationOption(given: string | undefined): Policy["allocation"] {
  if (given === undefined || given === "all" || given === "annotated") return given ?? "all";
  throw new Error(`--allocate must be all or annotated, not ${JSON.stringify(given)}`);
}
