import { fail, ok, type Result } from "./result.ts";

/**
 * A MetalLB release. The Service keys its controller reads changed between releases (see
 * docs/metallb-versions.md): a key the guarded release ignores is a Service MetalLB serves
 * differently from what it asks for, so lb-ip-guard must know which release it guards.
 */
export interface MetalLBVersion {
  readonly major: number;
  readonly minor: number;
  readonly patch: number;
}

/**
 * What one MetalLB release reads: its pool sources, and the Service keys by purpose (the first of
 * each wins).
 */
export interface ReleaseReads {
  /** The release, or undefined when it is not known: every key of the contract is read then. */
  readonly version: MetalLBVersion | undefined;
  /**
   * Whether it leaves Services of another `spec.loadBalancerClass` alone. Releases before
   * v0.13 have no notion of a class and serve every LoadBalancer Service.
   */
  readonly filtersByClass: boolean;
  /** The ConfigMap `config` of v0.11 and v0.12; v0.13 replaced it with custom resources. */
  readonly legacyConfigMap: boolean;
  readonly ipAddressPools: boolean;
  readonly loadBalancerIPs: readonly string[];
  readonly addressPool: readonly string[];
  readonly allowSharedIP: readonly string[];
}

export type KeyPurpose = "loadBalancerIPs" | "addressPool" | "allowSharedIP";

/** lb-ip-guard's own pool key: MetalLB never reads it, the webhook always does. */
export const OWN_POOL_KEY = "lb-ip-guard.dev/pool";

const LEGACY = "metallb.universe.tf/";
const CURRENT = "metallb.io/";

/**
 * Where each key arrived, from MetalLB's sources (docs/metallb-versions.md cites the lines):
 * v0.11 reads `spec.loadBalancerIP` and the legacy pool and sharing keys only;
 * `metallb.universe.tf/loadBalancerIPs` arrives in v0.12.0 (#1174); v0.13.0 brings the class
 * filter (`--lb-class`, #1417) and reads pools from custom resources instead of the ConfigMap;
 * the `metallb.io/` keys, read before the legacy ones, arrive in v0.14.9 (#2495).
 */
const LOAD_BALANCER_IPS_SINCE: MetalLBVersion = { major: 0, minor: 12, patch: 0 };
/** The class filter and the custom resources (IPAddressPool) in place of the ConfigMap. */
const V0_13: MetalLBVersion = { major: 0, minor: 13, patch: 0 };
const CURRENT_PREFIX_SINCE: MetalLBVersion = { major: 0, minor: 14, patch: 9 };

const VERSION = /^v?(\d+)\.(\d+)\.(\d+)(?:[-+].*)?$/;

export function parseMetalLBVersion(text: string): Result<MetalLBVersion> {
  const match = VERSION.exec(text.trim());
  if (match === null) {
    return fail(
      `MetalLB version ${JSON.stringify(text)} is not a release number; expected vMAJOR.MINOR.PATCH, e.g. v0.11.0 or v0.15.2`,
    );
  }
  const [, major, minor, patch] = match.map(Number) as [number, number, number, number];
  return ok({ major, minor, patch });
}

export function formatMetalLBVersion(version: MetalLBVersion): string {
  return `v${version.major}.${version.minor}.${version.patch}`;
}

function atLeast(version: MetalLBVersion, since: MetalLBVersion): boolean {
  return (
    (version.major - since.major || version.minor - since.minor || version.patch - since.patch) >= 0
  );
}

/** The keys `version` reads, preferred first; all of them when the version is unknown. */
export function readsOf(version: MetalLBVersion | undefined): ReleaseReads {
  const current = version === undefined || atLeast(version, CURRENT_PREFIX_SINCE);
  const prefixes = current ? [CURRENT, LEGACY] : [LEGACY];
  const ips = version === undefined || atLeast(version, LOAD_BALANCER_IPS_SINCE);
  return {
    version,
    filtersByClass: version === undefined || atLeast(version, V0_13),
    legacyConfigMap: version === undefined || !atLeast(version, V0_13),
    ipAddressPools: version === undefined || atLeast(version, V0_13),
    loadBalancerIPs: ips ? prefixes.map((prefix) => `${prefix}loadBalancerIPs`) : [],
    addressPool: [...prefixes.map((prefix) => `${prefix}address-pool`), OWN_POOL_KEY],
    allowSharedIP: prefixes.map((prefix) => `${prefix}allow-shared-ip`),
  };
}

/** Every key of the contract, by purpose: what an unknown version reads. */
export const ALL_KEYS = readsOf(undefined);
