// The legacy ConfigMap of MetalLB v0.11–v0.12 as the custom resources MetalLB has read since
// v0.13: IPAddressPool, L2Advertisement, BGPAdvertisement, Community (metallb.io/v1beta1), BGPPeer
// (v1beta2) and BFDProfile (v1beta1). Pure: objects in, objects and notes out. Every mapping, with
// MetalLB's source lines, is in docs/convert.md; the ADR (0014) says why names and defaults are
// what they are.

import { isDnsSubdomain } from "../../base/k8s-names.ts";
import type { LabelSelector } from "../labels.ts";
import { writtenText } from "./address-ranges.ts";
import type {
  LegacyAdvertisement,
  LegacyBFDProfile,
  LegacyConfig,
  LegacyPeer,
  LegacyPool,
} from "./legacy.ts";

export type ConvertedKind =
  | "Community"
  | "BFDProfile"
  | "BGPPeer"
  | "IPAddressPool"
  | "L2Advertisement"
  | "BGPAdvertisement";

export interface ConvertedObject {
  readonly kind: ConvertedKind;
  readonly name: string;
  /** Where in the legacy config it came from: `address-pools[0] "default"`, `peers[1]`, ... */
  readonly from: string;
  /** The whole object, apiVersion to spec, ready to serialise. */
  readonly object: Readonly<Record<string, unknown>>;
}

export interface Conversion {
  /** Dependencies first (communities, BFD profiles, peers, pools), then advertisements. */
  readonly objects: readonly ConvertedObject[];
  /** Converted, but worth a look (a password left in plain text, a default made explicit). */
  readonly warnings: readonly string[];
  /** Fields with no equivalent, or names MetalLB's resources cannot carry: nothing is written. */
  readonly errors: readonly string[];
}

const API_VERSIONS: Readonly<Record<ConvertedKind, string>> = {
  Community: "metallb.io/v1beta1",
  BFDProfile: "metallb.io/v1beta1",
  BGPPeer: "metallb.io/v1beta2",
  IPAddressPool: "metallb.io/v1beta1",
  L2Advertisement: "metallb.io/v1beta1",
  BGPAdvertisement: "metallb.io/v1beta1",
};

/** v0.12.1 config.go parseHoldTime: an unset hold time is 90 s; today's BGPPeer leaves it to FRR. */
const LEGACY_HOLD_TIME = "90s";

/** The name of the one Community object that carries every `bgp-communities` alias. */
export const COMMUNITY_OBJECT_NAME = "bgp-communities";

/** `namespace` is where MetalLB runs (the ConfigMap's namespace): its resources live there too. */
export function convertLegacyConfig(config: LegacyConfig, namespace: string): Conversion {
  const warnings: string[] = [];
  const errors: string[] = [];
  const objects: ConvertedObject[] = [];
  const add = (kind: ConvertedKind, name: string, from: string, spec: Record<string, unknown>) => {
    if (!isDnsSubdomain(name)) {
      errors.push(
        `${from}: ${JSON.stringify(name)} cannot name a ${kind} (lower-case letters, digits, "-" and "." only, at most 253, starting and ending alphanumeric); rename it in the ConfigMap first${kind === "IPAddressPool" ? ", and in the metallb.universe.tf/address-pool annotations naming it" : ""}`,
      );
      return;
    }
    objects.push({
      kind,
      name,
      from,
      object: { apiVersion: API_VERSIONS[kind], kind, metadata: { name, namespace }, spec },
    });
  };

  for (const key of config.unreleasedKeys) {
    errors.push(
      `${key}: not part of any released legacy format (MetalLB v0.12.1 reads address-pools, peers, bgp-communities, bfd-profiles) and no custom resource carries it; remove it to convert`,
    );
  }
  if (config.communities.size > 0) {
    add("Community", COMMUNITY_OBJECT_NAME, "bgp-communities", {
      communities: [...config.communities].map(([name, value]) => ({ name, value })),
    });
  }
  for (const profile of config.bfdProfiles) {
    add("BFDProfile", profile.name, `bfd-profiles[${profile.index}]`, bfdSpec(profile));
  }
  for (const peer of config.peers) {
    const name = `peer-${peer.index + 1}`;
    const from = `peers[${peer.index}] (${peer.peerAddress}, AS ${peer.peerASN})`;
    if (peer.password !== undefined) {
      warnings.push(
        `${from}: the password is copied into BGPPeer ${name} spec.password in plain text; MetalLB also reads it from a Secret (spec.passwordSecret), which RBAC can guard`,
      );
    }
    if (peer.holdTime === undefined) {
      warnings.push(
        `${from}: no hold-time; BGPPeer ${name} gets holdTime ${LEGACY_HOLD_TIME}, the default of v0.11-v0.12, since newer releases leave an unset hold time to the BGP daemon`,
      );
    }
    add("BGPPeer", name, from, peerSpec(peer));
  }
  for (const entry of config.pools) {
    add("IPAddressPool", entry.pool.name, poolFrom(entry), poolSpec(entry));
  }
  for (const entry of config.pools) {
    if (entry.protocol === "layer2") {
      add("L2Advertisement", entry.pool.name, poolFrom(entry), {
        ipAddressPools: [entry.pool.name],
      });
    }
  }
  for (const entry of config.pools) {
    if (entry.protocol !== "bgp") continue;
    // No advertisement is one with MetalLB's defaults (v0.12.1 config.go parseBGPAdvertisements).
    const advertisements: readonly (LegacyAdvertisement | undefined)[] =
      entry.advertisements.length === 0 ? [undefined] : entry.advertisements;
    advertisements.forEach((advertisement, index) => {
      // pool-N: the index after the last "-" is digits only, so no two pools' names collide.
      const from = `${poolFrom(entry)}${advertisement === undefined ? "" : ` bgp-advertisements[${index}]`}`;
      add(
        "BGPAdvertisement",
        `${entry.pool.name}-${index + 1}`,
        from,
        advertisementSpec(entry, advertisement),
      );
    });
  }
  return { objects, warnings, errors };
}

function poolFrom(entry: LegacyPool): string {
  return `address-pools[${entry.index}] ${JSON.stringify(entry.pool.name)}`;
}

function poolSpec(entry: LegacyPool): Record<string, unknown> {
  const { pool } = entry;
  return {
    // As written: a range stays a range, a CIDR a CIDR.
    addresses: pool.ranges.map(writtenText),
    ...(!pool.autoAssign && { autoAssign: false }),
    ...(pool.avoidBuggyIPs && { avoidBuggyIPs: true }),
  };
}

function advertisementSpec(
  entry: LegacyPool,
  advertisement: LegacyAdvertisement | undefined,
): Record<string, unknown> {
  return {
    ipAddressPools: [entry.pool.name],
    ...defined("aggregationLength", advertisement?.aggregationLength),
    ...defined("aggregationLengthV6", advertisement?.aggregationLengthV6),
    ...defined("localPref", advertisement?.localPref),
    ...(advertisement !== undefined &&
      advertisement.communities.length > 0 && { communities: [...advertisement.communities] }),
  };
}

function peerSpec(peer: LegacyPeer): Record<string, unknown> {
  return {
    myASN: peer.myASN,
    peerASN: peer.peerASN,
    peerAddress: peer.peerAddress,
    ...defined("sourceAddress", peer.sourceAddress),
    ...defined("peerPort", peer.peerPort),
    holdTime: peer.holdTime ?? LEGACY_HOLD_TIME,
    ...defined("keepaliveTime", peer.keepaliveTime),
    ...defined("routerID", peer.routerID),
    ...(peer.nodeSelectors.length > 0 && { nodeSelectors: peer.nodeSelectors.map(selectorSpec) }),
    ...defined("password", peer.password),
    ...defined("bfdProfile", peer.bfdProfile),
    ...defined("ebgpMultiHop", peer.ebgpMultiHop),
  };
}

function selectorSpec(selector: LabelSelector): Record<string, unknown> {
  return {
    ...(Object.keys(selector.matchLabels).length > 0 && { matchLabels: selector.matchLabels }),
    ...(selector.matchExpressions.length > 0 && {
      matchExpressions: selector.matchExpressions.map((requirement) => ({
        key: requirement.key,
        operator: requirement.operator,
        ...(requirement.values.length > 0 && { values: [...requirement.values] }),
      })),
    }),
  };
}

function bfdSpec(profile: LegacyBFDProfile): Record<string, unknown> {
  return {
    ...defined("receiveInterval", profile.receiveInterval),
    ...defined("transmitInterval", profile.transmitInterval),
    ...defined("detectMultiplier", profile.detectMultiplier),
    ...defined("echoInterval", profile.echoInterval),
    ...defined("echoMode", profile.echoMode),
    ...defined("passiveMode", profile.passiveMode),
    ...defined("minimumTtl", profile.minimumTTL),
  };
}

/** `{key: value}`, or nothing when the config left the value out. */
function defined(key: string, value: unknown): Record<string, unknown> {
  return value === undefined ? {} : { [key]: value };
}
