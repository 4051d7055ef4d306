/**
 * A JSON or YAML mapping: a plain object, not an array, null, or an object of a class (YAML
 * timestamps parse to Date).
 */
export function isRecord(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/** The mapping, or an empty one: for reading optional fields of untrusted objects. */
export function asRecord(value: unknown): Record<string, unknown> {
  return isRecord(value) ? value : {};
}
