// Making certificates (src/certs/issue.ts): validity windows, and the CA and serving certificate
// of standalone mode.

import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { describe, it } from "node:test";
import { certificateProblem } from "../../src/certs/inspect.ts";
import { generateCertificate, validityWindow } from "../../src/certs/issue.ts";

const S = 1000;
const T0 = Date.parse("2030-01-01T00:00:00Z");

describe("validity windows", () => {
  it("backdates notBefore by 60 s, or a tenth of a short validity, caps notAfter, whole seconds", () => {
    const long = validityWindow(T0 + 123, 90 * 86_400 * S);
    assert.equal(long.notBefore.getTime(), T0 - 60 * S);
    assert.equal(long.notAfter.getTime(), T0 + 90 * 86_400 * S);
    const short = validityWindow(T0, 20 * S);
    assert.equal(short.notBefore.getTime(), T0 - 2 * S);
    assert.equal(short.notAfter.getTime(), T0 + 20 * S);
    const capped = validityWindow(T0, 20 * S, T0 + 5_500);
    assert.equal(capped.notAfter.getTime(), T0 + 5 * S, "never past the cap");
  });
});

describe("the standalone certificate", () => {
  it("generates a CA and a serving certificate for localhost, 127.0.0.1 and ::1", async () => {
    const certificate = await generateCertificate();
    const leaf = new X509Certificate(certificate.cert);
    const ca = new X509Certificate(certificate.ca);
    assert.ok(leaf.verify(ca.publicKey), "the CA signed the serving certificate");
    assert.ok(ca.ca);
    assert.ok(!leaf.ca);
    assert.match(leaf.subjectAltName ?? "", /DNS:localhost/);
    assert.match(leaf.subjectAltName ?? "", /IP Address:127\.0\.0\.1/);
    assert.match(leaf.subjectAltName ?? "", /IP Address:0:0:0:0:0:0:0:1|IP Address:::1/);
    assert.equal(certificateProblem(certificate), undefined);
    assert.match(
      certificateProblem(certificate, Date.now() + 400 * 24 * 3600 * 1000) ?? "",
      /expired/,
    );
  });
});
