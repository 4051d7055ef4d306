// `lb-ip-guard serve`: the admission webhook over HTTPS, with metrics on a plain-HTTP port.
// Flags are validated before anything starts (exit 2 with one line); each flag also reads an
// environment variable LB_IP_GUARD_<FLAG>, the flag winning when both are set. The server
// (src/server/run.ts) ends with an outcome, turned here into the exit status.

import { access, constants } from "node:fs/promises";
import { isIP } from "node:net";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import type { IPTarget } from "../admission/patch.ts";
import { isDnsLabel, isDnsSubdomain } from "../base/k8s-names.ts";
import { oneLine } from "../base/text.ts";
import { type MetalLBVersion, parseMetalLBVersion } from "../ipam/metallb-version.ts";
import { fail, ok, type Result } from "../ipam/result.ts";
import {
  ipTargetProblem,
  LOG_FORMATS,
  LOG_LEVELS,
  type LogFormat,
  type ServeConfig,
} from "../server/config.ts";
import type { ServeOutcome } from "../server/run.ts";

export const SERVE_SUMMARY = "run the admission webhook (HTTPS), on a cluster or --standalone";

export const SERVE_USAGE = `Usage: lb-ip-guard serve [options]

Runs the validating and mutating admission webhook for Services: POST /mutate and
POST /validate (admission.k8s.io/v1 AdmissionReview) over HTTPS, GET /healthz and
GET /readyz on the same port, Prometheus metrics at GET /metrics on a plain-HTTP port.

Options (each also an environment variable LB_IP_GUARD_<FLAG>, e.g. LB_IP_GUARD_METRICS_PORT;
a flag wins over its variable):
  --port N                    HTTPS port (default 8443; 0 picks a free one, logged)
  --metrics-port N            plain-HTTP metrics port (default 9090; 0 picks a free one)
  --host ADDRESS              address to listen on (default 0.0.0.0)
  --tls-cert FILE             serving certificate (PEM); reloaded when the file changes
  --tls-key FILE              its private key (PEM); give both or neither. Without them on a
                              cluster, the webhook makes its own CA and certificate (below)
  --pools FILE                pools file (MetalLB ConfigMap, IPAddressPool, address-pools;
                              YAML or JSON); repeatable, the variable is comma-separated
  --standalone                no cluster: pools from --pools, state in memory (an admitted
                              address is held until the process ends), and a generated
                              certificate unless --tls-cert/--tls-key are given
  --ca-out FILE               where the generated CA goes (default ./.lb-ip-guard/ca.crt)
  --kubeconfig FILE           kubeconfig (default: in-cluster, then $KUBECONFIG/~/.kube/config)
  --namespace NAME            the webhook's own namespace: its address claims (Leases) and
                              certificate Secret live there; required on a cluster (in a pod,
                              the service account's namespace is the default)
  --metallb-namespace NAME    where MetalLB's ConfigMap and IPAddressPools live (default
                              metallb-system)
  --load-balancer-class NAME  the loadBalancerClass MetalLB answers to (default: none, i.e.
                              Services without a class); Services of other classes are ignored
  --ip-target spec|annotation where an assigned address is written (default spec:
                              spec.loadBalancerIP; dual-stack always uses the annotation);
                              annotation needs a MetalLB that reads one (v0.12.1 and later)
  --metallb-version VERSION|auto
                              the MetalLB release guarded, e.g. v0.11.0 (default auto: read
                              from the image tag of MetalLB's controller Deployment in
                              --metallb-namespace at start; unknown in --standalone). Only
                              the Service keys that release reads are read; a MetalLB key it
                              ignores is refused (IgnoredAnnotation). Unknown: every key read
  --allocate all|annotated    which Services that request no address get one from lb-ip-guard:
                              all (default): every LoadBalancer Service and annotated ClusterIP
                              Service, so MetalLB only announces what was granted here;
                              annotated: only those with lb-ip-guard.dev/auto-assign, the rest
                              left to MetalLB, whose lowest-free pick then races with ours
  --shutdown-delay SECONDS    on SIGTERM, keep serving this long with /readyz failing, so the
                              endpoint is gone before the port closes (default 5; 0 with
                              --standalone)
  --log-level LEVEL           fatal, error, warn, info (default), debug, trace, silent
  --log-format json|pretty    JSON lines (default) or one readable line per record
  -h, --help                  this help

Certificate bootstrap (on a cluster, without --tls-cert/--tls-key): a CA and a serving
certificate are kept in a Secret of --namespace, created if absent (replicas share it), the
CA bundle is put into the caBundle of every webhook of the MutatingWebhookConfiguration and
ValidatingWebhookConfiguration named --webhook-name, and both rotate before they expire (a
new CA is trusted before it signs the certificate in use, which is swapped without restart).
  --service-name NAME         the webhook's Service: the certificate is for NAME.NAMESPACE.svc
                              (and .svc.cluster.local, NAME.NAMESPACE, NAME) (default lb-ip-guard)
  --tls-secret NAME           the Secret holding CA and certificate (default lb-ip-guard-tls)
  --webhook-name NAME         the two webhook configurations (default lb-ip-guard)
  --tls-san NAME|IP           an extra name or IP address in the certificate, e.g. 127.0.0.1
                              when the API server calls a url (tests); repeatable, the variable
                              is comma-separated; also added to the --standalone certificate
  --cert-validity DURATION    serving certificate validity (default 90d); it is replaced two
                              thirds through. DURATION: 90d, 12h, 30m, 45s, 1h30m, or seconds
  --ca-validity DURATION      CA validity (default 365d); replaced two thirds through as well
  --ca-trust-delay DURATION   how long a new CA must have been in every caBundle before the
                              certificate it signed is served (default 60s: the API server's
                              watch of webhook configurations must have seen it); less than a
                              third of --cert-validity

Address claims (on a cluster): every address an admission grants is first claimed with a
Lease named after it in --namespace (ip-192-168-35-100), created if absent, so replicas never
grant one address twice. A claim whose Service does not hold the address goes after a grace
period; Services holding addresses without a claim get one.
  --claim-grace DURATION      how long a claim may exist without its Service holding the
                              address (an admission later refused, a Service gone) (default 60s)
  --claim-interval DURATION   how often claims are collected and adopted (default 10s)

Example (no cluster needed):
  lb-ip-guard serve --standalone --pools examples/kubeflow-v0.11/metallb-config.yaml
  curl --cacert .lb-ip-guard/ca.crt -H 'Content-Type: application/json' \\
    --data @examples/admission-review.json https://127.0.0.1:8443/mutate

Exit status: 0 after a clean shutdown (SIGTERM, SIGINT), 1 when serving fails, 2 usage or
input error.
`;

export interface ServeIO {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

type FlagName =
  | "port"
  | "metrics-port"
  | "host"
  | "tls-cert"
  | "tls-key"
  | "pools"
  | "standalone"
  | "ca-out"
  | "kubeconfig"
  | "namespace"
  | "metallb-namespace"
  | "load-balancer-class"
  | "ip-target"
  | "metallb-version"
  | "allocate"
  | "log-level"
  | "log-format"
  | "shutdown-delay"
  | "service-name"
  | "tls-secret"
  | "webhook-name"
  | "tls-san"
  | "cert-validity"
  | "ca-validity"
  | "ca-trust-delay"
  | "claim-grace"
  | "claim-interval"
  | "help";

const FLAGS = {
  port: { type: "string" },
  "metrics-port": { type: "string" },
  host: { type: "string" },
  "tls-cert": { type: "string" },
  "tls-key": { type: "string" },
  pools: { type: "string", multiple: true },
  standalone: { type: "boolean" },
  "ca-out": { type: "string" },
  kubeconfig: { type: "string" },
  namespace: { type: "string" },
  "metallb-namespace": { type: "string" },
  "load-balancer-class": { type: "string" },
  "ip-target": { type: "string" },
  "metallb-version": { type: "string" },
  allocate: { type: "string" },
  "log-level": { type: "string" },
  "log-format": { type: "string" },
  "shutdown-delay": { type: "string" },
  "service-name": { type: "string" },
  "tls-secret": { type: "string" },
  "webhook-name": { type: "string" },
  "tls-san": { type: "string", multiple: true },
  "cert-validity": { type: "string" },
  "ca-validity": { type: "string" },
  "ca-trust-delay": { type: "string" },
  "claim-grace": { type: "string" },
  "claim-interval": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const satisfies Record<
  FlagName,
  { type: "string" | "boolean"; multiple?: boolean; short?: string }
>;

/** `metrics-port` → `LB_IP_GUARD_METRICS_PORT`. */
export function envName(flag: string): string {
  return `LB_IP_GUARD_${flag.toUpperCase().replaceAll("-", "_")}`;
}

const DURATION_UNITS_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** `90d`, `12h`, `1h30m`, `45s`, `1500ms`, or a number of seconds, in milliseconds. */
export function parseDuration(text: string): number | undefined {
  const trimmed = text.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Number(trimmed) * 1000;
  if (!/^(\d+(\.\d+)?(ms|s|m|h|d))+$/.test(trimmed)) return undefined;
  let total = 0;
  for (const [, amount, unit] of trimmed.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) {
    total += Number(amount) * (DURATION_UNITS_MS[unit ?? "s"] ?? 1000);
  }
  return total;
}

/** Flags and environment to a checked configuration (no file is read here but for existence). */
export async function parseServeArgs(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
): Promise<Result<ServeConfig | "help">> {
  let values: Record<string, string | boolean | string[] | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...args],
      options: FLAGS,
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    return fail(describeParseError(error));
  }
  if (values.help === true) return ok("help");

  const problems: string[] = [];
  const text = (flag: FlagName): string | undefined => {
    const given = values[flag];
    if (typeof given === "string") return given;
    const fromEnv = env[envName(flag)];
    return fromEnv === undefined || fromEnv === "" ? undefined : fromEnv;
  };
  const flagOrEnv = (flag: FlagName): string =>
    typeof values[flag] === "string" || Array.isArray(values[flag]) ? `--${flag}` : envName(flag);
  const port = (flag: FlagName, fallback: number): number => {
    const given = text(flag);
    if (given === undefined) return fallback;
    if (!/^\d{1,5}$/.test(given) || Number(given) > 65535) {
      problems.push(`${flagOrEnv(flag)} must be a port number from 0 to 65535, not "${given}"`);
      return fallback;
    }
    return Number(given);
  };
  const seconds = (flag: FlagName, fallback: number): number => {
    const given = text(flag);
    if (given === undefined) return fallback;
    if (!/^\d+(\.\d+)?$/.test(given) || Number(given) > 3600) {
      problems.push(
        `${flagOrEnv(flag)} must be a number of seconds from 0 to 3600, not "${given}"`,
      );
      return fallback;
    }
    return Number(given);
  };
  const oneOf = <T extends string>(flag: FlagName, allowed: readonly T[], fallback: T): T => {
    const given = text(flag);
    if (given === undefined) return fallback;
    if (!allowed.includes(given as T)) {
      problems.push(`${flagOrEnv(flag)} must be one of ${allowed.join(", ")}, not "${given}"`);
      return fallback;
    }
    return given as T;
  };
  const label = (flag: FlagName, fallback: string | undefined): string | undefined => {
    const given = text(flag);
    if (given === undefined) return fallback;
    if (!isDnsLabel(given)) {
      problems.push(`${flagOrEnv(flag)} must be a Kubernetes namespace name, not "${given}"`);
    }
    return given;
  };
  const name = (
    flag: FlagName,
    fallback: string,
    valid: (text: string) => boolean,
    what: string,
  ): string => {
    const given = text(flag);
    if (given === undefined) return fallback;
    if (!valid(given)) problems.push(`${flagOrEnv(flag)} must be ${what}, not "${given}"`);
    return given;
  };
  const duration = (flag: FlagName, fallback: number, minimumMs: number): number => {
    const given = text(flag);
    if (given === undefined) return fallback;
    const ms = parseDuration(given);
    if (ms === undefined || ms < minimumMs || ms > 100 * 365 * 86_400_000) {
      problems.push(
        `${flagOrEnv(flag)} must be a duration from ${minimumMs / 1000}s to 100 years (e.g. 90d, 12h, 30s), not "${given}"`,
      );
      return fallback;
    }
    return ms;
  };
  const metallbVersion = (): MetalLBVersion | "auto" => {
    const given = text("metallb-version");
    if (given === undefined || given === "auto") return "auto";
    const parsed = parseMetalLBVersion(given);
    if (parsed.ok) return parsed.value;
    problems.push(`${flagOrEnv("metallb-version")}: ${parsed.error}, or auto`);
    return "auto";
  };
  let standalone = false;
  if (values.standalone === true) standalone = true;
  else {
    const given = env[envName("standalone")];
    if (given !== undefined && given !== "") {
      if (/^(true|1|yes)$/i.test(given)) standalone = true;
      else if (!/^(false|0|no)$/i.test(given)) {
        problems.push(`${envName("standalone")} must be true or false, not "${given}"`);
      }
    }
  }
  const pools = Array.isArray(values.pools)
    ? values.pools
    : (env[envName("pools")] ?? "")
        .split(",")
        .map((file) => file.trim())
        .filter((file) => file !== "");

  const tlsSans = Array.isArray(values["tls-san"])
    ? values["tls-san"]
    : (env[envName("tls-san")] ?? "")
        .split(",")
        .map((san) => san.trim())
        .filter((san) => san !== "");

  const config: ServeConfig = {
    port: port("port", 8443),
    metricsPort: port("metrics-port", 9090),
    host: text("host") ?? "0.0.0.0",
    tlsCert: text("tls-cert"),
    tlsKey: text("tls-key"),
    caOut: resolve(text("ca-out") ?? ".lb-ip-guard/ca.crt"),
    pools,
    standalone,
    kubeconfig: text("kubeconfig"),
    namespace: label("namespace", undefined),
    metallbNamespace: label("metallb-namespace", "metallb-system") ?? "metallb-system",
    loadBalancerClass: text("load-balancer-class"),
    ipTarget: oneOf<IPTarget>("ip-target", ["spec", "annotation"], "spec"),
    metallbVersion: metallbVersion(),
    allocation: oneOf("allocate", ["all", "annotated"] as const, "all"),
    logLevel: oneOf("log-level", LOG_LEVELS, "info"),
    logFormat: oneOf<LogFormat>("log-format", LOG_FORMATS, "json"),
    shutdownDelaySeconds: seconds("shutdown-delay", standalone ? 0 : 5),
    serviceName: name("service-name", "lb-ip-guard", isDnsLabel, "a Service name"),
    tlsSecret: name("tls-secret", "lb-ip-guard-tls", isDnsSubdomain, "a Secret name"),
    webhookName: name(
      "webhook-name",
      "lb-ip-guard",
      isDnsSubdomain,
      "a webhook configuration name",
    ),
    tlsSans,
    certValidityMs: duration("cert-validity", 90 * 86_400_000, 3000),
    caValidityMs: duration("ca-validity", 365 * 86_400_000, 3000),
    caTrustDelayMs: duration("ca-trust-delay", 60_000, 0),
    claimGraceMs: duration("claim-grace", 60_000, 1000),
    claimIntervalMs: duration("claim-interval", 10_000, 100),
  };
  for (const san of config.tlsSans) {
    if (isIP(san) === 0 && !isDnsSubdomain(san.toLowerCase())) {
      problems.push(`--tls-san must be a DNS name or an IP address, not "${san}"`);
    }
  }
  if (config.caTrustDelayMs * 3 >= config.certValidityMs) {
    problems.push(
      `--ca-trust-delay (${config.caTrustDelayMs / 1000}s) must be under a third of --cert-validity (${config.certValidityMs / 1000}s): a certificate due for renewal could not wait for its new CA to be trusted`,
    );
  }
  if (config.certValidityMs > config.caValidityMs) {
    problems.push(
      `--cert-validity (${config.certValidityMs / 1000}s) must not exceed --ca-validity (${config.caValidityMs / 1000}s)`,
    );
  }
  if ((values.pools as string[] | undefined)?.some((file) => file === "")) {
    problems.push("--pools needs a file name");
  }
  if (config.port !== 0 && config.port === config.metricsPort) {
    problems.push(`--port and --metrics-port are both ${config.port}; they need two ports`);
  }
  if ((config.tlsCert === undefined) !== (config.tlsKey === undefined)) {
    problems.push(
      config.tlsCert === undefined
        ? "--tls-key is given without --tls-cert; give both or neither"
        : "--tls-cert is given without --tls-key; give both or neither",
    );
  }
  if (config.standalone && config.pools.length === 0) {
    problems.push(
      "--standalone needs at least one --pools FILE (there is no cluster to read pools from)",
    );
  }
  const problem = ipTargetProblem(config.ipTarget, config.metallbVersion);
  if (problem !== undefined) problems.push(problem);
  if (config.standalone && config.kubeconfig !== undefined) {
    problems.push("--kubeconfig and --standalone exclude each other: standalone reads no cluster");
  }
  const [first] = problems;
  if (first !== undefined) return fail(first);

  for (const [flag, file] of [
    ["tls-cert", config.tlsCert],
    ["tls-key", config.tlsKey],
    ["kubeconfig", config.kubeconfig],
    ...config.pools.map((pool) => ["pools", pool] as const),
  ] as const) {
    if (file === undefined) continue;
    try {
      await access(file, constants.R_OK);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const why =
        code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : String(code);
      return fail(`--${flag} ${file}: ${why}`);
    }
  }
  return ok(config);
}

export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

/** The exit status of an outcome. */
function exitStatus(outcome: ServeOutcome): number {
  switch (outcome.kind) {
    case "stopped":
      return outcome.clean ? EXIT.ok : EXIT.failed;
    case "usage":
      return EXIT.usage;
    case "failed":
      return EXIT.failed;
  }
}

/** Runs until SIGTERM/SIGINT; resolves to the exit status. */
export async function runServe(args: readonly string[], io: ServeIO): Promise<number> {
  const parsed = await parseServeArgs(args, process.env);
  if (!parsed.ok) return report({ kind: "usage", message: parsed.error }, io);
  if (parsed.value === "help") {
    io.stdout(SERVE_USAGE);
    return EXIT.ok;
  }
  // The server's modules (fastify, prom-client, the Kubernetes client) load only here, so that
  // `check` and `--help` start fast.
  const { serve } = await import("../server/run.ts");
  const outcome = await serve(parsed.value, {
    // A second signal during shutdown means "now": don't wait for the delay or slow clients.
    exitNow: (now) => process.exit(exitStatus(now)),
  });
  if (outcome.kind === "stopped") {
    // Anything left holding the event loop (a watch that ignores its stop) must not keep a
    // terminated pod alive: exit anyway after a grace period.
    const status = exitStatus(outcome);
    setTimeout(() => process.exit(status), 5000).unref();
  }
  return report(outcome, io);
}

/** Says on stderr, in one line, why serving did not start or failed; returns the status. */
function report(outcome: ServeOutcome, io: ServeIO): number {
  if (outcome.kind === "usage") {
    io.stderr(`lb-ip-guard serve: ${oneLine(outcome.message)} (try --help)\n`);
  } else if (outcome.kind === "failed") {
    io.stderr(`lb-ip-guard serve: ${oneLine(outcome.message)}\n`);
  }
  return exitStatus(outcome);
}

function describeParseError(error: unknown): string {
  const { code, message } = error as { code?: string; message: string };
  const option = /'(-[^' ]*)/.exec(message)?.[1];
  switch (code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
      return `unknown flag ${option ?? message}`;
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE":
      return option !== undefined && /argument missing/.test(message)
        ? `${option} needs a value`
        : oneLine(message);
    case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL":
      return `unexpected argument ${/'([^']*)'/.exec(message)?.[1] ?? message}; serve takes only flags`;
    default:
      return oneLine(message);
  }
}
