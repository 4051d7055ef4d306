// `lb-ip-guard serve`: the command. Its flags (src/cli/serve-flags.ts) are checked before anything
// starts; the server (src/server/run.ts) runs until SIGTERM/SIGINT and says how it ended; this
// file turns that outcome into the exit status and the one line on stderr.

import { oneLine } from "../base/text.ts";
import type { ServeOutcome } from "../server/run.ts";
import { parseServeArgs } from "./serve-args.ts";
import { type HelpSection, SERVE_FLAGS } from "./serve-flags.ts";
import { letYoungGenerationGrow } from "./young-generation.ts";

export const SERVE_SUMMARY = "run the admission webhook (HTTPS), on a cluster or --standalone";

export const SERVE_USAGE = `Usage: lb-ip-guard serve [options]

Runs the validating and mutating admission webhook for Services: POST /mutate and
POST /validate (admission.k8s.io/v1 AdmissionReview) over HTTPS, GET /healthz and
GET /readyz on the same port, Prometheus metrics at GET /metrics on a plain-HTTP port.

Options (each also an environment variable LB_IP_GUARD_<FLAG>, e.g. LB_IP_GUARD_METRICS_PORT;
a flag wins over its variable):
${flagHelp("options")}
  -h, --help                  this help

Certificate bootstrap (on a cluster, without --tls-cert/--tls-key): a CA and a serving
certificate are kept in a Secret of --namespace, created if absent (replicas share it), the
CA bundle is put into the caBundle of every webhook of the MutatingWebhookConfiguration and
ValidatingWebhookConfiguration named --webhook-name, and both rotate before they expire (a
new CA is trusted before it signs the certificate in use, which is swapped without restart).
${flagHelp("certificates")}

Grants and address claims (on a cluster): one replica, elected by the Lease
lb-ip-guard-allocator in --namespace, grants every address; the others forward their grants
to it over --peer-port, and it answers only while its lease is fresh. Each granted address is
recorded after the answer as a claim: a Lease named after it (ip-192-168-35-100). With
--allocator claims, every replica grants and first creates that claim, so replicas never
grant one address twice. A claim whose Service does not hold the address goes after a grace
period; Services holding addresses without a claim get one.
${flagHelp("claims")}

Example (no cluster needed):
  lb-ip-guard serve --standalone --pools examples/kubeflow-v0.11/metallb-config.yaml
  curl --cacert .lb-ip-guard/ca.crt -H 'Content-Type: application/json' \\
    --data @examples/admission-review.json https://127.0.0.1:8443/mutate

Exit status: 0 after a clean shutdown (SIGTERM, SIGINT), 1 when serving fails, 2 usage or
input error.
`;

/** The --help lines of one section's flags: `--flag ARG`, then its lines from column 31. */
function flagHelp(section: HelpSection): string {
  const indent = " ".repeat(30);
  return SERVE_FLAGS.filter((flag) => flag.section === section)
    .map(({ name, arg, help }) => {
      const flag = `--${name}${arg === undefined ? "" : ` ${arg}`}`;
      const [first, ...rest] = help;
      const lead =
        flag.length < 28 ? `  ${flag.padEnd(28)}${first}` : `  ${flag}\n${indent}${first}`;
      return [lead, ...rest.map((line) => `${indent}${line}`)].join("\n");
    })
    .join("\n");
}

export interface ServeIO {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

/** The exit status of an outcome. */
function exitStatus(outcome: ServeOutcome): number {
  switch (outcome.kind) {
    case "stopped":
      return outcome.clean ? EXIT.ok : EXIT.failed;
    case "usage":
      return EXIT.usage;
    case "failed":
      return EXIT.failed;
  }
}

/** Runs until SIGTERM/SIGINT; resolves to the exit status. */
export async function runServe(args: readonly string[], io: ServeIO): Promise<number> {
  const parsed = await parseServeArgs(args, process.env);
  if (!parsed.ok) return report({ kind: "usage", message: parsed.error }, io);
  if (parsed.value === "help") {
    io.stdout(SERVE_USAGE);
    return EXIT.ok;
  }
  // The server's modules (fastify, prom-client, the Kubernetes client) load only here, so that
  // `check` and `--help` start fast.
  const { serve } = await import("../server/run.ts");
  const outcome = await serve(parsed.value, {
    // A second signal during shutdown means "now": don't wait for the delay or slow clients.
    exitNow: (now) => process.exit(exitStatus(now)),
    // The first lists are filled into caches that live on: kept small while they are, the young
    // generation need not grow for what survives anyway; the reviews after get V8's own sizing.
    ready: letYoungGenerationGrow,
  });
  if (outcome.kind === "stopped") {
    // Anything left holding the event loop (a watch that ignores its stop) must not keep a
    // terminated pod alive: exit anyway after a grace period.
    const status = exitStatus(outcome);
    setTimeout(() => process.exit(status), 5000).unref();
  }
  return report(outcome, io);
}

/** Says on stderr, in one line, why serving did not start or failed; returns the status. */
function report(outcome: ServeOutcome, io: ServeIO): number {
  if (outcome.kind === "usage") {
    io.stderr(`lb-ip-guard serve: ${oneLine(outcome.message)} (try --help)\n`);
  } else if (outcome.kind === "failed") {
    io.stderr(`lb-ip-guard serve: ${oneLine(outcome.message)}\n`);
  }
  return exitStatus(outcome);
}
