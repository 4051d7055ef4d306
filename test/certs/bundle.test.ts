// CA bundles (src/certs/bundle.ts): one PEM per CA in a stable order, compared as sets.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { composeBundle, sameBundle, splitPem } from "../../src/certs/bundle.ts";
import { inspectCertificate } from "../../src/certs/inspect.ts";
import { generateCa, validityWindow } from "../../src/certs/issue.ts";

const S = 1000;
const T0 = Date.parse("2030-01-01T00:00:00Z");

function info(pem: string | undefined) {
  const parsed = inspectCertificate(pem);
  assert.ok(parsed, "a certificate");
  return parsed;
}

describe("bundles", () => {
  it("composes one PEM per CA, oldest first, whatever the input order; compares as sets", async () => {
    const a = info((await generateCa("a", validityWindow(T0, 90 * S))).cert);
    const b = info((await generateCa("b", validityWindow(T0 + 10 * S, 90 * S))).cert);
    const bundle = composeBundle([b, a, b]);
    assert.equal(bundle, composeBundle([a, b]));
    assert.deepEqual(
      splitPem(bundle).map((pem) => info(pem).fingerprint),
      [a.fingerprint, b.fingerprint],
    );
    assert.ok(sameBundle(bundle, `junk\n${b.pem}\n\n${a.pem}`));
    assert.ok(!sameBundle(bundle, a.pem));
  });
});
