// Helpers shared by the pool configuration tests: documents in each format, and assertions that
// an error names its pool and the offending string on one line.

import assert from "node:assert/strict";
import { parseAddress } from "../../../src/ipam/address.ts";
import { poolsFromDocument } from "../../../src/ipam/config/document.ts";
import {
  formatPoolConfigError,
  type PoolConfigError,
  type PoolsFound,
} from "../../../src/ipam/config/errors.ts";
import { poolsFromLegacyConfig } from "../../../src/ipam/config/legacy.ts";
import { type AddressRange, parseAddressBlock } from "../../../src/ipam/range.ts";

export function ip(text: string): bigint {
  const result = parseAddress(text);
  if (!result.ok) assert.fail(result.error);
  return result.value.value;
}

export function block(text: string): AddressRange {
  const result = parseAddressBlock(text);
  if (!result.ok) assert.fail(result.error);
  return result.value;
}

export function found(document: unknown, origin = "test.yaml#0"): PoolsFound {
  const result = poolsFromDocument(document, origin);
  assert.ok(result !== undefined, "expected the document to be recognised as a pool source");
  return result;
}

/** The only error, checked to name the pool and the offending string in its formatted line. */
export function onlyError(result: PoolsFound): PoolConfigError {
  assert.equal(result.errors.length, 1, result.errors.map(formatPoolConfigError).join("\n"));
  const [error] = result.errors;
  assert.ok(error !== undefined);
  return error;
}

export function assertNames(
  error: PoolConfigError,
  pool: string | undefined,
  offending: string,
): string {
  assert.equal(error.pool, pool);
  assert.equal(error.offending, offending);
  const line = formatPoolConfigError(error);
  assert.ok(!line.includes("\n"), line);
  assert.ok(line.startsWith(`${error.origin}: `), line);
  if (pool !== undefined) assert.ok(line.includes(`pool "${pool}"`), line);
  assert.ok(line.includes(offending), `${line} should name ${offending}`);
  return line;
}

export const legacyConfigMap = (config: string, namespace = "metallb-system") => ({
  apiVersion: "v1",
  kind: "ConfigMap",
  metadata: { namespace, name: "config" },
  data: { config },
});

export function legacy(config: string): PoolsFound {
  return poolsFromLegacyConfig(config, "ConfigMap metallb-system/config");
}

export const ipAddressPool = (name: string, spec: unknown, apiVersion = "metallb.io/v1beta1") => ({
  apiVersion,
  kind: "IPAddressPool",
  metadata: { name, namespace: "metallb-system" },
  spec,
});

// The MetalLB v0.11 setup of the Kubeflow-on-bare-metal guide, as `kubectl apply -f` would read it.
export const KUBEFLOW_MANIFEST = `apiVersion: v1
kind: ConfigMap
metadata:
  namespace: metallb-system
  name: config
data:
  config: |
    address-pools:
    - name: default
      protocol: layer2
      addresses:
      - 192.168.35.100-192.168.35.110
`;
