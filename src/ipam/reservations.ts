// AddressReservations (lb-ip-guard.dev/v1alpha1, namespaced): addresses set aside for the
// Services of one namespace, or for one Service of it (design.md, "Address lifecycle"). What
// MetalLB's answer to the same wish takes by hand, a one-address pool with a serviceSelector
// carved out of the shared pool's ranges (MetalLB #616, #1978), is one object here. Pure: the
// objects come from a watch or from files.

import { asRecord } from "../base/objects.ts";
import { type Family, type IPAddress, parseAddress } from "./address.ts";
import { fail, ok, type Result } from "./result.ts";
import { SortedBigIntSet } from "./sorted-set.ts";
import { namespaceOf, type UsageIndex } from "./usage.ts";

export const RESERVATION_GROUP = "lb-ip-guard.dev";
export const RESERVATION_KIND = "AddressReservation";
export const RESERVATION_API_VERSION = `${RESERVATION_GROUP}/v1alpha1`;

/** A reservation as written: its addresses are texts, checked when it is admitted. */
export interface ReservationSpec {
  readonly namespace: string;
  readonly name: string;
  readonly addresses: readonly string[];
  /** The one Service of the namespace it is for; undefined: any Service of the namespace. */
  readonly serviceName: string | undefined;
}

/** A reservation whose addresses parsed. */
export interface Reservation {
  readonly namespace: string;
  readonly name: string;
  readonly addresses: readonly IPAddress[];
  readonly serviceName: string | undefined;
}

/** Whether an object is an AddressReservation (any version of the group). */
export function isReservationObject(object: unknown): boolean {
  const record = asRecord(object);
  return (
    record.kind === RESERVATION_KIND &&
    typeof record.apiVersion === "string" &&
    record.apiVersion.startsWith(`${RESERVATION_GROUP}/`)
  );
}

/** What an AddressReservation object asks for; `fallbackNamespace` where it names none. */
export function reservationSpecOf(object: unknown, fallbackNamespace: string): ReservationSpec {
  const metadata = asRecord(asRecord(object).metadata);
  const spec = asRecord(asRecord(object).spec);
  const addresses = Array.isArray(spec.addresses)
    ? spec.addresses.map((each) => (typeof each === "string" ? each : String(each)))
    : [];
  const serviceName = typeof spec.serviceName === "string" ? spec.serviceName : "";
  return {
    namespace: typeof metadata.namespace === "string" ? metadata.namespace : fallbackNamespace,
    name: typeof metadata.name === "string" ? metadata.name : "",
    addresses,
    serviceName: serviceName === "" ? undefined : serviceName,
  };
}

/**
 * The reservation a spec makes, or why it makes none: the first address that does not parse.
 * Only an object written while the webhook was not called can fail here.
 */
export function parseReservation(spec: ReservationSpec): Result<Reservation> {
  const addresses: IPAddress[] = [];
  for (const text of spec.addresses) {
    const parsed = parseAddress(text);
    if (!parsed.ok) return fail(parsed.error);
    addresses.push(parsed.value);
  }
  return addresses.length === 0 ? fail("no spec.addresses") : ok({ ...spec, addresses });
}

/** `namespace/name` of a reservation, as messages name it. */
export const reservationRef = (reservation: { namespace: string; name: string }): string =>
  `${reservation.namespace}/${reservation.name}`;

/** Whether the Service `ref` (`namespace/name`) is one a reservation is for. */
export function reservationAdmits(reservation: Reservation, ref: string): boolean {
  const namespace = namespaceOf(ref);
  const name = ref.slice(namespace.length + 1);
  return (
    reservation.namespace === namespace &&
    (reservation.serviceName === undefined || reservation.serviceName === name)
  );
}

/** Every reservation, by address and by namespace. */
export class ReservationIndex {
  readonly #byRef = new Map<string, Reservation>();
  readonly #byAddress: Record<Family, Map<bigint, Reservation>> = {
    IPv4: new Map(),
    IPv6: new Map(),
  };
  readonly #values: Record<Family, SortedBigIntSet> = {
    IPv4: new SortedBigIntSet(),
    IPv6: new SortedBigIntSet(),
  };

  static from(reservations: Iterable<Reservation>): ReservationIndex {
    const index = new ReservationIndex();
    for (const reservation of reservations) index.put(reservation);
    return index;
  }

  /**
   * Adds or replaces a reservation. An address another reservation has already keeps it: the
   * admission of reservations refuses a second one, so only objects written past the webhook
   * (while it was down) meet this, and the older keeps what it had.
   */
  put(reservation: Reservation): void {
    this.delete(reservation.namespace, reservation.name);
    this.#byRef.set(reservationRef(reservation), reservation);
    for (const { family, value } of reservation.addresses) {
      if (this.#byAddress[family].has(value)) continue;
      this.#byAddress[family].set(value, reservation);
      this.#values[family].add(value);
    }
  }

  delete(namespace: string, name: string): void {
    const reservation = this.#byRef.get(`${namespace}/${name}`);
    if (reservation === undefined) return;
    this.#byRef.delete(reservationRef(reservation));
    for (const { family, value } of reservation.addresses) {
      if (this.#byAddress[family].get(value) !== reservation) continue;
      this.#byAddress[family].delete(value);
      this.#values[family].delete(value);
    }
  }

  /** The reservation that has an address, if any. */
  reservationOf(family: Family, value: bigint): Reservation | undefined {
    return this.#byAddress[family].get(value);
  }

  /**
   * The reservations the Service `ref` may draw on: those naming it first, then those for any
   * Service of its namespace, each group in name order.
   */
  reservationsFor(ref: string): readonly Reservation[] {
    return this.inNamespace(namespaceOf(ref))
      .filter((reservation) => reservationAdmits(reservation, ref))
      .sort((a, b) => Number(a.serviceName === undefined) - Number(b.serviceName === undefined));
  }

  /** The reservations of one namespace, in name order. */
  inNamespace(namespace: string): readonly Reservation[] {
    return [...this.#byRef.values()]
      .filter((reservation) => reservation.namespace === namespace)
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  /** The reservation `namespace/name`, if known. */
  named(namespace: string, name: string): Reservation | undefined {
    return this.#byRef.get(`${namespace}/${name}`);
  }

  /** Every reserved value of one family, for the allocator to pass over. */
  values(family: Family): SortedBigIntSet {
    return this.#values[family];
  }

  all(): readonly Reservation[] {
    return [...this.#byRef.values()];
  }

  get size(): number {
    return this.#byRef.size;
  }
}

/**
 * Who holds a reservation's addresses, for its status: a Service it is for, when one holds any
 * of them; else any other holder (one that got in past the webhook); undefined when no one does.
 * Every holder is listed, in name order, for the message.
 */
export function reservationHolder(
  reservation: Reservation,
  usage: UsageIndex,
):
  | { readonly ref: string; readonly admitted: boolean; readonly all: readonly string[] }
  | undefined {
  const all = [
    ...new Set(
      reservation.addresses.flatMap((address) =>
        usage.holdersOf(address.family, address.value).map((holder) => holder.ref),
      ),
    ),
  ].sort();
  const ref = all.find((each) => reservationAdmits(reservation, each)) ?? all[0];
  if (ref === undefined) return undefined;
  return { ref, admitted: reservationAdmits(reservation, ref), all };
}
