// The help a SARIF rule carries is the README's troubleshooting table, word for word: the table is
// what users read, and the code must not drift from it.

import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { REASON_HELP } from "../../../src/cli/check/reasons.ts";

test("REASON_HELP is the README's troubleshooting table, every code in its order", async () => {
  const readme = await readFile(new URL("../../../README.md", import.meta.url), "utf8");
  const section = readme.slice(readme.indexOf("## Troubleshooting: reason codes"));
  const rows = section
    .split("\n")
    .slice(1)
    .filter(
      (line, index, lines) =>
        line.startsWith("|") &&
        lines.slice(0, index).every((before) => before.trim() === "" || before.startsWith("|")),
    )
    .map((line) =>
      line
        .split("|")
        .slice(1, -1)
        .map((cell) => cell.trim()),
    )
    .filter(([code]) => code !== "code" && !code?.startsWith("---"));
  assert.deepEqual(
    rows.map(([code, meaning, fix]) => [code?.replaceAll("`", ""), meaning, fix]),
    Object.entries(REASON_HELP).map(([code, help]) => [code, help.meaning, help.fix]),
  );
});
