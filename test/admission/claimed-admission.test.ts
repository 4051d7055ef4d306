// admitWithClaims against an in-memory arbiter shared by two "replicas" (each its own usage
// index and holds, as two processes have): what a cluster of webhooks must guarantee, without
// an API server. The Lease I/O itself is test/cluster/claims/.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Webhook } from "../../src/admission/admit.ts";
import {
  admitWithClaims,
  type ClaimedOutcome,
  DEFAULT_CLAIM_ATTEMPTS,
} from "../../src/admission/claimed-admission.ts";
import type { Grant } from "../../src/admission/holds.ts";
import type {
  AdmissionState,
  AllocatorPort,
  ClaimResult,
  GrantRoute,
} from "../../src/admission/ports.ts";
import { ServiceUsage } from "../../src/cluster/service-usage.ts";
import { formatAddress, parseAddress } from "../../src/ipam/address.ts";
import { holderOf, policyFor } from "../../src/ipam/decide.ts";
import type { ServiceObject } from "../../src/ipam/service.ts";
import { type Holder, mayShare } from "../../src/ipam/usage.ts";
import {
  applyPatch,
  autoAssign,
  decodePatch,
  poolSet,
  request,
  review,
  service,
} from "./fixtures.ts";

const policy = policyFor();
const pools = poolSet();
const tick = () => new Promise((resolve) => setImmediate(resolve));

/** Create-if-absent per address, as Leases give it; rolls back on a loss. */
class Arbiter {
  readonly claims = new Map<string, Holder>();
  calls = 0;
  fail: string | undefined;
  /** While set, every claim waits for it. */
  gate: Promise<void> | undefined;

  async claim(grant: Grant): Promise<ClaimResult> {
    this.calls += 1;
    await tick();
    await this.gate;
    if (this.fail !== undefined) return { kind: "error", message: this.fail };
    const created: string[] = [];
    for (const address of grant.addresses) {
      const key = formatAddress(address);
      const holder = this.claims.get(key);
      if (holder === undefined) {
        this.claims.set(key, grant.holder);
        created.push(key);
      } else if (holder.ref !== grant.ref && !mayShare(grant.holder, holder)) {
        for (const each of created) this.claims.delete(each);
        return { kind: "lost", owner: `claim:${key}`, holder, address };
      }
    }
    return { kind: "claimed" };
  }
}

interface Replica {
  readonly state: AdmissionState;
  readonly usage: ServiceUsage;
  review(
    webhook: Webhook,
    object: ServiceObject,
    options?: { dryRun?: boolean },
  ): ReturnType<typeof admitWithClaims>;
}

/** `count` auto-assigns sent at once, alternately to `first` and `second`: every one assigned. */
async function autoAssignedAlternately(
  first: Replica,
  second: Replica,
  count: number,
): Promise<ClaimedOutcome[]> {
  const outcomes = await Promise.all(
    Array.from({ length: count }, (_, i) =>
      (i % 2 === 0 ? first : second).review("mutate", autoAssign(`auto${i}`)),
    ),
  );
  assert.deepEqual(
    outcomes.map((outcome) => outcome.decision),
    Array(count).fill("assigned"),
  );
  return outcomes;
}

function replica(arbiter: Arbiter | undefined, allocator?: AllocatorPort): Replica {
  const usage = new ServiceUsage(policy, 30_000);
  const inFlight = new Set<Promise<ClaimResult>>();
  const state: AdmissionState = {
    context: () => ({
      view: {
        pools,
        usage: usage.index,
        namespaceLabels: (namespace) => ({ "kubernetes.io/metadata.name": namespace }),
      },
      ready: true,
      policy,
      ipTarget: "spec",
    }),
    record: (grant, now) => usage.hold(grant, now),
    ...(arbiter !== undefined && {
      claims: {
        claim: (grant) => {
          const running = arbiter.claim(grant);
          inFlight.add(running);
          running.finally(() => inFlight.delete(running));
          return running;
        },
        settled: () =>
          inFlight.size === 0
            ? undefined
            : Promise.allSettled([...inFlight]).then(() => tick().then(() => undefined)),
        release: (grant) => usage.release(grant.ref),
        recordForeign: (owner, holder, addresses, now) =>
          usage.recordForeign(owner, holder, addresses, now),
      },
    }),
    ...(allocator !== undefined && { allocator }),
  };
  return {
    state,
    usage,
    review: (webhook, object, options = {}) =>
      admitWithClaims(webhook, request(review(object, options)), state),
  };
}

function holders(usage: ServiceUsage, ip: string): string[] {
  const parsed = parseAddress(ip);
  assert.ok(parsed.ok);
  return usage.index.holdersOf(parsed.value.family, parsed.value.value).map((h) => h.ref);
}

/** The Service as the mutation left it. */
function mutated(object: ServiceObject, patch: string | undefined): ServiceObject {
  return applyPatch(object, decodePatch(patch));
}

describe("admitWithClaims", () => {
  it("without claims it is admit and record: a second request for the address is refused", async () => {
    const alone = replica(undefined);
    const first = await alone.review("validate", service("web", { ip: "192.168.35.100" }));
    assert.equal(first.response.allowed, true);
    assert.deepEqual(holders(alone.usage, "192.168.35.100"), ["team-a/web"]);
    const second = await alone.review("validate", service("db", { ip: "192.168.35.100" }));
    assert.equal(second.reason, "AddressInUse");
  });

  it("answers in the same turn unless a claim is awaited: no claims, a denial, a dry run", async () => {
    const alone = replica(undefined);
    const granted = alone.review("validate", service("web", { ip: "192.168.35.100" }));
    assert.ok(!(granted instanceof Promise));
    assert.deepEqual(holders(alone.usage, "192.168.35.100"), ["team-a/web"]);

    const clustered = replica(new Arbiter());
    const claiming = clustered.review("validate", service("web", { ip: "192.168.35.100" }));
    assert.ok(claiming instanceof Promise, "a grant awaits its claim");
    const refused = clustered.review("validate", service("db", { ip: "192.168.35.100" }));
    assert.ok(refused instanceof Promise, "a refusal over an address in flight waits for it");
    assert.equal((await refused).reason, "AddressInUse");
    assert.equal((await claiming).response.allowed, true);
    const denied = clustered.review("validate", service("db", { ip: "192.168.35.100" }));
    assert.ok(!(denied instanceof Promise));
    assert.equal(denied.reason, "AddressInUse");
    const dryRun = clustered.review("validate", service("api", { ip: "192.168.35.101" }), {
      dryRun: true,
    });
    assert.ok(!(dryRun instanceof Promise));
    assert.equal(dryRun.response.allowed, true);
  });

  it("two replicas, one address asked for 20 times at once: exactly one admitted, the others refused naming it", async () => {
    const arbiter = new Arbiter();
    const [a, b] = [replica(arbiter), replica(arbiter)];
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        (i % 2 === 0 ? a : b).review("validate", service(`s${i}`, { ip: "192.168.35.105" })),
      ),
    );
    const admitted = outcomes.filter((outcome) => outcome.response.allowed);
    assert.equal(admitted.length, 1);
    const winner = admitted[0]?.service;
    assert.equal(arbiter.claims.get("192.168.35.105")?.ref, winner);
    for (const outcome of outcomes.filter((each) => !each.response.allowed)) {
      assert.equal(outcome.reason, "AddressInUse");
      assert.match(
        outcome.response.status?.message ?? "",
        new RegExp(`which ${winner} already holds`),
      );
    }
  });

  it("two replicas auto-assigning at once: every Service gets its own address, losers move on", async () => {
    const arbiter = new Arbiter();
    const [a, b] = [replica(arbiter), replica(arbiter)];
    const outcomes = await autoAssignedAlternately(a, b, 10);
    const addresses = outcomes.map((outcome) => outcome.grant?.addresses.map(formatAddress).join());
    assert.equal(new Set(addresses).size, 10);
    assert.equal(arbiter.claims.size, 10);
    // Both replicas start at the pool's first address: the race is real, and it was lost.
    assert.ok(outcomes.some((outcome) => outcome.lostClaims.length > 0));
  });

  it("a lost auto-assign claim records the other holder and takes the next free address", async () => {
    const arbiter = new Arbiter();
    const other = replica(arbiter);
    await other.review("validate", service("first", { namespace: "team-b", ip: "192.168.35.100" }));
    const a = replica(arbiter);
    const outcome = await a.review("mutate", autoAssign("late"));
    assert.equal(outcome.decision, "assigned");
    assert.deepEqual(outcome.grant?.addresses.map(formatAddress), ["192.168.35.101"]);
    assert.deepEqual(outcome.lostClaims, ["192.168.35.100 (team-b/first)"]);
    assert.deepEqual(holders(a.usage, "192.168.35.100"), ["team-b/first"]);
  });

  it("a Service not created yet, reviewed again and again, gets the address granted to it before", async () => {
    const arbiter = new Arbiter();
    const [a, b] = [replica(arbiter), replica(arbiter)];
    const granted = async (on: Replica) =>
      (await on.review("mutate", autoAssign("retry"))).grant?.addresses.map(formatAddress);
    const first = await granted(a);
    assert.deepEqual(first, ["192.168.35.100"]);
    // The create failed after the mutation (a later webhook refused it); the client retries.
    for (let i = 0; i < 5; i += 1) assert.deepEqual(await granted(a), first);
    // On the other replica, which knows the grant from its claim (the claims watch).
    const claimant = holders(a.usage, "192.168.35.100");
    assert.deepEqual(claimant, ["team-a/retry"]);
    const claimed = parseAddress("192.168.35.100");
    assert.ok(claimed.ok);
    b.usage.putClaim("claim:ip-192-168-35-100", holderOf(autoAssign("retry"), policy), [
      claimed.value,
    ]);
    assert.deepEqual(await granted(b), first);
    assert.equal(arbiter.claims.size, 1, "one claim, not one per review");
    // Another Service still gets the next address.
    const other = await a.review("mutate", autoAssign("other"));
    assert.deepEqual(other.grant?.addresses.map(formatAddress), ["192.168.35.101"]);
  });

  it("a repeated review keeps the expiry of the first grant's hold", () => {
    const alone = replica(undefined);
    const grant = (now: number) => {
      const outcome = admitWithClaims("mutate", request(review(autoAssign("retry"))), alone.state, {
        now: () => now,
      });
      assert.ok(!(outcome instanceof Promise));
      return outcome.grant?.addresses.map(formatAddress);
    };
    assert.deepEqual(grant(0), ["192.168.35.100"]);
    assert.deepEqual(grant(20_000), ["192.168.35.100"]);
    // 30 s (the hold's time to live) after the first grant, not after the last repeat.
    assert.equal(alone.usage.expire(30_001), 1);
    assert.deepEqual(holders(alone.usage, "192.168.35.100"), []);
  });

  it("an explicit request that loses its claim is refused AddressInUse naming the holder", async () => {
    const arbiter = new Arbiter();
    await replica(arbiter).review("validate", service("first", { ip: "192.168.35.102" }));
    const outcome = await replica(arbiter).review(
      "validate",
      service("second", { ip: "192.168.35.102" }),
    );
    assert.equal(outcome.reason, "AddressInUse");
    assert.match(outcome.response.status?.message ?? "", /which team-a\/first already holds/);
    assert.equal(outcome.response.status?.code, 403);
  });

  it("the validating call after the mutating one (another replica) finds its own claim", async () => {
    const arbiter = new Arbiter();
    const [a, b] = [replica(arbiter), replica(arbiter)];
    const object = autoAssign("web");
    const mutation = await a.review("mutate", object);
    assert.equal(mutation.decision, "assigned");
    const validation = await b.review("validate", mutated(object, mutation.response.patch));
    assert.equal(validation.response.allowed, true);
    assert.deepEqual(validation.lostClaims, []);
    assert.equal(arbiter.claims.size, 1);
  });

  it("Services that may share an address (same key, other ports) are both admitted", async () => {
    const arbiter = new Arbiter();
    const shared = (name: string, port: number) =>
      service(name, {
        ip: "192.168.35.103",
        annotations: { "metallb.io/allow-shared-ip": "dns" },
        spec: { ports: [{ protocol: "UDP", port }] },
      });
    const [one, two] = await Promise.all([
      replica(arbiter).review("validate", shared("dns-udp", 53)),
      replica(arbiter).review("validate", shared("dns-alt", 5353)),
    ]);
    assert.equal(one.response.allowed, true);
    assert.equal(two.response.allowed, true);
  });

  it("an API failure denies NotReady (fail closed) and frees the address again", async () => {
    const arbiter = new Arbiter();
    arbiter.fail = "POST /leases: no answer (timed out)";
    const a = replica(arbiter);
    const outcome = await a.review("mutate", autoAssign("web"));
    assert.equal(outcome.decision, "denied");
    assert.equal(outcome.reason, "NotReady");
    assert.equal(outcome.response.status?.code, 403);
    assert.match(
      outcome.response.status?.message ?? "",
      /^NotReady: team-a\/web: could not claim 192\.168\.35\.100 through the Kubernetes API \(POST \/leases: no answer \(timed out\)\); nothing was granted/,
    );
    assert.deepEqual(holders(a.usage, "192.168.35.100"), []);
  });

  it("gives up after maxAttempts lost claims with a clear PoolExhausted", async () => {
    const arbiter = new Arbiter();
    // Someone else wins every race: each claim finds the address taken the moment it asks.
    arbiter.claim = async (grant) => {
      arbiter.calls += 1;
      const [address] = grant.addresses;
      assert.ok(address !== undefined);
      const holder = {
        ref: `team-z/racer${arbiter.calls}`,
        sharingKey: "",
        ports: [],
        backendKey: "Cluster",
      };
      return { kind: "lost", owner: `claim:${formatAddress(address)}`, holder, address };
    };
    const outcome = await admitWithClaims(
      "mutate",
      request(review(autoAssign("unlucky"))),
      replica(arbiter).state,
      { maxAttempts: 5 },
    );
    assert.equal(outcome.reason, "PoolExhausted");
    assert.equal(arbiter.calls, 5);
    assert.match(
      outcome.response.status?.message ?? "",
      /lost 5 claims in a row .*192\.168\.35\.104 \(team-z\/racer5\)\); retry$/,
    );
  });

  it("tries up to 16 times by default: an unlucky auto-assign in a burst on two replicas loses about log2(burst) races", async () => {
    assert.equal(DEFAULT_CLAIM_ATTEMPTS, 16);
  });

  it("marks the grant of an UPDATE that keeps the Service's addresses (its claims stand)", async () => {
    const a = replica(new Arbiter());
    const before = service("web", { ip: "192.168.35.107" });
    const relabelled = { ...before, metadata: { ...before.metadata, labels: { tier: "edge" } } };
    const kept = await admitWithClaims(
      "validate",
      request(review(relabelled, { operation: "UPDATE", oldObject: before })),
      a.state,
    );
    assert.equal(kept.grant?.kept, true);
    const moved = await admitWithClaims(
      "validate",
      request(
        review(service("web", { ip: "192.168.35.108" }), {
          operation: "UPDATE",
          oldObject: before,
        }),
      ),
      a.state,
    );
    assert.equal(moved.grant?.kept, undefined);
    const created = await a.review("validate", service("db", { ip: "192.168.35.109" }));
    assert.equal(created.grant?.kept, undefined);
  });

  it("dry runs claim nothing", async () => {
    const arbiter = new Arbiter();
    const outcome = await replica(arbiter).review("mutate", autoAssign("web"), { dryRun: true });
    assert.equal(outcome.decision, "assigned");
    assert.equal(arbiter.calls, 0);
  });

  it("a refusal caused by a hold whose claim is in flight waits for it, and admits the claim's real owner", async () => {
    const arbiter = new Arbiter();
    // The other replica already claimed 192.168.35.106 for team-a/owner (its mutating call)...
    arbiter.claims.set("192.168.35.106", {
      ref: "team-a/owner",
      sharingKey: "",
      ports: ["TCP/80"],
      backendKey: "Cluster",
    });
    const a = replica(arbiter);
    let open: () => void = () => {};
    arbiter.gate = new Promise((resolve) => {
      open = resolve;
    });
    // ...while this replica granted it to another Service, whose claim is still in flight...
    const doomed = a.review("validate", service("doomed", { ip: "192.168.35.106" }));
    await tick();
    assert.deepEqual(holders(a.usage, "192.168.35.106"), ["team-a/doomed"]);
    // ...when the owner's validating call arrives here.
    const owner = a.review("validate", service("owner", { ip: "192.168.35.106" }));
    await tick();
    arbiter.gate = undefined;
    open();
    const [lost, admitted] = await Promise.all([doomed, owner]);
    assert.equal(lost.reason, "AddressInUse");
    assert.equal(admitted.response.allowed, true);
  });
});

describe("admitWithClaims with an elected allocator (ADR 0012)", () => {
  /**
   * The allocator and a follower that forwards to it as the peer channel does: the allocator
   * decides the forwarded review on its own state. `leading` and `forwardFails` break it.
   */
  function electedPair() {
    const claimedAfter: Grant[] = [];
    const control = { leading: true, forwardFails: false, forwards: 0, relayed: false };
    const leader = replica(undefined, {
      allocating: () => control.leading,
      route: (): GrantRoute =>
        control.leading ? { kind: "local" } : { kind: "unavailable", why: "its lease lapsed" },
      granted: (grant) => claimedAfter.push(grant),
      recalling: () => undefined,
    });
    const follower = replica(undefined, {
      allocating: () => false,
      route: (): GrantRoute =>
        control.relayed
          ? { kind: "relayed", allocator: "leader-0" }
          : {
              kind: "forward",
              forward: async (webhook, forwarded) => {
                control.forwards += 1;
                await tick();
                if (control.forwardFails) return { kind: "failed", message: "connection refused" };
                const outcome = await admitWithClaims(webhook, forwarded, leader.state, {
                  forwarded: true,
                });
                return {
                  kind: "decided",
                  ...outcome,
                  allocator: "leader-0",
                  granted: outcome.grant?.addresses.map(formatAddress) ?? [],
                };
              },
            },
      granted: () => assert.fail("a follower grants nothing itself"),
      recalling: () => undefined,
    });
    return { leader, follower, claimedAfter, control };
  }

  it("the allocator grants in the same turn, no claim awaited; the claim is asked for after", () => {
    const { leader, claimedAfter } = electedPair();
    const outcome = leader.review("validate", service("web", { ip: "192.168.35.100" }));
    assert.ok(!(outcome instanceof Promise), "a grant awaits nothing");
    assert.equal(outcome.response.allowed, true);
    assert.deepEqual(holders(leader.usage, "192.168.35.100"), ["team-a/web"]);
    assert.deepEqual(
      claimedAfter.map((grant) => grant.ref),
      ["team-a/web"],
    );
  });

  it("a follower forwards only grants: denials and dry runs are answered where they arrive", async () => {
    const { follower, leader, control } = electedPair();
    const dryRun = follower.review("mutate", autoAssign("preview"), { dryRun: true });
    assert.ok(!(dryRun instanceof Promise));
    assert.equal(dryRun.decision, "assigned");
    const outside = follower.review("validate", service("db", { ip: "172.16.0.1" }));
    assert.ok(!(outside instanceof Promise));
    assert.equal(outside.reason, "NotInAnyPool");
    assert.equal(control.forwards, 0);

    const granted = await follower.review("mutate", autoAssign("web"));
    assert.equal(control.forwards, 1);
    assert.equal(granted.decision, "assigned");
    assert.equal(granted.allocator, "leader-0");
    assert.deepEqual(holders(leader.usage, "192.168.35.100"), ["team-a/web"]);
    assert.deepEqual(holders(follower.usage, "192.168.35.100"), [], "the follower holds nothing");
  });

  it("the validating call of a create whose grant the follower relayed: allowed there, the allocator's grant, nothing held or claimed by the follower", async () => {
    const { follower, leader, control, claimedAfter } = electedPair();
    const mutating = await follower.review("mutate", autoAssign("web"));
    const created = mutated(autoAssign("web"), mutating.response.patch);
    control.relayed = true;
    const validating = follower.review("validate", created);
    assert.ok(!(validating instanceof Promise), "answered without asking again");
    assert.equal(validating.response.allowed, true);
    assert.equal(validating.grant, undefined, "not logged as the follower's grant");
    assert.equal(validating.allocator, "leader-0");
    assert.equal(control.forwards, 1);
    assert.equal(follower.usage.holds, 0, "the follower holds nothing");
    assert.deepEqual(holders(leader.usage, created.spec?.loadBalancerIP ?? ""), ["team-a/web"]);
    assert.equal(claimedAfter.length, 1, "claimed once, by the allocator");
  });

  it("auto-assigns through both replicas at once: distinct addresses, all granted by the allocator, none lost", async () => {
    const { leader, follower, claimedAfter } = electedPair();
    const outcomes = await autoAssignedAlternately(leader, follower, 10);
    const addresses = outcomes.map(
      (outcome) => mutated(autoAssign("x"), outcome.response.patch).spec?.loadBalancerIP,
    );
    assert.equal(new Set(addresses).size, 10);
    assert.equal(claimedAfter.length, 10);
    assert.ok(outcomes.every((outcome) => outcome.lostClaims.length === 0));
  });

  it("a lapsed allocator or a failed forward: refused NotReady, nothing held", async () => {
    const { leader, follower, control } = electedPair();
    control.leading = false;
    const lapsed = leader.review("mutate", autoAssign("web"));
    assert.ok(!(lapsed instanceof Promise));
    assert.equal(lapsed.reason, "NotReady");
    assert.match(lapsed.response.status?.message ?? "", /its lease lapsed.*nothing was granted/);
    assert.equal(leader.usage.holds, 0);

    control.leading = true;
    control.forwardFails = true;
    const failed = await follower.review("mutate", autoAssign("api"));
    assert.equal(failed.reason, "NotReady");
    assert.match(failed.response.status?.message ?? "", /did not answer \(connection refused\)/);
    assert.equal(leader.usage.holds, 0);
  });
});
