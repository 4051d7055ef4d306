// The certificate Secret (type kubernetes.io/tls, plus the CA and the bundle): its keys, what it
// holds read from and written to its `data`, and the pair it can serve now.

import { asRecord } from "../../base/objects.ts";
import { inspectCertificate, keyMatches, validAt } from "../../certs/inspect.ts";
import type { Certificate } from "../../certs/issue.ts";

/** Keys of the certificate Secret (type kubernetes.io/tls, plus the CA and the bundle). */
export const SECRET_KEYS = {
  /** The serving certificate, and its key. */
  cert: "tls.crt",
  key: "tls.key",
  /** The CA that signs serving certificates now, and its key. */
  caCert: "ca.crt",
  caKey: "ca.key",
  /** Every CA the API server must trust: what goes into caBundle. */
  bundle: "ca-bundle.crt",
} as const;

/** What the Secret holds, PEM, each part possibly missing or broken. */
export interface StoredCertificates {
  readonly cert?: string | undefined;
  readonly key?: string | undefined;
  readonly caCert?: string | undefined;
  readonly caKey?: string | undefined;
  readonly bundle?: string | undefined;
}

/** A complete set, as written to the Secret. */
export interface CertificateSet {
  readonly cert: string;
  readonly key: string;
  readonly caCert: string;
  readonly caKey: string;
  readonly bundle: string;
}

/** `data` of a Secret (base64 values) to what it holds. */
export function readSecretData(data: unknown): StoredCertificates {
  const record = asRecord(data);
  const read = (key: string): string | undefined => {
    const value = record[key];
    return typeof value === "string" && value !== ""
      ? Buffer.from(value, "base64").toString("utf8")
      : undefined;
  };
  return {
    cert: read(SECRET_KEYS.cert),
    key: read(SECRET_KEYS.key),
    caCert: read(SECRET_KEYS.caCert),
    caKey: read(SECRET_KEYS.caKey),
    bundle: read(SECRET_KEYS.bundle),
  };
}

/** A set to the Secret's `data` (base64 values). */
export function secretData(set: CertificateSet): Record<string, string> {
  const b64 = (text: string) => Buffer.from(text, "utf8").toString("base64");
  return {
    [SECRET_KEYS.cert]: b64(set.cert),
    [SECRET_KEYS.key]: b64(set.key),
    [SECRET_KEYS.caCert]: b64(set.caCert),
    [SECRET_KEYS.caKey]: b64(set.caKey),
    [SECRET_KEYS.bundle]: b64(set.bundle),
  };
}

/**
 * The serving pair of a Secret when it can serve at `now` (parses, key matches, in its
 * validity), else undefined.
 */
export function servablePair(stored: StoredCertificates, now: number): Certificate | undefined {
  const cert = inspectCertificate(stored.cert);
  if (cert === undefined || stored.cert === undefined || stored.key === undefined) return undefined;
  if (!keyMatches(cert, stored.key) || !validAt(cert, now)) return undefined;
  return { cert: stored.cert, key: stored.key };
}
