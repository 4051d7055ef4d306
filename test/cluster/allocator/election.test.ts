// The allocator election on an in-memory Lease API with the API server's rules (create-if-absent,
// resourceVersion preconditions), its rounds driven by hand on a clock of our own: who leads, when
// a holder stops granting (fencing), when another takes over, and where grants are routed. The
// election against a real kube-apiserver is test/e2e/ha.test.ts.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pino } from "pino";
import type { AdmissionOutcome } from "../../../src/admission/admit.ts";
import type { Grant } from "../../../src/admission/holds.ts";
import { HoldBook } from "../../../src/admission/holds.ts";
import type { ClaimPort, RemoteDecision } from "../../../src/admission/ports.ts";
import type { AdmissionRequest } from "../../../src/admission/review.ts";
import {
  CLAIM_DELAY_MS,
  ElectedAllocator,
  type Forwarder,
  type LoanOptions,
} from "../../../src/cluster/allocator/elected.ts";
import {
  AllocatorElection,
  type LeaseStore,
  TIMINGS,
} from "../../../src/cluster/allocator/election.ts";
import {
  ALLOCATOR_LEASE,
  allocatorLeaseStore,
} from "../../../src/cluster/allocator/lease-store.ts";
import type { LedgerState } from "../../../src/cluster/allocator/loans.ts";
import type { KubeClient } from "../../../src/cluster/kube.ts";
import { formatAddress } from "../../../src/ipam/address.ts";
import { firstFreeInPool } from "../../../src/ipam/allocator.ts";
import { UsageIndex } from "../../../src/ipam/usage.ts";
import { poolSet } from "../../admission/fixtures.ts";
import { address, FakeLeases, NAMESPACE, signal } from "../claims/fake-leases.ts";

const { leaseDurationMs, renewDeadlineMs, retryPeriodMs } = TIMINGS;
/** Time for an in-process loan exchange to go round (its promises and timers). */
const EXCHANGE_WAIT_MS = 20;
const logger = pino({ level: "silent" });

/** Candidates sharing one Lease API, each with its own clock (monotonic clocks differ in origin). */
function cluster() {
  const api = new FakeLeases();
  const store = allocatorLeaseStore(api as unknown as KubeClient, NAMESPACE);
  /** Loses the answer of the next write, after the API server made it (a timeout). */
  const lossy = { next: false };
  const lossyStore: LeaseStore = {
    read: (signal) => store.read(signal),
    write: async (record, renewedAt, signal) => {
      const written = await store.write(record, renewedAt, signal);
      if (!lossy.next) return written;
      lossy.next = false;
      throw new Error("the answer never came");
    },
  };
  const candidate = (identity: string, origin = 0) => {
    const clock = { ms: origin };
    let handOver = Promise.resolve();
    const control = {
      clock,
      handOvers: 0,
      /** Hand-overs wait for this until it is replaced. */
      hold(gate: Promise<void>) {
        handOver = gate;
      },
    };
    const election = new AllocatorElection({
      store: lossyStore,
      identity,
      endpoint: `${identity}.peer:8444`,
      logger,
      now: () => clock.ms,
      handOver: () => {
        control.handOvers += 1;
        return handOver;
      },
    });
    return Object.assign(control, {
      election,
      round: async (advanceMs = 0) => {
        clock.ms += advanceMs;
        await election.round(signal);
        await new Promise((resolve) => setImmediate(resolve));
      },
    });
  };
  const holder = () => {
    const lease = api.leases.get(ALLOCATOR_LEASE) as { spec?: { holderIdentity?: string } };
    return lease?.spec?.holderIdentity;
  };
  return { api, candidate, holder, lossy };
}

type Candidate = ReturnType<ReturnType<typeof cluster>["candidate"]>;

describe("the allocator election", () => {
  it("the first candidate creates the Lease and grants only once its hand-over relist is done", async () => {
    const { candidate, holder } = cluster();
    const a = candidate("a");
    let relisted!: () => void;
    a.hold(new Promise((resolve) => (relisted = resolve)));
    await a.round();
    assert.equal(holder(), "a");
    assert.equal(a.election.settled, true);
    assert.equal(a.election.leading(), false, "not before the relist");
    assert.match(a.election.unavailable(), /still reading the cluster state/);
    relisted();
    await a.round(retryPeriodMs);
    assert.equal(a.election.leading(), true);
    assert.equal(a.handOvers, 1);
  });

  it("a second candidate follows the renewing holder, never takes over, and knows its endpoint", async () => {
    const { candidate, holder } = cluster();
    const [a, b] = [candidate("a"), candidate("b", 50_000)];
    await a.round();
    for (let i = 0; i < 20; i += 1) {
      await b.round(retryPeriodMs);
      await a.round(retryPeriodMs);
    }
    assert.equal(holder(), "a");
    assert.equal(b.election.leading(), false);
    assert.equal(b.election.settled, true);
    assert.deepEqual(b.election.holder(), { identity: "a", endpoint: "a.peer:8444" });
    assert.equal(a.election.leading(), true);
  });

  it("a holder that cannot renew stops granting at its renew deadline; another takes over only after a whole lease duration", async () => {
    const { api, candidate, holder } = cluster();
    const [a, b] = [candidate("a"), candidate("b", 7_000)];
    await a.round();
    await b.round(); // b sees a's Lease: its lease duration starts now, on b's clock
    // a's renewals fail from here (its API server went away).
    api.failing = { method: "PUT", status: undefined };
    await a.round(retryPeriodMs);
    await a.round(retryPeriodMs);
    assert.equal(a.election.leading(), true, "inside the renew deadline");
    a.clock.ms = renewDeadlineMs;
    assert.equal(a.election.leading(), false, "fenced at the deadline");
    assert.match(a.election.unavailable(), /could not renew it in time/);
    api.failing = undefined;

    await b.round(leaseDurationMs - 1);
    assert.equal(holder(), "a", "not before the lease duration");
    assert.equal(b.election.leading(), false);
    await b.round(1);
    assert.equal(holder(), "b");
    assert.equal(b.election.leading(), true);
    // The old holder's next round learns it lost; it grants nothing meanwhile or after.
    await a.round(retryPeriodMs);
    assert.equal(a.election.leading(), false);
    assert.deepEqual(a.election.holder(), { identity: "b", endpoint: "b.peer:8444" });
  });

  it("a take-over whose answer was lost is recognised as its own at the next round", async () => {
    const { candidate, holder, lossy } = cluster();
    const a = candidate("a");
    lossy.next = true;
    await a.round();
    assert.equal(holder(), "a");
    assert.equal(a.election.leading(), false);
    await a.round(retryPeriodMs);
    assert.equal(a.election.leading(), true, "not after a whole lease duration: at once");
    assert.equal(a.handOvers, 1);
  });

  it("two candidates taking over the same lapsed Lease: exactly one wins", async () => {
    const { candidate, holder } = cluster();
    const a = candidate("a");
    const [b, c] = [candidate("b"), candidate("c")];
    await a.round();
    await Promise.all([b.round(), c.round()]);
    // a is gone: b and c see the Lease unchanged for a lease duration and both try.
    await Promise.all([b.round(leaseDurationMs), c.round(leaseDurationMs)]);
    const leading = [b, c].filter((each) => each.election.leading());
    assert.equal(leading.length, 1);
    assert.equal(holder(), leading[0] === b ? "b" : "c");
  });

  it("a holder that stops gives the Lease up, and the next candidate takes it at its next round", async () => {
    const { candidate, holder } = cluster();
    const [a, b] = [candidate("a"), candidate("b")];
    await a.round();
    await b.round();
    await a.election.stop();
    assert.equal(holder(), "");
    await b.round(retryPeriodMs);
    assert.equal(holder(), "b");
    assert.equal(b.election.leading(), true);
  });
});

describe("ElectedAllocator routes grants", () => {
  const request = { uid: "u1" } as AdmissionRequest;
  const grant = (ref: string, ip: string): Grant => ({
    ref,
    holder: { ref, sharingKey: "", ports: ["TCP/80"], backendKey: "Cluster" },
    addresses: [address(ip)],
  });
  const web = grant("team-a/web", "10.0.0.1");
  /** An auto-assign's grant from the pool "default". */
  const inPool = (ref: string, ip: string): Grant => ({
    ...grant(ref, ip),
    pool: "default",
    assigned: true,
  });
  /** A follower on candidate `b`'s election and clock, forwarding with `forward`. */
  const followerOn = (b: Candidate, forward: Forwarder, loans?: LoanOptions) =>
    new ElectedAllocator({
      election: b.election,
      logger,
      held: () => true,
      now: () => b.clock.ms,
      forward,
      claims: claimsAfter,
      ...(loans !== undefined && { loans }),
    });
  /** The allocator "a" answering a forwarded auto-assign of team-a/web. */
  const assignedByA = (ip: string): RemoteDecision => ({
    kind: "decided",
    response: { uid: "u1", allowed: true },
    decision: "assigned",
    reason: undefined,
    service: "team-a/web",
    allocator: "a",
    granted: [ip],
  });
  /** The claims written after an answer: not what these tests look at. */
  const claimsAfter: ClaimPort = {
    claim: async () => ({ kind: "claimed" }),
    settled: () => undefined,
    release: () => {},
    recordForeign: () => {},
  };

  it("local while leading; to the holder's endpoint otherwise; a forwarded review is never forwarded again", async () => {
    const { candidate } = cluster();
    const [a, b] = [candidate("a"), candidate("b")];
    await a.round();
    await b.round();
    const forwardedTo: string[] = [];
    const allocator = (election: AllocatorElection) =>
      new ElectedAllocator({
        election,
        logger,
        held: () => true,
        forward: async (endpoint) => {
          forwardedTo.push(endpoint);
          return { kind: "failed", message: "not needed here" };
        },
        claims: claimsAfter,
      });
    assert.deepEqual(allocator(a.election).route(web, false), { kind: "local" });
    assert.deepEqual(allocator(a.election).route(web, true), { kind: "local" });
    assert.equal(allocator(a.election).allocating(), true);
    assert.equal(allocator(b.election).allocating(), false);
    const route = allocator(b.election).route(web, false);
    assert.equal(route.kind, "forward");
    if (route.kind === "forward") await route.forward("mutate", request);
    assert.deepEqual(forwardedTo, ["a.peer:8444"]);
    const again = allocator(b.election).route(web, true);
    assert.equal(again.kind, "unavailable");
  });

  it("the same Service's next review, a moment after the allocator granted it these addresses here, stands without asking again", async () => {
    const { candidate } = cluster();
    const [a, b] = [candidate("a"), candidate("b")];
    await a.round();
    await b.round();
    let forwards = 0;
    const follower = followerOn(b, async () => {
      forwards += 1;
      return assignedByA("10.0.0.1");
    });
    const mutating = follower.route(web, false);
    assert.equal(mutating.kind, "forward");
    if (mutating.kind === "forward") await mutating.forward("mutate", request);
    assert.deepEqual(
      follower.route(web, false),
      { kind: "relayed", allocator: "a" },
      "the validating call",
    );
    assert.equal(follower.route(grant("team-a/web", "10.0.0.9"), false).kind, "forward");
    assert.equal(follower.route(grant("team-a/api", "10.0.0.1"), false).kind, "forward");
    assert.equal(follower.route(web, true).kind, "unavailable", "never for a forwarded review");
    b.clock.ms += 1000;
    assert.equal(follower.route(web, false).kind, "forward", "not a second later");
    assert.equal(forwards, 1);
  });

  it("claims follow the answers after a delay, once per Service granted, none for a Service that appeared nor once fenced", async (t) => {
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const { candidate } = cluster();
    const a = candidate("a");
    await a.round();
    await a.round(retryPeriodMs);
    const claimed: string[] = [];
    const allocator = new ElectedAllocator({
      election: a.election,
      logger,
      forward: async () => ({ kind: "failed", message: "" }),
      held: (grant) => grant.ref !== "team-a/shown",
      claims: {
        ...claimsAfter,
        claim: async (grant) => {
          claimed.push(`${grant.ref} ${grant.addresses.map(formatAddress).join()}`);
          return { kind: "claimed" };
        },
      },
    });
    // The mutating and the validating call of one create, and another Service.
    allocator.granted(grant("team-a/web", "10.0.0.1"));
    allocator.granted(grant("team-a/web", "10.0.0.1"));
    allocator.granted(grant("team-a/api", "10.0.0.2"));
    // A Service that appeared meanwhile holds its address itself: no claim from here.
    allocator.granted(grant("team-a/shown", "10.0.0.3"));
    t.mock.timers.tick(CLAIM_DELAY_MS - 1);
    assert.deepEqual(claimed, [], "nothing written with the answers");
    t.mock.timers.tick(1);
    assert.deepEqual(claimed, ["team-a/web 10.0.0.1", "team-a/api 10.0.0.2"]);
    // Past its renew deadline (frozen, woken): it claims nothing any more.
    allocator.granted(grant("team-a/late", "10.0.0.4"));
    a.clock.ms += renewDeadlineMs;
    t.mock.timers.tick(CLAIM_DELAY_MS);
    assert.equal(claimed.length, 2);
  });

  it("with loans (ADR 0015): a follower grants the lent address itself, reports it, and gives back what the allocator recalls", async () => {
    const { candidate } = cluster();
    const [a, b] = [candidate("a"), candidate("b")];
    await a.round();
    await b.round();
    const pools = poolSet();
    const usage = new UsageIndex();
    const holds = new HoldBook(usage, 60_000);
    const claimedAfter: string[] = [];
    let forwards = 0;
    /** The watch shows the Service: its create is through, the follower exchanges now. */
    const appears = async (ref: string) => {
      follower?.appeared(ref);
      await new Promise((resolve) => setTimeout(resolve, EXCHANGE_WAIT_MS));
    };
    const ledgerState: LedgerState = {
      lowestFree: (name, family) => {
        const pool = pools.pools.find((each) => each.name === name);
        return pool === undefined ? undefined : firstFreeInPool(pool, family, usage);
      },
      hold: (grant) => holds.hold(grant, 0),
      release: (ref) => holds.release(ref),
    };
    let follower: ElectedAllocator | undefined;
    const allocator = new ElectedAllocator({
      election: a.election,
      logger,
      held: () => true,
      now: () => a.clock.ms,
      forward: async () => ({ kind: "failed", message: "the allocator forwards nothing" }),
      claims: {
        ...claimsAfter,
        claim: async (grant) => {
          claimedAfter.push(`${grant.ref} ${grant.addresses.map(formatAddress).join()}`);
          return { kind: "claimed" };
        },
      },
      loans: {
        endpoint: "a.peer:8444",
        exchange: async () => assert.fail("the allocator borrows nothing"),
        recall: async (_endpoint, addresses) => follower?.recall(addresses),
        nudge: () => follower?.nudged(),
        state: ledgerState,
      },
    });
    follower = followerOn(
      b,
      async () => {
        forwards += 1;
        // The allocator's own grant of the first Service, as its decision would record it.
        holds.hold(inPool("team-a/web", "192.168.35.100"), 0);
        return assignedByA("192.168.35.100");
      },
      {
        endpoint: "b.peer:8444",
        exchange: async (endpoint, request) => {
          assert.equal(endpoint, "a.peer:8444");
          return allocator.exchange(request);
        },
        recall: async () => assert.fail("a follower recalls nothing"),
        nudge: () => assert.fail("a follower nudges nobody"),
        state: ledgerState,
        // A grant in a quota namespace is the allocator's to serialize, never a loan's.
        borrows: (grant) => !grant.ref.startsWith("team-quota/"),
      },
    );
    try {
      // The first grant goes to the allocator; the exchange after it brings a loan.
      const first = follower.route(inPool("team-a/web", "192.168.35.100"), false);
      assert.equal(first.kind, "forward");
      if (first.kind === "forward") await first.forward("mutate", request);
      await appears("team-a/web");
      assert.equal(
        follower.route(inPool("team-quota/api", "192.168.35.101"), false).kind,
        "forward",
        "not granted from the loan",
      );
      // The next Service's decision here is the lent address: granted without asking.
      const api = inPool("team-a/api", "192.168.35.101");
      assert.deepEqual(follower.route(api, false), { kind: "relayed", allocator: "a" });
      assert.deepEqual(
        follower.route(api, false),
        { kind: "relayed", allocator: "a" },
        "its validating call",
      );
      assert.equal(forwards, 1);
      assert.deepEqual(
        usage.holdersOf("IPv4", address("192.168.35.101").value).map((each) => each.ref),
        ["loan to b"],
        "not reported while the create may still be under way",
      );
      await appears("team-a/api");
      assert.deepEqual(
        usage.holdersOf("IPv4", address("192.168.35.101").value).map((each) => each.ref),
        ["team-a/api"],
        "reported: the allocator holds it for the Service",
      );
      // The allocator meets the next lent address in a refusal: recalled, given back.
      const refused = {
        decided: {
          kind: "denied",
          reason: "AddressInUse",
          addresses: [address("192.168.35.102")],
          pool: "default",
          message: "",
        },
      } as unknown as AdmissionOutcome;
      assert.equal(await allocator.recalling(refused), undefined);
      assert.deepEqual(
        usage.holdersOf("IPv4", address("192.168.35.102").value),
        [],
        "free to decide again",
      );
      assert.equal(
        follower.route(inPool("team-a/db", "192.168.35.102"), false).kind,
        "forward",
        "no longer the follower's",
      );
      a.clock.ms += CLAIM_DELAY_MS;
      await allocator.flush();
      assert.deepEqual(claimedAfter, ["team-a/api 192.168.35.101"]);
    } finally {
      allocator.stop();
      follower.stop();
    }
  });

  it("nobody elected: unavailable, saying so", () => {
    const { candidate } = cluster();
    const lone = candidate("lone");
    const route = new ElectedAllocator({
      election: lone.election,
      logger,
      held: () => true,
      forward: async () => ({ kind: "failed", message: "" }),
      claims: claimsAfter,
    }).route(web, false);
    assert.deepEqual(route, { kind: "unavailable", why: "no replica is elected allocator yet" });
  });
});
