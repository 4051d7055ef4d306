// What the claims tests share: an in-memory Lease API with the API server's semantics
// (create-if-absent, resourceVersion preconditions on update and delete) and a watch that can be
// switched off, a claimer and its repair on it, and grants, holders and Services to claim for.

import { pino } from "pino";
import { Claimer, type ClaimerOptions } from "../../../src/cluster/claims/claimer.ts";
import { claimLease } from "../../../src/cluster/claims/lease.ts";
import { ClaimRepair } from "../../../src/cluster/claims/repair.ts";
import { KubeApiError, type KubeClient } from "../../../src/cluster/kube.ts";
import type { KubeObject } from "../../../src/cluster/reflector.ts";
import { ServiceUsage } from "../../../src/cluster/service-usage.ts";
import { policyFor } from "../../../src/ipam/decide.ts";
import type { ServiceObject } from "../../../src/ipam/service.ts";
import type { Holder } from "../../../src/ipam/usage.ts";
import { poolSet } from "../../admission/fixtures.ts";
import { address } from "../../ipam/fixtures.ts";

export const NAMESPACE = "lb-ip-guard";
export const PATH = `/apis/coordination.k8s.io/v1/namespaces/${NAMESPACE}/leases`;
export const policy = policyFor();
export const signal = new AbortController().signal;

export { address };

export function holder(ref: string, extra: Partial<Holder> = {}): Holder {
  return { ref, sharingKey: "", ports: ["TCP/80"], backendKey: "Cluster", ...extra };
}

export function lb(name: string, ip: string): ServiceObject {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace: "default" },
    spec: { type: "LoadBalancer", loadBalancerIP: ip, ports: [{ protocol: "TCP", port: 80 }] },
  };
}

const clone = <T>(value: T): T => structuredClone(value);

/** The Lease API of one namespace: what the claims use of it, with the API server's rules. */
export class FakeLeases {
  readonly leases = new Map<string, KubeObject>();
  readonly calls: string[] = [];
  /** Watch events go here (when set), as the claims watch would deliver them. */
  watcher: Claimer | undefined;
  /** Makes the next requests of a method fail with this status (undefined: no answer). */
  failing: { method: string; status: number | undefined } | undefined;
  #version = 100;

  request(
    method: string,
    path: string,
    options: { body?: unknown } = {},
  ): Promise<Record<string, unknown>> {
    this.calls.push(`${method} ${path.replace(PATH, "") || "/"}`);
    return Promise.resolve().then(() => this.#handle(method, path, options.body as KubeObject));
  }

  #handle(method: string, path: string, body: KubeObject): Record<string, unknown> {
    if (this.failing?.method === method) {
      throw new KubeApiError(`${method} ${path}: failing`, this.failing.status);
    }
    const name = path.startsWith(`${PATH}/`) ? path.slice(PATH.length + 1) : "";
    const existing = this.leases.get(name);
    const meta = (object: KubeObject | undefined) =>
      (object?.metadata ?? {}) as Record<string, unknown>;
    switch (method) {
      case "POST": {
        const created = meta(body).name as string;
        if (this.leases.has(created)) throw new KubeApiError("AlreadyExists", 409);
        return this.put(body, "ADDED");
      }
      case "GET":
        if (existing === undefined) throw new KubeApiError("NotFound", 404);
        return clone(existing);
      case "PUT":
        if (existing === undefined) throw new KubeApiError("NotFound", 404);
        if (meta(body).resourceVersion !== meta(existing).resourceVersion)
          throw new KubeApiError("Conflict", 409);
        return this.put(body, "MODIFIED");
      case "DELETE": {
        if (existing === undefined) throw new KubeApiError("NotFound", 404);
        const wanted = (body.preconditions as { resourceVersion?: string } | undefined)
          ?.resourceVersion;
        if (wanted !== undefined && wanted !== meta(existing).resourceVersion)
          throw new KubeApiError("Conflict", 409);
        this.leases.delete(name);
        this.watcher?.apply("DELETED", clone(existing));
        return {};
      }
      default:
        throw new Error(method);
    }
  }

  /** Stores a Lease (a new resourceVersion; creationTimestamp kept or now) and "watches" it. */
  put(object: KubeObject, type: "ADDED" | "MODIFIED" = "ADDED"): KubeObject {
    const metadata = object.metadata as Record<string, unknown>;
    const previous = this.leases.get(metadata.name as string)?.metadata as
      | Record<string, unknown>
      | undefined;
    this.#version += 1;
    const stored = {
      ...clone(object),
      metadata: {
        creationTimestamp: previous?.creationTimestamp ?? new Date().toISOString(),
        ...clone(metadata),
        resourceVersion: String(this.#version),
      },
    };
    this.leases.set(metadata.name as string, stored);
    this.watcher?.apply(type, clone(stored));
    return clone(stored);
  }

  /** A list (a quorum read) of the Leases whose labels match every `key=value` of the selector. */
  list(_path: string, options: { labelSelector?: string } = {}): Promise<{ items: KubeObject[] }> {
    this.calls.push("LIST /");
    const wanted = (options.labelSelector ?? "").split(",").filter((each) => each !== "");
    const items = [...this.leases.values()].filter((lease) => {
      const labels = ((lease.metadata as Record<string, unknown>).labels ?? {}) as Record<
        string,
        string
      >;
      return wanted.every((each) => {
        const [key = "", value] = each.split("=");
        return labels[key] === value;
      });
    });
    return Promise.resolve({ items: items.map(clone) });
  }

  annotationsOf(name: string): Record<string, string> {
    return ((this.leases.get(name)?.metadata as Record<string, unknown> | undefined)?.annotations ??
      {}) as Record<string, string>;
  }

  holderOf(name: string): string | undefined {
    const annotations = (this.leases.get(name)?.metadata as Record<string, unknown> | undefined)
      ?.annotations as Record<string, string> | undefined;
    return annotations?.["lb-ip-guard.dev/holder"];
  }
}

export function setup(
  options: {
    graceMs?: number;
    canCollect?: boolean;
    watch?: boolean;
    retainMs?: number;
    /** Another replica on the same Lease API. */
    api?: FakeLeases;
    quotaOf?: ClaimerOptions["quotaOf"];
    identity?: string;
  } = {},
) {
  const api = options.api ?? new FakeLeases();
  const usage = new ServiceUsage(policy, 30_000);
  const events: string[] = [];
  const canCollect = () => options.canCollect ?? true;
  const graceMs = options.graceMs ?? 60_000;
  const logger = pino({ level: "silent" });
  const onCollected = (count: number) => events.push(`collected ${count}`);
  const claimer = new Claimer({
    client: api as unknown as KubeClient,
    namespace: NAMESPACE,
    usage,
    pools: () => poolSet(),
    graceMs,
    canCollect,
    logger,
    identity: options.identity ?? "replica-test",
    onClaim: (result) => events.push(result),
    onCollected,
    ...(options.retainMs !== undefined && { retainMs: options.retainMs }),
    ...(options.quotaOf !== undefined && { quotaOf: options.quotaOf }),
  });
  const repair = new ClaimRepair({
    claimer,
    usage,
    pools: () => poolSet(),
    graceMs,
    intervalMs: 60_000,
    canCollect,
    logger,
    onCollected,
  });
  if (options.watch !== false) api.watcher = claimer;
  return { api, usage, claimer, repair, events };
}

export function grant(ref: string, ips: string[], extra: Partial<Holder> = {}) {
  return { ref, holder: holder(ref, extra), addresses: ips.map(address), pool: "default" };
}

/** A claim Lease written `ageMs` ago. */
export function oldLease(ip: string, ref: string, ageMs: number): KubeObject {
  const lease = claimLease(NAMESPACE, address(ip), holder(ref), "default", Date.now() - ageMs, "x");
  const metadata = lease.metadata as Record<string, unknown>;
  metadata.creationTimestamp = new Date(Date.now() - ageMs).toISOString();
  return lease;
}
