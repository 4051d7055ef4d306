// A write of services/status: what status.loadBalancer.ingress adds is what the Service is served
// on, so an address another Service holds there is a hijack (CVE-2020-8554's other half). Only
// that is judged: MetalLB's own write of what the Service requested or was granted, or of an
// address it may share, always passes.

import { formatAddress, parseAddress } from "../address.ts";
import { type ServiceObject, statusAddresses } from "../service.ts";
import { mayShare } from "../usage.ts";
import { type ClusterView, type Denial, deny } from "./decision.ts";
import { holderOf } from "./holdings.ts";
import type { Policy } from "./policy.ts";

/**
 * The refusal of a status write, or undefined. Each address the write adds to the stored status
 * (all of them without one) must be held by no other Service, unless MetalLB's sharing rule
 * lets the two share it. Pools and families are not judged: a status write says what is served,
 * and one that no other Service's address is in takes nothing from anyone.
 */
export function checkStatusWrite(
  service: ServiceObject,
  stored: ServiceObject | undefined,
  view: ClusterView,
  policy: Policy,
  ref: string,
): Denial | undefined {
  const before = stored === undefined ? [] : statusAddresses(stored);
  for (const text of statusAddresses(service)) {
    if (before.includes(text)) continue;
    const parsed = parseAddress(text);
    if (!parsed.ok) continue;
    const address = parsed.value;
    const others = view.usage
      .holdersOf(address.family, address.value)
      .filter((other) => other.ref !== ref);
    if (others.length === 0) continue;
    const holder = holderOf(service, policy, ref);
    const foreign = others.find((other) => !mayShare(holder, other));
    if (foreign === undefined) continue;
    return deny(
      "AddressInUse",
      `${ref}: a status write puts ${formatAddress(address)} into status.loadBalancer.ingress, which ${foreign.ref} already holds and does not share with it; only the Service's own address may be written there`,
      [address],
      view.pools.poolOf(address.family, address.value),
    );
  }
  return undefined;
}
