// Generated pools and Services for the differential test against the real MetalLB controller
// (metallb-oracle.test.ts). Small address blocks, a few shared candidates for requested
// addresses, and every key MetalLB might or might not read, so that conflicts, sharing, pool
// rules and ignored keys come up in most scenarios.

import fc from "fast-check";
import { formatValue } from "../../src/ipam/address.ts";
import { parseAddressBlock } from "../../src/ipam/range.ts";

export type MetalLBRelease = "v0.11.0" | "v0.16.2";
type Family = "IPv4" | "IPv6";
/** A pool's or a Service's families: one, or both (dual-stack, MetalLB v0.12 and later). */
type Families = Family | "dual";

export interface GenPool {
  readonly name: string;
  readonly family: Families;
  /** `addresses` entries: CIDRs and ranges. */
  readonly blocks: readonly string[];
  readonly autoAssign: boolean;
  readonly avoidBuggyIPs: boolean;
  /** IPAddressPools only (v0.16). */
  readonly serviceAllocation?: {
    readonly priority?: number;
    readonly namespaces?: readonly string[];
    readonly serviceSelectors?: readonly { matchLabels: Record<string, string> }[];
  };
}

export interface GenService {
  readonly name: string;
  /** A LoadBalancer, or a ClusterIP with lb-ip-guard.dev/auto-assign. */
  readonly auto: boolean;
  /** "dual": RequireDualStack with both families. */
  readonly family: Families;
  /** Where the address is asked for, if anywhere: spec.loadBalancerIP or an annotation key. */
  readonly request: { readonly key: string; readonly text: string } | undefined;
  readonly pool: { readonly key: string; readonly name: string } | undefined;
  readonly share: { readonly key: string; readonly value: string } | undefined;
  readonly ports: readonly number[];
  readonly tier: "a" | "b";
  readonly local: boolean;
}

export interface Scenario {
  readonly pools: readonly GenPool[];
  readonly services: readonly GenService[];
}

/**
 * Blocks of pool `index`: each pool has its own /24 (IPv4) or /112 (IPv6), so none overlap. A
 * dual pool has one of each.
 */
function blocksOf(family: Families, index: number): fc.Arbitrary<string[]> {
  if (family !== "dual") {
    return fc.subarray(blockChoices(family, index), { minLength: 1, maxLength: 2 });
  }
  return fc
    .tuple(
      fc.constantFrom(...blockChoices("IPv4", index)),
      fc.constantFrom(...blockChoices("IPv6", index)),
    )
    .map((blocks) => [...blocks]);
}

function blockChoices(family: Family, index: number): string[] {
  if (family === "IPv6") {
    const base = `fd00:60:${index}::`;
    return [`${base}/126`, `${base}10-${base}13`, `${base}ff/128`];
  }
  const base = `10.60.${index}.`;
  // .0 and .255 are in two of them: avoidBuggyIPs matters there.
  return [`${base}0/30`, `${base}252/30`, `${base}16-${base}18`, `${base}32/31`];
}

/** Requested-address candidates of a pool's blocks: their first two addresses, and the last. */
function candidates(pool: GenPool, family: Family): string[] {
  return pool.blocks.flatMap((block) => {
    const parsed = parseAddressBlock(block);
    if (!parsed.ok) throw new Error(`generated a bad block ${block}: ${parsed.error}`);
    const { first, last } = parsed.value;
    if (parsed.value.family !== family) return [];
    return [...new Set([first, first + 1n > last ? last : first + 1n, last])].map((value) =>
      formatValue(family, value),
    );
  });
}

/**
 * What Services ask for: the candidates, an address in no pool, malformed text, and the
 * spellings MetalLB parses its own way: two addresses (of two families, or of one), an
 * IPv4-mapped IPv6 address, spaces around an address.
 */
function requestTexts(pools: readonly GenPool[]): string[] {
  const v4 = pools.flatMap((pool) => candidates(pool, "IPv4"));
  const v6 = pools.flatMap((pool) => candidates(pool, "IPv6"));
  const odd = [
    ...(v4[0] !== undefined && v6[0] !== undefined ? [`${v4[0]},${v6[0]}`] : []),
    ...(v4[0] !== undefined && v4[1] !== undefined ? [`${v4[0]},${v4[1]}`] : []),
    ...(v4[1] !== undefined ? [`::ffff:${v4[1]}`, ` ${v4[1]} `] : []),
  ];
  return [...v4, ...v6, ...odd, "10.61.0.5", "10.60.0.300"];
}

/**
 * MetalLB's keys for one purpose, repeated by weight: those the release reads, and now and then
 * one it ignores (each ignored key is an intended difference, ADR 0009: kept rare).
 */
const KEYS: Record<MetalLBRelease, { ips: string[]; pool: string[]; share: string[] }> = {
  "v0.11.0": {
    ips: [...Array(15).fill("spec"), "metallb.universe.tf/loadBalancerIPs"],
    pool: [...Array(15).fill("metallb.universe.tf/address-pool"), "metallb.io/address-pool"],
    share: [...Array(15).fill("metallb.universe.tf/allow-shared-ip"), "metallb.io/allow-shared-ip"],
  },
  "v0.16.2": {
    ips: ["spec", "metallb.io/loadBalancerIPs", "metallb.universe.tf/loadBalancerIPs"],
    pool: ["metallb.io/address-pool", "metallb.universe.tf/address-pool"],
    share: ["metallb.io/allow-shared-ip", "metallb.universe.tf/allow-shared-ip"],
  },
};

function poolArbitrary(
  release: MetalLBRelease,
  index: number,
  namespace: string,
): fc.Arbitrary<GenPool> {
  // MetalLB v0.11 has no dual-stack.
  const family = fc.constantFrom<Families>(
    "IPv4",
    "IPv4",
    "IPv4",
    "IPv6",
    ...(release === "v0.11.0" ? [] : ["dual" as const]),
  );
  return family.chain((chosen) =>
    fc.record({
      name: fc.constant(`p${index}`),
      family: fc.constant(chosen),
      blocks: blocksOf(chosen, index),
      // The first pool always takes part in automatic choice, the others now and then not.
      autoAssign: index === 0 ? fc.constant(true) : fc.boolean(),
      avoidBuggyIPs: fc.boolean(),
      ...(release === "v0.16.2" && {
        serviceAllocation: fc.option(
          fc.record(
            {
              priority: fc.constantFrom(0, 1, 5),
              namespaces: fc.constantFrom([namespace], [namespace], ["elsewhere"]),
              serviceSelectors: fc.constantFrom([{ matchLabels: { tier: "a" } }]),
            },
            { requiredKeys: [] },
          ),
          { nil: undefined, freq: 2 },
        ),
      }),
    }),
  ) as fc.Arbitrary<GenPool>;
}

function serviceArbitrary(
  release: MetalLBRelease,
  pools: readonly GenPool[],
  index: number,
): fc.Arbitrary<GenService> {
  const keys = KEYS[release];
  const families = [...new Set(pools.map((pool) => pool.family))];
  const addresses = requestTexts(pools);
  // Weighted so that most Services reach the address checks: a pool annotation now and then, a
  // missing pool rarely, sharing keys often enough that sharing and its conflicts come up.
  const sometimes = <T>(arbitrary: fc.Arbitrary<T>, weight: number, absent: number) =>
    fc.oneof(
      { arbitrary: fc.constant(undefined), weight: absent },
      { arbitrary: arbitrary as fc.Arbitrary<T | undefined>, weight },
    );
  const names = pools.map((pool) => pool.name);
  return fc.record({
    name: fc.constant(`s${index}`),
    auto: fc.boolean(),
    family: fc.constantFrom(...families),
    request: sometimes(
      fc.record({ key: fc.constantFrom(...keys.ips), text: fc.constantFrom(...addresses) }),
      2,
      1,
    ),
    pool: sometimes(
      fc.record({
        key: fc.constantFrom(...keys.pool),
        name: fc.constantFrom(...names, ...names, "missing"),
      }),
      1,
      3,
    ),
    share: sometimes(
      fc.record({ key: fc.constantFrom(...keys.share), value: fc.constantFrom("k1", "k1", "k2") }),
      1,
      1,
    ),
    ports: fc.constantFrom([80], [443], [80, 443]),
    tier: fc.constantFrom("a", "b"),
    local: fc.boolean().map((local) => local && index % 3 === 0),
  });
}

export function scenarioArbitrary(
  release: MetalLBRelease,
  namespace: string,
): fc.Arbitrary<Scenario> {
  return fc
    .integer({ min: 1, max: 3 })
    .chain((count) =>
      fc.tuple(...Array.from({ length: count }, (_, i) => poolArbitrary(release, i, namespace))),
    )
    .chain((pools) =>
      fc
        .integer({ min: 4, max: 8 })
        .chain((count) =>
          fc
            .tuple(...Array.from({ length: count }, (_, i) => serviceArbitrary(release, pools, i)))
            .map((services) => ({ pools, services })),
        ),
    );
}

/** The pools as MetalLB reads them: the legacy ConfigMap (v0.11) or IPAddressPools (v0.16). */
export function poolManifests(release: MetalLBRelease, pools: readonly GenPool[]): object[] {
  if (release === "v0.11.0") {
    const config = {
      "address-pools": pools.map((pool) => ({
        name: pool.name,
        protocol: "layer2",
        addresses: pool.blocks,
        "auto-assign": pool.autoAssign,
        "avoid-buggy-ips": pool.avoidBuggyIPs,
      })),
    };
    return [
      {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: "config", namespace: "metallb-system" },
        data: { config: JSON.stringify(config) },
      },
    ];
  }
  return pools.map((pool) => ({
    apiVersion: "metallb.io/v1beta1",
    kind: "IPAddressPool",
    metadata: { name: pool.name, namespace: "metallb-system" },
    spec: {
      addresses: pool.blocks,
      autoAssign: pool.autoAssign,
      avoidBuggyIPs: pool.avoidBuggyIPs,
      ...(pool.serviceAllocation !== undefined && { serviceAllocation: pool.serviceAllocation }),
    },
  }));
}

/**
 * The Service as a user writes it. `asLoadBalancer` turns an auto-assign one into the
 * LoadBalancer a user without lb-ip-guard would have written (for MetalLB alone).
 */
export function serviceManifest(
  service: GenService,
  namespace: string,
  asLoadBalancer = false,
): Record<string, unknown> {
  const annotations: Record<string, string> = {};
  if (service.auto && !asLoadBalancer) annotations["lb-ip-guard.dev/auto-assign"] = "true";
  if (service.request !== undefined && service.request.key !== "spec") {
    annotations[service.request.key] = service.request.text;
  }
  if (service.pool !== undefined) annotations[service.pool.key] = service.pool.name;
  if (service.share !== undefined) annotations[service.share.key] = service.share.value;
  const loadBalancer = !service.auto || asLoadBalancer;
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: service.name, namespace, labels: { tier: service.tier }, annotations },
    spec: {
      type: loadBalancer ? "LoadBalancer" : "ClusterIP",
      ...(service.family === "dual"
        ? { ipFamilyPolicy: "RequireDualStack", ipFamilies: ["IPv4", "IPv6"] }
        : { ipFamilyPolicy: "SingleStack", ipFamilies: [service.family] }),
      selector: { app: service.local ? "shared" : service.name },
      ports: service.ports.map((port) => ({ name: `p${port}`, port, protocol: "TCP" })),
      ...(loadBalancer && service.local && { externalTrafficPolicy: "Local" }),
      ...(service.request?.key === "spec" && { loadBalancerIP: service.request.text }),
    },
  };
}
