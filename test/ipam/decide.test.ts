import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { formatAddress } from "../../src/ipam/address.ts";
import {
  type ClusterView,
  type Decision,
  decide,
  holderOf,
  holdingsOf,
  type Policy,
  policyFor,
} from "../../src/ipam/decide.ts";
import { type Pool, PoolSet } from "../../src/ipam/pool.ts";
import type { ServiceObject } from "../../src/ipam/service.ts";
import { UsageIndex } from "../../src/ipam/usage.ts";
import { allocation, policyOfRelease, pool, type Spec, service } from "./fixtures.ts";

const defaultPolicy = policyFor();
const autoAssign = { "lb-ip-guard.dev/auto-assign": "true" };

/** A cluster where admitted Services are recorded, as check and the webhook do. */
function cluster(
  pools: Pool[],
  namespaceLabels: Record<string, Record<string, string>> = {},
  policy: Policy = defaultPolicy,
) {
  const view: ClusterView = {
    pools: new PoolSet(pools),
    usage: new UsageIndex(),
    namespaceLabels: (namespace) => namespaceLabels[namespace] ?? {},
  };
  const admit = (svc: ServiceObject): Decision => {
    const decision = decide(svc, view, policy);
    if (decision.kind !== "denied") {
      const held = decision.kind === "assigned" ? decision.addresses : holdingsOf(svc, policy);
      view.usage.set(holderOf(svc, policy).ref, holderOf(svc, policy), held);
    }
    return decision;
  };
  return { view, admit };
}

function denied(decision: Decision, reason: string): string {
  assert.equal(
    decision.kind,
    "denied",
    `expected a denial, got ${decision.kind}: ${decision.message}`,
  );
  assert.equal(decision.kind === "denied" && decision.reason, reason, decision.message);
  return decision.message;
}

const ips = (decision: Decision) => decision.addresses.map(formatAddress);

describe("the MetalLB v0.11 Kubeflow scenario", () => {
  const { admit } = cluster([pool("default", ["192.168.35.100-192.168.35.110"])]);
  const dashboards = [
    ["istio-system/istio-ingressgateway", "192.168.35.100"],
    ["kubeflow/minio-service", "192.168.35.101"],
    ["mlflow-system/mlflow-server-service", "192.168.35.102"],
    ["seldon-system/seldon-core-analytics-grafana", "192.168.35.103"],
  ] as const;

  test("the four dashboards are allowed from pool default", () => {
    for (const [ref, ip] of dashboards) {
      const decision = admit(service(ref, { ip }));
      assert.equal(decision.kind, "allowed", decision.message);
      assert.deepEqual(ips(decision), [ip]);
      assert.equal(decision.pool, "default");
    }
  });

  test("the auto-assign ClusterIP Service gets .104 and becomes a LoadBalancer", () => {
    const decision = admit(
      service("kubeflow/ml-pipeline-ui", {
        type: "ClusterIP",
        annotations: { "lb-ip-guard.dev/auto-assign": "true" },
      }),
    );
    assert.equal(decision.kind, "assigned");
    assert.deepEqual(ips(decision), ["192.168.35.104"]);
  });

  test("asking for .101 again is refused, naming minio-service and the free addresses", () => {
    const message = denied(
      admit(service("team-a/minio-copy", { ip: "192.168.35.101" })),
      "AddressInUse",
    );
    assert.match(message, /kubeflow\/minio-service/);
    assert.match(message, /team-a\/minio-copy/);
    assert.match(message, /192\.168\.35\.105-192\.168\.35\.110/);
  });

  test("an address outside every pool is NotInAnyPool, and the hint lists the pool", () => {
    const message = denied(admit(service("team-a/x", { ip: "192.168.35.120" })), "NotInAnyPool");
    assert.match(message, /192\.168\.35\.100-192\.168\.35\.110/);
  });

  test("a typo is InvalidAddress", () => {
    denied(admit(service("team-a/x", { ip: "192.168.35.1o1" })), "InvalidAddress");
    denied(
      admit(
        service("team-a/x", { annotations: { "metallb.io/loadBalancerIPs": "192.168.35.105,," } }),
      ),
      "InvalidAddress",
    );
  });
});

describe("reason codes", () => {
  test("ConflictingFields: spec.loadBalancerIP and the annotation together", () => {
    const { admit } = cluster([pool("default", ["10.0.0.0/24"])]);
    const svc = service("a/b", {
      ip: "10.0.0.1",
      annotations: { "metallb.universe.tf/loadBalancerIPs": "10.0.0.2" },
    });
    assert.match(denied(admit(svc), "ConflictingFields"), /metallb\.universe\.tf\/loadBalancerIPs/);
  });

  test("FamilyMismatch: wrong family for ipFamilies, two of one family, SingleStack with two", () => {
    const { admit } = cluster([pool("dual", ["10.0.0.0/24", "fd00::/120"])]);
    denied(admit(service("a/v6", { ip: "fd00::5", ipFamilies: ["IPv4"] })), "FamilyMismatch");
    const two = { "metallb.io/loadBalancerIPs": "10.0.0.1,10.0.0.2" };
    denied(admit(service("a/two", { annotations: two })), "FamilyMismatch");
    const dual = { "metallb.io/loadBalancerIPs": "10.0.0.1,fd00::1" };
    denied(
      admit(service("a/single", { annotations: dual, ipFamilyPolicy: "SingleStack" })),
      "FamilyMismatch",
    );
    const allowed = admit(
      service("a/dual", {
        annotations: dual,
        ipFamilyPolicy: "RequireDualStack",
        ipFamilies: ["IPv4", "IPv6"],
      }),
    );
    assert.deepEqual(ips(allowed), ["10.0.0.1", "fd00::1"]);
  });

  test("PoolNotFound, PoolMismatch and PoolNotAllowed", () => {
    const { admit } = cluster([
      pool("default", ["10.0.0.0/24"]),
      pool("team-b", ["10.0.1.0/24"], {
        serviceAllocation: allocation({ namespaces: ["team-b"] }),
      }),
    ]);
    const named = (name: string) => ({ "metallb.io/address-pool": name });
    assert.match(
      denied(admit(service("a/x", { annotations: named("nope") })), "PoolNotFound"),
      /known pools: default, team-b/,
    );
    denied(
      admit(service("a/x", { ip: "10.0.1.5", annotations: named("default") })),
      "PoolMismatch",
    );
    assert.match(
      denied(admit(service("team-a/x", { ip: "10.0.1.5" })), "PoolNotAllowed"),
      /namespaces team-b/,
    );
    assert.equal(admit(service("team-b/x", { ip: "10.0.1.5" })).kind, "allowed");
    denied(
      admit(
        service("team-a/y", {
          annotations: { ...named("team-b"), "lb-ip-guard.dev/auto-assign": "true" },
        }),
      ),
      "PoolNotAllowed",
    );
  });

  test("dual-stack addresses from two different pools are PoolMismatch", () => {
    const { admit } = cluster([pool("v4", ["10.0.0.0/24"]), pool("v6", ["fd00::/120"])]);
    const dual = { "metallb.io/loadBalancerIPs": "10.0.0.1,fd00::1" };
    denied(
      admit(service("a/x", { annotations: dual, ipFamilyPolicy: "RequireDualStack" })),
      "PoolMismatch",
    );
  });

  test("PoolExhausted when auto-assign finds nothing free", () => {
    const { admit } = cluster([pool("tiny", ["10.0.0.1-10.0.0.2"])]);
    const auto = { "lb-ip-guard.dev/auto-assign": "true" };
    assert.deepEqual(ips(admit(service("a/1", { annotations: auto }))), ["10.0.0.1"]);
    assert.deepEqual(ips(admit(service("a/2", { annotations: auto }))), ["10.0.0.2"]);
    assert.match(denied(admit(service("a/3", { annotations: auto })), "PoolExhausted"), /"tiny"/);
  });
});

describe("IP sharing (MetalLB rules)", () => {
  const shared = (ref: string, key: string, protocol: string, extra: Spec = {}) =>
    service(ref, {
      ip: "10.0.0.7",
      annotations: { "metallb.io/allow-shared-ip": key },
      ports: [{ protocol, port: 53 }],
      ...extra,
    });

  test("same key, different ports, both Cluster: allowed", () => {
    const { admit } = cluster([pool("default", ["10.0.0.0/24"])]);
    assert.equal(admit(shared("dns/tcp", "dns", "TCP")).kind, "allowed");
    assert.equal(admit(shared("dns/udp", "dns", "UDP")).kind, "allowed");
  });

  test("same key and a repeated port: SharingConflict naming the port", () => {
    const { admit } = cluster([pool("default", ["10.0.0.0/24"])]);
    admit(shared("dns/tcp", "dns", "TCP"));
    assert.match(denied(admit(shared("dns/tcp2", "dns", "TCP")), "SharingConflict"), /TCP\/53/);
  });

  test("same key, Local with different selectors: SharingConflict", () => {
    const { admit } = cluster([pool("default", ["10.0.0.0/24"])]);
    admit(
      shared("dns/tcp", "dns", "TCP", { externalTrafficPolicy: "Local", selector: { app: "a" } }),
    );
    denied(
      admit(
        shared("dns/udp", "dns", "UDP", { externalTrafficPolicy: "Local", selector: { app: "b" } }),
      ),
      "SharingConflict",
    );
    const same = admit(
      shared("dns/udp2", "dns", "UDP", { externalTrafficPolicy: "Local", selector: { app: "a" } }),
    );
    assert.equal(same.kind, "allowed");
  });

  test("different or missing keys: AddressInUse, with a hint about the key", () => {
    const { admit } = cluster([pool("default", ["10.0.0.0/24"])]);
    admit(shared("dns/tcp", "dns", "TCP"));
    assert.match(
      denied(admit(shared("dns/udp", "other", "UDP")), "AddressInUse"),
      /allow-shared-ip: "dns"/,
    );
    denied(
      admit(service("dns/plain", { ip: "10.0.0.7", ports: [{ protocol: "UDP", port: 53 }] })),
      "AddressInUse",
    );
  });

  test("a Service never conflicts with itself (re-applying the same manifest)", () => {
    const { admit } = cluster([pool("default", ["10.0.0.0/24"])]);
    admit(service("a/x", { ip: "10.0.0.9" }));
    assert.equal(admit(service("a/x", { ip: "10.0.0.9" })).kind, "allowed");
  });
});

describe("allocation order", () => {
  const auto = { "lb-ip-guard.dev/auto-assign": "true" };

  test("matching serviceAllocation pools by priority, unset last, then open pools by name; autoAssign false only by name", () => {
    const { admit } = cluster(
      [
        pool("zeta", ["10.9.0.1-10.9.0.1"]),
        pool("alpha", ["10.1.0.1-10.1.0.1"]),
        pool("reserved", ["10.5.0.1-10.5.0.1"], { autoAssign: false }),
        pool("late", ["10.3.0.1-10.3.0.1"], {
          serviceAllocation: allocation({ namespaces: ["apps"] }),
        }),
        pool("first", ["10.2.0.1-10.2.0.1"], {
          serviceAllocation: allocation({ priority: 10, namespaces: ["apps"] }),
        }),
        pool("second", ["10.4.0.1-10.4.0.1"], {
          serviceAllocation: allocation({
            priority: 20,
            namespaceSelectors: [{ matchLabels: { tier: "web" }, matchExpressions: [] }],
          }),
        }),
        pool("others", ["10.6.0.1-10.6.0.1"], {
          serviceAllocation: allocation({ namespaces: ["elsewhere"] }),
        }),
      ],
      { apps: { tier: "web" } },
    );
    const order = Array.from({ length: 6 }, (_, i) => {
      const decision = admit(service(`apps/s${i}`, { type: "ClusterIP", annotations: auto }));
      return decision.kind === "denied" ? decision.reason : decision.pool;
    });
    assert.deepEqual(order, ["first", "second", "late", "alpha", "zeta", "PoolExhausted"]);
    const named = admit(
      service("apps/r", {
        type: "ClusterIP",
        annotations: { ...auto, "metallb.io/address-pool": "reserved" },
      }),
    );
    assert.equal(named.pool, "reserved");
  });

  test("RequireDualStack takes one address of each family from one pool; PreferDualStack prefers such a pool, as MetalLB does", () => {
    const { admit } = cluster([
      pool("a-v4only", ["10.0.0.0/30"]),
      pool("b-dual", ["10.1.0.0/30", "fd00::/126"]),
    ]);
    const required = admit(
      service("x/req", {
        annotations: auto,
        ipFamilyPolicy: "RequireDualStack",
        ipFamilies: ["IPv4", "IPv6"],
      }),
    );
    assert.deepEqual([required.pool, ...ips(required)], ["b-dual", "10.1.0.0", "fd00::"]);
    const preferred = admit(
      service("x/pref", { annotations: auto, ipFamilyPolicy: "PreferDualStack" }),
    );
    assert.deepEqual([preferred.pool, ...ips(preferred)], ["b-dual", "10.1.0.1", "fd00::1"]);
    const v6 = admit(service("x/v6", { annotations: auto, ipFamilies: ["IPv6"] }));
    assert.deepEqual(ips(v6), ["fd00::2"]);
    // With no dual pool left it settles for one address of its primary family.
    admit(
      service("x/r2", {
        annotations: auto,
        ipFamilyPolicy: "RequireDualStack",
        ipFamilies: ["IPv4", "IPv6"],
      }),
    );
    admit(
      service("x/r3", {
        annotations: auto,
        ipFamilyPolicy: "RequireDualStack",
        ipFamilies: ["IPv4", "IPv6"],
      }),
    );
    const single = admit(
      service("x/pref2", { annotations: auto, ipFamilyPolicy: "PreferDualStack" }),
    );
    assert.deepEqual([single.pool, ...ips(single)], ["a-v4only", "10.0.0.0"]);
  });

  test("an auto-assign LoadBalancer that MetalLB already served keeps its address", () => {
    const { admit } = cluster([pool("default", ["10.0.0.0/24"])]);
    const svc = {
      ...service("a/x", { annotations: auto }),
      status: { loadBalancer: { ingress: [{ ip: "10.0.0.42" }] } },
    };
    const decision = admit(svc);
    assert.deepEqual([decision.kind, ...ips(decision)], ["allowed", "10.0.0.42"]);
  });

  test("auto-assign never hands out a used address and follows the brute-force order", () => {
    fc.assert(
      fc.property(
        fc.array(fc.nat(15), { maxLength: 12 }),
        fc.integer({ min: 1, max: 20 }),
        (usedOffsets, requests) => {
          const { admit, view } = cluster([
            pool("b", ["10.0.0.8-10.0.0.15"]),
            pool("a", ["10.0.0.0-10.0.0.3"]),
          ]);
          for (const offset of new Set(usedOffsets)) {
            view.usage.set(
              `old/${offset}`,
              { ref: `old/${offset}`, sharingKey: "", ports: [], backendKey: "Cluster" },
              [{ family: "IPv4", value: 0x0a000000n + BigInt(offset) }],
            );
          }
          const used = new Set(usedOffsets.map((offset) => `10.0.0.${offset}`));
          const model = [0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15]
            .map((n) => `10.0.0.${n}`)
            .filter((ip) => !used.has(ip));
          for (let i = 0; i < requests; i++) {
            const decision = admit(service(`new/s${i}`, { type: "ClusterIP", annotations: auto }));
            const expected = model[i];
            if (expected === undefined)
              assert.equal(decision.kind === "denied" && decision.reason, "PoolExhausted");
            else assert.deepEqual(ips(decision), [expected]);
          }
        },
      ),
      { numRuns: 100 },
    );
  });
});

describe("scope", () => {
  test("ClusterIP Services and foreign loadBalancerClass are allowed with no addresses", () => {
    const { admit } = cluster([pool("default", ["10.0.0.0/24"])]);
    const clusterIP = admit(service("a/x", { type: "ClusterIP" }));
    assert.deepEqual([clusterIP.kind, clusterIP.addresses.length], ["allowed", 0]);
    const foreign = admit(
      service("a/y", { ip: "192.0.2.1", loadBalancerClass: "example.com/other" }),
    );
    assert.deepEqual([foreign.kind, foreign.addresses.length], ["allowed", 0]);
  });

  test("a LoadBalancer without a requested address is allocated here, from a pool that must exist", () => {
    const { admit } = cluster([pool("default", ["10.0.0.0/24"])]);
    const allocated = admit(service("a/x"));
    assert.deepEqual(
      [allocated.kind, allocated.addresses.map(formatAddress)],
      ["assigned", ["10.0.0.0"]],
    );
    denied(
      admit(service("a/y", { annotations: { "metallb.universe.tf/address-pool": "gone" } })),
      "PoolNotFound",
    );
  });

  test("a decision carries the request it read, so nothing after it reads the Service again", () => {
    const { admit } = cluster([pool("default", ["10.0.0.0/24"])]);
    const requested = admit(
      service("a/x", { annotations: { "metallb.io/loadBalancerIPs": " 10.0.0.7" } }),
    );
    assert.equal(requested.kind, "allowed");
    assert.deepEqual(requested.kind === "allowed" && requested.request, {
      source: "annotation",
      key: "metallb.io/loadBalancerIPs",
      texts: ["10.0.0.7"],
    });
    const assigned = admit(service("a/y", { type: "ClusterIP", annotations: autoAssign }));
    assert.deepEqual(assigned.kind === "assigned" && assigned.request, { source: "none" });
    const outOfScope = admit(service("a/z", { type: "ClusterIP" }));
    assert.equal(outOfScope.kind === "allowed" && outOfScope.request, undefined);
  });

  test("deprecated keys produce warnings", () => {
    const { admit } = cluster([pool("default", ["10.0.0.0/24"])]);
    const decision = admit(
      service("a/x", { annotations: { "metallb.universe.tf/loadBalancerIPs": "10.0.0.3" } }),
    );
    assert.equal(decision.kind, "allowed");
    assert.match(
      decision.kind === "allowed" ? decision.warnings.join() : "",
      /metallb\.io\/loadBalancerIPs/,
    );
  });
});

describe("what the guarded MetalLB release reads", () => {
  const pools = [pool("default", ["192.168.35.100-192.168.35.110"])];
  const v011 = policyOfRelease("v0.11.0");

  test("v0.11 refuses an address annotation it would ignore, naming spec.loadBalancerIP", () => {
    const { admit } = cluster(pools, {}, v011);
    const message = denied(
      admit(
        service("kubeflow/ui", {
          annotations: { "metallb.universe.tf/loadBalancerIPs": "192.168.35.110" },
        }),
      ),
      "IgnoredAnnotation",
    );
    assert.match(
      message,
      /metallb\.universe\.tf\/loadBalancerIPs, which MetalLB v0\.11\.0 does not read/,
    );
    assert.match(message, /use spec\.loadBalancerIP/);
    // The same address in the key it reads as well: nothing is ignored that matters.
    const both = admit(
      service("kubeflow/ui2", {
        ip: "192.168.35.110",
        annotations: { "metallb.universe.tf/loadBalancerIPs": "192.168.35.110" },
      }),
    );
    assert.deepEqual([both.kind, ...ips(both)], ["allowed", "192.168.35.110"]);
  });

  test("v0.11 refuses metallb.io/allow-shared-ip unless the key it reads says the same", () => {
    const { admit } = cluster(pools, {}, v011);
    const message = denied(
      admit(
        service("a/x", {
          ip: "192.168.35.101",
          annotations: { "metallb.io/allow-shared-ip": "k" },
        }),
      ),
      "IgnoredAnnotation",
    );
    assert.match(message, /use metallb\.universe\.tf\/allow-shared-ip/);
    const both = { "metallb.io/allow-shared-ip": "k", "metallb.universe.tf/allow-shared-ip": "k" };
    assert.equal(
      admit(service("a/y", { ip: "192.168.35.101", annotations: both })).kind,
      "allowed",
    );
  });

  test("hints name the keys the release reads", () => {
    const { admit } = cluster(pools, {}, v011);
    admit(
      service("a/holder", {
        ip: "192.168.35.101",
        annotations: { "metallb.universe.tf/allow-shared-ip": "k" },
      }),
    );
    const message = denied(admit(service("a/other", { ip: "192.168.35.101" })), "AddressInUse");
    assert.match(message, /set metallb\.universe\.tf\/allow-shared-ip: "k"/);
    const current = cluster(pools);
    current.admit(
      service("a/holder", {
        ip: "192.168.35.101",
        annotations: { "metallb.io/allow-shared-ip": "k" },
      }),
    );
    assert.match(
      denied(current.admit(service("a/other", { ip: "192.168.35.101" })), "AddressInUse"),
      /set metallb\.io\/allow-shared-ip/,
    );
  });

  test("before v0.13 MetalLB knows no loadBalancerClass and serves every class", () => {
    const classed = service("a/x", { ip: "10.9.9.9", loadBalancerClass: "example.com/other" });
    denied(cluster(pools, {}, v011).admit(classed), "NotInAnyPool");
    assert.equal(cluster(pools, {}, policyOfRelease("v0.13.5")).admit(classed).kind, "allowed");
  });

  test("v0.11 serves one address: a dual-stack auto-assign gets its primary family only", () => {
    const { admit } = cluster([pool("dual", ["10.1.0.0/30", "fd00::/126"])], {}, v011);
    const decision = admit(
      service("a/x", {
        annotations: autoAssign,
        ipFamilyPolicy: "RequireDualStack",
        ipFamilies: ["IPv4", "IPv6"],
      }),
    );
    assert.deepEqual([decision.kind, ...ips(decision)], ["assigned", "10.1.0.0"]);
  });

  test("no deprecation hint towards keys the release does not read, nor about an address lb-ip-guard wrote", () => {
    const warningsOf = (decision: Decision) =>
      decision.kind === "denied" ? [] : decision.warnings;
    const legacy = service("a/x", {
      ip: "192.168.35.101",
      annotations: { "metallb.universe.tf/address-pool": "default" },
    });
    assert.deepEqual(warningsOf(cluster(pools, {}, v011).admit(legacy)), []);
    assert.deepEqual(warningsOf(cluster(pools, {}, policyOfRelease("v0.12.1")).admit(legacy)), [
      "spec.loadBalancerIP is deprecated by Kubernetes; metallb.universe.tf/loadBalancerIPs is the lasting form",
    ]);
    assert.equal(warningsOf(cluster(pools).admit(legacy)).length, 2);
    const written = service("a/y", {
      ip: "192.168.35.102",
      annotations: { "lb-ip-guard.dev/assigned-from": "default" },
    });
    assert.deepEqual(warningsOf(cluster(pools).admit(written)), []);
  });
});

describe("MetalLB's allocator rules on requested addresses", () => {
  test("avoidBuggyIPs: a requested .0 or .255 is in no pool, as MetalLB's poolFor skips it", () => {
    const buggy = { ...pool("lan", ["10.0.40.0/23"]), avoidBuggyIPs: true };
    const { admit } = cluster([buggy, pool("plain", ["10.0.50.0/24"])]);
    for (const ip of ["10.0.40.0", "10.0.40.255", "10.0.41.0"]) {
      assert.match(denied(admit(service(`a/${ip}`, { ip })), "NotInAnyPool"), /avoidBuggyIPs/);
    }
    const named = admit(
      service("a/named", { ip: "10.0.41.255", annotations: { "metallb.io/address-pool": "lan" } }),
    );
    denied(named, "PoolMismatch");
    assert.equal(admit(service("a/fine", { ip: "10.0.40.1" })).kind, "allowed");
    assert.equal(admit(service("a/plain", { ip: "10.0.50.0" })).kind, "allowed");
    const v6 = { ...pool("v6", ["fd00::/120"]), avoidBuggyIPs: true };
    assert.equal(
      cluster([v6]).admit(service("a/v6", { ip: "fd00::ff", ipFamilies: ["IPv6"] })).kind,
      "allowed",
    );
  });

  test("a dual-stack Service asking for one address is refused: MetalLB wants one of each family", () => {
    const { admit } = cluster([pool("dual", ["10.1.0.0/24", "fd00::/120"])]);
    const message = denied(
      admit(
        service("a/x", {
          ip: "10.1.0.5",
          ipFamilyPolicy: "PreferDualStack",
          ipFamilies: ["IPv4", "IPv6"],
        }),
      ),
      "FamilyMismatch",
    );
    assert.match(message, /dual-stack/);
    const two = admit(
      service("a/y", {
        annotations: { "metallb.io/loadBalancerIPs": "10.1.0.6,fd00::6" },
        ipFamilyPolicy: "RequireDualStack",
        ipFamilies: ["IPv4", "IPv6"],
      }),
    );
    assert.equal(two.kind, "allowed");
  });

  test("a priority of 0 sorts with the unset ones, after every positive priority", () => {
    const zero = {
      ...pool("a-zero", ["10.0.1.0/24"]),
      serviceAllocation: allocation({ priority: 0 }),
    };
    const five = {
      ...pool("b-five", ["10.0.2.0/24"]),
      serviceAllocation: allocation({ priority: 5 }),
    };
    const decision = cluster([zero, five]).admit(service("a/x", { annotations: autoAssign }));
    assert.equal(decision.pool, "b-five");
  });

  test("a Local Service without a selector shares with Cluster ones, as MetalLB's backend key has it", () => {
    const { admit } = cluster([pool("default", ["10.0.0.0/24"])]);
    const shared = { "metallb.io/allow-shared-ip": "k" };
    admit(service("a/cluster", { ip: "10.0.0.7", annotations: shared, ports: [{ port: 80 }] }));
    const local = admit(
      service("a/local", {
        ip: "10.0.0.7",
        annotations: shared,
        ports: [{ port: 443 }],
        externalTrafficPolicy: "Local",
      }),
    );
    assert.equal(local.kind, "allowed");
    const selected = admit(
      service("a/selected", {
        ip: "10.0.0.7",
        annotations: shared,
        ports: [{ port: 8443 }],
        externalTrafficPolicy: "Local",
        selector: { app: "web" },
      }),
    );
    denied(selected, "SharingConflict");
  });

  test("a LoadBalancer MetalLB already serves keeps that address, whatever is free below it", () => {
    const { admit } = cluster([pool("default", ["10.0.0.0/24"])]);
    const served = {
      ...service("a/x"),
      status: { loadBalancer: { ingress: [{ ip: "10.0.0.42" }] } },
    };
    assert.deepEqual([admit(served).kind, ...ips(admit(served))], ["allowed", "10.0.0.42"]);
    const annotated = cluster(
      [pool("default", ["10.0.0.0/24"])],
      {},
      policyFor({ allocation: "annotated" }),
    );
    const left = annotated.admit(service("a/y"));
    assert.deepEqual([left.kind, ...ips(left)], ["allowed"]);
  });
});

describe("spellings, as MetalLB's getDesiredLbIPs reads them", () => {
  const pools = [pool("default", ["10.0.0.0/24"])];

  test("spec.loadBalancerIP is parsed as it is: spaces make it invalid; annotation parts are trimmed", () => {
    const { admit } = cluster(pools);
    denied(admit(service("a/spaced", { ip: " 10.0.0.5 " })), "InvalidAddress");
    denied(admit(service("a/blank", { ip: " " })), "InvalidAddress");
    const trimmed = admit(
      service("a/annotated", { annotations: { "metallb.io/loadBalancerIPs": " 10.0.0.6 " } }),
    );
    assert.deepEqual([trimmed.kind, ...ips(trimmed)], ["allowed", "10.0.0.6"]);
    denied(
      admit(service("a/trailing", { annotations: { "metallb.io/loadBalancerIPs": "10.0.0.7," } })),
      "InvalidAddress",
    );
  });

  test("an empty metallb.io/ value is no request and hides the legacy key behind it", () => {
    const { admit } = cluster(pools);
    const empty = admit(
      service("a/x", {
        annotations: {
          "metallb.io/address-pool": "",
          "metallb.universe.tf/address-pool": "gone",
          "metallb.io/loadBalancerIPs": "",
          "metallb.universe.tf/loadBalancerIPs": "10.0.0.9",
        },
      }),
    );
    assert.deepEqual([empty.kind, empty.pool], ["assigned", "default"]);
  });
});

describe("auto-assign shares as MetalLB does", () => {
  test("a TCP/UDP pair with one sharing key and no requested address gets one address; a full pool still shares", () => {
    const { admit } = cluster([pool("lan", ["10.0.0.0/31"])]);
    const dns = { "metallb.io/allow-shared-ip": "dns" };
    const tcp = admit(
      service("a/dns-tcp", { annotations: dns, ports: [{ protocol: "TCP", port: 53 }] }),
    );
    const udp = admit(
      service("a/dns-udp", { annotations: dns, ports: [{ protocol: "UDP", port: 53 }] }),
    );
    assert.deepEqual([...ips(tcp), ...ips(udp)], ["10.0.0.0", "10.0.0.0"]);
    admit(service("a/plain"));
    // The pool is full; a third Service with the key and another port still shares.
    const third = admit(
      service("a/dns-dot", { annotations: dns, ports: [{ protocol: "TCP", port: 853 }] }),
    );
    assert.deepEqual([third.kind, ...ips(third)], ["assigned", "10.0.0.0"]);
    denied(
      admit(service("a/dns-again", { annotations: dns, ports: [{ protocol: "TCP", port: 53 }] })),
      "PoolExhausted",
    );
  });
});
