// Quotas of addresses per namespace: a Namespace annotated `lb-ip-guard.dev/address-quota: "N"`
// holds at most N distinct pool addresses, its Services' and its reservations' (an address its
// Services share counts once). Kubernetes' ResourceQuota counts LoadBalancer Services instead,
// and a shared address twice (kubernetes/website #16356).

import { formatAddressList, type IPAddress, sameAddress } from "../address.ts";
import { addressKey, namespaceOf } from "../usage.ts";
import { type ClusterView, type Denial, deny } from "./decision.ts";

/** The Namespace annotation that sets the quota. */
export const QUOTA_ANNOTATION = "lb-ip-guard.dev/address-quota";

/**
 * The quota an annotation value sets: a non-negative integer, else undefined (no quota; the
 * Namespace's admission is not ours to refuse, so a typo is reported by `pools`, not enforced).
 */
export function parseQuota(value: unknown): number | undefined {
  if (typeof value !== "string" || !/^\s*\d+\s*$/.test(value)) return undefined;
  const quota = Number(value.trim());
  return Number.isSafeInteger(quota) ? quota : undefined;
}

/** What a namespace holds and has reserved, as distinct pool addresses, apart from `except`. */
export function namespaceAddresses(
  view: ClusterView,
  namespace: string,
  except: { readonly service?: string; readonly reservation?: string },
): Map<string, IPAddress> {
  const counted = new Map<string, IPAddress>();
  for (const [key, address] of view.usage.heldInNamespace(namespace, except.service ?? "")) {
    if (view.pools.poolOf(address.family, address.value) !== undefined) counted.set(key, address);
  }
  for (const reservation of view.reservations?.inNamespace(namespace) ?? []) {
    if (reservation.name === except.reservation) continue;
    for (const address of reservation.addresses) counted.set(addressKey(address), address);
  }
  return counted;
}

/**
 * The refusal of a grant (to the Service `ref`) or reservation that takes `addresses` and
 * would bring its namespace past its quota. Addresses the grantee already has (`own`: an UPDATE
 * that adds no address) are never refused: nothing held is ever moved, whatever the quota is now.
 */
export function quotaDenial(
  view: ClusterView,
  ref: string,
  addresses: readonly IPAddress[],
  own: readonly IPAddress[],
  except: { readonly service?: string; readonly reservation?: string },
): Denial | undefined {
  if (view.quotaOf === undefined) return undefined;
  const namespace = namespaceOf(ref);
  const quota = view.quotaOf(namespace);
  if (quota === undefined) return undefined;
  if (addresses.every((address) => own.some((kept) => sameAddress(kept, address))))
    return undefined;
  const counted = namespaceAddresses(view, namespace, except);
  const before = counted.size;
  for (const address of addresses) counted.set(addressKey(address), address);
  if (counted.size <= quota || counted.size === before) return undefined;
  return deny(
    "QuotaExceeded",
    `${ref} would take ${formatAddressList(addresses)}, but namespace ${namespace} may hold ${quota} address${quota === 1 ? "" : "es"} (${QUOTA_ANNOTATION}) and holds ${before} already${before > 0 ? ` (${formatAddressList([...counted.values()].slice(0, Math.min(before, 8)))}${before > 8 ? ", ..." : ""})` : ""}; free one of them, or raise the quota on the Namespace`,
    addresses,
  );
}
