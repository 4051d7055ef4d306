import {
  FAMILIES,
  type Family,
  formatAddress,
  type IPAddress,
  isBuggyIPv4,
  parseAddress,
} from "./address.ts";
import { firstFreeInPool, freeRuns } from "./allocator.ts";
import { formatSelector, type Labels } from "./labels.ts";
import {
  formatMetalLBVersion,
  type MetalLBVersion,
  type ReleaseReads,
  readsOf,
} from "./metallb-version.ts";
import {
  describePool,
  type Pool,
  type PoolSet,
  poolAllowsService,
  type ServiceIdentity,
} from "./pool.ts";
import { formatRange, rangeContains } from "./range.ts";
import {
  ANNOTATION,
  addressRequest,
  annotations,
  backendKey,
  declaredFamilies,
  firstAnnotation,
  ignoredKey,
  isLoadBalancer,
  portKeys,
  type ServiceObject,
  serviceRef,
  sharingKey,
  statusAddresses,
  wantsAutoAssign,
} from "./service.ts";
import type { Holder, UsageIndex } from "./usage.ts";

/** The reason codes of the core's refusals (the admission layer adds `NotReady`). */
export type ReasonCode =
  | "InvalidAddress"
  | "ConflictingFields"
  | "FamilyMismatch"
  | "NotInAnyPool"
  | "PoolNotFound"
  | "PoolMismatch"
  | "PoolNotAllowed"
  | "AddressInUse"
  | "SharingConflict"
  | "PoolExhausted"
  | "IgnoredAnnotation";

export type Decision =
  | {
      readonly kind: "allowed";
      readonly addresses: readonly IPAddress[];
      readonly pool: string | undefined;
      readonly message: string;
      readonly warnings: readonly string[];
    }
  | {
      /** The Service gets `addresses` written and becomes a LoadBalancer (the mutation). */
      readonly kind: "assigned";
      readonly addresses: readonly IPAddress[];
      readonly pool: string;
      readonly message: string;
      readonly warnings: readonly string[];
    }
  | {
      readonly kind: "denied";
      readonly reason: ReasonCode;
      readonly addresses: readonly IPAddress[];
      readonly pool: string | undefined;
      readonly message: string;
    };

export type Denial = Extract<Decision, { kind: "denied" }>;

/** What the decision reads of the cluster: pools, who holds what, namespace labels. */
export interface ClusterView {
  readonly pools: PoolSet;
  readonly usage: UsageIndex;
  namespaceLabels(namespace: string): Labels;
}

export interface Policy {
  /** The `loadBalancerClass` MetalLB answers to; undefined means Services without a class. */
  readonly loadBalancerClass: string | undefined;
  /** The MetalLB keys the guarded release reads (all of them when the release is unknown). */
  readonly reads: ReleaseReads;
  /**
   * Which Services that request no address lb-ip-guard allocates: `all` LoadBalancer Services
   * (and annotated ones), so MetalLB only ever announces what was granted here; or only the
   * `annotated` ones, leaving the rest to MetalLB, whose lowest-free pick races with ours.
   */
  readonly allocation: "all" | "annotated";
}

/**
 * The policy for a MetalLB release (unknown: every key read), with the contract's defaults: no
 * loadBalancerClass, and every Service that requests no address allocated here.
 */
export function policyFor(
  options: {
    readonly loadBalancerClass?: string | undefined;
    readonly release?: MetalLBVersion | undefined;
    readonly allocation?: Policy["allocation"];
  } = {},
): Policy {
  return {
    loadBalancerClass: options.loadBalancerClass,
    reads: readsOf(options.release),
    allocation: options.allocation ?? "all",
  };
}

/** Whether this tool has anything to say about the Service at all. */
export function isInScope(service: ServiceObject, policy: Policy): boolean {
  // MetalLB run with a class handles only that class; run without one, only classless Services.
  // Before v0.13 it knows no classes and serves them all.
  const serviceClass = service.spec?.loadBalancerClass ?? undefined;
  if (policy.reads.filtersByClass && serviceClass !== policy.loadBalancerClass) return false;
  return isLoadBalancer(service) || wantsAutoAssign(service);
}

/**
 * Decides one Service against the pools and the addresses held by others. `ref` identifies the
 * Service as a holder (its own holdings never conflict with it); callers pass a unique one for
 * objects that have only a generateName.
 */
export function decide(
  service: ServiceObject,
  view: ClusterView,
  policy: Policy,
  ref: string = serviceRef(service),
): Decision {
  if (!isInScope(service, policy)) {
    const serviceClass = service.spec?.loadBalancerClass ?? undefined;
    const why =
      serviceClass !== policy.loadBalancerClass
        ? serviceClass === undefined
          ? `it has no loadBalancerClass; MetalLB handles class "${policy.loadBalancerClass}" only`
          : `loadBalancerClass "${serviceClass}" is not MetalLB's`
        : "not a LoadBalancer Service and no auto-assign annotation";
    return {
      kind: "allowed",
      addresses: [],
      pool: undefined,
      message: `${ref}: ${why}; nothing to check`,
      warnings: [],
    };
  }
  const context: Context = {
    ref,
    service,
    view,
    policy,
    identity: {
      namespace: service.metadata?.namespace ?? "default",
      labels: service.metadata?.labels ?? {},
      namespaceLabels: view.namespaceLabels(service.metadata?.namespace ?? "default"),
    },
    warnings: deprecationWarnings(service, policy.reads),
  };

  const ignored = ignoredKey(service, policy.reads);
  if (ignored !== undefined) {
    return deny(
      "IgnoredAnnotation",
      `${ref} sets ${ignored.key}, which ${metallb(policy.reads)} does not read: it would serve the Service as if the annotation were not there; use ${ignored.instead}`,
    );
  }
  const request = addressRequest(service, policy.reads);
  if (request.source === "both") {
    return deny(
      "ConflictingFields",
      `${ref} sets both spec.loadBalancerIP and the ${request.key} annotation; MetalLB refuses a Service with both: keep only the annotation`,
    );
  }
  const named = namedPool(context);
  if (named !== undefined && "kind" in named) return named;

  if (request.source !== "none") {
    const where = request.source === "spec" ? "spec.loadBalancerIP" : `annotation ${request.key}`;
    return checkRequested(context, request.texts, where, named?.pool);
  }
  // What MetalLB already serves stays where it is: a Service is never moved to another address,
  // not even by a `kubectl replace` of the auto-assign ClusterIP manifest it was created from
  // (an UPDATE carries the stored status).
  const current = statusAddresses(service);
  if ((isLoadBalancer(service) || wantsAutoAssign(service)) && current.length > 0) {
    return checkRequested(context, current, "status.loadBalancer.ingress", named?.pool);
  }
  if (wantsAutoAssign(service) || (isLoadBalancer(service) && policy.allocation === "all")) {
    return allocate(context, named?.pool);
  }
  if (named !== undefined && !poolAllowsService(named.pool, context.identity))
    return notAllowed(context, named.pool);
  const from = named === undefined ? "" : ` from pool "${named.pool.name}"`;
  return {
    kind: "allowed",
    addresses: [],
    pool: named?.pool.name,
    message: `${ref} requests no address; MetalLB assigns one${from}`,
    warnings: context.warnings,
  };
}

export function holderOf(
  service: ServiceObject,
  policy: Policy,
  ref: string = serviceRef(service),
): Holder {
  return {
    ref,
    sharingKey: sharingKey(service, policy.reads),
    ports: portKeys(service),
    backendKey: backendKey(service),
  };
}

/**
 * The addresses a Service holds as the cluster sees it: what it requests (when parseable) and
 * what MetalLB already assigned in status. Out-of-scope Services hold nothing.
 */
export function holdingsOf(service: ServiceObject, policy: Policy): readonly IPAddress[] {
  if (!isInScope(service, policy) || !isLoadBalancer(service)) return [];
  const request = addressRequest(service, policy.reads);
  const requested =
    request.source === "spec" || request.source === "annotation" ? request.texts : [];
  const specIP = request.source === "both" ? [service.spec?.loadBalancerIP ?? ""] : [];
  return [...requested, ...specIP, ...statusAddresses(service)].flatMap((text) => {
    const parsed = parseAddress(text);
    return parsed.ok ? [parsed.value] : [];
  });
}

interface Context {
  readonly ref: string;
  readonly service: ServiceObject;
  readonly view: ClusterView;
  readonly policy: Policy;
  readonly identity: ServiceIdentity;
  readonly warnings: readonly string[];
}

function deny(
  reason: ReasonCode,
  message: string,
  addresses: readonly IPAddress[] = [],
  pool?: Pool,
): Denial {
  return { kind: "denied", reason, addresses, pool: pool?.name, message };
}

function namedPool(context: Context): { readonly pool: Pool } | Denial | undefined {
  const annotation = firstAnnotation(context.service, context.policy.reads.addressPool);
  // An empty value names no pool, in MetalLB too (and hides a legacy key behind it).
  if (annotation === undefined || annotation.value === "") return undefined;
  const pool = context.view.pools.byName(annotation.value);
  if (pool !== undefined) return { pool };
  const known = context.view.pools.pools.map((candidate) => candidate.name);
  return deny(
    "PoolNotFound",
    `${context.ref} names pool "${annotation.value}" (${annotation.key}), which does not exist; known pools: ${known.length > 0 ? known.join(", ") : "none"}`,
  );
}

function checkRequested(
  context: Context,
  texts: readonly string[],
  where: string,
  named: Pool | undefined,
): Decision {
  const { ref, view } = context;
  const addresses: IPAddress[] = [];
  for (const text of texts) {
    const parsed = parseAddress(text);
    if (!parsed.ok) return deny("InvalidAddress", `${ref} requests ${parsed.error} (in ${where})`);
    addresses.push(parsed.value);
  }
  const familyProblem = familyMismatch(context, addresses);
  if (familyProblem !== undefined)
    return deny(
      "FamilyMismatch",
      `${ref} requests ${list(addresses)}: ${familyProblem}`,
      addresses,
    );

  const pools: Pool[] = [];
  for (const address of addresses) {
    const pool = named ?? view.pools.poolOf(address.family, address.value);
    if (pool === undefined) {
      return deny(
        "NotInAnyPool",
        `${ref} requests ${formatAddress(address)}, which lies in no pool; ${poolsHint(view.pools, address.family)}`,
        addresses,
      );
    }
    if (!pool.ranges.some((range) => rangeContains(range, address.family, address.value))) {
      return deny(
        "PoolMismatch",
        `${ref} requests ${formatAddress(address)}, which is not in the pool it names: ${describePool(pool)}; ${freeHint(pool, view.usage)}`,
        addresses,
        pool,
      );
    }
    // MetalLB's poolFor skips .0 and .255 of such a pool: to MetalLB the address is in no pool.
    if (pool.avoidBuggyIPs && address.family === "IPv4" && isBuggyIPv4(address.value)) {
      return deny(
        named === undefined ? "NotInAnyPool" : "PoolMismatch",
        `${ref} requests ${formatAddress(address)}, which pool "${pool.name}" never hands out: it has avoidBuggyIPs, so MetalLB skips addresses ending in .0 and .255; ${freeHint(pool, view.usage)}`,
        addresses,
        pool,
      );
    }
    pools.push(pool);
  }
  const [pool, other] = pools;
  if (pool === undefined)
    return deny("InvalidAddress", `${ref} requests an empty address list (in ${where})`);
  if (other !== undefined && other !== pool) {
    return deny(
      "PoolMismatch",
      `${ref} requests ${list(addresses)} from two pools ("${pool.name}", "${other.name}"); dual-stack addresses must come from one pool`,
      addresses,
      pool,
    );
  }
  if (!poolAllowsService(pool, context.identity)) return notAllowed(context, pool, addresses);
  for (const address of addresses) {
    const conflict = findConflict(context, address, pool);
    if (conflict !== undefined) return conflict;
  }
  return isLoadBalancer(context.service)
    ? new GrantDecision("allowed", ref, "may use", addresses, pool.name, context.warnings)
    : new GrantDecision(
        "assigned",
        ref,
        "becomes a LoadBalancer with",
        addresses,
        pool.name,
        context.warnings,
      );
}

/**
 * A decision that grants addresses. Its message is formatted only when read: the webhook never
 * reads it, and formatting addresses is most of what deciding a grant costs (check and the logs
 * read it when they need it). The getter lives on the prototype: an object literal with a getter
 * of its own is a slow dictionary-mode object that V8 allocates in old space, several hundred
 * bytes of old-generation garbage per review under load.
 */
class GrantDecision<Kind extends "allowed" | "assigned"> {
  readonly kind: Kind;
  readonly addresses: readonly IPAddress[];
  readonly pool: string;
  readonly warnings: readonly string[];
  readonly #ref: string;
  readonly #verb: string;

  constructor(
    kind: Kind,
    ref: string,
    verb: string,
    addresses: readonly IPAddress[],
    pool: string,
    warnings: readonly string[],
  ) {
    this.kind = kind;
    this.#ref = ref;
    this.#verb = verb;
    this.addresses = addresses;
    this.pool = pool;
    this.warnings = warnings;
  }

  get message(): string {
    return `${this.#ref} ${this.#verb} ${list(this.addresses)} from pool "${this.pool}"`;
  }
}

function familyMismatch(context: Context, addresses: readonly IPAddress[]): string | undefined {
  if (addresses.length > 2) return "at most two addresses are allowed, one per family";
  const [first, second] = addresses;
  if (first !== undefined && second !== undefined && first.family === second.family) {
    return `two addresses must be of different families, both are ${first.family}`;
  }
  const declared = declaredFamilies(context.service);
  const foreign = addresses.find(
    (address) => declared.length > 0 && !declared.includes(address.family),
  );
  if (foreign !== undefined) {
    return `${formatAddress(foreign)} is ${foreign.family} but spec.ipFamilies is [${declared.join(", ")}]`;
  }
  if (addresses.length === 2 && context.service.spec?.ipFamilyPolicy === "SingleStack") {
    return "two addresses need ipFamilyPolicy PreferDualStack or RequireDualStack, not SingleStack";
  }
  if (
    addresses.length === 1 &&
    context.policy.reads.loadBalancerIPs.length > 0 &&
    isDualStack(context.service)
  ) {
    return "the Service is dual-stack and MetalLB serves it only with one address of each family: request two (comma-separated)";
  }
  return undefined;
}

function findConflict(context: Context, address: IPAddress, pool: Pool): Denial | undefined {
  const { ref, view } = context;
  const others = view.usage.holdersOf(address.family, address.value);
  // The Service's sharing identity matters only against other holders, and most addresses
  // asked for have none.
  if (others.length === 0) return undefined;
  const holder = holderOf(context.service, context.policy, ref);
  for (const other of others) {
    if (other.ref === holder.ref) continue;
    const held = `${ref} requests ${formatAddress(address)}, which ${other.ref} already holds (pool "${pool.name}")`;
    if (holder.sharingKey === "" || holder.sharingKey !== other.sharingKey) {
      const sharing =
        other.sharingKey === ""
          ? `${other.ref} does not allow sharing`
          : `to share it, set ${context.policy.reads.allowSharedIP[0]}: "${other.sharingKey}" (the key ${other.ref} uses)`;
      return deny(
        "AddressInUse",
        `${held}; ${sharing}; ${freeHint(pool, view.usage)}`,
        [address],
        pool,
      );
    }
    const port = holder.ports.find((candidate) => other.ports.includes(candidate));
    if (port !== undefined) {
      return deny(
        "SharingConflict",
        `${held} with sharing key "${holder.sharingKey}", but both expose ${port}; use another port or address`,
        [address],
        pool,
      );
    }
    if (holder.backendKey !== other.backendKey) {
      return deny(
        "SharingConflict",
        `${held} with sharing key "${holder.sharingKey}", but their backends differ (${holder.backendKey} vs ${other.backendKey}); shared Services need the same externalTrafficPolicy and, for Local, the same selector`,
        [address],
        pool,
      );
    }
  }
  return undefined;
}

function notAllowed(context: Context, pool: Pool, addresses: readonly IPAddress[] = []): Denial {
  const allocation = pool.serviceAllocation;
  const rules = [
    ...(allocation?.namespaces.length ? [`namespaces ${allocation.namespaces.join(", ")}`] : []),
    ...(allocation?.namespaceSelectors.length
      ? [`namespace labels ${allocation.namespaceSelectors.map(formatSelector).join(" or ")}`]
      : []),
    ...(allocation?.serviceSelectors.length
      ? [`Service labels ${allocation.serviceSelectors.map(formatSelector).join(" or ")}`]
      : []),
  ];
  return deny(
    "PoolNotAllowed",
    `${context.ref} may not use pool "${pool.name}": its serviceAllocation admits ${rules.join("; ")}`,
    addresses,
    pool,
  );
}

/** Pools in the contract's allocation order for this Service. */
function allocationOrder(pools: PoolSet, identity: ServiceIdentity): readonly Pool[] {
  const selective = pools.pools
    .filter(
      (pool) =>
        pool.autoAssign &&
        pool.serviceAllocation !== undefined &&
        poolAllowsService(pool, identity),
    )
    .sort((a, b) => priorityRank(a) - priorityRank(b));
  const open = pools.pools.filter(
    (pool) => pool.autoAssign && pool.serviceAllocation === undefined,
  );
  return [...selective, ...open];
}

/**
 * MetalLB sorts a priority of 0 with the unset ones, after every positive number (its sortPools);
 * the sort is stable, so ties keep name order where MetalLB's order is undefined.
 */
function priorityRank(pool: Pool): number {
  return pool.serviceAllocation?.priority || Number.MAX_SAFE_INTEGER;
}

function allocate(context: Context, named: Pool | undefined): Decision {
  const { ref, view } = context;
  if (named !== undefined && !poolAllowsService(named, context.identity))
    return notAllowed(context, named);
  const { required, optional } = wantedFamilies(context.service, context.policy.reads);
  const candidates = named !== undefined ? [named] : allocationOrder(view.pools, context.identity);
  // PreferDualStack: a pool with both families first, as MetalLB's findBestPoolForService does.
  const passes = optional.length > 0 ? [[...required, ...optional], required] : [required];
  for (const families of passes) {
    for (const pool of candidates) {
      const picked = families.map((family) => firstFreeInPool(pool, family, view.usage));
      if (picked.some((address) => address === undefined)) continue;
      const addresses = picked as IPAddress[];
      return new GrantDecision("assigned", ref, "gets", addresses, pool.name, context.warnings);
    }
  }
  const tried = candidates.map((pool) => `"${pool.name}"`).join(", ");
  return deny(
    "PoolExhausted",
    candidates.length === 0
      ? `${ref} asks for auto-assign, but no pool with autoAssign is open to it; name one with ${context.policy.reads.addressPool[0]}`
      : `${ref} asks for auto-assign, but no free ${required.join(" + ")} address is left in pool${candidates.length > 1 ? "s" : ""} ${tried}`,
    [],
    named,
  );
}

function wantedFamilies(
  service: ServiceObject,
  keys: ReleaseReads,
): {
  required: readonly Family[];
  optional: readonly Family[];
} {
  const declared = declaredFamilies(service);
  // A new Service has no clusterIP yet: no parse, and no error message formatted for nothing.
  const clusterIP = service.spec?.clusterIP ? parseAddress(service.spec.clusterIP) : undefined;
  const primary = declared[0] ?? (clusterIP?.ok ? clusterIP.value.family : "IPv4");
  const secondary = declared[1] ?? FAMILIES.find((family) => family !== primary) ?? "IPv6";
  // A release without an address annotation reads one address, from spec.loadBalancerIP.
  if (keys.loadBalancerIPs.length === 0) return { required: [primary], optional: [] };
  // A dual-stack Service (two families settled) gets two or none: MetalLB refuses one address.
  if (isDualStack(service)) return { required: [primary, secondary], optional: [] };
  switch (service.spec?.ipFamilyPolicy) {
    case "RequireDualStack":
      return { required: [primary, secondary], optional: [] };
    case "PreferDualStack":
      return { required: [primary], optional: [secondary] };
    default:
      return { required: [primary], optional: [] };
  }
}

/**
 * Hints towards the keys that last, only where the guarded release reads them: MetalLB v0.11
 * has no annotation for an address, so spec.loadBalancerIP is its one form. An address this
 * webhook wrote (the Service says where it came from) is not the user's to move.
 */
/** Two families settled by the API server, or required: MetalLB then wants an address of each. */
function isDualStack(service: ServiceObject): boolean {
  return (
    declaredFamilies(service).length === 2 ||
    (service.spec?.clusterIPs?.length ?? 0) === 2 ||
    service.spec?.ipFamilyPolicy === "RequireDualStack"
  );
}

function deprecationWarnings(service: ServiceObject, keys: ReleaseReads): readonly string[] {
  const read = new Set([...keys.loadBalancerIPs, ...keys.addressPool, ...keys.allowSharedIP]);
  const legacy = "metallb.universe.tf/";
  const warnings = Object.keys(annotations(service)).flatMap((key) => {
    const lasting = `metallb.io/${key.slice(legacy.length)}`;
    return key.startsWith(legacy) && read.has(lasting)
      ? [`annotation ${key} is deprecated; use ${lasting}`]
      : [];
  });
  const [lasting] = keys.loadBalancerIPs;
  if (
    lasting !== undefined &&
    (service.spec?.loadBalancerIP ?? "") !== "" &&
    annotations(service)[ANNOTATION.assignedFrom] === undefined
  ) {
    warnings.push(
      `spec.loadBalancerIP is deprecated by Kubernetes; ${lasting} is the lasting form`,
    );
  }
  return warnings;
}

function metallb(keys: ReleaseReads): string {
  return keys.version === undefined ? "MetalLB" : `MetalLB ${formatMetalLBVersion(keys.version)}`;
}

function list(addresses: readonly IPAddress[]): string {
  return addresses.map(formatAddress).join(", ");
}

function freeHint(pool: Pool, usage: UsageIndex): string {
  const runs = freeRuns(pool, usage, 4);
  if (runs.length === 0) return `pool "${pool.name}" has no free address`;
  const more = runs.length === 4 ? ", ..." : "";
  return `free in pool "${pool.name}": ${runs.slice(0, 3).map(formatRange).join(", ")}${more}`;
}

function poolsHint(pools: PoolSet, family: Family): string {
  const ofFamily = pools.pools.filter((pool) =>
    pool.ranges.some((range) => range.family === family),
  );
  if (ofFamily.length === 0) return `no pool has ${family} addresses`;
  return `${family} pools: ${ofFamily.map(describePool).join("; ")}`;
}
