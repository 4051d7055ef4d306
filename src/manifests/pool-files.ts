// Serve's --pools files: every pool source in them (MetalLB ConfigMap, IPAddressPool, a bare
// `address-pools` document), parsed and merged as one pool set, or one line saying what is wrong.

import { poolsFromDocument } from "../ipam/config/document.ts";
import { formatPoolConfigError, type PoolConfigError } from "../ipam/config/errors.ts";
import { mergePools } from "../ipam/config/merge.ts";
import type { Pool, PoolSet } from "../ipam/pool.ts";
import { fail, ok, type Result } from "../ipam/result.ts";
import { ManifestError, ManifestLoader } from "./loader.ts";

export interface LoadedPools {
  /** Every valid pool, in file order: what cluster state merges with the cluster's own. */
  readonly pools: readonly Pool[];
  readonly poolSet: PoolSet;
}

/**
 * Reads pools files (YAML or JSON; legacy ConfigMap, IPAddressPool, or a bare `address-pools`
 * document; many documents each), with check's parsing and merge. Unlike check, every source is
 * kept whatever the guarded MetalLB release reads: pools given on the command line are the
 * operator's own. Any configuration error, or files that hold no pool at all, fail with one
 * line naming the file, document and pool.
 */
export async function loadPoolFiles(
  files: readonly string[],
  metallbNamespace: string,
): Promise<Result<LoadedPools>> {
  let objects: Awaited<ReturnType<ManifestLoader["load"]>>;
  try {
    objects = await new ManifestLoader().load(files);
  } catch (error) {
    if (error instanceof ManifestError) return fail(error.message);
    throw error;
  }
  const pools: Pool[] = [];
  const errors: PoolConfigError[] = [];
  for (const { object, location } of objects) {
    const found = poolsFromDocument(object, location, { metallbNamespace });
    if (found === undefined) continue;
    pools.push(...found.pools);
    errors.push(...found.errors);
  }
  const merged = mergePools(pools);
  errors.push(...merged.errors);
  const [first] = errors;
  if (first !== undefined) {
    const more =
      errors.length > 1
        ? ` (and ${errors.length - 1} more problem${errors.length > 2 ? "s" : ""})`
        : "";
    return fail(`${formatPoolConfigError(first)}${more}`);
  }
  if (merged.poolSet.size === 0) {
    return fail(
      `no address pool found in ${files.join(", ")} (expected a MetalLB ConfigMap in namespace ${metallbNamespace}, IPAddressPool objects, or an address-pools document)`,
    );
  }
  return ok({ pools, poolSet: merged.poolSet });
}
