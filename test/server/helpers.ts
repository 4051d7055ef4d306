// Shared by the server tests: an app over standalone state with captured logs, and HTTPS calls
// with a given CA.

import { type ChildProcess, spawn } from "node:child_process";
import { type Agent, request as httpsRequest } from "node:https";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import type { IPTarget } from "../../src/admission/patch.ts";
import { policyFor } from "../../src/ipam/decide.ts";
import { buildApp, type WebhookApp } from "../../src/server/app.ts";
import { Metrics } from "../../src/server/metrics.ts";
import { StandaloneState } from "../../src/server/standalone.ts";
import { poolSet } from "../admission/fixtures.ts";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const MAIN = join(ROOT, "src/cli/main.ts");

export interface Harness {
  readonly app: WebhookApp;
  readonly state: StandaloneState;
  readonly metrics: Metrics;
  /** Every log record written so far, parsed. */
  readonly logs: Record<string, unknown>[];
}

export function harness(
  options: { ipTarget?: IPTarget; bodyLimit?: number; tlsProblem?: () => string | undefined } = {},
): Harness {
  const logs: Record<string, unknown>[] = [];
  const logger = pino(
    { level: "debug" },
    { write: (line: string) => void logs.push(JSON.parse(line)) },
  );
  const state = new StandaloneState(poolSet(), {
    policy: policyFor(),
    ipTarget: options.ipTarget ?? "spec",
  });
  const metrics = new Metrics({ view: () => state.view, processMetrics: false });
  const app = buildApp({
    state,
    logger,
    metrics,
    ...(options.bodyLimit !== undefined && { bodyLimit: options.bodyLimit }),
    ...(options.tlsProblem !== undefined && { tlsProblem: options.tlsProblem }),
  });
  return { app, state, metrics, logs };
}

export interface HttpsAnswer {
  readonly status: number;
  readonly body: string;
  readonly headers: Record<string, string | string[] | undefined>;
}

/**
 * One HTTPS request trusting only `ca`, presenting `client` when given, on a connection of its
 * own unless an agent is given.
 */
export function httpsCall(
  url: string,
  ca: string,
  options: {
    method?: string;
    body?: string | Buffer;
    headers?: Record<string, string>;
    client?: { readonly cert: string; readonly key: string };
    agent?: Agent;
  } = {},
): Promise<HttpsAnswer> {
  return new Promise((resolve, reject) => {
    const call = httpsRequest(
      url,
      {
        method: options.method ?? "GET",
        ca,
        headers: options.headers,
        agent: options.agent ?? false,
        ...options.client,
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () =>
          resolve({
            status: response.statusCode ?? 0,
            body: Buffer.concat(chunks).toString("utf8"),
            headers: response.headers,
          }),
        );
        response.on("error", reject);
      },
    );
    call.on("error", reject);
    call.end(options.body);
  });
}

/** `lb-ip-guard serve` running as its own process, and what it has written so far. */
export interface ServeProcess {
  readonly process: ChildProcess;
  /** The startup record: `url`, `caFile`, `pools`, `metricsPort`, ... */
  readonly startup: Record<string, unknown>;
  /** Every log record written so far, parsed, and the lines they came from. */
  readonly records: Record<string, unknown>[];
  readonly rawLines: string[];
  /** Lines that are not a JSON record: a log line a client managed to break or forge. */
  readonly unparsed: string[];
  /** What it wrote to stderr so far. */
  stderr(): string;
  /** Resolves with the exit code once the process has ended. */
  readonly exited: Promise<number | null>;
}

/**
 * Starts `lb-ip-guard serve` (the source entry point, as the command runs it) with `args` on
 * loopback with free ports, and resolves once it has logged where it serves.
 */
export async function startServe(args: readonly string[]): Promise<ServeProcess> {
  const server = spawn(
    process.execPath,
    [
      MAIN,
      "serve",
      ...args,
      ...["--port", "0", "--metrics-port", "0", "--peer-port", "0", "--host", "127.0.0.1"],
    ],
    {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
      env: { PATH: process.env.PATH, HOME: process.env.HOME },
    },
  );
  let stderr = "";
  server.stderr?.on("data", (chunk) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => server.on("exit", resolve));
  const records: Record<string, unknown>[] = [];
  const rawLines: string[] = [];
  const unparsed: string[] = [];
  const startup = await new Promise<Record<string, unknown>>((resolve, reject) => {
    onLines(server.stdout as NodeJS.ReadableStream, (line) => {
      rawLines.push(line);
      let record: Record<string, unknown>;
      try {
        record = JSON.parse(line) as Record<string, unknown>;
      } catch {
        unparsed.push(line);
        return;
      }
      records.push(record);
      if (typeof record.url === "string") resolve(record);
    });
    void exited.then((code) => reject(new Error(`serve exited ${code}: ${stderr}`)));
  });
  return {
    process: server,
    startup,
    records,
    rawLines,
    unparsed,
    stderr: () => stderr,
    exited,
  };
}

/**
 * Calls `each` with every line of a stream, split at "\n" only, as log collectors split: Node's
 * readline also splits at U+2028 and U+2029, which a JSON string may hold unescaped.
 */
function onLines(input: NodeJS.ReadableStream, each: (line: string) => void): void {
  let rest = "";
  input.setEncoding("utf8");
  input.on("data", (chunk: string) => {
    const lines = (rest + chunk).split("\n");
    rest = lines.pop() ?? "";
    for (const line of lines) each(line);
  });
}
