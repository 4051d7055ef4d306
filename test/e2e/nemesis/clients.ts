// The storm's load: clients creating, deleting and relabelling Services as fast as the API server
// answers, each with its own stream of choices from the seed. A create is one of
// - auto: a ClusterIP Service with `lb-ip-guard.dev/auto-assign: "true"`;
// - plain: a LoadBalancer asking for no address (lb-ip-guard must grant it one: "one allocator");
// - explicit: a LoadBalancer asking for a random pool address in spec.loadBalancerIP.
// Names are a per-run counter: a name never comes back, so MetalLB's work queue (keyed by name)
// never mixes two Services. Deletes and relabels pick a live Service from the history.

import type { History } from "./history.ts";
import { type KubeClient, KubeTimeout } from "./kube.ts";
import { stream } from "./random.ts";

export type CreateKind = "auto" | "plain" | "explicit";

/** How a request was answered. */
export type Answer =
  | { outcome: "admitted" }
  /** Refused by the webhook: the reason code its message starts with. */
  | { outcome: "refused"; reason: string }
  /** The API server could not get an answer from a webhook (failurePolicy Fail). */
  | { outcome: "failed calling webhook" }
  | { outcome: "HTTP 5xx"; status: number }
  | { outcome: "timeout" }
  /** Anything else: a test bug (see Load.unexplained). */
  | { outcome: "other"; detail: string };

export interface Create {
  kind: CreateKind;
  name: string;
  /** ms since the storm began. */
  at: number;
  /** Whether, as far as the history had it then, the pool had an address no live Service held. */
  poolHadFree: boolean;
  answer: Answer;
}

export type Operation = "delete" | "relabel";

export interface Load {
  readonly creates: readonly Create[];
  /** How the deletes and relabels were answered ("admitted": done, or the Service gone already). */
  readonly updates: Record<Operation, Map<string, number>>;
  /** Answers that no fault explains (the API server's own refusals, a dropped connection): a test bug. */
  readonly unexplained: string[];
}

export interface LoadOptions {
  client: KubeClient;
  history: History;
  seed: number;
  namespace: string;
  /** Every address of the pool, in order. */
  pool: readonly string[];
  clients: number;
  /** When the storm began (ms epoch): `at` counts from here. */
  started: number;
  /** The clients stop after this many operations each, if `signal` has not stopped them first. */
  maxOperations: number;
  signal: AbortSignal;
}

/** A webhook's denial, as the API server words it: `... denied the request: Reason: ...`. */
const DENIED = /denied the request: ([A-Za-z]+):/;

/**
 * Starts the clients; they run until `signal` aborts (or each has made `maxOperations`), and
 * `finished` resolves then. `load` fills as they go.
 */
export function runLoad(options: LoadOptions): { load: Load; finished: Promise<void> } {
  const load = {
    creates: [] as Create[],
    updates: { delete: new Map<string, number>(), relabel: new Map<string, number>() },
    unexplained: [] as string[],
  };
  const path = `/api/v1/namespaces/${options.namespace}/services`;
  const client = async (index: number) => {
    const random = stream(options.seed, `client-${index}`);
    for (let n = 0; n < options.maxOperations && !options.signal.aborted; n++) {
      const live = [...options.history.live.values()];
      // Deletes only once the pool is 80 % held, so it stays about full and every address the
      // webhook admits is churned: refusals come back in a millisecond and admissions take
      // longer, so deletes at a fixed share of the operations would keep the pool nearly empty.
      const operation =
        live.length === 0
          ? "create"
          : random.weighted({
              create: 5,
              delete: live.length >= 0.8 * options.pool.length ? 4 : 0,
              relabel: 2,
            });
      if (operation === "create") {
        const kind = random.weighted<CreateKind>({ auto: 1, plain: 1, explicit: 1 });
        const name = `c${index}-${n}`;
        const address = random.pick(options.pool);
        const held = new Set(
          live.flatMap((s) => (s.type === "LoadBalancer" ? [...s.asked, ...s.served] : [])),
        );
        const poolHadFree = options.pool.some((ip) => !held.has(ip));
        const at = Date.now() - options.started;
        const answer = await send(options.client, "POST", path, manifest(kind, name, address));
        load.creates.push({ kind, name, at, poolHadFree, answer });
        if (answer.outcome === "other") load.unexplained.push(`create ${name}: ${answer.detail}`);
        continue;
      }
      const target = `${path}/${random.pick(live).name}`;
      const answer =
        operation === "delete"
          ? await send(options.client, "DELETE", target)
          : await send(options.client, "PATCH", target, {
              metadata: { labels: { generation: String(n) } },
            });
      const key = outcomeKey(answer);
      const counts = load.updates[operation];
      counts.set(key, (counts.get(key) ?? 0) + 1);
      if (answer.outcome === "other")
        load.unexplained.push(`${operation} ${target}: ${answer.detail}`);
    }
  };
  const clients = Array.from({ length: options.clients }, (_, index) => client(index));
  return { load, finished: Promise.all(clients).then(() => {}) };
}

/** "admitted", "refused NotReady", "failed calling webhook", ... */
export function outcomeKey(answer: Answer): string {
  return answer.outcome === "refused" ? `refused ${answer.reason}` : answer.outcome;
}

/** One request, its answer classified; a 404 (deleted by another client meanwhile) is fine. */
async function send(
  client: KubeClient,
  method: string,
  path: string,
  body?: object,
): Promise<Answer> {
  let answer: { status: number; body: string };
  try {
    answer = await client.send(method, path, body);
  } catch (err) {
    if (err instanceof KubeTimeout) return { outcome: "timeout" };
    return { outcome: "other", detail: (err as Error).message };
  }
  if (answer.status < 300 || (method !== "POST" && answer.status === 404)) {
    return { outcome: "admitted" };
  }
  const message = statusMessage(answer.body);
  if (message.includes("failed calling webhook")) return { outcome: "failed calling webhook" };
  const denied = DENIED.exec(message);
  if (denied) return { outcome: "refused", reason: denied[1] as string };
  if (answer.status >= 500) return { outcome: "HTTP 5xx", status: answer.status };
  return { outcome: "other", detail: `HTTP ${answer.status}: ${message.slice(0, 300)}` };
}

/** The message of the API server's Status answer, or the body as it came when it is none. */
function statusMessage(body: string): string {
  try {
    return (JSON.parse(body) as { message?: string }).message ?? body;
  } catch {
    return body;
  }
}

function manifest(kind: CreateKind, name: string, address: string): object {
  const auto = kind === "auto";
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: {
      name,
      labels: { generation: "0" },
      ...(auto && { annotations: { "lb-ip-guard.dev/auto-assign": "true" } }),
    },
    spec: {
      type: auto ? "ClusterIP" : "LoadBalancer",
      ...(kind === "explicit" && { loadBalancerIP: address }),
      selector: { app: name },
      ports: [{ name: "http", port: 80, protocol: "TCP" }],
    },
  };
}

/**
 * Whether a create counts as answered for availability: admitted, or refused for a reason of the
 * Service's own (AddressInUse, PoolExhausted, ...). NotReady, a failed webhook call, a 5xx and a
 * timeout are the webhook not answering.
 */
export function answered(answer: Answer): boolean {
  return (
    answer.outcome === "admitted" || (answer.outcome === "refused" && answer.reason !== "NotReady")
  );
}

/** Whether the API server got an answer from a replica for every webhook call of the create. */
export function reachedReplica(answer: Answer): boolean {
  return answer.outcome !== "failed calling webhook" && answer.outcome !== "timeout";
}
