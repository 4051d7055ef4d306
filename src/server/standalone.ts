// State for `serve --standalone`: no cluster. Pools come from files, usage lives in memory, and an
// address admitted once stays taken until the process ends.

import type { AdmissionContext } from "../admission/admit.ts";
import type { Grant } from "../admission/holds.ts";
import type { IPTarget } from "../admission/patch.ts";
import type { AdmissionState } from "../admission/state.ts";
import { ManifestError, ManifestLoader } from "../cli/manifests.ts";
import type { ClusterView, Policy } from "../ipam/decide.ts";
import type { Labels } from "../ipam/labels.ts";
import type { Pool, PoolSet } from "../ipam/pool.ts";
import {
  formatPoolConfigError,
  mergePools,
  type PoolConfigError,
  poolsFromDocument,
} from "../ipam/pool-config.ts";
import { fail, ok, type Result } from "../ipam/result.ts";
import { UsageIndex } from "../ipam/usage.ts";

export interface LoadedPools {
  /** Every valid pool, in file order: what cluster state merges with the cluster's own. */
  readonly pools: readonly Pool[];
  readonly poolSet: PoolSet;
}

/**
 * Reads pools files (YAML or JSON; legacy ConfigMap, IPAddressPool, or a bare `address-pools`
 * document; many documents each) the way `check --pools` does. Any configuration error, or
 * files that hold no pool at all, fail with one line naming the file, document and pool.
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

export interface StandaloneOptions {
  readonly policy: Policy;
  readonly ipTarget: IPTarget;
  /** Addresses already in use (a benchmark's 10,000 Services, a test's fixtures). */
  readonly usage?: UsageIndex;
}

/**
 * Always ready. `record` keeps the grant under the Service's own reference (not as an expiring
 * hold): with no cluster to report the Service later, the admission is the only evidence, and
 * a re-admission of the same Service replaces what it held.
 */
export class StandaloneState implements AdmissionState {
  readonly ready = true;
  readonly view: ClusterView;
  readonly #usage: UsageIndex;
  readonly #context: AdmissionContext;

  constructor(pools: PoolSet, options: StandaloneOptions) {
    this.#usage = options.usage ?? new UsageIndex();
    this.view = { pools, usage: this.#usage, namespaceLabels };
    this.#context = {
      view: this.view,
      ready: true,
      policy: options.policy,
      ipTarget: options.ipTarget,
    };
  }

  context(): AdmissionContext {
    return this.#context;
  }

  record(grant: Grant, _now: number): void {
    this.#usage.set(grant.ref, grant.holder, grant.addresses);
  }

  async stop(): Promise<void> {}
}

/** No Namespace objects without a cluster; the label Kubernetes puts on every one still holds. */
function namespaceLabels(namespace: string): Labels {
  return { "kubernetes.io/metadata.name": namespace };
}
