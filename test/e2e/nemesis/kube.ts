// The storm's own API client: HTTPS straight to the API server with the admin kubeconfig's client
// certificate, over kept-alive connections. A kubectl per request costs ~100 ms of CPU, which on
// a 2-core machine the API server, etcd, the replicas and MetalLB need more; kubectl stays for
// setup and the checks.

import { readFile } from "node:fs/promises";
import { Agent, request } from "node:https";
import { parse } from "yaml";

export interface KubeAnswer {
  status: number;
  body: string;
}

/** No answer within the request's time (ours, not the API server's). */
export class KubeTimeout extends Error {}

export interface KubeClient {
  /** One request; rejects with KubeTimeout after `timeoutMs`, or on a connection error. */
  send(method: string, path: string, body?: unknown, timeoutMs?: number): Promise<KubeAnswer>;
  /**
   * A watch: each event's JSON line to `onEvent` until the server ends the stream or `signal`
   * aborts; resolves then.
   */
  watch(path: string, onEvent: (event: unknown) => void, signal: AbortSignal): Promise<void>;
  close(): void;
}

interface Kubeconfig {
  clusters: { cluster: { server: string; "certificate-authority-data": string } }[];
  users: { user: { "client-certificate-data": string; "client-key-data": string } }[];
}

export async function kubeClient(kubeconfigPath: string): Promise<KubeClient> {
  const config = parse(await readFile(kubeconfigPath, "utf8")) as Kubeconfig;
  const cluster = config.clusters[0]?.cluster;
  const user = config.users[0]?.user;
  if (cluster === undefined || user === undefined)
    throw new Error(`${kubeconfigPath}: no cluster or user`);
  const decode = (b64: string) => Buffer.from(b64, "base64").toString();
  const agent = new Agent({
    keepAlive: true,
    maxSockets: 32,
    ca: decode(cluster["certificate-authority-data"]),
    cert: decode(user["client-certificate-data"]),
    key: decode(user["client-key-data"]),
  });
  const base = new URL(cluster.server);
  const open = (method: string, path: string, body: string | undefined) =>
    request({
      agent,
      host: base.hostname,
      port: base.port,
      method,
      path,
      headers: {
        accept: "application/json",
        ...(body !== undefined && {
          "content-type": method === "PATCH" ? "application/merge-patch+json" : "application/json",
          "content-length": Buffer.byteLength(body),
        }),
      },
    });
  return {
    send: (method, path, body, timeoutMs = 30_000) =>
      new Promise((resolve, reject) => {
        const text = body === undefined ? undefined : JSON.stringify(body);
        const req = open(method, path, text);
        const timer = setTimeout(
          () => req.destroy(new KubeTimeout(`${method} ${path}: no answer in ${timeoutMs} ms`)),
          timeoutMs,
        );
        req.on("response", (res) => {
          let answer = "";
          res.setEncoding("utf8");
          res.on("data", (chunk: string) => {
            answer += chunk;
          });
          res.on("end", () => {
            clearTimeout(timer);
            resolve({ status: res.statusCode ?? 0, body: answer });
          });
          res.on("error", reject);
        });
        req.on("error", (err) => {
          clearTimeout(timer);
          reject(err);
        });
        req.end(text);
      }),
    watch: (path, onEvent, signal) =>
      new Promise((resolve) => {
        const req = open("GET", path, undefined);
        const stop = () => req.destroy();
        signal.addEventListener("abort", stop, { once: true });
        const done = () => {
          signal.removeEventListener("abort", stop);
          resolve();
        };
        req.on("response", (res) => {
          let pending = "";
          res.setEncoding("utf8");
          res.on("data", (chunk: string) => {
            pending += chunk;
            const lines = pending.split("\n");
            pending = lines.pop() ?? "";
            for (const line of lines) if (line.trim() !== "") onEvent(JSON.parse(line));
          });
          res.on("end", done);
          res.on("error", done);
          res.on("close", done);
        });
        req.on("error", done);
        req.end();
      }),
    close: () => agent.destroy(),
  };
}
