// The two books of lent addresses (ADR 0015) on a clock of our own: the allocator's ledger over
// a real usage index and pool (what it lends, keeps, withdraws, frees, and turns into grants),
// and a follower's purse (what it may spend, when, and what it answers a recall). The exchange
// between two real replicas is in election.test.ts; over TLS in test/server/peer.test.ts.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Grant, HoldBook, holdKey } from "../../../src/admission/holds.ts";
import {
  LAPSED_LOAN_KEPT_MS,
  LOAN_MS,
  type LoanAnswer,
  LoanLedger,
  LoanPurse,
  type LoanRequest,
} from "../../../src/cluster/allocator/loans.ts";
import { formatAddress } from "../../../src/ipam/address.ts";
import { firstFreeInPool } from "../../../src/ipam/allocator.ts";
import { UsageIndex } from "../../../src/ipam/usage.ts";
import { poolSet } from "../../admission/fixtures.ts";
import { address, holder } from "../claims/fake-leases.ts";

const POOL = "default"; // 192.168.35.100-110

/** An allocator's state: the pools, a usage index with holds, and the grants it was told of. */
function allocatorSide() {
  const clock = { ms: 0 };
  const pools = poolSet();
  const usage = new UsageIndex();
  const holds = new HoldBook(usage, 60_000);
  const granted: Grant[] = [];
  const ledger = new LoanLedger(
    {
      lowestFree: (name, family) => {
        const pool = pools.pools.find((each) => each.name === name);
        return pool === undefined ? undefined : firstFreeInPool(pool, family, usage);
      },
      hold: (grant) => holds.hold(grant, clock.ms),
      release: (ref) => holds.release(ref),
    },
    (grant) => granted.push(grant),
    () => clock.ms,
  );
  const take = (ref: string, ip: string) => usage.set(ref, holder(ref), [address(ip)]);
  const reserved = (ip: string) =>
    usage.holdersOf("IPv4", address(ip).value).map((each) => each.ref);
  return { clock, usage, holds, ledger, granted, take, reserved };
}

const ask = (follower: string, extra: Partial<LoanRequest> = {}): LoanRequest => ({
  follower,
  endpoint: `${follower}.peer:8444`,
  unspent: [],
  spent: [],
  returned: [],
  wants: [{ pool: POOL, family: "IPv4" }],
  ...extra,
});
const lent = (answer: LoanAnswer) => answer.loans.map((loan) => loan.address);
const grantOf = (ref: string, ip: string): Grant => ({
  ref,
  holder: holder(ref),
  addresses: [address(ip)],
  pool: POOL,
});

describe("the allocator's ledger of lent addresses", () => {
  it("lends each follower the lowest free address, reserved so that nobody else gets it", () => {
    const { ledger, take, reserved } = allocatorSide();
    take("team-a/first", "192.168.35.100");
    assert.deepEqual(lent(ledger.exchange(ask("f1"), "a")), ["192.168.35.101"]);
    assert.deepEqual(reserved("192.168.35.101"), ["loan to f1"]);
    assert.deepEqual(lent(ledger.exchange(ask("f2"), "a")), ["192.168.35.102"]);
    // Asked again while it holds one: the same, not a second.
    assert.deepEqual(lent(ledger.exchange(ask("f1", { unspent: ["192.168.35.101"] }), "a")), [
      "192.168.35.101",
    ]);
    assert.equal(ledger.size, 2);
  });

  it("a spent loan becomes the Service's grant: held for it, and handed on to be claimed", () => {
    const { ledger, granted, holds, reserved } = allocatorSide();
    ledger.exchange(ask("f1"), "a");
    const spent = grantOf("team-a/web", "192.168.35.100");
    const answer = ledger.exchange(
      ask("f1", {
        spent: [
          { ref: spent.ref, holder: spent.holder, addresses: ["192.168.35.100"], pool: POOL },
        ],
      }),
      "a",
    );
    assert.deepEqual(lent(answer), ["192.168.35.101"], "the next one lent");
    assert.deepEqual(reserved("192.168.35.100"), ["team-a/web"]);
    assert.equal(holds.grantOf("team-a/web")?.ref, "team-a/web");
    assert.deepEqual(
      granted.map((grant) => `${grant.ref} ${grant.addresses.map(formatAddress)}`),
      ["team-a/web 192.168.35.100"],
    );
  });

  it("a lower address come free: the loan is withdrawn, kept reserved until the follower's next exchange accounts for it", () => {
    const { ledger, usage, take, reserved } = allocatorSide();
    take("team-a/first", "192.168.35.100");
    ledger.exchange(ask("f1"), "a");
    usage.delete("team-a/first");
    assert.deepEqual([...ledger.outdated()], ["f1.peer:8444"], "the follower is told");
    const answer = ledger.exchange(ask("f1", { unspent: ["192.168.35.101"] }), "a");
    assert.deepEqual(lent(answer), ["192.168.35.100"]);
    assert.deepEqual(
      reserved("192.168.35.101"),
      ["loan to f1"],
      "the follower may have spent it since it asked",
    );
    // Its next exchange names only the new one: the withdrawn one was not spent, and is free.
    ledger.exchange(ask("f1", { unspent: ["192.168.35.100"] }), "a");
    assert.deepEqual(reserved("192.168.35.101"), []);
    assert.deepEqual([...ledger.outdated()], []);
  });

  it("a loan neither renewed nor accounted for stays reserved until it lapsed and could no longer be persisted, then is freed", () => {
    const { clock, ledger, reserved } = allocatorSide();
    ledger.exchange(ask("f1"), "a");
    clock.ms += LOAN_MS + LAPSED_LOAN_KEPT_MS - 1;
    assert.deepEqual(ledger.expire(), []);
    assert.deepEqual(reserved("192.168.35.100"), ["loan to f1"]);
    clock.ms += 1;
    assert.deepEqual(ledger.expire(), ["192.168.35.100"]);
    assert.deepEqual(reserved("192.168.35.100"), []);
  });

  it("returned loans are freed; a follower's exchange never frees another follower's loans", () => {
    const { ledger, reserved } = allocatorSide();
    ledger.exchange(ask("f1"), "a");
    ledger.exchange(ask("f2", { returned: ["192.168.35.100"], wants: [] }), "a");
    assert.deepEqual(reserved("192.168.35.100"), ["loan to f1"]);
    ledger.exchange(ask("f1", { returned: ["192.168.35.100"], wants: [] }), "a");
    assert.deepEqual(reserved("192.168.35.100"), []);
    assert.equal(ledger.size, 0);
  });

  it("finds the loans a refusal ran into, by follower; all of them for an exhausted pool", () => {
    const { ledger } = allocatorSide();
    ledger.exchange(ask("f1"), "a");
    ledger.exchange(ask("f2"), "a");
    const byEndpoint = (map: Map<string, string[]>) => Object.fromEntries(map);
    assert.deepEqual(byEndpoint(ledger.lentFor([address("192.168.35.101")], false)), {
      "f2.peer:8444": ["192.168.35.101"],
    });
    assert.deepEqual(byEndpoint(ledger.lentFor([address("192.168.35.105")], false)), {});
    assert.deepEqual(byEndpoint(ledger.lentFor([], true)), {
      "f1.peer:8444": ["192.168.35.100"],
      "f2.peer:8444": ["192.168.35.101"],
    });
    // f2 gave its loan back in answer to a recall; f1 had spent its own.
    ledger.recalled({ follower: "f2", returned: ["192.168.35.101"], spent: [] });
    ledger.recalled({
      follower: "f1",
      returned: [],
      spent: [
        {
          ref: "team-a/web",
          holder: holder("team-a/web"),
          addresses: ["192.168.35.100"],
          pool: POOL,
        },
      ],
    });
    assert.equal(ledger.size, 0);
  });

  it("a replica that stops allocating drops every loan", () => {
    const { ledger, usage } = allocatorSide();
    ledger.exchange(ask("f1"), "a");
    ledger.clear();
    assert.equal(ledger.size, 0);
    assert.deepEqual(usage.addressesOf(holdKey("loan:192.168.35.100")), []);
  });
});

describe("a follower's purse of borrowed addresses", () => {
  function follower() {
    const clock = { ms: 1_000 };
    const purse = new LoanPurse(() => clock.ms);
    purse.want(POOL, "IPv4");
    /** One exchange: what the follower sends at `clock.ms`, answered with `loans`. */
    const exchange = (loans: readonly string[], allocator = "a") => {
      const sent = purse.request("f1", "f1.peer:8444", false);
      const sentAt = clock.ms;
      return {
        sent,
        accept: () =>
          purse.accepted(
            { allocator, loans: loans.map((each) => ({ address: each, pool: POOL })) },
            sent,
            sentAt,
          ),
      };
    };
    return { clock, purse, exchange };
  }
  const web = grantOf("team-a/web", "192.168.35.100");

  it("spends a loan once, only for the allocator that lent it, within LOAN_MS of asking", () => {
    const { clock, purse, exchange } = follower();
    assert.equal(purse.spend(web, "a"), false, "nothing borrowed yet");
    const first = exchange(["192.168.35.100"]);
    clock.ms += 5; // the answer's way back
    first.accept();
    assert.equal(purse.spend(web, "b"), false, "another allocator's");
    assert.equal(purse.spend(grantOf("team-a/web", "192.168.35.101"), "a"), false, "not lent");
    clock.ms += LOAN_MS - 5;
    assert.equal(purse.spend(web, "a"), false, "LOAN_MS after asking, not after the answer");
    exchange(["192.168.35.100"]).accept();
    assert.equal(purse.spend(web, "a"), true);
    assert.equal(purse.spend(grantOf("team-a/api", "192.168.35.100"), "a"), false, "spent");
  });

  it("a dual-stack grant is spent only when every one of its addresses is lent", () => {
    const { purse, exchange } = follower();
    exchange(["192.168.35.100"]).accept();
    const dual: Grant = { ...web, addresses: [address("192.168.35.100"), address("fd00:30::1")] };
    assert.equal(purse.spend(dual, "a"), false);
    assert.equal(purse.spend(web, "a"), true);
  });

  it("reports a spent loan until an exchange carrying it is answered", () => {
    const { purse, exchange } = follower();
    exchange(["192.168.35.100"]).accept();
    purse.spend(web, "a");
    const carrying = exchange([]);
    assert.deepEqual(
      carrying.sent.spent.map((each) => each.ref),
      ["team-a/web"],
    );
    assert.deepEqual(exchange([]).sent.spent.length, 1, "again while unanswered");
    carrying.accept();
    assert.deepEqual(exchange([]).sent.spent, []);
  });

  it("an answer older than a spend or a recall does not lend those addresses again", () => {
    const { clock, purse, exchange } = follower();
    exchange(["192.168.35.100", "192.168.35.101"]).accept();
    const inFlight = exchange(["192.168.35.100", "192.168.35.101"]);
    clock.ms += 1;
    purse.spend(web, "a");
    assert.deepEqual(purse.recall(["192.168.35.101"], "f1"), {
      follower: "f1",
      returned: ["192.168.35.101"],
      spent: [],
    });
    inFlight.accept();
    assert.equal(purse.spend(grantOf("team-a/api", "192.168.35.100"), "a"), false);
    assert.equal(purse.spend(grantOf("team-a/api", "192.168.35.101"), "a"), false);
    assert.equal(purse.holding, false);
  });

  it("a recall gets back what was not spent, and the grant of what was", () => {
    const { purse, exchange } = follower();
    exchange(["192.168.35.100"]).accept();
    purse.spend(web, "a");
    const answer = purse.recall(["192.168.35.100", "192.168.35.105"], "f1");
    assert.deepEqual(answer.returned, ["192.168.35.105"], "not held here: given back too");
    assert.deepEqual(
      answer.spent.map((each) => `${each.ref} ${each.addresses}`),
      ["team-a/web 192.168.35.100"],
    );
  });

  it("returning gives every loan back and wants nothing more", () => {
    const { purse, exchange } = follower();
    exchange(["192.168.35.100"]).accept();
    const returning = purse.request("f1", "f1.peer:8444", true);
    assert.deepEqual(returning.returned, ["192.168.35.100"]);
    assert.deepEqual(returning.unspent, []);
    assert.deepEqual(returning.wants, []);
  });
});
