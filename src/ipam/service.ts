import type { Family } from "./address.ts";
import type { Labels } from "./labels.ts";

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
    readonly ipFamilies?: readonly string[];
    readonly ipFamilyPolicy?: string;
    readonly externalTrafficPolicy?: string;
    readonly selector?: Labels;
    readonly ports?: readonly { readonly protocol?: string; readonly port?: number }[];
  };
  readonly status?: {
    readonly loadBalancer?: {
      readonly ingress?: readonly { readonly ip?: string; readonly hostname?: string }[];
    };
  };
}

/** Annotation keys of the contract. Where MetalLB has two prefixes, the `metallb.io/` one wins. */
export const ANNOTATION = {
  loadBalancerIPs: ["metallb.io/loadBalancerIPs", "metallb.universe.tf/loadBalancerIPs"],
  addressPool: [
    "metallb.io/address-pool",
    "metallb.universe.tf/address-pool",
    "lb-ip-guard.dev/pool",
  ],
  allowSharedIP: ["metallb.io/allow-shared-ip", "metallb.universe.tf/allow-shared-ip"],
  autoAssign: "lb-ip-guard.dev/auto-assign",
  assignedFrom: "lb-ip-guard.dev/assigned-from",
} as const;

export const DEPRECATED_PREFIX = "metallb.universe.tf/";

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

export function addressRequest(service: ServiceObject): AddressRequest {
  const specIP = service.spec?.loadBalancerIP?.trim() ?? "";
  const annotation = firstAnnotation(service, ANNOTATION.loadBalancerIPs);
  const annotated = annotation?.value.trim() ?? "";
  if (specIP !== "" && annotation !== undefined && annotated !== "")
    return { source: "both", key: annotation.key };
  if (annotation !== undefined && annotated !== "") {
    return {
      source: "annotation",
      key: annotation.key,
      texts: annotated.split(",").map((text) => text.trim()),
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

export function sharingKey(service: ServiceObject): string {
  return firstAnnotation(service, ANNOTATION.allowSharedIP)?.value ?? "";
}

/** `(protocol, port)` pairs in MetalLB's sense; the protocol defaults to TCP as in the API. */
export function portKeys(service: ServiceObject): readonly string[] {
  return (service.spec?.ports ?? []).map((port) => `${port.protocol ?? "TCP"}/${port.port ?? 0}`);
}

/**
 * MetalLB lets Services share an address only when they send traffic to the same nodes: both
 * `externalTrafficPolicy: Cluster`, or both `Local` with identical selectors.
 */
export function backendKey(service: ServiceObject): string {
  if (service.spec?.externalTrafficPolicy !== "Local") return "Cluster";
  const selector = Object.entries(service.spec.selector ?? {})
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, value]) => `${key}=${value}`);
  return `Local{${selector.join(",")}}`;
}

export function declaredFamilies(service: ServiceObject): readonly Family[] {
  return (service.spec?.ipFamilies ?? []).filter(
    (family): family is Family => family === "IPv4" || family === "IPv6",
  );
}
