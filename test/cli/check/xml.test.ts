// The JUnit report's XML encoder, character by character: every UTF-16 code unit and a few
// astral characters, in text and in an attribute, read back by a W3C DOM parser (@xmldom/xmldom).
// What XML 1.0 allows (its Char production) must come back unchanged; what it forbids must come
// back as U+FFFD, never reach the document.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { DOMParser } from "@xmldom/xmldom";
import { escapeAttribute, escapeText, xmlDocument } from "../../../src/cli/check/formats/xml.ts";

/** XML 1.0's Char production (§2.2), for one code point. */
function isXmlChar(codePoint: number): boolean {
  return (
    codePoint === 0x9 ||
    codePoint === 0xa ||
    codePoint === 0xd ||
    (codePoint >= 0x20 && codePoint <= 0xd7ff) ||
    (codePoint >= 0xe000 && codePoint <= 0xfffd) ||
    (codePoint >= 0x10000 && codePoint <= 0x10ffff)
  );
}

function parse(xml: string) {
  const problems: string[] = [];
  const document = new DOMParser({
    // Its one warning is about U+FFFD itself, which the encoder writes on purpose.
    onError: (level, message) => {
      if (level !== "warning") problems.push(`${level}: ${message}`);
    },
  }).parseFromString(xml, "text/xml");
  assert.deepEqual(problems, [], xml);
  const root = document.documentElement;
  assert.ok(root !== null);
  return root;
}

function assertOnlyXmlChars(xml: string): void {
  for (const character of xml) {
    const codePoint = character.codePointAt(0) ?? 0;
    assert.ok(isXmlChar(codePoint), `U+${codePoint.toString(16)} in the output`);
  }
}

// Each code unit alone, then a surrogate pair and astral characters.
const samples = [
  ...Array.from({ length: 0x10000 }, (_, unit) => String.fromCharCode(unit)),
  "\u{1F600}",
  "\u{10FFFF}",
  "\u{10000}",
];

function expected(sample: string): string {
  const codePoint = sample.codePointAt(0) ?? 0;
  // A lone surrogate is no character at all.
  const lone = sample.length === 1 && codePoint >= 0xd800 && codePoint <= 0xdfff;
  return !lone && isXmlChar(codePoint) ? sample : "\uFFFD";
}

describe("XML encoder", () => {
  test("text: every character round-trips, or becomes U+FFFD where XML forbids it", () => {
    // In batches: one document per 4096 samples, each sample in its own element.
    for (let start = 0; start < samples.length; start += 4096) {
      const batch = samples.slice(start, start + 4096);
      const xml = xmlDocument({
        name: "batch",
        children: batch.map((sample) => ({ name: "t", children: [`a${sample}b`] })),
      });
      assertOnlyXmlChars(xml);
      const elements = parse(xml).getElementsByTagName("t");
      batch.forEach((sample, index) => {
        assert.equal(
          elements.item(index)?.textContent,
          `a${expected(sample)}b`,
          `U+${sample.codePointAt(0)?.toString(16)}`,
        );
      });
    }
  });

  test("attributes: every character round-trips, tab and line breaks too (no normalisation)", () => {
    for (let start = 0; start < samples.length; start += 4096) {
      const batch = samples.slice(start, start + 4096);
      const xml = xmlDocument({
        name: "batch",
        children: batch.map((sample) => ({ name: "t", attributes: { v: `a${sample}b` } })),
      });
      assertOnlyXmlChars(xml);
      const elements = parse(xml).getElementsByTagName("t");
      batch.forEach((sample, index) => {
        assert.equal(
          elements.item(index)?.getAttribute("v"),
          `a${expected(sample)}b`,
          `U+${sample.codePointAt(0)?.toString(16)}`,
        );
      });
    }
  });

  test("markup in values stays text: no element, entity or CDATA end can be injected", () => {
    const hostile = `</failure><x a="1">&amp; &#38; ]]> <!-- --> <?pi?> ' "`;
    const xml = xmlDocument({
      name: "r",
      attributes: { a: hostile },
      children: [{ name: "c", attributes: { b: hostile }, children: [hostile] }],
    });
    const root = parse(xml);
    assert.equal(root.getAttribute("a"), hostile);
    const child = root.getElementsByTagName("c").item(0);
    assert.equal(child?.getAttribute("b"), hostile);
    assert.equal(child?.textContent, hostile);
    assert.equal(child?.childNodes.length, 1);
    assert.equal(root.getElementsByTagName("x").length, 0);
  });

  test("escapes only what needs it; an undefined attribute is left out; an empty element closes itself", () => {
    assert.equal(escapeText(`a&b<c>d"e'f\tg\nh\ri`), `a&amp;b&lt;c&gt;d"e'f\tg\nh&#13;i`);
    assert.equal(
      escapeAttribute(`a&b<c>d"e'f\tg\nh\ri`),
      "a&amp;b&lt;c&gt;d&quot;e'f&#9;g&#10;h&#13;i",
    );
    assert.equal(
      xmlDocument({ name: "r", attributes: { a: undefined, b: 2 }, children: [{ name: "e" }] }),
      `<?xml version="1.0" encoding="UTF-8"?>\n<r b="2">\n  <e/>\n</r>\n`,
    );
  });
});
