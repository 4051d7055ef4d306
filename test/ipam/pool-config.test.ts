import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { parse as parseYaml } from "yaml";
import { parseAddress } from "../../src/ipam/address.ts";
import { type Pool, poolAllowsService } from "../../src/ipam/pool.ts";
import {
  formatPoolConfigError,
  mergePools,
  type PoolConfigError,
  type PoolsFound,
  poolFromIPAddressPool,
  poolsFromDocument,
  poolsFromLegacyConfig,
} from "../../src/ipam/pool-config.ts";
import { type AddressRange, parseAddressBlock, rangesOverlap } from "../../src/ipam/range.ts";

function ip(text: string): bigint {
  const result = parseAddress(text);
  if (!result.ok) assert.fail(result.error);
  return result.value.value;
}

function block(text: string): AddressRange {
  const result = parseAddressBlock(text);
  if (!result.ok) assert.fail(result.error);
  return result.value;
}

function found(document: unknown, origin = "test.yaml#0"): PoolsFound {
  const result = poolsFromDocument(document, origin);
  assert.ok(result !== undefined, "expected the document to be recognised as a pool source");
  return result;
}

/** The only error, checked to name the pool and the offending string in its formatted line. */
function onlyError(result: PoolsFound): PoolConfigError {
  assert.equal(result.errors.length, 1, result.errors.map(formatPoolConfigError).join("\n"));
  const [error] = result.errors;
  assert.ok(error !== undefined);
  return error;
}

function assertNames(error: PoolConfigError, pool: string | undefined, offending: string): string {
  assert.equal(error.pool, pool);
  assert.equal(error.offending, offending);
  const line = formatPoolConfigError(error);
  assert.ok(!line.includes("\n"), line);
  assert.ok(line.startsWith(`${error.origin}: `), line);
  if (pool !== undefined) assert.ok(line.includes(`pool "${pool}"`), line);
  assert.ok(line.includes(offending), `${line} should name ${offending}`);
  return line;
}

const legacyConfigMap = (config: string, namespace = "metallb-system") => ({
  apiVersion: "v1",
  kind: "ConfigMap",
  metadata: { namespace, name: "config" },
  data: { config },
});

function legacy(config: string): PoolsFound {
  return poolsFromLegacyConfig(config, "ConfigMap metallb-system/config");
}

const ipAddressPool = (name: string, spec: unknown, apiVersion = "metallb.io/v1beta1") => ({
  apiVersion,
  kind: "IPAddressPool",
  metadata: { name, namespace: "metallb-system" },
  spec,
});

// The MetalLB v0.11 setup of the Kubeflow-on-bare-metal guide, as `kubectl apply -f` would read it.
const KUBEFLOW_MANIFEST = `apiVersion: v1
kind: ConfigMap
metadata:
  namespace: metallb-system
  name: config
data:
  config: |
    address-pools:
    - name: default
      protocol: layer2
      addresses:
      - 192.168.35.100-192.168.35.110
`;

test("the MetalLB v0.11 Kubeflow ConfigMap gives pool default, layer2, .100-.110", () => {
  const result = found(parseYaml(KUBEFLOW_MANIFEST), "metallb-config.yaml#0");
  assert.deepEqual(result.errors, []);
  assert.deepEqual(result.pools, [
    {
      name: "default",
      ranges: [{ family: "IPv4", first: ip("192.168.35.100"), last: ip("192.168.35.110") }],
      autoAssign: true,
      avoidBuggyIPs: false,
      serviceAllocation: undefined,
      origin: "metallb-config.yaml#0 (ConfigMap metallb-system/config)",
    },
  ]);
  const { poolSet, errors } = mergePools(result.pools);
  assert.deepEqual(errors, []);
  assert.equal(poolSet.poolOf("IPv4", ip("192.168.35.101"))?.name, "default");
  assert.equal(poolSet.poolOf("IPv4", ip("192.168.35.110"))?.name, "default");
  assert.equal(poolSet.poolOf("IPv4", ip("192.168.35.111")), undefined);
  assert.equal(poolSet.poolOf("IPv4", ip("192.168.35.99")), undefined);
});

test("only MetalLB's own ConfigMap is a pool source", () => {
  const config = "address-pools: []\n";
  assert.equal(poolsFromDocument(legacyConfigMap(config, "kube-system"), "x"), undefined);
  assert.equal(
    poolsFromDocument({ ...legacyConfigMap(config), metadata: { name: "config" } }, "x"),
    undefined,
  );
  assert.equal(
    poolsFromDocument(
      { ...legacyConfigMap(config), metadata: { name: "settings", namespace: "metallb-system" } },
      "x",
    ),
    undefined,
  );
  assert.deepEqual(
    poolsFromDocument(legacyConfigMap("address-pools: []\n", "lb"), "", { metallbNamespace: "lb" }),
    { pools: [], errors: [] },
  );
  assert.equal(
    poolsFromDocument(legacyConfigMap(config), "", { metallbNamespace: "lb" }),
    undefined,
  );
});

test("documents that declare no pools are not pool sources", () => {
  for (const document of [
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "web" },
      spec: { type: "LoadBalancer" },
    },
    { apiVersion: "metallb.io/v1beta1", kind: "L2Advertisement", metadata: { name: "l2" } },
    {
      apiVersion: "cilium.io/v2alpha1",
      kind: "IPAddressPool",
      spec: { addresses: ["10.0.0.0/24"] },
    },
    { peers: [] },
    null,
    "address-pools",
    [{ "address-pools": [] }],
    42,
  ]) {
    assert.equal(poolsFromDocument(document, "x"), undefined, JSON.stringify(document));
  }
});

test("a ConfigMap without a config key declares nothing, as MetalLB reads it", () => {
  assert.deepEqual(found({ ...legacyConfigMap(""), data: {} }), { pools: [], errors: [] });
  assert.deepEqual(found({ ...legacyConfigMap(""), data: undefined }), { pools: [], errors: [] });
  assert.deepEqual(found(legacyConfigMap("")), { pools: [], errors: [] });
  const error = onlyError(found({ ...legacyConfigMap(""), data: { config: 7 } }));
  assertNames(error, undefined, "data.config");
});

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

test("a bare legacy document (a pools file) is read like the ConfigMap's config", () => {
  const result = found(
    {
      "address-pools": [
        {
          name: "v6",
          protocol: "layer2",
          addresses: ["2001:db8:1::/64", "2001:db8:2::10 - 2001:db8:2::20"],
        },
        { name: "v4", protocol: "bgp", addresses: ["10.0.0.0/24"], "auto-assign": false },
      ],
    },
    "pools.json#0",
  );
  assert.deepEqual(result.errors, []);
  assert.deepEqual(
    result.pools.map((p) => [p.name, p.origin, p.autoAssign]),
    [
      ["v6", "pools.json#0", true],
      ["v4", "pools.json#0", false],
    ],
  );
  assert.deepEqual(result.pools[0]?.ranges, [
    block("2001:db8:1::/64"),
    block("2001:db8:2::10-2001:db8:2::20"),
  ]);
});

test("an IPAddressPool with serviceAllocation is read completely", () => {
  const document = ipAddressPool("team-a", {
    addresses: ["10.20.0.0/28", "2001:db8:20::/120"],
    autoAssign: false,
    avoidBuggyIPs: true,
    serviceAllocation: {
      priority: 10,
      namespaces: ["team-a"],
      namespaceSelectors: [{ matchLabels: { tenant: "a" } }],
      serviceSelectors: [
        {
          matchExpressions: [
            { key: "app.kubernetes.io/tier", operator: "In", values: ["web", "api"] },
          ],
        },
        { matchExpressions: [{ key: "legacy", operator: "DoesNotExist" }] },
      ],
    },
  });
  const result = found(document, "team-a.yaml#3");
  assert.deepEqual(result.errors, []);
  const [pool] = result.pools;
  assert.ok(pool !== undefined);
  assert.deepEqual(pool, {
    name: "team-a",
    ranges: [block("10.20.0.0/28"), block("2001:db8:20::/120")],
    autoAssign: false,
    avoidBuggyIPs: true,
    serviceAllocation: {
      priority: 10,
      namespaces: ["team-a"],
      namespaceSelectors: [{ matchLabels: { tenant: "a" }, matchExpressions: [] }],
      serviceSelectors: [
        {
          matchLabels: {},
          matchExpressions: [
            { key: "app.kubernetes.io/tier", operator: "In", values: ["web", "api"] },
          ],
        },
        {
          matchLabels: {},
          matchExpressions: [{ key: "legacy", operator: "DoesNotExist", values: [] }],
        },
      ],
    },
    origin: "team-a.yaml#3 (IPAddressPool metallb-system/team-a)",
  } satisfies Pool);
  const svc = (namespace: string, labels: Record<string, string>, namespaceLabels = {}) => ({
    namespace,
    labels,
    namespaceLabels,
  });
  assert.equal(poolAllowsService(pool, svc("team-a", { "app.kubernetes.io/tier": "web" })), true);
  assert.equal(poolAllowsService(pool, svc("other", { legacy: "" }, { tenant: "a" })), false);
  assert.equal(poolAllowsService(pool, svc("other", {}, { tenant: "a" })), true);
  assert.equal(poolAllowsService(pool, svc("other", {}, { tenant: "b" })), false);
});

test("IPAddressPool defaults, API versions and namespaces", () => {
  const plain = found(ipAddressPool("plain", { addresses: ["10.0.0.0/24"] }));
  assert.equal(plain.pools[0]?.autoAssign, true);
  assert.equal(plain.pools[0]?.avoidBuggyIPs, false);
  assert.equal(plain.pools[0]?.serviceAllocation, undefined);
  assert.equal(
    found(ipAddressPool("b2", { addresses: ["10.0.0.0/24"] }, "metallb.io/v1beta2")).pools.length,
    1,
  );
  assert.equal(
    poolsFromDocument(
      ipAddressPool("a1", { addresses: ["10.0.0.0/24"] }, "metallb.io/v1alpha1"),
      "x",
    ),
    undefined,
  );
  const elsewhere = {
    ...ipAddressPool("p", { addresses: ["10.0.0.0/24"] }),
    metadata: { name: "p", namespace: "default" },
  };
  assert.equal(poolsFromDocument(elsewhere, "x"), undefined);
  const unnamespaced = {
    ...ipAddressPool("p", { addresses: ["10.0.0.0/24"] }),
    metadata: { name: "p" },
  };
  assert.equal(found(unnamespaced, "").pools[0]?.origin, "IPAddressPool metallb-system/p");
  // called directly, the origin is used as given
  assert.equal(poolFromIPAddressPool(unnamespaced, "cluster").pools[0]?.origin, "cluster");
});

test("IPAddressPool errors: unknown fields, missing parts, wrong types", () => {
  const typo = found(ipAddressPool("p", { addresses: ["10.0.0.0/24"], autoassign: false }));
  assert.match(assertNames(onlyError(typo), "p", "spec.autoassign"), /did you mean "autoAssign"\?/);
  const noName = found({ ...ipAddressPool("", { addresses: ["10.0.0.0/24"] }) });
  assert.match(
    assertNames(onlyError(noName), undefined, "metadata.name"),
    /metadata\.name is missing/,
  );
  const noSpec = found({ ...ipAddressPool("p", undefined) });
  assert.match(assertNames(onlyError(noSpec), "p", "spec"), /spec is missing/);
  const noAddresses = found(ipAddressPool("p", { addresses: [] }));
  assertNames(onlyError(noAddresses), "p", "spec.addresses");
  const badAddress = found(ipAddressPool("p", { addresses: ["10.0.0.0/24", "2001:db8::1/64"] }));
  assert.match(
    assertNames(onlyError(badAddress), "p", "2001:db8::1/64"),
    /host bits set; did you mean 2001:db8::\/64/,
  );
  const badTypes = found(
    ipAddressPool("p", {
      addresses: ["10.0.0.0/24"],
      autoAssign: "yes",
      serviceAllocation: { priority: 1.5, namespaces: "team-a", color: "red" },
    }),
  );
  assert.deepEqual(
    badTypes.errors.map((e) => e.offending),
    [
      "spec.autoAssign",
      "spec.serviceAllocation.color",
      "spec.serviceAllocation.priority",
      "spec.serviceAllocation.namespaces",
    ],
  );
  assert.deepEqual(badTypes.pools, []);
});

test("bad label selectors are reported with Kubernetes' rules", () => {
  const selectorErrors = (selector: unknown) =>
    found(
      ipAddressPool("sel", {
        addresses: ["10.0.0.0/24"],
        serviceAllocation: { serviceSelectors: [selector] },
      }),
    );
  const cases: [unknown, string, RegExp][] = [
    [
      { matchExpressions: [{ key: "app", operator: "In" }] },
      "app",
      /operator In needs at least one value/,
    ],
    [
      { matchExpressions: [{ key: "app", operator: "NotIn", values: [] }] },
      "app",
      /NotIn needs at least one value/,
    ],
    [
      { matchExpressions: [{ key: "app", operator: "Exists", values: ["web"] }] },
      "app",
      /Exists must have no values/,
    ],
    [
      { matchExpressions: [{ key: "app", operator: "DoesNotExist", values: ["x"] }] },
      "app",
      /DoesNotExist must have no values/,
    ],
    [
      { matchExpressions: [{ key: "app", operator: "Equals", values: ["web"] }] },
      "Equals",
      /not a valid operator/,
    ],
    [
      { matchExpressions: [{ key: "bad key", operator: "Exists" }] },
      "bad key",
      /not a valid label key/,
    ],
    [
      { matchExpressions: [{ key: "app", operator: "In", values: ["-web"] }] },
      "-web",
      /not a valid label value/,
    ],
    [{ matchLabels: { app: 3 } }, "app", /must be a string, not 3/],
    [{ matchLabels: { "Example.com/app": "x" } }, "Example.com/app", /not a valid label key/],
    [
      { matchLabel: { app: "web" } },
      "spec.serviceAllocation.serviceSelectors[0].matchLabel",
      /did you mean "matchLabels"/,
    ],
    ["app=web", "spec.serviceAllocation.serviceSelectors[0]", /must be a label selector/],
  ];
  for (const [selector, offending, reason] of cases) {
    const result = selectorErrors(selector);
    assert.match(
      assertNames(onlyError(result), "sel", offending),
      reason,
      JSON.stringify(selector),
    );
    assert.deepEqual(result.pools, []);
  }
  const valid = selectorErrors({
    matchLabels: { "example.com/app": "", tier: "a.b-c_d" },
    matchExpressions: [{ key: "x", operator: "NotIn", values: ["1"] }],
  });
  assert.deepEqual(valid.errors, []);
});

test("duplicate pool names across the ConfigMap and an IPAddressPool: the first wins", () => {
  const fromConfigMap = found(parseYaml(KUBEFLOW_MANIFEST), "metallb-config.yaml#0");
  const fromCrd = found(ipAddressPool("default", { addresses: ["10.50.0.0/24"] }), "pools.yaml#1");
  const { poolSet, errors } = mergePools([...fromConfigMap.pools, ...fromCrd.pools]);
  const [error] = errors;
  assert.equal(errors.length, 1);
  assert.ok(error !== undefined);
  const line = assertNames(error, "default", "default");
  assert.equal(error.origin, "pools.yaml#1 (IPAddressPool metallb-system/default)");
  assert.match(line, /duplicate definition of pool "default"/);
  assert.ok(line.includes("metallb-config.yaml#0 (ConfigMap metallb-system/config)"), line);
  assert.equal(poolSet.size, 1);
  assert.equal(
    poolSet.byName("default")?.origin,
    "metallb-config.yaml#0 (ConfigMap metallb-system/config)",
  );
  assert.equal(poolSet.poolOf("IPv4", ip("10.50.0.1")), undefined);
});

test("a pool overlapping an earlier pool is dropped, naming both pools and both strings", () => {
  const first = found(ipAddressPool("first", { addresses: ["10.0.0.0/24"] }), "a.yaml#0").pools;
  const second = found(
    ipAddressPool("second", { addresses: ["10.1.0.0/24", "10.0.0.200 - 10.0.1.5"] }),
    "b.yaml#0",
  ).pools;
  const { poolSet, errors } = mergePools([...first, ...second]);
  const [error] = errors;
  assert.equal(errors.length, 1);
  assert.ok(error !== undefined);
  const line = assertNames(error, "second", "10.0.0.200 - 10.0.1.5");
  assert.ok(line.includes('"10.0.0.0/24" of pool "first"'), line);
  assert.ok(line.includes("a.yaml#0"), line);
  assert.deepEqual(
    poolSet.pools.map((p) => p.name),
    ["first"],
  );
  // the whole conflicting pool is dropped, also its non-overlapping range
  assert.equal(poolSet.poolOf("IPv4", ip("10.1.0.1")), undefined);
  assert.equal(poolSet.poolOf("IPv4", ip("10.0.0.200"))?.name, "first");
});

test("overlapping ranges within one pool drop that pool", () => {
  const result = legacy(`
address-pools:
- name: self
  protocol: layer2
  addresses: [10.0.0.0/24, 10.0.0.10-10.0.0.20]
- name: fine
  protocol: layer2
  addresses: [10.0.1.0/24]
`);
  assert.deepEqual(result.errors, []);
  const { poolSet, errors } = mergePools(result.pools);
  const line = assertNames(onlyError({ pools: [], errors }), "self", "10.0.0.10-10.0.0.20");
  assert.match(line, /overlaps "10\.0\.0\.0\/24" of the same pool/);
  assert.deepEqual(
    poolSet.pools.map((p) => p.name),
    ["fine"],
  );
});

test("adjacent ranges and ranges of different families do not conflict", () => {
  const pools: Pool[] = [
    ...found(ipAddressPool("low", { addresses: ["10.0.0.0/25", "2001:db8::/64"] })).pools,
    ...found(ipAddressPool("high", { addresses: ["10.0.0.128/25", "2001:db8:0:1::/64"] })).pools,
    ...found(ipAddressPool("v6", { addresses: ["::a00:0/120"] })).pools,
  ];
  const { poolSet, errors } = mergePools(pools);
  assert.deepEqual(errors, []);
  assert.equal(poolSet.poolOf("IPv4", ip("10.0.0.127"))?.name, "low");
  assert.equal(poolSet.poolOf("IPv4", ip("10.0.0.128"))?.name, "high");
  assert.equal(poolSet.poolOf("IPv6", ip("2001:db8:0:1::5"))?.name, "high");
  assert.equal(poolSet.poolOf("IPv6", ip("::a00:1"))?.name, "v6");
});

test("ranges built outside the parsers are quoted in CIDR or a-b form", () => {
  const make = (name: string, ranges: AddressRange[]): Pool => ({
    name,
    ranges,
    autoAssign: true,
    avoidBuggyIPs: false,
    serviceAllocation: undefined,
    origin: "code",
  });
  const { errors } = mergePools([
    make("a", [{ family: "IPv6", first: ip("2001:db8::"), last: ip("2001:db8::ff") }]),
    make("b", [{ family: "IPv6", first: ip("2001:db8::10"), last: ip("2001:db8::1f0") }]),
  ]);
  const line = formatPoolConfigError(onlyError({ pools: [], errors }));
  assert.ok(
    line.includes('"2001:db8::10-2001:db8::1f0" overlaps "2001:db8::/120" of pool "a"'),
    line,
  );
});

test("formatPoolConfigError keeps one line even for hostile input", () => {
  const result = legacy(
    'address-pools:\n- name: "two\\nlines"\n  protocol: layer2\n  "bad\\nkey": 1\n  addresses: [10.0.0.0/24]\n',
  );
  const line = formatPoolConfigError(onlyError(result));
  assert.ok(!line.includes("\n"), line);
  assert.match(line, /two\\nlines/);
});

// fast-check's anything(), plus shapes close to real pool documents so that the parsers' deeper
// branches see hostile values too.
const hostile = fc.anything({
  withNullPrototype: true,
  withMap: true,
  withDate: true,
  maxDepth: 3,
});
const nearlyPools = fc.oneof(
  hostile,
  fc.record({
    "address-pools": fc.array(
      fc.oneof(
        hostile,
        fc.dictionary(
          fc.constantFrom("name", "protocol", "addresses", "auto-assign", "bgp-advertisements"),
          hostile,
        ),
      ),
    ),
  }),
  fc.record({
    apiVersion: fc.constant("metallb.io/v1beta1"),
    kind: fc.constant("IPAddressPool"),
    metadata: fc.oneof(hostile, fc.record({ name: fc.string() })),
    spec: fc.oneof(
      hostile,
      fc.record({
        addresses: fc.oneof(hostile, fc.array(fc.oneof(fc.string(), hostile))),
        serviceAllocation: fc.oneof(
          hostile,
          fc.record({
            serviceSelectors: fc.oneof(
              hostile,
              fc.array(fc.oneof(hostile, fc.record({ matchExpressions: fc.array(hostile) }))),
            ),
          }),
        ),
      }),
    ),
  }),
  fc.record({
    apiVersion: fc.constant("v1"),
    kind: fc.constant("ConfigMap"),
    metadata: fc.constant({ name: "config", namespace: "metallb-system" }),
    data: fc.oneof(hostile, fc.record({ config: fc.oneof(fc.string(), hostile) })),
  }),
);

test("property: no document makes the parsers throw, and every error is one line", () => {
  fc.assert(
    fc.property(nearlyPools, (document) => {
      const result = poolsFromDocument(document, "fuzz");
      if (result === undefined) return;
      for (const error of result.errors) assert.ok(!formatPoolConfigError(error).includes("\n"));
      // a pool with errors is never returned half-built: every returned pool has ranges
      for (const pool of result.pools) assert.ok(pool.ranges.length > 0);
    }),
    { numRuns: 300 },
  );
  fc.assert(
    fc.property(
      fc.string({ unit: fc.constantFrom(..."address-pools:\n- name{}[]&*!|>'\" 10.0.0/24:") }),
      (text) => {
        poolsFromLegacyConfig(text, "fuzz");
      },
    ),
    { numRuns: 300 },
  );
});

test("property: merged pools have unique names and disjoint ranges; every dropped pool is reported", () => {
  const poolArb = fc.record({
    name: fc.constantFrom("a", "b", "c", "d"),
    ranges: fc.array(fc.tuple(fc.integer({ min: 0, max: 60 }), fc.integer({ min: 0, max: 8 })), {
      minLength: 1,
      maxLength: 3,
    }),
  });
  fc.assert(
    fc.property(fc.array(poolArb, { maxLength: 6 }), (specs) => {
      const pools: Pool[] = specs.map(({ name, ranges }, index) => ({
        name,
        ranges: ranges.map(([start, length]) => ({
          family: "IPv4" as const,
          first: 0x0a000000n + BigInt(start),
          last: 0x0a000000n + BigInt(start + length),
        })),
        autoAssign: true,
        avoidBuggyIPs: false,
        serviceAllocation: undefined,
        origin: `doc#${index}`,
      }));
      const { poolSet, errors } = mergePools(pools);
      const kept = poolSet.pools;
      assert.equal(new Set(kept.map((p) => p.name)).size, kept.length);
      const all = kept.flatMap((p) => p.ranges.map((r) => ({ r, p })));
      for (const [i, x] of all.entries()) {
        for (const y of all.slice(i + 1)) assert.equal(rangesOverlap(x.r, y.r), false);
      }
      for (const pool of pools) {
        const isKept = kept.includes(pool);
        const reported = errors.some((e) => e.origin === pool.origin && e.pool === pool.name);
        assert.notEqual(isKept, reported, `${pool.name} from ${pool.origin}`);
      }
      // a pool that conflicts with nothing before it is kept (first declaration wins)
      const firstPool = pools[0];
      if (firstPool !== undefined) {
        const selfOverlap = firstPool.ranges.some((r, i) =>
          firstPool.ranges.slice(i + 1).some((s) => rangesOverlap(r, s)),
        );
        assert.equal(kept.includes(firstPool), !selfOverlap);
      }
    }),
    { numRuns: 200 },
  );
});
