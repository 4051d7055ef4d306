// The certificate Secret's content (src/cluster/certificates/secret.ts): base64 under the
// documented keys, there and back.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  readSecretData,
  SECRET_KEYS,
  secretData,
} from "../../../src/cluster/certificates/secret.ts";
import { bootstrap } from "./fixtures.ts";

describe("the Secret", () => {
  it("round-trips the Secret's data, base64 under the documented keys", async () => {
    const set = await bootstrap();
    const data = secretData(set);
    assert.deepEqual(Object.keys(data).sort(), [
      "ca-bundle.crt",
      "ca.crt",
      "ca.key",
      "tls.crt",
      "tls.key",
    ]);
    assert.equal(Buffer.from(data[SECRET_KEYS.cert] ?? "", "base64").toString(), set.cert);
    assert.deepEqual(readSecretData(data), set);
    assert.deepEqual(readSecretData({ "tls.crt": "" }), {
      cert: undefined,
      key: undefined,
      caCert: undefined,
      caKey: undefined,
      bundle: undefined,
    });
    assert.deepEqual(readSecretData(null), readSecretData({}));
  });
});
