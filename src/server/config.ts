// What the server runs with: the checked configuration of `lb-ip-guard serve`. The command line
// makes it (src/cli/serve-flags.ts, from flags and environment variables); the server only reads
// it. The rules that hold whatever the source are here too.

import type { IPTarget } from "../admission/patch.ts";
import { formatMetalLBVersion, type MetalLBVersion, readsOf } from "../ipam/metallb-version.ts";

/** pino's levels. */
export const LOG_LEVELS: readonly string[] = [
  "fatal",
  "error",
  "warn",
  "info",
  "debug",
  "trace",
  "silent",
];

export const LOG_FORMATS = ["json", "pretty"] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export interface ServeConfig {
  readonly port: number;
  readonly metricsPort: number;
  readonly host: string;
  readonly tlsCert: string | undefined;
  readonly tlsKey: string | undefined;
  /** CA bundle (PEM) that a caller's client certificate must be signed by; none: no client auth. */
  readonly clientCa: string | undefined;
  readonly caOut: string;
  readonly pools: readonly string[];
  readonly standalone: boolean;
  readonly kubeconfig: string | undefined;
  readonly namespace: string | undefined;
  readonly metallbNamespace: string;
  readonly loadBalancerClass: string | undefined;
  readonly ipTarget: IPTarget;
  /** The release given, or "auto" (detected on a cluster, unknown in standalone mode). */
  readonly metallbVersion: MetalLBVersion | "auto";
  readonly allocation: "all" | "annotated";
  readonly logLevel: string;
  readonly logFormat: LogFormat;
  readonly shutdownDelaySeconds: number;
  /** Certificate bootstrap: the Service, Secret and webhook configurations by name. */
  readonly serviceName: string;
  readonly tlsSecret: string;
  readonly webhookName: string;
  /** Extra subjectAltNames of a generated certificate (DNS names or IP addresses). */
  readonly tlsSans: readonly string[];
  readonly certValidityMs: number;
  readonly caValidityMs: number;
  readonly caTrustDelayMs: number;
  readonly claimGraceMs: number;
  readonly claimIntervalMs: number;
  /** How long a released address stays retained for its Service (`--retain`; 0: off). */
  readonly retainMs: number;
  /** Who grants addresses on a cluster: one elected replica (ADR 0012) or each replica, claiming first (ADR 0005). */
  readonly allocator: AllocatorMode;
  /** The port the elected allocator takes forwarded grants on (mutual TLS, replicas only). */
  readonly peerPort: number;
  /** The address other replicas reach this one's peer port at; undefined: found at start. */
  readonly advertiseAddress: string | undefined;
}

export const ALLOCATOR_MODES = ["elected", "claims"] as const;
export type AllocatorMode = (typeof ALLOCATOR_MODES)[number];
/** Claims before the answer: a frozen or lost replica costs only its own reviews (ADR 0017). */
export const DEFAULT_ALLOCATOR: AllocatorMode = "claims";

/**
 * `--ip-target annotation` for a release that reads no address annotation, said in one line:
 * checked with the flags when the release is given, and again once `auto` found it.
 */
export function ipTargetProblem(
  target: IPTarget,
  version: MetalLBVersion | "auto" | undefined,
): string | undefined {
  if (target !== "annotation" || version === "auto" || version === undefined) return undefined;
  if (readsOf(version).loadBalancerIPs.length > 0) return undefined;
  return `--ip-target annotation: MetalLB ${formatMetalLBVersion(version)} reads no address annotation, only spec.loadBalancerIP; use --ip-target spec`;
}

/** `--host 0.0.0.0` or `::`: every address of this host, none in particular. */
export function listensOnEveryAddress(host: string): boolean {
  return host === "0.0.0.0" || host === "::";
}

/** `host:port`, with an IPv6 host in brackets, as a URL or an endpoint writes it. */
export function hostPort(host: string, port: number): string {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}
