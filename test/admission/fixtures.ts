// Builders shared by the admission tests: pools from MetalLB config text, a context over them,
// AdmissionReviews around Service objects, and a JSONPatch applier to check patches by effect.

import assert from "node:assert/strict";
import type { AdmissionContext } from "../../src/admission/admit.ts";
import type { IPTarget, PatchOperation } from "../../src/admission/patch.ts";
import { type AdmissionRequest, parseAdmissionReview } from "../../src/admission/review.ts";
import { parseAddress } from "../../src/ipam/address.ts";
import { formatPoolConfigError } from "../../src/ipam/config/errors.ts";
import { poolsFromLegacyConfig } from "../../src/ipam/config/legacy.ts";
import { mergePools } from "../../src/ipam/config/merge.ts";
import { holderOf, type Policy, policyFor } from "../../src/ipam/decide.ts";
import type { PoolSet } from "../../src/ipam/pool.ts";
import type { ServiceObject } from "../../src/ipam/service.ts";
import { UsageIndex } from "../../src/ipam/usage.ts";

/** Two IPv4 pools and a dual-stack one; `default` as in the Kubeflow guide. */
export const POOLS_CONFIG = `
address-pools:
- name: default
  protocol: layer2
  addresses:
  - 192.168.35.100-192.168.35.110
- name: reserved
  protocol: layer2
  auto-assign: false
  addresses:
  - 10.20.0.0/29
- name: dual
  protocol: layer2
  auto-assign: false
  addresses:
  - 10.30.0.0/30
  - fd00:30::/64
`;

export function poolSet(config: string = POOLS_CONFIG): PoolSet {
  const found = poolsFromLegacyConfig(config, "test");
  assert.deepEqual(found.errors.map(formatPoolConfigError), []);
  const merged = mergePools(found.pools);
  assert.deepEqual(merged.errors.map(formatPoolConfigError), []);
  return merged.poolSet;
}

export function context(
  options: {
    pools?: PoolSet;
    usage?: UsageIndex;
    ready?: boolean;
    ipTarget?: IPTarget;
    loadBalancerClass?: string;
    policy?: Policy;
  } = {},
): AdmissionContext {
  return {
    view: {
      pools: options.pools ?? poolSet(),
      usage: options.usage ?? new UsageIndex(),
      namespaceLabels: (namespace) => ({ "kubernetes.io/metadata.name": namespace }),
    },
    ready: options.ready ?? true,
    policy: options.policy ?? policyFor({ loadBalancerClass: options.loadBalancerClass }),
    ipTarget: options.ipTarget ?? "spec",
  };
}

/** A UsageIndex where each Service holds what it requests or has in status. */
export function usageOf(services: readonly ServiceObject[]): UsageIndex {
  const usage = new UsageIndex();
  for (const service of services) {
    const texts = [
      ...(service.spec?.loadBalancerIP ? [service.spec.loadBalancerIP] : []),
      ...(service.status?.loadBalancer?.ingress ?? []).flatMap((entry) =>
        entry.ip ? [entry.ip] : [],
      ),
    ];
    const addresses = texts.map((text) => {
      const parsed = parseAddress(text);
      assert.ok(parsed.ok);
      return parsed.value;
    });
    const ref = `${service.metadata?.namespace}/${service.metadata?.name}`;
    usage.set(ref, holderOf(service, policyFor(), ref), addresses);
  }
  return usage;
}

export function service(
  name: string,
  options: {
    namespace?: string;
    type?: string;
    ip?: string;
    annotations?: Record<string, string>;
    labels?: Record<string, string>;
    spec?: Record<string, unknown>;
  } = {},
): ServiceObject {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: {
      name,
      namespace: options.namespace ?? "team-a",
      ...(options.annotations !== undefined && { annotations: options.annotations }),
      ...(options.labels !== undefined && { labels: options.labels }),
    },
    spec: {
      type: options.type ?? "LoadBalancer",
      ports: [{ protocol: "TCP", port: 80 }],
      selector: { app: name },
      ...(options.ip !== undefined && { loadBalancerIP: options.ip }),
      ...options.spec,
    },
  };
}

export const autoAssign = (name: string, extra: Record<string, string> = {}) =>
  service(name, {
    type: "ClusterIP",
    annotations: { "lb-ip-guard.dev/auto-assign": "true", ...extra },
  });

let counter = 0;

/** An AdmissionReview as the apiserver sends it (JSON value, not yet parsed). */
export function review(
  object: unknown,
  options: {
    operation?: string;
    oldObject?: unknown;
    dryRun?: boolean;
    kind?: { group: string; version: string; kind: string };
    name?: string;
    namespace?: string;
    subResource?: string;
  } = {},
): Record<string, unknown> {
  counter += 1;
  const metadata = (object as ServiceObject | null)?.metadata;
  return {
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid: `00000000-0000-4000-8000-${String(counter).padStart(12, "0")}`,
      kind: options.kind ?? { group: "", version: "v1", kind: "Service" },
      resource: { group: "", version: "v1", resource: "services" },
      name: options.name ?? metadata?.name,
      namespace: options.namespace ?? metadata?.namespace,
      operation: options.operation ?? "CREATE",
      ...(options.subResource !== undefined && { subResource: options.subResource }),
      userInfo: { username: "kubernetes-admin" },
      object,
      oldObject: options.oldObject ?? null,
      dryRun: options.dryRun ?? false,
    },
  };
}

/** Parses a review the way the server does, failing the test if it is refused. */
export function request(body: unknown): AdmissionRequest {
  const parsed = parseAdmissionReview(body);
  if (!parsed.ok) assert.fail(parsed.error);
  return parsed.value;
}

export { applyPatch } from "../../src/admission/patch.ts";

export function decodePatch(patch: string | undefined): PatchOperation[] {
  assert.ok(patch !== undefined, "expected a patch");
  const operations = JSON.parse(Buffer.from(patch, "base64").toString("utf8")) as PatchOperation[];
  for (const operation of operations) assert.equal(operation.op, "add");
  return operations;
}
