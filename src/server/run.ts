// Running `lb-ip-guard serve` once its flags are checked: pools, certificate, state (cluster or
// standalone), the HTTPS app and the metrics server; then waiting for SIGTERM/SIGINT and shutting
// down in order (stop accepting and finish in-flight reviews, stop the watches, close metrics).

import { readFile } from "node:fs/promises";
import { isIP } from "node:net";
import type { Logger } from "pino";
import type { AdmissionState } from "../admission/ports.ts";
import { oneLine } from "../base/text.ts";
import { certificateProblem } from "../certs/inspect.ts";
import { type Certificate, generateCertificate } from "../certs/issue.ts";
import { EXIT, ipTargetProblem, type ServeConfig, type ServeIO, usageError } from "../cli/serve.ts";
import { type Policy, policyFor } from "../ipam/decide.ts";
import { formatMetalLBVersion, type MetalLBVersion } from "../ipam/metallb-version.ts";
import { describePool, type Pool } from "../ipam/pool.ts";
import { loadPoolFiles } from "../manifests/pool-files.ts";
import { buildApp } from "./app.ts";
import { createLogger } from "./log.ts";
import { closeServer, createMetricsServer, listen, Metrics } from "./metrics.ts";
import { StandaloneState } from "./standalone.ts";
import { CertificateWatcher, readCertificate, secureContextOptions, writePem } from "./tls.ts";

/** How long a grant holds its address while the Service has not reached the informer cache. */
const HOLD_TTL_MS = 30_000;

/** What serve needs of a state: the admission port, and a stop; cluster state adds `failing`. */
type ServeState = AdmissionState & {
  stop(): Promise<void>;
  readonly failing?: readonly { readonly resource: string; readonly error: string }[];
};

/** Serves until SIGTERM/SIGINT; resolves to the exit status. */
export async function serve(config: ServeConfig, io: ServeIO): Promise<number> {
  let staticPools: readonly Pool[] = [];
  let poolSet: Awaited<ReturnType<typeof loadPoolFiles>> | undefined;
  if (config.pools.length > 0) {
    poolSet = await loadPoolFiles(config.pools, config.metallbNamespace);
    if (!poolSet.ok) return usageError(io, poolSet.error);
    staticPools = poolSet.value.pools;
  }

  // Three ways to a certificate: mounted files (--tls-cert/--tls-key, reloaded on change); on a
  // cluster without them, the bootstrap (a CA and certificate in a Secret, injected into the
  // webhook configurations, rotated: src/cluster/certificates/), which serves a throwaway
  // certificate until the Secret's is loaded (/readyz fails meanwhile); standalone, a
  // generated one whose CA goes to --ca-out.
  const mounted = config.tlsCert !== undefined && config.tlsKey !== undefined;
  const bootstrap = !mounted && !config.standalone;
  let certificate: Certificate;
  let generatedCa: string | undefined;
  // On a cluster the namespace holds the address claims (Leases), and with the bootstrap the
  // certificate Secret too: required, defaulting to the pod's own.
  const namespace = config.standalone
    ? config.namespace
    : (config.namespace ?? (await inClusterNamespace()));
  if (!config.standalone && namespace === undefined) {
    return usageError(
      io,
      "on a cluster the webhook keeps its address claims (Leases) and its certificate Secret in its own namespace: give --namespace (in a pod, the service account's namespace is used)",
    );
  }
  if (config.tlsCert !== undefined && config.tlsKey !== undefined) {
    try {
      certificate = await readCertificate(config.tlsCert, config.tlsKey);
    } catch (error) {
      return usageError(io, (error as Error).message);
    }
  } else {
    const generated = await generateCertificate({
      dns: ["localhost", ...config.tlsSans.filter((san) => isIP(san) === 0)],
      ips: [...new Set(["127.0.0.1", "::1", ...config.tlsSans.filter((san) => isIP(san) !== 0)])],
    });
    certificate = generated;
    if (!bootstrap) generatedCa = generated.ca;
  }

  const logger = createLogger({ level: config.logLevel, format: config.logFormat });
  let caFile: string | undefined;
  if (generatedCa !== undefined) {
    try {
      await writePem(config.caOut, generatedCa);
      caFile = config.caOut;
    } catch (error) {
      const message = `cannot write the generated CA to ${config.caOut}: ${(error as Error).message}; choose another path with --ca-out`;
      if (config.standalone) return usageError(io, message);
      logger.warn(message);
    }
  }

  let state: ServeState;
  let release: MetalLBVersion | undefined;
  try {
    release = await guardedRelease(config, logger);
    const problem = ipTargetProblem(config.ipTarget, release);
    if (problem !== undefined) return usageError(io, problem);
    const policy = policyFor({
      loadBalancerClass: config.loadBalancerClass,
      release,
      allocation: config.allocation,
    });
    state = await startState(config, policy, staticPools, poolSet, logger, {
      namespace,
      // Called on admissions and collections only, once `metrics` below exists.
      onClaim: (result) => metrics.claim(result),
      onCollected: (count) => metrics.collected(count),
    });
  } catch (error) {
    // No usable kubeconfig is a usage error like a missing file; anything else is a failure.
    if ((error as Error).name === "KubeConfigError")
      return usageError(io, (error as Error).message);
    logger.fatal({ err: error }, "cannot start cluster state");
    io.stderr(
      `lb-ip-guard serve: cannot start cluster state: ${oneLine((error as Error).message)}\n`,
    );
    return EXIT.failed;
  }

  let served = certificate;
  let stopping = false;
  let certificates: import("../cluster/certificates/manager.ts").CertificateManager | undefined;
  const metrics = new Metrics({
    view: () => {
      const context = state.context();
      return context.ready ? context.view : undefined;
    },
    failing: () => state.failing ?? [],
    servingCertificate: () => served.cert,
  });
  const app = buildApp({
    state,
    logger,
    metrics,
    https: secureContextOptions(certificate),
    tlsProblem: () => certificates?.problem ?? certificateProblem(served),
    stopping: () => stopping,
    degraded: () =>
      (state.failing ?? []).map(({ resource, error }) => `${resource} watch failing: ${error}`),
  });
  const metricsServer = createMetricsServer(metrics);
  let port: number;
  let metricsPort: number;
  try {
    await app.listen({ port: config.port, host: config.host });
    port = boundPort(app.server.address()) ?? config.port;
    metricsPort = await listen(metricsServer, config.metricsPort, config.host);
  } catch (error) {
    logger.fatal({ err: error }, "cannot listen");
    io.stderr(`lb-ip-guard serve: cannot listen: ${oneLine((error as Error).message)}\n`);
    await app.close().catch(() => {});
    await state.stop().catch(() => {});
    return EXIT.failed;
  }

  let watcher: CertificateWatcher | undefined;
  if (config.tlsCert !== undefined && config.tlsKey !== undefined) {
    watcher = new CertificateWatcher({
      certFile: config.tlsCert,
      keyFile: config.tlsKey,
      current: certificate,
      onChange: (next) => {
        app.server.setSecureContext(secureContextOptions(next));
        served = next;
        logger.info({ cert: config.tlsCert }, "serving certificate reloaded");
      },
      onError: (message) => logger.error(message),
    });
    watcher.start();
  } else if (bootstrap && namespace !== undefined) {
    certificates = await startCertificates(config, namespace, logger, (next) => {
      app.server.setSecureContext(secureContextOptions(next));
      served = next;
    });
  }

  const host = config.host === "0.0.0.0" || config.host === "::" ? "127.0.0.1" : config.host;
  const url = `https://${host.includes(":") ? `[${host}]` : host}:${port}`;
  const pools = poolSet?.ok ? poolSet.value.poolSet.pools.map(describePool) : [];
  logger.info(
    {
      url,
      port,
      metricsUrl: `http://${host.includes(":") ? `[${host}]` : host}:${metricsPort}/metrics`,
      metricsPort,
      mode: config.standalone ? "standalone" : "cluster",
      caFile,
      certificate: mounted
        ? "mounted"
        : bootstrap
          ? `bootstrap (Secret ${namespace}/${config.tlsSecret})`
          : "generated",
      pools,
      ipTarget: config.ipTarget,
      loadBalancerClass: config.loadBalancerClass ?? null,
      metallbVersion: release === undefined ? null : formatMetalLBVersion(release),
      allocate: config.allocation,
    },
    `lb-ip-guard serving ${url}/mutate and ${url}/validate${caFile === undefined ? "" : `; CA: ${caFile} (curl --cacert ${caFile})`}${pools.length > 0 ? `; pools: ${pools.join("; ")}` : ""}`,
  );

  const signal = await new Promise<NodeJS.Signals>((resolveSignal) => {
    process.once("SIGTERM", () => resolveSignal("SIGTERM"));
    process.once("SIGINT", () => resolveSignal("SIGINT"));
  });
  // A second signal means "now": don't wait for the delay or slow clients.
  const force = () => process.exit(EXIT.failed);
  process.once("SIGTERM", force);
  process.once("SIGINT", force);
  stopping = true;
  if (config.shutdownDelaySeconds > 0) {
    // The apiserver keeps calling this pod until the endpoint removal reaches it; with a
    // fail-closed validating webhook a closed port meanwhile would refuse Service writes.
    logger.info(
      { signal, delaySeconds: config.shutdownDelaySeconds },
      "shutting down: /readyz fails now; still serving until the delay ends",
    );
    await new Promise((resolveDelay) =>
      setTimeout(resolveDelay, config.shutdownDelaySeconds * 1000),
    );
  }
  logger.info({ signal }, "shutting down: finishing in-flight requests");
  watcher?.stop();
  await certificates?.stop().catch(() => {});
  let code: number = EXIT.ok;
  for (const [what, step] of [
    ["webhook server", () => app.close()],
    ["state", () => state.stop()],
    ["metrics server", () => closeServer(metricsServer)],
  ] as const) {
    try {
      await step();
    } catch (error) {
      code = EXIT.failed;
      logger.error({ err: error }, `shutdown: closing the ${what} failed`);
    }
  }
  logger.info("stopped");
  logger.flush();
  // Anything left holding the event loop (a watch that ignores its stop) must not keep a
  // terminated pod alive: exit anyway after a grace period.
  setTimeout(() => process.exit(code), 5000).unref();
  return code;
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

async function startState(
  config: ServeConfig,
  policy: Policy,
  staticPools: readonly Pool[],
  loaded: Awaited<ReturnType<typeof loadPoolFiles>> | undefined,
  logger: Logger,
  claims: {
    readonly namespace: string | undefined;
    readonly onClaim: (result: "claimed" | "existing" | "lost" | "error") => void;
    readonly onCollected: (count: number) => void;
  },
): Promise<ServeState> {
  if (config.standalone) {
    if (loaded === undefined || !loaded.ok) throw new Error("standalone mode without pools");
    return new StandaloneState(loaded.value.poolSet, { policy, ipTarget: config.ipTarget });
  }
  // Loaded only here: standalone mode never pays for the Kubernetes client.
  const { startClusterState } = await import("../cluster/state.ts");
  return startClusterState({
    ...(config.kubeconfig !== undefined && { kubeconfig: config.kubeconfig }),
    metallbNamespace: config.metallbNamespace,
    staticPools,
    policy,
    ipTarget: config.ipTarget,
    // With claims, an admission must complete within the grace period (its claim is collected
    // after it); a hold outliving it would keep the address from other requests here, and keep
    // collection from freeing it, past the grace period the operator chose.
    holdTtlMs:
      claims.namespace === undefined ? HOLD_TTL_MS : Math.min(HOLD_TTL_MS, config.claimGraceMs),
    logger,
    ...(claims.namespace !== undefined && {
      claims: {
        namespace: claims.namespace,
        graceMs: config.claimGraceMs,
        intervalMs: config.claimIntervalMs,
        onClaim: claims.onClaim,
        onCollected: claims.onCollected,
      },
    }),
  });
}

/** Starts the certificate bootstrap (its modules load only here, as the cluster state's do). */
async function startCertificates(
  config: ServeConfig,
  namespace: string,
  logger: Logger,
  onServe: (certificate: Certificate) => void,
) {
  const [{ CertificateManager }, { servingNames }, { KubeClient, loadKubeConfig }] =
    await Promise.all([
      import("../cluster/certificates/manager.ts"),
      import("../certs/names.ts"),
      import("../cluster/kube.ts"),
    ]);
  const manager = new CertificateManager({
    client: new KubeClient(loadKubeConfig(config.kubeconfig)),
    namespace,
    secretName: config.tlsSecret,
    webhookName: config.webhookName,
    settings: {
      certValidityMs: config.certValidityMs,
      caValidityMs: config.caValidityMs,
      trustDelayMs: config.caTrustDelayMs,
      names: servingNames(config.serviceName, namespace, config.tlsSans),
    },
    onServe,
    logger,
  });
  manager.start();
  return manager;
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

function boundPort(address: ReturnType<import("node:net").Server["address"]>): number | undefined {
  return typeof address === "object" && address !== null ? address.port : undefined;
}
