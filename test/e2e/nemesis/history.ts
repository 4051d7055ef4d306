// Every change to the storm's Services, as a watch reports it, with the resourceVersion etcd gave
// it: the record the checks replay. One watch from the namespace's (empty) list on; when the API
// server ends it, another from the last resourceVersion seen, so nothing is missed (a gap, the
// watch's "too old" error, makes the history unusable, and says so).

import type { KubeClient } from "./kube.ts";

/** What the checks need of one version of a Service. */
export interface ServiceVersion {
  /** ADDED, MODIFIED or DELETED. */
  change: string;
  /** etcd's order (one store: resourceVersions of one resource compare as integers). */
  rv: number;
  uid: string;
  name: string;
  type: string;
  /** What it asks for: spec.loadBalancerIP and the MetalLB address annotations. */
  asked: string[];
  /** What MetalLB serves it: status.loadBalancer.ingress. */
  served: string[];
  /** Its MetalLB sharing key, "" for none. */
  sharingKey: string;
  /** `protocol/port` of each port. */
  ports: string[];
  /** MetalLB's backend key: "Cluster", or "Local" and the selector. */
  backendKey: string;
  /** Opted in to auto-assign. */
  autoAssign: boolean;
}

export interface History {
  /** Every version so far, in the order the watch delivered them. */
  readonly versions: readonly ServiceVersion[];
  /** The Services live as of the latest version seen, by uid. */
  readonly live: ReadonlyMap<string, ServiceVersion>;
  /** Why the history is incomplete, if it is. */
  readonly broken: string | undefined;
  stop(): Promise<void>;
}

interface ServiceObject {
  metadata: {
    name: string;
    uid: string;
    resourceVersion: string;
    annotations?: Record<string, string>;
  };
  spec?: {
    type?: string;
    loadBalancerIP?: string;
    externalTrafficPolicy?: string;
    selector?: Record<string, string>;
    ports?: { port: number; protocol?: string }[];
  };
  status?: { loadBalancer?: { ingress?: { ip?: string }[] } };
}

const ADDRESS_KEYS = ["metallb.io/loadBalancerIPs", "metallb.universe.tf/loadBalancerIPs"];
const SHARING_KEYS = ["metallb.io/allow-shared-ip", "metallb.universe.tf/allow-shared-ip"];
/** Bounds the re-watches of one run: the API server ends a watch after 30-60 min. */
const MAX_WATCHES = 1000;

export function serviceVersion(change: string, service: ServiceObject): ServiceVersion {
  const annotations = service.metadata.annotations ?? {};
  const spec = service.spec ?? {};
  const asked = [
    ...(spec.loadBalancerIP ? [spec.loadBalancerIP] : []),
    ...ADDRESS_KEYS.flatMap((key) => annotations[key]?.split(",").map((ip) => ip.trim()) ?? []),
  ];
  const local = spec.externalTrafficPolicy === "Local";
  return {
    change,
    rv: Number(service.metadata.resourceVersion),
    uid: service.metadata.uid,
    name: service.metadata.name,
    type: spec.type ?? "ClusterIP",
    asked: [...new Set(asked)],
    served: (service.status?.loadBalancer?.ingress ?? []).flatMap((entry) => entry.ip ?? []),
    sharingKey: SHARING_KEYS.map((key) => annotations[key]).find((key) => key) ?? "",
    ports: (spec.ports ?? []).map((port) => `${port.protocol ?? "TCP"}/${port.port}`),
    backendKey: local ? `Local ${JSON.stringify(spec.selector ?? {})}` : "Cluster",
    autoAssign: annotations["lb-ip-guard.dev/auto-assign"] === "true",
  };
}

/**
 * Starts recording the Services of `namespace`; resolves once it has listed them. The watch goes
 * on from the list's resourceVersion, so a change made after that is never missed.
 */
export async function recordHistory(client: KubeClient, namespace: string): Promise<History> {
  const path = `/api/v1/namespaces/${namespace}/services`;
  const listed = await client.send("GET", path);
  if (listed.status !== 200) throw new Error(`list ${path}: HTTP ${listed.status}`);
  const list = JSON.parse(listed.body) as {
    metadata: { resourceVersion: string };
    items: ServiceObject[];
  };
  const versions: ServiceVersion[] = [];
  const live = new Map<string, ServiceVersion>();
  const apply = (version: ServiceVersion) => {
    versions.push(version);
    if (version.change === "DELETED") live.delete(version.uid);
    else live.set(version.uid, version);
  };
  for (const item of list.items) apply(serviceVersion("ADDED", item));
  let resourceVersion = list.metadata.resourceVersion;
  let broken: string | undefined;
  const abort = new AbortController();
  const onEvent = (event: unknown) => {
    const { type, object } = event as { type: string; object: ServiceObject };
    if (type === "ERROR") {
      broken ??= `watch error: ${JSON.stringify(object)}`;
      return;
    }
    resourceVersion = object.metadata.resourceVersion;
    if (type !== "BOOKMARK") apply(serviceVersion(type, object));
  };
  const watching = (async () => {
    for (let watches = 0; !abort.signal.aborted && broken === undefined; watches++) {
      if (watches === MAX_WATCHES) {
        broken = `the API server ended ${MAX_WATCHES} watches`;
        break;
      }
      await client.watch(
        `${path}?watch=1&allowWatchBookmarks=true&resourceVersion=${resourceVersion}`,
        onEvent,
        abort.signal,
      );
      if (!abort.signal.aborted) await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();
  return {
    versions,
    live,
    get broken() {
      return broken;
    },
    stop: async () => {
      abort.abort();
      await watching;
    },
  };
}
