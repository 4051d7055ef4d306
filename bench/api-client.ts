// The API client the benchmarks on the e2e control plane share: plain HTTPS as the harness's
// admin (its client certificate from the kubeconfig), so a request costs what the API server
// makes it cost and nothing of a client library's.

import { readFile } from "node:fs/promises";
import { Agent, request } from "node:https";
import { performance } from "node:perf_hooks";
import { parse } from "yaml";
import type { ControlPlane } from "../test/e2e/harness.ts";

/**
 * HTTPS to the apiserver as the harness's admin, over `sockets` kept-alive connections (one by
 * default: bench:apply times one create at a time; bench:scale creates in parallel).
 */
export class ApiClient {
  readonly #agent: Agent;
  readonly #base: URL;
  connections = 0;

  constructor(cp: ControlPlane, user: { cert: string; key: string }, sockets = 1) {
    this.#base = new URL(cp.apiserverUrl);
    this.#agent = new Agent({ keepAlive: true, maxSockets: sockets, ca: cp.caPem, ...user });
  }

  send(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; text: string; ms: number }> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const started = performance.now();
      const req = request(
        {
          host: this.#base.hostname,
          port: this.#base.port,
          method,
          path,
          agent: this.#agent,
          headers: {
            accept: "application/json",
            ...(payload !== undefined && {
              "content-type": "application/json",
              "content-length": Buffer.byteLength(payload),
            }),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.on("end", () =>
            resolve({
              status: res.statusCode ?? 0,
              text: Buffer.concat(chunks).toString("utf8"),
              ms: performance.now() - started,
            }),
          );
          res.on("error", reject);
        },
      );
      req.on("socket", (socket) => {
        if (!req.reusedSocket) this.connections += 1;
        socket.setNoDelay(true);
      });
      req.on("error", reject);
      req.end(payload);
    });
  }

  close(): void {
    this.#agent.destroy();
  }
}

export async function adminUser(cp: ControlPlane): Promise<{ cert: string; key: string }> {
  const config = parse(await readFile(cp.kubeconfigPath, "utf8")) as {
    users: { user: Record<string, string> }[];
  };
  const user = config.users[0]?.user ?? {};
  const decode = (field: string) => Buffer.from(user[field] ?? "", "base64").toString("utf8");
  return { cert: decode("client-certificate-data"), key: decode("client-key-data") };
}
