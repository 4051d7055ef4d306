// What a Service holds, as the usage index records it: its sharing identity and its addresses.

import { type IPAddress, parseAddress } from "../address.ts";
import {
  addressRequest,
  backendKey,
  isLoadBalancer,
  portKeys,
  type ServiceObject,
  serviceRef,
  sharingKey,
  statusAddresses,
} from "../service.ts";
import type { Holder } from "../usage.ts";
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
