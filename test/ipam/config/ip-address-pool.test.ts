// The metallb.io IPAddressPool: spec, defaults, API versions, namespaces and errors.

import assert from "node:assert/strict";
import { test } from "node:test";
import { poolsFromDocument } from "../../../src/ipam/config/document.ts";
import { poolFromIPAddressPool } from "../../../src/ipam/config/ip-address-pool.ts";
import { type Pool, poolAllowsService } from "../../../src/ipam/pool.ts";
import { assertNames, block, found, ipAddressPool, onlyError } from "./fixtures.ts";

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
