// The fuzz suite (issue 13 item 7, ADR 0010): generated and mutated AdmissionReviews
// (./fuzz-reviews.ts) posted one after the other to `lb-ip-guard serve --standalone` running as
// its own process over HTTPS. For every answer: no 5xx; a 200 is an admission.k8s.io/v1
// AdmissionReview with the request's uid; any other status is a one-line JSON error, and a 400
// exactly when the review is refused at the edge. Every decision, /validate's and /mutate's,
// equals the pure core's (`admitWithClaims` over a state built from the same flags by the same
// code): the oracle is fed every review the server got, in the same order, so it models the
// state the server's grants change (dry runs or not). After the run the process is alive,
// answers /healthz, and logged no error.
//
// LB_IP_GUARD_FUZZ_SEED replays a run, LB_IP_GUARD_FUZZ_RUNS sets its length (scripts/fuzz.sh
// runs a long one).

import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { Agent } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { pino } from "pino";
import { admitWithClaims } from "../../src/admission/claimed-admission.ts";
import { parseAdmissionReview } from "../../src/admission/review.ts";
import { isRecord } from "../../src/base/objects.ts";
import { oneLine } from "../../src/base/text.ts";
import { parseServeArgs } from "../../src/cli/serve-args.ts";
import { loadPoolFiles } from "../../src/manifests/pool-files.ts";
import { DEFAULT_BODY_LIMIT } from "../../src/server/app.ts";
import { type ServeState, startServeState } from "../../src/server/serve-state.ts";
import { type FuzzCase, fuzzCase, JSON_CONTENT_TYPES } from "./fuzz-reviews.ts";
import { type HttpsAnswer, httpsCall, ROOT, type ServeProcess, startServe } from "./helpers.ts";

const POOLS = [
  join(ROOT, "examples/ipaddresspool/pools.yaml"),
  join(ROOT, "examples/kubeflow-v0.11/metallb-config.yaml"),
];

function positiveInteger(variable: string, fallback: number): number {
  const text = process.env[variable];
  if (text === undefined || text === "") return fallback;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new Error(`${variable} must be a whole number, not ${JSON.stringify(text)}`);
  }
  return value;
}

const SEED = positiveInteger("LB_IP_GUARD_FUZZ_SEED", Date.now() % 2 ** 31);
const RUNS = positiveInteger("LB_IP_GUARD_FUZZ_RUNS", 2_000);

/** What the server must answer, by the oracle. */
type Expected =
  | { readonly status: 413 | 415 }
  | { readonly status: 400; readonly error: string | undefined }
  | {
      readonly status: 200;
      readonly uid: string;
      readonly response: unknown;
      /** How the core decided, and why, for the counts. */
      readonly decision: string;
    };

/**
 * The answer the pure core gives the body: refused unread when not JSON, a 400 when the body is
 * not JSON or not a review the webhook can answer (the edge's own check, `parseAdmissionReview`;
 * the exact words are checked for those), else the decision, recorded in the oracle's state as
 * the server records it in its own.
 */
function expectedAnswer(request: FuzzCase, state: ServeState): Expected {
  if (!JSON_CONTENT_TYPES.includes(request.contentType)) return { status: 415 };
  if (request.body.length > DEFAULT_BODY_LIMIT) return { status: 413 };
  let body: unknown;
  try {
    body = JSON.parse(request.body.toString("utf8"));
  } catch {
    return { status: 400, error: undefined };
  }
  if (body === null) return { status: 400, error: undefined };
  const parsed = parseAdmissionReview(body);
  // The edge's refusal, as every error goes out: on one line.
  if (!parsed.ok) return { status: 400, error: oneLine(parsed.error) };
  const outcome = admitWithClaims(request.webhook, parsed.value, state);
  assert.ok(!(outcome instanceof Promise), "standalone admission answers synchronously");
  return {
    status: 200,
    uid: parsed.value.uid,
    response: JSON.parse(JSON.stringify(outcome.response)),
    decision: `${outcome.decision}${outcome.reason === undefined ? "" : ` ${outcome.reason}`}`,
  };
}

/** Why a 200's body is not an AdmissionReview answering `uid`, or undefined. */
function admissionReviewProblem(body: unknown, uid: string): string | undefined {
  if (
    !isRecord(body) ||
    body.apiVersion !== "admission.k8s.io/v1" ||
    body.kind !== "AdmissionReview"
  )
    return "not an admission.k8s.io/v1 AdmissionReview";
  const response = body.response;
  if (!isRecord(response)) return "no response";
  if (response.uid !== uid)
    return `response.uid ${JSON.stringify(response.uid)} is not the request's`;
  if (typeof response.allowed !== "boolean") return "response.allowed is not a boolean";
  if (response.allowed === false) {
    const status = response.status;
    if (
      !isRecord(status) ||
      ![403, 422].includes(status.code as number) ||
      typeof status.message !== "string"
    )
      return "a denial without a status {code 403 or 422, message}";
  }
  if (response.patch !== undefined) {
    if (response.patchType !== "JSONPatch") return "a patch without patchType JSONPatch";
    const operations: unknown = JSON.parse(
      Buffer.from(String(response.patch), "base64").toString("utf8"),
    );
    const wellFormed =
      Array.isArray(operations) &&
      operations.every(
        (operation) =>
          isRecord(operation) &&
          typeof operation.op === "string" &&
          String(operation.path).startsWith("/"),
      );
    if (!wellFormed) return "the patch is not a list of JSON Patch operations";
  }
  const warnings = response.warnings;
  if (
    warnings !== undefined &&
    !(Array.isArray(warnings) && warnings.every((warning) => typeof warning === "string"))
  )
    return "warnings is not a list of strings";
  return undefined;
}

function checkAnswer(answer: HttpsAnswer, expected: Expected): void {
  assert.equal(answer.status, expected.status, answer.body.slice(0, 500));
  if (expected.status !== 200) {
    assert.ok(!answer.body.trimEnd().includes("\n"), "the error is one line");
    const error = JSON.parse(answer.body) as { error?: unknown };
    assert.equal(typeof error.error, "string", answer.body);
    if (expected.status === 400 && expected.error !== undefined)
      assert.equal(error.error, expected.error);
    return;
  }
  const body: unknown = JSON.parse(answer.body);
  const problem = admissionReviewProblem(body, expected.uid);
  assert.equal(problem, undefined, `${problem}: ${answer.body.slice(0, 500)}`);
  assert.deepEqual(
    (body as { response: unknown }).response,
    expected.response,
    "the pure core's decision",
  );
}

describe("fuzz: generated and mutated AdmissionReviews against the real server", () => {
  let directory: string;
  let serving: ServeProcess | undefined;
  before(async () => {
    directory = await mkdtemp(join(tmpdir(), "lb-ip-guard-fuzz-"));
  });
  after(async () => {
    if (serving !== undefined && serving.process.exitCode === null) {
      serving.process.kill("SIGTERM");
      await serving.exited;
    }
    await rm(directory, { recursive: true, force: true });
  });

  it(`${RUNS} requests: no 5xx, no crash, valid reviews with their uid, the core's decisions`, {
    timeout: 30 * 60_000,
  }, async (t) => {
    t.diagnostic(
      `seed ${SEED}; replay: LB_IP_GUARD_FUZZ_SEED=${SEED} LB_IP_GUARD_FUZZ_RUNS=${RUNS}`,
    );
    const caOut = join(directory, "ca.crt");
    const args = ["--standalone", ...POOLS.flatMap((file) => ["--pools", file]), "--ca-out", caOut];
    const running = await startServe(args);
    serving = running;
    const base = String(running.startup.url);
    const ca = await readFile(caOut, "utf8");

    // The oracle's state, from the same flags by the same steps as the server's.
    const config = await parseServeArgs(args, {});
    assert.ok(config.ok && config.value !== "help");
    const pools = await loadPoolFiles(config.value.pools, config.value.metallbNamespace);
    assert.ok(pools.ok, pools.ok ? "" : pools.error);
    const started = await startServeState(
      config.value,
      pools.value,
      undefined,
      pino({ level: "silent" }),
      {
        claim: () => {},
        collected: () => {},
      },
    );
    assert.ok(started.ok);
    const oracle = started.value.state;

    // One connection, kept alive, as an apiserver calls: the order of the reviews is the order
    // in which the server decides them, which the oracle's state follows.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const counts = new Map<string, number>();
    const count = (key: string) => counts.set(key, (counts.get(key) ?? 0) + 1);
    const began = performance.now();
    await fc.assert(
      fc.asyncProperty(fuzzCase, async (request) => {
        const answer = await httpsCall(`${base}/${request.webhook}`, ca, {
          method: "POST",
          body: request.body,
          headers: { "content-type": request.contentType },
          agent,
        });
        count(`${request.origin} ${answer.status}`);
        // The server's answer first: where the core throws, the server's 500 is the finding.
        assert.ok(answer.status < 500, `HTTP ${answer.status}: ${answer.body.slice(0, 500)}`);
        // Checked here, not only at the end, so that the report names a case close to the one
        // that broke it (a turn's log lines are written after its answers).
        const broken = running.unparsed[0];
        assert.equal(broken, undefined, `a log line is not JSON: ${broken?.slice(0, 2000)}`);
        const expected = expectedAnswer(request, oracle);
        if (expected.status === 200) count(`${request.webhook} ${expected.decision}`);
        checkAnswer(answer, expected);
      }),
      // No shrinking: each case meets the state every earlier one left, so a smaller case,
      // tried after the failure, would not meet the same state; the seed replays the run.
      { seed: SEED, numRuns: RUNS, endOnFailure: true },
    );
    const seconds = (performance.now() - began) / 1000;
    agent.destroy();
    t.diagnostic(`${RUNS} requests in ${seconds.toFixed(1)} s`);
    t.diagnostic(
      [...counts.entries()]
        .sort()
        .map(([key, n]) => `${key}: ${n}`)
        .join(", "),
    );

    assert.equal(running.process.exitCode, null, `the server ended: ${running.stderr()}`);
    const health = await httpsCall(`${base}/healthz`, ca);
    assert.equal(health.status, 200);
    assert.deepEqual(running.unparsed, [], "every log line is a JSON record");
    const errors = running.records.filter((record) => Number(record.level) >= 50);
    assert.deepEqual(errors, [], "the server logged no error");
    if (RUNS >= 1_000) {
      // A run this long that never reached a decision, a patch, a denial or the edge's refusal
      // would prove nothing about them: the grammar must reach every kind of answer.
      const keys = [...counts.keys()];
      for (const reached of [
        "validate allowed",
        "validate denied",
        "mutate assigned",
        "mutate denied",
        "grammar 400",
        "mutated 200",
        "bytes 400",
      ]) {
        assert.ok(
          keys.some((key) => key.startsWith(reached)),
          `no "${reached}" in ${RUNS} requests`,
        );
      }
    }
  });
});
