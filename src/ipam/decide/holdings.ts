// What a Service holds, as the usage index records it: its sharing identity and its addresses,
// and apart from them the addresses it lists in spec.externalIPs, which it shares with no one.

import { type IPAddress, parseAddress } from "../address.ts";
import {
  addressRequest,
  backendKey,
  externalIPs,
  isLoadBalancer,
  portKeys,
  type ServiceObject,
  serviceRef,
  sharingKey,
  statusAddresses,
} from "../service.ts";
import type { Holder, UsageIndex } from "../usage.ts";
import { isInScope, type Policy } from "./policy.ts";

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
 * what MetalLB already assigned in status. Out-of-scope Services hold nothing here (their
 * externalIPs are `externalHoldingsOf`).
 */
export function holdingsOf(service: ServiceObject, policy: Policy): readonly IPAddress[] {
  if (!isInScope(service, policy) || !isLoadBalancer(service)) return [];
  const request = addressRequest(service, policy.reads);
  const requested =
    request.source === "spec" || request.source === "annotation" ? request.texts : [];
  const specIP = request.source === "both" ? [service.spec?.loadBalancerIP ?? ""] : [];
  return parsedAddresses([...requested, ...specIP, ...statusAddresses(service)]);
}

/** What MetalLB serves a Service (its status), where parseable. */
export function servedAddresses(service: ServiceObject): readonly IPAddress[] {
  return parsedAddresses(statusAddresses(service));
}

/** The usage owner of a Service's externalIPs, beside its own ref (which holds the rest). */
export const externalOwner = (ref: string): string => `external:${ref}`;

/**
 * The addresses of a Service's spec.externalIPs (when parseable), of any Service, in scope or
 * not: kube-proxy routes each of them to the Service on every node, so no one else may have it.
 */
export function externalHoldingsOf(service: ServiceObject): readonly IPAddress[] {
  return parsedAddresses(externalIPs(service));
}

/** The holder of a Service's externalIPs: no sharing key, so MetalLB's sharing never applies. */
function externalHolderOf(service: ServiceObject, ref: string): Holder {
  return { ref, sharingKey: "", ports: portKeys(service), backendKey: backendKey(service) };
}

type UsageEntry = readonly [owner: string, holder: Holder, addresses: readonly IPAddress[]];

/** The usage entries of one Service (none when it holds nothing), for an index built at once. */
export function usageEntriesOf(
  service: ServiceObject,
  policy: Policy,
  ref: string = serviceRef(service),
): UsageEntry[] {
  const entries: UsageEntry[] = [];
  const held = holdingsOf(service, policy);
  if (held.length > 0) entries.push([ref, holderOf(service, policy, ref), held]);
  const external = externalHoldingsOf(service);
  if (external.length > 0)
    entries.push([externalOwner(ref), externalHolderOf(service, ref), external]);
  return entries;
}

/**
 * Records (or updates) what a Service holds, both kinds, in place of what it held before. An
 * owner whose holdings did not change is set again as it is, which the index makes free.
 */
export function recordService(
  index: UsageIndex,
  service: ServiceObject,
  policy: Policy,
  ref: string = serviceRef(service),
): void {
  const held = holdingsOf(service, policy);
  if (held.length === 0) index.delete(ref);
  else index.set(ref, holderOf(service, policy, ref), held);
  const external = externalHoldingsOf(service);
  if (external.length === 0) index.delete(externalOwner(ref));
  else index.set(externalOwner(ref), externalHolderOf(service, ref), external);
}

/** Drops what a Service held, both kinds. */
export function forgetService(index: UsageIndex, ref: string): void {
  index.delete(ref);
  index.delete(externalOwner(ref));
}

function parsedAddresses(texts: readonly string[]): readonly IPAddress[] {
  return texts.flatMap((text) => {
    const parsed = parseAddress(text);
    return parsed.ok ? [parsed.value] : [];
  });
}
