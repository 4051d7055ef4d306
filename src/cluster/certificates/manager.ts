// The certificate of `serve` on a cluster without --tls-cert: a CA and a serving certificate kept
// in a Secret of the webhook's namespace, created if absent (replicas converge on the one whose
// create won), the CA bundle injected into the caBundle of every webhook of the webhook's own
// MutatingWebhookConfiguration and ValidatingWebhookConfiguration, and rotation before expiry.
// The decisions are in plan.ts, the Secret's content in secret.ts and the caBundle patch in
// webhook-configuration.ts (all pure); this file reads and writes.
//
// One pass, in this order:
//   1. GET both webhook configurations, then GET the Secret (quorum reads, in that order: a
//      bundle seen in a configuration was written to the Secret before, so the Secret read
//      after it is at least as new, and no replica can take a CA out of caBundle that a newer
//      Secret still holds);
//   2. plan; if it writes, generate and write the Secret (PUT with its resourceVersion, or
//      POST): a 409 means another replica wrote first, and the next pass reads its work;
//   3. serve the Secret's certificate (setSecureContext, through onServe) if it changed;
//   4. patch each configuration whose caBundle holds another set of CAs (JSON patch, guarded
//      by its resourceVersion and each webhook's name);
//   5. note since when the signing CA has been trusted by every webhook, and plan again to
//      know when to look next.
// Passes run on every change of the Secret (a watch), when the plan's clock says so, and at
// least every resync interval (a configuration someone re-applied without caBundle).

import type { Logger } from "pino";
import { asRecord } from "../../base/objects.ts";
import { inspectCertificate } from "../../certs/inspect.ts";
import type { Certificate } from "../../certs/issue.ts";
import { describeError, KubeApiError, type KubeClient } from "../kube.ts";
import { backoffDelay, DEFAULT_RETRY, Reflector, type RetryOptions } from "../reflector.ts";
import { type CertificateSettings, carryOut, planCertificates } from "./plan.ts";
import { readSecretData, type StoredCertificates, secretData, servablePair } from "./secret.ts";
import { caBundlePatch, trustsCa } from "./webhook-configuration.ts";

export interface CertificateManagerOptions {
  readonly client: KubeClient;
  /** The webhook's namespace, where the Secret lives. */
  readonly namespace: string;
  readonly secretName: string;
  /** Name of both webhook configurations. */
  readonly webhookName: string;
  readonly settings: CertificateSettings;
  /** Called with each new serving certificate: swap the server's secure context here. */
  readonly onServe: (certificate: Certificate) => void;
  readonly logger: Logger;
  /** Longest time between two passes. Default 30 s. */
  readonly resyncMs?: number;
  /** Backoff of failing passes; default 1 s doubling to 30 s, jittered. */
  readonly retry?: RetryOptions;
  /** The clock (tests). */
  readonly now?: () => number;
}

const CONFIGURATIONS = [
  { kind: "MutatingWebhookConfiguration", resource: "mutatingwebhookconfigurations" },
  { kind: "ValidatingWebhookConfiguration", resource: "validatingwebhookconfigurations" },
] as const;

const LABELS = {
  "app.kubernetes.io/name": "lb-ip-guard",
  "app.kubernetes.io/managed-by": "lb-ip-guard",
  "app.kubernetes.io/component": "webhook-certificate",
};

/** After a write lost to another replica's: read again almost at once. */
const CONFLICT_RETRY_MS = 50;

/** A pass that found the Secret written by someone else: nothing of it is touched. */
class ForeignSecretError extends Error {}

export class CertificateManager {
  readonly #options: CertificateManagerOptions;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #resyncMs: number;
  readonly #watch: Reflector;
  #served: string | undefined;
  #trust: { readonly fingerprint: string; readonly since: number } | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  #failures = 0;
  #lastError: string | undefined;
  #missingLogged = new Set<string>();

  constructor(options: CertificateManagerOptions) {
    this.#options = options;
    this.#logger = options.logger.child({ component: "certificates" });
    this.#now = options.now ?? Date.now;
    this.#resyncMs = options.resyncMs ?? 30_000;
    this.#watch = new Reflector({
      name: `Secret ${options.namespace}/${options.secretName}`,
      client: options.client,
      path: `/api/v1/namespaces/${options.namespace}/secrets`,
      fieldSelector: `metadata.name=${options.secretName}`,
      replace: () => this.kick(),
      apply: () => this.kick(),
      logger: this.#logger,
      ...(options.retry !== undefined && { retry: options.retry }),
    });
  }

  /** Why the Secret's certificate is not serving yet; undefined once it is. */
  get problem(): string | undefined {
    if (this.#served !== undefined) return undefined;
    const where = `Secret ${this.#options.namespace}/${this.#options.secretName}`;
    return this.#lastError === undefined
      ? `waiting for the serving certificate from ${where}`
      : `no serving certificate from ${where} yet: ${this.#lastError}`;
  }

  start(): void {
    this.#watch.start();
    this.kick();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    await this.#watch.stop();
    await this.#running;
  }

  /** Runs a pass now, or right after the one running. */
  kick(): void {
    if (this.#stopped) return;
    if (this.#running !== undefined) {
      this.#again = true;
      return;
    }
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#running = this.#loop().finally(() => {
      this.#running = undefined;
    });
  }

  async #loop(): Promise<void> {
    let delay = 0;
    let immediate = 0;
    do {
      this.#again = false;
      try {
        delay = await this.pass();
        // A plan that keeps asking for another write at once is a bug or a fight with another
        // writer: never spin on the API server.
        immediate = delay === 0 ? immediate + 1 : 0;
        if (immediate > 5) {
          this.#logger.warn("certificate passes keep writing; slowing down to one a second");
          delay = 1000;
        }
        if (this.#lastError !== undefined) {
          this.#logger.info({ failures: this.#failures }, "certificate management recovered");
        }
        this.#failures = 0;
        this.#lastError = undefined;
      } catch (error) {
        const message = describeError(error);
        const retry = this.#options.retry ?? DEFAULT_RETRY;
        delay = Math.min(backoffDelay(this.#failures, retry), this.#resyncMs);
        this.#failures += 1;
        if (message !== this.#lastError) {
          this.#logger.error(
            { error: message, attempt: this.#failures, retryInMs: delay },
            `certificate management failed: ${message}; retrying in ${(delay / 1000).toFixed(1)} s`,
          );
        }
        this.#lastError = message;
      }
    } while ((this.#again || delay === 0) && !this.#stopped);
    if (this.#stopped) return;
    this.#timer = setTimeout(() => this.kick(), delay);
    this.#timer.unref();
  }

  /** One pass (see the file's comment); resolves to the delay until the next, 0 for at once. */
  async pass(): Promise<number> {
    const { client, namespace, secretName, webhookName, settings } = this.#options;
    const secretPath = `/api/v1/namespaces/${namespace}/secrets/${secretName}`;

    // 1. The configurations first, then the Secret.
    const configurations = await Promise.all(
      CONFIGURATIONS.map(async ({ kind, resource }) => {
        const path = `/apis/admissionregistration.k8s.io/v1/${resource}/${webhookName}`;
        const object = await getOrUndefined(client, path);
        if (object === undefined && !this.#missingLogged.has(kind)) {
          this.#missingLogged.add(kind);
          this.#logger.warn(
            { kind, name: webhookName },
            `${kind} ${webhookName} does not exist: nothing to put the CA into (checking again every ${this.#resyncMs / 1000} s)`,
          );
        } else if (object !== undefined) this.#missingLogged.delete(kind);
        return { kind, path, object };
      }),
    );
    const secret = await getOrUndefined(client, secretPath);
    if (secret !== undefined && !ours(secret)) {
      throw new ForeignSecretError(
        `Secret ${namespace}/${secretName} exists but was not made by lb-ip-guard (no ${"ca.key"}, no managed-by label); left alone: delete it, choose another --tls-secret, or mount a certificate with --tls-cert/--tls-key`,
      );
    }
    let stored: StoredCertificates | undefined =
      secret === undefined ? undefined : readSecretData(secret.data);

    // 2. Plan, and write what it asks for.
    let now = this.#now();
    const plan = planCertificates({
      stored,
      now,
      settings,
      trustedSince: this.#observeTrust(stored?.caCert, configurations, now),
    });
    if (plan.write) {
      const set = await carryOut(plan, stored, settings, now);
      try {
        if (secret === undefined) {
          await client.request("POST", `/api/v1/namespaces/${namespace}/secrets`, {
            body: {
              apiVersion: "v1",
              kind: "Secret",
              type: "kubernetes.io/tls",
              metadata: { name: secretName, namespace, labels: LABELS },
              data: secretData(set),
            },
          });
        } else {
          const metadata = asRecord(secret.metadata);
          await client.request("PUT", secretPath, {
            body: {
              ...secret,
              metadata: { ...metadata, labels: { ...asRecord(metadata.labels), ...LABELS } },
              data: { ...asRecord(secret.data), ...secretData(set) },
            },
          });
        }
      } catch (error) {
        if (error instanceof KubeApiError && error.status === 409) {
          this.#logger.debug(
            "another replica wrote the certificate Secret first; reading its version",
          );
          return CONFLICT_RETRY_MS;
        }
        throw error;
      }
      stored = set;
      const ca = inspectCertificate(set.caCert);
      const cert = inspectCertificate(set.cert);
      this.#logger.info(
        {
          secret: `${namespace}/${secretName}`,
          reasons: plan.reasons,
          newCa: plan.newCa,
          newCert: plan.newCert,
          ca: ca?.subject,
          caNotAfter: ca === undefined ? undefined : new Date(ca.notAfter).toISOString(),
          certSerial: cert?.serial,
          certNotAfter: cert === undefined ? undefined : new Date(cert.notAfter).toISOString(),
          bundle: plan.keep.length + (plan.newCa ? 1 : 0),
        },
        `certificate Secret ${namespace}/${secretName} ${plan.reasons.includes("no certificate Secret yet") ? "created" : "updated"}: ${plan.reasons.join("; ")}`,
      );
    }

    if (stored === undefined) return CONFLICT_RETRY_MS; // no Secret means a write: unreachable

    // 3. Serve the Secret's certificate.
    this.#serve(stored, this.#now());

    // 4. caBundle.
    const bundle = stored.bundle ?? "";
    for (const configuration of configurations) {
      if (configuration.object === undefined) continue;
      const ops = caBundlePatch(configuration.object, bundle);
      if (ops.length === 0) continue;
      try {
        configuration.object = await client.request("PATCH", configuration.path, {
          body: ops,
          contentType: "application/json-patch+json",
        });
      } catch (error) {
        // Changed since read (the resourceVersion test): read again at once.
        if (error instanceof KubeApiError && (error.status === 409 || error.status === 422)) {
          this.#logger.debug(
            { kind: configuration.kind },
            `caBundle patch refused: ${error.message}`,
          );
          return CONFLICT_RETRY_MS;
        }
        throw error;
      }
      const webhooks = ops
        .filter((op) => op.op === "test" && op.path.endsWith("/name"))
        .map((op) => op.value);
      this.#logger.info(
        {
          kind: configuration.kind,
          name: webhookName,
          webhooks,
          cas: bundle.match(/BEGIN CERTIFICATE/g)?.length ?? 0,
        },
        `caBundle of ${configuration.kind} ${webhookName} set (webhooks: ${webhooks.join(", ")})`,
      );
    }

    // 5. Trust, and the next look.
    now = this.#now();
    const next = planCertificates({
      stored,
      now,
      settings,
      trustedSince: this.#observeTrust(stored.caCert, configurations, now),
    });
    if (next.write) return 0;
    return Math.max(0, Math.min(next.nextCheckAt - now, this.#resyncMs));
  }

  /**
   * Since when every existing configuration has trusted the signing CA, as seen by this
   * replica; undefined when one does not. No configuration at all: nobody calls the webhook,
   * so nothing can fail, and the CA counts as trusted.
   */
  #observeTrust(
    caPem: string | undefined,
    configurations: readonly { readonly object: Record<string, unknown> | undefined }[],
    now: number,
  ): number | undefined {
    const fingerprint = inspectCertificate(caPem)?.fingerprint;
    const trusted =
      fingerprint !== undefined &&
      configurations.every(({ object }) => object === undefined || trustsCa(object, caPem));
    if (!trusted || fingerprint === undefined) {
      this.#trust = undefined;
      return undefined;
    }
    if (this.#trust?.fingerprint !== fingerprint) this.#trust = { fingerprint, since: now };
    return this.#trust.since;
  }

  #serve(stored: StoredCertificates, now: number): void {
    const pair = servablePair(stored, now);
    if (pair === undefined) return;
    const info = inspectCertificate(pair.cert);
    const fingerprint = `${info?.fingerprint}/${pair.key}`;
    if (fingerprint === this.#served) return;
    this.#options.onServe(pair);
    const first = this.#served === undefined;
    this.#served = fingerprint;
    this.#logger.info(
      {
        serial: info?.serial,
        issuer: info?.x509.issuer.replace(/\n/g, ", "),
        notAfter: info === undefined ? undefined : new Date(info.notAfter).toISOString(),
        names: info === undefined ? undefined : [...info.names.dns, ...info.names.ips],
      },
      first
        ? "serving the certificate from the Secret"
        : "serving certificate swapped in place (new TLS context for new connections)",
    );
  }
}

/** Made by lb-ip-guard: our label, or at least a CA key (an older or hand-made set). */
function ours(secret: Record<string, unknown>): boolean {
  const metadata = asRecord(secret.metadata);
  const labels = asRecord(metadata.labels);
  return (
    labels["app.kubernetes.io/managed-by"] === "lb-ip-guard" ||
    typeof asRecord(secret.data)["ca.key"] === "string"
  );
}

async function getOrUndefined(
  client: KubeClient,
  path: string,
): Promise<Record<string, unknown> | undefined> {
  try {
    return await client.request("GET", path);
  } catch (error) {
    if (error instanceof KubeApiError && error.status === 404) return undefined;
    throw error;
  }
}
