// spec.externalIPs is an address too (CVE-2020-8554: a Service that lists another's address in
// externalIPs takes its traffic on every node): an address of a pool is MetalLB's to hand out,
// and one that another Service holds is not free. Services of every type and class are decided.

import { formatAddress } from "../address.ts";
import type { ServiceObject } from "../service.ts";
import { type ClusterView, type Denial, deny } from "./decision.ts";
import { externalHoldingsOf } from "./holdings.ts";
import { freeHint } from "./messages.ts";

/**
 * The refusal of a Service's externalIPs, or undefined when each is in no pool and held by no
 * other Service. An entry that is no address is the API server's to refuse (it validates the
 * field), not this one's.
 */
export function checkExternalIPs(
  service: ServiceObject,
  view: ClusterView,
  ref: string,
): Denial | undefined {
  for (const address of externalHoldingsOf(service)) {
    const shown = formatAddress(address);
    const pool = view.pools.poolOf(address.family, address.value);
    const holder = view.usage
      .holdersOf(address.family, address.value)
      .find((other) => other.ref !== ref);
    if (holder !== undefined) {
      return deny(
        "AddressInUse",
        `${ref} lists ${shown} in spec.externalIPs, which ${holder.ref} already holds; an address in externalIPs takes its traffic on every node, so it must be held by no other Service`,
        [address],
        pool,
      );
    }
    if (pool !== undefined) {
      return deny(
        "ExternalIPInPool",
        `${ref} lists ${shown} in spec.externalIPs, which lies in pool "${pool.name}": a pool's addresses are MetalLB's to hand out; ask for it as a LoadBalancer (spec.loadBalancerIP or the address annotation), or use an address outside every pool; ${freeHint(pool, view)}`,
        [address],
        pool,
      );
    }
  }
  return undefined;
}
