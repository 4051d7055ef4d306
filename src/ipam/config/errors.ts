// What parsing pool configuration reports: a problem per entry, naming where the pool was
// declared, the pool, and the string the user has to fix. A pool with a problem is never built.

import type { Pool } from "../pool.ts";

export interface PoolConfigError {
  /** Where the pool was declared: `ConfigMap metallb-system/config`, `pools.yaml (IPAddressPool metallb-system/lan)`, ... */
  readonly origin: string;
  /** The pool's name, when it has one. */
  readonly pool: string | undefined;
  /** The string the user has to fix: an address entry, a key, a value, a pool name. */
  readonly offending: string;
  /** One line that names the offending string. */
  readonly message: string;
}

/** One line: `<origin>: pool "<name>": <message>` (or `<origin>: <message>` for a nameless pool). */
export function formatPoolConfigError(error: PoolConfigError): string {
  const where = error.pool === undefined ? error.origin : `${error.origin}: pool "${error.pool}"`;
  return escapeLineBreaks(`${where}: ${error.message}`);
}

export interface PoolsFound {
  /** Only pools without any error: a pool with a problem is never half-built. */
  readonly pools: readonly Pool[];
  readonly errors: readonly PoolConfigError[];
}

/** Collects the problems of one pool; the pool is built only when there are none. */
export class Issues {
  readonly #origin: string;
  readonly #pool: string | undefined;
  readonly #prefix: string;
  readonly #errors: PoolConfigError[] = [];

  constructor(origin: string, pool: string | undefined, prefix: string) {
    this.#origin = origin;
    this.#pool = pool;
    this.#prefix = prefix;
  }

  get count(): number {
    return this.#errors.length;
  }

  /** What was found so far, for sources that build no pool (peers, BFD profiles). */
  get errors(): readonly PoolConfigError[] {
    return this.#errors;
  }

  add(offending: string, message: string): void {
    this.#errors.push({
      origin: this.#origin,
      pool: this.#pool,
      offending,
      message: `${this.#prefix}${message}`,
    });
  }

  result(name: string | undefined, build: (name: string) => Pool | undefined): PoolsFound {
    if (this.#errors.length > 0 || name === undefined) return { pools: [], errors: this.#errors };
    const pool = build(name);
    return { pools: pool === undefined ? [] : [pool], errors: [] };
  }
}

/** Nothing found but one problem, of the source as a whole. */
export function singleError(origin: string, offending: string, message: string): PoolsFound {
  return { pools: [], errors: [{ origin, pool: undefined, offending, message }] };
}

/**
 * Line breaks in names and keys the user wrote are shown as `\n`, so one error stays one line
 * and still says what is there (base/text.ts's oneLine folds them into a space instead).
 */
function escapeLineBreaks(text: string): string {
  return text.replace(/\r\n|\r|\n/g, "\\n");
}
