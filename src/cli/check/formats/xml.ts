// A minimal XML encoder for the JUnit report: elements as data, every name and value escaped here
// and nowhere else. Test messages carry whatever a manifest holds (quotes, ampersands, control
// characters), and a JUnit consumer that meets one unescaped drops the whole report.

export interface XmlElement {
  readonly name: string;
  /** In order; an undefined value leaves the attribute out. */
  readonly attributes?: Readonly<Record<string, string | number | undefined>>;
  /** Elements, or text. */
  readonly children?: readonly (XmlElement | string)[];
}

/** An XML 1.0 document: the declaration, then `root`, indented by element. */
export function xmlDocument(root: XmlElement): string {
  const out: string[] = ['<?xml version="1.0" encoding="UTF-8"?>\n'];
  write(root, "", out);
  return out.join("");
}

function write(element: XmlElement, indent: string, out: string[]): void {
  out.push(indent, "<", element.name);
  for (const [name, value] of Object.entries(element.attributes ?? {})) {
    if (value !== undefined) out.push(" ", name, '="', escapeAttribute(String(value)), '"');
  }
  const children = element.children ?? [];
  if (children.length === 0) {
    out.push("/>\n");
    return;
  }
  // Text is written as it is, on the element's line: indenting it would change it.
  if (children.some((child) => typeof child === "string")) {
    out.push(">");
    for (const child of children) {
      if (typeof child === "string") out.push(escapeText(child));
      else write(child, "", out);
    }
    out.push("</", element.name, ">\n");
    return;
  }
  out.push(">\n");
  for (const child of children) write(child as XmlElement, `${indent}  `, out);
  out.push(indent, "</", element.name, ">\n");
}

/**
 * Characters XML 1.0 does not allow at all, not even as a character reference: C0 controls but
 * tab, line feed and carriage return, and the non-characters U+FFFE and U+FFFF. They become
 * U+FFFD, the replacement character, as lone surrogates do (toWellFormed).
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
const NOT_XML = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g;

/**
 * Text content: markup characters as entities; a carriage return as a reference, or the parser
 * would make it a line feed, and so NEL and the LINE and PARAGRAPH SEPARATORs, which XML 1.1 parsers (and some 1.0
 * ones) take for line ends too.
 */
export function escapeText(text: string): string {
  return allowed(text).replace(
    /[&<>\r\u0085\u2028\u2029]/g,
    (character) => ENTITIES[character] ?? character,
  );
}

/**
 * An attribute value in double quotes: as text, plus the quote, and tab and line breaks as
 * references, since a parser normalises them to spaces in attributes.
 */
export function escapeAttribute(text: string): string {
  return allowed(text).replace(
    /[&<>"\t\n\r\u0085\u2028\u2029]/g,
    (character) => ENTITIES[character] ?? character,
  );
}

function allowed(text: string): string {
  return text.toWellFormed().replace(NOT_XML, "\uFFFD");
}

const ENTITIES: Readonly<Record<string, string>> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "\t": "&#9;",
  "\n": "&#10;",
  "\r": "&#13;",
  "\u0085": "&#133;",
  "\u2028": "&#8232;",
  "\u2029": "&#8233;",
};
