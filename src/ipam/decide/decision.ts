// What a decision reads (the cluster view, and per Service its context) and what it answers: a
// grant, a plain allowance, or a refusal with one of the core's reason codes.

import { formatAddressList, type IPAddress } from "../address.ts";
import type { Labels } from "../labels.ts";
import type { Pool, PoolSet, ServiceIdentity } from "../pool.ts";
import type { ReservationIndex } from "../reservations.ts";
import type { RestingAddresses } from "../resting.ts";
import type { RetainedAddresses } from "../retained.ts";
import type { AddressRequest, ServiceObject } from "../service.ts";
import type { UsageIndex } from "../usage.ts";
import type { Policy } from "./policy.ts";

/** The reason codes of the core's refusals (the admission layer adds `NotReady`). */
export type ReasonCode =
  | "InvalidAddress"
  | "ConflictingFields"
  | "FamilyMismatch"
  | "NotInAnyPool"
  | "PoolNotFound"
  | "PoolMismatch"
  | "PoolNotAllowed"
  | "AddressInUse"
  | "SharingConflict"
  | "PoolExhausted"
  | "IgnoredAnnotation"
  | "ExternalIPInPool"
  | "AddressReserved"
  | "QuotaExceeded";

/**
 * What the core answers. An allowance or assignment carries the request it read of the Service
 * (where it asks for addresses) and, in `addresses`, what it parsed, so that nothing after the
 * decision (the patch, the grant) reads the Service's addresses again.
 */
export type Decision =
  | {
      readonly kind: "allowed";
      readonly addresses: readonly IPAddress[];
      readonly pool: string | undefined;
      readonly message: string;
      readonly warnings: readonly string[];
      /** Undefined when the Service is out of scope: nothing of it was read. */
      readonly request: AddressRequest | undefined;
      /** Whose the addresses were, when they were retained or reserved (Events name it). */
      readonly origin?: string | undefined;
    }
  | {
      /** The Service gets `addresses` written and becomes a LoadBalancer (the mutation). */
      readonly kind: "assigned";
      readonly addresses: readonly IPAddress[];
      readonly pool: string;
      readonly message: string;
      readonly warnings: readonly string[];
      readonly request: AddressRequest;
      readonly origin?: string | undefined;
    }
  | {
      readonly kind: "denied";
      readonly reason: ReasonCode;
      readonly addresses: readonly IPAddress[];
      readonly pool: string | undefined;
      readonly message: string;
    };

export type Denial = Extract<Decision, { kind: "denied" }>;
export type Assignment = Extract<Decision, { kind: "assigned" }>;

/**
 * What the decision reads of the cluster: pools, who holds what, namespace labels, and the
 * address lifecycle (design.md): resting, retained and reserved addresses, namespace quotas.
 */
export interface ClusterView {
  readonly pools: PoolSet;
  readonly usage: UsageIndex;
  /** Addresses released a moment ago, which no other Service gets yet (cluster mode only). */
  readonly resting?: RestingAddresses;
  /** Addresses kept for the Service that gave them up (`--retain`). */
  readonly retained?: RetainedAddresses;
  readonly reservations?: ReservationIndex;
  namespaceLabels(namespace: string): Labels;
  /** The Namespace's `lb-ip-guard.dev/address-quota`, when it has a valid one. */
  quotaOf?(namespace: string): number | undefined;
}

/** One Service being decided, and what it is decided against. */
export interface DecisionContext {
  readonly ref: string;
  readonly service: ServiceObject;
  readonly view: ClusterView;
  readonly policy: Policy;
  /** Where the Service asks for addresses, read once. */
  readonly request: AddressRequest;
  readonly identity: ServiceIdentity;
  readonly warnings: readonly string[];
}

export function deny(
  reason: ReasonCode,
  message: string,
  addresses: readonly IPAddress[] = [],
  pool?: Pool,
): Denial {
  return { kind: "denied", reason, addresses, pool: pool?.name, message };
}

/**
 * A decision that grants addresses. Its message is formatted only when read: the webhook never
 * reads it, and formatting addresses is most of what deciding a grant costs (check and the logs
 * read it when they need it). The getter lives on the prototype: an object literal with a getter
 * of its own is a slow dictionary-mode object that V8 allocates in old space, several hundred
 * bytes of old-generation garbage per review under load.
 */
export class GrantDecision<Kind extends "allowed" | "assigned"> {
  readonly kind: Kind;
  readonly addresses: readonly IPAddress[];
  readonly pool: string;
  readonly warnings: readonly string[];
  readonly request: AddressRequest;
  /** Where the addresses come from, when not simply free: "retained for ... since ...". */
  readonly origin: string | undefined;
  readonly #ref: string;
  readonly #verb: string;

  constructor(
    kind: Kind,
    context: DecisionContext,
    verb: string,
    addresses: readonly IPAddress[],
    pool: string,
    origin?: { readonly note: string; readonly warnings?: readonly string[] },
  ) {
    this.kind = kind;
    this.#ref = context.ref;
    this.#verb = verb;
    this.addresses = addresses;
    this.pool = pool;
    this.origin = origin?.note;
    this.warnings =
      origin?.warnings === undefined ? context.warnings : [...context.warnings, ...origin.warnings];
    this.request = context.request;
  }

  get message(): string {
    const origin = this.origin === undefined ? "" : ` (${this.origin})`;
    return `${this.#ref} ${this.#verb} ${formatAddressList(this.addresses)} from pool "${this.pool}"${origin}`;
  }
}
