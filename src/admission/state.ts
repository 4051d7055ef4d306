import type { AdmissionContext } from "./admit.ts";
import type { Grant } from "./holds.ts";

/**
 * The port between the HTTP edge and whatever keeps cluster state: the informer-backed state of
 * a cluster deployment, or the in-memory state of standalone mode.
 */
export interface AdmissionState {
  /** The pools, usage and readiness to decide on now. */
  context(): AdmissionContext;
  /**
   * Records a grant synchronously, right after the decision that made it, so that no other
   * request can be granted the same address in between.
   */
  record(grant: Grant, now: number): void;
}
