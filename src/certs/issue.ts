// Making certificates: a CA, a serving certificate it signs, and the validity window of each.
// EC P-256 / SHA-256 through `selfsigned`: generation takes milliseconds, unlike RSA.

import { generate } from "selfsigned";
import type { ServingNames } from "./names.ts";

/** A serving certificate (chain) and its private key, PEM. */
export interface Certificate {
  readonly cert: string;
  readonly key: string;
}

export interface GeneratedCertificate extends Certificate {
  /** The CA that signed `cert`: what a client passes to `curl --cacert`. */
  readonly ca: string;
}

/** A certificate and its private key, PEM: a CA, or a serving certificate. */
export type KeyPair = Certificate;

/** notBefore/notAfter of a certificate to make. */
export interface ValidityWindow {
  readonly notBefore: Date;
  readonly notAfter: Date;
}

const DAY_MS = 24 * 3600 * 1000;
/** Backdating of notBefore against clock skew: 60 s, or a tenth of a short validity. */
const MAX_BACKDATE_MS = 60_000;

/**
 * From `now` for `validityMs`, notBefore backdated against clock skew (60 s, or a tenth of a
 * short validity), notAfter capped at `notAfterCap` (the signing CA's end).
 */
export function validityWindow(
  now: number,
  validityMs: number,
  notAfterCap?: number,
): ValidityWindow {
  const backdate = Math.min(MAX_BACKDATE_MS, Math.floor(validityMs / 10));
  const notAfter = Math.min(now + validityMs, notAfterCap ?? Number.POSITIVE_INFINITY);
  // Whole seconds: X.509 times have no fraction, and the window must not round past the cap.
  return {
    notBefore: new Date(Math.floor((now - backdate) / 1000) * 1000),
    notAfter: new Date(Math.floor(notAfter / 1000) * 1000),
  };
}

/**
 * A CA (EC P-256, SHA-256, basicConstraints CA:true, keyCertSign). The common name should be
 * unique per CA (a clock in it): clients find the issuer of a certificate by name first.
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
 * valid for a year: what standalone mode serves without --tls-cert.
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
