// TLS for the admission port: TLS 1.2 at least, certificates from files that are reloaded in
// place when they change (Kubernetes Secret mounts and cert-manager rotate them), or a generated
// CA and serving certificate for standalone use.

import { X509Certificate } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { createSecureContext, type SecureContextOptions } from "node:tls";
import { generate } from "selfsigned";
import { errorLine } from "../base/text.ts";

const MIN_TLS_VERSION = "TLSv1.2";

/** A serving certificate (chain) and its private key, PEM. */
export interface Certificate {
  readonly cert: string;
  readonly key: string;
}

export interface GeneratedCertificate extends Certificate {
  /** The CA that signed `cert`: what a client passes to `curl --cacert`. */
  readonly ca: string;
}

export function secureContextOptions(certificate: Certificate): SecureContextOptions {
  return { cert: certificate.cert, key: certificate.key, minVersion: MIN_TLS_VERSION };
}

/** Throws a one-line error when the pair is unusable (bad PEM, key not matching the cert). */
function checkCertificate(certificate: Certificate): void {
  try {
    createSecureContext(secureContextOptions(certificate));
  } catch (error) {
    throw new Error(`certificate and key do not form a usable pair: ${errorLine(error)}`);
  }
}

/** Why the certificate cannot serve right now (expired, not yet valid), or undefined. */
export function certificateProblem(certificate: Certificate, now = Date.now()): string | undefined {
  let parsed: X509Certificate;
  try {
    parsed = new X509Certificate(certificate.cert);
  } catch (error) {
    return `serving certificate cannot be parsed: ${errorLine(error)}`;
  }
  if (now > Date.parse(parsed.validTo)) return `serving certificate expired at ${parsed.validTo}`;
  if (now < Date.parse(parsed.validFrom))
    return `serving certificate is not valid before ${parsed.validFrom}`;
  return undefined;
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

/** A certificate and its private key, PEM: a CA, or a serving certificate. */
export type KeyPair = Certificate;

/** The names a serving certificate is valid for (subjectAltName DNS and IP entries). */
export interface ServingNames {
  readonly dns: readonly string[];
  readonly ips: readonly string[];
}

/** notBefore/notAfter of a certificate to make. */
export interface ValidityWindow {
  readonly notBefore: Date;
  readonly notAfter: Date;
}

const DAY_MS = 24 * 3600 * 1000;

/**
 * A CA (EC P-256, SHA-256, basicConstraints CA:true, keyCertSign): generation takes
 * milliseconds, unlike RSA. The common name should be unique per CA (a clock in it): clients
 * find the issuer of a certificate by name first.
 */
export async function generateCa(commonName: string, window: ValidityWindow): Promise<KeyPair> {
  const ca = await generate([{ name: "commonName", value: commonName }], {
    keyType: "ec",
    algorithm: "sha256",
    notBeforeDate: window.notBefore,
    notAfterDate: window.notAfter,
    extensions: [
      { name: "basicConstraints", cA: true, critical: true },
      {
        name: "keyUsage",
        keyCertSign: true,
        cRLSign: true,
        digitalSignature: true,
        critical: true,
      },
    ],
  });
  return { cert: ca.cert, key: ca.private };
}

/** A serving certificate (serverAuth) for `names`, signed by `ca`. */
export async function issueServingCertificate(
  ca: KeyPair,
  names: ServingNames,
  window: ValidityWindow,
): Promise<Certificate> {
  const leaf = await generate([{ name: "commonName", value: names.dns[0] ?? "lb-ip-guard" }], {
    keyType: "ec",
    algorithm: "sha256",
    notBeforeDate: window.notBefore,
    notAfterDate: window.notAfter,
    ca: { cert: ca.cert, key: ca.key },
    extensions: [
      { name: "basicConstraints", cA: false },
      { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
      { name: "extKeyUsage", serverAuth: true },
      {
        name: "subjectAltName",
        altNames: [
          ...names.dns.map((value) => ({ type: 2 as const, value })),
          ...names.ips.map((ip) => ({ type: 7 as const, ip })),
        ],
      },
    ],
  });
  return { cert: leaf.cert, key: leaf.private };
}

/**
 * A fresh CA and a serving certificate it signed, for `localhost`, 127.0.0.1 and ::1 by default,
 * valid for a year.
 */
export async function generateCertificate(
  names: ServingNames = { dns: ["localhost"], ips: ["127.0.0.1", "::1"] },
): Promise<GeneratedCertificate> {
  const notBefore = new Date(Date.now() - 60_000); // tolerate a little clock skew
  const window = { notBefore, notAfter: new Date(notBefore.getTime() + 365 * DAY_MS) };
  const ca = await generateCa("lb-ip-guard standalone CA", window);
  const leaf = await issueServingCertificate(ca, names, window);
  return { ...leaf, ca: ca.cert };
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
