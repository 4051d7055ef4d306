// AddressReservations in the pure core: what an object asks for, the index the decisions read,
// who holds a reservation (its status), how many addresses each pool sets aside (the gauges),
// the admission of a reservation (decideReservation), and what a reservation does to grants.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatAddress, type IPAddress } from "../../src/ipam/address.ts";
import { decideReservation } from "../../src/ipam/decide/reservation.ts";
import { type ClusterView, decide, holderOf, policyFor } from "../../src/ipam/decide.ts";
import { PoolSet } from "../../src/ipam/pool.ts";
import {
  isReservationObject,
  parseReservation,
  type Reservation,
  ReservationIndex,
  reservationHolder,
  reservationSpecOf,
} from "../../src/ipam/reservations.ts";
import { RetainedAddresses } from "../../src/ipam/retained.ts";
import type { ServiceObject } from "../../src/ipam/service.ts";
import { UsageIndex } from "../../src/ipam/usage.ts";
import { poolSetAside } from "../../src/ipam/utilisation.ts";
import { address, allocation, pool } from "./fixtures.ts";

const policy = policyFor();

function reservation(ref: string, addresses: string[], serviceName?: string): Reservation {
  const [namespace = "", name = ""] = ref.split("/");
  return { namespace, name, addresses: addresses.map(address), serviceName };
}

const pools = new PoolSet([
  pool("default", ["192.168.35.100-192.168.35.110"]),
  pool("other", ["10.40.0.0/30"]),
  pool("dual", ["10.30.0.0/30", "fd00:30::/64"], { autoAssign: false }),
  pool("team-b-only", ["10.50.0.0/30"], {
    serviceAllocation: allocation({ namespaces: ["team-b"] }),
  }),
]);

function view(
  options: {
    reservations?: Reservation[];
    holders?: [ref: string, ip: string][];
    quota?: Record<string, number>;
  } = {},
): ClusterView {
  const usage = new UsageIndex();
  for (const [ref, ip] of options.holders ?? []) {
    usage.set(ref, holderOf(service(ref), policy, ref), [address(ip)]);
  }
  return {
    pools,
    usage,
    reservations: ReservationIndex.from(options.reservations ?? []),
    namespaceLabels: (namespace) => ({ "kubernetes.io/metadata.name": namespace }),
    ...(options.quota !== undefined && {
      quotaOf: (namespace: string) => options.quota?.[namespace],
    }),
  };
}

function service(ref: string, ip?: string): ServiceObject {
  const [namespace, name] = ref.split("/");
  return {
    metadata: { namespace, name },
    spec: {
      type: "LoadBalancer",
      ports: [{ protocol: "TCP", port: 80 }],
      selector: { app: name ?? "" },
      ...(ip !== undefined && { loadBalancerIP: ip }),
    },
  };
}

const spec = (ref: string, addresses: string[], serviceName?: string) => {
  const [namespace = "", name = ""] = ref.split("/");
  return { namespace, name, addresses, serviceName };
};

const texts = (addresses: readonly IPAddress[]) => addresses.map(formatAddress);

describe("reservationSpecOf and isReservationObject", () => {
  it("reads the addresses, the Service and the namespace, with the fallback namespace", () => {
    const object = {
      apiVersion: "lb-ip-guard.dev/v1alpha1",
      kind: "AddressReservation",
      metadata: { name: "web" },
      spec: { addresses: ["192.168.35.104"], serviceName: "" },
    };
    assert.equal(isReservationObject(object), true);
    assert.equal(isReservationObject({ ...object, apiVersion: "metallb.io/v1beta1" }), false);
    assert.deepEqual(reservationSpecOf(object, "team-a"), {
      namespace: "team-a",
      name: "web",
      addresses: ["192.168.35.104"],
      serviceName: undefined,
    });
  });
});

describe("parseReservation (what the watch and reserve put in the index)", () => {
  it("parses every address, and names the first that does not parse", () => {
    const parsed = parseReservation(spec("team-a/dual", ["10.30.0.1", "fd00:30::1"]));
    assert.ok(parsed.ok);
    assert.deepEqual(texts(parsed.value.addresses), ["10.30.0.1", "fd00:30::1"]);
    const bad = parseReservation(spec("team-a/bad", ["10.30.0.1", "10.30.0"]));
    assert.ok(!bad.ok);
    assert.match(bad.error, /10\.30\.0/);
    assert.equal(parseReservation(spec("team-a/none", [])).ok, false);
  });
});

describe("ReservationIndex", () => {
  it("finds a reservation by address, replaces one on put and forgets it on delete", () => {
    const index = new ReservationIndex();
    index.put(reservation("team-a/web", ["192.168.35.104"]));
    assert.equal(index.reservationOf("IPv4", address("192.168.35.104").value)?.name, "web");
    index.put(reservation("team-a/web", ["192.168.35.105"]));
    assert.equal(index.reservationOf("IPv4", address("192.168.35.104").value), undefined);
    assert.equal(index.values("IPv4").has(address("192.168.35.104").value), false);
    assert.equal(index.values("IPv4").has(address("192.168.35.105").value), true);
    index.delete("team-a", "web");
    assert.equal(index.size, 0);
    assert.equal(index.values("IPv4").size, 0);
  });

  it("keeps a contested address for the reservation that had it first, and gives it on when that one goes", () => {
    const index = ReservationIndex.from([
      reservation("team-a/first", ["192.168.35.104"]),
      reservation("team-b/second", ["192.168.35.104"]),
    ]);
    assert.equal(index.reservationOf("IPv4", address("192.168.35.104").value)?.name, "first");
    index.delete("team-b", "second");
    assert.equal(index.reservationOf("IPv4", address("192.168.35.104").value)?.name, "first");
  });

  it("offers a Service the reservations naming it before those for its whole namespace", () => {
    const index = ReservationIndex.from([
      reservation("team-a/any", ["192.168.35.101"]),
      reservation("team-a/for-web", ["192.168.35.102"], "web"),
      reservation("team-a/for-db", ["192.168.35.103"], "db"),
      reservation("team-b/elsewhere", ["192.168.35.104"]),
    ]);
    assert.deepEqual(
      index.reservationsFor("team-a/web").map((each) => each.name),
      ["for-web", "any"],
    );
  });
});

describe("reservationHolder (status.holder)", () => {
  const reserved = reservation("team-a/web", ["192.168.35.104"], "web");

  it("is the Service it is for when that one holds the address, before any sharer", () => {
    const held = view({
      holders: [
        ["team-a/aaa", "192.168.35.104"],
        ["team-a/web", "192.168.35.104"],
      ],
    });
    assert.deepEqual(reservationHolder(reserved, held.usage), {
      ref: "team-a/web",
      admitted: true,
      all: ["team-a/aaa", "team-a/web"],
    });
  });

  it("names another holder as one it is not for, and no one when nobody holds it", () => {
    const other = view({ holders: [["team-b/x", "192.168.35.104"]] });
    assert.deepEqual(reservationHolder(reserved, other.usage), {
      ref: "team-b/x",
      admitted: false,
      all: ["team-b/x"],
    });
    assert.equal(reservationHolder(reserved, view().usage), undefined);
  });
});

describe("poolSetAside (the retained and reserved gauges)", () => {
  it("counts per pool and family, zeros included, each contested address once", () => {
    const retained = new RetainedAddresses();
    retained.retain(address("192.168.35.101"), { ref: "team-a/gone", since: 1, until: 2 });
    const index = ReservationIndex.from([
      reservation("team-a/web", ["192.168.35.104"]),
      reservation("team-b/late", ["192.168.35.104"]),
      reservation("team-a/dual", ["10.30.0.1", "fd00:30::1"]),
    ]);
    const counts = poolSetAside(pools, retained, index).map(
      (each) => `${each.pool}/${each.family} ${each.retained} ${each.reserved}`,
    );
    assert.deepEqual(counts, [
      "default/IPv4 1 1",
      "dual/IPv4 0 1",
      "dual/IPv6 0 1",
      "other/IPv4 0 0",
      "team-b-only/IPv4 0 0",
    ]);
  });
});

describe("decideReservation", () => {
  const decision = (reserving: ReturnType<typeof spec>, options: Parameters<typeof view>[0] = {}) =>
    decideReservation(reserving, view(options));

  it("admits a free address of a pool the namespace may use, one of each family of one pool too", () => {
    const single = decision(spec("team-a/web", ["192.168.35.104"], "web"));
    assert.equal(single.kind, "allowed");
    assert.equal(single.pool, "default");
    assert.match(
      single.message,
      /AddressReservation team-a\/web reserves 192\.168\.35\.104 of pool "default" for team-a\/web/,
    );
    const dual = decision(spec("team-a/dual", ["10.30.0.1", "fd00:30::1"]));
    assert.equal(dual.kind, "allowed");
    assert.match(dual.message, /for the Services of namespace team-a/);
  });

  it("admits an address its own namespace already holds: nothing is moved", () => {
    const held = decision(spec("team-a/web", ["192.168.35.104"]), {
      holders: [["team-a/web", "192.168.35.104"]],
    });
    assert.equal(held.kind, "allowed");
  });

  const refusals: [string, ReturnType<typeof spec>, Parameters<typeof view>[0], string, RegExp][] =
    [
      ["not an address", spec("team-a/r", ["192.168.35"]), {}, "InvalidAddress", /spec\.addresses/],
      ["no address", spec("team-a/r", []), {}, "InvalidAddress", /has no spec\.addresses/],
      [
        "two of one family",
        spec("team-a/r", ["192.168.35.101", "192.168.35.102"]),
        {},
        "FamilyMismatch",
        /two of different families/,
      ],
      ["in no pool", spec("team-a/r", ["10.99.0.1"]), {}, "NotInAnyPool", /lies in no pool/],
      [
        "from two pools",
        spec("team-a/r", ["192.168.35.101", "fd00:30::1"]),
        {},
        "PoolMismatch",
        /from two pools/,
      ],
      [
        "a pool the namespace may not use",
        spec("team-a/r", ["10.50.0.1"]),
        {},
        "PoolNotAllowed",
        /does not admit namespace team-a/,
      ],
      [
        "held by another namespace",
        spec("team-a/r", ["192.168.35.104"]),
        { holders: [["team-b/db", "192.168.35.104"]] },
        "AddressInUse",
        /which team-b\/db of another namespace holds/,
      ],
      [
        "reserved already",
        spec("team-a/r", ["192.168.35.104"]),
        { reservations: [reservation("team-b/theirs", ["192.168.35.104"])] },
        "AddressReserved",
        /AddressReservation team-b\/theirs reserves already/,
      ],
      [
        "past the namespace's quota",
        spec("team-a/r", ["192.168.35.104"]),
        { holders: [["team-a/web", "192.168.35.101"]], quota: { "team-a": 1 } },
        "QuotaExceeded",
        /may hold 1 address/,
      ],
    ];
  for (const [what, reserving, options, reason, message] of refusals) {
    it(`refuses ${what}: ${reason}`, () => {
      const refused = decision(reserving, options);
      assert.equal(refused.kind, "denied");
      assert.equal(refused.kind === "denied" && refused.reason, reason);
      assert.match(refused.message, message);
    });
  }

  it("admits an update of a reservation to the addresses it reserves already", () => {
    const own = decision(spec("team-a/web", ["192.168.35.104"]), {
      reservations: [reservation("team-a/web", ["192.168.35.104"])],
    });
    assert.equal(own.kind, "allowed");
  });
});

describe("what a reservation does to grants", () => {
  // Everything of pool "default" held but .109 and .110; .109 reserved for team-a/web.
  const full: [string, string][] = [];
  for (let last = 100; last <= 108; last += 1) full.push([`team-c/s${last}`, `192.168.35.${last}`]);
  const reserved = () =>
    view({ holders: full, reservations: [reservation("team-a/web", ["192.168.35.109"], "web")] });

  it("an allocation for anyone else passes over it", () => {
    const granted = decide(service("team-d/other"), reserved(), policy);
    assert.equal(granted.kind, "assigned");
    assert.deepEqual(texts(granted.addresses), ["192.168.35.110"]);
  });

  it("the Service it is for gets it first when it asks for no address", () => {
    const granted = decide(service("team-a/web"), reserved(), policy);
    assert.equal(granted.kind, "assigned");
    assert.deepEqual(texts(granted.addresses), ["192.168.35.109"]);
  });

  it("another Service's explicit request is refused AddressReserved, naming the reservation", () => {
    const refused = decide(service("team-a/db", "192.168.35.109"), reserved(), policy);
    assert.equal(refused.kind, "denied");
    assert.equal(refused.kind === "denied" && refused.reason, "AddressReserved");
    assert.match(refused.message, /team-a\/web/);
    const own = decide(service("team-a/web", "192.168.35.109"), reserved(), policy);
    assert.equal(own.kind, "allowed");
  });
});
