// An IPAddressPool's serviceAllocation: which Services may draw from the pool (namespaces,
// namespace and Service label selectors) and its priority, checked with Kubernetes' label rules.

import { isDnsSubdomain } from "../../base/k8s-names.ts";
import { isRecord } from "../../base/objects.ts";
import type { LabelSelector, SelectorOperator, SelectorRequirement } from "../labels.ts";
import type { ServiceAllocation } from "../pool.ts";
import type { Issues } from "./errors.ts";
import { field, show, stringList, suggest } from "./fields.ts";

const ALLOCATION_KEYS = ["priority", "namespaces", "namespaceSelectors", "serviceSelectors"];
/** A selector's two keys: metav1's spelling, or the legacy config's (`node-selectors`). */
interface SelectorKeys {
  readonly labels: string;
  readonly expressions: string;
}
const SELECTOR_KEYS: SelectorKeys = { labels: "matchLabels", expressions: "matchExpressions" };
const LEGACY_SELECTOR_KEYS: SelectorKeys = {
  labels: "match-labels",
  expressions: "match-expressions",
};
const REQUIREMENT_KEYS = ["key", "operator", "values"];
const OPERATORS: readonly SelectorOperator[] = ["In", "NotIn", "Exists", "DoesNotExist"];

/** `spec.serviceAllocation`: undefined when absent (every Service may use the pool). */
export function parseServiceAllocation(
  value: unknown,
  issues: Issues,
): ServiceAllocation | undefined {
  const path = "spec.serviceAllocation";
  if (value === undefined || value === null) return undefined;
  if (!isRecord(value)) {
    issues.add(path, `${path} must be a mapping, not ${show(value)}`);
    return undefined;
  }
  for (const key of Object.keys(value)) {
    if (!ALLOCATION_KEYS.includes(key)) {
      issues.add(
        `${path}.${key}`,
        `unknown field "${path}.${key}"${suggest(key, ALLOCATION_KEYS)}; serviceAllocation has ${ALLOCATION_KEYS.join(", ")}`,
      );
    }
  }
  const rawPriority = field(value, "priority");
  let priority: number | undefined;
  if (rawPriority !== undefined && rawPriority !== null) {
    if (typeof rawPriority === "number" && Number.isSafeInteger(rawPriority)) {
      priority = rawPriority;
    } else {
      issues.add(
        `${path}.priority`,
        `${path}.priority must be an integer, not ${show(rawPriority)}`,
      );
    }
  }
  return {
    priority,
    namespaces: stringList(field(value, "namespaces"), `${path}.namespaces`, issues),
    namespaceSelectors: selectorList(
      field(value, "namespaceSelectors"),
      `${path}.namespaceSelectors`,
      issues,
    ),
    serviceSelectors: selectorList(
      field(value, "serviceSelectors"),
      `${path}.serviceSelectors`,
      issues,
    ),
  };
}

/** A legacy peer's `node-selectors` (match-labels, match-expressions), as MetalLB v0.12 reads them. */
export function parseLegacyNodeSelectors(value: unknown, issues: Issues): LabelSelector[] {
  return selectorList(value, "node-selectors", issues, LEGACY_SELECTOR_KEYS);
}

function selectorList(
  value: unknown,
  path: string,
  issues: Issues,
  keys: SelectorKeys = SELECTOR_KEYS,
): LabelSelector[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    issues.add(path, `${path} must be a list of label selectors, not ${show(value)}`);
    return [];
  }
  const selectors: LabelSelector[] = [];
  value.forEach((item: unknown, index) => {
    const selector = parseLabelSelector(item, `${path}[${index}]`, issues, keys);
    if (selector !== undefined) selectors.push(selector);
  });
  return selectors;
}

/** metav1.LabelSelector with the checks of Kubernetes' LabelSelectorAsSelector. */
function parseLabelSelector(
  value: unknown,
  path: string,
  issues: Issues,
  keys: SelectorKeys,
): LabelSelector | undefined {
  const known = [keys.labels, keys.expressions];
  if (!isRecord(value)) {
    issues.add(path, `${path} must be a label selector (${known.join(", ")}), not ${show(value)}`);
    return undefined;
  }
  const before = issues.count;
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) {
      issues.add(
        `${path}.${key}`,
        `unknown field "${path}.${key}"${suggest(key, known)}; a label selector has ${known.join(", ")}`,
      );
    }
  }
  const labelsPath = `${path}.${keys.labels}`;
  const matchLabels: Record<string, string> = {};
  const rawLabels = field(value, keys.labels);
  if (rawLabels !== undefined && rawLabels !== null) {
    if (!isRecord(rawLabels)) {
      issues.add(labelsPath, `${labelsPath} must be a mapping, not ${show(rawLabels)}`);
    } else {
      for (const [key, labelValue] of Object.entries(rawLabels)) {
        checkLabelKey(key, labelsPath, issues);
        if (typeof labelValue !== "string") {
          issues.add(key, `${labelsPath}["${key}"] must be a string, not ${show(labelValue)}`);
          continue;
        }
        checkLabelValue(labelValue, `${labelsPath}["${key}"]`, issues);
        matchLabels[key] = labelValue;
      }
    }
  }
  const expressionsPath = `${path}.${keys.expressions}`;
  const matchExpressions: SelectorRequirement[] = [];
  const rawExpressions = field(value, keys.expressions);
  if (rawExpressions !== undefined && rawExpressions !== null) {
    if (!Array.isArray(rawExpressions)) {
      issues.add(expressionsPath, `${expressionsPath} must be a list, not ${show(rawExpressions)}`);
    } else {
      rawExpressions.forEach((item: unknown, index) => {
        const requirement = parseRequirement(item, `${expressionsPath}[${index}]`, issues);
        if (requirement !== undefined) matchExpressions.push(requirement);
      });
    }
  }
  return issues.count === before ? { matchLabels, matchExpressions } : undefined;
}

function parseRequirement(
  value: unknown,
  path: string,
  issues: Issues,
): SelectorRequirement | undefined {
  if (!isRecord(value)) {
    issues.add(path, `${path} must be a mapping with key, operator, values, not ${show(value)}`);
    return undefined;
  }
  const before = issues.count;
  for (const key of Object.keys(value)) {
    if (!REQUIREMENT_KEYS.includes(key)) {
      issues.add(
        `${path}.${key}`,
        `unknown field "${path}.${key}"; a requirement has key, operator, values`,
      );
    }
  }
  const key = field(value, "key");
  if (typeof key !== "string") {
    issues.add(`${path}.key`, `${path}.key must be a label key, not ${show(key)}`);
  } else {
    checkLabelKey(key, path, issues);
  }
  const operator = field(value, "operator");
  if (!OPERATORS.includes(operator as SelectorOperator)) {
    issues.add(
      typeof operator === "string" ? operator : `${path}.operator`,
      `${path}.operator ${show(operator)} is not a valid operator; expected ${OPERATORS.join(", ")}`,
    );
  }
  const rawValues = field(value, "values");
  const values = stringList(rawValues, `${path}.values`, issues);
  for (const [index, item] of values.entries()) {
    checkLabelValue(item, `${path}.values[${index}]`, issues);
  }
  const offendingKey = typeof key === "string" ? key : `${path}.values`;
  if ((operator === "In" || operator === "NotIn") && values.length === 0) {
    issues.add(
      offendingKey,
      `${path}: operator ${operator} needs at least one value (key ${show(key)})`,
    );
  }
  if ((operator === "Exists" || operator === "DoesNotExist") && values.length > 0) {
    issues.add(
      offendingKey,
      `${path}: operator ${operator} must have no values (key ${show(key)}, values ${show(values.join(","))})`,
    );
  }
  if (issues.count !== before) return undefined;
  return { key: key as string, operator: operator as SelectorOperator, values };
}

// Kubernetes' IsQualifiedName and IsValidLabelValue.
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

function checkLabelKey(key: string, path: string, issues: Issues): void {
  const parts = key.split("/");
  const name = parts.length === 2 ? (parts[1] ?? "") : key;
  const prefix = parts.length === 2 ? (parts[0] ?? "") : undefined;
  const valid =
    parts.length <= 2 &&
    name.length <= 63 &&
    LABEL_NAME.test(name) &&
    (prefix === undefined || isDnsSubdomain(prefix));
  if (!valid) {
    issues.add(
      key,
      `${path}: ${JSON.stringify(key)} is not a valid label key (an optional DNS prefix and "/", then up to 63 letters, digits, "-", "_", "." starting and ending alphanumeric)`,
    );
  }
}

function checkLabelValue(value: string, path: string, issues: Issues): void {
  if (value === "" || (value.length <= 63 && LABEL_NAME.test(value))) return;
  issues.add(
    value,
    `${path}: ${JSON.stringify(value)} is not a valid label value (up to 63 letters, digits, "-", "_", "." starting and ending alphanumeric)`,
  );
}
