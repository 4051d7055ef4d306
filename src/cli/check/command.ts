// `lb-ip-guard check`: the webhook's decisions, offline, for CI. Every Service of the manifests is
// decided in input order against the pools, the Services already in the cluster (--existing) and
// the manifests before it, exactly as the admission webhook would decide them one `kubectl apply`
// at a time. Without manifests it audits the Services already there, in the order they were
// created. Here: the arguments and the run; the input in ./input.ts, the replay through the
// webhook's admission path in ./replay.ts, the report and --assign in ./report.ts.

import type { Policy } from "../../ipam/decide.ts";
import { isReservationObject, reservationSpecOf } from "../../ipam/reservations.ts";
import type { ServiceObject } from "../../ipam/service.ts";
import { STDIN_NAME } from "../../manifests/loader.ts";
import {
  CLAIMS_NAMESPACE_FLAG,
  type LoadedSources,
  loadSources,
  parseSourceArgs,
  runWithSources,
  type Sources,
  sourcesOf,
  writeOutput,
} from "../sources.ts";
import { formatGitHub } from "./formats/github.ts";
import { formatGitLab } from "./formats/gitlab.ts";
import { formatJUnit } from "./formats/junit.ts";
import { formatSarif } from "./formats/sarif.ts";
import { asService, refOf } from "./input.ts";
import { lifecycleOf } from "./lifecycle.ts";
import { decisionField, FileNames, type Location, locate, Origins } from "./locations.ts";
import { Replay } from "./replay.ts";
import { applyAssignments, type CheckRun, type Decided, formatText, reportOf } from "./report.ts";

export const CHECK_SUMMARY = "check Service manifests against MetalLB pools, offline (for CI)";

export const CHECK_USAGE = `Usage: lb-ip-guard check [PATH|-]... [--pools FILE]... [--existing FILE]...
                         [--cluster [--kubeconfig FILE] [--context NAME] [--claims-namespace NS]]
                         [--format text|json|sarif|junit|github|gitlab [--output FILE]]...
                         [--stdin-filename NAME] [--assign] [--load-balancer-class NAME]
                         [--metallb-version VERSION] [--allocate all|annotated]

Decides every Service in the manifests as the admission webhook would, in input order, through
the webhook's own admission path (mutation, then validation; a Service already in the cluster
is an UPDATE, with the ratchet): each is checked against the address pools, the Services
already in the cluster, and the Services before it in the manifests (two manifests asking for
one address: the second is denied). Services that get an address from lb-ip-guard (the
lb-ip-guard.dev/auto-assign: "true" annotation, and LoadBalancer Services that request none)
get the address they would receive (decision "assigned"), and later Services see it as used.
The address lifecycle is decided as the webhook decides it: addresses retained for a Service
that gave them up (the webhook's claim Leases; a retention that has ended by now is dropped),
AddressReservations, and the lb-ip-guard.dev/address-quota of Namespaces. An AddressReservation
among the manifests is admitted by the webhook's rules too (a result with "kind").

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
                            the same namespace/name is an update: it replaces the existing one.
                            Also AddressReservations (kubectl get addressreservations -A) and
                            the webhook's claim Leases (kubectl get leases -n lb-ip-guard
                            -l app.kubernetes.io/managed-by=lb-ip-guard): a retained claim keeps
                            its address for its Service; any other holds its address for its
                            Service until that Service gives the address up
  --cluster                 read pools (ConfigMap metallb-system/config, IPAddressPools),
                            Services, Namespaces, AddressReservations (none without the CRD)
                            and the webhook's claim Leases from the live cluster, read-only (it
                            claims nothing); --pools and --existing add to them
  --kubeconfig FILE         the cluster for --cluster (default: $KUBECONFIG, ~/.kube/config,
                            in-cluster)
  --context NAME            the kubeconfig context for --cluster (default: its current one)
  --claims-namespace NS     the webhook's namespace, where --cluster reads its claim Leases
                            (default lb-ip-guard, where deploy/ installs it)
  --stdin-filename NAME     the name stdin (-) has in results and messages (default <stdin>),
                            e.g. the chart or kustomization it was rendered from. Rendered with
                            kustomize's originAnnotations, a Service points at the file it came
                            from, read relative to NAME's folder (NAME itself when a folder; the
                            current folder without --stdin-filename)

Options:
  --format FORMAT           what the report is written as (default text), repeatable, each with
                            its own --output; at most one without:
                              text    one line per Service, its file:line, then a summary
                              json    one object {summary, results}
                              sarif   SARIF 2.1.0 for code scanning (github/codeql-action/
                                      upload-sarif): a rule per reason code, denials errors,
                                      warnings warnings
                              junit   JUnit XML: a test suite per file, a test case per Service,
                                      a failure per denial
                              github  GitHub Actions workflow commands (::error file=...,line=...)
                                      that annotate the pull request at the offending line
                              gitlab  a GitLab Code Quality report (artifacts:reports:codequality)
                            Each result points at its file (relative to the current folder), its
                            document and the line of the field decided on (the address asked
                            for, the externalIPs entry, the pool annotation), else the object's
                            first line. The exit status is the same in every format
  --output FILE             write the --format just before it to FILE instead of stdout:
                              --format sarif --output check.sarif --format text
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
  <decision> <namespace>/<name> <ips|-> [<pool>] <Reason>: <message> (<file>:<line>)
(no reason for allowed and assigned; no file:line for a Service of the cluster), then a summary
line. Locations in messages are FILE#N, N counting the YAML documents of FILE from 1.

Exit status: 0 nothing denied, 1 something denied, 2 usage or input error.
`;

/** Where a command writes; tests and the entry point supply it. */
export interface CheckIO {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly readStdin?: () => Promise<string>;
}

export const EXIT = { ok: 0, denied: 1, usage: 2 } as const;

const FORMATS = {
  text: formatText,
  json: ({ report }: CheckRun) => `${JSON.stringify(report, null, 2)}\n`,
  sarif: formatSarif,
  junit: formatJUnit,
  github: formatGitHub,
  gitlab: formatGitLab,
} as const satisfies Record<string, (run: CheckRun) => string>;

type Format = keyof typeof FORMATS;

/** One report to write: a format, and its file (undefined: stdout, or stderr with --assign). */
interface Output {
  readonly format: Format;
  file: string | undefined;
}

interface CheckOptions {
  readonly sources: Sources;
  readonly outputs: readonly Output[];
  readonly stdinName: string | undefined;
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
      for (const warning of outcome.warnings) io.stderr(`lb-ip-guard check: warning: ${warning}\n`);
      const denied = outcome.run.report.summary.denied > 0;
      // With --assign stdout carries the manifests: the report without a file goes to stderr.
      const console = options.assign ? { ...io, stdout: io.stderr } : io;
      for (const { format, file } of options.outputs) {
        await writeOutput(file, FORMATS[format](outcome.run), console);
      }
      if (options.assign && !denied) io.stdout(outcome.assigned);
      return denied ? EXIT.denied : EXIT.ok;
    },
  );
}

function parseCheckArgs(args: readonly string[]): CheckOptions | "help" {
  const { values, positionals, tokens } = parseSourceArgs(args, {
    ...CLAIMS_NAMESPACE_FLAG,
    format: { type: "string", multiple: true },
    output: { type: "string", multiple: true },
    "stdin-filename": { type: "string" },
    assign: { type: "boolean" },
    allocate: { type: "string" },
  });
  if (values.help) return "help";
  const sources = sourcesOf(values, positionals);
  if (positionals.length === 0 && values.assign === true) {
    throw new Error("--assign writes the manifests it is given: name files or directories, or -");
  }
  const stdinName = values["stdin-filename"];
  if (stdinName === "") throw new Error("--stdin-filename needs a name");
  if (stdinName !== undefined && !positionals.includes("-")) {
    throw new Error("--stdin-filename names stdin: give - among the PATHs");
  }
  return {
    sources,
    outputs: outputsOf(tokens),
    stdinName,
    assign: values.assign ?? false,
    allocation: allocationOption(values.allocate),
  };
}

/**
 * --format and --output in the order given: each --output writes the --format just before it.
 * Two reports cannot share stdout (they would interleave) nor one file.
 */
function outputsOf(tokens: readonly { kind: string; name?: string; value?: string | undefined }[]) {
  const outputs: Output[] = [];
  for (const token of tokens) {
    if (token.kind !== "option") continue;
    const value = token.value ?? "";
    if (token.name === "format") {
      if (!Object.hasOwn(FORMATS, value)) {
        throw new Error(
          `--format must be one of ${Object.keys(FORMATS).join(", ")}, not ${JSON.stringify(value)}`,
        );
      }
      outputs.push({ format: value as Format, file: undefined });
    } else if (token.name === "output") {
      const last = outputs.at(-1);
      if (value === "") throw new Error("--output needs a file name");
      if (last === undefined || last.file !== undefined) {
        throw new Error(`--output ${value}: give the --format it writes just before it`);
      }
      if (outputs.some((output) => output.file === value)) {
        throw new Error(`--output ${value} is given twice`);
      }
      last.file = value;
    }
  }
  if (outputs.filter((output) => output.file === undefined).length > 1) {
    throw new Error("only one --format can go to stdout: give the others --output FILE");
  }
  return outputs.length > 0 ? outputs : [{ format: "text" as const, file: undefined }];
}

interface Outcome {
  readonly run: CheckRun;
  /** Notes about the input as a whole (stderr, in every format). */
  readonly warnings: readonly string[];
  /** The manifests with the assignments applied (`--assign`). */
  readonly assigned: string;
}

async function check(options: CheckOptions, io: CheckIO): Promise<Outcome> {
  const { policy, poolSet, namespaceLabels, existingObjects, manifests, audit, warnings } =
    await loadSources(options.sources, io.readStdin, options.allocation, options.stdinName);

  const decided = decideServices({
    poolSet,
    policy,
    namespaceLabels,
    existingObjects,
    manifests,
    audit,
    now: Date.now(),
    warnings,
  });

  if (poolSet.size === 0 && decided.some(({ verdict }) => verdict.addresses.length > 0)) {
    warnings.push(
      "no address pools found: pass --pools FILE or include the MetalLB ConfigMap or IPAddressPools among the manifests",
    );
  }
  const locations = audit
    ? decided.map(() => undefined)
    : await locationsOf(decided, policy, options.stdinName);
  return {
    run: {
      report: reportOf(decided, locations),
      serviceWarnings: decided.map((entry) => entry.verdict.warnings),
      locations,
      ratchet: decided.map((entry) => entry.verdict.ratchet),
    },
    warnings,
    assigned: options.assign ? applyAssignments(manifests, decided) : "",
  };
}

/** Where each decided manifest Service points: its origin file when kustomize recorded one. */
async function locationsOf(
  decided: readonly Decided[],
  policy: Policy,
  stdinName: string | undefined,
): Promise<Location[]> {
  const names = new FileNames(stdinName === undefined ? STDIN_NAME : undefined);
  const origins = new Origins(stdinName ?? STDIN_NAME, stdinName !== undefined);
  const locations: Location[] = [];
  for (const entry of decided) {
    const { manifest, verdict } = entry;
    const field =
      "service" in entry
        ? decisionField(entry.service, verdict, policy.reads)
        : ["spec", "addresses"];
    const origin = origins.has(manifest) ? await origins.of(manifest) : undefined;
    locations.push(locate(origin ?? manifest, field, names));
  }
  return locations;
}

/**
 * What a replay of Services needs: the loaded sources, less their notes; the time a retention
 * must outlast (default now) and where notes on the lifecycle's objects go (default nowhere).
 */
export type ServicesToDecide = Omit<LoadedSources, "warnings"> & {
  readonly now?: number;
  readonly warnings?: string[];
};

/**
 * Every Service and AddressReservation of the manifests through one Replay: what the webhook
 * would answer, in order. The reservations, Namespaces and claim Leases already there (and the
 * manifests' Namespaces and Leases) are the lifecycle it decides against; an audit decides the
 * Services already there and counts their reservations as made.
 */
export function decideServices(input: ServicesToDecide): Decided[] {
  const { poolSet, policy, namespaceLabels, existingObjects, manifests, audit } = input;
  // Services already in the cluster: last copy of a namespace/name wins. An audit decides them
  // one by one instead.
  const existing = new Map<string, ServiceObject>();
  for (const manifest of audit ? [] : existingObjects) {
    const service = asService(manifest);
    if (service !== undefined) existing.set(refOf(service, manifest), service);
  }
  const lifecycle = lifecycleOf(
    audit
      ? existingObjects
      : [...existingObjects, ...manifests.filter((each) => !isReservationObject(each.object))],
    input.now ?? Date.now(),
    input.warnings ?? [],
  );
  const replay = new Replay({
    pools: poolSet,
    namespaceLabels,
    policy,
    existing,
    lifecycle,
  });
  const decided: Decided[] = [];
  for (const manifest of manifests) {
    if (!audit && isReservationObject(manifest.object)) {
      const reservation = reservationSpecOf(manifest.object, "default");
      const verdict = replay.admitReservation(manifest.object, reservation);
      decided.push({ manifest, reservation, verdict });
      continue;
    }
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
