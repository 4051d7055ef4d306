// The channel between replicas (ADR 0012) over real TLS on localhost: a follower's forwarded
// review is decided by the allocator on its own state; only a peer presenting this deployment's
// serving certificate gets an answer, and a forwarding replica trusts only a server presenting it.

import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { connect } from "node:tls";
import { pino } from "pino";
import type { AdmissionRequest } from "../../src/admission/review.ts";
import { type Certificate, generateCertificate } from "../../src/certs/issue.ts";
import { policyFor } from "../../src/ipam/decide.ts";
import { hostPort } from "../../src/server/config.ts";
import { openPeerChannel, type PeerChannel } from "../../src/server/peer.ts";
import { StandaloneState } from "../../src/server/standalone.ts";
import { autoAssign, poolSet, request, review } from "../admission/fixtures.ts";

const logger = pino({ level: "silent" });
const opened: PeerChannel[] = [];
after(async () => {
  await Promise.all(opened.map((channel) => channel.close()));
});

async function channel(certificate: Certificate, identity: string): Promise<PeerChannel> {
  const state = new StandaloneState(poolSet(), { policy: policyFor(), ipTarget: "spec" });
  const opening = await openPeerChannel({
    host: "127.0.0.1",
    port: 0,
    certificate,
    identity,
    state: () => state,
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
});
