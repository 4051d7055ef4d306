// serviceAllocation's label selectors, checked with Kubernetes' rules.

import assert from "node:assert/strict";
import { test } from "node:test";
import { assertNames, found, ipAddressPool, onlyError } from "./fixtures.ts";

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
