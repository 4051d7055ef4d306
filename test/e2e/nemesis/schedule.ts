// The nemesis's fault schedule, drawn from the seed before the storm starts: when each fault
// comes, what kind it is and how long a freeze lasts. The target is named by role (any replica,
// the elected allocator, a follower holding loans, all of them) and resolved when the fault
// fires, since which replica holds the Lease depends on what happened before.

import type { AllocatorMode } from "../replicas.ts";
import { stream } from "./random.ts";

export type FaultKind =
  /** SIGSTOP a random replica for `freezeMs`, then SIGCONT. */
  | "freeze-any"
  /** SIGKILL a random replica; a fresh one replaces it. */
  | "kill-any"
  /** SIGSTOP the replica the allocator Lease names. */
  | "freeze-allocator"
  /** SIGKILL the replica the allocator Lease names; a fresh one replaces it. */
  | "kill-allocator"
  /**
   * SIGSTOP a follower that just granted (the last one the proxy gave a connection to): under
   * load it holds loans (ADR 0015: every grant brings the next free address back as a loan).
   */
  | "freeze-lender-follower"
  /** SIGKILL every replica; three fresh ones replace them. */
  | "kill-all";

export interface Fault {
  /** When it fires, ms after the storm started. */
  at: number;
  kind: FaultKind;
  /** How long a freeze lasts (2-16 s); 0 for a kill. */
  freezeMs: number;
}

/**
 * In claims mode there is no allocator and nothing is lent: the faults aimed at them would be
 * plain random ones, so they are not drawn there.
 */
const WEIGHTS: Record<AllocatorMode, Readonly<Partial<Record<FaultKind, number>>>> = {
  elected: {
    "freeze-any": 3,
    "kill-any": 2,
    "freeze-allocator": 2,
    "kill-allocator": 1,
    "freeze-lender-follower": 2,
    "kill-all": 0.5,
  },
  claims: { "freeze-any": 4, "kill-any": 2, "kill-all": 0.5 },
};

/** Faults every 3-7 s over `stormMs`, the first 3-7 s in. */
export function faultSchedule(seed: number, mode: AllocatorMode, stormMs: number): Fault[] {
  const random = stream(seed, "nemesis");
  const weights = WEIGHTS[mode] as Record<FaultKind, number>;
  const faults: Fault[] = [];
  for (let at = random.int(3000, 7000); at < stormMs; at += random.int(3000, 7000)) {
    const kind = random.weighted(weights);
    faults.push({ at, kind, freezeMs: kind.startsWith("freeze") ? random.int(2000, 16_000) : 0 });
  }
  return faults;
}
