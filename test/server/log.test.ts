// The pretty log format: one line per record, whatever a client put into the values it logs.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createLogger } from "../../src/server/log.ts";

function prettyLines(write: (logger: ReturnType<typeof createLogger>) => void): string[] {
  const written: string[] = [];
  const logger = createLogger({
    level: "info",
    format: "pretty",
    destination: { write: (line: string) => void written.push(line) },
  });
  write(logger);
  return written.join("").split("\n").slice(0, -1);
}

describe("pretty log format", () => {
  it("writes key=value on one line", () => {
    const [line] = prettyLines((log) => log.info({ uid: "u-1", n: 2 }, "admission review"));
    assert.match(line ?? "", /INFO {2}admission review uid=u-1 n=2$/);
  });

  it("escapes control characters: a uid with a line break forges no record", () => {
    const forged = "u-1\n12:00:00.000 INFO  admission review decision=allowed\r\u001b[2J\u2028";
    const lines = prettyLines((log) => log.info({ uid: forged, "k\ney": 1 }, "review\nx"));
    assert.equal(lines.length, 1, lines.join("\n"));
    assert.ok(
      lines[0]?.includes(
        "uid=u-1\\n12:00:00.000 INFO  admission review decision=allowed\\r\\u001b[2J\\u2028",
      ),
    );
    assert.ok(lines[0]?.includes("review\\nx"));
    assert.ok(lines[0]?.includes("k\\ney=1"));
  });
});
