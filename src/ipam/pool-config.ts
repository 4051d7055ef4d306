// Turns MetalLB configuration (the legacy v0.11–v0.12 ConfigMap, IPAddressPool objects, a pools
// file) into validated `Pool`s and merges them with MetalLB's rules. Pure: no I/O, and it never
// throws on bad input; every problem comes back as a PoolConfigError.

import { parseDocument, type Tags } from "yaml";
import { isDnsSubdomain } from "../base/k8s-names.ts";
import { FAMILY_BITS, type Family, formatValue } from "./address.ts";
import type { LabelSelector, SelectorOperator, SelectorRequirement } from "./labels.ts";
import { type Pool, PoolSet, type ServiceAllocation } from "./pool.ts";
import { type AddressRange, formatRange, parseAddressBlock, rangesOverlap } from "./range.ts";

export interface PoolConfigError {
  /** Where the pool was declared: `ConfigMap metallb-system/config`, `pools.yaml (IPAddressPool metallb-system/lan)`, ... */
  readonly origin: string;
  /** The pool's name, when it has one. */
  readonly pool: string | undefined;
  /** The string the user has to fix: an address entry, a key, a value, a pool name. */
  readonly offending: string;
  /** One line that names the offending string. */
  readonly message: string;
}

/** One line: `<origin>: pool "<name>": <message>` (or `<origin>: <message>` for a nameless pool). */
export function formatPoolConfigError(error: PoolConfigError): string {
  const where = error.pool === undefined ? error.origin : `${error.origin}: pool "${error.pool}"`;
  return oneLine(`${where}: ${error.message}`);
}

export interface PoolsFound {
  /** Only pools without any error: a pool with a problem is never half-built. */
  readonly pools: readonly Pool[];
  readonly errors: readonly PoolConfigError[];
}

export interface PoolDocumentOptions {
  /** The namespace MetalLB runs in and reads its ConfigMap and IPAddressPools from. */
  readonly metallbNamespace?: string;
}

const DEFAULT_METALLB_NAMESPACE = "metallb-system";
const IP_ADDRESS_POOL_API_VERSIONS: ReadonlySet<unknown> = new Set([
  "metallb.io/v1beta1",
  "metallb.io/v1beta2",
]);

/**
 * One parsed YAML/JSON document (already a JS value). Recognises: the legacy MetalLB ConfigMap
 * (kind ConfigMap, name `config`, namespace = metallbNamespace (default "metallb-system"), data
 * key `config`), an `IPAddressPool` (apiVersion metallb.io/v1beta1 or v1beta2; namespace
 * metallbNamespace or none), and a bare legacy config document (an object without `kind` whose
 * top-level has `address-pools`, as in a pools file). Returns undefined for any other document
 * (not a pool source).
 *
 * `origin` says where the document came from (a file and document index, say); the object's kind
 * and name are added to it: `pools.yaml#2 (IPAddressPool metallb-system/lan)`. Pass "" for an
 * object read from the cluster to get just `IPAddressPool metallb-system/lan`.
 */
export function poolsFromDocument(
  document: unknown,
  origin: string,
  options: PoolDocumentOptions = {},
): PoolsFound | undefined {
  if (!isMapping(document)) return undefined;
  const metallbNamespace = options.metallbNamespace ?? DEFAULT_METALLB_NAMESPACE;
  const kind = field(document, "kind");
  const apiVersion = field(document, "apiVersion");
  const metadata = field(document, "metadata");
  const name = isMapping(metadata) ? field(metadata, "name") : undefined;
  const namespace = isMapping(metadata) ? field(metadata, "namespace") : undefined;

  if (kind === "ConfigMap" && (apiVersion === "v1" || apiVersion === undefined)) {
    // A ConfigMap called `config` is common; only MetalLB's own, in MetalLB's namespace, counts.
    if (name !== "config" || namespace !== metallbNamespace) return undefined;
    const source = withIdentity(origin, `ConfigMap ${metallbNamespace}/config`);
    const data = field(document, "data");
    if (data === undefined || data === null) return { pools: [], errors: [] };
    if (!isMapping(data)) {
      return single(source, "data", `data must be a mapping of strings, not ${show(data)}`);
    }
    const config = field(data, "config");
    // MetalLB reads a missing key as an empty configuration: no pools, no error.
    if (config === undefined || config === null) return { pools: [], errors: [] };
    if (typeof config !== "string") {
      return single(source, "data.config", `data.config must be a string, not ${show(config)}`);
    }
    return poolsFromLegacyConfig(config, source);
  }

  if (kind === "IPAddressPool" && IP_ADDRESS_POOL_API_VERSIONS.has(apiVersion)) {
    // MetalLB watches only its own namespace; a manifest without one is applied with `-n`.
    if (namespace !== undefined && namespace !== null && namespace !== metallbNamespace) {
      return undefined;
    }
    const shownName = typeof name === "string" && name !== "" ? name : "<unnamed>";
    const source = withIdentity(origin, `IPAddressPool ${metallbNamespace}/${shownName}`);
    return poolFromIPAddressPool(document, source);
  }

  if (kind === undefined && Object.hasOwn(document, "address-pools")) {
    return poolsFromLegacyValue(document, origin);
  }
  return undefined;
}

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
    return single(
      origin,
      lineText.trim(),
      `the MetalLB config in data.config is not valid YAML: ${summary}${quoted}`,
    );
  }
  let value: unknown;
  try {
    value = document.toJS({ maxAliasCount: 100 });
  } catch (error) {
    return single(
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
function poolsFromLegacyValue(value: unknown, origin: string): PoolsFound {
  if (!isMapping(value)) {
    return single(
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
    const fits = expected === "list" ? Array.isArray(entry) : isMapping(entry);
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
  if (!isMapping(item)) {
    return single(origin, path, `${path} must be a mapping with name, protocol and addresses`);
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
    if (!isMapping(advertisement)) {
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

const SPEC_KEYS = ["addresses", "autoAssign", "avoidBuggyIPs", "serviceAllocation"] as const;
const ALLOCATION_KEYS = ["priority", "namespaces", "namespaceSelectors", "serviceSelectors"];
const SELECTOR_KEYS = ["matchLabels", "matchExpressions"];
const REQUIREMENT_KEYS = ["key", "operator", "values"];
const OPERATORS: readonly SelectorOperator[] = ["In", "NotIn", "Exists", "DoesNotExist"];

/** A `metallb.io` IPAddressPool object. `origin` is used as given. */
export function poolFromIPAddressPool(object: unknown, origin: string): PoolsFound {
  if (!isMapping(object)) {
    return single(origin, show(object), `an IPAddressPool must be an object, not ${show(object)}`);
  }
  const metadata = field(object, "metadata");
  const rawName = isMapping(metadata) ? field(metadata, "name") : undefined;
  const name = typeof rawName === "string" && rawName !== "" ? rawName : undefined;
  const issues = new Issues(origin, name, "");
  if (name === undefined) {
    issues.add(
      "metadata.name",
      rawName === undefined || rawName === null || rawName === ""
        ? "metadata.name is missing; an IPAddressPool needs a name"
        : `metadata.name must be a string, not ${show(rawName)}`,
    );
  }

  const spec = field(object, "spec");
  if (!isMapping(spec)) {
    issues.add(
      "spec",
      spec === undefined || spec === null
        ? "spec is missing; an IPAddressPool needs spec.addresses"
        : `spec must be a mapping, not ${show(spec)}`,
    );
    return issues.result(name, () => undefined);
  }
  for (const key of Object.keys(spec)) {
    if (!(SPEC_KEYS as readonly string[]).includes(key)) {
      issues.add(
        `spec.${key}`,
        `unknown field "spec.${key}"${suggest(key, SPEC_KEYS)}; spec has ${SPEC_KEYS.join(", ")}`,
      );
    }
  }
  const ranges = addressRanges(field(spec, "addresses"), "spec.addresses", issues);
  const autoAssign = optionalBoolean(field(spec, "autoAssign"), "spec.autoAssign", true, issues);
  const avoidBuggyIPs = optionalBoolean(
    field(spec, "avoidBuggyIPs"),
    "spec.avoidBuggyIPs",
    false,
    issues,
  );
  const serviceAllocation = parseServiceAllocation(field(spec, "serviceAllocation"), issues);

  return issues.result(name, (poolName) => ({
    name: poolName,
    ranges,
    autoAssign,
    avoidBuggyIPs,
    serviceAllocation,
    origin,
  }));
}

function parseServiceAllocation(value: unknown, issues: Issues): ServiceAllocation | undefined {
  const path = "spec.serviceAllocation";
  if (value === undefined || value === null) return undefined;
  if (!isMapping(value)) {
    issues.add(path, `${path} must be a mapping, not ${show(value)}`);
    return undefined;
  }
  for (const key of Object.keys(value)) {
    if (!ALLOCATION_KEYS.includes(key)) {
      issues.add(
        `${path}.${key}`,
        `unknown field "${path}.${key}"${suggest(key, ALLOCATION_KEYS)}; serviceAllocation has ${ALLOCATION_KEYS.join(", ")}`,
      );
    }
  }
  const rawPriority = field(value, "priority");
  let priority: number | undefined;
  if (rawPriority !== undefined && rawPriority !== null) {
    if (typeof rawPriority === "number" && Number.isSafeInteger(rawPriority)) {
      priority = rawPriority;
    } else {
      issues.add(
        `${path}.priority`,
        `${path}.priority must be an integer, not ${show(rawPriority)}`,
      );
    }
  }
  return {
    priority,
    namespaces: stringList(field(value, "namespaces"), `${path}.namespaces`, issues),
    namespaceSelectors: selectorList(
      field(value, "namespaceSelectors"),
      `${path}.namespaceSelectors`,
      issues,
    ),
    serviceSelectors: selectorList(
      field(value, "serviceSelectors"),
      `${path}.serviceSelectors`,
      issues,
    ),
  };
}

function selectorList(value: unknown, path: string, issues: Issues): LabelSelector[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    issues.add(path, `${path} must be a list of label selectors, not ${show(value)}`);
    return [];
  }
  const selectors: LabelSelector[] = [];
  value.forEach((item: unknown, index) => {
    const selector = parseLabelSelector(item, `${path}[${index}]`, issues);
    if (selector !== undefined) selectors.push(selector);
  });
  return selectors;
}

/** metav1.LabelSelector with the checks of Kubernetes' LabelSelectorAsSelector. */
function parseLabelSelector(
  value: unknown,
  path: string,
  issues: Issues,
): LabelSelector | undefined {
  if (!isMapping(value)) {
    issues.add(
      path,
      `${path} must be a label selector (matchLabels, matchExpressions), not ${show(value)}`,
    );
    return undefined;
  }
  const before = issues.count;
  for (const key of Object.keys(value)) {
    if (!SELECTOR_KEYS.includes(key)) {
      issues.add(
        `${path}.${key}`,
        `unknown field "${path}.${key}"${suggest(key, SELECTOR_KEYS)}; a label selector has matchLabels, matchExpressions`,
      );
    }
  }
  const matchLabels: Record<string, string> = {};
  const rawLabels = field(value, "matchLabels");
  if (rawLabels !== undefined && rawLabels !== null) {
    if (!isMapping(rawLabels)) {
      issues.add(
        `${path}.matchLabels`,
        `${path}.matchLabels must be a mapping, not ${show(rawLabels)}`,
      );
    } else {
      for (const [key, labelValue] of Object.entries(rawLabels)) {
        checkLabelKey(key, `${path}.matchLabels`, issues);
        if (typeof labelValue !== "string") {
          issues.add(
            key,
            `${path}.matchLabels["${key}"] must be a string, not ${show(labelValue)}`,
          );
          continue;
        }
        checkLabelValue(labelValue, `${path}.matchLabels["${key}"]`, issues);
        matchLabels[key] = labelValue;
      }
    }
  }
  const matchExpressions: SelectorRequirement[] = [];
  const rawExpressions = field(value, "matchExpressions");
  if (rawExpressions !== undefined && rawExpressions !== null) {
    if (!Array.isArray(rawExpressions)) {
      issues.add(
        `${path}.matchExpressions`,
        `${path}.matchExpressions must be a list, not ${show(rawExpressions)}`,
      );
    } else {
      rawExpressions.forEach((item: unknown, index) => {
        const requirement = parseRequirement(item, `${path}.matchExpressions[${index}]`, issues);
        if (requirement !== undefined) matchExpressions.push(requirement);
      });
    }
  }
  return issues.count === before ? { matchLabels, matchExpressions } : undefined;
}

function parseRequirement(
  value: unknown,
  path: string,
  issues: Issues,
): SelectorRequirement | undefined {
  if (!isMapping(value)) {
    issues.add(path, `${path} must be a mapping with key, operator, values, not ${show(value)}`);
    return undefined;
  }
  const before = issues.count;
  for (const key of Object.keys(value)) {
    if (!REQUIREMENT_KEYS.includes(key)) {
      issues.add(
        `${path}.${key}`,
        `unknown field "${path}.${key}"; a requirement has key, operator, values`,
      );
    }
  }
  const key = field(value, "key");
  if (typeof key !== "string") {
    issues.add(`${path}.key`, `${path}.key must be a label key, not ${show(key)}`);
  } else {
    checkLabelKey(key, path, issues);
  }
  const operator = field(value, "operator");
  if (!OPERATORS.includes(operator as SelectorOperator)) {
    issues.add(
      typeof operator === "string" ? operator : `${path}.operator`,
      `${path}.operator ${show(operator)} is not a valid operator; expected ${OPERATORS.join(", ")}`,
    );
  }
  const rawValues = field(value, "values");
  const values = stringList(rawValues, `${path}.values`, issues);
  for (const [index, item] of values.entries()) {
    checkLabelValue(item, `${path}.values[${index}]`, issues);
  }
  const offendingKey = typeof key === "string" ? key : `${path}.values`;
  if ((operator === "In" || operator === "NotIn") && values.length === 0) {
    issues.add(
      offendingKey,
      `${path}: operator ${operator} needs at least one value (key ${show(key)})`,
    );
  }
  if ((operator === "Exists" || operator === "DoesNotExist") && values.length > 0) {
    issues.add(
      offendingKey,
      `${path}: operator ${operator} must have no values (key ${show(key)}, values ${show(values.join(","))})`,
    );
  }
  if (issues.count !== before) return undefined;
  return { key: key as string, operator: operator as SelectorOperator, values };
}

// Kubernetes' IsQualifiedName and IsValidLabelValue.
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

function checkLabelKey(key: string, path: string, issues: Issues): void {
  const parts = key.split("/");
  const name = parts.length === 2 ? (parts[1] ?? "") : key;
  const prefix = parts.length === 2 ? (parts[0] ?? "") : undefined;
  const valid =
    parts.length <= 2 &&
    name.length <= 63 &&
    LABEL_NAME.test(name) &&
    (prefix === undefined || isDnsSubdomain(prefix));
  if (!valid) {
    issues.add(
      key,
      `${path}: ${JSON.stringify(key)} is not a valid label key (an optional DNS prefix and "/", then up to 63 letters, digits, "-", "_", "." starting and ending alphanumeric)`,
    );
  }
}

function checkLabelValue(value: string, path: string, issues: Issues): void {
  if (value === "" || (value.length <= 63 && LABEL_NAME.test(value))) return;
  issues.add(
    value,
    `${path}: ${JSON.stringify(value)} is not a valid label value (up to 63 letters, digits, "-", "_", "." starting and ending alphanumeric)`,
  );
}

/** Collects the problems of one pool; the pool is built only when there are none. */
class Issues {
  readonly #origin: string;
  readonly #pool: string | undefined;
  readonly #prefix: string;
  readonly #errors: PoolConfigError[] = [];

  constructor(origin: string, pool: string | undefined, prefix: string) {
    this.#origin = origin;
    this.#pool = pool;
    this.#prefix = prefix;
  }

  get count(): number {
    return this.#errors.length;
  }

  add(offending: string, message: string): void {
    this.#errors.push({
      origin: this.#origin,
      pool: this.#pool,
      offending,
      message: `${this.#prefix}${message}`,
    });
  }

  result(name: string | undefined, build: (name: string) => Pool | undefined): PoolsFound {
    if (this.#errors.length > 0 || name === undefined) return { pools: [], errors: this.#errors };
    const pool = build(name);
    return { pools: pool === undefined ? [] : [pool], errors: [] };
  }
}

/**
 * What the user wrote for each range this module parsed, so overlap messages quote their text
 * (`10.0.0.0/24`) rather than a re-formatted one. Ranges built elsewhere fall back to
 * `formatBlock`.
 */
const writtenAs = new WeakMap<AddressRange, string>();

function addressRanges(value: unknown, path: string, issues: Issues): AddressRange[] {
  if (value === undefined || value === null || (Array.isArray(value) && value.length === 0)) {
    issues.add(path, `${path} is empty; a pool needs at least one CIDR or range`);
    return [];
  }
  if (!Array.isArray(value)) {
    issues.add(path, `${path} must be a list of CIDRs or ranges, not ${show(value)}`);
    return [];
  }
  const ranges: AddressRange[] = [];
  value.forEach((entry: unknown, index) => {
    if (typeof entry !== "string") {
      issues.add(`${path}[${index}]`, `${path}[${index}] must be a string, not ${show(entry)}`);
      return;
    }
    const parsed = parseAddressBlock(entry);
    if (!parsed.ok) {
      issues.add(entry, parsed.error);
      return;
    }
    writtenAs.set(parsed.value, entry.trim());
    ranges.push(parsed.value);
  });
  return ranges;
}

function optionalBoolean(value: unknown, path: string, fallback: boolean, issues: Issues): boolean {
  if (value === undefined || value === null) return fallback;
  if (typeof value === "boolean") return value;
  issues.add(path, `${path} must be true or false, not ${show(value)}`);
  return fallback;
}

function stringList(value: unknown, path: string, issues: Issues): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    issues.add(path, `${path} must be a list of strings, not ${show(value)}`);
    return [];
  }
  const strings: string[] = [];
  value.forEach((item: unknown, index) => {
    if (typeof item === "string") strings.push(item);
    else issues.add(`${path}[${index}]`, `${path}[${index}] must be a string, not ${show(item)}`);
  });
  return strings;
}

interface Claimed {
  readonly range: AddressRange;
  readonly pool: Pool;
}

/**
 * Merges pools from every source with MetalLB's rules: names unique, no range overlapping a range
 * of another pool (nor of the same pool). The first declaration wins; a later conflicting pool is
 * dropped and reported (naming both pools and the overlapping strings).
 */
export function mergePools(pools: readonly Pool[]): {
  readonly poolSet: PoolSet;
  readonly errors: readonly PoolConfigError[];
} {
  const errors: PoolConfigError[] = [];
  const accepted: Pool[] = [];
  const byName = new Map<string, Pool>();
  // Accepted ranges per family, sorted by first address and pairwise disjoint.
  const claimed: Record<Family, Claimed[]> = { IPv4: [], IPv6: [] };

  for (const pool of pools) {
    const report = (offending: string, message: string) =>
      errors.push({ origin: pool.origin, pool: pool.name, offending, message });
    const earlier = byName.get(pool.name);
    if (earlier !== undefined) {
      report(
        pool.name,
        `duplicate definition of pool ${JSON.stringify(pool.name)}: it is already declared by ${earlier.origin}; this declaration is ignored`,
      );
      continue;
    }
    const before = errors.length;
    for (const [range, other] of selfOverlaps(pool.ranges)) {
      report(
        rangeText(range),
        `address range ${JSON.stringify(rangeText(range))} overlaps ${JSON.stringify(rangeText(other))} of the same pool; pool "${pool.name}" is ignored`,
      );
    }
    for (const range of pool.ranges) {
      const hit = findOverlap(claimed[range.family], range);
      if (hit === undefined) continue;
      report(
        rangeText(range),
        `address range ${JSON.stringify(rangeText(range))} overlaps ${JSON.stringify(rangeText(hit.range))} of pool "${hit.pool.name}" (${hit.pool.origin}); pool "${pool.name}" is ignored`,
      );
    }
    if (errors.length !== before) continue;
    byName.set(pool.name, pool);
    accepted.push(pool);
    for (const range of pool.ranges) {
      const list = claimed[range.family];
      list.splice(lowerBound(list, range.first), 0, { range, pool });
    }
  }
  return { poolSet: new PoolSet(accepted), errors };
}

/** Each range that overlaps an earlier-starting range of the same list, with that range. */
function selfOverlaps(ranges: readonly AddressRange[]): [AddressRange, AddressRange][] {
  const found: [AddressRange, AddressRange][] = [];
  const sorted = [...ranges].sort((a, b) =>
    a.family !== b.family
      ? a.family < b.family
        ? -1
        : 1
      : a.first < b.first
        ? -1
        : a.first > b.first
          ? 1
          : 0,
  );
  let widest: AddressRange | undefined;
  for (const range of sorted) {
    if (widest !== undefined && rangesOverlap(widest, range)) found.push([range, widest]);
    if (widest === undefined || widest.family !== range.family || range.last > widest.last) {
      widest = range;
    }
  }
  return found;
}

/** Index of the first claimed range whose first address is >= value. */
function lowerBound(list: readonly Claimed[], value: bigint): number {
  let low = 0;
  let high = list.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((list[middle] as Claimed).range.first < value) low = middle + 1;
    else high = middle;
  }
  return low;
}

function findOverlap(list: readonly Claimed[], range: AddressRange): Claimed | undefined {
  // Disjoint and sorted: only the range starting just before `range`, and those starting inside it,
  // can overlap; the first of them that does is the one to report.
  const index = lowerBound(list, range.first);
  const previous = list[index - 1];
  if (previous !== undefined && rangesOverlap(previous.range, range)) return previous;
  const next = list[index];
  if (next !== undefined && rangesOverlap(next.range, range)) return next;
  return undefined;
}

function rangeText(range: AddressRange): string {
  return writtenAs.get(range) ?? formatBlock(range);
}

/** A CIDR when the range is one (`10.0.0.0/24`), else `first-last`. */
function formatBlock(range: AddressRange): string {
  const size = range.last - range.first + 1n;
  const hostBits = size.toString(2).length - 1;
  if (size === 1n << BigInt(hostBits) && (range.first & (size - 1n)) === 0n) {
    const prefix = FAMILY_BITS[range.family] - hostBits;
    return `${formatValue(range.family, range.first)}/${prefix}`;
  }
  return formatRange(range);
}

type Mapping = Readonly<Record<string, unknown>>;

/** A plain object (a YAML mapping / JSON object), not a list, date or class instance. */
function isMapping(value: unknown): value is Mapping {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/** An own property only: a key such as `constructor` must not reach Object.prototype. */
function field(mapping: Mapping, key: string): unknown {
  return Object.hasOwn(mapping, key) ? mapping[key] : undefined;
}

function isNonNegativeInteger(value: unknown): boolean {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

/** A short description of a value for messages; never serialises a whole (maybe cyclic) tree. */
function show(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (value === null || value === undefined) return "nothing";
  if (Array.isArray(value)) return "a list";
  if (value instanceof Date) return `the date ${value.toISOString()}`;
  if (typeof value === "object") return "a mapping";
  return String(value);
}

/**
 * ` (did you mean "auto-assign"?)` when `key` is close to a known key: the same but for case and
 * dashes (`autoAssign`), or one or two letters off (`matchLabel`, `adress-pools`).
 */
function suggest(key: string, known: readonly string[]): string {
  const squash = (text: string) => text.toLowerCase().replace(/[-_]/g, "");
  const match =
    known.find((candidate) => squash(candidate) === squash(key)) ??
    (key.length > 3 ? known.find((candidate) => editDistance(candidate, key) <= 2) : undefined);
  return match === undefined ? "" : ` (did you mean ${JSON.stringify(match)}?)`;
}

/** Levenshtein distance; keys are short, so the quadratic table is cheap. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(substitution, (previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

function withIdentity(origin: string, identity: string): string {
  return origin === "" || origin === identity ? identity : `${origin} (${identity})`;
}

function single(origin: string, offending: string, message: string): PoolsFound {
  return { pools: [], errors: [{ origin, pool: undefined, offending, message }] };
}

function oneLine(text: string): string {
  return text.replace(/\r\n|\r|\n/g, "\\n");
}
