// The HTTP edge of the webhook: AdmissionReviews in over HTTPS, the pure admission core decides,
// the state records what was granted, the answer goes out. Health and readiness for the kubelet.

import type { IncomingMessage } from "node:http";
import type { ServerOptions as HttpsServerOptions } from "node:https";
import type { Socket } from "node:net";
import { performance } from "node:perf_hooks";
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyServerOptions,
} from "fastify";
import type { Logger } from "pino";
import type { Webhook } from "../admission/admit.ts";
import { admitWithClaims, type ClaimedOutcome } from "../admission/claimed-admission.ts";
import { type AdmissionReviewReply, parseAdmissionReview, reply } from "../admission/review.ts";
import { oneLine } from "../base/text.ts";
import { inOneWrite } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import { HEALTHY, type ProbeAnswer, type ProbeSources, readiness } from "./probes.ts";

/**
 * The largest review an apiserver sends: etcd refuses to store an object over 1.5 MiB (its
 * default --max-request-bytes), and an UPDATE review carries two of them, the object and the
 * stored oldObject, in a few hundred bytes of envelope (ADR 0010).
 */
export const DEFAULT_BODY_LIMIT = 3 * 1024 * 1024;

/**
 * How long and how many connections the server gives its callers (ADR 0010). A kube-apiserver
 * sends a whole review in milliseconds and waits for the answer at most its webhook timeout
 * (5 s in our configurations, 30 s at the most): nothing legitimate is cut by these. Nothing
 * idle is cut before the apiserver's own 90 s either: its HTTP client keeps connections idle in
 * a pool, including ones it dialed and has not used yet, and reuses them at any moment; a
 * connection we cut sooner races with that reuse, and the Service write gets our 408 or a reset.
 */
export interface ServerLimits {
  /** Until a request's body has arrived, from its headers (a body sent a byte at a time). */
  readonly bodyTimeoutMs: number;
  /**
   * Until a request's headers have arrived, the first request's from the connection's start: a
   * connection the apiserver dialed and keeps unused in its pool is idle that long.
   */
  readonly headersTimeoutMs: number;
  /** How often the two above are checked: they are cut at most this much late. */
  readonly checkIntervalMs: number;
  /** Until the TLS handshake is done. */
  readonly handshakeTimeoutMs: number;
  /** An idle kept-alive connection, longer than the apiserver's own (Go's 90 s), so it closes first. */
  readonly keepAliveTimeoutMs: number;
  /** Connections at once; more are closed as they come. */
  readonly maxConnections: number;
  /**
   * Request body bytes held at once, all requests together: what slow or withheld bodies can
   * make the server hold, whatever the number of connections. Past it, a request is answered
   * 503 and its connection closed.
   */
  readonly bodyBytesInFlight: number;
}

export const DEFAULT_LIMITS: ServerLimits = {
  bodyTimeoutMs: 10_000,
  headersTimeoutMs: 95_000,
  checkIntervalMs: 1_000,
  handshakeTimeoutMs: 5_000,
  keepAliveTimeoutMs: 95_000,
  maxConnections: 256,
  bodyBytesInFlight: 32 * 1024 * 1024,
};

export interface AppOptions extends ProbeSources {
  readonly logger: Logger;
  readonly metrics?: Metrics;
  /** Certificate, key and `minVersion` of the HTTPS server; absent: plain HTTP (tests, inject). */
  readonly https?: HttpsServerOptions;
  readonly bodyLimit?: number;
  /** Timeouts and caps against slow and idle clients; the defaults are the production ones. */
  readonly limits?: Partial<ServerLimits>;
}

export type WebhookApp = FastifyInstance<import("node:https").Server>;

const WEBHOOKS: readonly Webhook[] = ["mutate", "validate"];

/** Builds the app; the caller listens (or injects) and closes it. */
export function buildApp(options: AppOptions): WebhookApp {
  const { state, metrics, logger: log } = options;
  const bodyLimit = options.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  // Node's own request timeout counts, for a connection's first request, from the connection's
  // start, as its headers timeout does: on a connection the apiserver keeps unused in its pool it
  // would answer 408 to the first review. Bodies have their own deadline (BodyDeadlines).
  const serverOptions = {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: 0,
    connectionsCheckingInterval: limits.checkIntervalMs,
  };
  const app = Fastify({
    ...(options.https === undefined
      ? { http: serverOptions }
      : {
          https: {
            ...options.https,
            ...serverOptions,
            handshakeTimeout: limits.handshakeTimeoutMs,
          },
        }),
    // No logger for fastify itself: it would derive a child logger for every request, and its
    // request/response pair per call would triple the volume and say less. The one useful line
    // per review, and the errors, are written below with the process logger.
    bodyLimit,
    // No socket inactivity timeout: it would cut an unused pooled connection as the request
    // timeout would. A silent connection is cut by the headers timeout, or by the body deadline.
    requestTimeout: 0,
    connectionTimeout: 0,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    // The apiserver reuses connections; on close, idle ones go at once, busy ones finish.
    forceCloseConnections: "idle",
    return503OnClosing: true,
  } as FastifyServerOptions) as unknown as WebhookApp;
  app.server.maxConnections = limits.maxConnections;

  if (options.https !== undefined) {
    // A client that refuses the certificate (an apiserver with a stale caBundle) fails before
    // any request: this is the only trace of it here. One line a minute at most.
    let lastReport = Number.NEGATIVE_INFINITY;
    let suppressed = 0;
    app.server.on("tlsClientError", (error: Error, socket: { remoteAddress?: string }) => {
      const now = Date.now();
      if (now - lastReport < 60_000) {
        suppressed += 1;
        return;
      }
      options.logger.warn(
        { remoteAddress: socket.remoteAddress, error: error.message, suppressed },
        "TLS handshake failed (does the client trust this server's CA?)",
      );
      lastReport = now;
      suppressed = 0;
    });
  }

  // Only JSON is an AdmissionReview: the apiserver always sends application/json. Without a
  // parser for other types, fastify answers them 415 before any handler runs. The body is read
  // here, not by fastify, so that every byte held counts against one budget for all requests.
  app.removeAllContentTypeParsers();
  const budget = new ByteBudget(limits.bodyBytesInFlight);
  const deadlines = new BodyDeadlines(limits.bodyTimeoutMs, limits.checkIntervalMs);
  app.addHook("onClose", async () => deadlines.stop());
  // Once shutdown began, every answer closes its connection. The API server keeps its
  // connections to this pod in a pool that the endpoint's removal does not touch (kube-proxy
  // routes new connections only): without this it goes on calling here through the whole
  // --shutdown-delay and meets the closing server's 503 ("the server is currently unable to
  // handle the request", a failed create under `kubectl drain` on the e2e node). Closed after
  // each answer, its next call opens a new connection, to a pod still ready.
  app.addHook("onSend", async (_request, response) => {
    if (options.stopping?.() === true) response.header("connection", "close");
  });
  app.addContentTypeParser("application/json", (request, payload, done) => {
    const declared = Number(request.headers["content-length"] ?? 0);
    if (declared > bodyLimit) {
      done(clientError(413, "FST_ERR_CTP_BODY_TOO_LARGE", "body too large"), undefined);
      return;
    }
    readBody(payload, bodyLimit, budget, deadlines, (error, text) => {
      if (error !== undefined) {
        done(error, undefined);
        return;
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch (parseError) {
        // Only a body that failed to parse is looked at again, to word the error.
        const message =
          text.trim() === ""
            ? "empty body; expected an admission.k8s.io/v1 AdmissionReview"
            : `body is not valid JSON: ${(parseError as Error).message}`;
        done(badRequest(message), undefined);
        return;
      }
      done(null, parsed);
    });
  });

  const journal = new ReviewJournal(log, metrics);
  app.addHook("onClose", async () => journal.flush());

  for (const webhook of WEBHOOKS) {
    // Not an async handler: a review that needs no claim is answered in the same turn, without
    // the promise hops that cost more than deciding under load (fastify sends a returned value
    // as it sends a resolved one).
    app.post(`/${webhook}`, (request, response) => {
      if (request.body === undefined || request.body === null) {
        throw badRequest("empty body; expected an admission.k8s.io/v1 AdmissionReview");
      }
      const parsed = parseAdmissionReview(request.body);
      if (!parsed.ok) throw badRequest(parsed.error);
      const started = performance.now();
      const review = parsed.value;
      const answer = (outcome: ClaimedOutcome): AdmissionReviewReply => {
        const seconds = (performance.now() - started) / 1000;
        journal.add(seconds, {
          uid: review.uid,
          webhook,
          operation: review.operation,
          kind: review.kind.kind,
          namespace: review.namespace,
          name: review.name,
          // Every record has every key, so that the logger walks one object shape; pino leaves
          // an undefined field off the line.
          subResource: review.subResource,
          service: outcome.service,
          decision: outcome.decision,
          reason: outcome.reason,
          dryRun: review.dryRun === true,
          lostClaims: outcome.lostClaims.length > 0 ? outcome.lostClaims : undefined,
          granted: outcome.grant !== undefined ? true : undefined,
          allocator: outcome.allocator,
          durationMs: Math.round(seconds * 1e6) / 1e3,
        });
        return reply(outcome.response);
      };
      response.header("cache-control", "no-store");
      // Decides, records the grant synchronously after the decision (no other request may run
      // in between and be granted the same address); in cluster mode a grant is the elected
      // allocator's, here or forwarded to it (ADR 0012), or with --allocator claims is claimed
      // through the API before the answer (ADR 0005).
      const outcome = admitWithClaims(webhook, review, state);
      return outcome instanceof Promise ? outcome.then(answer) : answer(outcome);
    });
  }

  const probe = (answer: ProbeAnswer, response: FastifyReply) =>
    response.code(answer.status).type("text/plain; charset=utf-8").send(answer.text);
  app.get("/healthz", (_request, response) => probe(HEALTHY, response));
  app.get("/readyz", (_request, response) => probe(readiness(options), response));

  app.setNotFoundHandler((request, response) => {
    response.code(404).send({
      error: `no route ${request.method} ${request.url.split("?")[0]}; the webhook answers POST /mutate, POST /validate, GET /healthz, GET /readyz`,
    });
  });

  app.setErrorHandler((error: FastifyError, request, response) => {
    const status =
      typeof error.statusCode === "number" &&
      ((error.statusCode >= 400 && error.statusCode < 500) || error.statusCode === 503)
        ? error.statusCode
        : 500;
    const message =
      status === 500
        ? `internal error: ${error.message}`
        : describe(error, bodyLimit, request.headers["content-type"]);
    const webhook = request.url.split("?")[0]?.slice(1) ?? "";
    if (status === 500) log.error({ err: error, url: request.url }, "request failed");
    else log.warn({ url: request.url, status, error: message }, "malformed request");
    if (WEBHOOKS.includes(webhook as Webhook)) {
      metrics?.error(webhook, status === 500 ? "InternalError" : "BadRequest");
    }
    // A body refused before it was read in full: the rest is not waited for.
    if (status === 413 || status === 503) response.header("connection", "close");
    response.code(status).send({ error: oneLine(message) });
  });

  return app;
}

/** The log record of one answered review. */
interface ReviewRecord {
  readonly uid: string;
  readonly webhook: Webhook;
  readonly operation: string;
  readonly decision: string;
  readonly reason: string | undefined;
  readonly [field: string]: unknown;
}

/**
 * Each review's log line and metrics, written once per event-loop turn after that turn's answers
 * went out, rather than on the way to each answer: under load a turn answers several reviews,
 * and pino and prom-client run warm through a batch where, interleaved with TLS and HTTP work,
 * they cost several times more per review. Nothing is dropped: a turn's records are written
 * before the next one starts, and closing the app writes what is left (ADR 0007).
 */
class ReviewJournal {
  readonly #log: Logger;
  readonly #metrics: Metrics | undefined;
  #pending: (readonly [seconds: number, record: ReviewRecord])[] = [];

  constructor(log: Logger, metrics: Metrics | undefined) {
    this.#log = log;
    this.#metrics = metrics;
  }

  add(seconds: number, record: ReviewRecord): void {
    if (this.#pending.push([seconds, record]) === 1) setImmediate(() => this.flush());
  }

  flush(): void {
    const batch = this.#pending;
    this.#pending = [];
    inOneWrite(this.#log, () => {
      for (const [seconds, record] of batch) {
        const { webhook, operation, decision, reason } = record;
        this.#metrics?.review(webhook, operation, decision, reason, seconds);
        this.#log.info(record, "admission review");
      }
    });
  }
}

function badRequest(message: string): FastifyError {
  return clientError(400, undefined, message);
}

function clientError(status: number, code: string | undefined, message: string): FastifyError {
  const error = new Error(message) as FastifyError;
  error.statusCode = status;
  if (code !== undefined) error.code = code;
  return error;
}

/** Bytes that may be held at once, shared by every request being read. */
class ByteBudget {
  #free: number;

  constructor(size: number) {
    this.#free = size;
  }

  take(bytes: number): boolean {
    if (bytes > this.#free) return false;
    this.#free -= bytes;
    return true;
  }

  give(bytes: number): void {
    this.#free += bytes;
  }
}

/**
 * Reads a request body as UTF-8 text within `limit` bytes and the shared budget. Refused past
 * either (413, 503): the bytes already held are given back and the rest is not kept. A body cut
 * short (the client went, the connection was cut) gives its bytes back too: Node ends such a
 * request with an error, whichever side closed.
 */
function readBody(
  payload: IncomingMessage,
  limit: number,
  budget: ByteBudget,
  deadlines: BodyDeadlines,
  then: (error: FastifyError | undefined, text: string) => void,
): void {
  const chunks: Buffer[] = [];
  let held = 0;
  let settled = false;
  const reading = deadlines.start(payload.socket);
  const settle = (error: FastifyError | undefined) => {
    if (settled) return;
    settled = true;
    reading.bodies -= 1;
    payload.removeListener("data", onData);
    budget.give(held);
    const text =
      error !== undefined
        ? ""
        : chunks.length === 1
          ? (chunks[0] as Buffer).toString("utf8")
          : Buffer.concat(chunks, held).toString("utf8");
    held = 0;
    chunks.length = 0;
    then(error, text);
  };
  const onData = (chunk: Buffer) => {
    if (held + chunk.length > limit) {
      settle(clientError(413, "FST_ERR_CTP_BODY_TOO_LARGE", "body too large"));
    } else if (!budget.take(chunk.length)) {
      // Only many large bodies at once get here, which no apiserver sends: the connection is
      // closed at once, so that its sender stops sending.
      settle(
        clientError(
          503,
          undefined,
          "too many request bytes in flight on this server; retry shortly",
        ),
      );
      payload.socket.destroy();
    } else {
      held += chunk.length;
      chunks.push(chunk);
    }
  };
  payload.on("data", onData);
  payload.on("end", () => settle(undefined));
  payload.on("error", (error: Error) =>
    settle(clientError(400, undefined, `body could not be read: ${error.message}`)),
  );
}

/** The bodies being read on one connection now, and the sweep during which the first began. */
interface Reading {
  bodies: number;
  since: number;
}

/**
 * The deadline of the bodies being read, kept per connection. Node's own requestTimeout does not
 * do: its connection list stops cutting slow requests once other connections have come and gone
 * (Node 24), and it counts a first request from the connection's start (see ServerLimits). A
 * request costs two counter updates on its connection's record, no clock read and no entry of
 * its own: the record is made once per connection, and one sweep every `checkIntervalMs` over
 * the connections (at most `maxConnections`) counts the time. A connection that has been reading
 * bodies without a pause for longer than `timeoutMs` (at most one interval more) is cut,
 * unanswered, as no apiserver is still waiting for it. Bodies of requests pipelined on one
 * connection count as one stretch, from the first: the earlier cut of a client that pipelines.
 */
class BodyDeadlines {
  readonly #connections = new Map<Socket, Reading>();
  /** Sweeps a stretch of reading may span: more, and it has lasted longer than the timeout. */
  readonly #sweepsAllowed: number;
  readonly #timer: NodeJS.Timeout;
  #sweeps = 0;

  constructor(timeoutMs: number, checkIntervalMs: number) {
    const interval = Math.min(checkIntervalMs, timeoutMs);
    this.#sweepsAllowed = Math.ceil(timeoutMs / interval);
    this.#timer = setInterval(() => this.#sweep(), interval);
    this.#timer.unref();
  }

  /** A body starts on `socket`; the caller takes one from `bodies` of the answer when it ends. */
  start(socket: Socket): Reading {
    let reading = this.#connections.get(socket);
    if (reading === undefined) {
      reading = { bodies: 0, since: 0 };
      this.#connections.set(socket, reading);
      socket.once("close", () => this.#connections.delete(socket));
    }
    if (reading.bodies === 0) reading.since = this.#sweeps;
    reading.bodies += 1;
    return reading;
  }

  #sweep(): void {
    this.#sweeps += 1;
    // A stretch begun during sweep n (between its tick and the next) has lasted more than
    // (this.#sweeps - n - 1) intervals by now.
    const startedBefore = this.#sweeps - this.#sweepsAllowed;
    for (const [socket, reading] of this.#connections) {
      if (reading.bodies > 0 && reading.since < startedBefore) socket.destroy();
    }
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}

/** Fastify's own client errors, said in the webhook's words. */
function describe(error: FastifyError, bodyLimit: number, contentType: string | undefined): string {
  switch (error.code) {
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return `body is larger than the limit of ${bodyLimit} bytes`;
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return `content type ${contentType === undefined ? "(none)" : JSON.stringify(contentType)} is not supported; send the AdmissionReview as application/json`;
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return "empty body; expected an admission.k8s.io/v1 AdmissionReview";
    default:
      return error.message;
  }
}
