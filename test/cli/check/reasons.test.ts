// `lb-ip-guard check`: one test per reason code, each Service denied for the reason it names.
// Subtests run concurrently: each is a separate process.

import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { checkJson, find, LAN, type Report, service, yaml } from "./helpers.ts";

describe("check: one test per reason code", { concurrency: true }, () => {
  // One run decides them all: each case in its own namespace and addresses, so none interferes.
  const pools = yaml(
    LAN,
    `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: team-b-only, namespace: metallb-system}
spec:
  addresses: [10.5.0.0/29]
  serviceAllocation:
    namespaces: [team-b]`,
    `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: tiny, namespace: metallb-system}
spec:
  addresses: [10.7.0.1/32]
  autoAssign: false`,
  );
  const shared = { "metallb.io/allow-shared-ip": "k", "metallb.io/loadBalancerIPs": "10.0.0.13" };
  const tiny = { "lb-ip-guard.dev/auto-assign": "true", "metallb.io/address-pool": "tiny" };
  const services = yaml(
    service("invalid/s", { loadBalancerIP: "10.0.0.300" }),
    service(
      "conflicting/s",
      { loadBalancerIP: "10.0.0.10" },
      { "metallb.io/loadBalancerIPs": "10.0.0.11" },
    ),
    service("family/s", {
      ipFamilies: ["IPv6"],
      ipFamilyPolicy: "SingleStack",
      loadBalancerIP: "10.0.0.10",
    }),
    service("nopool/s", { loadBalancerIP: "10.9.9.9" }),
    service("poolnotfound/s", {}, { "metallb.io/address-pool": "nope" }),
    service(
      "poolmismatch/s",
      { loadBalancerIP: "10.0.0.10" },
      { "metallb.io/address-pool": "other" },
    ),
    service("team-a/s", { loadBalancerIP: "10.5.0.1" }),
    service("team-b/s", { loadBalancerIP: "10.5.0.1" }),
    service("inuse/first", { loadBalancerIP: "10.0.0.12" }),
    service("inuse/second", { loadBalancerIP: "10.0.0.12" }),
    service("sharing/one", {}, shared),
    service("sharing/two", {}, shared),
    service("exhausted/one", { type: "ClusterIP" }, tiny),
    service("exhausted/two", { type: "ClusterIP" }, tiny),
    service("external/s", { type: "ClusterIP", externalIPs: ["10.0.0.15"] }),
  );
  let report: Report = {
    summary: { services: 0, allowed: 0, assigned: 0, denied: 0 },
    results: [],
  };
  before(async () => {
    const run = await checkJson(["-"], pools + services);
    assert.equal(run.code, 1);
    report = run.report;
  });

  const cases: readonly [ReasonCode: string, ref: string, message: RegExp][] = [
    ["InvalidAddress", "invalid/s", /"10\.0\.0\.300" is not an IP address/],
    [
      "ConflictingFields",
      "conflicting/s",
      /both spec\.loadBalancerIP and the metallb\.io\/loadBalancerIPs/,
    ],
    ["FamilyMismatch", "family/s", /10\.0\.0\.10 is IPv4 but spec\.ipFamilies is \[IPv6\]/],
    ["NotInAnyPool", "nopool/s", /10\.9\.9\.9, which lies in no pool/],
    ["PoolNotFound", "poolnotfound/s", /"nope".*known pools: lan, other, team-b-only, tiny/],
    ["PoolMismatch", "poolmismatch/s", /not in the pool it names: pool "other"/],
    ["PoolNotAllowed", "team-a/s", /"team-b-only".*namespaces team-b/],
    ["AddressInUse", "inuse/second", /10\.0\.0\.12, which inuse\/first already holds/],
    ["SharingConflict", "sharing/two", /sharing key "k", but both expose TCP\/80/],
    ["PoolExhausted", "exhausted/two", /no free IPv4 address is left in pool "tiny"/],
    [
      "ExternalIPInPool",
      "external/s",
      /10\.0\.0\.15 in spec\.externalIPs, which lies in pool "lan"/,
    ],
  ];
  for (const [reason, ref, message] of cases) {
    test(reason, () => {
      const result = find(report, ref);
      assert.equal(result.decision, "denied");
      assert.equal(result.reason, reason);
      assert.match(result.message, new RegExp(ref.replace("/", "\\/")));
      assert.match(result.message, message);
    });
  }

  test("the Services beside the denials are accepted", () => {
    assert.equal(find(report, "team-b/s").decision, "allowed");
    assert.equal(find(report, "inuse/first").decision, "allowed");
    assert.equal(find(report, "sharing/one").decision, "allowed");
    assert.deepEqual(find(report, "exhausted/one").ips, ["10.7.0.1"]);
    assert.equal(find(report, "exhausted/one").decision, "assigned");
    assert.equal(report.summary.denied, cases.length);
  });
});
