// The legacy MetalLB configuration of v0.11–v0.12: the `config` key of the ConfigMap, a YAML
// document with address-pools (and peers, communities, BFD profiles this tool only tolerates).

import { parseDocument, type Tags } from "yaml";
import { isRecord } from "../../base/objects.ts";
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

/** The ConfigMap's `data.config` string, in the v0.11–v0.12 format. */
export function poolsFromLegacyConfig(configText: string, origin: string): PoolsFound {
  const document = parseDocument(configText, GO_YAML_V2_OPTIONS);
  const [yamlError] = document.errors;
  if (yamlError !== undefined) {
    const line = yamlError.linePos?.[0].line;
    const lineText = line === undefined ? "" : (configText.split(/\r?\n/)[line - 1] ?? "");
    let summary = (yamlError.message.split("\n")[0] ?? "").replace(/:$/, "");
    if (line !== undefined && !summary.includes(" at line ")) summary += ` at line ${line}`;
    const quoted = lineText.trim() === "" ? "" : `: ${JSON.stringify(lineText.trim())}`;
    return singleError(
      origin,
      lineText.trim(),
      `the MetalLB config in data.config is not valid YAML: ${summary}${quoted}`,
    );
  }
  let value: unknown;
  try {
    value = document.toJS({ maxAliasCount: 100 });
  } catch (error) {
    return singleError(
      origin,
      "data.config",
      `the MetalLB config in data.config cannot be read: ${(error as Error).message}`,
    );
  }
  // An empty config is valid for MetalLB: it simply declares nothing.
  if (value === null || value === undefined) return { pools: [], errors: [] };
  return poolsFromLegacyValue(value, origin);
}

const LEGACY_TOP_LEVEL: Readonly<Record<string, "list" | "mapping">> = {
  peers: "list",
  "bgp-communities": "mapping",
  "address-pools": "list",
  // v0.12–v0.13 additions, tolerated so a newer legacy config is not refused wholesale.
  "bfd-profiles": "list",
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

/** A legacy config already parsed into a JS value (the ConfigMap's config, or a pools file). */
export function poolsFromLegacyValue(value: unknown, origin: string): PoolsFound {
  if (!isRecord(value)) {
    return singleError(
      origin,
      "data.config",
      `the MetalLB config in data.config must be a mapping with address-pools, not ${show(value)}`,
    );
  }
  const errors: PoolConfigError[] = [];
  const pools: Pool[] = [];
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
  const declared = field(value, "address-pools");
  if (Array.isArray(declared)) {
    declared.forEach((item: unknown, index) => {
      const found = legacyPool(item, index, origin);
      errors.push(...found.errors);
      pools.push(...found.pools);
    });
  }
  return { pools, errors };
}

function legacyPool(item: unknown, index: number, origin: string): PoolsFound {
  const path = `address-pools[${index}]`;
  if (!isRecord(item)) {
    return singleError(origin, path, `${path} must be a mapping with name, protocol and addresses`);
  }
  const rawName = field(item, "name");
  const name = typeof rawName === "string" && rawName !== "" ? rawName : undefined;
  const issues = new Issues(origin, name, name === undefined ? `${path}: ` : "");

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

  const protocol = field(item, "protocol");
  if (protocol === undefined || protocol === null || protocol === "") {
    issues.add("protocol", "protocol is missing; expected layer2 or bgp");
  } else if (protocol !== "layer2" && protocol !== "bgp") {
    issues.add(
      typeof protocol === "string" ? protocol : "protocol",
      `unknown protocol ${show(protocol)}; expected layer2 or bgp`,
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
  checkAdvertisements(field(item, "bgp-advertisements"), protocol, issues);

  return issues.result(name, (poolName) => ({
    name: poolName,
    ranges,
    autoAssign,
    avoidBuggyIPs,
    serviceAllocation: undefined,
    origin,
  }));
}

function checkAdvertisements(value: unknown, protocol: unknown, issues: Issues): void {
  if (value === undefined || value === null) return;
  if (!Array.isArray(value)) {
    issues.add("bgp-advertisements", `bgp-advertisements must be a list, not ${show(value)}`);
    return;
  }
  if (value.length > 0 && protocol === "layer2") {
    issues.add(
      "bgp-advertisements",
      "bgp-advertisements is only allowed with protocol bgp, and this pool is layer2",
    );
  }
  value.forEach((advertisement: unknown, index) => {
    const path = `bgp-advertisements[${index}]`;
    if (!isRecord(advertisement)) {
      issues.add(path, `${path} must be a mapping, not ${show(advertisement)}`);
      return;
    }
    for (const key of Object.keys(advertisement)) {
      if (!(LEGACY_ADVERTISEMENT_KEYS as readonly string[]).includes(key)) {
        issues.add(
          key,
          `unknown key ${JSON.stringify(key)} in ${path}; an advertisement has ${LEGACY_ADVERTISEMENT_KEYS.join(", ")}`,
        );
      }
    }
    for (const key of ["aggregation-length", "aggregation-length-v6", "localpref"]) {
      const number = field(advertisement, key);
      if (number !== undefined && number !== null && !isNonNegativeInteger(number)) {
        issues.add(`${path}.${key}`, `${path}.${key} must be an integer, not ${show(number)}`);
      }
    }
    stringList(field(advertisement, "communities"), `${path}.communities`, issues);
  });
}
