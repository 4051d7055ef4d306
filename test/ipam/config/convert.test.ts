// The legacy config into MetalLB's custom resources: every field of v0.12.1's format lands in
// its counterpart, defaults are made explicit where newer releases changed them, and what
// cannot be carried is an error naming it.

import assert from "node:assert/strict";
import { test } from "node:test";
import { convertLegacyConfig } from "../../../src/ipam/config/convert.ts";
import { formatPoolConfigError } from "../../../src/ipam/config/errors.ts";
import { legacyConfigFromText } from "../../../src/ipam/config/legacy.ts";

function converted(config: string) {
  const found = legacyConfigFromText(config, "ConfigMap metallb-system/config");
  assert.deepEqual([...found.errors, ...found.bgpErrors].map(formatPoolConfigError), []);
  return convertLegacyConfig(found.config, "metallb-system");
}

function spec(result: ReturnType<typeof converted>, kind: string, name: string): unknown {
  const hit = result.objects.find((object) => object.kind === kind && object.name === name);
  assert.ok(hit, `no ${kind} ${name} among ${result.objects.map((o) => `${o.kind}/${o.name}`)}`);
  assert.deepEqual(hit.object.metadata as object, { name, namespace: "metallb-system" });
  return hit.object.spec;
}

function bgpProblems(config: string): string[] {
  const found = legacyConfigFromText(config, "ConfigMap metallb-system/config");
  assert.deepEqual(found.errors.map(formatPoolConfigError), [], "pool errors");
  return found.bgpErrors.map(formatPoolConfigError);
}

test("pools: addresses as written, auto-assign and avoid-buggy-ips, one advertisement kind per protocol", () => {
  const result = converted(`
address-pools:
- name: lan
  protocol: layer2
  auto-assign: false
  avoid-buggy-ips: true
  addresses: [192.168.1.0/28, 192.168.2.10 - 192.168.2.20]
- name: wan
  protocol: bgp
  addresses: [198.51.100.0/24]
`);
  assert.deepEqual(spec(result, "IPAddressPool", "lan"), {
    addresses: ["192.168.1.0/28", "192.168.2.10 - 192.168.2.20"],
    autoAssign: false,
    avoidBuggyIPs: true,
  });
  // Defaults stay unwritten: the resources' defaults are the ConfigMap's.
  assert.deepEqual(spec(result, "IPAddressPool", "wan"), { addresses: ["198.51.100.0/24"] });
  assert.deepEqual(spec(result, "L2Advertisement", "lan"), { ipAddressPools: ["lan"] });
  // A bgp pool without bgp-advertisements is announced with the defaults: one empty advertisement.
  assert.deepEqual(spec(result, "BGPAdvertisement", "wan-1"), { ipAddressPools: ["wan"] });
  assert.deepEqual(
    result.objects.map((object) => `${object.kind}/${object.name}`),
    ["IPAddressPool/lan", "IPAddressPool/wan", "L2Advertisement/lan", "BGPAdvertisement/wan-1"],
  );
  assert.deepEqual(result.warnings, []);
});

test("bgp-advertisements: aggregation lengths, localpref, communities by alias or value; bgp-communities as one Community", () => {
  const result = converted(`
bgp-communities:
  no-advertise: 65535:65282
  backbone: "64512:100"
address-pools:
- name: wan
  protocol: bgp
  addresses: [198.51.100.0/24, 2001:db8::/120]
  bgp-advertisements:
  - aggregation-length: 32
    aggregation-length-v6: 128
    localpref: 100
    communities: [no-advertise, "64512:1"]
  - aggregation-length: 24
`);
  assert.deepEqual(spec(result, "Community", "bgp-communities"), {
    communities: [
      { name: "no-advertise", value: "65535:65282" },
      { name: "backbone", value: "64512:100" },
    ],
  });
  assert.deepEqual(spec(result, "BGPAdvertisement", "wan-1"), {
    ipAddressPools: ["wan"],
    aggregationLength: 32,
    aggregationLengthV6: 128,
    localPref: 100,
    communities: ["no-advertise", "64512:1"],
  });
  assert.deepEqual(spec(result, "BGPAdvertisement", "wan-2"), {
    ipAddressPools: ["wan"],
    aggregationLength: 24,
  });
});

test("peers: every field, node selectors in metav1 form, and the legacy hold time made explicit", () => {
  const result = converted(`
bfd-profiles:
- name: fast
  receive-interval: 179
  transmit-interval: 180
  detect-multiplier: 4
  echo-interval: 62
  echo-mode: true
  passive-mode: false
  minimum-ttl: 10
peers:
- my-asn: 64500
  peer-asn: 64501
  peer-address: 10.0.0.1
  source-address: 10.0.0.100
  peer-port: 1179
  hold-time: 120s
  keepalive-time: 40s
  router-id: 10.0.0.100
  password: secret
  bfd-profile: fast
  ebgp-multihop: true
  node-selectors:
  - match-labels: {rack: frontend}
    match-expressions:
    - {key: network-speed, operator: NotIn, values: [slow]}
  - match-expressions:
    - {key: bgp, operator: Exists}
- my-asn: 64500
  peer-asn: 64500
  peer-address: "2001:db8::1"
`);
  assert.deepEqual(spec(result, "BFDProfile", "fast"), {
    receiveInterval: 179,
    transmitInterval: 180,
    detectMultiplier: 4,
    echoInterval: 62,
    echoMode: true,
    passiveMode: false,
    minimumTtl: 10,
  });
  assert.deepEqual(spec(result, "BGPPeer", "peer-1"), {
    myASN: 64500,
    peerASN: 64501,
    peerAddress: "10.0.0.1",
    sourceAddress: "10.0.0.100",
    peerPort: 1179,
    holdTime: "120s",
    keepaliveTime: "40s",
    routerID: "10.0.0.100",
    nodeSelectors: [
      {
        matchLabels: { rack: "frontend" },
        matchExpressions: [{ key: "network-speed", operator: "NotIn", values: ["slow"] }],
      },
      { matchExpressions: [{ key: "bgp", operator: "Exists" }] },
    ],
    password: "secret",
    bfdProfile: "fast",
    ebgpMultiHop: true,
  });
  assert.deepEqual(spec(result, "BGPPeer", "peer-2"), {
    myASN: 64500,
    peerASN: 64500,
    peerAddress: "2001:db8::1",
    holdTime: "90s",
  });
  const peerObject = result.objects.find((object) => object.name === "peer-1");
  assert.equal(peerObject?.object.apiVersion, "metallb.io/v1beta2");
  assert.match(result.warnings.join("\n"), /peers\[0\].*password.*plain text.*passwordSecret/);
  assert.match(result.warnings.join("\n"), /peers\[1\].*no hold-time.*holdTime 90s/);
  // Referenced objects come before the objects naming them.
  assert.deepEqual(
    result.objects.map((object) => object.kind),
    ["BFDProfile", "BGPPeer", "BGPPeer"],
  );
});

test("what has no equivalent, and names a resource cannot carry, are errors naming them", () => {
  const found = legacyConfigFromText(
    `
peer-autodiscovery: {}
address-pools:
- name: Public_Pool
  protocol: layer2
  addresses: [10.0.0.0/24]
`,
    "ConfigMap metallb-system/config",
  );
  const result = convertLegacyConfig(found.config, "metallb-system");
  assert.equal(result.objects.length, 0, "an object that cannot be named is not written");
  assert.equal(result.errors.length, 3, result.errors.join("\n"));
  assert.match(
    result.errors[0] ?? "",
    /^peer-autodiscovery: not part of any released legacy format/,
  );
  assert.match(
    result.errors[1] ?? "",
    /address-pools\[0\] "Public_Pool": "Public_Pool" cannot name a IPAddressPool.*address-pool annotations/,
  );
  assert.match(result.errors[2] ?? "", /"Public_Pool" cannot name a L2Advertisement/);
});

test("peers, communities and BFD profiles are checked with MetalLB v0.12.1's rules, apart from the pools", () => {
  const problems = bgpProblems(`
bgp-communities:
  bad: "70000:1"
bfd-profiles:
- name: slow
  detect-multiplier: 1
  echo-mode: maybe
- name: twice
- name: twice
peers:
- my-asn: 64500
  peer-address: 10.0.0.300
  hold-time: 2s
  bfd-profile: missing
  peer-asn: 64500
  ebgp-multihop: true
  node-selectors:
  - match-label: {a: b}
- my-asn: 64500
  peer-asn: 64501
  peer-address: 10.0.0.1
  keepalive-time: 100s
  hold-time: 1m
  router-id: me
  color: blue
address-pools:
- name: wan
  protocol: bgp
  addresses: [10.1.0.0/24]
  bgp-advertisements:
  - aggregation-length: 33
    communities: [unknown-alias]
`);
  const expected = [
    /bgp-communities\.bad is "70000:1", not a community value/,
    /bfd-profiles\[0\]\.detect-multiplier must be an integer from 2 to 255, not 1/,
    /bfd-profiles\[0\]\.echo-mode must be true or false, not "maybe"/,
    /bfd-profiles\[2\]: duplicate BFD profile name "twice"/,
    /peers\[0\]: peer-address must be an IP address, not "10\.0\.0\.300"/,
    /peers\[0\]: hold-time "2s" must be 0 or at least 3s/,
    /peers\[0\]: unknown field "node-selectors\[0\]\.match-label" \(did you mean "match-labels"\?\)/,
    /peers\[0\]: bfd-profile "missing" is not one of bfd-profiles/,
    /peers\[0\]: ebgp-multihop is set for an iBGP peer/,
    /peers\[1\]: unknown key "color"/,
    /peers\[1\]: router-id must be an IP address, not "me"/,
    /peers\[1\]: keepalive-time "100s" must not be longer than the hold time \(60s\)/,
    /pool "wan": bgp-advertisements\[0\]\.aggregation-length must be at most 32, not 33/,
    /pool "wan": bgp-advertisements\[0\]\.communities: "unknown-alias" is neither an alias/,
  ];
  for (const pattern of expected) {
    assert.ok(
      problems.some((line) => pattern.test(line)),
      `${pattern} not among:\n${problems.join("\n")}`,
    );
  }
  assert.equal(problems.length, expected.length, problems.join("\n"));
});

test("a problem outside the pools costs the webhook no pool", () => {
  const found = legacyConfigFromText(
    `
peers:
- peer-address: nowhere
address-pools:
- name: lan
  protocol: layer2
  addresses: [10.0.0.0/24]
`,
    "ConfigMap metallb-system/config",
  );
  assert.deepEqual(found.errors, []);
  assert.equal(found.bgpErrors.length, 3, found.bgpErrors.map(formatPoolConfigError).join("\n"));
  assert.deepEqual(
    found.config.pools.map((entry) => entry.pool.name),
    ["lan"],
  );
});
