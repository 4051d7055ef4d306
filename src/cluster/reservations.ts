// The cluster's AddressReservations: the watch's handlers that feed the pure core's
// ReservationIndex, and the status of each (status.holder: which Service holds its address),
// written only when it changes. See docs/decisions/0018-address-lifecycle.md for who writes it
// and what a cluster without the CRD gets.

import type { Logger } from "pino";
import { asRecord } from "../base/objects.ts";
import { formatAddressList } from "../ipam/address.ts";
import {
  parseReservation,
  type Reservation,
  type ReservationIndex,
  reservationHolder,
  reservationRef,
  reservationSpecOf,
} from "../ipam/reservations.ts";
import type { UsageIndex } from "../ipam/usage.ts";
import { describeError, KubeApiError, type KubeClient } from "./kube.ts";
import type { KubeObject } from "./reflector.ts";

/** What the last version of a reservation object says, for the status writer. */
interface Known {
  readonly reservation: Reservation;
  readonly resourceVersion: string;
  readonly generation: number;
  readonly status: Record<string, unknown>;
}

/** The condition kept on each reservation: whether a Service holds its address. */
const HELD = "Held";

/** A write after a change waits this long, so that a burst of Service events is one pass. */
const SETTLE_MS = 200;
/** And every so often regardless: a write that failed, or a replica that became the writer. */
const RESYNC_MS = 10_000;

export interface ClusterReservationsOptions {
  readonly client: KubeClient;
  readonly index: ReservationIndex;
  /** The usage index now (who holds what). */
  readonly usage: () => UsageIndex;
  /** Whether this replica writes status now (synced, and the writer: ADR 0018 notes). */
  readonly writes: () => boolean;
  readonly logger: Logger;
}

export class ClusterReservations {
  readonly #options: ClusterReservationsOptions;
  readonly #known = new Map<string, Known>();
  /** `ref@generation` of objects whose addresses did not parse, each logged once. */
  readonly #refused = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #resync: NodeJS.Timeout | undefined;
  #writing: Promise<void> | undefined;
  #again = false;
  #stopped = false;

  constructor(options: ClusterReservationsOptions) {
    this.#options = options;
  }

  /** The whole collection after a (re)list; the older object keeps an address two reserve. */
  replace(items: readonly KubeObject[]): void {
    for (const reservation of this.#options.index.all()) {
      this.#options.index.delete(reservation.namespace, reservation.name);
    }
    this.#known.clear();
    for (const item of [...items].sort(byCreation)) this.#put(item);
    this.changed();
  }

  apply(type: "ADDED" | "MODIFIED" | "DELETED", object: KubeObject): void {
    if (type === "DELETED") {
      const { namespace, name } = reservationSpecOf(object, "");
      this.#options.index.delete(namespace, name);
      this.#known.delete(`${namespace}/${name}`);
    } else this.#put(object);
    this.changed();
  }

  /** Something that may change a holder happened (a Service event): write status soon. */
  changed(): void {
    if (this.#stopped || this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#pass();
    }, SETTLE_MS);
    this.#timer.unref();
  }

  start(): void {
    this.#resync ??= setInterval(() => void this.#pass(), RESYNC_MS);
    this.#resync.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    clearInterval(this.#resync);
    await this.#writing;
  }

  #put(object: KubeObject): void {
    const spec = reservationSpecOf(object, "");
    const ref = reservationRef(spec);
    const metadata = asRecord(object.metadata);
    const generation = typeof metadata.generation === "number" ? metadata.generation : 0;
    const parsed = parseReservation(spec);
    if (!parsed.ok) {
      // Only an object written while the webhook was not called gets here: it reserves nothing.
      if (!this.#refused.has(`${ref}@${generation}`)) {
        this.#refused.add(`${ref}@${generation}`);
        this.#options.logger.warn(
          { reservation: ref },
          `AddressReservation ${ref} ignored: ${parsed.error} (in spec.addresses)`,
        );
      }
      this.#options.index.delete(spec.namespace, spec.name);
      this.#known.delete(ref);
      return;
    }
    const reservation = parsed.value;
    this.#options.index.put(reservation);
    this.#known.set(ref, {
      reservation,
      resourceVersion: typeof metadata.resourceVersion === "string" ? metadata.resourceVersion : "",
      generation,
      status: asRecord(object.status),
    });
  }

  /** One pass over every reservation, one at a time; a pass asked for meanwhile runs after. */
  async #pass(): Promise<void> {
    if (this.#writing !== undefined) {
      this.#again = true;
      return;
    }
    if (this.#stopped || !this.#options.writes()) return;
    const writing = (async () => {
      for (const known of [...this.#known.values()]) {
        if (this.#stopped) return;
        await this.#write(known);
      }
    })();
    this.#writing = writing;
    await writing;
    this.#writing = undefined;
    if (this.#again) {
      this.#again = false;
      await this.#pass();
    }
  }

  async #write(known: Known): Promise<void> {
    const { reservation, resourceVersion, generation, status } = known;
    const ref = reservationRef(reservation);
    const holder = reservationHolder(reservation, this.#options.usage());
    const holderText = holder?.ref ?? "";
    if (status.holder === holderText && status.observedGeneration === generation) return;
    const held = holder !== undefined;
    const addresses = formatAddressList(reservation.addresses);
    const condition = {
      type: HELD,
      status: held ? "True" : "False",
      observedGeneration: generation,
      lastTransitionTime: transitionTime(status, held ? "True" : "False"),
      reason: holder === undefined ? "NotHeld" : holder.admitted ? "HeldByService" : "HeldByOther",
      message:
        holder === undefined
          ? `no Service holds ${addresses}`
          : `${holder.all.join(", ")} hold${holder.all.length === 1 ? "s" : ""} ${addresses}${holder.admitted ? "" : ", which the reservation is not for"}`,
    };
    const path = `/apis/lb-ip-guard.dev/v1alpha1/namespaces/${encodeURIComponent(reservation.namespace)}/addressreservations/${encodeURIComponent(reservation.name)}/status`;
    try {
      // The resourceVersion makes the patch conditional: a replica that read an older object
      // (or raced another writer) is refused 409 and reads the newer one from its watch.
      await this.#options.client.request("PATCH", path, {
        contentType: "application/merge-patch+json",
        body: {
          metadata: { resourceVersion },
          status: { holder: holderText, observedGeneration: generation, conditions: [condition] },
        },
      });
      this.#options.logger.info(
        { reservation: ref, holder: holderText },
        `AddressReservation ${ref}: status.holder ${holderText === "" ? "cleared" : holderText}`,
      );
    } catch (error) {
      const status = error instanceof KubeApiError ? error.status : undefined;
      if (status === 409 || status === 404) return; // newer, or gone: the watch says which
      this.#options.logger.warn(
        { reservation: ref, error: describeError(error) },
        `AddressReservation ${ref}: status not written: ${describeError(error)}`,
      );
    }
  }
}

/** The condition's last transition: kept while its status stays, else now. */
function transitionTime(status: Record<string, unknown>, now: "True" | "False"): string {
  const conditions = Array.isArray(status.conditions) ? status.conditions : [];
  const held = conditions.map(asRecord).find((each) => each.type === HELD);
  return held?.status === now && typeof held.lastTransitionTime === "string"
    ? held.lastTransitionTime
    : new Date().toISOString().replace(/\.\d+Z$/, "Z");
}

function byCreation(a: KubeObject, b: KubeObject): number {
  const created = (object: KubeObject) => {
    const stamp = asRecord(object.metadata).creationTimestamp;
    const time = typeof stamp === "string" ? Date.parse(stamp) : Number.NaN;
    return Number.isNaN(time) ? Number.POSITIVE_INFINITY : time;
  };
  return created(a) - created(b) || 0;
}
