// What each reason code means and how to fix it: the README's troubleshooting table, word for
// word (a test holds the two together), for the formats that carry help beside a finding (SARIF's
// rules). Typed by the codes themselves, so a new code cannot be added without its help.

import type { AdmissionReason } from "../../admission/admit.ts";

export interface ReasonHelp {
  /** Markdown, as in the README's "meaning" column. */
  readonly meaning: string;
  /** Markdown, as in the README's "fix" column. */
  readonly fix: string;
}

export const REASON_HELP: Readonly<Record<AdmissionReason, ReasonHelp>> = {
  InvalidAddress: {
    meaning: "the requested string is not an IP address (HTTP 422)",
    fix: "fix the typo; one address, or two of different families, comma separated",
  },
  ConflictingFields: {
    meaning: "both `spec.loadBalancerIP` and a MetalLB address annotation are set",
    fix: "keep only `metallb.io/loadBalancerIPs`",
  },
  FamilyMismatch: {
    meaning:
      "an address of a family the Service's `ipFamilies` lacks, two of one family, or two under `SingleStack`",
    fix: "match `ipFamilies`/`ipFamilyPolicy` to the addresses",
  },
  NotInAnyPool: {
    meaning: "the address lies in no pool",
    fix: "pick an address from a pool (the message lists them) or extend a pool",
  },
  PoolNotFound: {
    meaning: "the pool annotation names a pool that does not exist",
    fix: "fix the name (the message lists known pools)",
  },
  PoolMismatch: {
    meaning: "the address is not in the pool the Service names (or two addresses span two pools)",
    fix: "use an address of that pool, or drop the pool annotation",
  },
  PoolNotAllowed: {
    meaning: "the pool's `serviceAllocation` excludes this namespace or these labels",
    fix: "use a pool open to the Service, or label it as the pool requires",
  },
  AddressInUse: {
    meaning:
      "another Service holds the address (asked for, served, or in its `externalIPs`), and sharing does not apply",
    fix: "use a free address (the message lists them), or give both Services the same `allow-shared-ip` key (never for externalIPs)",
  },
  ExternalIPInPool: {
    meaning:
      "an address in `spec.externalIPs` lies in a pool: pool addresses are MetalLB's to hand out",
    fix: "request it as a `LoadBalancer` (`spec.loadBalancerIP` or the address annotation), or use an address outside every pool",
  },
  SharingConflict: {
    meaning: "same sharing key, but a `(protocol, port)` repeats or the backends differ",
    fix: "use distinct ports; share only between both-`Cluster` or both-`Local` Services with one selector",
  },
  PoolExhausted: {
    meaning: "no free address to assign (auto-assign, or a LoadBalancer asking for none)",
    fix: "free an address or grow the pool",
  },
  IgnoredAnnotation: {
    meaning:
      "a MetalLB key that the guarded MetalLB release does not read (it would serve the Service as if the key were absent)",
    fix: "use the key the message names (`spec.loadBalancerIP` on v0.11), or upgrade MetalLB",
  },
  AddressReserved: {
    meaning:
      "an `AddressReservation` reserves the address for another namespace, or for another Service of this one",
    fix: "take a free address (the message lists them), or have the reservation's owner change or delete it",
  },
  QuotaExceeded: {
    meaning:
      "the grant or reservation would take the namespace past its `lb-ip-guard.dev/address-quota`",
    fix: "free an address of the namespace (delete a Service or reservation), share one, or raise the quota on the Namespace",
  },
  NotReady: {
    meaning:
      "the webhook has not synced pools and Services yet, or could not claim the address through the API: it refuses rather than guesses",
    fix: "retry in a few seconds; if it persists, check `/readyz`, the logs for watch or claim errors, and the Leases RBAC of the webhook's namespace",
  },
};

/** A help text without its Markdown: the README's cells use code spans only. */
export function plainText(markdown: string): string {
  return markdown.replaceAll("`", "");
}
