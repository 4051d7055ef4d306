// One collection kept in step with the API server: list, then watch from the list's
// resourceVersion, forever. A watch that ends normally resumes from the last version seen
// (bookmarks keep that fresh on quiet collections); `410 Gone` relists; any other failure is
// logged on one line and retried with jittered exponential backoff. Nothing here throws out of
// the loop: an unreachable API server only makes the state older.
//
// Why not client-node's ListWatch (makeInformer): in 2.0.1 it stops for good on the first
// failed list or watch (the caller must restart it), hands list items over as generated class
// instances but watch objects as plain JSON, and replays a relist as one delete/add/update per
// object, with no hook to rebuild an index in one pass.

import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import { asRecord } from "../base/objects.ts";
import { describeError, KubeApiError, type KubeClient } from "./kube.ts";

export interface RetryOptions {
  /** First delay after a failure; it doubles per consecutive failure. Default 1 s. */
  readonly initialMs: number;
  /** Cap of the delay. Default 30 s. */
  readonly maxMs: number;
}

export const DEFAULT_RETRY: RetryOptions = { initialMs: 1000, maxMs: 30_000 };

/** Delay before retry number `attempt` (0-based): initial·2^attempt, capped, then 50–100 % of it. */
export function backoffDelay(
  attempt: number,
  retry: RetryOptions = DEFAULT_RETRY,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(retry.maxMs, retry.initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling * (0.5 + random() * 0.5));
}

export type KubeObject = Record<string, unknown>;

export interface ReflectorOptions {
  /** For logs: "Services", "ConfigMap metallb-system/config", ... */
  readonly name: string;
  readonly client: KubeClient;
  readonly path: string;
  readonly fieldSelector?: string;
  readonly labelSelector?: string;
  /**
   * A custom resource whose definition may be missing: a 404 then means "none of them", which
   * counts as synced, and the loop keeps checking (with backoff) for the definition to appear.
   */
  readonly optional?: boolean;
  /** The whole collection, after every (re)list; the callee swaps its state in one go. */
  readonly replace: (items: readonly KubeObject[]) => void;
  readonly apply: (type: "ADDED" | "MODIFIED" | "DELETED", object: KubeObject) => void;
  readonly logger: Logger;
  readonly retry?: RetryOptions;
}

export class Reflector {
  readonly #options: ReflectorOptions;
  readonly #stop = new AbortController();
  #synced = false;
  #failing: string | undefined;
  #healthySince: number | undefined;
  #running: Promise<void> | undefined;
  /** Ends the current watch early when a relist is asked for. */
  #interrupt: AbortController | undefined;
  /** Relists asked for and not yet begun. */
  #relists: (() => void)[] = [];

  constructor(options: ReflectorOptions) {
    this.#options = options;
  }

  get name(): string {
    return this.#options.name;
  }

  /** True once the collection has been listed (or found not to exist, when optional). */
  get synced(): boolean {
    return this.#synced;
  }

  /** The last failure while the loop is failing; undefined while it is healthy. */
  get failing(): string | undefined {
    return this.#failing;
  }

  /**
   * Since when the cache has been current: the last successful list, or the first event after
   * a watch failure. Undefined while failing and before the first sync.
   */
  get healthySince(): number | undefined {
    return this.#healthySince;
  }

  start(): void {
    this.#running ??= this.#run();
  }

  /**
   * Lists the collection again, from etcd (a list without a resourceVersion is a quorum read),
   * and resolves once the callee has it: the cache then holds at least everything written before
   * the call. It resolves only after a list that began after the call succeeded.
   */
  relist(): Promise<void> {
    return new Promise((resolve) => {
      this.#relists.push(resolve);
      this.#interrupt?.abort();
    });
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#running;
  }

  async #run(): Promise<void> {
    const { name, client, path, fieldSelector, labelSelector, logger } = this.#options;
    const retry = this.#options.retry ?? DEFAULT_RETRY;
    const signal = this.#stop.signal;
    let resourceVersion = "";
    let failures = 0;
    let absentLogged = false;
    let listedAt = 0;

    while (!signal.aborted) {
      // The relists this round's list answers: those asked for before it began.
      let relists: (() => void)[] = [];
      if (this.#relists.length > 0) {
        relists = this.#relists;
        this.#relists = [];
        resourceVersion = "";
      }
      try {
        if (resourceVersion === "") {
          const list = await client.list(path, {
            signal,
            ...selector(fieldSelector, labelSelector),
          });
          if (signal.aborted) break;
          this.#options.replace(list.items);
          for (const resolve of relists.splice(0)) resolve();
          resourceVersion = list.resourceVersion;
          listedAt = Date.now();
          if (absentLogged) logger.info({ resource: name }, `${name}: served now; watching it`);
          this.#healthy(failures);
          failures = 0;
          absentLogged = false;
        }
        // Set by the event callback: an ERROR event ends the stream right after.
        const ended: { gone?: KubeApiError; failed?: KubeApiError } = {};
        const abandon = new AbortController();
        this.#interrupt = abandon;
        if (this.#relists.length > 0) continue; // asked for during the list: list again now
        await client.watch(
          path,
          {
            resourceVersion,
            ...selector(fieldSelector, labelSelector),
            // Under client-node's 30 s inactivity timeout, so a quiet watch ends normally and
            // gets its bookmark (sent about 2 s before the deadline) to resume from.
            timeoutSeconds: 20 + Math.floor(Math.random() * 8),
            signal: AbortSignal.any([signal, abandon.signal]),
            onConnected: () => {
              if (this.#failing === undefined) return;
              this.#healthy(failures);
              failures = 0;
            },
          },
          (type, object) => {
            if (type === "ERROR") {
              const status = typeof object.code === "number" ? object.code : undefined;
              const message = typeof object.message === "string" ? object.message : "error event";
              const error = new KubeApiError(`watch ${path}: ${status ?? ""} ${message}`, status);
              if (status === 410) ended.gone = error;
              else ended.failed = error;
              return;
            }
            if (ended.failed !== undefined) return; // relisting anyway
            if (type !== "BOOKMARK") {
              try {
                this.#options.apply(type, object);
              } catch (error) {
                // A bug, not the API server's doing. client-node would swallow it silently;
                // say so, and relist rather than go on from a cache that missed an event.
                ended.failed = new KubeApiError(
                  `applying a ${type} event failed: ${describeError(error)}`,
                  undefined,
                  { cause: error },
                );
                resourceVersion = "";
                abandon.abort();
                return;
              }
            }
            const version = metadataOf(object).resourceVersion;
            if (typeof version === "string" && version !== "") resourceVersion = version;
          },
        );
        if (ended.gone !== undefined) throw ended.gone;
        if (ended.failed !== undefined) throw ended.failed;
      } catch (error) {
        // Not answered by this round: the next list answers them.
        this.#relists.unshift(...relists);
        if (signal.aborted) break;
        const status = error instanceof KubeApiError ? error.status : undefined;
        if (status === 410 && Date.now() - listedAt > 1000) {
          // Our resourceVersion is older than the server keeps: relist at once (but a 410 right
          // after a list is a misbehaving server, and backs off like any failure).
          logger.info({ resource: name }, `${name}: resourceVersion expired (410 Gone); relisting`);
          resourceVersion = "";
          continue;
        }
        if (status === 404 && this.#options.optional) {
          if (!absentLogged) {
            logger.info(
              { resource: name },
              `${name}: not served (its CustomResourceDefinition is not installed); treating it as empty and checking again with backoff`,
            );
            absentLogged = true;
          }
          this.#options.replace([]);
          for (const resolve of this.#relists.splice(0)) resolve();
          resourceVersion = "";
          this.#synced = true;
          this.#healthySince ??= Date.now();
          this.#failing = undefined;
        } else {
          this.#failing = describeError(error);
          this.#healthySince = undefined;
        }
        const delay = backoffDelay(failures, retry);
        failures += 1;
        if (this.#failing !== undefined) {
          logger.warn(
            { resource: name, error: this.#failing, attempt: failures, retryInMs: delay },
            `${name}: list/watch failed: ${this.#failing}; retrying in ${(delay / 1000).toFixed(1)} s`,
          );
        }
        try {
          await sleep(delay, undefined, { signal });
        } catch {
          break; // stopped
        }
      }
    }
  }

  #healthy(failures: number): void {
    if (this.#failing !== undefined) {
      this.#options.logger.info(
        { resource: this.#options.name, failures },
        `${this.#options.name}: list/watch recovered after ${failures} failure(s)`,
      );
    }
    this.#failing = undefined;
    this.#synced = true;
    this.#healthySince = Date.now();
  }
}

function selector(
  fieldSelector: string | undefined,
  labelSelector: string | undefined,
): { fieldSelector?: string; labelSelector?: string } {
  return {
    ...(fieldSelector !== undefined && { fieldSelector }),
    ...(labelSelector !== undefined && { labelSelector }),
  };
}

function metadataOf(object: KubeObject): Record<string, unknown> {
  return asRecord(object.metadata);
}
