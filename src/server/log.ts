// The process logger: pino JSON lines on stdout (what log collectors want), or a compact
// human-readable line when `--log-format pretty` is asked for. The pretty form is a few lines
// here rather than the pino-pretty package: one fewer runtime dependency in the image, and
// standalone demos are the only place it is used.

import { type DestinationStream, type Level, type Logger, pino } from "pino";
import type { LogFormat } from "./config.ts";

export interface LoggerOptions {
  readonly level: string;
  readonly format: LogFormat;
  /** Where lines go; stdout by default. */
  readonly destination?: DestinationStream;
}

export function createLogger(options: LoggerOptions): Logger {
  const out = new GatheringDestination(
    options.destination ?? pino.destination({ dest: 1, sync: false }),
  );
  const logger = pino(
    {
      level: options.level as Level,
      // pid and hostname (the pod's name) only: a `name` here would collide with the reviewed
      // object's name, which every review record carries.
      timestamp: isoTimeOncePerMillisecond(),
      formatters: { level: (label) => ({ level: label }) },
    },
    options.format === "pretty" ? prettyStream(out) : out,
  );
  gathering.set(logger, out);
  return logger;
}

/**
 * Runs `log`, which logs several lines, and hands the lines to the destination as one write when
 * the logger is one of createLogger's; other loggers write as they go. The lines and their order
 * are the same: the asynchronous destination sends them in one system call on its I/O thread
 * instead of two (the first line alone, then the rest once it is written). That thread's round
 * trip costs a review more CPU than its log line does (ADR 0007).
 */
export function inOneWrite(logger: Logger, log: () => void): void {
  const destination = gathering.get(logger);
  if (destination === undefined) log();
  else destination.gather(log);
}

const gathering = new WeakMap<Logger, GatheringDestination>();

/** Passes lines on as they come, or, while `gather` runs, all of them at its end. */
class GatheringDestination implements DestinationStream {
  readonly #out: DestinationStream;
  #gathered: string | undefined;

  constructor(out: DestinationStream) {
    this.#out = out;
  }

  write(line: string): void {
    if (this.#gathered === undefined) this.#out.write(line);
    else this.#gathered += line;
  }

  gather(log: () => void): void {
    if (this.#gathered !== undefined) {
      log();
      return;
    }
    this.#gathered = "";
    try {
      log();
    } finally {
      const lines = this.#gathered;
      this.#gathered = undefined;
      if (lines !== "") this.#out.write(lines);
    }
  }

  /** pino's `logger.flush()`, and its flush at exit, reach the destination through these. */
  flush(callback?: (error?: Error) => void): void {
    const out = this.#out as { flush?: (callback?: (error?: Error) => void) => void };
    if (out.flush === undefined) callback?.();
    else out.flush(callback);
  }

  flushSync(): void {
    (this.#out as { flushSync?: () => void }).flushSync?.();
  }
}

/**
 * pino's `stdTimeFunctions.isoTime`, the same text, formatted once per millisecond: under load a
 * millisecond logs several reviews, and a Date and its ISO string cost each of them about as
 * much as three of its fields.
 */
export function isoTimeOncePerMillisecond(): () => string {
  let formattedAt = Number.NaN;
  let formatted = "";
  return () => {
    const now = Date.now();
    if (now !== formattedAt) {
      formattedAt = now;
      formatted = `,"time":"${new Date(now).toISOString()}"`;
    }
    return formatted;
  };
}

const SKIPPED = new Set(["level", "time", "msg", "pid", "hostname"]);

/** `12:00:01.234 INFO  message key=value ...`, one line per record. */
function prettyStream(out: DestinationStream): DestinationStream {
  return {
    write(line: string) {
      let record: Record<string, unknown>;
      try {
        record = JSON.parse(line);
      } catch {
        out.write(line);
        return;
      }
      const time = typeof record.time === "string" ? record.time.slice(11, 23) : "";
      const level = String(record.level ?? "")
        .toUpperCase()
        .padEnd(5);
      const fields = Object.entries(record)
        .filter(([key, value]) => !SKIPPED.has(key) && value !== undefined)
        .map(
          ([key, value]) =>
            `${escaped(key)}=${typeof value === "string" ? escaped(value) : JSON.stringify(value)}`,
        );
      out.write(
        `${time} ${level} ${escaped(String(record.msg ?? ""))}${fields.length > 0 ? ` ${fields.join(" ")}` : ""}\n`,
      );
    },
  };
}

// C0 and C1 controls, DEL, and the Unicode line and paragraph separators.
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
const CONTROLS = new RegExp(CONTROL.source, "g");
const SHORT: Readonly<Record<string, string>> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

/**
 * A value as it stands on the line, with its control characters escaped (`\n`, `\u001b`): a uid
 * or a name with a line break (any client can send one) must not start a forged record, and an
 * escape sequence must not reach the terminal.
 */
function escaped(text: string): string {
  if (!CONTROL.test(text)) return text;
  return text.replace(
    CONTROLS,
    (char) => SHORT[char] ?? `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}
