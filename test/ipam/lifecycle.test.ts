// The address lifecycle in the pure core (design.md): retained addresses, reservations and
// namespace quotas, as decide() and decideReservation() apply them.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { formatAddress } from "../../src/ipam/address.ts";
import {
  type ClusterView,
  type Decision,
  decide,
  decideReservation,
  holderOf,
  holdingsOf,
  parseQuota,
  policyFor,
} from "../../src/ipam/decide.ts";
import { type Pool, PoolSet } from "../../src/ipam/pool.ts";
import { type Reservation, ReservationIndex } from "../../src/ipam/reservations.ts";
import { RetainedAddresses } from "../../src/ipam/retained.ts";
import type { ServiceObject } from "../../src/ipam/service.ts";
import { UsageIndex } from "../../src/ipam/usage.ts";
import { address, allocation, pool, service } from "./fixtures.ts";

const policy = policyFor();
const autoAssign = { "lb-ip-guard.dev/auto-assign": "true" };
const HOUR = 3_600_000;

interface World {
  readonly view: ClusterView;
  readonly retained: RetainedAddresses;
  readonly reservations: ReservationIndex;
  readonly quotas: Map<string, number>;
  /** Decides, and records what is admitted, as check and the webhook's watch do. */
  admit(svc: ServiceObject): Decision;
  retain(text: string, ref: string, since: number): void;
  reserve(namespace: string, name: string, texts: string[], serviceName?: string): void;
}

function world(pools: Pool[]): World {
  const retained = new RetainedAddresses();
  const reservations = new ReservationIndex();
  const quotas = new Map<string, number>();
  const view: ClusterView = {
    pools: new PoolSet(pools),
    usage: new UsageIndex(),
    retained,
    reservations,
    namespaceLabels: (namespace) => ({ "kubernetes.io/metadata.name": namespace }),
    quotaOf: (namespace) => quotas.get(namespace),
  };
  return {
    view,
    retained,
    reservations,
    quotas,
    admit(svc) {
      const decision = decide(svc, view, policy);
      if (decision.kind !== "denied") {
        const held = decision.kind === "assigned" ? decision.addresses : holdingsOf(svc, policy);
        const holder = holderOf(svc, policy);
        view.usage.set(holder.ref, holder, held);
        for (const each of held) retained.drop(each);
      }
      return decision;
    },
    retain(text, ref, since) {
      retained.retain(address(text), { ref, since, until: since + 24 * HOUR });
    },
    reserve(namespace, name, texts, serviceName) {
      const reservation: Reservation = {
        namespace,
        name,
        addresses: texts.map(address),
        serviceName,
      };
      reservations.put(reservation);
    },
  };
}

const ips = (decision: Decision) => decision.addresses.map(formatAddress);

function refusal(decision: Decision, reason: string): string {
  assert.equal(
    decision.kind,
    "denied",
    `expected ${reason}, got ${decision.kind}: ${decision.message}`,
  );
  assert.equal(decision.kind === "denied" && decision.reason, reason, decision.message);
  return decision.message;
}

const kubeflowPool = pool("default", ["192.168.35.100-192.168.35.110"]);

describe("retained addresses", () => {
  test("a re-created Service that asks for no address gets its retained address back, not the lowest free", () => {
    const w = world([kubeflowPool]);
    w.retain("192.168.35.104", "kubeflow/ml-pipeline-ui", 1000);
    const back = w.admit(
      service("kubeflow/ml-pipeline-ui", { type: "ClusterIP", annotations: autoAssign }),
    );
    assert.equal(back.kind, "assigned");
    assert.deepEqual(ips(back), ["192.168.35.104"]);
    assert.match(
      back.message,
      /gets back 192\.168\.35\.104 .*retained for kubeflow\/ml-pipeline-ui since 1970-01-01T00:00:01Z/,
    );
    assert.equal(
      back.kind === "assigned" && back.origin,
      "retained for kubeflow/ml-pipeline-ui since 1970-01-01T00:00:01Z",
    );
  });

  test("the one allocator gives a LoadBalancer asking for nothing its retained address too", () => {
    const w = world([kubeflowPool]);
    w.retain("192.168.35.107", "kubeflow/katib-ui", 1000);
    assert.deepEqual(ips(w.admit(service("kubeflow/katib-ui"))), ["192.168.35.107"]);
  });

  test("other Services pass over retained addresses while the pool has another free one", () => {
    const w = world([pool("small", ["10.0.0.1-10.0.0.4"])]);
    w.retain("10.0.0.1", "a/one", 1000);
    w.retain("10.0.0.2", "a/two", 500);
    w.retain("10.0.0.4", "a/four", 2000);
    const first = w.admit(service("b/web"));
    assert.deepEqual(ips(first), ["10.0.0.3"]);
    assert.deepEqual(first.kind === "assigned" && first.warnings, []);
    // Only retained ones left: the one retained longest goes, and the answer says whose it was.
    const second = w.admit(service("b/api"));
    assert.deepEqual(ips(second), ["10.0.0.2"]);
    assert.equal(second.kind, "assigned");
    assert.match(
      second.kind === "assigned" ? second.warnings.join() : "",
      /10\.0\.0\.2 was retained for a\/two since 1970-01-01T00:00:00Z; pool "small" has no other free address/,
    );
    assert.deepEqual(ips(w.admit(service("b/db"))), ["10.0.0.1"]);
    assert.deepEqual(ips(w.admit(service("b/cache"))), ["10.0.0.4"]);
    refusal(w.admit(service("b/last")), "PoolExhausted");
  });

  test("a retained address in a pool the Service may no longer use is not given back", () => {
    const w = world([
      pool("team-a-only", ["10.1.0.0/30"], {
        serviceAllocation: allocation({ namespaces: ["team-a"] }),
      }),
      pool("open", ["10.2.0.0/30"]),
    ]);
    w.retain("10.1.0.1", "team-b/web", 1000);
    assert.deepEqual(ips(w.admit(service("team-b/web"))), ["10.2.0.0"]);
  });

  test("an explicit request for another Service's retained address is admitted with a warning naming it and until when", () => {
    const w = world([kubeflowPool]);
    w.retain("192.168.35.104", "kubeflow/ml-pipeline-ui", 0);
    const taken = w.admit(service("team-a/web", { ip: "192.168.35.104" }));
    assert.equal(taken.kind, "allowed");
    const warning = taken.kind === "allowed" ? taken.warnings.join() : "";
    assert.match(
      warning,
      /192\.168\.35\.104 is retained for kubeflow\/ml-pipeline-ui until 1970-01-02T00:00:00Z/,
    );
    // Its own explicit request is no news to it.
    const w2 = world([kubeflowPool]);
    w2.retain("192.168.35.104", "kubeflow/ml-pipeline-ui", 0);
    const own = w2.admit(service("kubeflow/ml-pipeline-ui", { ip: "192.168.35.104" }));
    assert.equal(own.kind, "allowed");
    assert.doesNotMatch(own.kind === "allowed" ? own.warnings.join() : "", /retained/);
  });

  test("a dual-stack Service gets both retained addresses back from one pool", () => {
    const w = world([pool("dual", ["10.0.0.0/30", "fd00::/126"])]);
    w.retain("10.0.0.2", "a/web", 10);
    w.retain("fd00::3", "a/web", 20);
    const back = w.admit(
      service("a/web", {
        ipFamilyPolicy: "RequireDualStack",
        ipFamilies: ["IPv4", "IPv6"],
      }),
    );
    assert.deepEqual(ips(back), ["10.0.0.2", "fd00::3"]);
  });
});

describe("reservations", () => {
  test("a reserved address goes only to its Service: first when it asks for nothing, and by request", () => {
    const w = world([kubeflowPool]);
    w.reserve("kubeflow", "dashboard", ["192.168.35.100"], "centraldashboard");
    assert.deepEqual(
      ips(w.admit(service("kubeflow/other"))),
      ["192.168.35.101"],
      "others pass over it",
    );
    const message = refusal(
      w.admit(service("team-a/web", { ip: "192.168.35.100" })),
      "AddressReserved",
    );
    assert.match(
      message,
      /AddressReservation kubeflow\/dashboard reserves for kubeflow\/centraldashboard/,
    );
    // The hint passes over the reserved address (and the one held).
    assert.match(message, /free in pool "default": 192\.168\.35\.102-192\.168\.35\.110$/);
    refusal(w.admit(service("kubeflow/other-2", { ip: "192.168.35.100" })), "AddressReserved");
    const granted = w.admit(service("kubeflow/centraldashboard"));
    assert.deepEqual(ips(granted), ["192.168.35.100"]);
    assert.match(granted.message, /reserved by AddressReservation kubeflow\/dashboard/);
  });

  test("a reservation without serviceName serves any Service of its namespace", () => {
    const w = world([kubeflowPool]);
    w.reserve("kubeflow", "any", ["192.168.35.105"]);
    assert.deepEqual(ips(w.admit(service("kubeflow/first"))), ["192.168.35.105"]);
    assert.equal(w.admit(service("kubeflow/second", { ip: "192.168.35.105" })).kind, "denied");
    refusal(w.admit(service("team-a/web", { ip: "192.168.35.105" })), "AddressInUse");
  });

  test("a Service that holds an address reserved later keeps it: nothing held is moved", () => {
    const w = world([kubeflowPool]);
    assert.equal(w.admit(service("team-a/web", { ip: "192.168.35.103" })).kind, "allowed");
    w.reserve("kubeflow", "late", ["192.168.35.103"]);
    assert.equal(w.admit(service("team-a/web", { ip: "192.168.35.103" })).kind, "allowed");
  });

  test("a reservation is admitted by the rules of a grant", () => {
    const w = world([
      kubeflowPool,
      pool("team-a-only", ["10.1.0.0/30"], {
        serviceAllocation: allocation({ namespaces: ["team-a"] }),
      }),
    ]);
    w.admit(service("team-a/web", { ip: "192.168.35.101" }));
    const spec = (addresses: string[], namespace = "kubeflow", name = "r") => ({
      namespace,
      name,
      addresses,
      serviceName: undefined,
    });
    assert.equal(decideReservation(spec(["192.168.35.102"]), w.view).kind, "allowed");
    refusal(decideReservation(spec(["192.168.35.999"]), w.view), "InvalidAddress");
    refusal(decideReservation(spec([]), w.view), "InvalidAddress");
    refusal(
      decideReservation(spec(["192.168.35.102", "192.168.35.103"]), w.view),
      "FamilyMismatch",
    );
    refusal(decideReservation(spec(["10.9.0.1"]), w.view), "NotInAnyPool");
    refusal(decideReservation(spec(["192.168.35.102", "fd00::1"]), w.view), "NotInAnyPool");
    refusal(decideReservation(spec(["10.1.0.1"]), w.view), "PoolNotAllowed");
    assert.equal(decideReservation(spec(["10.1.0.1"], "team-a"), w.view).kind, "allowed");
    assert.match(
      refusal(decideReservation(spec(["192.168.35.101"]), w.view), "AddressInUse"),
      /team-a\/web of another namespace/,
    );
    assert.equal(decideReservation(spec(["192.168.35.101"], "team-a"), w.view).kind, "allowed");
    w.reserve("kubeflow", "first", ["192.168.35.106"]);
    refusal(
      decideReservation(spec(["192.168.35.106"], "kubeflow", "second"), w.view),
      "AddressReserved",
    );
    assert.equal(
      decideReservation(spec(["192.168.35.106"], "kubeflow", "first"), w.view).kind,
      "allowed",
      "its own update",
    );
  });
});

describe("quotas", () => {
  test("a namespace holds at most N distinct addresses; the grant past it is refused QuotaExceeded", () => {
    const w = world([kubeflowPool]);
    w.quotas.set("team-a", 2);
    assert.equal(w.admit(service("team-a/one")).kind, "assigned");
    assert.equal(w.admit(service("team-a/two", { ip: "192.168.35.105" })).kind, "allowed");
    const message = refusal(w.admit(service("team-a/three")), "QuotaExceeded");
    assert.match(
      message,
      /namespace team-a may hold 2 addresses \(lb-ip-guard\.dev\/address-quota\) and holds 2 already \(192\.168\.35\.100, 192\.168\.35\.105\)/,
    );
    refusal(w.admit(service("team-a/four", { ip: "192.168.35.109" })), "QuotaExceeded");
    assert.equal(
      w.admit(service("team-b/free")).kind,
      "assigned",
      "other namespaces are not counted",
    );
  });

  test("an address its Services share counts once", () => {
    const w = world([kubeflowPool]);
    w.quotas.set("team-a", 1);
    const shared = { "metallb.io/allow-shared-ip": "k" };
    w.admit(service("team-a/tcp", { annotations: shared, ports: [{ protocol: "TCP", port: 53 }] }));
    const udp = w.admit(
      service("team-a/udp", { annotations: shared, ports: [{ protocol: "UDP", port: 53 }] }),
    );
    assert.deepEqual(ips(udp), ["192.168.35.100"]);
  });

  test("an UPDATE that adds no address is never refused, even past a lowered quota (the ratchet)", () => {
    const w = world([kubeflowPool]);
    w.admit(service("team-a/one", { ip: "192.168.35.101" }));
    w.admit(service("team-a/two", { ip: "192.168.35.102" }));
    w.quotas.set("team-a", 1);
    assert.equal(
      w.admit(service("team-a/two", { ip: "192.168.35.102", ports: [{ port: 8080 }] })).kind,
      "allowed",
    );
    refusal(w.admit(service("team-a/two", { ip: "192.168.35.103" })), "QuotaExceeded");
  });

  test("reservations count against the quota, and granting a reserved address adds nothing", () => {
    const w = world([kubeflowPool]);
    w.quotas.set("team-a", 2);
    w.reserve("team-a", "kept", ["192.168.35.110"]);
    assert.equal(w.admit(service("team-a/one", { ip: "192.168.35.101" })).kind, "allowed");
    refusal(w.admit(service("team-a/two", { ip: "192.168.35.102" })), "QuotaExceeded");
    assert.deepEqual(ips(w.admit(service("team-a/two"))), ["192.168.35.110"]);
    const spec = {
      namespace: "team-a",
      name: "more",
      addresses: ["192.168.35.108"],
      serviceName: undefined,
    };
    refusal(decideReservation(spec, w.view), "QuotaExceeded");
  });

  test("the annotation's value is a non-negative integer, else no quota", () => {
    assert.deepEqual(
      ["3", " 0 ", "", "-1", "2.5", "ten", undefined, "99999999999999999999"].map(parseQuota),
      [3, 0, undefined, undefined, undefined, undefined, undefined, undefined],
    );
  });
});

describe("RetainedAddresses", () => {
  test("retains per address, in place of an earlier retention, and finds the longest-retained one", () => {
    const retained = new RetainedAddresses();
    retained.retain(address("10.0.0.5"), { ref: "a/x", since: 30, until: 90 });
    retained.retain(address("10.0.0.6"), { ref: "a/x", since: 10, until: 90 });
    retained.retain(address("fd00::1"), { ref: "a/y", since: 5, until: 90 });
    assert.deepEqual(retained.retainedFor("a/x", "IPv4").map(formatAddress), [
      "10.0.0.6",
      "10.0.0.5",
    ]);
    retained.retain(address("10.0.0.6"), { ref: "a/z", since: 40, until: 90 });
    assert.deepEqual(retained.retainedFor("a/x", "IPv4").map(formatAddress), ["10.0.0.5"]);
    assert.equal(retained.longestRetained("IPv4", () => true)?.retention.ref, "a/x");
    assert.equal(
      retained.longestRetained("IPv4", (value) => value !== address("10.0.0.5").value)?.retention
        .ref,
      "a/z",
    );
    assert.equal(retained.size, 3);
    retained.drop(address("10.0.0.5"));
    retained.drop(address("10.0.0.5"));
    assert.deepEqual(retained.retainedFor("a/x", "IPv4"), []);
    assert.equal(retained.values("IPv4").size, 1);
    assert.deepEqual(
      [...retained.entries()].map(([each]) => formatAddress(each)),
      ["10.0.0.6", "fd00::1"],
    );
  });
});
