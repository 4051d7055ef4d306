// Which documents are pool sources, and the dispatch to the format that reads them.

import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { parse as parseYaml } from "yaml";
import { poolsFromDocument } from "../../../src/ipam/config/document.ts";
import { formatPoolConfigError } from "../../../src/ipam/config/errors.ts";
import { poolsFromLegacyConfig } from "../../../src/ipam/config/legacy.ts";
import { mergePools } from "../../../src/ipam/config/merge.ts";
import {
  assertNames,
  block,
  found,
  ip,
  KUBEFLOW_MANIFEST,
  legacyConfigMap,
  onlyError,
} from "./fixtures.ts";

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
