// Which Service keys each MetalLB release reads (docs/metallb-versions.md has the source lines).

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  formatMetalLBVersion,
  parseMetalLBVersion,
  readsOf,
} from "../../src/ipam/metallb-version.ts";

function keysOf(text: string | undefined) {
  if (text === undefined) return readsOf(undefined);
  const parsed = parseMetalLBVersion(text);
  assert.ok(parsed.ok, text);
  return readsOf(parsed.value);
}

describe("MetalLB releases", () => {
  test("release numbers parse with or without v and with a pre-release suffix", () => {
    for (const [text, shown] of [
      ["v0.11.0", "v0.11.0"],
      ["0.16.2", "v0.16.2"],
      ["v0.14.9-rc.1", "v0.14.9"],
      [" v0.13.5 ", "v0.13.5"],
    ] as const) {
      const parsed = parseMetalLBVersion(text);
      assert.ok(parsed.ok, text);
      assert.equal(formatMetalLBVersion(parsed.value), shown);
    }
    for (const bad of ["", "main", "v0.11", "latest", "sha256:abc"]) {
      const parsed = parseMetalLBVersion(bad);
      assert.equal(parsed.ok, false, bad);
      assert.match(parsed.ok ? "" : parsed.error, /expected vMAJOR\.MINOR\.PATCH/);
    }
  });

  test("each release reads the keys its sources read, the metallb.io/ ones first once it has them", () => {
    const table: [string | undefined, string[], string[], string[], boolean][] = [
      [
        "v0.11.0",
        [],
        ["metallb.universe.tf/address-pool", "lb-ip-guard.dev/pool"],
        ["metallb.universe.tf/allow-shared-ip"],
        false,
      ],
      [
        "v0.12.1",
        ["metallb.universe.tf/loadBalancerIPs"],
        ["metallb.universe.tf/address-pool", "lb-ip-guard.dev/pool"],
        ["metallb.universe.tf/allow-shared-ip"],
        false,
      ],
      [
        "v0.14.8",
        ["metallb.universe.tf/loadBalancerIPs"],
        ["metallb.universe.tf/address-pool", "lb-ip-guard.dev/pool"],
        ["metallb.universe.tf/allow-shared-ip"],
        true,
      ],
    ];
    const current = (release: string | undefined): (typeof table)[number] => [
      release,
      ["metallb.io/loadBalancerIPs", "metallb.universe.tf/loadBalancerIPs"],
      ["metallb.io/address-pool", "metallb.universe.tf/address-pool", "lb-ip-guard.dev/pool"],
      ["metallb.io/allow-shared-ip", "metallb.universe.tf/allow-shared-ip"],
      true,
    ];
    table.push(current("v0.14.9"), current("v0.16.2"), current(undefined));
    for (const [release, ips, pool, share, readsClass] of table) {
      const keys = keysOf(release);
      assert.deepEqual(
        [keys.loadBalancerIPs, keys.addressPool, keys.allowSharedIP, keys.filtersByClass],
        [ips, pool, share, readsClass],
        release ?? "unknown",
      );
    }
    assert.equal(keysOf("v0.12.0").loadBalancerIPs.length, 1, "the annotation arrived in v0.12.0");
    assert.equal(keysOf("v0.13.0").filtersByClass, true, "the class filter in v0.13");
    // The ConfigMap until v0.12, IPAddressPools from v0.13 on; both when unknown.
    for (const [release, configMap, pools] of [
      ["v0.11.0", true, false],
      ["v0.12.1", true, false],
      ["v0.13.0", false, true],
      ["v0.16.2", false, true],
      [undefined, true, true],
    ] as const) {
      const reads = keysOf(release);
      assert.deepEqual([reads.legacyConfigMap, reads.ipAddressPools], [configMap, pools], release);
    }
  });
});
