import { jsonTypeOf } from "./objects.ts";

/**
 * A message on one line: log records, HTTP 400 bodies and CLI errors are read a line at a time,
 * so line breaks (and the indentation around them) become one space.
 */
export function oneLine(text: string): string {
  return text.replace(/\s*(\r\n|\r|\n)\s*/g, " ");
}

/** An error's message (or anything thrown) on one line. */
export function errorLine(error: unknown): string {
  return oneLine(error instanceof Error ? error.message : String(error));
}

/**
 * A value a client sent, cut for a message: a request may carry megabytes where a name or an
 * address is expected, and messages go back to the caller and into the log.
 */
export function cut(text: string, max = 64): string {
  return text.length > max ? `${text.slice(0, max)}… (${text.length} characters)` : text;
}

/**
 * A value a client sent where a word was expected, for a message: a string cut, a number, boolean
 * or nothing as itself, a list or object only by its type. Never String() of a list: it recurses
 * through nested lists (a deep one overflows the stack) and joins every element.
 */
export function sentWord(value: unknown, max = 64): string {
  if (typeof value === "string") return cut(value, max);
  if (typeof value === "object" && value !== null) return `(${jsonTypeOf(value)})`;
  return String(value);
}

/** A string a client sent, quoted (escapes included) and cut for a message. */
export function quoted(text: string, max = 64): string {
  return text.length > max
    ? `${JSON.stringify(text.slice(0, max))}… (${text.length} characters)`
    : JSON.stringify(text);
}

/** A time for messages: ISO 8601 to the second, as kubectl shows times. */
export function isoTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}
