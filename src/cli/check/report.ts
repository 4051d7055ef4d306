// The report of `lb-ip-guard check`: one result per Service, and per AddressReservation of the
// manifests (the JSON of the contract, or a text line each and a summary), and for --assign the
// manifests with every assignment written into the document it came from.

import { formatAddress } from "../../ipam/address.ts";
import type { ReasonCode } from "../../ipam/decide.ts";
import { RESERVATION_KIND, type ReservationSpec } from "../../ipam/reservations.ts";
import type { ServiceObject } from "../../ipam/service.ts";
import {
  ManifestError,
  type ManifestObject,
  type SourceDocument,
  serializeDocuments,
} from "../../manifests/loader.ts";
import type { Location } from "./locations.ts";
import type { Verdict } from "./replay.ts";

export interface DecidedService {
  readonly manifest: ManifestObject;
  readonly service: ServiceObject;
  readonly verdict: Verdict;
}

/** An AddressReservation of the manifests, admitted by the webhook's rules. */
export interface DecidedReservation {
  readonly manifest: ManifestObject;
  readonly reservation: ReservationSpec;
  readonly verdict: Verdict;
}

export type Decided = DecidedService | DecidedReservation;

/**
 * A JSON result of the contract: one per Service, in input order. A result of another object
 * (an AddressReservation) says its `kind`; a Service's has none, as in the contract.
 */
export interface CheckResult {
  readonly kind?: typeof RESERVATION_KIND;
  readonly namespace: string;
  readonly name: string;
  readonly decision: Verdict["kind"];
  readonly ips: readonly string[];
  readonly pool: string | null;
  readonly reason: ReasonCode | null;
  readonly message: string;
  /** Relative to the current folder (or the --stdin-filename); null for a Service of the cluster. */
  readonly file: string | null;
  /** 0-based index of the document in `file`. */
  readonly document: number | null;
  /** 1-based: the line of the field the decision is about, else the object's first line. */
  readonly line: number | null;
}

export interface CheckReport {
  readonly summary: {
    readonly services: number;
    readonly allowed: number;
    readonly assigned: number;
    readonly denied: number;
    /** Present when the manifests hold any: allowed and denied count them too. */
    readonly reservations?: number;
  };
  readonly results: readonly CheckResult[];
}

/** One run of `check`, everything each format is written from; the arrays are parallel. */
export interface CheckRun {
  readonly report: CheckReport;
  /** Per result: what the webhook would return as admission warnings. */
  readonly serviceWarnings: readonly (readonly string[])[];
  /** Per result: where it points (undefined for a Service of the cluster or --existing). */
  readonly locations: readonly (Location | undefined)[];
  /** Per result: the refusal it was admitted under by the ratchet (its message is the warning). */
  readonly ratchet: readonly (ReasonCode | undefined)[];
}

/** The report of decided Services; without `locations` (convert --check) every file is null. */
export function reportOf(
  decided: readonly Decided[],
  locations: readonly (Location | undefined)[] = [],
): CheckReport {
  const results = decided.map((entry, index): CheckResult => {
    const { verdict } = entry;
    const location = locations[index];
    const metadata = "service" in entry ? entry.service.metadata : undefined;
    return {
      ...("reservation" in entry
        ? {
            kind: RESERVATION_KIND,
            namespace: entry.reservation.namespace,
            name: entry.reservation.name,
          }
        : {
            namespace: metadata?.namespace ?? "default",
            name: metadata?.name || `${metadata?.generateName ?? ""}<generated>`,
          }),
      decision: verdict.kind,
      ips: verdict.addresses.map(formatAddress),
      pool: verdict.pool ?? null,
      reason: verdict.reason ?? null,
      message: verdict.message,
      file: location?.file ?? null,
      document: location?.document ?? null,
      line: location?.line ?? null,
    };
  });
  const count = (kind: Verdict["kind"]) =>
    results.filter((result) => result.decision === kind).length;
  const reservations = results.filter((result) => result.kind !== undefined).length;
  return {
    summary: {
      services: results.length - reservations,
      allowed: count("allowed"),
      assigned: count("assigned"),
      denied: count("denied"),
      ...(reservations > 0 && { reservations }),
    },
    results,
  };
}

/** How a result names its object: `team-a/web`, `AddressReservation team-a/db`. */
export function resultRef(result: CheckResult): string {
  const ref = `${result.namespace}/${result.name}`;
  return result.kind === undefined ? ref : `${result.kind} ${ref}`;
}

/** One line per Service, its location at the end (`file:line`), warnings below; a summary. */
export function formatText({ report, serviceWarnings }: CheckRun): string {
  const lines = report.results.flatMap((result, index) => {
    const ref = resultRef(result);
    const ips = result.ips.length > 0 ? result.ips.join(",") : "-";
    const pool = result.pool === null ? "" : ` [${result.pool}]`;
    const reason = result.reason === null ? "" : ` ${result.reason}:`;
    // The message starts with the Service's ref, already on the line.
    const message = result.message.replace(new RegExp(`^${escapeRegExp(ref)}:? `), "");
    const where = result.file === null ? "" : ` (${result.file}:${result.line})`;
    return [
      `${result.decision.padEnd(8)} ${ref} ${ips}${pool}${reason} ${message}${where}`,
      ...(serviceWarnings[index] ?? []).map((warning) => `         warning: ${warning}`),
    ];
  });
  lines.push(summaryLine(report.summary));
  return `${lines.join("\n")}\n`;
}

/** `6 services: 4 allowed, 1 assigned, 1 denied` (and the reservations, when there are any). */
export function summaryLine(summary: CheckReport["summary"]): string {
  const { services, allowed, assigned, denied, reservations } = summary;
  const counted = `${services} ${services === 1 ? "service" : "services"}${reservations === undefined ? "" : `, ${reservations} ${reservations === 1 ? "reservation" : "reservations"}`}`;
  return `${counted}: ${allowed} allowed, ${assigned} assigned, ${denied} denied`;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * The PATHs' documents with every assigned Service mutated as the webhook would mutate it:
 * type LoadBalancer, the address, and where it came from.
 */
export function applyAssignments(
  manifests: readonly ManifestObject[],
  decided: readonly Decided[],
): string {
  const edited = new Set<SourceDocument>();
  for (const { manifest, verdict } of decided) {
    if (verdict.kind !== "assigned") continue;
    edited.add(manifest.source);
    try {
      // The webhook's own patch, so `check --assign` writes exactly what admission would.
      for (const operation of verdict.patch) {
        const segments = operation.path
          .split("/")
          .slice(1)
          .map((segment) => segment.replaceAll("~1", "/").replaceAll("~0", "~"));
        manifest.source.yaml.setIn([...manifest.path, ...segments], operation.value);
      }
    } catch (error) {
      throw new ManifestError(
        manifest.source.file,
        manifest.source.document,
        `cannot write the assignment into this document: ${(error as Error).message}`,
      );
    }
  }
  // Each document once, in input order (a List document holds many objects).
  const documents = [...new Set(manifests.map((manifest) => manifest.source))];
  return serializeDocuments(documents, edited);
}
