// TLS for the admission port: TLS 1.2 and 1.3 only, AEAD suites with forward secrecy only, no
// renegotiation (ADR 0010), and certificates from files that are reloaded in place when they
// change (Kubernetes Secret mounts and cert-manager rotate them). Making and reading certificates
// is src/certs.

import { constants } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { createSecureContext, type SecureContextOptions } from "node:tls";
import { errorLine } from "../base/text.ts";
import { splitPem } from "../certs/bundle.ts";
import { inspectCertificate } from "../certs/inspect.ts";
import type { Certificate } from "../certs/issue.ts";

/**
 * What a kube-apiserver (Go's crypto/tls) offers and every current client speaks: the three
 * TLS 1.3 suites, then ECDHE with AES-GCM or ChaCha20-Poly1305 for TLS 1.2, for RSA and ECDSA
 * keys. No CBC, no static RSA key exchange, no SHA-1 MAC.
 */
export const CIPHERS = [
  "TLS_AES_128_GCM_SHA256",
  "TLS_AES_256_GCM_SHA384",
  "TLS_CHACHA20_POLY1305_SHA256",
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-CHACHA20-POLY1305",
].join(":");

/**
 * The secure context of the admission port: `certificate` served, and with `clientCa` the CAs a
 * caller's client certificate is verified against (the server options of `clientAuthOptions`
 * make one required).
 */
export function secureContextOptions(
  certificate: Certificate,
  clientCa?: string,
): SecureContextOptions {
  return {
    cert: certificate.cert,
    key: certificate.key,
    ...(clientCa !== undefined && { ca: clientCa }),
    minVersion: "TLSv1.2",
    maxVersion: "TLSv1.3",
    ciphers: CIPHERS,
    honorCipherOrder: true,
    // A TLS 1.2 client may not renegotiate (TLS 1.3 has no renegotiation).
    secureOptions: constants.SSL_OP_NO_RENEGOTIATION,
  };
}

/** Throws a one-line error when the pair is unusable (bad PEM, key not matching the cert). */
function checkCertificate(certificate: Certificate): void {
  try {
    createSecureContext(secureContextOptions(certificate));
  } catch (error) {
    throw new Error(`certificate and key do not form a usable pair: ${errorLine(error)}`);
  }
}

/** Reads and checks a certificate/key pair; errors are one line and name the file. */
export async function readCertificate(certFile: string, keyFile: string): Promise<Certificate> {
  const read = async (file: string, what: string) => {
    try {
      return await readFile(file, "utf8");
    } catch (error) {
      throw new Error(`cannot read ${what} ${file}: ${errorLine(error)}`);
    }
  };
  const certificate = {
    cert: await read(certFile, "--tls-cert"),
    key: await read(keyFile, "--tls-key"),
  };
  checkCertificate(certificate);
  return certificate;
}

/**
 * With a client CA, a caller without a client certificate it signed fails the TLS handshake: no
 * request of it is read. Without, no certificate is asked for.
 */
export function clientAuthOptions(clientCa: string | undefined): {
  readonly requestCert: boolean;
  readonly rejectUnauthorized: boolean;
} {
  return { requestCert: clientCa !== undefined, rejectUnauthorized: clientCa !== undefined };
}

/** Reads a CA bundle for client authentication; one-line errors name the file. */
export async function readClientCa(file: string): Promise<string> {
  let pem: string;
  try {
    pem = await readFile(file, "utf8");
  } catch (error) {
    throw new Error(`cannot read --client-ca ${file}: ${errorLine(error)}`);
  }
  const blocks = splitPem(pem);
  if (blocks.length === 0) {
    throw new Error(
      `--client-ca ${file} holds no PEM certificate; give the CA bundle that signs the API server's client certificate`,
    );
  }
  if (blocks.some((block) => inspectCertificate(block) === undefined)) {
    throw new Error(`--client-ca ${file}: a certificate in it does not parse`);
  }
  return pem;
}

/** Writes a PEM (creating its directory); the CA is public, so the file is world-readable. */
export async function writePem(path: string, pem: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, pem, { mode: 0o644 });
}

export interface CertificateWatcherOptions {
  readonly certFile: string;
  readonly keyFile: string;
  /** The pair now served; the watcher reports only pairs that differ from it. */
  readonly current: Certificate;
  /** Called with each new, checked pair: swap the server's secure context here. */
  readonly onChange: (certificate: Certificate) => void;
  readonly onError: (message: string) => void;
  /** How often to re-read the files. Default 2 s. */
  readonly intervalMs?: number;
}

/**
 * Polls the certificate and key files and reports a changed, valid pair. Polling the content (not
 * fs.watch on the files) survives how Kubernetes updates a Secret volume: it writes a new
 * timestamped directory and swaps the `..data` symlink, so the watched inode never changes. The
 * files are tiny; reading two of them every few seconds costs nothing. A half-written update
 * (new certificate, old key) fails the pair check and is retried on the next tick, reported once.
 */
export class CertificateWatcher {
  readonly #options: CertificateWatcherOptions;
  #served: string;
  #lastFailure: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #busy = false;

  constructor(options: CertificateWatcherOptions) {
    this.#options = options;
    this.#served = fingerprint(options.current);
  }

  start(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => void this.check(), this.#options.intervalMs ?? 2000);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One poll; resolves to true when a new pair was handed to onChange. */
  async check(): Promise<boolean> {
    if (this.#busy) return false;
    this.#busy = true;
    try {
      let certificate: Certificate;
      try {
        certificate = {
          cert: await readFile(this.#options.certFile, "utf8"),
          key: await readFile(this.#options.keyFile, "utf8"),
        };
      } catch (error) {
        this.#fail(`cannot read certificate files: ${errorLine(error)}`);
        return false;
      }
      const seen = fingerprint(certificate);
      if (seen === this.#served) {
        this.#lastFailure = undefined;
        return false;
      }
      try {
        checkCertificate(certificate);
      } catch (error) {
        this.#fail(
          `${errorLine(error)} (${this.#options.certFile}, ${this.#options.keyFile}); still serving the previous certificate`,
        );
        return false;
      }
      this.#options.onChange(certificate);
      this.#served = seen;
      this.#lastFailure = undefined;
      return true;
    } finally {
      this.#busy = false;
    }
  }

  #fail(message: string): void {
    if (message === this.#lastFailure) return;
    this.#lastFailure = message;
    this.#options.onError(message);
  }
}

function fingerprint(certificate: Certificate): string {
  return `${certificate.cert}\u0000${certificate.key}`;
}
