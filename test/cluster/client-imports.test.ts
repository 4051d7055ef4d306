// The Kubernetes client's configuration module loaded without the generated API's index
// (src/cluster/client-imports.ts), as the command loads it: which modules load, and that a
// kubeconfig read that way still authenticates a request. Each test file runs in a process of
// its own, so the hook registered here changes no other file's imports.

import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import { registerHooks } from "node:module";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { importClientConfigurationAlone } from "../../src/cluster/client-imports.ts";

importClientConfigurationAlone();
const loaded: string[] = [];
registerHooks({
  load(url, context, nextLoad) {
    loaded.push(url);
    return nextLoad(url, context);
  },
});
const { KubeClient, loadKubeConfig } = await import("../../src/cluster/kube.ts");

const fromClient = (part: string) =>
  loaded.filter(
    (url) => url.startsWith("file:") && url.includes(`/@kubernetes/client-node/dist/${part}`),
  );

describe("the Kubernetes client without its generated API", () => {
  let dir: string;
  const server = createServer((request, response) => {
    const authorized = request.headers.authorization === "Bearer sesame";
    response.writeHead(authorized ? 200 : 401, { "content-type": "application/json" });
    response.end(JSON.stringify({ kind: "Service", path: request.url, authorized }));
  });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "lb-ip-guard-client-imports-"));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  });
  after(async () => {
    server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("loads the configuration module and the two files it uses, not the index or any API", () => {
    assert.equal(fromClient("config.js").length, 1);
    assert.equal(fromClient("gen/configuration.js").length, 1);
    assert.equal(fromClient("gen/servers.js").length, 1);
    assert.deepEqual(fromClient("gen/index.js"), []);
    assert.deepEqual(fromClient("gen/apis/"), []);
    assert.deepEqual(fromClient("gen/models/"), []);
  });

  it("reads a kubeconfig and sends its token with a request", async () => {
    const { port } = server.address() as AddressInfo;
    const path = join(dir, "kubeconfig");
    await writeFile(
      path,
      JSON.stringify({
        apiVersion: "v1",
        kind: "Config",
        // Plain HTTP on loopback: client-node takes it only with TLS verification off.
        clusters: [
          {
            name: "local",
            cluster: { server: `http://127.0.0.1:${port}`, "insecure-skip-tls-verify": true },
          },
        ],
        users: [{ name: "reader", user: { token: "sesame" } }],
        contexts: [{ name: "local", context: { cluster: "local", user: "reader" } }],
        "current-context": "local",
      }),
    );
    const client = new KubeClient(loadKubeConfig(path));
    assert.deepEqual(await client.request("GET", "/api/v1/namespaces/default/services/web"), {
      kind: "Service",
      path: "/api/v1/namespaces/default/services/web",
      authorized: true,
    });
  });
});
