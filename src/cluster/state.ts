// Cluster state for `lb-ip-guard serve`: the pure core's pools, usage index and in-flight holds,
// kept in step with the API server by list+watch loops (Services, the legacy MetalLB ConfigMap,
// IPAddressPools, Namespaces, AddressReservations, and with claims on, the address claims: Leases
// in the webhook's namespace). See docs/decisions/0002-readiness-and-stale-state.md for what happens when a watch
// stays broken, and 0005-address-claims-with-leases.md for the claims.

import type { Logger } from "pino";
import type { AdmissionContext } from "../admission/admit.ts";
import type { Grant } from "../admission/holds.ts";
import type { IPTarget } from "../admission/patch.ts";
import type { AdmissionState, AllocatorPort, ClaimPort } from "../admission/ports.ts";
import { asRecord } from "../base/objects.ts";
import { type IPAddress, sameAddress } from "../ipam/address.ts";
import { firstFreeInPool } from "../ipam/allocator.ts";
import { formatPoolConfigError } from "../ipam/config/errors.ts";
import { parseQuota, QUOTA_ANNOTATION } from "../ipam/decide/quota.ts";
import type { ClusterView, Policy } from "../ipam/decide.ts";
import type { Labels } from "../ipam/labels.ts";
import type { Pool } from "../ipam/pool.ts";
import { ReservationIndex } from "../ipam/reservations.ts";
import { type ServiceObject, serviceRef } from "../ipam/service.ts";
import { namespaceOf } from "../ipam/usage.ts";
import {
  ElectedAllocator,
  type Forwarder,
  type LoanDesk,
  type LoanOptions,
} from "./allocator/elected.ts";
import { AllocatorElection } from "./allocator/election.ts";
import { allocatorLeaseStore } from "./allocator/lease-store.ts";
import { Claimer, type ClaimMetric } from "./claims/claimer.ts";
import { CLAIM_SELECTOR, leaseName } from "./claims/lease.ts";
import { ClaimRepair } from "./claims/repair.ts";
import { GrantEvents, type GrantRecord, grantEvent } from "./grant-events.ts";
import { KubeClient, loadKubeConfig } from "./kube.ts";
import { PoolSources } from "./pool-sources.ts";
import {
  type KubeObject,
  Reflector,
  type ReflectorOptions,
  type RetryOptions,
} from "./reflector.ts";
import { ClusterReservations } from "./reservations.ts";
import { clusterResources, type Resource } from "./resources.ts";
import { ServiceUsage } from "./service-usage.ts";

export interface ClusterStateOptions {
  /** A kubeconfig file; else KUBECONFIG, ~/.kube/config, or the in-cluster service account. */
  readonly kubeconfig?: string;
  /** Where MetalLB runs: its ConfigMap `config` and its IPAddressPools are read there. */
  readonly metallbNamespace: string;
  /** Pools given on the command line (--pools); they come first when names or ranges clash. */
  readonly staticPools: readonly Pool[];
  readonly policy: Policy;
  /** Where the mutation writes addresses (--ip-target); default "spec", as in the contract. */
  readonly ipTarget?: IPTarget;
  /** How long a granted address stays held when its Service never shows up. */
  readonly holdTtlMs: number;
  readonly logger: Logger;
  /** Backoff of failing lists and watches; default 1 s doubling to 30 s, jittered. */
  readonly retry?: RetryOptions;
  /** How often expired holds are dropped; default 2 s. */
  readonly expireIntervalMs?: number;
  /** Address claims shared by all replicas (Leases); without them, this process decides alone. */
  readonly claims?: ClaimsConfig;
}

export interface ClaimsConfig {
  /** The webhook's own namespace, where the Leases live. */
  readonly namespace: string;
  /** A claim whose holder does not hold its address is deleted after this long (--claim-grace). */
  readonly graceMs: number;
  /** How often claims are collected and Services without one adopted; default 10 s. */
  readonly intervalMs?: number;
  /** How long a released address's claim retains it for its Service (`--retain`); 0: off. */
  readonly retainMs?: number;
  readonly onClaim?: (result: ClaimMetric) => void;
  readonly onCollected?: (count: number) => void;
  /**
   * One elected replica grants, the others forward to it, and claims follow the answer (ADR
   * 0012); without it, every replica grants and claims before answering (ADR 0005).
   */
  readonly elected?: ElectedConfig;
}

export interface ElectedConfig {
  /** Unique per process. */
  readonly identity: string;
  /** Where this replica takes forwarded grants (`host:port`), written on the Lease it holds. */
  readonly endpoint: string;
  readonly forward: Forwarder;
  /** The loan exchange with the allocator, its recalls and nudges (ADR 0015). */
  readonly exchange: LoanOptions["exchange"];
  readonly recall: LoanOptions["recall"];
  readonly nudge: LoanOptions["nudge"];
}

export interface ClusterState extends AdmissionState {
  /**
   * True once every collection was listed (AddressReservations count as listed while their CRD is
   * not installed); it stays true (see ADR 0002).
   */
  readonly ready: boolean;
  /** The collections whose list/watch is failing right now, with the last error (for /readyz). */
  readonly failing: readonly { readonly resource: string; readonly error: string }[];
  /** Present when claims are configured. */
  readonly claims?: ClaimPort;
  /** Present with an elected allocator. */
  readonly allocator?: AllocatorPort;
  /** Present with an elected allocator: what its peer port answers of loans. */
  readonly loans?: LoanDesk;
  /** Ends the watches and the hold timer. */
  stop(): Promise<void>;
}

/**
 * Loads the kubeconfig (throwing KubeConfigError when there is none) and starts the watches.
 * Resolves at once: readiness follows the first full sync, and an unreachable API server is
 * retried forever, logged one line per failure.
 */
export async function startClusterState(options: ClusterStateOptions): Promise<ClusterState> {
  const client = new KubeClient(loadKubeConfig(options.kubeconfig));
  const logger = options.logger.child({ component: "cluster-state" });
  const resources = clusterResources(options.metallbNamespace);
  const expireIntervalMs = options.expireIntervalMs ?? 2000;

  const usage = new ServiceUsage(options.policy, options.holdTtlMs);
  const reservations = new ReservationIndex();
  let namespaceLabels = new Map<string, Labels>();
  let quotas = new Map<string, number>();
  let poolsShown = "";
  const pools = new PoolSources({
    staticPools: options.staticPools,
    metallbNamespace: options.metallbNamespace,
    onRejected: ({ source, errors, kept }) => {
      const keeping =
        kept.length === 0
          ? "no earlier good version: it contributes no pools"
          : `keeping its last good pools: ${kept.join(", ")}`;
      for (const error of errors) {
        logger.error(
          { source, pool: error.pool, offending: error.offending },
          `${formatPoolConfigError(error)} (${source} refused; ${keeping})`,
        );
      }
    },
    onConflicts: (errors) => {
      for (const error of errors) {
        logger.error({ source: error.origin, pool: error.pool }, formatPoolConfigError(error));
      }
    },
  });
  const poolsChanged = () => {
    const shown = pools.poolSet.pools.map((pool) => `${pool.name} (${pool.origin})`).join(", ");
    if (shown === poolsShown) return;
    poolsShown = shown;
    logger.info(
      { pools: pools.poolSet.pools.map((pool) => pool.name) },
      `pools: ${shown || "none"}`,
    );
  };

  const reflector = (resource: Resource, handlers: Pick<ReflectorOptions, "replace" | "apply">) =>
    new Reflector({
      ...resource,
      client,
      logger,
      ...(options.retry === undefined ? {} : { retry: options.retry }),
      ...handlers,
    });

  let claims: { readonly claimer: Claimer; readonly repair: ClaimRepair } | undefined;
  const events = new GrantEvents(client, logger);
  // status.holder of each reservation, from one writer: the elected allocator, or with claims
  // every replica (the writes are conditional and skip what is already so).
  const reserved = new ClusterReservations({
    client,
    index: reservations,
    usage: () => usage.index,
    writes: () => isReady() && (elected === undefined || elected.election.leading()),
    logger,
  });
  const services = reflector(resources.services, {
    replace: (items) => {
      const now = Date.now();
      const released = usage.replaceAll(items as readonly ServiceObject[], now);
      for (const [ref, addresses] of released) claims?.repair.serviceReleased(ref, addresses, now);
      reserved.changed();
    },
    apply: (type, object) => {
      reserved.changed();
      const service = object as ServiceObject;
      // With an elected allocator the replica that granted is the one holding the grant (its
      // claim may come after the Service); read before the Service's arrival releases the hold.
      // With loans (ADR 0015) a follower granted it, and writes the Event too.
      const held =
        type === "ADDED" && elected !== undefined
          ? (usage.heldGrant(serviceRef(service)) ?? elected.port.lentGrant(serviceRef(service)))
          : undefined;
      const now = Date.now();
      const released = type === "DELETED" ? usage.remove(service, now) : usage.upsert(service, now);
      if (type === "ADDED") elected?.port.appeared(serviceRef(service));
      if (released.length > 0) {
        claims?.repair.serviceReleased(serviceRef(service), released, now);
        elected?.port.released();
      }
      if (type === "ADDED" && claims !== undefined) {
        const { claimer } = claims;
        const grantOf = (address: IPAddress): GrantRecord | undefined =>
          held === undefined
            ? claimer.claimNamed(leaseName(address))
            : held.addresses.some((each) => sameAddress(each, address))
              ? {
                  holder: { ref: held.ref },
                  claimedBy: claimer.identity,
                  pool: held.pool ?? "",
                  ...(held.origin !== undefined && { origin: held.origin }),
                }
              : undefined;
        const event = grantEvent(object, options.policy, grantOf, claimer.identity, Date.now());
        if (event !== undefined) void events.record(event);
      }
    },
  });
  // Only the pool sources the guarded release reads: a stray IPAddressPool beside MetalLB v0.11
  // (or a leftover ConfigMap beside v0.13 and later) holds no address MetalLB would hand out.
  const reads = options.policy.reads;
  const configMap = !reads.legacyConfigMap
    ? undefined
    : reflector(resources.configMap, {
        replace: (items) => {
          pools.setConfigMap(items.find((item) => nameOf(item) === "config"));
          poolsChanged();
        },
        apply: (type, object) => {
          if (nameOf(object) !== "config") return;
          pools.setConfigMap(type === "DELETED" ? undefined : object);
          poolsChanged();
        },
      });
  const ipAddressPools = !reads.ipAddressPools
    ? undefined
    : reflector(resources.ipAddressPools, {
        replace: (items) => {
          pools.replaceIPAddressPools(items);
          poolsChanged();
        },
        apply: (type, object) => {
          if (type === "DELETED") pools.deleteIPAddressPool(object);
          else pools.putIPAddressPool(object);
          poolsChanged();
        },
      });
  const namespaces = reflector(resources.namespaces, {
    replace: (items) => {
      namespaceLabels = new Map(items.map((item) => [nameOf(item), labelsOf(item)]));
      quotas = new Map(
        items.flatMap((item) => {
          const quota = quotaOfNamespace(item);
          return quota === undefined ? [] : [[nameOf(item), quota] as const];
        }),
      );
    },
    apply: (type, object) => {
      const quota = type === "DELETED" ? undefined : quotaOfNamespace(object);
      if (type === "DELETED") namespaceLabels.delete(nameOf(object));
      else namespaceLabels.set(nameOf(object), labelsOf(object));
      if (quota === undefined) quotas.delete(nameOf(object));
      else quotas.set(nameOf(object), quota);
    },
  });
  const reservationWatch = reflector(resources.reservations, {
    replace: (items) => reserved.replace(items),
    apply: (type, object) => reserved.apply(type, object),
  });
  const reflectors = [services, configMap, ipAddressPools, namespaces, reservationWatch].filter(
    (each): each is Reflector => each !== undefined,
  );
  let leases: Reflector | undefined;
  let elected:
    | { readonly election: AllocatorElection; readonly port: ElectedAllocator }
    | undefined;
  if (options.claims !== undefined) {
    const config = options.claims;
    const intervalMs = config.intervalMs ?? 10_000;
    // Judging a holder gone needs caches that are current: synced, and both watches healthy for
    // an interval (so a backlog after a reconnect has arrived).
    const current = (each: Reflector | undefined) => {
      const since = each?.healthySince;
      return since !== undefined && Date.now() - since >= Math.min(intervalMs, 2000);
    };
    const canCollect = () => isReady() && current(services) && current(leases);
    const onCollected = config.onCollected !== undefined && { onCollected: config.onCollected };
    const claimer = new Claimer({
      client,
      namespace: config.namespace,
      usage,
      pools: () => pools.poolSet,
      graceMs: config.graceMs,
      canCollect,
      logger,
      ...(config.onClaim !== undefined && { onClaim: config.onClaim }),
      ...onCollected,
      ...(config.retainMs !== undefined && { retainMs: config.retainMs }),
      // The elected allocator serializes grants itself; claims written after its answers are
      // no place to refuse one.
      ...(config.elected === undefined && {
        quotaOf: (namespace: string) => {
          const quota = quotas.get(namespace);
          if (quota === undefined) return undefined;
          const beside = [...usage.index.entries()].flatMap(([owner, holder, addresses]) =>
            owner === holder.ref && namespaceOf(owner) === namespace ? addresses : [],
          );
          for (const reservation of reservations.inNamespace(namespace)) {
            beside.push(...reservation.addresses);
          }
          return { quota, beside };
        },
      }),
    });
    const repair = new ClaimRepair({
      claimer,
      usage,
      pools: () => pools.poolSet,
      graceMs: config.graceMs,
      intervalMs,
      canCollect,
      logger,
      ...onCollected,
    });
    claims = { claimer, repair };
    leases = new Reflector({
      name: `address claims (Leases in ${config.namespace})`,
      path: claimer.path,
      labelSelector: CLAIM_SELECTOR,
      client,
      logger,
      ...(options.retry === undefined ? {} : { retry: options.retry }),
      // A claim is a holding too: one collected or turned into a retention may free a
      // reservation's address, which the status says without waiting for the next resync.
      replace: (items) => {
        claimer.replace(items);
        reserved.changed();
      },
      apply: (type, object) => {
        claimer.apply(type, object);
        reserved.changed();
      },
    });
    reflectors.push(leases);
    if (config.elected !== undefined) {
      const { identity, endpoint, forward, exchange, recall, nudge } = config.elected;
      const claimsWatch = leases;
      const election = new AllocatorElection({
        store: allocatorLeaseStore(client, config.namespace),
        identity,
        endpoint,
        logger,
        // Quorum reads: every Service the previous allocator admitted that the API server
        // persisted, and every claim it wrote, are in this replica's state before it grants.
        handOver: async () => {
          await Promise.all([services.relist(), claimsWatch.relist()]);
        },
      });
      elected = {
        election,
        port: new ElectedAllocator({
          election,
          forward,
          claims: claimer,
          held: (grant) => usage.heldGrant(grant.ref) !== undefined,
          logger,
          loans: {
            endpoint,
            exchange,
            recall,
            nudge,
            borrows: (grant) =>
              !quotas.has(namespaceOf(grant.ref)) &&
              reservations.inNamespace(namespaceOf(grant.ref)).length === 0 &&
              grant.addresses.every(
                (address) => usage.retained.retainedFor(grant.ref, address.family).length === 0,
              ),
            state: {
              lowestFree: (name, family) => {
                const pool = pools.poolSet.pools.find((each) => each.name === name);
                return pool === undefined
                  ? undefined
                  : firstFreeInPool(pool, family, usage.index, undefined, {
                      // Lent ahead for a Service not known yet: no resting, retained or
                      // reserved address.
                      sets: (each) => [usage.retained.values(each), reservations.values(each)],
                      skipped: (each, value) => usage.resting.keepsFrom(each, value, undefined),
                    });
              },
              // A spent loan reported after its Service appeared needs no hold: the Service
              // holds its addresses itself, and a hold would outlive it if it went at once. (A
              // hold already there for the same addresses keeps its expiry either way.)
              hold: (grant) => {
                if (!grant.addresses.every((address) => usage.isHeldBy(grant.ref, address))) {
                  usage.hold(grant, Date.now());
                }
              },
              release: (ref) => usage.release(ref),
            },
          },
        }),
      };
    }
  }

  // A hold covers the time until its Service shows up in the watch. While the Services watch is
  // broken (and one interval after it recovers, for the backlog to arrive) nothing can show up,
  // so nothing expires either.
  const timer = setInterval(() => {
    const now = Date.now();
    const since = services.healthySince;
    if (since === undefined || now - since < expireIntervalMs) return;
    const dropped = usage.expire(now);
    if (dropped > 0) {
      logger.info(
        { dropped },
        `${dropped} in-flight hold(s) expired: their Services never appeared`,
      );
    }
  }, expireIntervalMs);
  timer.unref();

  let stopped = false;
  let readyLogged = false;
  for (const each of reflectors) each.start();
  elected?.election.start();
  claims?.repair.start();
  reserved.start();
  logger.info(
    {
      server: client.server,
      metallbNamespace: options.metallbNamespace,
      claimsNamespace: options.claims?.namespace,
    },
    `watching ${reflectors.map((each) => each.name).join(", ")} at ${client.server}`,
  );

  const isReady = () => {
    if (stopped || !reflectors.every((each) => each.synced)) return false;
    if (elected !== undefined && !elected.election.settled) return false;
    if (!readyLogged) {
      readyLogged = true;
      logger.info({ pools: pools.poolSet.size }, "cluster state synced: ready");
    }
    return true;
  };

  return {
    get ready() {
      return isReady();
    },
    get failing() {
      return reflectors.flatMap((each) =>
        each.failing === undefined ? [] : [{ resource: each.name, error: each.failing }],
      );
    },
    context(): AdmissionContext {
      const labels = namespaceLabels;
      const view: ClusterView = {
        pools: pools.poolSet,
        usage: usage.index,
        resting: usage.resting,
        retained: usage.retained,
        reservations,
        quotaOf: (namespace) => quotas.get(namespace),
        // Kubernetes (1.21+) labels every Namespace with its own name; a Namespace created a
        // moment ago may not be in the cache yet, but that label is certain.
        namespaceLabels: (namespace) => ({
          ...labels.get(namespace),
          "kubernetes.io/metadata.name": namespace,
        }),
      };
      return {
        view,
        ready: isReady(),
        policy: options.policy,
        ipTarget: options.ipTarget ?? "spec",
      };
    },
    record(grant: Grant, now: number): void {
      usage.hold(grant, now);
    },
    ...(claims !== undefined && { claims: claims.claimer }),
    ...(elected !== undefined && { allocator: elected.port, loans: elected.port }),
    async stop(): Promise<void> {
      stopped = true;
      // First the last grants' claims, for the next allocator's relist to see them; then the
      // Lease given up, so that it takes over at once.
      elected?.port.stop();
      await elected?.port.flush();
      await elected?.election.stop();
      clearInterval(timer);
      await reserved.stop();
      await claims?.repair.stop();
      await Promise.all(reflectors.map((each) => each.stop()));
    },
  };
}

function metadataOf(object: KubeObject): Record<string, unknown> {
  return asRecord(object.metadata);
}

function nameOf(object: KubeObject): string {
  const name = metadataOf(object).name;
  return typeof name === "string" ? name : "";
}

/** A Namespace's address quota (`lb-ip-guard.dev/address-quota`), when it sets a valid one. */
function quotaOfNamespace(object: KubeObject): number | undefined {
  return parseQuota(asRecord(metadataOf(object).annotations)[QUOTA_ANNOTATION]);
}

function labelsOf(object: KubeObject): Labels {
  return asRecord(metadataOf(object).labels) as Labels;
}
