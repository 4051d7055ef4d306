// `lb-ip-guard convert`: MetalLB's legacy ConfigMap (v0.11–v0.12) as the custom resources of
// v0.13 and later, and with --check the proof that no Service is decided differently after the
// upgrade. The conversion itself is pure (src/ipam/config/convert.ts); here: the input, the YAML
// with its provenance comments (./render.ts), and the two replays `check` uses compared.

import { writeFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { convertLegacyConfig } from "../../ipam/config/convert.ts";
import { legacyConfigFromDocument } from "../../ipam/config/document.ts";
import { formatPoolConfigError } from "../../ipam/config/errors.ts";
import type { LegacyConfigFound } from "../../ipam/config/legacy.ts";
import { policyFor } from "../../ipam/decide.ts";
import { formatMetalLBVersion, type MetalLBVersion, readsOf } from "../../ipam/metallb-version.ts";
import { ManifestLoader, type ManifestObject, parseManifests } from "../../manifests/loader.ts";
import {
  type CheckIO,
  clusterOption,
  decideServices,
  EXIT,
  runCommand,
  versionOption,
} from "../check/command.ts";
import { asService, auditOrder, clusterObjects, collectPools, InputError } from "../check/input.ts";
import { type CheckResult, reportOf } from "../check/report.ts";
import { renderConversion } from "./render.ts";

export const CONVERT_SUMMARY =
  "convert MetalLB's legacy ConfigMap (v0.11-v0.12) into the custom resources of v0.13+";

/** Where the ConfigMap is read from, and the converted objects go: MetalLB's namespace. */
const METALLB_NAMESPACE = "metallb-system";

/** The last release that reads the ConfigMap: what --check compares against by default. */
const LAST_LEGACY_RELEASE: MetalLBVersion = { major: 0, minor: 12, patch: 1 };

export const CONVERT_USAGE = `Usage: lb-ip-guard convert [PATH|-]... [--cluster [--kubeconfig FILE]] [--output FILE]
                           [--check [--existing FILE]... [--metallb-version VERSION]]

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
  --kubeconfig FILE         the cluster for --cluster

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
  -h, --help                this help

Exit status: 0 converted (and with --check, every decision the same), 1 some decision differs,
2 usage or input error (a field without an equivalent, an invalid name, no ConfigMap found).
`;

interface ConvertOptions {
  readonly paths: readonly string[];
  readonly cluster: { readonly kubeconfig?: string } | undefined;
  readonly output: string | undefined;
  readonly check: boolean;
  readonly existing: readonly string[];
  readonly metallbVersion: MetalLBVersion | undefined;
}

export function runConvert(args: readonly string[], io: CheckIO): Promise<number> {
  return runCommand(
    {
      name: "convert",
      usage: CONVERT_USAGE,
      parse: parseConvertArgs,
      run: (options) => convert(options, io),
    },
    args,
    io,
  );
}

function parseConvertArgs(args: readonly string[]): ConvertOptions | "help" {
  const { values, positionals } = parseArgs({
    args: [...args],
    strict: true,
    allowPositionals: true,
    options: {
      cluster: { type: "boolean" },
      kubeconfig: { type: "string" },
      output: { type: "string" },
      check: { type: "boolean" },
      existing: { type: "string", multiple: true },
      "metallb-version": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return "help";
  if (positionals.length === 0 && values.cluster !== true) {
    throw new Error(
      "no ConfigMap given: name a file or directory holding it, - for stdin, or --cluster",
    );
  }
  if (values.output === "") throw new Error("--output needs a file name");
  if (!values.check && (values.existing !== undefined || values["metallb-version"] !== undefined)) {
    throw new Error("--existing and --metallb-version are for --check");
  }
  if (values.existing?.some((file) => file === "")) throw new Error("--existing needs a file name");
  const metallbVersion = versionOption(values["metallb-version"]);
  if (metallbVersion !== undefined && !readsOf(metallbVersion).legacyConfigMap) {
    throw new Error(
      `--metallb-version: ${formatMetalLBVersion(metallbVersion)} reads no ConfigMap; the legacy releases are v0.11 and v0.12`,
    );
  }
  return {
    paths: positionals,
    cluster: clusterOption(values.cluster, values.kubeconfig),
    output: values.output,
    check: values.check ?? false,
    existing: values.existing ?? [],
    metallbVersion,
  };
}

async function convert(options: ConvertOptions, io: CheckIO): Promise<number> {
  const loader = new ManifestLoader(io.readStdin === undefined ? {} : { readStdin: io.readStdin });
  const given = await loader.load(options.paths);
  const existingObjects = await loader.load(options.existing);
  let release = options.metallbVersion;
  const sources = [...given];
  if (options.cluster !== undefined) {
    const cluster = await clusterObjects(options.cluster);
    sources.unshift(...cluster.pools);
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
  const { configMap, found } = legacySource(sources, options);
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
  if (options.output === undefined) io.stdout(yaml);
  else await writeFile(options.output, yaml);
  if (!options.check) return EXIT.ok;

  const services = given.filter((manifest) => asService(manifest) !== undefined);
  const compared = compareDecisions({
    configMap,
    // The converted side is read back from the YAML just written: what is checked is the output.
    converted: parseManifests(yaml, options.output ?? "<converted>"),
    existingObjects,
    services,
    release: release ?? LAST_LEGACY_RELEASE,
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
  const decide = (pools: readonly ManifestObject[], release: MetalLBVersion | undefined) => {
    const policy = policyFor({ release });
    // Notes about left-out sources cannot arise: each side gets only the sources its release reads.
    const poolSet = collectPools(pools, policy.reads, []);
    const decided = decideServices({
      poolSet,
      policy,
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
  options: ConvertOptions,
): { readonly configMap: ManifestObject; readonly found: LegacyConfigFound } {
  const configs = objects.flatMap((configMap) => {
    const found = legacyConfigFromDocument(configMap.object, configMap.location);
    return found === undefined ? [] : [{ configMap, found }];
  });
  const [first, second] = configs;
  if (first === undefined) {
    const where = options.paths.length > 0 ? options.paths.join(", ") : "the cluster";
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
