// Where the cluster's pools come from, source by source: the pools given at start (--pools), the
// legacy ConfigMap, and each IPAddressPool object. An object with any configuration error does
// not replace the last good pools of that object: MetalLB refuses a broken configuration and
// keeps running on the previous one, and so do we. Pure: no I/O; problems go to callbacks.

import { poolsFromDocument } from "../ipam/config/document.ts";
import { formatPoolConfigError, type PoolConfigError } from "../ipam/config/errors.ts";
import { mergePools } from "../ipam/config/merge.ts";
import type { Pool, PoolSet } from "../ipam/pool.ts";

/** A cluster object whose configuration was refused. */
export interface RejectedConfig {
  /** `ConfigMap metallb-system/config`, `IPAddressPool metallb-system/lan`. */
  readonly source: string;
  readonly errors: readonly PoolConfigError[];
  /** Names of the pools still in effect for that source (its last good version); maybe none. */
  readonly kept: readonly string[];
}

export interface PoolSourcesOptions {
  readonly staticPools: readonly Pool[];
  readonly metallbNamespace: string;
  /** A source's new version was refused. Reported once per distinct set of errors. */
  readonly onRejected: (rejected: RejectedConfig) => void;
  /**
   * Conflicts between sources (a duplicate name, overlapping ranges): the later pool is left
   * out. Only conflicts not reported by the previous merge are passed.
   */
  readonly onConflicts: (errors: readonly PoolConfigError[]) => void;
}

const CONFIG_MAP = "ConfigMap";
const ipAddressPoolKey = (object: unknown) => `IPAddressPool/${nameOf(object)}`;

export class PoolSources {
  readonly #options: PoolSourcesOptions;
  /** Last good pools per source: "ConfigMap", or "IPAddressPool/<name>". */
  readonly #lastGood = new Map<string, readonly Pool[]>();
  /** Per source, the error lines last reported, so a relist does not repeat them. */
  readonly #reported = new Map<string, string>();
  #conflicts: ReadonlySet<string> = new Set();
  #poolSet: PoolSet;

  constructor(options: PoolSourcesOptions) {
    this.#options = options;
    this.#poolSet = this.#merge();
  }

  /** The merged pools now in effect. */
  get poolSet(): PoolSet {
    return this.#poolSet;
  }

  /** The legacy ConfigMap's new version, or undefined when it is gone (no pools from it). */
  setConfigMap(object: unknown): void {
    if (object === undefined) this.#forget(CONFIG_MAP);
    else this.#accept(CONFIG_MAP, object);
    this.#poolSet = this.#merge();
  }

  putIPAddressPool(object: unknown): void {
    this.#accept(ipAddressPoolKey(object), object);
    this.#poolSet = this.#merge();
  }

  deleteIPAddressPool(object: unknown): void {
    this.#forget(ipAddressPoolKey(object));
    this.#poolSet = this.#merge();
  }

  /** Every IPAddressPool after a (re)list: the ones not listed are gone. */
  replaceIPAddressPools(objects: readonly unknown[]): void {
    const listed = new Set(objects.map(ipAddressPoolKey));
    for (const key of [...this.#lastGood.keys()]) {
      if (key !== CONFIG_MAP && !listed.has(key)) this.#forget(key);
    }
    for (const object of objects) this.#accept(ipAddressPoolKey(object), object);
    this.#poolSet = this.#merge();
  }

  #accept(key: string, object: unknown): void {
    const found = poolsFromDocument(object, "", {
      metallbNamespace: this.#options.metallbNamespace,
    }) ?? { pools: [], errors: [] };
    if (found.errors.length === 0) {
      this.#lastGood.set(key, found.pools);
      this.#reported.delete(key);
      return;
    }
    const lines = found.errors.map(formatPoolConfigError).join("\n");
    if (this.#reported.get(key) === lines) return;
    this.#reported.set(key, lines);
    this.#options.onRejected({
      source: found.errors[0]?.origin ?? key,
      errors: found.errors,
      kept: (this.#lastGood.get(key) ?? []).map((pool) => pool.name),
    });
  }

  #forget(key: string): void {
    this.#lastGood.delete(key);
    this.#reported.delete(key);
  }

  /** Static pools first, then the ConfigMap's, then IPAddressPools by name: the first one wins. */
  #merge(): PoolSet {
    const keys = [...this.#lastGood.keys()]
      .filter((key) => key !== CONFIG_MAP)
      .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const merged = mergePools([
      ...this.#options.staticPools,
      ...(this.#lastGood.get(CONFIG_MAP) ?? []),
      ...keys.flatMap((key) => this.#lastGood.get(key) ?? []),
    ]);
    const lines = merged.errors.map(formatPoolConfigError);
    const fresh = merged.errors.filter((_, index) => !this.#conflicts.has(lines[index] ?? ""));
    this.#conflicts = new Set(lines);
    if (fresh.length > 0) this.#options.onConflicts(fresh);
    return merged.poolSet;
  }
}

function nameOf(object: unknown): string {
  if (typeof object !== "object" || object === null) return "";
  const metadata = (object as { metadata?: unknown }).metadata;
  if (typeof metadata !== "object" || metadata === null) return "";
  const name = (metadata as { name?: unknown }).name;
  return typeof name === "string" ? name : "";
}
