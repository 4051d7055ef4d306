// The pretty log format: one line per record, whatever a client put into the values it logs.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { stdTimeFunctions } from "pino";
import { createLogger, isoTimeOncePerMillisecond } from "../../src/server/log.ts";

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

describe("log time", () => {
  it("is pino's isoTime, the same text, formatted once per millisecond", () => {
    const time = isoTimeOncePerMillisecond();
    // Retried until both calls fall in one millisecond, as they almost always do.
    for (;;) {
      const before = stdTimeFunctions.isoTime();
      const ours = time();
      const after = stdTimeFunctions.isoTime();
      if (before !== after) continue;
      assert.equal(ours, before);
      assert.equal(time(), ours);
      break;
    }
    const first = time();
    const start = Date.now();
    while (Date.now() === start) {
      // waits for the next millisecond
    }
    assert.notEqual(time(), first);
    assert.match(time(), /^,"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"$/);
  });
});
