import { isRecord, jsonTypeOf } from "../base/objects.ts";
import type { Family } from "./address.ts";
import type { Labels } from "./labels.ts";
import { ALL_KEYS, type KeyPurpose, type ReleaseReads } from "./metallb-version.ts";

/**
 * The part of a core/v1 Service the decisions read, as plain JSON. Every field is optional
 * because admission requests, manifests and `kubectl get -o yaml` output all omit different ones.
 */
export interface ServiceObject {
  readonly apiVersion?: string;
  readonly kind?: string;
  readonly metadata?: {
    readonly name?: string;
    readonly generateName?: string;
    readonly namespace?: string;
    readonly labels?: Labels;
    readonly annotations?: Readonly<Record<string, string>>;
  };
  readonly spec?: {
    readonly type?: string;
    readonly loadBalancerIP?: string;
    readonly loadBalancerClass?: string;
    readonly clusterIP?: string;
    readonly clusterIPs?: readonly string[];
    readonly ipFamilies?: readonly string[];
    readonly ipFamilyPolicy?: string;
    readonly externalTrafficPolicy?: string;
    readonly selector?: Labels;
    readonly ports?: readonly { readonly protocol?: string; readonly port?: number }[];
    /** Addresses kube-proxy routes to the Service on every node, whatever its type. */
    readonly externalIPs?: readonly string[];
  };
  readonly status?: {
    readonly loadBalancer?: {
      readonly ingress?: readonly { readonly ip?: string; readonly hostname?: string }[];
    };
  };
}

/**
 * lb-ip-guard's own annotation keys. MetalLB's keys depend on the release guarded:
 * `ReleaseReads` (metallb-version.ts) lists them.
 */
export const ANNOTATION = {
  autoAssign: "lb-ip-guard.dev/auto-assign",
  assignedFrom: "lb-ip-guard.dev/assigned-from",
} as const;

export function serviceRef(service: ServiceObject): string {
  const name = service.metadata?.name ?? `${service.metadata?.generateName ?? ""}<generated>`;
  return `${service.metadata?.namespace ?? "default"}/${name}`;
}

export function annotations(service: ServiceObject): Readonly<Record<string, string>> {
  return service.metadata?.annotations ?? {};
}

/** The first of `keys` present on the Service, with its value. */
export function firstAnnotation(
  service: ServiceObject,
  keys: readonly string[],
): { readonly key: string; readonly value: string } | undefined {
  const present = annotations(service);
  for (const key of keys) {
    const value = present[key];
    if (value !== undefined) return { key, value };
  }
  return undefined;
}

export function isLoadBalancer(service: ServiceObject): boolean {
  return service.spec?.type === "LoadBalancer";
}

export function wantsAutoAssign(service: ServiceObject): boolean {
  return annotations(service)[ANNOTATION.autoAssign] === "true";
}

/** Where the Service asks for addresses: nowhere, `spec.loadBalancerIP`, or an annotation key. */
export type AddressRequest =
  | { readonly source: "none" }
  | { readonly source: "spec"; readonly texts: readonly string[] }
  | { readonly source: "annotation"; readonly key: string; readonly texts: readonly string[] }
  | { readonly source: "both"; readonly key: string };

/**
 * What MetalLB's getDesiredLbIPs reads: an empty field or annotation is absent; each
 * comma-separated part of the annotation is trimmed, but spec.loadBalancerIP is parsed as it is
 * (" 10.0.0.1 " is invalid there, and MetalLB leaves such a Service pending).
 */
export function addressRequest(service: ServiceObject, keys: ReleaseReads): AddressRequest {
  const specIP = service.spec?.loadBalancerIP ?? "";
  const annotation = firstAnnotation(service, keys.loadBalancerIPs);
  if (annotation !== undefined && annotation.value !== "") {
    if (specIP !== "") return { source: "both", key: annotation.key };
    return {
      source: "annotation",
      key: annotation.key,
      // A third part is enough to refuse (at most two addresses, one per family): the rest of a
      // long list is neither split nor parsed.
      texts: annotation.value.split(",", 3).map((text) => text.trim()),
    };
  }
  if (specIP !== "") return { source: "spec", texts: [specIP] };
  return { source: "none" };
}

export function statusAddresses(service: ServiceObject): readonly string[] {
  return (service.status?.loadBalancer?.ingress ?? []).flatMap((entry) =>
    entry.ip ? [entry.ip] : [],
  );
}

/**
 * `spec.externalIPs`, its string entries (an address in it is held like a load-balancer
 * address). A review holding anything else there is refused at the edge (serviceShapeProblem),
 * as the API server refuses it; a manifest read offline keeps its strings.
 */
export function externalIPs(service: ServiceObject): readonly string[] {
  const listed: unknown = service.spec?.externalIPs;
  if (!Array.isArray(listed)) return [];
  return listed.every((entry) => typeof entry === "string")
    ? listed
    : listed.filter((entry): entry is string => typeof entry === "string");
}

export function sharingKey(service: ServiceObject, keys: ReleaseReads): string {
  return firstAnnotation(service, keys.allowSharedIP)?.value ?? "";
}

/**
 * A MetalLB key on the Service that the guarded release does not read, and what it reads for the
 * same purpose instead. The same value under a key it does read (a Service annotated for two
 * releases, during an upgrade) is no problem.
 */
export function ignoredKey(
  service: ServiceObject,
  keys: ReleaseReads,
): { readonly key: string; readonly instead: string } | undefined {
  const present = annotations(service);
  for (const purpose of ["loadBalancerIPs", "addressPool", "allowSharedIP"] as KeyPurpose[]) {
    const read = keys[purpose];
    const honoured =
      firstAnnotation(service, read)?.value ??
      (purpose === "loadBalancerIPs" ? service.spec?.loadBalancerIP : undefined);
    for (const key of ALL_KEYS[purpose]) {
      const value = present[key];
      if (value === undefined || read.includes(key) || value === honoured) continue;
      const instead = read[0] ?? (purpose === "loadBalancerIPs" ? "spec.loadBalancerIP" : "no key");
      return { key, instead };
    }
  }
  return undefined;
}

/** `(protocol, port)` pairs in MetalLB's sense; the protocol defaults to TCP as in the API. */
export function portKeys(service: ServiceObject): readonly string[] {
  return (service.spec?.ports ?? []).map((port) => `${port.protocol ?? "TCP"}/${port.port ?? 0}`);
}

/**
 * MetalLB lets Services share an address only when they send traffic to the same nodes: both
 * `externalTrafficPolicy: Cluster`, or both `Local` with identical selectors. Its key for a Local
 * Service is the selector, and for Cluster the empty string, so a Local Service without a
 * selector has Cluster's key (k8salloc.go's BackendKey).
 */
export function backendKey(service: ServiceObject): string {
  const selected = Object.keys(service.spec?.selector ?? {}).length > 0;
  if (service.spec?.externalTrafficPolicy !== "Local" || !selected) return "Cluster";
  const selector = Object.entries(service.spec?.selector ?? {})
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, value]) => `${key}=${value}`);
  return `Local{${selector.join(",")}}`;
}

export function declaredFamilies(service: ServiceObject): readonly Family[] {
  return (service.spec?.ipFamilies ?? []).filter(
    (family): family is Family => family === "IPv4" || family === "IPv6",
  );
}

/** Two families settled by the API server, or required: MetalLB then wants an address of each. */
export function isDualStack(service: ServiceObject): boolean {
  return (
    declaredFamilies(service).length === 2 ||
    (service.spec?.clusterIPs?.length ?? 0) === 2 ||
    service.spec?.ipFamilyPolicy === "RequireDualStack"
  );
}

/** How a field the decisions read must look: absent and null always do. */
type Shape = "string" | "number" | "strings" | "map" | Fields | readonly [Fields];
interface Fields {
  readonly [field: string]: Shape;
}

/** The fields of a Service this module (and so every decision) reads, and their types. */
const SERVICE_SHAPE: Fields = {
  metadata: {
    name: "string",
    generateName: "string",
    namespace: "string",
    labels: "map",
    annotations: "map",
  },
  spec: {
    type: "string",
    loadBalancerIP: "string",
    loadBalancerClass: "string",
    clusterIP: "string",
    clusterIPs: "strings",
    ipFamilies: "strings",
    ipFamilyPolicy: "string",
    externalTrafficPolicy: "string",
    externalIPs: "strings",
    selector: "map",
    ports: [{ protocol: "string", port: "number" }],
  },
  status: { loadBalancer: { ingress: [{ ip: "string", hostname: "string" }] } },
};

/**
 * A Shape made ready to check, once: each object's fields as a list, not keys to enumerate on
 * every review.
 */
type Check =
  | { readonly kind: "string" | "number" | "strings" | "map" }
  | { readonly kind: "object" | "objects"; readonly fields: readonly FieldCheck[] };
interface FieldCheck {
  readonly name: string;
  readonly check: Check;
}

function compile(shape: Shape): Check {
  if (typeof shape === "string") return { kind: shape };
  const [fields, kind] = Array.isArray(shape)
    ? [(shape as readonly [Fields])[0], "objects" as const]
    : [shape as Fields, "object" as const];
  return {
    kind,
    fields: Object.entries(fields).map(([name, field]) => ({ name, check: compile(field) })),
  };
}

const SERVICE_CHECK = compile(SERVICE_SHAPE);

/**
 * A value of the wrong type and where it is. The path is spelled on the way out, from the wrong
 * value up, so that a Service that passes (every review's) costs type tests and no strings.
 */
interface WrongType {
  path: string;
  readonly value: unknown;
  readonly expected: string;
}

/**
 * Why `value` cannot be read as a ServiceObject: the first field the decisions read that has
 * the wrong type, named by its path under `path` (`request.object.spec.ports[0].port is a
 * string; expected a number`), or undefined. Only those fields are looked at, so the check costs
 * a few dozen type tests; an object that passes can be read without a type error.
 */
export function serviceShapeProblem(value: unknown, path: string): string | undefined {
  const wrong = wrongType(value, SERVICE_CHECK);
  return wrong === undefined
    ? undefined
    : `${path}${wrong.path} is ${jsonTypeOf(wrong.value)}; expected ${wrong.expected}`;
}

function wrongType(value: unknown, check: Check): WrongType | undefined {
  if (value === undefined || value === null) return undefined;
  switch (check.kind) {
    case "string":
      return typeof value === "string" ? undefined : { path: "", value, expected: "a string" };
    case "number":
      return typeof value === "number" ? undefined : { path: "", value, expected: "a number" };
    case "strings":
      if (!Array.isArray(value)) return { path: "", value, expected: "a list of strings" };
      for (let i = 0; i < value.length; i++)
        if (typeof value[i] !== "string")
          return { path: `[${i}]`, value: value[i], expected: "a string" };
      return undefined;
    case "map":
      if (!isRecord(value)) return { path: "", value, expected: "a map of strings" };
      for (const key in value)
        if (typeof value[key] !== "string")
          return {
            path: `[${JSON.stringify(key.slice(0, 64))}]`,
            value: value[key],
            expected: "a string",
          };
      return undefined;
    case "objects":
      if (!Array.isArray(value)) return { path: "", value, expected: "a list of objects" };
      for (let i = 0; i < value.length; i++) {
        const entry: unknown = value[i];
        const wrong = isRecord(entry)
          ? wrongField(entry, check.fields)
          : { path: "", value: entry, expected: "an object" };
        if (wrong !== undefined) {
          wrong.path = `[${i}]${wrong.path}`;
          return wrong;
        }
      }
      return undefined;
    case "object":
      return isRecord(value)
        ? wrongField(value, check.fields)
        : { path: "", value, expected: "an object" };
  }
}

function wrongField(
  value: Readonly<Record<string, unknown>>,
  fields: readonly FieldCheck[],
): WrongType | undefined {
  for (let i = 0; i < fields.length; i++) {
    const field = fields[i] as FieldCheck;
    const wrong = wrongType(value[field.name], field.check);
    if (wrong !== undefined) {
      wrong.path = `.${field.name}${wrong.path}`;
      return wrong;
    }
  }
  return undefined;
}
