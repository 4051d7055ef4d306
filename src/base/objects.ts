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
