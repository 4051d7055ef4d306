// The pretty log format: one line per record, whatever a client put into the values it logs.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pino, stdTimeFunctions } from "pino";
import { createLogger, inOneWrite, isoTimeOncePerMillisecond } from "../../src/server/log.ts";

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
  it("is pino's isoTime, the same text, formatted once per millisecond", (t) => {
    // Both read Date.now(): a clock of our own, so that no millisecond (or a step of the
    // system clock, seen once in CI) falls between the two readings.
    t.mock.timers.enable({ apis: ["Date"], now: Date.parse("2026-11-30T12:12:30.263Z") });
    const time = isoTimeOncePerMillisecond();
    const first = time();
    assert.equal(first, stdTimeFunctions.isoTime());
    assert.equal(time(), first, "the same millisecond, the same text");
    t.mock.timers.tick(1);
    assert.notEqual(time(), first);
    assert.equal(time(), stdTimeFunctions.isoTime());
    assert.match(time(), /^,"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"$/);
  });
});

describe("inOneWrite", () => {
  const writes = (
    format: "json" | "pretty",
    log: (logger: ReturnType<typeof createLogger>) => void,
  ) => {
    const written: string[] = [];
    const logger = createLogger({
      level: "info",
      format,
      destination: { write: (line: string) => void written.push(line) },
    });
    log(logger);
    return written;
  };

  it("hands the lines logged inside it to the destination as one write, in order", () => {
    for (const format of ["json", "pretty"] as const) {
      const written = writes(format, (logger) => {
        logger.info("before");
        inOneWrite(logger, () => {
          logger.info({ n: 1 }, "first");
          logger.debug("not at this level");
          logger.warn({ n: 2 }, "second");
        });
        logger.info("after");
      });
      assert.equal(written.length, 3, format);
      const lines = written[1]?.split("\n").slice(0, -1) ?? [];
      assert.equal(lines.length, 2, format);
      assert.match(lines[0] ?? "", /first/);
      assert.match(lines[1] ?? "", /second/);
      assert.match(written[2] ?? "", /after/);
    }
  });

  it("writes nothing for a run that logs nothing, and what was logged when the run throws", () => {
    assert.deepEqual(
      writes("json", (logger) => inOneWrite(logger, () => {})),
      [],
    );
    const written = writes("json", (logger) => {
      assert.throws(() =>
        inOneWrite(logger, () => {
          logger.info("logged");
          throw new Error("halfway");
        }),
      );
    });
    assert.equal(written.length, 1);
    assert.match(written[0] ?? "", /"msg":"logged"/);
  });

  it("lets any other logger write as it goes", () => {
    const written: string[] = [];
    const logger = pino({ level: "info" }, { write: (line: string) => void written.push(line) });
    inOneWrite(logger, () => {
      logger.info("one");
      logger.info("two");
    });
    assert.equal(written.length, 2);
  });
});
