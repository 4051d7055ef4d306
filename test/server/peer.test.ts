// The channel between replicas (ADR 0012) over real TLS on localhost: a follower's forwarded
// review is decided by the allocator on its own state; only a peer presenting this deployment's
// serving certificate gets an answer, and a forwarding replica trusts only a server presenting it.

import assert from "node:assert/strict";
import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import { connect, type TLSSocket } from "node:tls";
import { pino } from "pino";
import type { AdmissionRequest } from "../../src/admission/review.ts";
import { type Certificate, generateCertificate } from "../../src/certs/issue.ts";
import type { LoanDesk } from "../../src/cluster/allocator/elected.ts";
import type { LoanRequest } from "../../src/cluster/allocator/loans.ts";
import { policyFor } from "../../src/ipam/decide.ts";
import { hostPort } from "../../src/server/config.ts";
import { openPeerChannel, type PeerChannel } from "../../src/server/peer.ts";
import { StandaloneState } from "../../src/server/standalone.ts";
import { secureContextOptions } from "../../src/server/tls.ts";
import { autoAssign, poolSet, request, review } from "../admission/fixtures.ts";

const logger = pino({ level: "silent" });
const opened: PeerChannel[] = [];
after(async () => {
  await Promise.all(opened.map((channel) => channel.close()));
});

async function channel(
  certificate: Certificate,
  identity: string,
  desk?: LoanDesk,
): Promise<PeerChannel> {
  const state = new StandaloneState(poolSet(), { policy: policyFor(), ipTarget: "spec" });
  const opening = await openPeerChannel({
    host: "127.0.0.1",
    port: 0,
    certificate,
    identity,
    state: () => state,
    loans: () => desk,
    logger,
  });
  opened.push(opening);
  return opening;
}

const grantRequest = (name: string): AdmissionRequest => request(review(autoAssign(name)));
const endpoint = (peer: PeerChannel) => hostPort("127.0.0.1", peer.port);

describe("the peer channel", async () => {
  const shared = await generateCertificate();
  const other = await generateCertificate();

  it("a follower's review is decided by the allocator, which names itself", async () => {
    const [follower, allocator] = [await channel(shared, "f"), await channel(shared, "alloc")];
    const sent = grantRequest("web");
    const answer = await follower.forward(endpoint(allocator), "mutate", sent);
    assert.equal(answer.kind, "decided", JSON.stringify(answer));
    if (answer.kind !== "decided") return;
    assert.equal(answer.allocator, "alloc");
    assert.equal(answer.decision, "assigned");
    assert.deepEqual(answer.granted, ["192.168.35.100"]);
    assert.equal(answer.response.uid, sent.uid);
    assert.match(
      Buffer.from(answer.response.patch ?? "", "base64").toString(),
      /192\.168\.35\.100/,
    );
    // The allocator's own state has the grant: the next one gets the next address.
    const next = await follower.forward(endpoint(allocator), "mutate", grantRequest("api"));
    assert.ok(next.kind === "decided");
    assert.match(Buffer.from(next.response.patch ?? "", "base64").toString(), /192\.168\.35\.101/);
  });

  it("loan exchanges, recalls and nudges (ADR 0015) reach the replica asked, over the same pinned channel", async () => {
    const exchanged: LoanRequest[] = [];
    let allocating = true;
    let nudges = 0;
    const desk: LoanDesk = {
      exchange: (request) => {
        exchanged.push(request);
        return allocating
          ? { allocator: "alloc", loans: [{ address: "192.168.35.100", pool: "default" }] }
          : undefined;
      },
      recall: (addresses) => ({ follower: "alloc", returned: [...addresses], spent: [] }),
      nudged: () => {
        nudges += 1;
      },
    };
    const [follower, allocator] = [
      await channel(shared, "f"),
      await channel(shared, "alloc", desk),
    ];
    const asked: LoanRequest = {
      follower: "f",
      endpoint: "f.peer:8444",
      unspent: [],
      spent: [],
      returned: [],
      wants: [{ pool: "default", family: "IPv4" }],
    };
    assert.deepEqual(await follower.exchange(endpoint(allocator), asked), {
      allocator: "alloc",
      loans: [{ address: "192.168.35.100", pool: "default" }],
    });
    assert.deepEqual(exchanged, [asked]);
    assert.deepEqual(await follower.recall(endpoint(allocator), ["192.168.35.100"]), {
      follower: "alloc",
      returned: ["192.168.35.100"],
      spent: [],
    });
    follower.nudge(endpoint(allocator));
    for (let i = 0; i < 100 && nudges === 0; i++)
      await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(nudges, 1);
    allocating = false;
    assert.equal(
      await follower.exchange(endpoint(allocator), asked),
      undefined,
      "not the allocator now",
    );
    const stranger = await channel(other, "stranger");
    assert.equal(await stranger.exchange(endpoint(allocator), asked), undefined);
    assert.equal(exchanged.length, 2, "the stranger's never reached the desk");
  });

  it("a replica with another certificate is neither trusted as a server nor answered as a client", async () => {
    const allocator = await channel(shared, "alloc");
    const stranger = await channel(other, "stranger");
    const refused = await stranger.forward(endpoint(allocator), "mutate", grantRequest("x"));
    assert.equal(refused.kind, "failed");
    // A client that trusts anything and presents another certificate: cut before any answer.
    const received = await new Promise<string>((resolve) => {
      let data = "";
      const socket = connect({
        host: "127.0.0.1",
        port: allocator.port,
        cert: other.cert,
        key: other.key,
        rejectUnauthorized: false,
      });
      socket.on("secureConnect", () =>
        socket.write("POST /allocate/mutate HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}"),
      );
      socket.on("data", (chunk) => {
        data += chunk;
      });
      socket.on("error", () => resolve(data));
      socket.on("close", () => resolve(data));
    });
    assert.equal(received, "", "the allocator answered a stranger");
  });

  it("after a rotation on both sides, forwarding works with the new certificate", async () => {
    const [follower, allocator] = [await channel(shared, "f"), await channel(shared, "alloc")];
    const next = await generateCertificate();
    allocator.rotate(next);
    follower.rotate(next);
    const answer = await follower.forward(endpoint(allocator), "mutate", grantRequest("web"));
    assert.equal(answer.kind, "decided", JSON.stringify(answer));
  });

  it("a kept-alive connection closed as a review goes out: sent again on a new one; a new connection that fails is not retried", async () => {
    // An allocator that closes a connection when a second request arrives on it, as one whose
    // idle connection ends just as the follower reuses it; `closeEvery` cuts even first ones.
    let connections = 0;
    let closeEvery = false;
    const server = createServer(
      { ...secureContextOptions(shared), requestCert: true, rejectUnauthorized: false },
      (incoming, outgoing) => {
        const socket = incoming.socket as TLSSocket & { served?: number };
        socket.served = (socket.served ?? 0) + 1;
        if (closeEvery || socket.served > 1) {
          socket.destroy();
          return;
        }
        let body = "";
        incoming.on("data", (chunk: Buffer) => {
          body += chunk.toString();
        });
        incoming.on("end", () => {
          const sent = JSON.parse(body) as { request: AdmissionRequest };
          outgoing.setHeader("content-type", "application/json");
          outgoing.end(
            JSON.stringify({
              allocator: "alloc",
              granted: [],
              decision: "allowed",
              reason: undefined,
              service: "team-a/x",
              response: { uid: sent.request.uid, allowed: true },
            }),
          );
        });
      },
    );
    server.on("secureConnection", () => {
      connections += 1;
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    after(() => {
      server.closeAllConnections();
      server.close();
    });
    const address = server.address() as AddressInfo;
    const at = hostPort("127.0.0.1", address.port);
    const follower = await channel(shared, "f");
    assert.equal((await follower.forward(at, "validate", grantRequest("a"))).kind, "decided");
    const again = await follower.forward(at, "validate", grantRequest("b"));
    assert.equal(again.kind, "decided", JSON.stringify(again));
    assert.equal(connections, 2, "the retry went out on a new connection");

    closeEvery = true;
    const fresh = await channel(shared, "g");
    const failed = await fresh.forward(at, "validate", grantRequest("c"));
    assert.equal(failed.kind, "failed");
    assert.equal(connections, 3, "a failure on a new connection is the answer");
  });
});
