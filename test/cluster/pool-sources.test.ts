import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { PoolSources, type RejectedConfig } from "../../src/cluster/pool-sources.ts";
import type { PoolConfigError } from "../../src/ipam/config/errors.ts";
import type { Pool } from "../../src/ipam/pool.ts";
import { parseAddressBlock } from "../../src/ipam/range.ts";

function configMap(config: string, namespace = "metallb-system") {
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "config", namespace },
    data: { config },
  };
}

const legacy = (name: string, range: string) =>
  `address-pools:\n- name: ${name}\n  protocol: layer2\n  addresses:\n  - ${range}\n`;

function ipAddressPool(name: string, addresses: unknown, extra: Record<string, unknown> = {}) {
  return {
    apiVersion: "metallb.io/v1beta1",
    kind: "IPAddressPool",
    metadata: { name, namespace: "metallb-system" },
    spec: { addresses, ...extra },
  };
}

function staticPool(name: string, block: string): Pool {
  const parsed = parseAddressBlock(block);
  if (!parsed.ok) throw new Error(parsed.error);
  return {
    name,
    ranges: [parsed.value],
    autoAssign: true,
    avoidBuggyIPs: false,
    serviceAllocation: undefined,
    origin: "pools.yaml",
  };
}

function sources(staticPools: readonly Pool[] = []) {
  const rejected: RejectedConfig[] = [];
  const conflicts: PoolConfigError[][] = [];
  const pools = new PoolSources({
    staticPools,
    metallbNamespace: "metallb-system",
    onRejected: (report) => rejected.push(report),
    onConflicts: (errors) => conflicts.push([...errors]),
  });
  const names = () => pools.poolSet.pools.map((pool) => pool.name);
  return { pools, rejected, conflicts, names };
}

describe("PoolSources", () => {
  test("the ConfigMap's pools, with the cluster object as origin", () => {
    const { pools, names, rejected } = sources();
    pools.setConfigMap(configMap(legacy("default", "192.168.35.100-192.168.35.110")));
    assert.deepEqual(names(), ["default"]);
    assert.equal(pools.poolSet.byName("default")?.origin, "ConfigMap metallb-system/config");
    assert.deepEqual(rejected, []);
  });

  test("a broken ConfigMap keeps the last good pools and is reported once per distinct error", () => {
    const { pools, names, rejected } = sources();
    pools.setConfigMap(configMap(legacy("default", "192.168.35.100-192.168.35.110")));
    const broken = configMap(legacy("default", "192.168.35.300"));
    pools.setConfigMap(broken);
    assert.deepEqual(names(), ["default"]);
    assert.equal(rejected.length, 1);
    assert.equal(rejected[0]?.source, "ConfigMap metallb-system/config");
    assert.deepEqual(rejected[0]?.kept, ["default"]);
    assert.match(rejected[0]?.errors[0]?.message ?? "", /192\.168\.35\.300/);
    // A relist delivers the same broken object again: nothing new to say.
    pools.setConfigMap(broken);
    assert.equal(rejected.length, 1);
    // Fixed, then broken the same way again: reported again.
    pools.setConfigMap(configMap(legacy("lan", "10.0.0.0/24")));
    assert.deepEqual(names(), ["lan"]);
    pools.setConfigMap(broken);
    assert.equal(rejected.length, 2);
    assert.deepEqual(rejected[1]?.kept, ["lan"]);
    assert.deepEqual(names(), ["lan"]);
  });

  test("a config with one bad pool is refused whole, as MetalLB does", () => {
    const { pools, names, rejected } = sources();
    pools.setConfigMap(
      configMap(
        `${legacy("a", "10.0.0.0/24")}${legacy("b", "10.0.1.0/33").replace("address-pools:\n", "")}`,
      ),
    );
    assert.deepEqual(names(), []);
    assert.equal(rejected.length, 1);
    assert.deepEqual(rejected[0]?.kept, []);
  });

  test("YAML that does not parse is refused, not thrown", () => {
    const { pools, names, rejected } = sources();
    pools.setConfigMap(configMap(legacy("default", "10.0.0.0/24")));
    pools.setConfigMap(configMap("address-pools: [\n"));
    assert.deepEqual(names(), ["default"]);
    assert.equal(rejected.length, 1);
  });

  test("a deleted ConfigMap contributes nothing", () => {
    const { pools, names } = sources();
    pools.setConfigMap(configMap(legacy("default", "10.0.0.0/24")));
    pools.setConfigMap(undefined);
    assert.deepEqual(names(), []);
  });

  test("IPAddressPools are kept per object: a broken edit keeps that object's last good pool", () => {
    const { pools, names, rejected } = sources();
    pools.putIPAddressPool(ipAddressPool("lan", ["10.0.0.0/24"]));
    pools.putIPAddressPool(ipAddressPool("dmz", ["10.0.1.0/24"]));
    pools.putIPAddressPool(ipAddressPool("lan", ["10.0.0.1/24"])); // host bits set
    assert.deepEqual(names(), ["dmz", "lan"]);
    assert.equal(pools.poolSet.byName("lan")?.ranges[0]?.first, 0x0a000000n, "still 10.0.0.0/24");
    assert.equal(rejected.length, 1);
    assert.equal(rejected[0]?.source, "IPAddressPool metallb-system/lan");
    assert.deepEqual(rejected[0]?.kept, ["lan"]);
    // A new pool that is broken from the start contributes nothing.
    pools.putIPAddressPool(ipAddressPool("new", "not-a-list"));
    assert.deepEqual(names(), ["dmz", "lan"]);
    assert.deepEqual(rejected[1]?.kept, []);
    pools.deleteIPAddressPool(ipAddressPool("dmz", []));
    assert.deepEqual(names(), ["lan"]);
  });

  test("a relist replaces every IPAddressPool: unlisted ones are gone, the ConfigMap stays", () => {
    const { pools, names } = sources();
    pools.setConfigMap(configMap(legacy("default", "192.168.35.100-192.168.35.110")));
    pools.putIPAddressPool(ipAddressPool("a", ["10.0.0.0/24"]));
    pools.putIPAddressPool(ipAddressPool("b", ["10.0.1.0/24"]));
    pools.replaceIPAddressPools([
      ipAddressPool("b", ["10.0.1.0/24"]),
      ipAddressPool("c", ["10.0.2.0/24"]),
    ]);
    assert.deepEqual(names(), ["b", "c", "default"]);
  });

  test("conflicts between sources: static first, then ConfigMap, then IPAddressPools by name", () => {
    const { pools, names, conflicts } = sources([staticPool("default", "10.9.0.0/24")]);
    pools.setConfigMap(configMap(legacy("default", "192.168.35.0/24")));
    assert.deepEqual(names(), ["default"]);
    assert.equal(pools.poolSet.byName("default")?.origin, "pools.yaml");
    assert.equal(conflicts.length, 1);
    assert.match(conflicts[0]?.[0]?.message ?? "", /duplicate definition of pool "default"/);
    pools.putIPAddressPool(ipAddressPool("z", ["10.9.0.128/25"]));
    pools.putIPAddressPool(ipAddressPool("a", ["10.8.0.0/24"]));
    assert.deepEqual(names(), ["a", "default"]);
    // Only the new conflict is reported; the standing one was said already.
    assert.equal(conflicts.length, 2);
    assert.equal(conflicts[1]?.length, 1);
    assert.equal(conflicts[1]?.[0]?.pool, "z");
  });

  test("IPAddressPools of another namespace and foreign objects are ignored", () => {
    const { pools, names, rejected } = sources();
    pools.putIPAddressPool({
      ...ipAddressPool("x", ["10.0.0.0/24"]),
      metadata: { name: "x", namespace: "other" },
    });
    pools.setConfigMap(configMap(legacy("default", "10.0.0.0/24"), "kube-system"));
    assert.deepEqual(names(), []);
    assert.deepEqual(rejected, []);
  });
});
