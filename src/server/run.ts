// Running the webhook server once `lb-ip-guard serve` has checked its flags, one step after the
// other: the pools files, the certificate (./certificate-source.ts), the state, cluster or
// standalone (./serve-state.ts), the metrics, the HTTPS app and the metrics server; then waiting
// for SIGTERM/SIGINT and shutting down in order. It ends with an outcome, which the command
// (src/cli/serve.ts) turns into an exit status.

import { randomBytes } from "node:crypto";
import type { Server } from "node:http";
import { hostname } from "node:os";
import type { Logger } from "pino";
import { errorLine } from "../base/text.ts";
import type { Certificate } from "../certs/issue.ts";
import { formatMetalLBVersion, type MetalLBVersion } from "../ipam/metallb-version.ts";
import { describePool } from "../ipam/pool.ts";
import { ok } from "../ipam/result.ts";
import { type LoadedPools, loadPoolFiles } from "../manifests/pool-files.ts";
import { buildApp, type WebhookApp } from "./app.ts";
import {
  type CertificateSourceKind,
  type CertificateUpkeep,
  certificateSourceOf,
  firstCertificate,
  keepCertificateCurrent,
  servingProblem,
  writeGeneratedCa,
} from "./certificate-source.ts";
import { hostPort, listensOnEveryAddress, type ServeConfig } from "./config.ts";
import { createLogger } from "./log.ts";
import { closeServer, createMetricsServer, listen, Metrics } from "./metrics.ts";
import { advertisedHost, openPeerChannel, type PeerChannel } from "./peer.ts";
import { HEALTHY, type ProbeSources, readiness } from "./probes.ts";
import { ownNamespace, type ServeState, startServeState } from "./serve-state.ts";
import { clientAuthOptions, readClientCa, secureContextOptions } from "./tls.ts";

/** How serving ended. */
export type ServeOutcome =
  /** After SIGTERM/SIGINT; not clean when a step of the shutdown failed (that is logged). */
  | { readonly kind: "stopped"; readonly clean: boolean }
  /** Input found wrong only at start: a pools file, the certificate, the namespace. */
  | { readonly kind: "usage"; readonly message: string }
  /** The server could not start: the cluster state, a port. */
  | { readonly kind: "failed"; readonly message: string };

export interface ServeHooks {
  /** Ends the process at once with the outcome's status: a second signal during shutdown. */
  readonly exitNow: (outcome: ServeOutcome) => void;
  /** Called once, when the state first turns ready (its caches filled; at once standalone). */
  readonly ready?: () => void;
}

/** How often a state not ready yet is asked again, for the `ready` hook. */
const READY_POLL_MS = 200;

/** What changes while serving, read by the metrics and /readyz. */
interface Live {
  state: ServeState | undefined;
  served: Certificate;
  upkeep: CertificateUpkeep | undefined;
  stopping: boolean;
}

const usage = (message: string): ServeOutcome => ({ kind: "usage", message });

/** Serves until SIGTERM/SIGINT. */
export async function serve(config: ServeConfig, hooks: ServeHooks): Promise<ServeOutcome> {
  const pools =
    config.pools.length > 0
      ? await loadPoolFiles(config.pools, config.metallbNamespace)
      : ok(undefined);
  if (!pools.ok) return usage(pools.error);
  const namespace = await ownNamespace(config);
  if (!namespace.ok) return usage(namespace.error);
  const first = await firstCertificate(config);
  if (!first.ok) return usage(first.error);
  const logger = createLogger({ level: config.logLevel, format: config.logFormat });
  const caFile = await writeGeneratedCa(config, first.value.ca);
  if (!caFile.ok) return usage(caFile.error);
  let clientCa: string | undefined;
  try {
    clientCa = config.clientCa === undefined ? undefined : await readClientCa(config.clientCa);
  } catch (error) {
    return usage(errorLine(error));
  }

  const live: Live = {
    state: undefined,
    served: first.value.certificate,
    upkeep: undefined,
    stopping: false,
  };
  // The state counts its claims in the metrics; the metrics read the state once it is there.
  const metrics = new Metrics({
    view: () => {
      const context = live.state?.context();
      return context?.ready ? context.view : undefined;
    },
    failing: () => live.state?.failing ?? [],
    servingCertificate: () => live.served.cert,
    allocating: () => live.state?.allocator?.allocating(),
  });

  // The elected allocator's channel comes first: the Lease names its port.
  let peer: PeerChannel | undefined;
  const identity = `${hostname()}_${randomBytes(4).toString("hex")}`;
  if (!config.standalone && config.allocator === "elected") {
    try {
      peer = await openPeerChannel({
        host: config.host,
        port: config.peerPort,
        certificate: first.value.certificate,
        identity,
        state: () => live.state,
        loans: () => live.state?.loans,
        logger,
      });
    } catch (error) {
      logger.fatal({ err: error }, "cannot listen on the peer port");
      return { kind: "failed", message: `cannot listen on --peer-port: ${errorLine(error)}` };
    }
  }
  const elected =
    peer === undefined
      ? undefined
      : {
          identity,
          endpoint: hostPort(advertisedHost(config.advertiseAddress, config.host), peer.port),
          forward: peer.forward,
          exchange: peer.exchange,
          recall: peer.recall,
          nudge: peer.nudge,
        };

  let started: Awaited<ReturnType<typeof startServeState>>;
  try {
    started = await startServeState(config, pools.value, namespace.value, logger, metrics, elected);
  } catch (error) {
    // No usable kubeconfig is a usage error like a missing file; anything else is a failure.
    await peer?.close();
    if ((error as Error).name === "KubeConfigError") return usage((error as Error).message);
    logger.fatal({ err: error }, "cannot start cluster state");
    return { kind: "failed", message: `cannot start cluster state: ${errorLine(error)}` };
  }
  if (!started.ok) {
    await peer?.close();
    return usage(started.error);
  }
  const { state, release } = started.value;
  live.state = state;
  if (hooks.ready !== undefined) callWhenReady(state, hooks.ready);

  const probeSources: ProbeSources = {
    state,
    tlsProblem: () => servingProblem(live.upkeep, live.served),
    stopping: () => live.stopping,
    degraded: () =>
      (state.failing ?? []).map(({ resource, error }) => `${resource} watch failing: ${error}`),
  };
  const app = buildApp({
    ...probeSources,
    logger,
    metrics,
    https: { ...secureContextOptions(live.served, clientCa), ...clientAuthOptions(clientCa) },
  });
  const metricsServer = createMetricsServer(metrics, (path) =>
    path === "/healthz" ? HEALTHY : path === "/readyz" ? readiness(probeSources) : undefined,
  );
  const ports = await listenBoth(config, app, metricsServer);
  if (!ports.ok) {
    logger.fatal({ err: ports.error }, "cannot listen");
    await app.close().catch(() => {});
    await state.stop().catch(() => {});
    await peer?.close().catch(() => {});
    return { kind: "failed", message: `cannot listen: ${errorLine(ports.error)}` };
  }

  live.upkeep = await keepCertificateCurrent(
    config,
    live.served,
    namespace.value,
    logger,
    (next) => {
      app.server.setSecureContext(secureContextOptions(next, clientCa));
      peer?.rotate(next);
      live.served = next;
    },
  );
  logServing(logger, config, {
    ...ports.value,
    caFile: caFile.value,
    certificate: certificateSourceOf(config),
    namespace: namespace.value,
    pools: pools.value,
    release,
    allocator: elected === undefined ? undefined : { identity, endpoint: elected.endpoint },
  });

  const signal = await new Promise<NodeJS.Signals>((resolveSignal) => {
    process.once("SIGTERM", () => resolveSignal("SIGTERM"));
    process.once("SIGINT", () => resolveSignal("SIGINT"));
  });
  live.stopping = true;
  return shutdown(signal, config, logger, hooks, live.upkeep, [
    ["webhook server", () => app.close()],
    ["state", () => state.stop()],
    ...(peer === undefined ? [] : [["peer server", () => peer.close()] as const]),
    ["metrics server", () => closeServer(metricsServer)],
  ]);
}

/** The HTTPS app and the metrics server listening; the ports they got (0 picks a free one). */
async function listenBoth(
  config: ServeConfig,
  app: WebhookApp,
  metricsServer: Server,
): Promise<
  { ok: true; value: { port: number; metricsPort: number } } | { ok: false; error: unknown }
> {
  try {
    await app.listen({ port: config.port, host: config.host });
    const port = boundPort(app.server.address()) ?? config.port;
    const metricsPort = await listen(metricsServer, config.metricsPort, config.host);
    return { ok: true, value: { port, metricsPort } };
  } catch (error) {
    return { ok: false, error };
  }
}

/** The startup record: where to call the webhook and its metrics, and what it serves with. */
function logServing(
  logger: Logger,
  config: ServeConfig,
  serving: {
    readonly port: number;
    readonly metricsPort: number;
    readonly caFile: string | undefined;
    readonly certificate: CertificateSourceKind;
    readonly namespace: string | undefined;
    readonly pools: LoadedPools | undefined;
    readonly release: MetalLBVersion | undefined;
    readonly allocator: { readonly identity: string; readonly endpoint: string } | undefined;
  },
): void {
  const { port, metricsPort, caFile } = serving;
  const host = listensOnEveryAddress(config.host) ? "127.0.0.1" : config.host;
  const url = `https://${hostPort(host, port)}`;
  const pools = serving.pools?.poolSet.pools.map(describePool) ?? [];
  logger.info(
    {
      url,
      port,
      metricsUrl: `http://${hostPort(host, metricsPort)}/metrics`,
      metricsPort,
      mode: config.standalone ? "standalone" : "cluster",
      caFile,
      certificate:
        serving.certificate === "bootstrap"
          ? `bootstrap (Secret ${serving.namespace}/${config.tlsSecret})`
          : serving.certificate,
      pools,
      ipTarget: config.ipTarget,
      loadBalancerClass: config.loadBalancerClass ?? null,
      metallbVersion: serving.release === undefined ? null : formatMetalLBVersion(serving.release),
      allocate: config.allocation,
      allocator:
        serving.allocator === undefined
          ? config.standalone
            ? null
            : "claims"
          : { elected: serving.allocator.identity, peerEndpoint: serving.allocator.endpoint },
    },
    `lb-ip-guard serving ${url}/mutate and ${url}/validate${caFile === undefined ? "" : `; CA: ${caFile} (curl --cacert ${caFile})`}${pools.length > 0 ? `; pools: ${pools.join("; ")}` : ""}`,
  );
}

/**
 * After the first signal: /readyz fails at once (the caller set `stopping`), the webhook keeps
 * serving for --shutdown-delay so endpoints drain, then the certificate upkeep stops and each
 * server and the state close in order. A second signal ends the process at once.
 */
async function shutdown(
  signal: NodeJS.Signals,
  config: ServeConfig,
  logger: Logger,
  hooks: ServeHooks,
  upkeep: CertificateUpkeep,
  steps: readonly (readonly [what: string, close: () => Promise<void>])[],
): Promise<ServeOutcome> {
  // A second signal means "now": don't wait for the delay or slow clients.
  const force = () => hooks.exitNow({ kind: "stopped", clean: false });
  process.once("SIGTERM", force);
  process.once("SIGINT", force);
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
  await upkeep.stop().catch(() => {});
  let clean = true;
  for (const [what, close] of steps) {
    try {
      await close();
    } catch (error) {
      clean = false;
      logger.error({ err: error }, `shutdown: closing the ${what} failed`);
    }
  }
  logger.info("stopped");
  logger.flush();
  return { kind: "stopped", clean };
}

function boundPort(address: ReturnType<Server["address"]>): number | undefined {
  return typeof address === "object" && address !== null ? address.port : undefined;
}

/** Calls `then` once `state` first reports ready. */
function callWhenReady(state: ServeState, then: () => void): void {
  if (state.context().ready) {
    then();
    return;
  }
  const timer = setInterval(() => {
    if (!state.context().ready) return;
    clearInterval(timer);
    then();
  }, READY_POLL_MS);
  timer.unref();
}
