// certs/generate.ts: the development CA and serving certificate, for every name a developer or
// the API server dials, keys private, and usable by `serve --tls-cert/--tls-key` as they are.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { generateDevCertificates } from "../../certs/generate.ts";
import { readCertificate } from "../../src/server/tls.ts";

const SCRIPT = fileURLToPath(new URL("../../certs/generate.ts", import.meta.url));

describe("certs/generate.ts", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "lb-ip-guard-certs-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("writes a CA and a certificate it signed for localhost, loopback and the Service names", async () => {
    const files = await generateDevCertificates({
      out: join(dir, "api"),
      service: "guard",
      namespace: "net",
      days: 7,
      sans: ["guard.example.test"],
    });
    const ca = new X509Certificate(await readFile(files.ca));
    const leaf = new X509Certificate(await readFile(files.cert));
    assert.ok(ca.ca && !leaf.ca);
    assert.ok(leaf.verify(ca.publicKey));
    for (const name of [
      "DNS:localhost",
      "DNS:guard.net.svc",
      "DNS:guard.net.svc.cluster.local",
      "DNS:guard.net",
      "DNS:guard.example.test",
      "IP Address:127.0.0.1",
    ]) {
      assert.ok(
        leaf.subjectAltName?.split(", ").includes(name),
        `${name} in ${leaf.subjectAltName}`,
      );
    }
    assert.ok(leaf.checkIP("::1"));
    const days = (Date.parse(leaf.validTo) - Date.now()) / 86_400_000;
    assert.ok(days > 6.9 && days <= 7, `valid ${days} days`);
    assert.equal((await stat(files.key)).mode & 0o777, 0o600);
    assert.equal((await stat(files.caKey)).mode & 0o777, 0o600);
    await readCertificate(files.cert, files.key); // the pair serve would load
  });

  it("runs as a script, and refuses a bad flag with exit 2", async () => {
    const run = (args: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        execFile(process.execPath, [SCRIPT, ...args], (error, stdout, stderr) =>
          resolve({ code: error === null ? 0 : Number(error.code), stdout, stderr }),
        );
      });
    const out = join(dir, "cli");
    const ok = await run(["--out", out, "--days", "2"]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /Wrote .*ca\.crt.*tls\.key \(valid 2 days\)/);
    assert.match(ok.stdout, /lb-ip-guard\.lb-ip-guard\.svc/);
    await readCertificate(join(out, "tls.crt"), join(out, "tls.key"));
    const bad = await run(["--days", "0"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--days/);
  });
});
