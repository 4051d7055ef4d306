// `lb-ip-guard convert`: MetalLB's legacy ConfigMap (v0.11–v0.12) as the custom resources of
// v0.13 and later, and with --check the proof that no Service is decided differently after the
// upgrade. The conversion itself is pure (src/ipam/config/convert.ts); here: the input, the YAML
// with its provenance comments (./render.ts), and the two replays `check` uses compared.

import { convertLegacyConfig } from "../../ipam/config/convert.ts";
import { legacyConfigFromDocument } from "../../ipam/config/document.ts";
import { formatPoolConfigError } from "../../ipam/config/errors.ts";
import type { LegacyConfigFound } from "../../ipam/config/legacy.ts";
import { policyFor } from "../../ipam/decide.ts";
import { formatMetalLBVersion, type MetalLBVersion, readsOf } from "../../ipam/metallb-version.ts";
import { ManifestLoader, type ManifestObject, parseManifests } from "../../manifests/loader.ts";
import { type CheckIO, decideServices, EXIT } from "../check/command.ts";
import { asService, auditOrder, clusterObjects, collectPools, InputError } from "../check/input.ts";
import { type CheckResult, reportOf } from "../check/report.ts";
import {
  namespaceLabelsOf,
  parseSourceArgs,
  runWithSources,
  type Sources,
  sourcesOf,
  writeOutput,
} from "../sources.ts";
import { renderConversion } from "./render.ts";

export const CONVERT_SUMMARY =
  "convert MetalLB's legacy ConfigMap (v0.11-v0.12) into the custom resources of v0.13+";

/** Where the ConfigMap is read from, and the converted objects go: MetalLB's namespace. */
const METALLB_NAMESPACE = "metallb-system";

/** The last release that reads the ConfigMap: what --check compares against by default. */
const LAST_LEGACY_RELEASE: MetalLBVersion = { major: 0, minor: 12, patch: 1 };

export const CONVERT_USAGE = `Usage: lb-ip-guard convert [PATH|-]...
                           [--cluster [--kubeconfig FILE] [--context NAME]] [--output FILE]
                           [--check [--existing FILE]... [--metallb-version VERSION]
                                    [--load-balancer-class NAME]]

Converts the legacy configuration of MetalLB v0.11-v0.12 (the ConfigMap metallb-system/config,
or a bare config with address-pools) into the objects MetalLB reads from v0.13 on:
IPAddressPool, L2Advertisement, BGPAdvertisement, Community (metallb.io/v1beta1), BGPPeer
(metallb.io/v1beta2) and BFDProfile (metallb.io/v1beta1), as YAML in a stable order, each
object with a comment naming what it came from. Every field of the legacy format is carried
over; what has no equivalent is an error naming it, and nothing is written. docs/convert.md
lists each field's mapping.

Inputs:
  PATH                      a YAML/JSON file or directory (as for check) holding the ConfigMap;
                            - for stdin. Services among them are what --check decides
  --cluster                 read the ConfigMap (and for --check the Services) from the live
                            cluster, read-only
  --kubeconfig FILE, --context NAME
                            the cluster for --cluster (default: $KUBECONFIG, ~/.kube/config,
                            in-cluster; its current context)

Options:
  --output FILE             write the objects to FILE instead of stdout
  --check                   decide the Services given (those among the PATHs, after the ones of
                            --existing and --cluster; without any among the PATHs, an audit of
                            those already there, as check does) twice through check's replay:
                            against the ConfigMap's pools as MetalLB --metallb-version reads
                            them, and against the converted IPAddressPools as the newest release
                            reads them (the metallb.io/ keys first, then metallb.universe.tf/).
                            Each Service must get the same decision, address, pool and reason.
                            The report goes to stderr; any difference is printed and the exit
                            status is 1
  --existing FILE           Services (and Namespaces) already in the cluster (repeatable)
  --metallb-version VERSION the legacy release the ConfigMap runs under (default: with --cluster
                            the controller's, otherwise ${formatMetalLBVersion(LAST_LEGACY_RELEASE)})
  --load-balancer-class NAME
                            the class MetalLB answers to, on both sides (default: none)
  -h, --help                this help

Exit status: 0 converted (and with --check, every decision the same), 1 some decision differs,
2 usage or input error (a field without an equivalent, an invalid name, no ConfigMap found).
`;

interface ConvertOptions {
  readonly sources: Sources;
  readonly output: string | undefined;
  readonly check: boolean;
}

export function runConvert(args: readonly string[], io: CheckIO): Promise<number> {
  return runWithSources(
    { name: "convert", usage: CONVERT_USAGE },
    args,
    io,
    parseConvertArgs,
    (options) => convert(options, io),
  );
}

function parseConvertArgs(args: readonly string[]): ConvertOptions | "help" {
  const { values, positionals } = parseSourceArgs(args, {
    output: { type: "string" },
    check: { type: "boolean" },
  });
  if (values.help) return "help";
  if (values.pools !== undefined) {
    throw new Error("--pools is check's: name the file holding the ConfigMap as a PATH");
  }
  if (positionals.length === 0 && values.cluster !== true) {
    throw new Error(
      "no ConfigMap given: name a file or directory holding it, - for stdin, or --cluster",
    );
  }
  if (values.output === "") throw new Error("--output needs a file name");
  for (const flag of ["existing", "metallb-version", "load-balancer-class"] as const) {
    if (!values.check && values[flag] !== undefined) throw new Error(`--${flag} is for --check`);
  }
  const sources = sourcesOf(values, positionals);
  const release = sources.metallbVersion;
  if (release !== undefined && !readsOf(release).legacyConfigMap) {
    throw new Error(
      `--metallb-version: ${formatMetalLBVersion(release)} reads no ConfigMap; the legacy releases are v0.11 and v0.12`,
    );
  }
  return { sources, output: values.output, check: values.check ?? false };
}

async function convert(options: ConvertOptions, io: CheckIO): Promise<number> {
  const { sources } = options;
  const loader = new ManifestLoader(io.readStdin === undefined ? {} : { readStdin: io.readStdin });
  const configSources: ManifestObject[] = [];
  const given = await loader.load(sources.paths);
  const existingObjects = await loader.load(sources.existing);
  let release = sources.metallbVersion;
  if (sources.cluster !== undefined) {
    const cluster = await clusterObjects(sources.cluster);
    configSources.unshift(...cluster.pools);
    existingObjects.unshift(...cluster.existing);
    const running = cluster.release.version;
    if (release === undefined && running !== undefined) {
      if (!readsOf(running).legacyConfigMap) {
        io.stderr(
          `lb-ip-guard convert: warning: the cluster runs MetalLB ${formatMetalLBVersion(running)}, which no longer reads the ConfigMap\n`,
        );
      } else {
        release = running;
      }
    }
  }
  const { configMap, found } = legacySource([...configSources, ...given], sources);
  const problems = [...found.errors, ...found.bgpErrors].map(formatPoolConfigError);
  if (problems.length > 0) throw new InputError(problems);
  const conversion = convertLegacyConfig(found.config, METALLB_NAMESPACE);
  if (conversion.errors.length > 0) {
    throw new InputError(conversion.errors.map((error) => `${configMap.location}: ${error}`));
  }
  for (const warning of conversion.warnings) {
    io.stderr(`lb-ip-guard convert: warning: ${warning}\n`);
  }
  const yaml = renderConversion(conversion, configMap.location);
  await writeOutput(options.output, yaml, io);
  if (!options.check) return EXIT.ok;

  const services = given.filter((manifest) => asService(manifest) !== undefined);
  const compared = compareDecisions({
    configMap,
    // The converted side is read back from the YAML just written: what is checked is the output.
    converted: parseManifests(yaml, options.output ?? "<converted>"),
    existingObjects,
    services,
    release: release ?? LAST_LEGACY_RELEASE,
    loadBalancerClass: sources.loadBalancerClass,
  });
  const oldName = formatMetalLBVersion(release ?? LAST_LEGACY_RELEASE);
  let differences = 0;
  for (const { before, after } of compared) {
    const ref = `${before.namespace}/${before.name}`;
    if (decisionText(before) === decisionText(after)) {
      io.stderr(`same     ${ref} ${decisionText(before)}\n`);
    } else {
      differences += 1;
      io.stderr(
        `differs  ${ref} ${oldName} with the ConfigMap: ${decisionText(before)}; newest release with the converted objects: ${decisionText(after)}${after.reason === null ? "" : ` (${after.message})`}\n`,
      );
    }
  }
  io.stderr(
    `${compared.length} services: ${compared.length - differences} decided the same, ${differences} differently\n`,
  );
  return differences > 0 ? EXIT.denied : EXIT.ok;
}

export interface DecisionsToCompare {
  readonly configMap: ManifestObject;
  readonly converted: readonly ManifestObject[];
  readonly existingObjects: readonly ManifestObject[];
  /** The Services to decide; none: an audit of the existing ones. */
  readonly services: readonly ManifestObject[];
  /** The legacy release the ConfigMap runs under. */
  readonly release: MetalLBVersion;
  /** The class MetalLB answers to, on both sides. */
  readonly loadBalancerClass?: string | undefined;
}

/**
 * Each Service decided twice through check's replay: against the ConfigMap as `release` reads
 * it, and against the converted objects as the newest release reads them (an unknown release
 * reads every key, the metallb.io/ ones first, which is what the newest reads).
 */
export function compareDecisions(
  input: DecisionsToCompare,
): { readonly before: CheckResult; readonly after: CheckResult }[] {
  const audit = input.services.length === 0;
  const manifests = audit ? auditOrder(input.existingObjects) : input.services;
  const namespaceLabels = namespaceLabelsOf([...input.existingObjects, ...manifests]);
  const decide = (pools: readonly ManifestObject[], release: MetalLBVersion | undefined) => {
    const policy = policyFor({ release, loadBalancerClass: input.loadBalancerClass });
    // Notes about left-out sources cannot arise: each side gets only the sources its release reads.
    const poolSet = collectPools(pools, policy.reads, []);
    const decided = decideServices({
      poolSet,
      policy,
      namespaceLabels,
      existingObjects: input.existingObjects,
      manifests,
      audit,
    });
    return reportOf(decided).results;
  };
  const before = decide([input.configMap], input.release);
  const after = decide(input.converted, undefined);
  return before.map((result, index) => ({ before: result, after: after[index] as CheckResult }));
}

/** What --check compares: the decision, the addresses, the pool and the reason, not the words. */
function decisionText(result: CheckResult): string {
  const ips = result.ips.length > 0 ? result.ips.join(",") : "-";
  const pool = result.pool === null ? "" : ` [${result.pool}]`;
  const reason = result.reason === null ? "" : ` ${result.reason}`;
  return `${result.decision} ${ips}${pool}${reason}`;
}

/** The one legacy config among the inputs; none, or two, is an input error. */
function legacySource(
  objects: readonly ManifestObject[],
  sources: Sources,
): { readonly configMap: ManifestObject; readonly found: LegacyConfigFound } {
  const configs = objects.flatMap((configMap) => {
    const found = legacyConfigFromDocument(configMap.object, configMap.location);
    return found === undefined ? [] : [{ configMap, found }];
  });
  const [first, second] = configs;
  if (first === undefined) {
    const where = sources.paths.length > 0 ? sources.paths.join(", ") : "the cluster";
    throw new InputError([
      `no legacy MetalLB configuration in ${where}: expected the ConfigMap metallb-system/config (data.config) or a config with address-pools`,
    ]);
  }
  if (second !== undefined) {
    throw new InputError([
      `two legacy MetalLB configurations, ${first.configMap.location} and ${second.configMap.location}: give one`,
    ]);
  }
  return first;
}
