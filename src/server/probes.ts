// The answers of GET /healthz and GET /readyz, served on the admission port and on the metrics
// port alike: with caller authentication (--client-ca) a kubelet's probe, which presents no
// client certificate, can only reach the plain-HTTP metrics port.

import type { AdmissionState } from "../admission/ports.ts";
import { oneLine } from "../base/text.ts";

export interface ProbeSources {
  readonly state: AdmissionState;
  /** Why TLS cannot serve right now (no certificate, expired), or undefined when it can. */
  readonly tlsProblem?: () => string | undefined;
  /** What is degraded but keeps the webhook ready (a broken watch: ADR 0002). */
  readonly degraded?: () => readonly string[];
  /** True once shutdown began: not ready, so endpoints drop this pod while it still serves. */
  readonly stopping?: () => boolean;
}

export interface ProbeAnswer {
  readonly status: 200 | 503;
  /** One line of plain text. */
  readonly text: string;
}

/** The process is alive. */
export const HEALTHY: ProbeAnswer = { status: 200, text: "ok\n" };

/** Ready when pools and Services are synced, TLS can serve and shutdown has not begun. */
export function readiness(sources: ProbeSources): ProbeAnswer {
  const problems: string[] = [];
  let ready = false;
  try {
    ready = sources.state.context().ready;
  } catch (error) {
    problems.push(`state unavailable: ${(error as Error).message}`);
  }
  if (!ready && problems.length === 0) problems.push("pools and Services are not synced yet");
  if (sources.stopping?.() === true) problems.unshift("shutting down");
  const tls = sources.tlsProblem?.();
  if (tls !== undefined) problems.push(tls);
  if (problems.length > 0) {
    return { status: 503, text: `not ready: ${oneLine(problems.join("; "))}\n` };
  }
  const degraded = sources.degraded?.() ?? [];
  return {
    status: 200,
    text: degraded.length > 0 ? `ok, degraded: ${oneLine(degraded.join("; "))}\n` : "ok\n",
  };
}
