// The allocator election's Lease in the API: `lb-ip-guard-allocator` in the webhook's namespace,
// written with the resourceVersion read as precondition, so of two replicas writing one version
// exactly one succeeds. Not labelled as a claim: the claims watch never sees it.

import { asRecord } from "../../base/objects.ts";
import { microTime } from "../claims/lease.ts";
import { KubeApiError, type KubeClient } from "../kube.ts";
import type { KubeObject } from "../reflector.ts";
import type { LeaseRecord, LeaseStore } from "./election.ts";

export const ALLOCATOR_LEASE = "lb-ip-guard-allocator";
/** Where the holder takes forwarded grants (`host:port`). */
const ENDPOINT_ANNOTATION = "lb-ip-guard.dev/allocator-endpoint";

export function allocatorLeaseStore(client: KubeClient, namespace: string): LeaseStore {
  const collection = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/leases`;
  const path = `${collection}/${ALLOCATOR_LEASE}`;
  return {
    async read(signal) {
      try {
        return parseAllocatorLease(await client.request("GET", path, { signal }));
      } catch (error) {
        if (error instanceof KubeApiError && error.status === 404) return undefined;
        throw error;
      }
    },
    async write(record, renewedAt, signal) {
      const body = allocatorLease(namespace, record, renewedAt);
      try {
        const written =
          record.version === ""
            ? await client.request("POST", collection, { body, signal })
            : await client.request("PUT", path, { body, signal });
        return String(asRecord(written.metadata).resourceVersion ?? "");
      } catch (error) {
        if (error instanceof KubeApiError && error.status === 409) return undefined;
        throw error;
      }
    },
  };
}

function allocatorLease(namespace: string, record: LeaseRecord, renewedAt: number): KubeObject {
  return {
    apiVersion: "coordination.k8s.io/v1",
    kind: "Lease",
    metadata: {
      name: ALLOCATOR_LEASE,
      namespace,
      ...(record.version !== "" && { resourceVersion: record.version }),
      labels: {
        "app.kubernetes.io/name": "lb-ip-guard",
        "app.kubernetes.io/component": "allocator",
      },
      annotations: { [ENDPOINT_ANNOTATION]: record.endpoint },
    },
    spec: {
      holderIdentity: record.holder,
      leaseDurationSeconds: Math.ceil(record.durationMs / 1000),
      acquireTime: microTime(record.acquiredAt),
      renewTime: microTime(renewedAt),
      leaseTransitions: record.transitions,
    },
  };
}

/** The election's view of the Lease; a Lease someone else shaped reads as released. */
function parseAllocatorLease(lease: KubeObject): LeaseRecord {
  const metadata = asRecord(lease.metadata);
  const spec = asRecord(lease.spec);
  const text = (value: unknown) => (typeof value === "string" ? value : "");
  const seconds = spec.leaseDurationSeconds;
  const acquired = Date.parse(text(spec.acquireTime));
  return {
    holder: text(spec.holderIdentity),
    endpoint: text(asRecord(metadata.annotations)[ENDPOINT_ANNOTATION]),
    durationMs: typeof seconds === "number" && seconds > 0 ? seconds * 1000 : 15_000,
    acquiredAt: Number.isNaN(acquired) ? 0 : acquired,
    transitions: typeof spec.leaseTransitions === "number" ? spec.leaseTransitions : 0,
    version: text(metadata.resourceVersion),
  };
}
