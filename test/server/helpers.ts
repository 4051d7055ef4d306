// Shared by the server tests: an app over standalone state with captured logs, and HTTPS calls
// with a given CA.

import { request as httpsRequest } from "node:https";
import { pino } from "pino";
import type { IPTarget } from "../../src/admission/patch.ts";
import { policyFor } from "../../src/ipam/decide.ts";
import { buildApp, type WebhookApp } from "../../src/server/app.ts";
import { Metrics } from "../../src/server/metrics.ts";
import { StandaloneState } from "../../src/server/standalone.ts";
import { poolSet } from "../admission/fixtures.ts";

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

/** One HTTPS request trusting only `ca`, presenting `client` when given. */
export function httpsCall(
  url: string,
  ca: string,
  options: {
    method?: string;
    body?: string;
    headers?: Record<string, string>;
    client?: { readonly cert: string; readonly key: string };
  } = {},
): Promise<HttpsAnswer> {
  return new Promise((resolve, reject) => {
    const call = httpsRequest(
      url,
      {
        method: options.method ?? "GET",
        ca,
        headers: options.headers,
        agent: false,
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
