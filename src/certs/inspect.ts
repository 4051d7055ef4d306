// Reading certificates: what a PEM certificate says (validity, names, whether it is a CA), whether
// a key belongs to it, whether a CA signed it, and why a serving pair cannot serve now.

import { createPrivateKey, createPublicKey, X509Certificate } from "node:crypto";
import { errorLine } from "../base/text.ts";
import type { Certificate } from "./issue.ts";
import { type ServingNames, subjectAltNames } from "./names.ts";

export interface CertificateInfo {
  readonly pem: string;
  readonly x509: X509Certificate;
  readonly fingerprint: string;
  readonly notBefore: number;
  readonly notAfter: number;
  readonly isCa: boolean;
  readonly names: ServingNames;
  readonly subject: string;
  readonly serial: string;
}

/** The parsed certificate, or undefined when `pem` is not one. */
export function inspectCertificate(pem: string | undefined): CertificateInfo | undefined {
  if (pem === undefined || pem.trim() === "") return undefined;
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(pem);
  } catch {
    return undefined;
  }
  return {
    pem: x509.toString(),
    x509,
    fingerprint: x509.fingerprint256,
    notBefore: Date.parse(x509.validFrom),
    notAfter: Date.parse(x509.validTo),
    isCa: x509.ca,
    names: subjectAltNames(x509.subjectAltName),
    subject: x509.subject.replace(/\n/g, ", "),
    serial: x509.serialNumber,
  };
}

/** True when `key` (PEM) is the private key of `certificate`. */
export function keyMatches(certificate: CertificateInfo, key: string | undefined): boolean {
  if (key === undefined) return false;
  try {
    const fromKey = createPublicKey(createPrivateKey(key)).export({ type: "spki", format: "der" });
    const fromCert = certificate.x509.publicKey.export({ type: "spki", format: "der" });
    return fromKey.equals(fromCert);
  } catch {
    return false;
  }
}

/** True when `issuer` signed `certificate`. */
export function signedBy(certificate: CertificateInfo, issuer: CertificateInfo): boolean {
  try {
    return (
      certificate.x509.checkIssued(issuer.x509) && certificate.x509.verify(issuer.x509.publicKey)
    );
  } catch {
    return false;
  }
}

/** True when `now` is within the certificate's validity. */
export const validAt = (info: CertificateInfo, now: number): boolean =>
  now >= info.notBefore && now < info.notAfter;

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
