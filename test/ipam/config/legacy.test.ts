// The legacy v0.11–v0.12 configuration: every key, MetalLB's defaults, and each problem reported.

import assert from "node:assert/strict";
import { test } from "node:test";
import { formatPoolConfigError, type PoolConfigError } from "../../../src/ipam/config/errors.ts";
import { poolsFromLegacyConfig } from "../../../src/ipam/config/legacy.ts";
import { assertNames, block, legacy, onlyError } from "./fixtures.ts";

test("every legacy pool key is read, with MetalLB's defaults", () => {
  const result = legacy(`
address-pools:
- name: public
  protocol: bgp
  auto-assign: false
  avoid-buggy-ips: true
  addresses: [198.51.100.0/24]
  bgp-advertisements:
  - aggregation-length: 32
    localpref: 100
    communities: [no-advertise]
- name: private
  protocol: layer2
  addresses: [10.0.0.0/24, 10.0.1.10 - 10.0.1.20]
peers:
- peer-address: 10.0.0.1
  peer-asn: 64501
  my-asn: 64500
bgp-communities:
  no-advertise: 65535:65282
`);
  assert.deepEqual(result.errors, []);
  const [publicPool, privatePool] = result.pools;
  assert.equal(publicPool?.name, "public");
  assert.equal(publicPool?.autoAssign, false);
  assert.equal(publicPool?.avoidBuggyIPs, true);
  assert.equal(privatePool?.autoAssign, true);
  assert.equal(privatePool?.avoidBuggyIPs, false);
  assert.deepEqual(privatePool?.ranges, [block("10.0.0.0/24"), block("10.0.1.10-10.0.1.20")]);
});

test("the embedded config is read as yaml.v2 reads it: yes/no are booleans, 1:20 is not a number", () => {
  const result = legacy(`
address-pools:
- name: "1:20"
  protocol: layer2
  auto-assign: no
  avoid-buggy-ips: yes
  addresses: [10.0.0.0/24]
`);
  assert.deepEqual(result.errors, []);
  assert.equal(result.pools[0]?.name, "1:20");
  assert.equal(result.pools[0]?.autoAssign, false);
  assert.equal(result.pools[0]?.avoidBuggyIPs, true);
});

test("an unknown top-level key is reported; MetalLB's strict unmarshal refuses it", () => {
  const result = legacy(`
address-pool:
- name: default
  protocol: layer2
  addresses: [10.0.0.0/24]
`);
  const line = assertNames(onlyError(result), undefined, "address-pool");
  assert.match(
    line,
    /unknown key "address-pool" in the MetalLB config \(did you mean "address-pools"\?\)/,
  );
  assert.deepEqual(result.pools, []);
  // tolerated v0.12/v0.13 keys; the pools beside a bad key are still read
  const tolerant = legacy(`
bfd-profiles: []
peer-autodiscovery: {}
extra: 1
address-pools:
- {name: default, protocol: layer2, addresses: [10.0.0.0/24]}
`);
  assertNames(onlyError(tolerant), undefined, "extra");
  assert.deepEqual(
    tolerant.pools.map((p) => p.name),
    ["default"],
  );
});

test("top-level keys of the wrong shape are reported", () => {
  assertNames(onlyError(legacy("address-pools: {name: x}\n")), undefined, "address-pools");
  assertNames(onlyError(legacy("peers: 3\n")), undefined, "peers");
  assertNames(onlyError(legacy("- address-pools\n")), undefined, "data.config");
});

test("an unknown key in a pool is reported with the pool name, and the pool is not used", () => {
  const result = legacy(`
address-pools:
- name: default
  protocol: layer2
  autoAssign: false
  addresses: [10.0.0.0/24]
`);
  const line = assertNames(onlyError(result), "default", "autoAssign");
  assert.match(line, /did you mean "auto-assign"\?/);
  assert.deepEqual(result.pools, []);
});

test("a pool without a name is reported by its position", () => {
  for (const config of [
    "address-pools:\n- protocol: layer2\n  addresses: [10.0.0.0/24]\n",
    'address-pools:\n- name: ""\n  protocol: layer2\n  addresses: [10.0.0.0/24]\n',
  ]) {
    const line = assertNames(onlyError(legacy(config)), undefined, "name");
    assert.match(line, /address-pools\[0\]: missing pool name/);
  }
  const typed = legacy(
    "address-pools:\n- name: [a]\n  protocol: layer2\n  addresses: [10.0.0.0/24]\n",
  );
  assert.match(formatPoolConfigError(onlyError(typed)), /name must be a string, not a list/);
});

test("a missing or unknown protocol is reported", () => {
  const unknown = legacy(
    "address-pools:\n- name: p\n  protocol: arp\n  addresses: [10.0.0.0/24]\n",
  );
  assert.match(
    assertNames(onlyError(unknown), "p", "arp"),
    /unknown protocol "arp"; expected layer2 or bgp/,
  );
  const missing = legacy("address-pools:\n- name: p\n  addresses: [10.0.0.0/24]\n");
  assert.match(assertNames(onlyError(missing), "p", "protocol"), /protocol is missing/);
});

test("every bad address string is reported with the pool name and the string", () => {
  const result = legacy(`
address-pools:
- name: broken
  protocol: layer2
  addresses:
  - 192.168.35.100
  - 10.0.0.1-2001:db8::1
  - 10.0.0.20-10.0.0.10
  - 192.168.35.1/24
  - 10.0.0.0/33
  - not-an-address
  - 10.9.0.0/24
`);
  assert.deepEqual(result.pools, []);
  const expectations: [string, RegExp][] = [
    ["192.168.35.100", /is a bare address/],
    ["10.0.0.1-2001:db8::1", /mixes IPv4 and IPv6/],
    ["10.0.0.20-10.0.0.10", /starts after it ends/],
    ["192.168.35.1/24", /host bits set; did you mean 192\.168\.35\.0\/24/],
    ["10.0.0.0/33", /invalid prefix length/],
    ["not-an-address", /not-an-address/],
  ];
  assert.equal(result.errors.length, expectations.length);
  expectations.forEach(([offending, reason], index) => {
    const error = result.errors[index];
    assert.ok(error !== undefined);
    assert.match(assertNames(error, "broken", offending), reason);
    assert.equal(error.origin, "ConfigMap metallb-system/config");
  });
});

test("addresses that are missing, empty or not strings are reported", () => {
  const missing = legacy("address-pools:\n- name: p\n  protocol: layer2\n");
  assert.match(assertNames(onlyError(missing), "p", "addresses"), /addresses is empty/);
  const empty = legacy("address-pools:\n- name: p\n  protocol: layer2\n  addresses: []\n");
  assertNames(onlyError(empty), "p", "addresses");
  const scalar = legacy(
    "address-pools:\n- name: p\n  protocol: layer2\n  addresses: 10.0.0.0/24\n",
  );
  assert.match(assertNames(onlyError(scalar), "p", "addresses"), /must be a list/);
  const number = legacy("address-pools:\n- name: p\n  protocol: layer2\n  addresses: [10]\n");
  assert.match(assertNames(onlyError(number), "p", "addresses[0]"), /must be a string, not 10/);
});

test("booleans of the wrong type are reported", () => {
  const result = legacy(
    'address-pools:\n- name: p\n  protocol: layer2\n  auto-assign: "false"\n  avoid-buggy-ips: 1\n  addresses: [10.0.0.0/24]\n',
  );
  assert.equal(result.errors.length, 2);
  assert.match(
    assertNames(result.errors[0] as PoolConfigError, "p", "auto-assign"),
    /true or false, not "false"/,
  );
  assert.match(assertNames(result.errors[1] as PoolConfigError, "p", "avoid-buggy-ips"), /not 1/);
});

test("bgp-advertisements are only allowed with protocol bgp, and are checked", () => {
  const layer2 = legacy(
    "address-pools:\n- name: p\n  protocol: layer2\n  addresses: [10.0.0.0/24]\n  bgp-advertisements: [{localpref: 100}]\n",
  );
  assert.match(
    assertNames(onlyError(layer2), "p", "bgp-advertisements"),
    /only allowed with protocol bgp/,
  );
  const bgp = legacy(
    "address-pools:\n- name: p\n  protocol: bgp\n  addresses: [10.0.0.0/24]\n  bgp-advertisements: [{local-pref: 100}]\n",
  );
  assertNames(onlyError(bgp), "p", "local-pref");
});

test("unparseable embedded YAML gives one error naming the origin and the line", () => {
  const result = poolsFromLegacyConfig(
    "address-pools:\n- name: default\n  protocol: layer2\n   addresses: [10.0.0.0/24\n",
    "ConfigMap metallb-system/config",
  );
  const error = onlyError(result);
  const line = formatPoolConfigError(error);
  assert.ok(line.startsWith("ConfigMap metallb-system/config: "), line);
  assert.match(line, /not valid YAML/);
  assert.match(line, /line \d/);
  assert.ok(!line.includes("\n"));
  assert.deepEqual(result.pools, []);
  const duplicate = onlyError(legacy("address-pools: []\naddress-pools: []\n"));
  assert.match(formatPoolConfigError(duplicate), /line 2/);
  assert.equal(duplicate.offending, "address-pools: []");
});

test("a dangling YAML alias is an error, not an exception", () => {
  const error = onlyError(legacy("address-pools: *pools\n"));
  assert.equal(error.pool, undefined);
  assert.match(formatPoolConfigError(error), /ConfigMap metallb-system\/config: /);
});
