// The little of the Kubernetes API this project needs: load a kubeconfig, list a collection as
// plain JSON (paginated), and watch it from a resourceVersion. Authentication, TLS and proxies
// are @kubernetes/client-node's (KubeConfig, RequestContext, Watch); objects stay plain JSON,
// exactly as the watch delivers them, so the pure core reads list and watch objects alike
// (the generated API clients would turn list items into class instances).

import { existsSync } from "node:fs";
// The modules themselves, not the package's index, which loads every generated API client
// (client-imports.ts trims what the configuration module loads of it).
import { KubeConfig } from "@kubernetes/client-node/dist/config.js";
import { HttpMethod, RequestContext } from "@kubernetes/client-node/dist/gen/http/http.js";
import { IsomorphicFetchHttpLibrary } from "@kubernetes/client-node/dist/gen/http/isomorphic-fetch.js";
import { Watch } from "@kubernetes/client-node/dist/watch.js";
import { asRecord } from "../base/objects.ts";

/** A kubeconfig that cannot be used: a missing file, no current context, nothing found at all. */
export class KubeConfigError extends Error {
  override readonly name = "KubeConfigError";
}

/** A request the API server answered with a non-2xx status, or never answered. */
export class KubeApiError extends Error {
  override readonly name = "KubeApiError";
  /** The HTTP status, or the `code` of a watch ERROR event; undefined when nothing answered. */
  readonly status: number | undefined;

  constructor(message: string, status: number | undefined, options?: ErrorOptions) {
    super(message, options);
    this.status = status;
  }
}

const SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/**
 * An explicit file; else `KUBECONFIG`, `~/.kube/config` or the in-cluster service account, in
 * client-node's order. Unlike client-node, finding none of them is an error, not a silent
 * `http://localhost:8080`. `context` picks one of its contexts, as kubectl's --context does.
 */
export function loadKubeConfig(path?: string, context?: string): KubeConfig {
  const config = new KubeConfig();
  try {
    if (path !== undefined) {
      config.loadFromFile(path);
    } else {
      const home = process.env.HOME ?? process.env.USERPROFILE;
      const found =
        (process.env.KUBECONFIG ?? "") !== "" ||
        (home !== undefined && existsSync(`${home}/.kube/config`)) ||
        existsSync(SERVICE_ACCOUNT_TOKEN);
      if (!found) {
        throw new KubeConfigError(
          "no kubeconfig found: pass --kubeconfig FILE, set KUBECONFIG, create ~/.kube/config, or run in a cluster",
        );
      }
      config.loadFromDefault();
    }
  } catch (error) {
    if (error instanceof KubeConfigError) throw error;
    const where = path ?? process.env.KUBECONFIG ?? "the default kubeconfig";
    throw new KubeConfigError(`cannot load kubeconfig ${where}: ${describeError(error)}`, {
      cause: error,
    });
  }
  if (context !== undefined) {
    const known = config.getContexts().map((candidate) => candidate.name);
    if (!known.includes(context)) {
      throw new KubeConfigError(
        `context ${JSON.stringify(context)} is not in the kubeconfig; its contexts: ${known.join(", ") || "none"}`,
      );
    }
    config.setCurrentContext(context);
  }
  const cluster = config.getCurrentCluster();
  if (cluster === null || cluster.server === "") {
    const which = path === undefined ? "the kubeconfig" : `kubeconfig ${path}`;
    throw new KubeConfigError(`${which} has no current context with a cluster server`);
  }
  return config;
}

/** One page of a list, or the whole list once `list` has followed every `continue`. */
export interface ListResult {
  /** Each item with `apiVersion` and `kind` filled in (a list's items carry neither). */
  readonly items: readonly Record<string, unknown>[];
  readonly resourceVersion: string;
}

export interface CollectionRequest {
  readonly fieldSelector?: string;
  readonly labelSelector?: string;
  readonly signal?: AbortSignal;
}

export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";

export interface WatchRequest {
  readonly resourceVersion: string;
  readonly fieldSelector?: string;
  readonly labelSelector?: string;
  /** Server-side end of the watch; the stream then closes normally. */
  readonly timeoutSeconds: number;
  readonly signal: AbortSignal;
  /** Called once the API server has accepted the watch (HTTP 200), before any event. */
  readonly onConnected?: () => void;
}

const PAGE_SIZE = 500;
/** No single request may hang longer than this (a half-open connection, say). */
const LIST_TIMEOUT_MS = 60_000;

export class KubeClient {
  readonly config: KubeConfig;
  readonly server: string;
  readonly #http = new IsomorphicFetchHttpLibrary();
  readonly #watch: Watch;
  /**
   * The first request's connection pool (TLS settings of the kubeconfig), kept for the next ones:
   * client-node builds a new one per request, so every request would open a new TLS connection
   * (address claims make several per admission). Credentials in headers are still applied per
   * request (a rotated service-account token is read again).
   */
  #dispatcher: ReturnType<RequestContext["getDispatcher"]>;

  constructor(config: KubeConfig) {
    this.config = config;
    this.server = (config.getCurrentCluster()?.server ?? "").replace(/\/+$/, "");
    this.#watch = new Watch(config);
  }

  /**
   * The whole collection at one resourceVersion, in pages of 500 (a consistent snapshot: the
   * API server serves every page from the first page's version). Items get `apiVersion` and
   * `kind` from the list (`ServiceList` -> `Service`).
   */
  async list(path: string, request: CollectionRequest = {}): Promise<ListResult> {
    const items: Record<string, unknown>[] = [];
    let resourceVersion = "";
    let continueToken = "";
    do {
      const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
      if (request.fieldSelector !== undefined) query.set("fieldSelector", request.fieldSelector);
      if (request.labelSelector !== undefined) query.set("labelSelector", request.labelSelector);
      if (continueToken !== "") query.set("continue", continueToken);
      const page = await this.#get(`${path}?${query}`, request.signal);
      const metadata = asRecord(page.metadata);
      const kind = typeof page.kind === "string" ? page.kind.replace(/List$/, "") : undefined;
      const apiVersion = typeof page.apiVersion === "string" ? page.apiVersion : undefined;
      for (const item of Array.isArray(page.items) ? page.items : []) {
        items.push({ apiVersion, kind, ...withoutManagedFields(asRecord(item)) });
      }
      if (resourceVersion === "") resourceVersion = String(metadata.resourceVersion ?? "");
      continueToken = typeof metadata.continue === "string" ? metadata.continue : "";
    } while (continueToken !== "");
    return { items, resourceVersion };
  }

  /**
   * Watches `path` from `resourceVersion`, calling `onEvent` for each event, until the stream
   * ends. Resolves when it ends normally (server timeout, or client-node's 30 s inactivity
   * timeout on a quiet stream: a TimeoutError, also a normal end); rejects with a KubeApiError
   * otherwise. Aborting `signal` ends it.
   */
  watch(
    path: string,
    request: WatchRequest,
    onEvent: (type: WatchEventType, object: Record<string, unknown>) => void,
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      let controller: AbortController | undefined;
      let finished = false;
      const abort = () => controller?.abort();
      const done = (error: unknown) => {
        finished = true;
        request.signal.removeEventListener("abort", abort);
        if (error === null || error === undefined || request.signal.aborted) resolve();
        else if (isTimeout(error)) resolve();
        else reject(toApiError(`watch ${path}`, error));
      };
      request.signal.addEventListener("abort", abort, { once: true });
      const query: Record<string, string | number | boolean> = {
        resourceVersion: request.resourceVersion,
        allowWatchBookmarks: true,
        timeoutSeconds: request.timeoutSeconds,
      };
      if (request.fieldSelector !== undefined) query.fieldSelector = request.fieldSelector;
      if (request.labelSelector !== undefined) query.labelSelector = request.labelSelector;
      this.#watch
        .watch(
          path,
          query,
          (type: string, object: unknown) =>
            onEvent(type as WatchEventType, withoutManagedFields(asRecord(object))),
          done,
        )
        .then(
          (started) => {
            controller = started;
            if (request.signal.aborted) started.abort();
            // client-node returns the controller after the response headers; a refused watch
            // has called `done` by then.
            else if (!finished) request.onConnected?.();
          },
          (error: unknown) => done(error),
        );
    });
  }

  /**
   * One request with a JSON body (or none), answered with JSON: GET, POST (create), PUT (update,
   * with the object's resourceVersion as precondition), PATCH (`contentType` names the patch
   * type, e.g. `application/json-patch+json`), DELETE. A non-2xx answer throws a KubeApiError
   * carrying the status: 404 NotFound, 409 AlreadyExists/Conflict, 422 Invalid, ...
   */
  request(
    method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE",
    pathAndQuery: string,
    options: {
      readonly body?: unknown;
      readonly contentType?: string;
      readonly signal?: AbortSignal;
    } = {},
  ): Promise<Record<string, unknown>> {
    return this.#send(method, pathAndQuery, options);
  }

  #get(pathAndQuery: string, signal: AbortSignal | undefined): Promise<Record<string, unknown>> {
    return this.#send("GET", pathAndQuery, signal === undefined ? {} : { signal });
  }

  async #send(
    method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE",
    pathAndQuery: string,
    options: {
      readonly body?: unknown;
      readonly contentType?: string;
      readonly signal?: AbortSignal | undefined;
    },
  ): Promise<Record<string, unknown>> {
    const { signal } = options;
    const what = `${method} ${pathAndQuery.replace(/\?.*$/, "")}`;
    const timeout = AbortSignal.timeout(LIST_TIMEOUT_MS);
    const context = new RequestContext(`${this.server}${pathAndQuery}`, HttpMethod[method]);
    context.setHeaderParam("Accept", "application/json");
    if (options.body !== undefined) {
      context.setHeaderParam("Content-Type", options.contentType ?? "application/json");
      context.setBody(JSON.stringify(options.body));
    }
    context.setSignal(signal === undefined ? timeout : AbortSignal.any([signal, timeout]));
    let status: number;
    let text: string;
    try {
      await this.config.applySecurityAuthentication(context);
      this.#dispatcher ??= context.getDispatcher();
      if (this.#dispatcher !== undefined) context.setDispatcher(this.#dispatcher);
      const response = await this.#http.send(context).toPromise();
      status = response.httpStatusCode;
      text = await response.body.text();
    } catch (error) {
      throw toApiError(what, error);
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    if (status < 200 || status > 299) {
      const message = asRecord(body).message;
      const detail = typeof message === "string" ? message : text.trim().slice(0, 200);
      throw new KubeApiError(`${what}: ${status} ${detail}`.trim(), status);
    }
    if (body === undefined) throw new KubeApiError(`${what}: the answer is not JSON`, status);
    return asRecord(body);
  }
}

/**
 * `object` without `metadata.managedFields`: server-side apply's record of who set which field is
 * about half of a Service's JSON and nothing here reads it, so it is dropped as each object
 * arrives, before a list of 10,000 Services (or serve's state) holds it. A PUT of such an object
 * leaves the server's record as it is (only an empty list resets it).
 */
function withoutManagedFields(object: Record<string, unknown>): Record<string, unknown> {
  const metadata = asRecord(object.metadata);
  if (!Object.hasOwn(metadata, "managedFields")) return object;
  const { managedFields: _dropped, ...kept } = metadata;
  return { ...object, metadata: kept };
}

/** `error`'s message with its causes (`fetch failed: connect ECONNREFUSED 127.0.0.1:6443`). */
export function describeError(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current !== undefined && current !== null; depth += 1) {
    const message =
      current instanceof Error ? current.message : typeof current === "string" ? current : "";
    if (message !== "" && !parts.some((part) => part.includes(message))) parts.push(message);
    current = current instanceof Error ? current.cause : undefined;
  }
  return (parts.join(": ") || String(error)).replace(/\s*\n\s*/g, " ");
}

function toApiError(what: string, error: unknown): KubeApiError {
  if (error instanceof KubeApiError) return error;
  if (isTimeout(error)) return new KubeApiError(`${what}: no answer (timed out)`, undefined);
  const record = asRecord(error);
  const status =
    typeof record.statusCode === "number"
      ? record.statusCode
      : typeof record.code === "number"
        ? record.code
        : undefined;
  const prefix = status === undefined ? what : `${what}: ${status}`;
  return new KubeApiError(`${prefix}: ${describeError(error)}`, status, { cause: error });
}

function isTimeout(error: unknown): boolean {
  return error instanceof Error && error.name === "TimeoutError";
}
