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
