// Round trip on generated configurations: for any legacy config and any set of Services, the
// converted objects (rendered to YAML and read back) decide every Service as the ConfigMap did.
// In-process, through the same comparison `convert --check` prints.

import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { stringify } from "yaml";
import { compareDecisions } from "../../../src/cli/convert/command.ts";
import { renderConversion } from "../../../src/cli/convert/render.ts";
import { convertLegacyConfig } from "../../../src/ipam/config/convert.ts";
import { legacyConfigFromText } from "../../../src/ipam/config/legacy.ts";
import { parseManifests } from "../../../src/manifests/loader.ts";

/** Pool i owns 10.0.i.0/24; a range in it may start at .0 or end at .255 (avoid-buggy-ips). */
const poolArbitrary = (index: number) =>
  fc.record({
    name: fc.constant(`pool-${index}`),
    protocol: fc.constantFrom("layer2", "bgp"),
    "auto-assign": fc.option(fc.boolean(), { nil: undefined }),
    "avoid-buggy-ips": fc.option(fc.boolean(), { nil: undefined }),
    addresses: fc
      .constantFrom("0/30", "252/30", "250-255", "16/28", "100-103")
      .map((tail) =>
        tail.includes("-")
          ? `10.0.${index}.${tail.replace("-", ` - 10.0.${index}.`)}`
          : `10.0.${index}.${tail}`,
      )
      .map((block) => [block]),
  });

const serviceArbitrary = (pools: number) =>
  fc.record({
    name: fc.constantFrom("a", "b", "c", "d", "e", "f"),
    namespace: fc.constantFrom("web", "db"),
    type: fc.constantFrom("LoadBalancer", "ClusterIP"),
    ip: fc.option(
      fc
        .tuple(fc.integer({ min: 0, max: pools }), fc.constantFrom(0, 1, 2, 17, 101, 253, 255))
        .map(([pool, host]) => `10.0.${pool}.${host}`),
      { nil: undefined },
    ),
    pool: fc.option(
      fc.integer({ min: 0, max: pools }).map((pool) => `pool-${pool}`),
      {
        nil: undefined,
      },
    ),
    share: fc.option(fc.constantFrom("k1", "k2"), { nil: undefined }),
    autoAssign: fc.boolean(),
    port: fc.constantFrom(80, 443),
  });

const scenario = fc.integer({ min: 1, max: 3 }).chain((count) =>
  fc.record({
    pools: fc.tuple(...Array.from({ length: count }, (_, index) => poolArbitrary(index))),
    services: fc.array(serviceArbitrary(count), { maxLength: 8 }),
    release: fc.constantFrom("v0.11.0", "v0.12.1"),
  }),
);

test("property: converted pools decide every generated Service as the ConfigMap does", () => {
  fc.assert(
    fc.property(scenario, ({ pools, services, release }) => {
      const config = stringify({ "address-pools": pools });
      const configMapText = stringify({
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: "config", namespace: "metallb-system" },
        data: { config },
      });
      const found = legacyConfigFromText(config, "generated");
      assert.deepEqual(found.errors, []);
      const conversion = convertLegacyConfig(found.config, "metallb-system");
      assert.deepEqual(conversion.errors, []);
      const manifests = services.map((service) => ({
        apiVersion: "v1",
        kind: "Service",
        metadata: {
          name: service.name,
          namespace: service.namespace,
          annotations: {
            ...(service.pool !== undefined && { "metallb.universe.tf/address-pool": service.pool }),
            ...(service.share !== undefined && {
              "metallb.universe.tf/allow-shared-ip": service.share,
            }),
            ...(service.autoAssign && { "lb-ip-guard.dev/auto-assign": "true" }),
          },
        },
        spec: {
          type: service.type,
          ports: [{ port: service.port, protocol: "TCP" }],
          ...(service.ip !== undefined && { loadBalancerIP: service.ip }),
        },
      }));
      const [configMap] = parseManifests(configMapText, "configmap.yaml");
      assert.ok(configMap !== undefined);
      const [major, minor, patch] = release.slice(1).split(".").map(Number) as [
        number,
        number,
        number,
      ];
      const compared = compareDecisions({
        configMap,
        converted: parseManifests(renderConversion(conversion, "generated"), "converted.yaml"),
        existingObjects: [],
        services: parseManifests(
          manifests.map((m) => JSON.stringify(m)).join("\n---\n"),
          "svc.yaml",
        ),
        release: { major, minor, patch },
      });
      assert.equal(compared.length, services.length);
      for (const { before, after } of compared) {
        const { message: _before, ...decisionBefore } = before;
        const { message: _after, ...decisionAfter } = after;
        assert.deepEqual(decisionAfter, decisionBefore);
      }
    }),
    { numRuns: 150 },
  );
});
