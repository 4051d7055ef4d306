// CertificateManager (src/cluster/certificates/manager.ts) against an in-memory API server: the Secret
// created once and read by a replica that lost the create, caBundle patched only when it
// differs, a Secret someone else made left alone, a configuration changed under a patch read
// again, and rotations on a fake clock: a serving certificate swapped in place, a new CA in the
// bundle before it signs what serves.

import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { describe, it } from "node:test";
import { pino } from "pino";
import type { Certificate } from "../../../src/certs/issue.ts";
import { servingNames } from "../../../src/certs/names.ts";
import { CertificateManager } from "../../../src/cluster/certificates/manager.ts";
import { readSecretData } from "../../../src/cluster/certificates/secret.ts";
import { KubeApiError, type KubeClient } from "../../../src/cluster/kube.ts";

const S = 1000;
const SECRETS = "/api/v1/namespaces/guard/secrets";
const SECRET = `${SECRETS}/lb-ip-guard-tls`;
const MUTATING = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/lb-ip-guard";
const VALIDATING =
  "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/lb-ip-guard";

type Obj = Record<string, unknown>;

/** Just enough of the API server: GET, POST, PUT (resourceVersion checked), JSON PATCH. */
class FakeApi {
  readonly objects = new Map<string, Obj>();
  readonly calls: string[] = [];
  /** Runs before a request is handled (to interleave another replica). */
  before: ((method: string, path: string) => Promise<void>) | undefined;
  #version = 1;

  constructor() {
    for (const [path, name] of [
      [MUTATING, "mutate.lb-ip-guard.dev"],
      [VALIDATING, "validate.lb-ip-guard.dev"],
    ] as const) {
      this.put(path, {
        metadata: { name: "lb-ip-guard" },
        webhooks: [{ name, clientConfig: { url: `https://127.0.0.1:8443/${name}` } }],
      });
    }
  }

  put(path: string, object: Obj): Obj {
    const stored = structuredClone(object);
    (stored.metadata as Obj).resourceVersion = String(this.#version++);
    this.objects.set(path, stored);
    return structuredClone(stored);
  }

  client(): KubeClient {
    return {
      request: (method: string, path: string, options: { body?: unknown } = {}) =>
        this.#request(method, path, options.body),
    } as unknown as KubeClient;
  }

  async #request(method: string, path: string, body: unknown): Promise<Obj> {
    await this.before?.(method, path);
    this.calls.push(`${method} ${path}`);
    const current = this.objects.get(path);
    switch (method) {
      case "GET":
        if (current === undefined) throw new KubeApiError(`GET ${path}: 404`, 404);
        return structuredClone(current);
      case "POST": {
        const object = body as Obj;
        const target = `${path}/${(object.metadata as Obj).name}`;
        if (this.objects.has(target)) throw new KubeApiError(`POST ${path}: 409 exists`, 409);
        return this.put(target, object);
      }
      case "PUT": {
        const object = body as Obj;
        if (current === undefined) throw new KubeApiError(`PUT ${path}: 404`, 404);
        if (
          (object.metadata as Obj).resourceVersion !== (current.metadata as Obj).resourceVersion
        ) {
          throw new KubeApiError(`PUT ${path}: 409 conflict`, 409);
        }
        return this.put(path, object);
      }
      case "PATCH": {
        if (current === undefined) throw new KubeApiError(`PATCH ${path}: 404`, 404);
        const next = structuredClone(current);
        for (const op of body as { op: string; path: string; value: unknown }[]) {
          const keys = op.path.split("/").slice(1);
          const last = keys.pop() as string;
          let parent: Record<string, unknown> = next;
          for (const key of keys) parent = parent[key] as Record<string, unknown>;
          if (op.op === "test") {
            if (JSON.stringify(parent[last]) !== JSON.stringify(op.value)) {
              throw new KubeApiError(`PATCH ${path}: 422 test failed at ${op.path}`, 422);
            }
          } else parent[last] = op.value;
        }
        return this.put(path, next);
      }
      default:
        throw new Error(`unexpected ${method}`);
    }
  }

  caBundles(): string[] {
    return [MUTATING, VALIDATING].flatMap((path) =>
      ((this.objects.get(path)?.webhooks ?? []) as { clientConfig: { caBundle?: string } }[]).map(
        (webhook) => Buffer.from(webhook.clientConfig.caBundle ?? "", "base64").toString(),
      ),
    );
  }

  secret() {
    return readSecretData(this.objects.get(SECRET)?.data);
  }

  count(prefix: string): number {
    return this.calls.filter((call) => call.startsWith(prefix)).length;
  }
}

function manager(api: FakeApi, clock: { now: number }) {
  const served: Certificate[] = [];
  const instance = new CertificateManager({
    client: api.client(),
    namespace: "guard",
    secretName: "lb-ip-guard-tls",
    webhookName: "lb-ip-guard",
    settings: {
      certValidityMs: 30 * S,
      caValidityMs: 90 * S,
      trustDelayMs: 3 * S,
      names: servingNames("lb-ip-guard", "guard", ["127.0.0.1"]),
    },
    onServe: (certificate) => served.push(certificate),
    logger: pino({ level: "silent" }),
    now: () => clock.now,
  });
  return { instance, served };
}

const serial = (pem: string | undefined) => new X509Certificate(pem ?? "").serialNumber;
const cas = (bundle: string) => bundle.match(/BEGIN CERTIFICATE/g)?.length ?? 0;

describe("CertificateManager", () => {
  it("creates the Secret, patches every caBundle, serves, and then changes nothing", async () => {
    const api = new FakeApi();
    const clock = { now: Date.parse("2030-01-01T00:00:00Z") };
    const { instance, served } = manager(api, clock);
    assert.match(instance.problem ?? "", /waiting for the serving certificate/);
    const delay = await instance.pass();
    const stored = api.secret();
    assert.ok(stored.cert && stored.caKey && stored.bundle);
    assert.equal(api.objects.get(SECRET)?.type, "kubernetes.io/tls");
    assert.deepEqual(api.caBundles(), [stored.bundle, stored.bundle]);
    assert.equal(served.length, 1);
    assert.equal(served[0]?.cert, stored.cert);
    assert.equal(instance.problem, undefined);
    assert.ok(delay > 0 && delay <= 30 * S, `next pass in ${delay} ms`);

    const before = api.calls.length;
    clock.now += S;
    await instance.pass();
    assert.deepEqual(
      api.calls.slice(before).map((call) => call.split(" ")[0]),
      ["GET", "GET", "GET"],
      "idempotent: reads only",
    );
    assert.equal(served.length, 1);
  });

  it("a replica that loses the create takes the winner's Secret", async () => {
    const api = new FakeApi();
    const clock = { now: Date.parse("2030-01-01T00:00:00Z") };
    const a = manager(api, clock);
    const b = manager(api, clock);
    let raced = false;
    api.before = async (method, path) => {
      if (method === "POST" && path === SECRETS && !raced) {
        raced = true;
        api.before = undefined;
        await b.instance.pass(); // B creates first, between A's GET (404) and A's POST
      }
    };
    assert.ok((await a.instance.pass()) < 1000, "A retries at once");
    assert.equal(a.served.length, 0);
    await a.instance.pass();
    assert.equal(api.count("POST"), 2, "both tried to create");
    assert.equal(api.count("PUT"), 0, "nobody overwrote");
    assert.equal(a.served[0]?.cert, b.served[0]?.cert, "one certificate for both");
  });

  it("leaves a Secret it did not make alone", async () => {
    const api = new FakeApi();
    api.put(SECRET, { metadata: { name: "lb-ip-guard-tls" }, data: { "tls.crt": "eA==" } });
    const { instance } = manager(api, { now: Date.now() });
    await assert.rejects(instance.pass(), /not made by lb-ip-guard/);
    assert.equal(api.count("PUT"), 0);
    assert.equal(api.count("PATCH"), 0);
  });

  it("reads again when a configuration changed between its read and the patch", async () => {
    const api = new FakeApi();
    const { instance, served } = manager(api, { now: Date.now() });
    api.before = async (method, path) => {
      if (method === "PATCH" && path === VALIDATING) {
        api.before = undefined;
        api.put(VALIDATING, api.objects.get(VALIDATING) as Obj); // someone else's write
      }
    };
    assert.ok((await instance.pass()) < 1000, "refused patch: again at once");
    await instance.pass();
    assert.equal(served.length, 1);
    const stored = api.secret();
    assert.deepEqual(api.caBundles(), [stored.bundle, stored.bundle]);
  });

  it("rotates on the clock: the certificate swapped in place, a new CA trusted before it signs", async () => {
    const api = new FakeApi();
    const start = Date.parse("2030-01-01T00:00:00Z");
    const clock = { now: start };
    const { instance, served } = manager(api, clock);
    await instance.pass();
    const firstCa = api.secret().caCert;

    // Two thirds through the serving certificate (30 s, backdated 3 s: due at +19 s).
    clock.now = start + 19 * S;
    await instance.pass();
    assert.equal(served.length, 2, "a new serving certificate, swapped in");
    assert.equal(api.secret().caCert, firstCa, "same CA");
    assert.equal(api.count("PATCH"), 2, "no caBundle change for a serving certificate");

    clock.now = start + 38 * S; // and again (the one of +19 s is due at +36 s)
    await instance.pass();
    assert.equal(served.length, 3);

    // Two thirds through the CA (90 s, backdated 9 s: due at +57 s).
    clock.now = start + 57 * S;
    await instance.pass();
    const staged = api.secret();
    assert.notEqual(staged.caCert, firstCa);
    assert.equal(cas(staged.bundle ?? ""), 2);
    assert.deepEqual(
      api.caBundles(),
      [staged.bundle, staged.bundle],
      "the new CA is trusted first",
    );
    const servingBefore = served.length;

    clock.now = start + 59 * S;
    const wait = await instance.pass();
    assert.ok(wait > 0 && wait <= 1 * S, `waits for the trust delay (${wait} ms)`);
    assert.equal(served.length, servingBefore, "not switched before the delay");

    clock.now = start + 60 * S;
    await instance.pass();
    assert.equal(served.length, servingBefore + 1, "switched after it");
    const leaf = new X509Certificate(served.at(-1)?.cert ?? "");
    assert.ok(leaf.verify(new X509Certificate(staged.caCert ?? "").publicKey));
    assert.notEqual(serial(served.at(-1)?.cert), serial(served.at(-2)?.cert));

    // The first CA expires (+90 s): it leaves the bundle and every caBundle.
    clock.now = start + 90 * S;
    await instance.pass();
    assert.equal(cas(api.secret().bundle ?? ""), 1);
    assert.deepEqual(api.caBundles().map(cas), [1, 1], "pruned from the configurations too");
  });
});
