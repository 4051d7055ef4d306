// The storm's load: clients creating, deleting and relabelling Services as fast as the API server
// answers, each with its own stream of choices from the seed. A create is one of
// - auto: a ClusterIP Service with `lb-ip-guard.dev/auto-assign: "true"`;
// - plain: a LoadBalancer asking for no address (lb-ip-guard must grant it one, ADR 0012);
// - explicit: a LoadBalancer asking for a random pool address in spec.loadBalancerIP.
// Names are a per-run counter: a name never comes back, so MetalLB's work queue (keyed by name)
// never mixes two Services. Deletes and relabels pick a live Service from the history.

import type { History } from "./history.ts";
import { type KubeClient, KubeTimeout } from "./kube.ts";
import { stream } from "./random.ts";

export type CreateKind = "auto" | "plain" | "explicit";

/** How a create was answered. */
export type Answer =
  | { outcome: "admitted" }
  /** Refused by the webhook: the reason code its message starts with. */
  | { outcome: "refused"; reason: string }
  /** The API server could not get an answer from a webhook (failurePolicy Fail). */
  | { outcome: "failed calling webhook" }
  | { outcome: "HTTP 5xx"; status: number }
  | { outcome: "timeout" }
  /** Anything else (the API server's own validation, a dropped connection): a test bug. */
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

export interface Load {
  readonly creates: readonly Create[];
  deletes: number;
  relabels: number;
  /** Relabels and deletes that got neither a success nor a 404 (the Service gone already). */
  otherFailures: string[];
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
  const load: Load & { creates: Create[] } = {
    creates: [],
    deletes: 0,
    relabels: 0,
    otherFailures: [],
  };
  const path = `/api/v1/namespaces/${options.namespace}/services`;
  const client = async (index: number) => {
    const random = stream(options.seed, `client-${index}`);
    for (let n = 0; n < options.maxOperations && !options.signal.aborted; n++) {
      const live = [...options.history.live.values()];
      const operation =
        live.length === 0 ? "create" : random.weighted({ create: 5, delete: 3, relabel: 2 });
      if (operation === "create") {
        const kind = random.weighted<CreateKind>({ auto: 1, plain: 1, explicit: 1 });
        const name = `c${index}-${n}`;
        const address = random.pick(options.pool);
        const held = new Set(
          live.flatMap((s) => (s.type === "LoadBalancer" ? [...s.asked, ...s.served] : [])),
        );
        const poolHadFree = options.pool.some((ip) => !held.has(ip));
        const at = Date.now() - options.started;
        const answer = await create(options.client, path, manifest(kind, name, address));
        load.creates.push({ kind, name, at, poolHadFree, answer });
        continue;
      }
      const target = random.pick(live).name;
      const answer =
        operation === "delete"
          ? await options.client.send("DELETE", `${path}/${target}`).catch((err: Error) => err)
          : await options.client
              .send("PATCH", `${path}/${target}`, {
                metadata: { labels: { generation: String(n) } },
              })
              .catch((err: Error) => err);
      if (operation === "delete") load.deletes++;
      else load.relabels++;
      const ok = !(answer instanceof Error) && (answer.status < 300 || answer.status === 404);
      if (!ok) {
        const why =
          answer instanceof Error ? answer.message : `HTTP ${answer.status} ${answer.body}`;
        load.otherFailures.push(`${operation} ${target}: ${why.slice(0, 300)}`);
      }
    }
  };
  const clients = Array.from({ length: options.clients }, (_, index) => client(index));
  return { load, finished: Promise.all(clients).then(() => {}) };
}

async function create(client: KubeClient, path: string, body: object): Promise<Answer> {
  let answer: { status: number; body: string };
  try {
    answer = await client.send("POST", path, body);
  } catch (err) {
    if (err instanceof KubeTimeout) return { outcome: "timeout" };
    return { outcome: "other", detail: (err as Error).message };
  }
  if (answer.status === 201) return { outcome: "admitted" };
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
