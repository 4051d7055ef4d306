// The caBundle of the webhook configurations (src/cluster/certificates/webhook-configuration.ts):
// a patch guarded by names and the resourceVersion, sent only when a caBundle holds other CAs.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { composeBundle } from "../../../src/certs/bundle.ts";
import {
  caBundlePatch,
  trustsCa,
} from "../../../src/cluster/certificates/webhook-configuration.ts";
import { bootstrap, info, S, T0 } from "./fixtures.ts";

describe("the caBundle patch", () => {
  function configuration(caBundles: (string | undefined)[]) {
    return {
      metadata: { name: "lb-ip-guard", resourceVersion: "42" },
      webhooks: caBundles.map((bundle, index) => ({
        name: `hook-${index}.lb-ip-guard.dev`,
        clientConfig: {
          url: "https://127.0.0.1:8443/validate",
          ...(bundle !== undefined && { caBundle: Buffer.from(bundle).toString("base64") }),
        },
      })),
    };
  }

  it("patches each webhook whose caBundle differs, guarded by its name and the resourceVersion", async () => {
    const set = await bootstrap();
    const encoded = Buffer.from(set.bundle).toString("base64");
    assert.deepEqual(caBundlePatch(configuration([undefined, set.bundle, "garbage"]), set.bundle), [
      { op: "test", path: "/metadata/resourceVersion", value: "42" },
      { op: "test", path: "/webhooks/0/name", value: "hook-0.lb-ip-guard.dev" },
      { op: "add", path: "/webhooks/0/clientConfig/caBundle", value: encoded },
      { op: "test", path: "/webhooks/2/name", value: "hook-2.lb-ip-guard.dev" },
      { op: "add", path: "/webhooks/2/clientConfig/caBundle", value: encoded },
    ]);
  });

  it("is idempotent: no patch when every caBundle holds the same CAs, in any order", async () => {
    const set = await bootstrap();
    const other = await bootstrap(T0 + 5 * S);
    const two = composeBundle([info(set.caCert), info(other.caCert)]);
    const reversed = `${other.caCert}${set.caCert}`;
    assert.deepEqual(caBundlePatch(configuration([two, reversed]), two), []);
    assert.deepEqual(caBundlePatch({ metadata: {}, webhooks: [] }, two), []);
    assert.equal(caBundlePatch(configuration([set.bundle]), two).length, 3, "a CA is missing");
    assert.equal(caBundlePatch(configuration([two]), set.bundle).length, 3, "a CA too many");
  });

  it("sees whether every webhook trusts a CA", async () => {
    const set = await bootstrap();
    const other = await bootstrap(T0 + 5 * S);
    assert.ok(trustsCa(configuration([set.bundle, set.bundle]), set.caCert));
    assert.ok(!trustsCa(configuration([set.bundle, undefined]), set.caCert));
    assert.ok(!trustsCa(configuration([other.bundle]), set.caCert));
    assert.ok(!trustsCa(configuration([set.bundle]), "not a certificate"));
  });
});
