// What the tests of the certificate Secret share: settings with short validities on a fixed clock,
// the set a first pass writes, and a parsed certificate that must be one.

import assert from "node:assert/strict";
import { inspectCertificate } from "../../../src/certs/inspect.ts";
import { servingNames } from "../../../src/certs/names.ts";
import {
  type CertificateSettings,
  carryOut,
  planCertificates,
} from "../../../src/cluster/certificates/plan.ts";
import type { CertificateSet } from "../../../src/cluster/certificates/secret.ts";

export const S = 1000;
export const T0 = Date.parse("2030-01-01T00:00:00Z");
export const NAMES = servingNames("lb-ip-guard", "lb-ip-guard", ["127.0.0.1"]);
export const SETTINGS: CertificateSettings = {
  certValidityMs: 30 * S,
  caValidityMs: 90 * S,
  trustDelayMs: 3 * S,
  names: NAMES,
};

/** The set a first pass writes at `now`. */
export async function bootstrap(now = T0, settings = SETTINGS): Promise<CertificateSet> {
  const plan = planCertificates({ stored: undefined, now, settings, trustedSince: undefined });
  return carryOut(plan, undefined, settings, now);
}

export function info(pem: string | undefined) {
  const parsed = inspectCertificate(pem);
  assert.ok(parsed, "a certificate");
  return parsed;
}
