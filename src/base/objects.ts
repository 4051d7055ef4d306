/**
 * A JSON or YAML mapping: a plain object, not an array, null, or an object of a class (YAML
 * timestamps parse to Date). For validating untrusted documents.
 */
export function isRecord(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/**
 * The fields of any object (an API object, an error with a status code), or an empty record: for
 * reading optional fields where anything may come.
 */
export function asRecord(value: unknown): Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

/**
 * What kind of JSON value this is, for a message ("a list", "null", "a string"): never the
 * value itself, which may be megabytes or nested thousands of levels deep.
 */
export function jsonTypeOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}
