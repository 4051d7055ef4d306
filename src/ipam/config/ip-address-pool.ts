// A `metallb.io` IPAddressPool (v1beta1 or v1beta2), the pool source of MetalLB from v0.13.

import { isRecord } from "../../base/objects.ts";
import { addressRanges } from "./address-ranges.ts";
import type { PoolsFound } from "./errors.ts";
import { Issues, singleError } from "./errors.ts";
import { field, optionalBoolean, show, suggest } from "./fields.ts";
import { parseServiceAllocation } from "./selector.ts";

const SPEC_KEYS = ["addresses", "autoAssign", "avoidBuggyIPs", "serviceAllocation"] as const;

/** A `metallb.io` IPAddressPool object. `origin` is used as given. */
export function poolFromIPAddressPool(object: unknown, origin: string): PoolsFound {
  if (!isRecord(object)) {
    return singleError(
      origin,
      show(object),
      `an IPAddressPool must be an object, not ${show(object)}`,
    );
  }
  const metadata = field(object, "metadata");
  const rawName = isRecord(metadata) ? field(metadata, "name") : undefined;
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
  if (!isRecord(spec)) {
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
