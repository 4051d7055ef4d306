// The state the webhook admits against: on a cluster, the watched Services, pools and claims
// (src/cluster/state.ts); standalone, the pools files and memory (./standalone.ts). Here too:
// the webhook's own namespace, and the MetalLB release guarded.

import { readFile } from "node:fs/promises";
import type { Logger } from "pino";
import type { AdmissionState } from "../admission/ports.ts";
import type { LoanDesk } from "../cluster/allocator/elected.ts";
import type { ElectedConfig } from "../cluster/state.ts";
import { policyFor } from "../ipam/decide.ts";
import { formatMetalLBVersion, type MetalLBVersion } from "../ipam/metallb-version.ts";
import { fail, ok, type Result } from "../ipam/result.ts";
import type { LoadedPools } from "../manifests/pool-files.ts";
import { ipTargetProblem, type ServeConfig } from "./config.ts";
import { StandaloneState } from "./standalone.ts";

/** How long a grant holds its address while the Service has not reached the watch cache. */
const HOLD_TTL_MS = 30_000;

/** What serve needs of a state: the admission port, and a stop; cluster state adds `failing`. */
export type ServeState = AdmissionState & {
  stop(): Promise<void>;
  /** With an elected allocator: what the peer port answers of loans (ADR 0015). */
  readonly loans?: LoanDesk;
  readonly failing?: readonly { readonly resource: string; readonly error: string }[];
};

/** Where the state's address claims are counted (the metrics). */
export interface ClaimCounts {
  claim(result: "claimed" | "existing" | "lost" | "error"): void;
  collected(count: number): void;
}

/**
 * The webhook's own namespace: on a cluster it holds the address claims (Leases), and with the
 * bootstrap the certificate Secret too, so it is required there, defaulting to the pod's own.
 */
export async function ownNamespace(config: ServeConfig): Promise<Result<string | undefined>> {
  if (config.standalone) return ok(config.namespace);
  const namespace = config.namespace ?? (await inClusterNamespace());
  if (namespace === undefined) {
    return fail(
      "on a cluster the webhook keeps its address claims (Leases) and its certificate Secret in its own namespace: give --namespace (in a pod, the service account's namespace is used)",
    );
  }
  return ok(namespace);
}

export interface StartedState {
  readonly state: ServeState;
  /** The MetalLB release guarded; undefined when unknown. */
  readonly release: MetalLBVersion | undefined;
}

/**
 * Finds the release guarded and starts the state. Refused with one line when --ip-target cannot
 * be served to the release found; throws when the cluster cannot be reached (a KubeConfigError
 * when there is no usable kubeconfig).
 */
export async function startServeState(
  config: ServeConfig,
  pools: LoadedPools | undefined,
  namespace: string | undefined,
  logger: Logger,
  counts: ClaimCounts,
  elected?: ElectedConfig,
): Promise<Result<StartedState>> {
  const release = await guardedRelease(config, logger);
  const problem = ipTargetProblem(config.ipTarget, release);
  if (problem !== undefined) return fail(problem);
  const policy = policyFor({
    loadBalancerClass: config.loadBalancerClass,
    release,
    allocation: config.allocation,
  });
  if (config.standalone) {
    if (pools === undefined) throw new Error("standalone mode without pools");
    const state = new StandaloneState(pools.poolSet, { policy, ipTarget: config.ipTarget });
    return ok({ state, release });
  }
  // Loaded only here: standalone mode never pays for the Kubernetes client.
  const { startClusterState } = await import("../cluster/state.ts");
  const state = await startClusterState({
    ...(config.kubeconfig !== undefined && { kubeconfig: config.kubeconfig }),
    metallbNamespace: config.metallbNamespace,
    staticPools: pools?.pools ?? [],
    policy,
    ipTarget: config.ipTarget,
    // With claims, an admission must complete within the grace period (its claim is collected
    // after it); a hold outliving it would keep the address from other requests here, and keep
    // collection from freeing it, past the grace period the operator chose.
    holdTtlMs: namespace === undefined ? HOLD_TTL_MS : Math.min(HOLD_TTL_MS, config.claimGraceMs),
    logger,
    ...(namespace !== undefined && {
      claims: {
        namespace,
        graceMs: config.claimGraceMs,
        intervalMs: config.claimIntervalMs,
        retainMs: config.retainMs,
        onClaim: (result) => counts.claim(result),
        onCollected: (count) => counts.collected(count),
        ...(elected !== undefined && { elected }),
      },
    }),
  });
  return ok({ state, release });
}

/**
 * The MetalLB release guarded: the one given, else on a cluster the one its controller
 * Deployment runs. Unknown (every key read, as the contract says) is logged with the reason.
 */
async function guardedRelease(
  config: ServeConfig,
  logger: Logger,
): Promise<MetalLBVersion | undefined> {
  if (config.metallbVersion !== "auto") return config.metallbVersion;
  if (config.standalone) return undefined;
  const { KubeClient, loadKubeConfig } = await import("../cluster/kube.ts");
  const { detectMetalLBRelease } = await import("../cluster/metallb-release.ts");
  const client = new KubeClient(loadKubeConfig(config.kubeconfig));
  const detected = await detectMetalLBRelease(client, config.metallbNamespace);
  if (detected.version === undefined) {
    logger.warn(
      `MetalLB release unknown (${detected.why}): every MetalLB Service key is read; give --metallb-version to read only what that release reads`,
    );
  } else {
    logger.info(`guarding MetalLB ${formatMetalLBVersion(detected.version)}: ${detected.from}`);
  }
  return detected.version;
}

/** The namespace of the pod's service account, when running in one. */
async function inClusterNamespace(): Promise<string | undefined> {
  try {
    const text = await readFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace", "utf8");
    return text.trim() === "" ? undefined : text.trim();
  } catch {
    return undefined;
  }
}
