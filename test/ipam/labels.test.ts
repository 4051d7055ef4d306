import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  formatSelector,
  type LabelSelector,
  type Labels,
  type SelectorOperator,
  type SelectorRequirement,
  selectorMatches,
} from "../../src/ipam/labels.ts";

const selector = (
  matchLabels: Labels = {},
  matchExpressions: SelectorRequirement[] = [],
): LabelSelector => ({ matchLabels, matchExpressions });
const requirement = (
  key: string,
  operator: SelectorOperator,
  values: string[] = [],
): SelectorRequirement => ({ key, operator, values });

test("an empty selector matches everything, as in Kubernetes", () => {
  assert.equal(selectorMatches(selector(), {}), true);
  assert.equal(selectorMatches(selector(), { app: "web" }), true);
});

test("matchLabels needs every pair, exactly", () => {
  const web = selector({ app: "web", tier: "front" });
  assert.equal(selectorMatches(web, { app: "web", tier: "front", extra: "x" }), true);
  assert.equal(selectorMatches(web, { app: "web" }), false);
  assert.equal(selectorMatches(web, { app: "web", tier: "back" }), false);
  assert.equal(selectorMatches(selector({ app: "" }), { app: "" }), true);
  assert.equal(selectorMatches(selector({ app: "" }), {}), false);
});

test("keys that exist on Object.prototype are not mistaken for labels", () => {
  assert.equal(selectorMatches(selector({}, [requirement("constructor", "Exists")]), {}), false);
  assert.equal(selectorMatches(selector({}, [requirement("toString", "DoesNotExist")]), {}), true);
  assert.equal(selectorMatches(selector({ constructor: "x" }), {}), false);
});

test("In needs the key present with one of the values", () => {
  const env = selector({}, [requirement("env", "In", ["prod", "staging"])]);
  assert.equal(selectorMatches(env, { env: "prod" }), true);
  assert.equal(selectorMatches(env, { env: "dev" }), false);
  assert.equal(selectorMatches(env, {}), false);
});

test("NotIn matches a missing key, as Kubernetes does", () => {
  const notProd = selector({}, [requirement("env", "NotIn", ["prod"])]);
  assert.equal(selectorMatches(notProd, {}), true);
  assert.equal(selectorMatches(notProd, { env: "dev" }), true);
  assert.equal(selectorMatches(notProd, { env: "prod" }), false);
});

test("Exists and DoesNotExist look only at the key", () => {
  assert.equal(selectorMatches(selector({}, [requirement("gpu", "Exists")]), { gpu: "" }), true);
  assert.equal(selectorMatches(selector({}, [requirement("gpu", "Exists")]), {}), false);
  assert.equal(
    selectorMatches(selector({}, [requirement("gpu", "DoesNotExist")]), { gpu: "" }),
    false,
  );
  assert.equal(selectorMatches(selector({}, [requirement("gpu", "DoesNotExist")]), {}), true);
});

test("matchLabels and every expression must all hold", () => {
  const both = selector({ app: "web" }, [
    requirement("env", "In", ["prod"]),
    requirement("canary", "DoesNotExist"),
  ]);
  assert.equal(selectorMatches(both, { app: "web", env: "prod" }), true);
  assert.equal(selectorMatches(both, { app: "web", env: "prod", canary: "1" }), false);
  assert.equal(selectorMatches(both, { app: "api", env: "prod" }), false);
});

test("formatSelector prints kubectl's selector syntax", () => {
  assert.equal(formatSelector(selector()), "<everything>");
  assert.equal(
    formatSelector(
      selector({ app: "web" }, [
        requirement("env", "In", ["prod", "staging"]),
        requirement("tier", "NotIn", ["db"]),
        requirement("gpu", "Exists"),
        requirement("canary", "DoesNotExist"),
      ]),
    ),
    "app=web,env in (prod,staging),tier notin (db),gpu,!canary",
  );
});

// Small alphabets so that random labels and selectors actually meet.
const key = fc.constantFrom("app", "env", "tier");
const value = fc.constantFrom("", "web", "prod", "db");
const labels: fc.Arbitrary<Labels> = fc.dictionary(key, value, { maxKeys: 3 });
const requirementArb: fc.Arbitrary<SelectorRequirement> = fc.oneof(
  fc.record({
    key,
    operator: fc.constantFrom<SelectorOperator>("In", "NotIn"),
    values: fc.uniqueArray(value, { minLength: 1, maxLength: 3 }),
  }),
  fc.record({
    key,
    operator: fc.constantFrom<SelectorOperator>("Exists", "DoesNotExist"),
    values: fc.constant([]),
  }),
);
const selectorArb: fc.Arbitrary<LabelSelector> = fc.record({
  matchLabels: fc.dictionary(key, value, { maxKeys: 2 }),
  matchExpressions: fc.array(requirementArb, { maxLength: 3 }),
});

const negate: Record<SelectorOperator, SelectorOperator> = {
  In: "NotIn",
  NotIn: "In",
  Exists: "DoesNotExist",
  DoesNotExist: "Exists",
};

test("property: matchLabels {k: v} means the same as k In (v)", () => {
  fc.assert(
    fc.property(key, value, labels, (k, v, set) => {
      assert.equal(
        selectorMatches(selector({ [k]: v }), set),
        selectorMatches(selector({}, [requirement(k, "In", [v])]), set),
      );
    }),
    { numRuns: 200 },
  );
});

test("property: NotIn and DoesNotExist are the complements of In and Exists", () => {
  fc.assert(
    fc.property(requirementArb, labels, (req, set) => {
      const opposite = { ...req, operator: negate[req.operator] };
      assert.notEqual(
        selectorMatches(selector({}, [req]), set),
        selectorMatches(selector({}, [opposite]), set),
      );
    }),
    { numRuns: 200 },
  );
});

test("property: a selector is the conjunction of its parts, so adding a part never widens it", () => {
  fc.assert(
    fc.property(selectorArb, requirementArb, labels, (base, extra, set) => {
      const parts = [
        ...Object.entries(base.matchLabels).map(([k, v]) => selector({ [k]: v })),
        ...base.matchExpressions.map((req) => selector({}, [req])),
      ];
      assert.equal(
        selectorMatches(base, set),
        parts.every((part) => selectorMatches(part, set)),
      );
      const narrower = { ...base, matchExpressions: [...base.matchExpressions, extra] };
      if (selectorMatches(narrower, set)) assert.equal(selectorMatches(base, set), true);
    }),
    { numRuns: 200 },
  );
});
