// The address lifecycle in the pure decision (src/ipam/decide/allocate.ts, requested.ts,
// quota.ts): a Service gets back what was retained for it; others pass over retained addresses
// while their pool has another free one and then take the one retained longest, saying whose it
// was; an explicit request for another's retained address is warned; quotas count distinct
// addresses (held, shared once, reserved) and never refuse an UPDATE that adds none.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { isoTime } from "../../../src/base/text.ts";
import { formatAddress } from "../../../src/ipam/address.ts";
import { quotaDenial } from "../../../src/ipam/decide/quota.ts";
import {
  type ClusterView,
  type Decision,
  decide,
  holderOf,
  parseQuota,
  policyFor,
} from "../../../src/ipam/decide.ts";
import { PoolSet } from "../../../src/ipam/pool.ts";
import { ReservationIndex } from "../../../src/ipam/reservations.ts";
import { RetainedAddresses } from "../../../src/ipam/retained.ts";
import type { ServiceObject } from "../../../src/ipam/service.ts";
import { UsageIndex } from "../../../src/ipam/usage.ts";
import { address, pool } from "../fixtures.ts";

const policy = policyFor();
const SINCE = Date.UTC(2026, 11, 1);

function service(ref: string, ip?: string, extra: Record<string, string> = {}): ServiceObject {
  const [namespace, name] = ref.split("/");
  return {
    metadata: { namespace, name, annotations: extra },
    spec: {
      type: "LoadBalancer",
      ...(ip !== undefined && { loadBalancerIP: ip }),
      ports: [{ port: 80 }],
    },
  };
}

function view(options: {
  range?: string;
  retained?: [string, string, number][];
  held?: [string, string][];
  quotas?: Record<string, number>;
  reservations?: ReservationIndex;
}): ClusterView {
  const usage = new UsageIndex();
  for (const [ref, ip] of options.held ?? []) {
    const svc = service(ref, ip);
    usage.set(ref, holderOf(svc, policy), [address(ip)]);
  }
  const retained = new RetainedAddresses();
  for (const [ip, ref, since] of options.retained ?? []) {
    retained.retain(address(ip), { ref, since, until: since + 86_400_000 });
  }
  return {
    pools: new PoolSet([pool("default", [options.range ?? "10.0.0.1-10.0.0.4"])]),
    usage,
    retained,
    ...(options.reservations !== undefined && { reservations: options.reservations }),
    quotaOf: (namespace) => options.quotas?.[namespace],
    namespaceLabels: () => ({}),
  };
}

const addresses = (decision: Decision) => decision.addresses.map(formatAddress);

describe("retained addresses in the decision", () => {
  it("a Service that asks for no address gets back what was retained for it, and says so", () => {
    const decision = decide(
      service("kubeflow/ml-pipeline-ui"),
      view({ retained: [["10.0.0.3", "kubeflow/ml-pipeline-ui", SINCE]] }),
      policy,
    );
    assert.equal(decision.kind, "assigned");
    assert.deepEqual(addresses(decision), ["10.0.0.3"]);
    assert.ok(decision.kind === "assigned");
    assert.equal(decision.origin, `retained for kubeflow/ml-pipeline-ui since ${isoTime(SINCE)}`);
  });

  it("other Services pass over retained addresses while the pool has another free one", () => {
    const decision = decide(
      service("team-a/new"),
      view({
        retained: [
          ["10.0.0.1", "a/one", SINCE],
          ["10.0.0.2", "a/two", SINCE],
        ],
      }),
      policy,
    );
    assert.deepEqual(addresses(decision), ["10.0.0.3"]);
    assert.ok(decision.kind === "assigned");
    assert.equal(decision.origin, undefined);
  });

  it("with nothing else free, the one retained longest is given, and the answer says whose", () => {
    const decision = decide(
      service("team-a/new"),
      view({
        range: "10.0.0.1-10.0.0.3",
        held: [["a/held", "10.0.0.2"]],
        retained: [
          ["10.0.0.1", "a/younger", SINCE + 1000],
          ["10.0.0.3", "a/older", SINCE],
        ],
      }),
      policy,
    );
    assert.deepEqual(addresses(decision), ["10.0.0.3"]);
    assert.ok(decision.kind === "assigned");
    assert.match(decision.origin ?? "", /10\.0\.0\.3 was retained for a\/older since /);
    assert.match(decision.warnings.join(), /a\/older will not/);
  });

  it("another Service's explicit request for a retained address is admitted with a warning naming it", () => {
    const decision = decide(
      service("team-a/taker", "10.0.0.2"),
      view({ retained: [["10.0.0.2", "kubeflow/ml-pipeline-ui", SINCE]] }),
      policy,
    );
    assert.equal(decision.kind, "allowed");
    assert.ok(decision.kind === "allowed");
    assert.match(
      decision.warnings.join(),
      /10\.0\.0\.2 is retained for kubeflow\/ml-pipeline-ui until 2026-12-02/,
    );
    // Its own retained address asked for explicitly: no warning.
    const own = decide(
      service("kubeflow/ml-pipeline-ui", "10.0.0.2"),
      view({ retained: [["10.0.0.2", "kubeflow/ml-pipeline-ui", SINCE]] }),
      policy,
    );
    assert.ok(own.kind === "allowed");
    assert.deepEqual(
      own.warnings.filter((warning) => warning.includes("retained")),
      [],
    );
  });

  it("an allocation never takes a retained address while a free one is left, whatever the retentions", () => {
    const ips = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"];
    fc.assert(
      fc.property(fc.subarray(ips), fc.subarray(ips), (retainedIps, heldIps) => {
        const retained = retainedIps.filter((ip) => !heldIps.includes(ip));
        const decision = decide(
          service("team-a/new"),
          view({
            held: heldIps.map((ip, index) => [`a/held-${index}`, ip]),
            retained: retained.map((ip, index) => [ip, `a/gone-${index}`, SINCE + index]),
          }),
          policy,
        );
        const free = ips.filter((ip) => !heldIps.includes(ip) && !retained.includes(ip));
        if (free.length > 0) assert.deepEqual(addresses(decision), [free[0]]);
        else if (retained.length > 0) assert.deepEqual(addresses(decision), [retained[0]]);
        else assert.equal(decision.kind, "denied");
      }),
    );
  });
});

describe("quotas", () => {
  it("parses a non-negative integer, else no quota", () => {
    assert.equal(parseQuota("3"), 3);
    assert.equal(parseQuota(" 0 "), 0);
    for (const bad of ["-1", "1.5", "three", "", undefined, 3, "99999999999999999999"]) {
      assert.equal(parseQuota(bad), undefined, String(bad));
    }
  });

  it("refuses a grant past the quota, naming the quota and what the namespace holds", () => {
    const full = view({
      held: [
        ["team-a/one", "10.0.0.1"],
        ["team-a/two", "10.0.0.2"],
        ["team-b/other", "10.0.0.3"],
      ],
      quotas: { "team-a": 2 },
    });
    const decision = decide(service("team-a/three"), full, policy);
    assert.equal(decision.kind, "denied");
    assert.ok(decision.kind === "denied");
    assert.equal(decision.reason, "QuotaExceeded");
    assert.match(
      decision.message,
      /namespace team-a may hold 2 addresses .* holds 2 already \(10\.0\.0\.1, 10\.0\.0\.2\)/,
    );
    // Another namespace, and one without a quota, are not counted against it.
    assert.equal(decide(service("team-b/more"), full, policy).kind, "assigned");
  });

  it("counts an address its Services share once, and what it has reserved", () => {
    const shared = { "metallb.universe.tf/allow-shared-ip": "k" };
    const sharing = view({ quotas: { "team-a": 2 } });
    const first = service("team-a/dns-udp", "10.0.0.1", shared);
    sharing.usage.set("team-a/dns-udp", holderOf(first, policy), [address("10.0.0.1")]);
    const second = service("team-a/dns-tcp", "10.0.0.1", shared);
    (second.spec as { ports: unknown[] }).ports = [{ port: 53, protocol: "TCP" }];
    assert.equal(quotaDenial(sharing, "team-a/dns-tcp", [address("10.0.0.1")], [], {}), undefined);
    const reservations = new ReservationIndex();
    reservations.put({
      namespace: "team-a",
      name: "kept",
      addresses: [address("10.0.0.4")],
      serviceName: undefined,
    });
    const reserved = { ...sharing, reservations };
    assert.equal(
      quotaDenial(reserved, "team-a/x", [address("10.0.0.2")], [], {})?.reason,
      "QuotaExceeded",
    );
    // The reserved address itself, granted to a Service of the namespace, adds nothing.
    assert.equal(quotaDenial(reserved, "team-a/x", [address("10.0.0.4")], [], {}), undefined);
  });

  it("an UPDATE that adds no address is never refused, whatever the quota is now (the ratchet)", () => {
    const over = view({
      held: [
        ["team-a/one", "10.0.0.1"],
        ["team-a/two", "10.0.0.2"],
      ],
      quotas: { "team-a": 0 },
    });
    const own = [address("10.0.0.2")];
    assert.equal(quotaDenial(over, "team-a/two", own, own, { service: "team-a/two" }), undefined);
    assert.equal(decide(service("team-a/two", "10.0.0.2"), over, policy).kind, "allowed");
    assert.equal(
      quotaDenial(over, "team-a/two", [address("10.0.0.3")], own, { service: "team-a/two" })
        ?.reason,
      "QuotaExceeded",
    );
  });
});
