// Which parsed YAML/JSON document is a pool source (MetalLB's own ConfigMap, an IPAddressPool, a
// bare legacy config) and which parser reads it. Pure: no I/O, and it never throws on bad input;
// every problem comes back as a PoolConfigError.

import { isRecord } from "../../base/objects.ts";
import { type PoolsFound, singleError } from "./errors.ts";
import { field, show } from "./fields.ts";
import { poolFromIPAddressPool } from "./ip-address-pool.ts";
import {
  type LegacyConfigFound,
  legacyConfigFromText,
  legacyConfigFromValue,
  legacyFailure,
} from "./legacy.ts";

export interface PoolDocumentOptions {
  /** The namespace MetalLB runs in and reads its ConfigMap and IPAddressPools from. */
  readonly metallbNamespace?: string;
}

const DEFAULT_METALLB_NAMESPACE = "metallb-system";
const IP_ADDRESS_POOL_API_VERSIONS: ReadonlySet<unknown> = new Set([
  "metallb.io/v1beta1",
  "metallb.io/v1beta2",
]);

/**
 * One parsed YAML/JSON document (already a JS value). Recognises: the legacy MetalLB ConfigMap
 * (kind ConfigMap, name `config`, namespace = metallbNamespace (default "metallb-system"), data
 * key `config`), an `IPAddressPool` (apiVersion metallb.io/v1beta1 or v1beta2; namespace
 * metallbNamespace or none), and a bare legacy config document (an object without `kind` whose
 * top-level has `address-pools`, as in a pools file). Returns undefined for any other document
 * (not a pool source).
 *
 * `origin` says where the document came from (a file and document index, say); the object's kind
 * and name are added to it: `pools.yaml#2 (IPAddressPool metallb-system/lan)`. Pass "" for an
 * object read from the cluster to get just `IPAddressPool metallb-system/lan`.
 */
export function poolsFromDocument(
  document: unknown,
  origin: string,
  options: PoolDocumentOptions = {},
): PoolsFound | undefined {
  if (!isRecord(document)) return undefined;
  const metallbNamespace = options.metallbNamespace ?? DEFAULT_METALLB_NAMESPACE;
  const kind = field(document, "kind");
  const apiVersion = field(document, "apiVersion");
  const metadata = field(document, "metadata");
  const name = isRecord(metadata) ? field(metadata, "name") : undefined;
  const namespace = isRecord(metadata) ? field(metadata, "namespace") : undefined;

  if (kind === "ConfigMap" || (kind === undefined && Object.hasOwn(document, "address-pools"))) {
    const legacy = legacyConfigFromDocument(document, origin, options);
    return legacy === undefined
      ? undefined
      : { pools: legacy.config.pools.map((entry) => entry.pool), errors: legacy.errors };
  }

  if (kind === "IPAddressPool" && IP_ADDRESS_POOL_API_VERSIONS.has(apiVersion)) {
    // MetalLB watches only its own namespace; a manifest without one is applied with `-n`.
    if (namespace !== undefined && namespace !== null && namespace !== metallbNamespace) {
      return undefined;
    }
    const shownName = typeof name === "string" && name !== "" ? name : "<unnamed>";
    const source = withIdentity(origin, `IPAddressPool ${metallbNamespace}/${shownName}`);
    return poolFromIPAddressPool(document, source);
  }
  return undefined;
}

/**
 * The whole legacy config (pools, peers, communities, BFD profiles) of MetalLB's own ConfigMap or
 * of a bare config document; undefined for any other document. `origin` as for poolsFromDocument.
 */
export function legacyConfigFromDocument(
  document: unknown,
  origin: string,
  options: PoolDocumentOptions = {},
): LegacyConfigFound | undefined {
  if (!isRecord(document)) return undefined;
  const kind = field(document, "kind");
  if (kind === undefined && Object.hasOwn(document, "address-pools")) {
    return legacyConfigFromValue(document, origin);
  }
  const apiVersion = field(document, "apiVersion");
  if (kind !== "ConfigMap" || (apiVersion !== "v1" && apiVersion !== undefined)) return undefined;
  const metallbNamespace = options.metallbNamespace ?? DEFAULT_METALLB_NAMESPACE;
  const metadata = field(document, "metadata");
  const name = isRecord(metadata) ? field(metadata, "name") : undefined;
  const namespace = isRecord(metadata) ? field(metadata, "namespace") : undefined;
  // A ConfigMap called `config` is common; only MetalLB's own, in MetalLB's namespace, counts.
  if (name !== "config" || namespace !== metallbNamespace) return undefined;
  const source = withIdentity(origin, `ConfigMap ${metallbNamespace}/config`);
  const data = field(document, "data");
  // MetalLB reads a missing data or key as an empty configuration: no pools, no error.
  if (data === undefined || data === null) return legacyConfigFromText("", source);
  if (!isRecord(data)) {
    return legacyFailure(
      singleError(source, "data", `data must be a mapping of strings, not ${show(data)}`),
    );
  }
  const config = field(data, "config");
  if (config === undefined || config === null) return legacyConfigFromText("", source);
  if (typeof config !== "string") {
    return legacyFailure(
      singleError(source, "data.config", `data.config must be a string, not ${show(config)}`),
    );
  }
  return legacyConfigFromText(config, source);
}

function withIdentity(origin: string, identity: string): string {
  return origin === "" || origin === identity ? identity : `${origin} (${identity})`;
}
