// A Service in front of the webhook's pods, as kube-proxy (iptables mode) and the endpoints
// controller make one, and no smarter: one URL whose new TCP connections go to a random ready
// endpoint, the bytes (TLS) passing through untouched. Endpoints come and go as the pods'
// readiness does, with deploy/deployment.yaml's readinessProbe (GET /readyz on the metrics port
// every 5 s, 2 s timeout, not ready after 2 failures, ready again after 1 success).
//
// What it does for a backend that is
// - frozen (SIGSTOP): nothing at first. The kernel still completes the handshakes of new
//   connections and buffers their bytes, so a new connection to it, and every open one, hangs
//   until the caller gives up (the API server: the webhook's 5 s timeout). Once two probes in a
//   row have timed out (9-14 s after the freeze) it leaves the endpoints, and new connections
//   avoid it; open connections stay with it (conntrack keeps them), hanging. Thawed, it rejoins
//   the endpoints at its next successful probe.
// - killed (SIGKILL): its open connections are reset by the kernel, and the proxy closes the
//   caller's side of each. It leaves the endpoints KILL_NOTICE_MS later (the kubelet seeing the
//   container exit, the endpoints controller and kube-proxy catching up); a new connection sent
//   to it until then is refused, and the proxy closes the caller's connection: kube-proxy does
//   not retry another endpoint either.
// A fresh replica joins the endpoints at its first successful probe, run as soon as it is added.

import { connect, createServer, type Server, type Socket } from "node:net";
import type { Random } from "./random.ts";

const PROBE_PERIOD_MS = 5000;
const PROBE_TIMEOUT_MS = 2000;
const FAILURE_THRESHOLD = 2;
/** From a container's death to its endpoint's removal everywhere: about a second. */
const KILL_NOTICE_MS = 1000;

export interface Backend {
  /** The replica's serving port on 127.0.0.1. */
  port: number;
  /** Its readiness endpoint (plain HTTP on the metrics port). */
  readyUrl: string;
}

export interface EndpointsProxy {
  /** https://127.0.0.1:PORT */
  readonly url: string;
  /** A new pod: probed at once, an endpoint once its probe passes. */
  add(id: string, backend: Backend): void;
  /** Its pod's container died: out of the endpoints KILL_NOTICE_MS from now, and probed no more. */
  gone(id: string): void;
  /** The ids of the ready endpoints, as new connections see them. */
  endpoints(): string[];
  /** New connections handed to each backend so far. */
  readonly served: ReadonlyMap<string, number>;
  close(): Promise<void>;
}

interface Pod extends Backend {
  ready: boolean;
  failures: number;
  timer?: NodeJS.Timeout;
  /** Its container died: probed no more. */
  dying: boolean;
  /** Out of the endpoints for good. */
  removed: boolean;
}

export async function startEndpointsProxy(random: Random): Promise<EndpointsProxy> {
  const pods = new Map<string, Pod>();
  const served = new Map<string, number>();
  const sockets = new Set<Socket>();
  let closed = false;

  const probe = async (id: string, pod: Pod) => {
    if (pod.dying || closed) return;
    const ok = await fetch(pod.readyUrl, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) })
      .then((response) => response.ok)
      .catch(() => false);
    if (pod.dying || closed) return;
    pod.failures = ok ? 0 : pod.failures + 1;
    if (ok) pod.ready = true;
    else if (pod.failures >= FAILURE_THRESHOLD) pod.ready = false;
    pod.timer = setTimeout(() => void probe(id, pod), PROBE_PERIOD_MS);
  };

  const track = (socket: Socket) => {
    socket.setNoDelay(true); // small writes go out at once, as they would without the proxy
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  };

  const server: Server = createServer((client) => {
    track(client);
    client.on("error", () => client.destroy());
    const ready = [...pods].filter(([, pod]) => pod.ready && !pod.removed);
    if (ready.length === 0) {
      client.destroy(); // no endpoints: kube-proxy rejects the connection
      return;
    }
    const [id, pod] = random.pick(ready);
    served.set(id, (served.get(id) ?? 0) + 1);
    const backend = connect(pod.port, "127.0.0.1");
    track(backend);
    backend.on("error", () => backend.destroy());
    backend.on("close", () => client.destroy());
    client.on("close", () => backend.destroy());
    client.pipe(backend).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;

  return {
    url: `https://127.0.0.1:${port}`,
    add(id, backend) {
      const pod: Pod = { ...backend, ready: false, failures: 0, dying: false, removed: false };
      pods.set(id, pod);
      void probe(id, pod);
    },
    gone(id) {
      const pod = pods.get(id);
      if (pod === undefined) return;
      pod.dying = true;
      clearTimeout(pod.timer);
      setTimeout(() => {
        pod.removed = true;
        pods.delete(id);
      }, KILL_NOTICE_MS);
    },
    endpoints: () => [...pods].filter(([, pod]) => pod.ready && !pod.removed).map(([id]) => id),
    served,
    close: () =>
      new Promise((resolve) => {
        closed = true;
        for (const pod of pods.values()) clearTimeout(pod.timer);
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
