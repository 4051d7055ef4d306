// Real sockets: the app over HTTPS with a generated certificate, TLS 1.2 as the floor, and a
// certificate swapped the way Kubernetes updates a Secret volume.

import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rename, rm, symlink, writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type ConnectionOptions, connect, type TLSSocket } from "node:tls";
import { pino } from "pino";
import { generate } from "selfsigned";
import {
  type Certificate,
  type GeneratedCertificate,
  generateCa,
  generateCertificate,
  type KeyPair,
  validityWindow,
} from "../../src/certs/issue.ts";
import { buildApp } from "../../src/server/app.ts";
import {
  CertificateWatcher,
  clientAuthOptions,
  readCertificate,
  readClientCa,
  secureContextOptions,
  writePem,
} from "../../src/server/tls.ts";
import { harness, httpsCall } from "./helpers.ts";

const EXAMPLE = await readFile(
  new URL("../../examples/admission-review.json", import.meta.url),
  "utf8",
);

/** The fingerprint of the certificate a fresh connection is served. */
function servedFingerprint(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port, ca, servername: "localhost" }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.end();
    });
    socket.on("error", reject);
  });
}

describe("HTTPS", () => {
  let certificate: GeneratedCertificate;
  let directory: string;
  before(async () => {
    certificate = await generateCertificate();
    directory = await mkdtemp(join(tmpdir(), "lb-ip-guard-tls-"));
  });
  after(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  it("serves reviews over TLS 1.2+ with the generated CA, and refuses TLS 1.1", async () => {
    const h = harness();
    const logs: string[] = [];
    const app = buildApp({
      state: h.state,
      logger: pino({}, { write: (line: string) => void logs.push(line) }),
      https: secureContextOptions(certificate),
    });
    await app.listen({ port: 0, host: "127.0.0.1" });
    try {
      const { port } = app.server.address() as { port: number };
      const answer = await httpsCall(`https://127.0.0.1:${port}/mutate`, certificate.ca, {
        method: "POST",
        body: EXAMPLE,
        headers: { "content-type": "application/json" },
      });
      assert.equal(answer.status, 200);
      assert.equal(JSON.parse(answer.body).response.patchType, "JSONPatch");
      assert.equal(
        (await httpsCall(`https://localhost:${port}/healthz`, certificate.ca)).status,
        200,
      );
      await assert.rejects(
        httpsCall(`https://127.0.0.1:${port}/healthz`, (await generateCertificate()).ca),
        /self-signed|unable to verify|certificate/i,
      );
      // The server sees the refusal a moment after the client does (later on a loaded machine).
      const logged = () => logs.some((line) => /TLS handshake failed/.test(line));
      for (let waited = 0; !logged() && waited < 3000; waited += 50) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.ok(logged(), "a refused handshake is logged");
      await assert.rejects(
        new Promise((resolve, reject) => {
          const socket = connect(
            {
              host: "127.0.0.1",
              port,
              ca: certificate.ca,
              maxVersion: "TLSv1.1",
              minVersion: "TLSv1",
            },
            () => resolve(socket.end()),
          );
          socket.on("error", reject);
        }),
        /protocol|version|alert/i,
      );
    } finally {
      await app.close();
    }
  });

  it("speaks TLS 1.2 with ECDHE and AEAD suites or TLS 1.3, and refuses CBC, TLS 1.1 and renegotiation", async () => {
    const app = buildApp({
      state: harness().state,
      logger: pino({ level: "silent" }),
      https: secureContextOptions(certificate),
    });
    await app.listen({ port: 0, host: "127.0.0.1" });
    const { port } = app.server.address() as { port: number };
    const handshake = (options: ConnectionOptions) =>
      new Promise<TLSSocket>((resolve, reject) => {
        const socket = connect(
          { host: "127.0.0.1", port, ca: certificate.ca, servername: "localhost", ...options },
          () => resolve(socket),
        );
        socket.on("error", reject);
      });
    try {
      const tls12 = await handshake({
        maxVersion: "TLSv1.2",
        ciphers: "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256",
      });
      assert.equal(tls12.getProtocol(), "TLSv1.2");
      assert.match(tls12.getCipher().name, /^ECDHE-(RSA|ECDSA)-AES128-GCM-SHA256$/);
      // The server refuses a client's renegotiation.
      const renegotiated = await new Promise<string>((resolve) => {
        tls12.on("error", (error) => resolve(error.message));
        tls12.renegotiate({}, (error) => resolve(error?.message ?? "renegotiated"));
        // Data drives the handshake on; the server answers it with an alert.
        tls12.write("GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n");
        setTimeout(() => resolve("no answer"), 2000).unref();
      });
      assert.match(renegotiated, /no renegotiation/, "renegotiation is refused");
      tls12.destroy();

      const tls13 = await handshake({ minVersion: "TLSv1.3" });
      assert.equal(tls13.getProtocol(), "TLSv1.3");
      assert.match(tls13.getCipher().name, /^TLS_(AES_128_GCM|AES_256_GCM|CHACHA20_POLY1305)/);
      tls13.end();

      // Every CBC suite of TLS 1.2, offered alone, finds no suite in common.
      await assert.rejects(
        handshake({
          maxVersion: "TLSv1.2",
          ciphers:
            "ECDHE-RSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES256-SHA384:ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES128-SHA:AES128-SHA256:AES128-GCM-SHA256",
        }),
        /handshake failure|no shared cipher|alert/i,
      );
      await assert.rejects(
        handshake({ maxVersion: "TLSv1.1", minVersion: "TLSv1" }),
        /protocol|version|alert/i,
      );
    } finally {
      await app.close();
    }
  });

  it("reloads a certificate swapped under a Secret-style ..data symlink, without restart", async () => {
    // Kubernetes' atomic writer: files are symlinks through ..data to a timestamped directory;
    // an update writes a new directory and renames a new ..data link over the old one.
    const write = async (name: string, pair: Certificate) => {
      await writePem(join(directory, name, "tls.crt"), pair.cert);
      await writePem(join(directory, name, "tls.key"), pair.key);
    };
    await write("..2024_01", certificate);
    await symlink("..2024_01", join(directory, "..data"));
    await symlink("..data/tls.crt", join(directory, "tls.crt"));
    await symlink("..data/tls.key", join(directory, "tls.key"));
    const certFile = join(directory, "tls.crt");
    const keyFile = join(directory, "tls.key");
    const first = await readCertificate(certFile, keyFile);

    const errors: string[] = [];
    const app = buildApp({
      state: harness().state,
      logger: pino({ level: "silent" }),
      https: secureContextOptions(first),
    });
    const watcher = new CertificateWatcher({
      certFile,
      keyFile,
      current: first,
      onChange: (next) => app.server.setSecureContext(secureContextOptions(next)),
      onError: (message) => errors.push(message),
    });
    await app.listen({ port: 0, host: "127.0.0.1" });
    try {
      const { port } = app.server.address() as { port: number };
      const before = await servedFingerprint(port, certificate.ca);
      assert.equal(before, new X509Certificate(certificate.cert).fingerprint256);
      assert.equal(await watcher.check(), false, "nothing changed yet");

      const rotated = await generateCertificate();
      await write("..2024_02", rotated);
      await symlink("..2024_02", join(directory, "..data_tmp"));
      await rename(join(directory, "..data_tmp"), join(directory, "..data"));
      assert.equal(await watcher.check(), true);
      assert.equal(
        await servedFingerprint(port, rotated.ca),
        new X509Certificate(rotated.cert).fingerprint256,
      );

      // A half-written update (new certificate, old key) is refused once and the old pair stays.
      const third = await generateCertificate();
      await writeFile(join(directory, "..2024_02", "tls.crt"), third.cert);
      assert.equal(await watcher.check(), false);
      assert.equal(await watcher.check(), false);
      assert.equal(errors.length, 1, errors.join("\n"));
      assert.match(
        errors[0] ?? "",
        /do not form a usable pair.*still serving the previous certificate/,
      );
      assert.equal(
        await servedFingerprint(port, rotated.ca),
        new X509Certificate(rotated.cert).fingerprint256,
      );
      await writeFile(join(directory, "..2024_02", "tls.key"), third.key);
      assert.equal(await watcher.check(), true);
      assert.equal(
        await servedFingerprint(port, third.ca),
        new X509Certificate(third.cert).fingerprint256,
      );
    } finally {
      watcher.stop();
      await app.close();
    }
  });

  it("refuses a certificate and key that do not match, in one line", async () => {
    const other = await generateCertificate();
    await writePem(join(directory, "mismatch", "tls.crt"), certificate.cert);
    await writePem(join(directory, "mismatch", "tls.key"), other.key);
    await assert.rejects(
      readCertificate(
        join(directory, "mismatch", "tls.crt"),
        join(directory, "mismatch", "tls.key"),
      ),
      (error: Error) =>
        /do not form a usable pair/.test(error.message) && !error.message.includes("\n"),
    );
    await assert.rejects(
      readCertificate(join(directory, "none.crt"), join(directory, "none.key")),
      /cannot read --tls-cert/,
    );
  });
});

/** A client certificate (clientAuth) signed by `ca`, as an API server's for its webhooks. */
async function clientCertificate(ca: KeyPair): Promise<Certificate> {
  const window = validityWindow(Date.now(), 3_600_000);
  const made = await generate([{ name: "commonName", value: "kube-apiserver" }], {
    keyType: "ec",
    algorithm: "sha256",
    notBeforeDate: window.notBefore,
    notAfterDate: window.notAfter,
    ca: { cert: ca.cert, key: ca.key },
    extensions: [{ name: "extKeyUsage", clientAuth: true }],
  });
  return { cert: made.cert, key: made.private };
}

/** POST /validate with the example review, presenting `client` (or no certificate). */
async function validateAs(port: number, ca: string, client?: Certificate): Promise<number> {
  const answer = await httpsCall(`https://localhost:${port}/validate`, ca, {
    method: "POST",
    body: EXAMPLE,
    headers: { "content-type": "application/json" },
    ...(client !== undefined && { client }),
  });
  return answer.status;
}

describe("caller authentication (--client-ca)", () => {
  it("answers only callers whose client certificate the client CA signed; others fail the handshake", async () => {
    const serving = await generateCertificate();
    const window = validityWindow(Date.now(), 3_600_000);
    const apiserverCa = await generateCa("apiserver client CA", window);
    const otherCa = await generateCa("someone else's CA", window);
    const h = harness();
    const app = buildApp({
      state: h.state,
      logger: pino({ level: "silent" }),
      https: {
        ...secureContextOptions(serving, apiserverCa.cert),
        ...clientAuthOptions(apiserverCa.cert),
      },
    });
    await app.listen({ port: 0, host: "127.0.0.1" });
    try {
      const port = (app.server.address() as AddressInfo).port;
      assert.equal(await validateAs(port, serving.ca, await clientCertificate(apiserverCa)), 200);
      await assert.rejects(
        validateAs(port, serving.ca),
        /certificate required|socket hang up|ECONNRESET/,
      );
      await assert.rejects(
        validateAs(port, serving.ca, await clientCertificate(otherCa)),
        /unknown ca|bad certificate|socket hang up|ECONNRESET/,
      );
      assert.equal(h.state.context().ready, true, "the server still serves");
      assert.equal(await validateAs(port, serving.ca, await clientCertificate(apiserverCa)), 200);
    } finally {
      await app.close();
    }
  });

  it("without a client CA no certificate is asked for", () => {
    assert.deepEqual(clientAuthOptions(undefined), {
      requestCert: false,
      rejectUnauthorized: false,
    });
  });

  it("a client CA file without a certificate is refused in one line naming it", async () => {
    const directory = await mkdtemp(join(tmpdir(), "lb-ip-guard-client-ca-"));
    try {
      const file = join(directory, "ca.pem");
      await writeFile(file, "not a certificate\n");
      await assert.rejects(readClientCa(file), /--client-ca .*ca\.pem holds no PEM certificate/);
      await assert.rejects(readClientCa(join(directory, "missing.pem")), /cannot read --client-ca/);
      const window = validityWindow(Date.now(), 3_600_000);
      await writeFile(file, (await generateCa("a CA", window)).cert);
      assert.match(await readClientCa(file), /BEGIN CERTIFICATE/);
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });
});
