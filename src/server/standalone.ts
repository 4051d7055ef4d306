// State for `serve --standalone`: no cluster. Pools come from files (src/manifests/pool-files.ts),
// usage lives in memory, and an address admitted once stays taken until the process ends.

import type { AdmissionContext } from "../admission/admit.ts";
import type { Grant } from "../admission/holds.ts";
import type { IPTarget } from "../admission/patch.ts";
import type { AdmissionState } from "../admission/ports.ts";
import type { ClusterView, Policy } from "../ipam/decide.ts";
import type { Labels } from "../ipam/labels.ts";
import type { PoolSet } from "../ipam/pool.ts";
import { UsageIndex } from "../ipam/usage.ts";

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
