// CA bundles: the PEM certificates of a bundle, one bundle text per set of CAs (so every replica
// writes the same), and bundles compared as sets of certificates.

import { type CertificateInfo, inspectCertificate } from "./inspect.ts";

/** The PEM certificates of a bundle, in order; anything between them is ignored. */
export function splitPem(bundle: string | undefined): string[] {
  if (bundle === undefined) return [];
  return [...bundle.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g)].map(
    ([pem]) => `${pem}\n`,
  );
}

/** One certificate per fingerprint, in the order each was first seen. */
export function uniqueByFingerprint(infos: readonly CertificateInfo[]): CertificateInfo[] {
  return [...new Map(infos.map((info) => [info.fingerprint, info])).values()];
}

/**
 * The bundle PEM of `certificates`: one per fingerprint, oldest first (by notBefore, then
 * fingerprint), so every replica writes the same text for the same set.
 */
export function composeBundle(certificates: readonly CertificateInfo[]): string {
  return uniqueByFingerprint(certificates)
    .sort((a, b) => a.notBefore - b.notBefore || a.fingerprint.localeCompare(b.fingerprint))
    .map((info) => info.pem)
    .join("");
}

/** The fingerprints of the certificates in a bundle PEM, sorted: bundles compare as sets. */
export function bundleFingerprints(bundle: string | undefined): string[] {
  return [
    ...new Set(
      splitPem(bundle)
        .map((pem) => inspectCertificate(pem)?.fingerprint)
        .filter((fingerprint) => fingerprint !== undefined),
    ),
  ].sort();
}

export function sameBundle(a: string | undefined, b: string | undefined): boolean {
  const [left, right] = [bundleFingerprints(a), bundleFingerprints(b)];
  return left.length === right.length && left.every((value, index) => value === right[index]);
}
