// Readers of untrusted YAML/JSON fields shared by the pool formats, and the wording of their
// messages: what a value is, and which known key a misspelt one was meant to be.

import type { Issues } from "./errors.ts";

/** An own property only: a key such as `constructor` must not reach Object.prototype. */
export function field(mapping: Readonly<Record<string, unknown>>, key: string): unknown {
  return Object.hasOwn(mapping, key) ? mapping[key] : undefined;
}

export function isNonNegativeInteger(value: unknown): boolean {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

/** A short description of a value for messages; never serialises a whole (maybe cyclic) tree. */
export function show(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (value === null || value === undefined) return "nothing";
  if (Array.isArray(value)) return "a list";
  if (value instanceof Date) return `the date ${value.toISOString()}`;
  if (typeof value === "object") return "a mapping";
  return String(value);
}

/**
 * ` (did you mean "auto-assign"?)` when `key` is close to a known key: the same but for case and
 * dashes (`autoAssign`), or one or two letters off (`matchLabel`, `adress-pools`).
 */
export function suggest(key: string, known: readonly string[]): string {
  const squash = (text: string) => text.toLowerCase().replace(/[-_]/g, "");
  const match =
    known.find((candidate) => squash(candidate) === squash(key)) ??
    (key.length > 3 ? known.find((candidate) => editDistance(candidate, key) <= 2) : undefined);
  return match === undefined ? "" : ` (did you mean ${JSON.stringify(match)}?)`;
}

/** Levenshtein distance; keys are short, so the quadratic table is cheap. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(substitution, (previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

export function optionalBoolean(
  value: unknown,
  path: string,
  fallback: boolean,
  issues: Issues,
): boolean {
  if (value === undefined || value === null) return fallback;
  if (typeof value === "boolean") return value;
  issues.add(path, `${path} must be true or false, not ${show(value)}`);
  return fallback;
}

export function stringList(value: unknown, path: string, issues: Issues): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    issues.add(path, `${path} must be a list of strings, not ${show(value)}`);
    return [];
  }
  const strings: string[] = [];
  value.forEach((item: unknown, index) => {
    if (typeof item === "string") strings.push(item);
    else issues.add(`${path}[${index}]`, `${path}[${index}] must be a string, not ${show(item)}`);
  });
  return strings;
}
