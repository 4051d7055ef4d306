// Builders shared by the IPAM tests: an address, a pool with MetalLB's defaults, a
// serviceAllocation, and the policy of a MetalLB release.

import assert from "node:assert/strict";
import { type IPAddress, parseAddress } from "../../src/ipam/address.ts";
import { type Policy, policyFor } from "../../src/ipam/decide.ts";
import { parseMetalLBVersion } from "../../src/ipam/metallb-version.ts";
import type { Pool, ServiceAllocation } from "../../src/ipam/pool.ts";
import { type AddressRange, parseAddressBlock } from "../../src/ipam/range.ts";
import type { ServiceObject } from "../../src/ipam/service.ts";

/** An address from its text; a text that does not parse fails the test. */
export function address(text: string): IPAddress {
  const parsed = parseAddress(text);
  assert.ok(parsed.ok, `${text}: ${parsed.ok ? "" : parsed.error}`);
  return parsed.value;
}

/** A pool of `ranges` (AddressRange values, or CIDR/range strings) with MetalLB's defaults. */
export function pool(
  name: string,
  ranges: (AddressRange | string)[],
  extra: Partial<Pool> = {},
): Pool {
  return {
    name,
    ranges: ranges.map((range) => {
      if (typeof range !== "string") return range;
      const parsed = parseAddressBlock(range);
      if (!parsed.ok) throw new Error(parsed.error);
      return parsed.value;
    }),
    autoAssign: true,
    avoidBuggyIPs: false,
    serviceAllocation: undefined,
    origin: "test",
    ...extra,
  };
}

export function allocation(extra: Partial<ServiceAllocation>): ServiceAllocation {
  return {
    priority: undefined,
    namespaces: [],
    namespaceSelectors: [],
    serviceSelectors: [],
    ...extra,
  };
}

/** The policy guarding one MetalLB release, e.g. "v0.11.0". */
export function policyOfRelease(text: string): Policy {
  const parsed = parseMetalLBVersion(text);
  assert.ok(parsed.ok, text);
  return policyFor({ release: parsed.value });
}

/** What the tests vary of a Service; the rest is a one-port LoadBalancer. */
export interface Spec {
  type?: string;
  ip?: string;
  annotations?: Record<string, string>;
  labels?: Record<string, string>;
  ports?: { protocol?: string; port: number }[];
  ipFamilies?: string[];
  ipFamilyPolicy?: string;
  externalTrafficPolicy?: string;
  selector?: Record<string, string>;
  loadBalancerClass?: string;
}

/** A Service `namespace/name` of `spec`. */
export function service(ref: string, spec: Spec = {}): ServiceObject {
  const [namespace, name] = ref.split("/");
  return {
    metadata: { namespace, name, annotations: spec.annotations ?? {}, labels: spec.labels ?? {} },
    spec: {
      type: spec.type ?? "LoadBalancer",
      ...(spec.ip !== undefined && { loadBalancerIP: spec.ip }),
      ports: spec.ports ?? [{ port: 80 }],
      ...(spec.ipFamilies && { ipFamilies: spec.ipFamilies }),
      ...(spec.ipFamilyPolicy && { ipFamilyPolicy: spec.ipFamilyPolicy }),
      ...(spec.externalTrafficPolicy && { externalTrafficPolicy: spec.externalTrafficPolicy }),
      ...(spec.selector && { selector: spec.selector }),
      ...(spec.loadBalancerClass && { loadBalancerClass: spec.loadBalancerClass }),
    },
  };
}
