// The channel between replicas for an elected allocator (ADR 0012): the followers forward their
// granting reviews to it, and the allocator decides them as its own. Mutual TLS where each side
// must present the very certificate this replica serves: replicas share their serving
// certificate (the bootstrap Secret, or the one mounted), so no other credential is needed, and
// nothing else, not even a certificate of the same CA, is let in. Across a rotation the
// previous certificate is accepted too, until replicas have all moved on.

import { X509Certificate } from "node:crypto";
import { Agent, request as httpsRequest } from "node:https";
import { networkInterfaces } from "node:os";
import type { PeerCertificate, TLSSocket } from "node:tls";
import Fastify, { type FastifyInstance } from "fastify";
import type { Logger } from "pino";
import type { Webhook } from "../admission/admit.ts";
import { admitWithClaims, type ClaimedOutcome } from "../admission/claimed-admission.ts";
import type { AdmissionState, RemoteDecision } from "../admission/ports.ts";
import {
  type AdmissionRequest,
  type AdmissionResponse,
  parseAdmissionReview,
} from "../admission/review.ts";
import { errorLine } from "../base/text.ts";
import type { Certificate } from "../certs/issue.ts";
import type { LoanDesk } from "../cluster/allocator/elected.ts";
import type { LoanAnswer, LoanRequest, RecallAnswer } from "../cluster/allocator/loans.ts";
import { formatAddress } from "../ipam/address.ts";
import { DEFAULT_BODY_LIMIT } from "./app.ts";
import { listensOnEveryAddress } from "./config.ts";
import { secureContextOptions } from "./tls.ts";

/** Under the API server's 5 s webhook timeout, so a follower's refusal is the answer, not the API server's. */
const FORWARD_TIMEOUT_MS = 3000;
/**
 * A recall is made inside a review the allocator answers within FORWARD_TIMEOUT_MS, and a loan
 * exchange must come back well inside the loans' own second (ADR 0015).
 */
const LOAN_CALL_TIMEOUT_MS = 1000;
/** How long the peer server keeps an idle connection; the agent lets go of it a second sooner. */
const PEER_KEEP_ALIVE_MS = 60_000;
const WEBHOOKS: readonly Webhook[] = ["mutate", "validate"];

/** A leaf certificate a peer may present: its PEM (a trust anchor) and its fingerprint. */
interface Pin {
  readonly leaf: string;
  readonly fingerprint256: string;
}

function pinOf(certificate: Certificate): Pin {
  const leaf = new X509Certificate(certificate.cert);
  return { leaf: leaf.toString(), fingerprint256: leaf.fingerprint256 };
}

/** The certificates a peer may present: the one served now and the one before it. */
class PeerCertificates {
  #current: Certificate;
  /** The current certificate's pin first, then the previous one's: parsed once per rotation. */
  #pins: readonly Pin[];

  constructor(current: Certificate) {
    this.#current = current;
    this.#pins = [pinOf(current)];
  }

  get current(): Certificate {
    return this.#current;
  }

  /** The leaf certificates (PEM) a peer may present. */
  get accepted(): string[] {
    return this.#pins.map((pin) => pin.leaf);
  }

  rotate(next: Certificate): void {
    if (next.cert === this.#current.cert) return;
    this.#pins = [pinOf(next), ...this.#pins.slice(0, 1)];
    this.#current = next;
  }

  accepts(presented: PeerCertificate | undefined): boolean {
    const fingerprint = presented?.fingerprint256;
    return (
      fingerprint !== undefined &&
      fingerprint !== "" &&
      this.#pins.some((pin) => pin.fingerprint256 === fingerprint)
    );
  }
}

/** What the allocator sends back for a forwarded review. */
interface PeerAnswer {
  readonly allocator: string;
  readonly granted: readonly string[];
  readonly decision: ClaimedOutcome["decision"];
  readonly reason: ClaimedOutcome["reason"];
  readonly service: string | undefined;
  readonly response: AdmissionResponse;
}

export interface PeerChannel {
  /** The port the peer server got (the configured one, or the one picked for 0). */
  readonly port: number;
  /** Sends a review to the allocator at `endpoint`; never throws. */
  forward(endpoint: string, webhook: Webhook, request: AdmissionRequest): Promise<RemoteDecision>;
  /** A loan exchange with the allocator at `endpoint`; undefined when it failed. */
  exchange(endpoint: string, request: LoanRequest): Promise<LoanAnswer | undefined>;
  /** Recalls lent addresses from the follower at `endpoint`; undefined when it failed. */
  recall(endpoint: string, addresses: readonly string[]): Promise<RecallAnswer | undefined>;
  /** Tells the follower at `endpoint` to exchange loans now; nothing is waited for. */
  nudge(endpoint: string): void;
  /** The serving certificate changed: serve it and present it from now on. */
  rotate(next: Certificate): void;
  close(): Promise<void>;
}

export interface PeerChannelOptions {
  readonly host: string;
  readonly port: number;
  readonly certificate: Certificate;
  /** This replica's identity in the election, named in its answers. */
  readonly identity: string;
  /** The state forwarded reviews are decided on, once it exists. */
  readonly state: () => AdmissionState | undefined;
  /** What answers loan exchanges and recalls, once the state exists (ADR 0015). */
  readonly loans: () => LoanDesk | undefined;
  readonly logger: Logger;
}

/** Starts the peer server and returns the channel, forwarding side included. */
export async function openPeerChannel(options: PeerChannelOptions): Promise<PeerChannel> {
  const certificates = new PeerCertificates(options.certificate);
  const server = peerServer(options, certificates);
  await server.listen({ port: options.port, host: options.host });
  const address = server.server.address();
  const port = typeof address === "object" && address !== null ? address.port : options.port;
  let agent = peerAgent(certificates);
  return {
    port,
    forward: (endpoint, webhook, request) =>
      forwardReview(agent, endpoint, webhook, request).catch((error: unknown) => ({
        kind: "failed" as const,
        message: `${endpoint}: ${errorLine(error)}`,
      })),
    exchange: (endpoint, request) =>
      loanCall<LoanAnswer>(agent, endpoint, "/loans", request, (answer) =>
        Array.isArray(answer.loans),
      ),
    recall: (endpoint, addresses) =>
      loanCall<RecallAnswer>(
        agent,
        endpoint,
        "/recall",
        { addresses },
        (answer) => Array.isArray(answer.returned) && Array.isArray(answer.spent),
      ),
    nudge: (endpoint) => {
      void loanCall(agent, endpoint, "/nudge", {}, () => true);
    },
    rotate(next) {
      certificates.rotate(next);
      server.server.setSecureContext(secureContextOptions(certificates.current));
      const previous = agent;
      agent = peerAgent(certificates);
      previous.destroy();
    },
    async close() {
      agent.destroy();
      await server.close();
    },
  };
}

function peerServer(
  options: PeerChannelOptions,
  certificates: PeerCertificates,
): FastifyInstance<import("node:https").Server> {
  const app = Fastify({
    // A client certificate is asked for and checked below, against the pins, not a CA.
    https: {
      ...secureContextOptions(certificates.current),
      requestCert: true,
      rejectUnauthorized: false,
    },
    bodyLimit: DEFAULT_BODY_LIMIT,
    requestTimeout: 10_000,
    // An idle connection is closed by the keep-alive timeout alone, which the server announces
    // (`Keep-Alive: timeout=60`) and the forwarding agent heeds, dropping the connection first:
    // an inactivity cut of its own, unannounced, could close a connection just as a follower
    // sent a review on it.
    connectionTimeout: 0,
    keepAliveTimeout: PEER_KEEP_ALIVE_MS,
    forceCloseConnections: true,
  }) as unknown as FastifyInstance<import("node:https").Server>;
  // Checked once per connection, before any request on it is read.
  app.server.on("secureConnection", (socket: TLSSocket) => {
    if (certificates.accepts(socket.getPeerCertificate())) return;
    options.logger.warn(
      { remoteAddress: socket.remoteAddress },
      "peer port: refused a connection that did not present this replica's serving certificate",
    );
    socket.destroy();
  });
  for (const webhook of WEBHOOKS) {
    app.post(`/allocate/${webhook}`, async (request, response) => {
      const parsed = parseAdmissionReview(request.body);
      const state = options.state();
      if (!parsed.ok || state === undefined) {
        return response
          .code(parsed.ok ? 503 : 400)
          .send({ error: parsed.ok ? "state not started" : parsed.error });
      }
      const outcome = await admitWithClaims(webhook, parsed.value, state, { forwarded: true });
      options.logger.info(
        {
          uid: parsed.value.uid,
          webhook,
          service: outcome.service,
          decision: outcome.decision,
          reason: outcome.reason,
          ...(outcome.grant !== undefined && { granted: true }),
          from: request.socket.remoteAddress,
        },
        "forwarded review decided",
      );
      const answer: PeerAnswer = {
        allocator: options.identity,
        granted: outcome.grant?.addresses.map(formatAddress) ?? [],
        decision: outcome.decision,
        reason: outcome.reason,
        service: outcome.service,
        response: outcome.response,
      };
      return answer;
    });
  }
  // Loans (ADR 0015): a follower's exchange with the allocator, the allocator's recall and
  // nudge. All come from a pinned peer; their shape is checked as far as a mistake could matter.
  app.post("/loans", async (request, response) => {
    const desk = options.loans();
    const body = request.body as Partial<LoanRequest> | undefined;
    if (!isLoanRequest(body)) return response.code(400).send({ error: "not a loan request" });
    const answer = desk?.exchange(body);
    return answer ?? response.code(503).send({ error: `${options.identity} is not the allocator` });
  });
  app.post("/recall", async (request, response) => {
    const desk = options.loans();
    const addresses = (request.body as { addresses?: unknown } | undefined)?.addresses;
    if (!isStringList(addresses)) return response.code(400).send({ error: "not a recall" });
    if (desk === undefined) return response.code(503).send({ error: "state not started" });
    return desk.recall(addresses);
  });
  app.post("/nudge", async () => {
    options.loans()?.nudged();
    return {};
  });
  return app;
}

function isStringList(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((each) => typeof each === "string");
}

function isLoanRequest(body: Partial<LoanRequest> | undefined): body is LoanRequest {
  return (
    typeof body?.follower === "string" &&
    typeof body.endpoint === "string" &&
    isStringList(body.unspent) &&
    isStringList(body.returned) &&
    Array.isArray(body.spent) &&
    Array.isArray(body.wants)
  );
}

/** A keep-alive agent presenting the served certificate and trusting only the peers' ones. */
function peerAgent(certificates: PeerCertificates): Agent {
  return new Agent({
    keepAlive: true,
    cert: certificates.current.cert,
    key: certificates.current.key,
    ca: certificates.accepted,
    // The trust anchors are the leaf certificates themselves, not a CA: only a server that
    // presents one of them (and holds its key) is accepted, whatever name it is reached by.
    allowPartialTrustChain: true,
    checkServerIdentity: () => undefined,
    minVersion: "TLSv1.2",
    // With a timeout of its own, the agent heeds the server's Keep-Alive hint (less a second)
    // for idle connections; without one, Node keeps them until the server closes them.
    timeout: PEER_KEEP_ALIVE_MS,
  } as ConstructorParameters<typeof Agent>[0]);
}

async function forwardReview(
  agent: Agent,
  endpoint: string,
  webhook: Webhook,
  request: AdmissionRequest,
): Promise<RemoteDecision> {
  const body = { apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview", request };
  const answer = (await postJson(
    agent,
    endpoint,
    `/allocate/${webhook}`,
    body,
    FORWARD_TIMEOUT_MS,
  )) as PeerAnswer;
  if (
    answer.response?.uid !== request.uid ||
    typeof answer.response.allowed !== "boolean" ||
    !Array.isArray(answer.granted)
  ) {
    return { kind: "failed", message: `${endpoint} answered something other than a decision` };
  }
  return { kind: "decided", ...answer };
}

/** A loan exchange or recall; undefined on any failure (a loan not had is only a forward more). */
async function loanCall<T>(
  agent: Agent,
  endpoint: string,
  path: string,
  body: unknown,
  valid: (answer: T) => boolean,
): Promise<T | undefined> {
  try {
    const answer = (await postJson(agent, endpoint, path, body, LOAN_CALL_TIMEOUT_MS)) as T;
    return answer !== null && typeof answer === "object" && valid(answer) ? answer : undefined;
  } catch {
    return undefined;
  }
}

/** POSTs `body` as JSON to a peer and parses the answer; throws on failure or a non-200. */
async function postJson(
  agent: Agent,
  endpoint: string,
  path: string,
  body: unknown,
  timeoutMs: number,
): Promise<unknown> {
  const text = JSON.stringify(body);
  const { host, port } = splitEndpoint(endpoint);
  const signal = AbortSignal.timeout(timeoutMs);
  const post = () =>
    new Promise<string>((resolve, reject) => {
      const call = httpsRequest(
        {
          agent,
          host,
          port,
          method: "POST",
          path,
          headers: {
            "content-type": "application/json",
            "content-length": Buffer.byteLength(text),
          },
          signal,
        },
        (answer) => {
          const chunks: Buffer[] = [];
          answer.on("data", (chunk: Buffer) => chunks.push(chunk));
          answer.on("end", () => {
            const received = Buffer.concat(chunks).toString("utf8");
            if (answer.statusCode === 200) resolve(received);
            else reject(new Error(`HTTP ${answer.statusCode}: ${received.slice(0, 200)}`));
          });
          answer.on("error", reject);
        },
      );
      call.on("error", (error: NodeJS.ErrnoException) =>
        reject(call.reusedSocket && !signal.aborted ? new StaleConnection(error) : error),
      );
      call.end(text);
    });
  // A kept-alive connection the other side closed as this request went out fails before any
  // answer: sent again once, on a new connection. Repeating is harmless: the allocator grants a
  // Service that has not appeared what it granted it before (issue 13); an exchange or a recall
  // asked twice answers the same.
  const received = await post().catch((error: unknown) => {
    if (error instanceof StaleConnection) return post();
    throw error;
  });
  return JSON.parse(received) as unknown;
}

/** A request that failed on a reused keep-alive connection before any answer came. */
class StaleConnection extends Error {
  constructor(cause: Error) {
    super(cause.message, { cause });
  }
}

function splitEndpoint(endpoint: string): { host: string; port: number } {
  const colon = endpoint.lastIndexOf(":");
  return {
    host: endpoint.slice(0, colon).replace(/^\[(.*)\]$/, "$1"),
    port: Number(endpoint.slice(colon + 1)),
  };
}

/**
 * Where other replicas reach this one: the address given, else --host when it names one
 * address, else this host's first address that is not loopback.
 */
export function advertisedHost(given: string | undefined, host: string): string {
  if (given !== undefined) return given;
  if (!listensOnEveryAddress(host)) return host;
  for (const addresses of Object.values(networkInterfaces())) {
    for (const address of addresses ?? []) {
      if (!address.internal && address.family === "IPv4") return address.address;
    }
  }
  return "127.0.0.1";
}
