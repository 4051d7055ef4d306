// The flags of `lb-ip-guard serve`, as one table: each row names the flag (its environment
// variable LB_IP_GUARD_<FLAG> is derived from the name), how its text is read and checked, its
// default, the ServeConfig field it fills and its lines in --help. src/cli/serve-args.ts reads
// every row the same way; src/cli/serve.ts prints the help lines.

import { isIP } from "node:net";
import { resolve } from "node:path";
import { isDnsLabel, isDnsSubdomain } from "../base/k8s-names.ts";
import { parseMetalLBVersion } from "../ipam/metallb-version.ts";
import { fail, ok, type Result } from "../ipam/result.ts";
import {
  ALLOCATOR_MODES,
  DEFAULT_ALLOCATOR,
  LOG_FORMATS,
  LOG_LEVELS,
  type LogFormat,
  type ServeConfig,
} from "../server/config.ts";

/** `metrics-port` → `LB_IP_GUARD_METRICS_PORT`. */
export function envName(flag: string): string {
  return `LB_IP_GUARD_${flag.toUpperCase().replaceAll("-", "_")}`;
}

/** A flag's text to its value; a refusal names `source` (`--flag` or the variable). */
type Reader<T> = (text: string, source: string) => Result<T>;

/** Where a flag is listed in --help. */
export type HelpSection = "options" | "certificates" | "claims";

interface Row<K extends keyof ServeConfig> {
  readonly name: string;
  readonly key: K;
  /**
   * `value` (the default): one text, read by `read` (any text by default); `list`: repeatable,
   * the variable comma-separated, each item checked by `item` (its refusal names the flag);
   * `switch`: present or not, the variable true or false.
   */
  readonly kind?: "value" | "list" | "switch";
  readonly read?: Reader<ServeConfig[K]>;
  readonly item?: (item: string) => string | undefined;
  /**
   * A value's default (undefined when absent): a function of the fields read before it when it
   * depends on them. A list defaults to none, a switch to off.
   */
  readonly default?: ServeConfig[K] | ((read: Partial<ServeConfig>) => ServeConfig[K]);
  /** A file that must be readable before anything starts. */
  readonly file?: boolean;
  /** The value's placeholder in --help (`--port N`). */
  readonly arg?: string;
  readonly help: readonly string[];
}

/** A row of the table with its --help section, its types erased: rows of every field's type. */
export type ServeFlag = Row<keyof ServeConfig> & { readonly section: HelpSection };
const row = <K extends keyof ServeConfig>(spec: Row<K>): Row<keyof ServeConfig> =>
  spec as unknown as Row<keyof ServeConfig>;
const section = (name: HelpSection, rows: readonly Row<keyof ServeConfig>[]): ServeFlag[] =>
  rows.map((flag) => ({ ...flag, section: name }));

/** A reader that accepts what `parse` turns into a value, refusing the rest as "not `what`". */
function checked<T>(what: string, parse: (text: string) => T | undefined): Reader<T> {
  return (text, source) => {
    const value = parse(text);
    return value === undefined ? fail(`${source} must be ${what}, not "${text}"`) : ok(value);
  };
}

export const anyText: Reader<string> = (text) => ok(text);
const port = checked("a port number from 0 to 65535", (text) =>
  /^\d{1,5}$/.test(text) && Number(text) <= 65535 ? Number(text) : undefined,
);
const oneOf = <T extends string>(allowed: readonly T[]): Reader<T> =>
  checked(`one of ${allowed.join(", ")}`, (text) =>
    allowed.includes(text as T) ? (text as T) : undefined,
  );
const kubernetesName = (what: string, valid: (text: string) => boolean): Reader<string> =>
  checked(what, (text) => (valid(text) ? text : undefined));
const duration = (minimumMs: number): Reader<number> =>
  checked(`a duration from ${minimumMs / 1000}s to 100 years (e.g. 90d, 12h, 30s)`, (text) => {
    const ms = parseDuration(text);
    return ms === undefined || ms < minimumMs || ms > 100 * 365 * 86_400_000 ? undefined : ms;
  });
const metallbVersion: Reader<ServeConfig["metallbVersion"]> = (text, source) => {
  if (text === "auto") return ok("auto");
  const parsed = parseMetalLBVersion(text);
  return parsed.ok ? parsed : fail(`${source}: ${parsed.error}, or auto`);
};

export const SERVE_FLAGS: readonly ServeFlag[] = [
  ...section("options", [
    row({
      name: "port",
      key: "port",
      read: port,
      default: 8443,
      arg: "N",
      help: ["HTTPS port (default 8443; 0 picks a free one, logged)"],
    }),
    row({
      name: "metrics-port",
      key: "metricsPort",
      read: port,
      default: 9090,
      arg: "N",
      help: ["plain-HTTP metrics port (default 9090; 0 picks a free one)"],
    }),
    row({
      name: "host",
      key: "host",
      default: "0.0.0.0",
      arg: "ADDRESS",
      help: ["address to listen on (default 0.0.0.0)"],
    }),
    row({
      name: "tls-cert",
      key: "tlsCert",
      file: true,
      arg: "FILE",
      help: ["serving certificate (PEM); reloaded when the file changes"],
    }),
    row({
      name: "tls-key",
      key: "tlsKey",
      file: true,
      arg: "FILE",
      help: [
        "its private key (PEM); give both or neither. Without them on a",
        "cluster, the webhook makes its own CA and certificate (below)",
      ],
    }),
    row({
      name: "client-ca",
      key: "clientCa",
      file: true,
      arg: "FILE",
      help: [
        "CA bundle (PEM): callers must present a client certificate it",
        "signed, or the TLS handshake fails (API servers do, given a",
        "kubeconfig for the webhook in their AdmissionConfiguration).",
        "/healthz and /readyz are on the metrics port too, for probes",
      ],
    }),
    row({
      name: "pools",
      key: "pools",
      kind: "list",
      item: (file) => (file === "" ? "--pools needs a file name" : undefined),
      file: true,
      arg: "FILE",
      help: [
        "pools file (MetalLB ConfigMap, IPAddressPool, address-pools;",
        "YAML or JSON); repeatable, the variable is comma-separated",
      ],
    }),
    row({
      name: "standalone",
      key: "standalone",
      kind: "switch",
      help: [
        "no cluster: pools from --pools, state in memory (an admitted",
        "address is held until the process ends), and a generated",
        "certificate unless --tls-cert/--tls-key are given",
      ],
    }),
    row({
      name: "ca-out",
      key: "caOut",
      read: (text) => ok(resolve(text)),
      default: () => resolve(".lb-ip-guard/ca.crt"),
      arg: "FILE",
      help: ["where the generated CA goes (default ./.lb-ip-guard/ca.crt)"],
    }),
    row({
      name: "kubeconfig",
      key: "kubeconfig",
      file: true,
      arg: "FILE",
      help: ["kubeconfig (default: in-cluster, then $KUBECONFIG/~/.kube/config)"],
    }),
    row({
      name: "namespace",
      key: "namespace",
      read: kubernetesName("a Kubernetes namespace name", isDnsLabel),
      arg: "NAME",
      help: [
        "the webhook's own namespace: its address claims (Leases) and",
        "certificate Secret live there; required on a cluster (in a pod,",
        "the service account's namespace is the default)",
      ],
    }),
    row({
      name: "metallb-namespace",
      key: "metallbNamespace",
      read: kubernetesName("a Kubernetes namespace name", isDnsLabel),
      default: "metallb-system",
      arg: "NAME",
      help: ["where MetalLB's ConfigMap and IPAddressPools live (default", "metallb-system)"],
    }),
    row({
      name: "load-balancer-class",
      key: "loadBalancerClass",
      arg: "NAME",
      help: [
        "the loadBalancerClass MetalLB answers to (default: none, i.e.",
        "Services without a class); Services of other classes are ignored",
      ],
    }),
    row({
      name: "ip-target",
      key: "ipTarget",
      read: oneOf(["spec", "annotation"] as const),
      default: "spec",
      arg: "spec|annotation",
      help: [
        "where an assigned address is written (default spec:",
        "spec.loadBalancerIP; dual-stack always uses the annotation);",
        "annotation needs a MetalLB that reads one (v0.12.1 and later)",
      ],
    }),
    row({
      name: "metallb-version",
      key: "metallbVersion",
      read: metallbVersion,
      default: "auto",
      arg: "VERSION|auto",
      help: [
        "the MetalLB release guarded, e.g. v0.11.0 (default auto: read",
        "from the image tag of MetalLB's controller Deployment in",
        "--metallb-namespace at start; unknown in --standalone). Only",
        "the Service keys that release reads are read; a MetalLB key it",
        "ignores is refused (IgnoredAnnotation). Unknown: every key read",
      ],
    }),
    row({
      name: "allocate",
      key: "allocation",
      read: oneOf(["all", "annotated"] as const),
      default: "all",
      arg: "all|annotated",
      help: [
        "which Services that request no address get one from lb-ip-guard:",
        "all (default): every LoadBalancer Service and annotated ClusterIP",
        "Service, so MetalLB only announces what was granted here;",
        "annotated: only those with lb-ip-guard.dev/auto-assign, the rest",
        "left to MetalLB, whose lowest-free pick then races with ours",
      ],
    }),
    row({
      name: "shutdown-delay",
      key: "shutdownDelaySeconds",
      read: checked("a number of seconds from 0 to 3600", (text) =>
        /^\d+(\.\d+)?$/.test(text) && Number(text) <= 3600 ? Number(text) : undefined,
      ),
      default: (read) => (read.standalone ? 0 : 5),
      arg: "SECONDS",
      help: [
        "on SIGTERM, keep serving this long with /readyz failing, so the",
        "endpoint is gone before the port closes (default 5; 0 with",
        "--standalone)",
      ],
    }),
    row({
      name: "log-level",
      key: "logLevel",
      read: oneOf(LOG_LEVELS),
      default: "info",
      arg: "LEVEL",
      help: ["fatal, error, warn, info (default), debug, trace, silent"],
    }),
    row({
      name: "log-format",
      key: "logFormat",
      read: oneOf<LogFormat>(LOG_FORMATS),
      default: "json",
      arg: "json|pretty",
      help: ["JSON lines (default) or one readable line per record"],
    }),
  ]),
  ...section("certificates", [
    row({
      name: "service-name",
      key: "serviceName",
      read: kubernetesName("a Service name", isDnsLabel),
      default: "lb-ip-guard",
      arg: "NAME",
      help: [
        "the webhook's Service: the certificate is for NAME.NAMESPACE.svc",
        "(and .svc.cluster.local, NAME.NAMESPACE, NAME) (default lb-ip-guard)",
      ],
    }),
    row({
      name: "tls-secret",
      key: "tlsSecret",
      read: kubernetesName("a Secret name", isDnsSubdomain),
      default: "lb-ip-guard-tls",
      arg: "NAME",
      help: ["the Secret holding CA and certificate (default lb-ip-guard-tls)"],
    }),
    row({
      name: "webhook-name",
      key: "webhookName",
      read: kubernetesName("a webhook configuration name", isDnsSubdomain),
      default: "lb-ip-guard",
      arg: "NAME",
      help: ["the two webhook configurations (default lb-ip-guard)"],
    }),
    row({
      name: "tls-san",
      key: "tlsSans",
      kind: "list",
      item: (san) =>
        isIP(san) === 0 && !isDnsSubdomain(san.toLowerCase())
          ? `--tls-san must be a DNS name or an IP address, not "${san}"`
          : undefined,
      arg: "NAME|IP",
      help: [
        "an extra name or IP address in the certificate, e.g. 127.0.0.1",
        "when the API server calls a url (tests); repeatable, the variable",
        "is comma-separated; also added to the --standalone certificate",
      ],
    }),
    row({
      name: "cert-validity",
      key: "certValidityMs",
      read: duration(3000),
      default: 90 * 86_400_000,
      arg: "DURATION",
      help: [
        "serving certificate validity (default 90d); it is replaced two",
        "thirds through. DURATION: 90d, 12h, 30m, 45s, 1h30m, or seconds",
      ],
    }),
    row({
      name: "ca-validity",
      key: "caValidityMs",
      read: duration(3000),
      default: 365 * 86_400_000,
      arg: "DURATION",
      help: ["CA validity (default 365d); replaced two thirds through as well"],
    }),
    row({
      name: "ca-trust-delay",
      key: "caTrustDelayMs",
      read: duration(0),
      default: 60_000,
      arg: "DURATION",
      help: [
        "how long a new CA must have been in every caBundle before the",
        "certificate it signed is served (default 60s: the API server's",
        "watch of webhook configurations must have seen it); less than a",
        "third of --cert-validity",
      ],
    }),
  ]),
  ...section("claims", [
    row({
      name: "allocator",
      key: "allocator",
      read: oneOf(ALLOCATOR_MODES),
      default: DEFAULT_ALLOCATOR,
      arg: "MODE",
      help: [
        "who grants addresses when several replicas run: claims (every",
        "replica grants, claiming each address in etcd before it answers,",
        "so a frozen or lost replica costs only the reviews sent to it) or",
        "elected (one replica, elected by a Lease, grants and the others",
        "forward to it: no etcd write before an answer, but no grant while",
        "the allocator is away) (default claims)",
      ],
    }),
    row({
      name: "peer-port",
      key: "peerPort",
      read: port,
      default: 8444,
      arg: "N",
      help: [
        "port of the elected allocator for grants forwarded by the other",
        "replicas (mutual TLS with the serving certificate) (default 8444)",
      ],
    }),
    row({
      name: "advertise-address",
      key: "advertiseAddress",
      read: checked("an IP address", (text) => (isIP(text) === 0 ? undefined : text)),
      arg: "IP",
      help: [
        "the address other replicas reach this one's peer port at (in a",
        "pod: status.podIP; default: --host when it names one address,",
        "else this host's first non-loopback address)",
      ],
    }),
    row({
      name: "claim-grace",
      key: "claimGraceMs",
      read: duration(1000),
      default: 60_000,
      arg: "DURATION",
      help: [
        "how long a claim may exist without its Service holding the",
        "address (an admission later refused, a Service gone) (default 60s)",
      ],
    }),
    row({
      name: "claim-interval",
      key: "claimIntervalMs",
      read: duration(100),
      default: 10_000,
      arg: "DURATION",
      help: ["how often claims are collected and adopted (default 10s)"],
    }),
    row({
      name: "retain",
      key: "retainMs",
      read: duration(0),
      default: 86_400_000,
      arg: "DURATION",
      help: [
        "how long a released address stays retained for the Service that",
        "gave it up, kept in its claim (default 24h; 0: off)",
      ],
    }),
  ]),
];

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
