// The legacy MetalLB configuration of v0.11–v0.12: the `config` key of the ConfigMap, a YAML
// document with address-pools, peers, bgp-communities and bfd-profiles. The pools are what the
// webhook decides with; the rest is kept, checked with MetalLB v0.12.1's rules, for `convert`
// (docs/convert.md cites MetalLB's lines). A problem outside the pools never costs the webhook
// a pool: those are reported apart, as `bgpErrors`.

import { parseDocument, type Tags } from "yaml";
import { isRecord } from "../../base/objects.ts";
import { parseAddress } from "../address.ts";
import type { LabelSelector } from "../labels.ts";
import type { Pool } from "../pool.ts";
import { addressRanges } from "./address-ranges.ts";
import { Issues, type PoolConfigError, type PoolsFound, singleError } from "./errors.ts";
import {
  field,
  isNonNegativeInteger,
  optionalBoolean,
  show,
  stringList,
  suggest,
} from "./fields.ts";
import { parseLegacyNodeSelectors } from "./selector.ts";

/**
 * YAML as MetalLB v0.11–v0.12 reads it (gopkg.in/yaml.v2): YAML 1.1 scalars, so `yes`/`no`/`on`/
 * `off` are booleans, but without the base-60 numbers and timestamps that yaml.v2 leaves out.
 */
const GO_YAML_V2_OPTIONS = {
  version: "1.1",
  uniqueKeys: true,
  customTags: (tags: Tags): Tags =>
    tags.filter(
      (tag) =>
        typeof tag === "string" ||
        (tag.format !== "TIME" && tag.tag !== "tag:yaml.org,2002:timestamp"),
    ),
} as const;

/** A pool's protocol: how MetalLB v0.11–v0.12 announces its addresses. */
export type LegacyProtocol = "layer2" | "bgp";

/** One `bgp-advertisements` entry; undefined where the config leaves MetalLB's default. */
export interface LegacyAdvertisement {
  readonly aggregationLength: number | undefined;
  readonly aggregationLengthV6: number | undefined;
  readonly localPref: number | undefined;
  /** As written: community aliases of `bgp-communities` or `AA:NN` values. */
  readonly communities: readonly string[];
}

export interface LegacyPool {
  /** Position in `address-pools`, for provenance. */
  readonly index: number;
  readonly pool: Pool;
  readonly protocol: LegacyProtocol;
  readonly advertisements: readonly LegacyAdvertisement[];
}

/** One `peers` entry; optional fields undefined where the config leaves them out. */
export interface LegacyPeer {
  readonly index: number;
  readonly myASN: number;
  readonly peerASN: number;
  readonly peerAddress: string;
  readonly sourceAddress: string | undefined;
  readonly peerPort: number | undefined;
  readonly holdTime: string | undefined;
  readonly keepaliveTime: string | undefined;
  readonly routerID: string | undefined;
  readonly nodeSelectors: readonly LabelSelector[];
  readonly password: string | undefined;
  readonly bfdProfile: string | undefined;
  readonly ebgpMultiHop: boolean | undefined;
}

export interface LegacyBFDProfile {
  readonly index: number;
  readonly name: string;
  readonly receiveInterval: number | undefined;
  readonly transmitInterval: number | undefined;
  readonly detectMultiplier: number | undefined;
  readonly echoInterval: number | undefined;
  readonly echoMode: boolean | undefined;
  readonly passiveMode: boolean | undefined;
  readonly minimumTTL: number | undefined;
}

/** Everything a v0.11–v0.12 config declares, each part checked as MetalLB v0.12.1 checks it. */
export interface LegacyConfig {
  readonly pools: readonly LegacyPool[];
  readonly peers: readonly LegacyPeer[];
  /** `bgp-communities`, by alias, in the order written. */
  readonly communities: ReadonlyMap<string, string>;
  readonly bfdProfiles: readonly LegacyBFDProfile[];
  /** Top-level keys read here but not by MetalLB v0.12.1 (`peer-autodiscovery`). */
  readonly unreleasedKeys: readonly string[];
}

export interface LegacyConfigFound {
  readonly config: LegacyConfig;
  /** Problems of the pools and of the config as a whole: what the webhook reports too. */
  readonly errors: readonly PoolConfigError[];
  /** Problems of peers, communities, BFD profiles and advertisement values. */
  readonly bgpErrors: readonly PoolConfigError[];
}

const EMPTY_CONFIG: LegacyConfig = {
  pools: [],
  peers: [],
  communities: new Map(),
  bfdProfiles: [],
  unreleasedKeys: [],
};

/** A config that could not be read at all: nothing declared, one problem. */
export function legacyFailure(found: PoolsFound): LegacyConfigFound {
  return { config: EMPTY_CONFIG, errors: found.errors, bgpErrors: [] };
}

function poolsOf(found: LegacyConfigFound): PoolsFound {
  return { pools: found.config.pools.map((entry) => entry.pool), errors: found.errors };
}

/** The ConfigMap's `data.config` string, in the v0.11–v0.12 format. */
export function poolsFromLegacyConfig(configText: string, origin: string): PoolsFound {
  return poolsOf(legacyConfigFromText(configText, origin));
}

/** A legacy config already parsed into a JS value (the ConfigMap's config, or a pools file). */
export function poolsFromLegacyValue(value: unknown, origin: string): PoolsFound {
  return poolsOf(legacyConfigFromValue(value, origin));
}

/** The whole config of the ConfigMap's `data.config` string. */
export function legacyConfigFromText(configText: string, origin: string): LegacyConfigFound {
  const document = parseDocument(configText, GO_YAML_V2_OPTIONS);
  const [yamlError] = document.errors;
  if (yamlError !== undefined) {
    const line = yamlError.linePos?.[0].line;
    const lineText = line === undefined ? "" : (configText.split(/\r?\n/)[line - 1] ?? "");
    let summary = (yamlError.message.split("\n")[0] ?? "").replace(/:$/, "");
    if (line !== undefined && !summary.includes(" at line ")) summary += ` at line ${line}`;
    const quoted = lineText.trim() === "" ? "" : `: ${JSON.stringify(lineText.trim())}`;
    return legacyFailure(
      singleError(
        origin,
        lineText.trim(),
        `the MetalLB config in data.config is not valid YAML: ${summary}${quoted}`,
      ),
    );
  }
  let value: unknown;
  try {
    value = document.toJS({ maxAliasCount: 100 });
  } catch (error) {
    return legacyFailure(
      singleError(
        origin,
        "data.config",
        `the MetalLB config in data.config cannot be read: ${(error as Error).message}`,
      ),
    );
  }
  // An empty config is valid for MetalLB: it simply declares nothing.
  if (value === null || value === undefined)
    return { config: EMPTY_CONFIG, errors: [], bgpErrors: [] };
  return legacyConfigFromValue(value, origin);
}

const LEGACY_TOP_LEVEL: Readonly<Record<string, "list" | "mapping">> = {
  peers: "list",
  "bgp-communities": "mapping",
  "address-pools": "list",
  "bfd-profiles": "list",
  // Not in any release's legacy format (v0.12.1's configFile has the four above), tolerated so a
  // config written for a development build is not refused wholesale.
  "peer-autodiscovery": "mapping",
};

const LEGACY_POOL_KEYS = [
  "name",
  "protocol",
  "addresses",
  "auto-assign",
  "avoid-buggy-ips",
  "bgp-advertisements",
] as const;

const LEGACY_ADVERTISEMENT_KEYS = [
  "aggregation-length",
  "aggregation-length-v6",
  "localpref",
  "communities",
] as const;

const LEGACY_PEER_KEYS = [
  "my-asn",
  "peer-asn",
  "peer-address",
  "source-address",
  "peer-port",
  "hold-time",
  "keepalive-time",
  "router-id",
  "node-selectors",
  "password",
  "bfd-profile",
  "ebgp-multihop",
] as const;

/** Each BFD setting and the bounds MetalLB v0.12.1's parseBFDProfile puts on it. */
const BFD_INTEGERS = {
  "receive-interval": [10, 60000],
  "transmit-interval": [10, 60000],
  "detect-multiplier": [2, 255],
  "echo-interval": [10, 60000],
  "minimum-ttl": [1, 254],
} as const;
const BFD_KEYS = ["name", ...Object.keys(BFD_INTEGERS), "echo-mode", "passive-mode"];

/** The whole config, already parsed into a JS value. */
export function legacyConfigFromValue(value: unknown, origin: string): LegacyConfigFound {
  if (!isRecord(value)) {
    return legacyFailure(
      singleError(
        origin,
        "data.config",
        `the MetalLB config in data.config must be a mapping with address-pools, not ${show(value)}`,
      ),
    );
  }
  const errors: PoolConfigError[] = [];
  for (const key of Object.keys(value)) {
    const expected = LEGACY_TOP_LEVEL[key];
    if (!Object.hasOwn(LEGACY_TOP_LEVEL, key) || expected === undefined) {
      errors.push({
        origin,
        pool: undefined,
        offending: key,
        message: `unknown key ${JSON.stringify(key)} in the MetalLB config${suggest(key, Object.keys(LEGACY_TOP_LEVEL))}; MetalLB refuses the whole config`,
      });
      continue;
    }
    const entry = value[key];
    if (entry === null || entry === undefined) continue;
    const fits = expected === "list" ? Array.isArray(entry) : isRecord(entry);
    if (!fits) {
      errors.push({
        origin,
        pool: undefined,
        offending: key,
        message: `${key} must be a ${expected}, not ${show(entry)}`,
      });
    }
  }
  const bgpErrors: PoolConfigError[] = [];
  const communities = parseCommunities(field(value, "bgp-communities"), origin, bgpErrors);
  const bfdProfiles = parseList(field(value, "bfd-profiles"), (item, index) => {
    const issues = new Issues(origin, undefined, "");
    const profile = legacyBFDProfile(item, index, issues);
    bgpErrors.push(...issues.errors);
    return profile;
  });
  const seenProfiles = new Set<string>();
  for (const profile of bfdProfiles) {
    if (seenProfiles.has(profile.name)) {
      bgpErrors.push({
        origin,
        pool: undefined,
        offending: profile.name,
        message: `bfd-profiles[${profile.index}]: duplicate BFD profile name ${JSON.stringify(profile.name)}`,
      });
    }
    seenProfiles.add(profile.name);
  }
  const peers = parseList(field(value, "peers"), (item, index) => {
    const issues = new Issues(origin, undefined, `peers[${index}]: `);
    const peer = legacyPeer(item, index, seenProfiles, issues);
    bgpErrors.push(...issues.errors);
    return peer;
  });
  const pools = parseList(field(value, "address-pools"), (item, index) => {
    const found = legacyPool(item, index, origin, communities);
    errors.push(...found.errors);
    bgpErrors.push(...found.bgpErrors);
    return found.pool;
  });
  const unreleasedKeys = Object.hasOwn(value, "peer-autodiscovery") ? ["peer-autodiscovery"] : [];
  return {
    config: { pools, peers, communities, bfdProfiles, unreleasedKeys },
    errors,
    bgpErrors,
  };
}

/** The entries of a list that parsed; anything but a list was reported with the top level. */
function parseList<T>(value: unknown, parse: (item: unknown, index: number) => T | undefined): T[] {
  if (!Array.isArray(value)) return [];
  return value.flatMap((item: unknown, index) => {
    const parsed = parse(item, index);
    return parsed === undefined ? [] : [parsed];
  });
}

interface PoolFound {
  readonly pool: LegacyPool | undefined;
  readonly errors: readonly PoolConfigError[];
  readonly bgpErrors: readonly PoolConfigError[];
}

function legacyPool(
  item: unknown,
  index: number,
  origin: string,
  communities: ReadonlyMap<string, string>,
): PoolFound {
  const path = `address-pools[${index}]`;
  if (!isRecord(item)) {
    return {
      pool: undefined,
      errors: singleError(
        origin,
        path,
        `${path} must be a mapping with name, protocol and addresses`,
      ).errors,
      bgpErrors: [],
    };
  }
  const rawName = field(item, "name");
  const name = typeof rawName === "string" && rawName !== "" ? rawName : undefined;
  const prefix = name === undefined ? `${path}: ` : "";
  const issues = new Issues(origin, name, prefix);
  const bgpIssues = new Issues(origin, name, prefix);

  if (rawName === undefined || rawName === null || rawName === "") {
    issues.add("name", "missing pool name (name is required)");
  } else if (name === undefined) {
    issues.add("name", `name must be a string, not ${show(rawName)}`);
  }
  for (const key of Object.keys(item)) {
    if (!(LEGACY_POOL_KEYS as readonly string[]).includes(key)) {
      issues.add(
        key,
        `unknown key ${JSON.stringify(key)}${suggest(key, LEGACY_POOL_KEYS)}; a pool has ${LEGACY_POOL_KEYS.join(", ")}`,
      );
    }
  }

  const rawProtocol = field(item, "protocol");
  let protocol: LegacyProtocol | undefined;
  if (rawProtocol === undefined || rawProtocol === null || rawProtocol === "") {
    issues.add("protocol", "protocol is missing; expected layer2 or bgp");
  } else if (rawProtocol === "layer2" || rawProtocol === "bgp") {
    protocol = rawProtocol;
  } else {
    issues.add(
      typeof rawProtocol === "string" ? rawProtocol : "protocol",
      `unknown protocol ${show(rawProtocol)}; expected layer2 or bgp`,
    );
  }

  const ranges = addressRanges(field(item, "addresses"), "addresses", issues);
  const autoAssign = optionalBoolean(field(item, "auto-assign"), "auto-assign", true, issues);
  const avoidBuggyIPs = optionalBoolean(
    field(item, "avoid-buggy-ips"),
    "avoid-buggy-ips",
    false,
    issues,
  );
  const advertisements = legacyAdvertisements(
    field(item, "bgp-advertisements"),
    rawProtocol,
    communities,
    issues,
    bgpIssues,
  );

  const built = issues.result(name, (poolName) => ({
    name: poolName,
    ranges,
    autoAssign,
    avoidBuggyIPs,
    serviceAllocation: undefined,
    origin,
  }));
  const [pool] = built.pools;
  return {
    pool:
      pool === undefined || protocol === undefined
        ? undefined
        : { index, pool, protocol, advertisements },
    errors: built.errors,
    bgpErrors: bgpIssues.errors,
  };
}

function legacyAdvertisements(
  value: unknown,
  protocol: unknown,
  communities: ReadonlyMap<string, string>,
  issues: Issues,
  bgpIssues: Issues,
): LegacyAdvertisement[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    issues.add("bgp-advertisements", `bgp-advertisements must be a list, not ${show(value)}`);
    return [];
  }
  if (value.length > 0 && protocol === "layer2") {
    issues.add(
      "bgp-advertisements",
      "bgp-advertisements is only allowed with protocol bgp, and this pool is layer2",
    );
  }
  return parseList(value, (advertisement, index) => {
    const path = `bgp-advertisements[${index}]`;
    if (!isRecord(advertisement)) {
      issues.add(path, `${path} must be a mapping, not ${show(advertisement)}`);
      return undefined;
    }
    for (const key of Object.keys(advertisement)) {
      if (!(LEGACY_ADVERTISEMENT_KEYS as readonly string[]).includes(key)) {
        issues.add(
          key,
          `unknown key ${JSON.stringify(key)} in ${path}; an advertisement has ${LEGACY_ADVERTISEMENT_KEYS.join(", ")}`,
        );
      }
    }
    const integer = (key: string, max: number | undefined): number | undefined => {
      const number = field(advertisement, key);
      if (number === undefined || number === null) return undefined;
      if (!isNonNegativeInteger(number)) {
        issues.add(`${path}.${key}`, `${path}.${key} must be an integer, not ${show(number)}`);
        return undefined;
      }
      if (max !== undefined && (number as number) > max) {
        bgpIssues.add(`${path}.${key}`, `${path}.${key} must be at most ${max}, not ${number}`);
      }
      return number as number;
    };
    const aggregationLength = integer("aggregation-length", 32);
    const aggregationLengthV6 = integer("aggregation-length-v6", 128);
    const localPref = integer("localpref", 2 ** 32 - 1);
    const written = stringList(field(advertisement, "communities"), `${path}.communities`, issues);
    for (const community of written) {
      if (communities.has(community)) continue;
      const problem = communityProblem(community);
      if (problem !== undefined) {
        bgpIssues.add(
          community,
          `${path}.communities: ${JSON.stringify(community)} is neither an alias of bgp-communities nor ${problem}`,
        );
      }
    }
    return { aggregationLength, aggregationLengthV6, localPref, communities: written };
  });
}

/** MetalLB's ParseCommunity: two 16-bit decimal numbers joined by a colon. */
function communityProblem(text: string): string | undefined {
  const parts = text.split(":");
  const fits = (part: string) => /^\d+$/.test(part) && Number(part) <= 0xffff;
  return parts.length === 2 && parts.every(fits)
    ? undefined
    : "a community value AA:NN (two numbers from 0 to 65535)";
}

function parseCommunities(
  value: unknown,
  origin: string,
  errors: PoolConfigError[],
): ReadonlyMap<string, string> {
  const communities = new Map<string, string>();
  if (!isRecord(value)) return communities;
  for (const [alias, community] of Object.entries(value)) {
    const problem =
      typeof community === "string" ? communityProblem(community) : "a community value AA:NN";
    if (problem !== undefined) {
      errors.push({
        origin,
        pool: undefined,
        offending: alias,
        message: `bgp-communities.${alias} is ${show(community)}, not ${problem}`,
      });
      continue;
    }
    communities.set(alias, community as string);
  }
  return communities;
}

function unknownKeys(
  item: Readonly<Record<string, unknown>>,
  known: readonly string[],
  what: string,
  issues: Issues,
): void {
  for (const key of Object.keys(item)) {
    if (!known.includes(key)) {
      issues.add(
        key,
        `unknown key ${JSON.stringify(key)}${suggest(key, known)}; ${what} has ${known.join(", ")}`,
      );
    }
  }
}

function legacyPeer(
  item: unknown,
  index: number,
  bfdProfiles: ReadonlySet<string>,
  issues: Issues,
): LegacyPeer | undefined {
  if (!isRecord(item)) {
    issues.add(
      "peers",
      `must be a mapping with my-asn, peer-asn and peer-address, not ${show(item)}`,
    );
    return undefined;
  }
  const before = issues.count;
  unknownKeys(item, LEGACY_PEER_KEYS, "a peer", issues);
  const asn = (key: string): number => {
    const number = field(item, key);
    if (number === undefined || number === null || number === 0) {
      issues.add(key, `${key} is missing; a peer needs my-asn and peer-asn`);
    } else if (!isNonNegativeInteger(number) || (number as number) > 2 ** 32 - 1) {
      issues.add(key, `${key} must be an AS number from 1 to 4294967295, not ${show(number)}`);
    }
    return number as number;
  };
  const myASN = asn("my-asn");
  const peerASN = asn("peer-asn");
  const address = (key: string, required: boolean): string | undefined => {
    const text = field(item, key);
    if (text === undefined || text === null || text === "") {
      if (required) issues.add(key, `${key} is missing; a peer needs the address to dial`);
      return undefined;
    }
    if (typeof text !== "string" || !parseAddress(text).ok) {
      issues.add(String(text), `${key} must be an IP address, not ${show(text)}`);
      return undefined;
    }
    return text;
  };
  const peerAddress = address("peer-address", true);
  const sourceAddress = address("source-address", false);
  const routerID = address("router-id", false);
  const port = field(item, "peer-port");
  const peerPort = port === undefined || port === null || port === 0 ? undefined : (port as number);
  if (peerPort !== undefined && (!isNonNegativeInteger(peerPort) || peerPort > 65535)) {
    issues.add("peer-port", `peer-port must be a port number from 1 to 65535, not ${show(port)}`);
  }
  const holdTime = optionalString(field(item, "hold-time"), "hold-time", issues);
  const keepaliveTime = optionalString(field(item, "keepalive-time"), "keepalive-time", issues);
  const holdSeconds = holdTime === undefined ? 90 : durationSeconds(holdTime, "hold-time", issues);
  if (holdSeconds !== undefined && holdSeconds !== 0 && holdSeconds < 3) {
    issues.add(
      holdTime ?? "hold-time",
      `hold-time ${JSON.stringify(holdTime)} must be 0 or at least 3s`,
    );
  }
  if (keepaliveTime !== undefined) {
    const keepaliveSeconds = durationSeconds(keepaliveTime, "keepalive-time", issues);
    if (
      keepaliveSeconds !== undefined &&
      holdSeconds !== undefined &&
      keepaliveSeconds > holdSeconds
    ) {
      issues.add(
        keepaliveTime,
        `keepalive-time ${JSON.stringify(keepaliveTime)} must not be longer than the hold time (${holdSeconds}s)`,
      );
    }
  }
  const nodeSelectors = parseLegacyNodeSelectors(field(item, "node-selectors"), issues);
  const password = optionalString(field(item, "password"), "password", issues);
  const bfdProfile = optionalString(field(item, "bfd-profile"), "bfd-profile", issues);
  if (bfdProfile !== undefined && !bfdProfiles.has(bfdProfile)) {
    issues.add(bfdProfile, `bfd-profile ${JSON.stringify(bfdProfile)} is not one of bfd-profiles`);
  }
  const rawMultiHop = field(item, "ebgp-multihop");
  const ebgpMultiHop =
    rawMultiHop === undefined || rawMultiHop === null
      ? undefined
      : optionalBoolean(rawMultiHop, "ebgp-multihop", false, issues);
  if (ebgpMultiHop === true && myASN === peerASN) {
    issues.add("ebgp-multihop", "ebgp-multihop is set for an iBGP peer (my-asn equals peer-asn)");
  }
  if (issues.count !== before || peerAddress === undefined) return undefined;
  return {
    index,
    myASN,
    peerASN,
    peerAddress,
    sourceAddress,
    peerPort,
    holdTime,
    keepaliveTime,
    routerID,
    nodeSelectors,
    password,
    bfdProfile,
    ebgpMultiHop,
  };
}

function optionalString(value: unknown, path: string, issues: Issues): string | undefined {
  if (value === undefined || value === null || value === "") return undefined;
  if (typeof value === "string") return value;
  issues.add(path, `${path} must be a string, not ${show(value)}`);
  return undefined;
}

const GO_DURATION_UNIT_SECONDS: Readonly<Record<string, number>> = {
  ns: 1e-9,
  us: 1e-6,
  µs: 1e-6,
  μs: 1e-6,
  ms: 1e-3,
  s: 1,
  m: 60,
  h: 3600,
};
const GO_DURATION = /^[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$/;

/** Go's time.ParseDuration, rounded down to whole seconds as MetalLB rounds peer timers. */
function durationSeconds(text: string, path: string, issues: Issues): number | undefined {
  if (text === "0") return 0;
  if (!GO_DURATION.test(text)) {
    issues.add(text, `${path} ${JSON.stringify(text)} is not a duration such as 90s or 1m30s`);
    return undefined;
  }
  let seconds = 0;
  for (const [, amount, unit] of text.matchAll(/(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g)) {
    seconds += Number(amount) * (GO_DURATION_UNIT_SECONDS[unit ?? "s"] ?? 1);
  }
  return Math.trunc(text.startsWith("-") ? -seconds : seconds);
}

function legacyBFDProfile(
  item: unknown,
  index: number,
  issues: Issues,
): LegacyBFDProfile | undefined {
  const path = `bfd-profiles[${index}]`;
  if (!isRecord(item)) {
    issues.add(path, `${path} must be a mapping with a name, not ${show(item)}`);
    return undefined;
  }
  const before = issues.count;
  unknownKeys(item, BFD_KEYS, `${path}: a BFD profile`, issues);
  const name = field(item, "name");
  if (typeof name !== "string" || name === "") {
    issues.add(path, `${path}: missing BFD profile name`);
  }
  const integer = (key: keyof typeof BFD_INTEGERS): number | undefined => {
    const number = field(item, key);
    if (number === undefined || number === null) return undefined;
    const [low, high] = BFD_INTEGERS[key];
    if (!isNonNegativeInteger(number) || (number as number) < low || (number as number) > high) {
      issues.add(
        `${path}.${key}`,
        `${path}.${key} must be an integer from ${low} to ${high}, not ${show(number)}`,
      );
      return undefined;
    }
    return number as number;
  };
  const flag = (key: string): boolean | undefined => {
    const value = field(item, key);
    return value === undefined || value === null
      ? undefined
      : optionalBoolean(value, `${path}.${key}`, false, issues);
  };
  const profile: LegacyBFDProfile = {
    index,
    name: name as string,
    receiveInterval: integer("receive-interval"),
    transmitInterval: integer("transmit-interval"),
    detectMultiplier: integer("detect-multiplier"),
    echoInterval: integer("echo-interval"),
    echoMode: flag("echo-mode"),
    passiveMode: flag("passive-mode"),
    minimumTTL: integer("minimum-ttl"),
  };
  return issues.count === before ? profile : undefined;
}
