// When the CA and the serving certificate of the certificate Secret rotate, which CAs the bundle
// keeps, and carrying a plan out (generating what it asks for). Pure but for the clock it is
// given: replicas that race make the same decision, and the one whose write wins decides.
// manager.ts does the reading and writing; docs/decisions/0006 explains why.
//
// The rules, for a rotation without a failed call:
// - a certificate rotates once two thirds of its validity have passed;
// - a new CA joins the bundle first, and signs no serving certificate in use until it has been
//   in every webhook's caBundle for the trust delay (the API server's watch of webhook
//   configurations must have picked it up); the serving certificate switches only then;
// - a CA leaves the bundle only once it has expired: a serving certificate never outlives the CA
//   that signed it (its notAfter is capped at the CA's), so no certificate that CA signed can
//   still serve.

import {
  bundleFingerprints,
  composeBundle,
  splitPem,
  uniqueByFingerprint,
} from "../../certs/bundle.ts";
import {
  type CertificateInfo,
  inspectCertificate,
  keyMatches,
  signedBy,
  validAt,
} from "../../certs/inspect.ts";
import {
  type Certificate,
  generateCa,
  issueServingCertificate,
  type KeyPair,
  validityWindow,
} from "../../certs/issue.ts";
import { coversNames, type ServingNames, unionNames } from "../../certs/names.ts";
import type { CertificateSet, StoredCertificates } from "./secret.ts";

export interface CertificateSettings {
  /** Validity of a serving certificate (capped at its CA's notAfter). */
  readonly certValidityMs: number;
  readonly caValidityMs: number;
  /** How long a new CA must have been in every webhook's caBundle before it signs what serves. */
  readonly trustDelayMs: number;
  readonly names: ServingNames;
}

/** How much of a validity period passes before the certificate is replaced. */
const ROTATE_AFTER = 2 / 3;

// ---------------------------------------------------------------------------------------------
// Rotation

/** When a certificate of this window is due for replacement (two thirds through). */
export function rotationTime(window: {
  readonly notBefore: number;
  readonly notAfter: number;
}): number {
  return window.notBefore + Math.floor((window.notAfter - window.notBefore) * ROTATE_AFTER);
}

// ---------------------------------------------------------------------------------------------
// The plan

export interface PlanInput {
  /** The Secret's content; undefined when there is no Secret. */
  readonly stored: StoredCertificates | undefined;
  readonly now: number;
  readonly settings: CertificateSettings;
  /**
   * Since when the signing CA (`ca.crt`) has been in the caBundle of every webhook, as this
   * replica saw it; undefined when it is not there (yet).
   */
  readonly trustedSince: number | undefined;
}

export interface CertificatePlan {
  /** Make a new CA: it signs from now on and joins the bundle. */
  readonly newCa: boolean;
  /** Issue a new serving certificate from the signing CA (the new one when newCa). */
  readonly newCert: boolean;
  /** The names a new serving certificate gets: the wanted ones, and those the current one has. */
  readonly certNames: ServingNames;
  /** The CAs the bundle keeps, before a new CA joins: unexpired ones, the signing CA included. */
  readonly keep: readonly CertificateInfo[];
  /** The Secret must be written: newCa, newCert, or the bundle changes. */
  readonly write: boolean;
  /** A serving certificate is due but waits until the signing CA has been trusted long enough. */
  readonly waitingForTrust: boolean;
  /** Why anything changes (for the logs). */
  readonly reasons: readonly string[];
  /** When the plan can next change by the clock alone (ms since the epoch; Infinity: never). */
  readonly nextCheckAt: number;
}

/**
 * What to do with the Secret's certificates at `now`. Pure: the same input gives the same plan,
 * so replicas that race agree, and the one whose write wins decides.
 */
export function planCertificates(input: PlanInput): CertificatePlan {
  const { stored, now, settings } = input;
  const wanted = settings.names;
  if (stored === undefined) {
    return {
      newCa: true,
      newCert: true,
      certNames: wanted,
      keep: [],
      write: true,
      waitingForTrust: false,
      reasons: ["no certificate Secret yet"],
      nextCheckAt: Number.POSITIVE_INFINITY,
    };
  }
  const reasons: string[] = [];
  const times: number[] = [];

  // The signing CA.
  const ca = inspectCertificate(stored.caCert);
  const caProblem =
    ca === undefined
      ? "the CA cannot be parsed"
      : !ca.isCa
        ? "ca.crt is not a CA certificate"
        : !keyMatches(ca, stored.caKey)
          ? "ca.key does not match ca.crt"
          : !validAt(ca, now)
            ? now >= ca.notAfter
              ? `the CA expired at ${iso(ca.notAfter)}`
              : `the CA is not valid before ${iso(ca.notBefore)}`
            : undefined;
  let newCa = false;
  if (caProblem !== undefined) {
    newCa = true;
    reasons.push(`${caProblem}: new CA`);
  } else if (ca !== undefined) {
    const due = rotationTime(ca);
    if (now >= due) {
      newCa = true;
      reasons.push(`the CA is two thirds through its validity (ends ${iso(ca.notAfter)}): new CA`);
    } else times.push(due);
  }

  // The bundle: every unexpired CA of it, and the signing CA.
  const candidates = splitPem(stored.bundle)
    .map(inspectCertificate)
    .filter((info) => info !== undefined);
  if (ca?.isCa === true) candidates.push(ca);
  const keep = uniqueByFingerprint(candidates.filter((info) => info.isCa && now < info.notAfter));
  for (const info of keep) times.push(info.notAfter);
  const storedBundle = bundleFingerprints(stored.bundle);
  const kept = new Set(keep.map((info) => info.fingerprint));
  const bundleChanged =
    storedBundle.length !== kept.size || storedBundle.some((fp) => !kept.has(fp));
  if (storedBundle.some((fp) => !kept.has(fp))) {
    reasons.push("an expired certificate leaves the bundle");
  }
  if (keep.some((info) => !storedBundle.includes(info.fingerprint))) {
    reasons.push("the signing CA joins the bundle");
  }

  // The serving certificate.
  const cert = inspectCertificate(stored.cert);
  const certProblem =
    cert === undefined
      ? "the serving certificate cannot be parsed"
      : !keyMatches(cert, stored.key)
        ? "tls.key does not match tls.crt"
        : !validAt(cert, now)
          ? now >= cert.notAfter
            ? `the serving certificate expired at ${iso(cert.notAfter)}`
            : `the serving certificate is not valid before ${iso(cert.notBefore)}`
          : !keep.some((issuer) => signedBy(cert, issuer))
            ? "no CA of the bundle signed the serving certificate"
            : undefined;
  let newCert = false;
  let waitingForTrust = false;
  const certNames = cert === undefined ? wanted : unionNames(wanted, cert.names);
  if (certProblem !== undefined) {
    // Nothing to lose by not waiting: the API server cannot use this one anyway.
    newCert = true;
    reasons.push(`${certProblem}: new serving certificate`);
  } else if (cert !== undefined) {
    let why: string | undefined;
    const due = rotationTime(cert);
    if (newCa) why = "the new CA is to sign it";
    else if (ca === undefined || !signedBy(cert, ca)) why = "the signing CA did not sign it";
    else if (!coversNames(cert.names, wanted)) why = "it lacks a wanted name";
    else if (now >= due) why = `it is two thirds through its validity (ends ${iso(cert.notAfter)})`;
    else times.push(due);
    if (why !== undefined) {
      times.push(cert.notAfter); // expired: replaced without waiting
      const trustedAt =
        !newCa && input.trustedSince !== undefined
          ? input.trustedSince + settings.trustDelayMs
          : undefined;
      if (trustedAt !== undefined && now >= trustedAt) {
        newCert = true;
        reasons.push(`new serving certificate: ${why}`);
      } else {
        waitingForTrust = true;
        if (trustedAt !== undefined) times.push(trustedAt);
      }
    }
  }

  const write = newCa || newCert || bundleChanged;
  return {
    newCa,
    newCert,
    certNames,
    keep,
    write,
    waitingForTrust,
    reasons,
    nextCheckAt: times.length === 0 ? Number.POSITIVE_INFINITY : Math.min(...times),
  };
}

/** The common name of a CA made at `now`: unique per CA, since clients find issuers by name. */
function caCommonName(now: number): string {
  return `lb-ip-guard CA ${new Date(now).toISOString().replace(/\.\d+Z$/, "Z")}`;
}

/**
 * Carries out a plan that writes: generates what it asks for (CPU only, milliseconds) and
 * returns the complete set for the Secret.
 */
export async function carryOut(
  plan: CertificatePlan,
  stored: StoredCertificates | undefined,
  settings: CertificateSettings,
  now: number,
): Promise<CertificateSet> {
  let signing: KeyPair;
  const bundle = [...plan.keep];
  if (plan.newCa || stored?.caCert === undefined || stored.caKey === undefined) {
    signing = await generateCa(caCommonName(now), validityWindow(now, settings.caValidityMs));
    const info = inspectCertificate(signing.cert);
    if (info === undefined) throw new Error("a generated CA cannot be parsed");
    bundle.push(info);
  } else {
    signing = { cert: stored.caCert, key: stored.caKey };
  }
  let serving: Certificate;
  if (plan.newCert || stored?.cert === undefined || stored.key === undefined) {
    const caEnd = inspectCertificate(signing.cert)?.notAfter;
    serving = await issueServingCertificate(
      signing,
      plan.certNames,
      validityWindow(now, settings.certValidityMs, caEnd),
    );
  } else {
    serving = { cert: stored.cert, key: stored.key };
  }
  return {
    cert: serving.cert,
    key: serving.key,
    caCert: signing.cert,
    caKey: signing.key,
    bundle: composeBundle(bundle),
  };
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
