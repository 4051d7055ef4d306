// Events on Services, as MetalLB's controller writes `IPAllocated`: when a Service whose address
// this replica granted appears, one Normal Event on it, `AddressAssigned` (auto-assigned by the
// mutation) or `AddressGranted` (an address it asked for), naming the pool, so that
// `kubectl describe svc` tells the story. Never from the admission path (the webhooks declare
// no side effects): from the Services watch, by the replica that granted it (the elected
// allocator, from its hold; with claims before the answer, the replica whose claim it is). Its
// name is derived from the Service's uid and addresses, so replicas that both see themselves as
// the claimant (a claim rewritten by the other's validating call in between) create it once: the
// second create is AlreadyExists.

import { createHash } from "node:crypto";
import type { Logger } from "pino";
import { asRecord } from "../base/objects.ts";
import { formatAddress, type IPAddress } from "../ipam/address.ts";
import { holdingsOf, type Policy } from "../ipam/decide.ts";
import { ANNOTATION, type ServiceObject } from "../ipam/service.ts";
import type { Claim } from "./claims/lease.ts";
import { describeError, KubeApiError, type KubeClient } from "./kube.ts";
import type { KubeObject } from "./reflector.ts";

const COMPONENT = "lb-ip-guard";

/** Who was granted an address, by which replica, from which pool: a claim, or a hold's grant. */
export type GrantRecord = Pick<Claim, "pool" | "claimedBy" | "origin"> & {
  readonly holder: { readonly ref: string };
};

/**
 * The Event to record on `service`, just created, when `claimant` wrote the claims of what it
 * holds (`claimOf` gives a claim by address); undefined when it holds nothing, or another replica
 * (or no admission: an adopted Service) claimed it.
 */
export function grantEvent(
  service: KubeObject,
  policy: Policy,
  claimOf: (address: IPAddress) => GrantRecord | undefined,
  claimant: string,
  now: number,
): KubeObject | undefined {
  const metadata = asRecord(service.metadata);
  const text = (key: string) =>
    typeof metadata[key] === "string" ? (metadata[key] as string) : undefined;
  const [name, namespace, uid] = [text("name"), text("namespace"), text("uid")];
  if (name === undefined || namespace === undefined || uid === undefined) return undefined;
  const addresses = holdingsOf(service as ServiceObject, policy);
  if (addresses.length === 0) return undefined;
  const claims = addresses.map(claimOf);
  const ours = claims.every(
    (claim) =>
      claim !== undefined &&
      claim.holder.ref === `${namespace}/${name}` &&
      claim.claimedBy === claimant,
  );
  if (!ours) return undefined;
  const assignedFrom = (service as ServiceObject).metadata?.annotations?.[ANNOTATION.assignedFrom];
  const pool = assignedFrom ?? claims.find((claim) => claim?.pool !== "")?.pool ?? "";
  // A returned or taken-over address says whose it was: "192.168.35.104, retained for ...".
  const origin = claims.find((claim) => claim?.origin !== undefined)?.origin;
  const listed = addresses.map(formatAddress).join(", ");
  const from = `${origin === undefined ? "" : `, ${origin}${pool === "" ? "" : ","}`}${pool === "" ? "" : ` from pool "${pool}"`}`;
  const time = new Date(now).toISOString();
  const digest = createHash("sha256").update(`${uid}/${listed}`).digest("hex").slice(0, 16);
  return {
    apiVersion: "v1",
    kind: "Event",
    metadata: { name: `${name}.${digest}`, namespace },
    involvedObject: {
      apiVersion: "v1",
      kind: "Service",
      namespace,
      name,
      uid,
      ...(text("resourceVersion") !== undefined && { resourceVersion: text("resourceVersion") }),
    },
    type: "Normal",
    ...(assignedFrom !== undefined
      ? { reason: "AddressAssigned", message: `lb-ip-guard assigned ${listed}${from}` }
      : { reason: "AddressGranted", message: `lb-ip-guard granted ${listed}${from}` }),
    source: { component: COMPONENT },
    reportingComponent: COMPONENT,
    reportingInstance: claimant,
    firstTimestamp: time,
    lastTimestamp: time,
    count: 1,
  };
}

/** Writes grant Events; a failure is logged, never thrown (an Event is a courtesy). */
export class GrantEvents {
  readonly #client: KubeClient;
  readonly #logger: Logger;

  constructor(client: KubeClient, logger: Logger) {
    this.#client = client;
    this.#logger = logger;
  }

  async record(event: KubeObject): Promise<void> {
    const metadata = event.metadata as { name: string; namespace: string };
    const path = `/api/v1/namespaces/${encodeURIComponent(metadata.namespace)}/events`;
    try {
      await this.#client.request("POST", path, { body: event });
    } catch (error) {
      // Another replica recorded this grant already.
      if (error instanceof KubeApiError && error.status === 409) return;
      this.#logger.warn(
        { event: metadata.name, namespace: metadata.namespace, error: describeError(error) },
        `cannot record Event ${metadata.namespace}/${metadata.name}: ${describeError(error)}`,
      );
    }
  }
}
