// `lb-ip-guard serve` replicas of one deployment against the harness's control plane, as the HA
// suite (ha.test.ts) and the nemesis (nemesis/) run them: sharing one serving certificate, with
// the fault handles a test needs (freeze, thaw, kill), and what the cluster records about them
// (the allocator Lease, the address claims).

import assert from "node:assert/strict";
import type { ControlPlane, ServingCertificate } from "./harness.ts";

export type AllocatorMode = "elected" | "claims";

/** The Lease the elected allocator holds (ADR 0012). */
export const ALLOCATOR_LEASE = "lb-ip-guard-allocator";
/** Selects the claim Leases among the webhook namespace's Leases. */
export const CLAIM_SELECTOR = "app.kubernetes.io/managed-by=lb-ip-guard";

export interface Replica {
  readonly name: string;
  /** Its identity in the allocator election. */
  readonly identity: string;
  readonly pid: number;
  readonly port: number;
  readonly metricsUrl: string;
  readonly caPem: string;
  /** Its JSON log records so far. */
  readonly records: () => Promise<Record<string, unknown>[]>;
  /** SIGSTOP: frozen mid-request, as a partitioned or stalled pod is. */
  freeze(): void;
  /** SIGCONT after a freeze. */
  thaw(): void;
  /** SIGKILL, and waits for the exit. */
  kill(): Promise<void>;
}

export interface ReplicaOptions {
  name: string;
  /** The webhook's own namespace (claims and the allocator Lease live there). */
  namespace: string;
  certificate: ServingCertificate;
  allocator: AllocatorMode;
  /** `--claim-grace`. */
  grace: string;
  /** More `serve` flags. */
  args?: readonly string[];
}

/** The harness's real `serve` (torn down with the control plane), with claims on a short grace. */
export async function startReplica(cp: ControlPlane, options: ReplicaOptions): Promise<Replica> {
  const { name, allocator } = options;
  const webhook = await cp.startWebhook({
    namespace: options.namespace,
    certificate: options.certificate,
    args: [
      `--claim-grace=${options.grace}`,
      "--claim-interval=1s",
      `--allocator=${allocator}`,
      ...(options.args ?? []),
    ],
  });
  const serving = (await webhook.records()).find((record) => record.allocator);
  const identity =
    allocator === "claims"
      ? name
      : (serving?.allocator as { elected?: string } | undefined)?.elected;
  assert.ok(identity, `${name}: no allocator identity in its startup record`);
  return {
    name,
    identity,
    pid: webhook.pid,
    port: Number(new URL(webhook.url).port),
    metricsUrl: webhook.metricsUrl,
    caPem: webhook.caPem,
    records: webhook.records,
    freeze: () => process.kill(-webhook.pid, "SIGSTOP"),
    thaw: () => process.kill(-webhook.pid, "SIGCONT"),
    kill: async () => {
      try {
        process.kill(-webhook.pid, "SIGKILL");
      } catch {}
      await webhook.stop();
    },
  };
}

/** The holder of the allocator Lease, as the apiserver has it ("" when there is none). */
export async function allocatorHolder(cp: ControlPlane, namespace: string): Promise<string> {
  const { stdout } = await cp.kubectl(
    [
      "get",
      "lease",
      ALLOCATOR_LEASE,
      "-n",
      namespace,
      "-o",
      "jsonpath={.spec.holderIdentity}",
      "--ignore-not-found",
    ],
    { allowFailure: true },
  );
  return stdout.trim();
}

export interface ClaimLease {
  /** `namespace/name` of the Service the claim is for. */
  holder: string;
  address: string;
  /** A retention: the holder gave the address up, and the claim keeps it for it (ADR 0018). */
  retained: boolean;
}

interface LeaseItem {
  metadata: { name: string; annotations?: Record<string, string> };
}

/**
 * Lease name → what it claims, for every claim in the webhook's namespace that holds its address;
 * with `retentions`, the claims that retain one for a Service gone (ADR 0018) too.
 */
export async function claimLeases(
  cp: ControlPlane,
  namespace: string,
  options: { readonly retentions?: boolean } = {},
): Promise<Map<string, ClaimLease>> {
  const { stdout } = await cp.kubectl([
    "get",
    "leases",
    "-n",
    namespace,
    "-l",
    CLAIM_SELECTOR,
    "-o",
    "json",
  ]);
  const leases = new Map<string, ClaimLease>();
  for (const item of (JSON.parse(stdout) as { items: LeaseItem[] }).items) {
    const retained = item.metadata.annotations?.["lb-ip-guard.dev/retained-until"] !== undefined;
    if (retained && options.retentions !== true) continue;
    leases.set(item.metadata.name, {
      holder: item.metadata.annotations?.["lb-ip-guard.dev/holder"] ?? "",
      address: item.metadata.annotations?.["lb-ip-guard.dev/address"] ?? "",
      retained,
    });
  }
  return leases;
}
