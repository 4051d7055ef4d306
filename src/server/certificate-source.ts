// The serving certificate, three ways: mounted files (--tls-cert/--tls-key, reloaded on change);
// on a cluster without them, the bootstrap (a CA and certificate in a Secret, injected into the
// webhook configurations, rotated: src/cluster/certificates/), which serves a throwaway
// certificate until the Secret's is loaded (/readyz fails meanwhile); standalone, a generated one
// whose CA goes to --ca-out.

import { isIP } from "node:net";
import type { Logger } from "pino";
import { certificateProblem } from "../certs/inspect.ts";
import { type Certificate, generateCertificate } from "../certs/issue.ts";
import { fail, ok, type Result } from "../ipam/result.ts";
import type { ServeConfig } from "./config.ts";
import { CertificateWatcher, readCertificate, writePem } from "./tls.ts";

export type CertificateSourceKind = "mounted" | "bootstrap" | "generated";

export function certificateSourceOf(config: ServeConfig): CertificateSourceKind {
  if (config.tlsCert !== undefined && config.tlsKey !== undefined) return "mounted";
  return config.standalone ? "generated" : "bootstrap";
}

export interface FirstCertificate {
  readonly certificate: Certificate;
  /** The CA of a generated certificate, for --ca-out (not the bootstrap's throwaway one). */
  readonly ca: string | undefined;
}

/**
 * The certificate served from the start: the mounted pair (refused with one line when it is
 * unusable), else a generated one for localhost and --tls-san.
 */
export async function firstCertificate(config: ServeConfig): Promise<Result<FirstCertificate>> {
  if (config.tlsCert !== undefined && config.tlsKey !== undefined) {
    try {
      return ok({
        certificate: await readCertificate(config.tlsCert, config.tlsKey),
        ca: undefined,
      });
    } catch (error) {
      return fail((error as Error).message);
    }
  }
  const generated = await generateCertificate({
    dns: ["localhost", ...config.tlsSans.filter((san) => isIP(san) === 0)],
    ips: [...new Set(["127.0.0.1", "::1", ...config.tlsSans.filter((san) => isIP(san) !== 0)])],
  });
  const bootstrap = certificateSourceOf(config) === "bootstrap";
  return ok({ certificate: generated, ca: bootstrap ? undefined : generated.ca });
}

/** Writes a generated CA to --ca-out; the file written, if any. Only standalone mode has one. */
export async function writeGeneratedCa(
  config: ServeConfig,
  ca: string | undefined,
): Promise<Result<string | undefined>> {
  if (ca === undefined) return ok(undefined);
  try {
    await writePem(config.caOut, ca);
    return ok(config.caOut);
  } catch (error) {
    return fail(
      `cannot write the generated CA to ${config.caOut}: ${(error as Error).message}; choose another path with --ca-out`,
    );
  }
}

/** What keeps the served certificate current once the server listens. */
export interface CertificateUpkeep {
  /** The bootstrap's reason TLS cannot serve (no certificate yet, a failing rotation). */
  readonly problem: string | undefined;
  stop(): Promise<void>;
}

/**
 * Starts the upkeep: a watch on the mounted files, or the bootstrap; a generated certificate is
 * kept as it is. `serve` puts each new certificate in place.
 */
export async function keepCertificateCurrent(
  config: ServeConfig,
  current: Certificate,
  namespace: string | undefined,
  logger: Logger,
  serve: (next: Certificate) => void,
): Promise<CertificateUpkeep> {
  const source = certificateSourceOf(config);
  if (source === "mounted" && config.tlsCert !== undefined && config.tlsKey !== undefined) {
    const watcher = new CertificateWatcher({
      certFile: config.tlsCert,
      keyFile: config.tlsKey,
      current,
      onChange: (next) => {
        serve(next);
        logger.info({ cert: config.tlsCert }, "serving certificate reloaded");
      },
      onError: (message) => logger.error(message),
    });
    watcher.start();
    return { problem: undefined, stop: async () => watcher.stop() };
  }
  if (source === "bootstrap" && namespace !== undefined) {
    // The manager reports its own problem and stops itself.
    return startBootstrap(config, namespace, logger, serve);
  }
  return { problem: undefined, stop: async () => {} };
}

/** Why TLS cannot serve right now (/readyz), or undefined when it can. */
export function servingProblem(
  upkeep: CertificateUpkeep | undefined,
  served: Certificate,
): string | undefined {
  return upkeep?.problem ?? certificateProblem(served);
}

/** Starts the certificate bootstrap (its modules load only here, as the cluster state's do). */
async function startBootstrap(
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
