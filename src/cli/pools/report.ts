// The pool map as `lb-ip-guard pools` prints it: JSON (the shape of docs/pools.md; sizes as
// decimal strings, since an IPv6 pool holds more than JSON numbers count exactly) and text that
// reads like `kubectl get` and fits 100 columns.

import { isoTime } from "../../base/text.ts";
import { formatAddress } from "../../ipam/address.ts";
import {
  describeAllocation,
  describeProblem,
  type HeldAddress,
  type MapProblem,
  type MappedPool,
  type PoolMap,
  reservedFor,
} from "../../ipam/pool-map.ts";
import { formatRange, rangeSize } from "../../ipam/range.ts";
import { reservationRef } from "../../ipam/reservations.ts";

export interface HolderJson {
  readonly ref: string;
  readonly via: string;
  readonly sharingKey: string;
  readonly ports: readonly string[];
}

export interface AddressJson {
  readonly address: string;
  readonly state: HeldAddress["state"];
  readonly holders: readonly HolderJson[];
}

export interface PoolJson {
  readonly name: string;
  readonly origin: string;
  readonly ranges: readonly string[];
  readonly autoAssign: boolean;
  readonly avoidBuggyIPs: boolean;
  readonly serviceAllocation: string;
  readonly size: string;
  readonly usable: string;
  readonly used: number;
  readonly free: string;
  readonly shareUsed: number;
  readonly addresses: readonly AddressJson[];
  readonly freeRanges: readonly { readonly range: string; readonly size: string }[];
  /** Addresses nobody holds, kept for the Service that gave them up. */
  readonly retained: readonly RetainedJson[];
  /** Every reserved address of the pool, held or not. */
  readonly reserved: readonly ReservedJson[];
}

export interface RetainedJson {
  readonly address: string;
  /** `namespace/name` of the Service it is kept for. */
  readonly for: string;
  readonly since: string;
  readonly until: string;
}

export interface ReservedJson {
  readonly address: string;
  /** `namespace/name` of the AddressReservation. */
  readonly reservation: string;
  /** `namespace/service`, or `namespace NS` for any Service of it. */
  readonly for: string;
  /** Who holds it now (none: nobody yet). */
  readonly heldBy: readonly string[];
}

export interface NamespaceJson {
  readonly namespace: string;
  readonly quota: number;
  readonly used: number;
  readonly addresses: readonly string[];
}

export interface ProblemJson {
  readonly kind: MapProblem["kind"];
  readonly address: string;
  readonly message: string;
}

export interface PoolsReport {
  readonly summary: {
    readonly pools: number;
    readonly held: number;
    readonly retained: number;
    readonly reserved: number;
    readonly problems: number;
  };
  readonly pools: readonly PoolJson[];
  readonly outside: readonly AddressJson[];
  /** The namespaces with an address quota, by name. */
  readonly namespaces: readonly NamespaceJson[];
  readonly problems: readonly ProblemJson[];
}

function addressJson(held: HeldAddress): AddressJson {
  return {
    address: formatAddress(held.address),
    state: held.state,
    holders: held.holders.map(({ ref, via, sharingKey, ports }) => ({
      ref,
      via,
      sharingKey,
      ports,
    })),
  };
}

function poolJson(mapped: MappedPool): PoolJson {
  const { pool } = mapped;
  return {
    name: pool.name,
    origin: pool.origin,
    ranges: pool.ranges.map(formatRange),
    autoAssign: pool.autoAssign,
    avoidBuggyIPs: pool.avoidBuggyIPs,
    serviceAllocation: describeAllocation(pool.serviceAllocation),
    size: String(mapped.size),
    usable: String(mapped.usable),
    used: mapped.used,
    free: String(mapped.free),
    shareUsed: mapped.shareUsed,
    addresses: mapped.held.map(addressJson),
    freeRanges: mapped.freeRanges.map((range) => ({
      range: formatRange(range),
      size: String(rangeSize(range)),
    })),
    retained: mapped.kept.flatMap((entry) =>
      entry.state === "retained"
        ? [
            {
              address: formatAddress(entry.address),
              for: entry.retention.ref,
              since: isoTime(entry.retention.since),
              until: isoTime(entry.retention.until),
            },
          ]
        : [],
    ),
    reserved: mapped.reserved.map(({ address, reservation, heldBy }) => ({
      address: formatAddress(address),
      reservation: reservationRef(reservation),
      for: reservedFor(reservation),
      heldBy,
    })),
  };
}

export function reportOf(map: PoolMap): PoolsReport {
  const pools = map.pools.map(poolJson);
  const total = (count: (pool: PoolJson) => number) =>
    pools.reduce((sum, pool) => sum + count(pool), 0);
  return {
    summary: {
      pools: pools.length,
      held: total((pool) => pool.used) + map.outside.length,
      retained: total((pool) => pool.retained.length),
      reserved: total((pool) => pool.reserved.length),
      problems: map.problems.length,
    },
    pools,
    outside: map.outside.map(addressJson),
    namespaces: map.namespaces.map(({ namespace, quota, addresses }) => ({
      namespace,
      quota,
      used: addresses.length,
      addresses: addresses.map(formatAddress),
    })),
    problems: map.problems.map((problem) => ({
      kind: problem.kind,
      address: formatAddress(problem.address),
      message: describeProblem(problem),
    })),
  };
}

const WIDTH = 100;

/**
 * Columns padded to their widest cell, two spaces apart. When a line
 * would pass WIDTH, the `flexible` columns are narrowed in turn (to 8 at least) and their cells
 * cut with an ellipsis.
 */
function table(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  flexible: readonly number[],
  indent = "",
): string[] {
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => (row[column] ?? "").length)),
  );
  let overflow =
    indent.length + widths.reduce((sum, width) => sum + width, 0) + 2 * (widths.length - 1) - WIDTH;
  for (const column of flexible) {
    if (overflow <= 0) break;
    const width = widths[column] ?? 0;
    const narrowed = Math.max(8, (header[column] ?? "").length, width - overflow);
    widths[column] = narrowed;
    overflow -= width - narrowed;
  }
  const line = (cells: readonly string[]) =>
    `${indent}${cells
      .map((cell, column) => {
        const width = widths[column] ?? 0;
        const fitted = cell.length > width ? `${cell.slice(0, width - 1)}…` : cell;
        return column === cells.length - 1 ? fitted : fitted.padEnd(width);
      })
      .join("  ")}`.trimEnd();
  return [line(header), ...rows.map(line)];
}

/** `text` in lines of at most WIDTH columns, broken at spaces, each after `indent`. */
function wrap(text: string, indent: string): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line !== "" && indent.length + 2 + line.length + 1 + word.length > WIDTH) {
      lines.push(line);
      line = "";
    }
    line = line === "" ? word : `${line} ${word}`;
  }
  if (line !== "") lines.push(line);
  return lines.map((part, index) => `${indent}${index === 0 ? "" : "  "}${part}`);
}

function percent(share: number): string {
  const value = share * 100;
  if (value > 0 && value < 0.1) return "<0.1%";
  return `${value < 1 ? value.toFixed(1) : Math.round(value)}%`;
}

function addressRows(addresses: readonly AddressJson[]): string[][] {
  return addresses.flatMap((entry) =>
    entry.holders.map((holder, index) => [
      index === 0 ? entry.address : "",
      index === 0 ? entry.state : "",
      holder.ref,
      holder.via,
      holder.sharingKey === "" ? "-" : holder.sharingKey,
      holder.ports.length === 0 ? "-" : compactPorts(holder.ports),
    ]),
  );
}

/** `TCP/80,443 UDP/53` for TCP/80, TCP/443, UDP/53: one protocol name per protocol. */
function compactPorts(ports: readonly string[]): string {
  const byProtocol = new Map<string, string[]>();
  for (const port of ports) {
    const [protocol = "", number = ""] = port.split("/");
    byProtocol.set(protocol, [...(byProtocol.get(protocol) ?? []), number]);
  }
  return [...byProtocol].map(([protocol, numbers]) => `${protocol}/${numbers.join(",")}`).join(" ");
}

const ADDRESS_HEADER = ["ADDRESS", "STATE", "HOLDER", "VIA", "KEY", "PORTS"];
/** Ports are cut first, then the sharing key, the holder last. */
const ADDRESS_FLEXIBLE = [5, 4, 2];

export function formatText(report: PoolsReport): string {
  const lines = table(
    ["NAME", "SIZE", "USED", "FREE", "USED%", "AUTO-ASSIGN", "ALLOCATION"],
    report.pools.map((pool) => [
      pool.name,
      pool.size,
      String(pool.used),
      pool.free,
      percent(pool.shareUsed),
      String(pool.autoAssign),
      pool.serviceAllocation,
    ]),
    [6],
  );
  for (const pool of report.pools) {
    lines.push("", ...wrap(`pool ${pool.name}, from ${pool.origin}`, ""));
    const notes = pool.avoidBuggyIPs ? ", avoids .0 and .255" : "";
    lines.push(...wrap(`ranges: ${pool.ranges.join(", ")}${notes}`, "  "));
    if (pool.addresses.length > 0)
      lines.push(...table(ADDRESS_HEADER, addressRows(pool.addresses), ADDRESS_FLEXIBLE, "  "));
    else lines.push("  no address held");
    for (const entry of pool.retained) {
      lines.push(
        ...wrap(
          `retained: ${entry.address} for ${entry.for} since ${entry.since}, until ${entry.until}`,
          "  ",
        ),
      );
    }
    for (const entry of pool.reserved) {
      const held = entry.heldBy.length === 0 ? "not held" : `held by ${entry.heldBy.join(", ")}`;
      lines.push(
        ...wrap(
          `reserved: ${entry.address} by AddressReservation ${entry.reservation} for ${entry.for}, ${held}`,
          "  ",
        ),
      );
    }
    const free = pool.freeRanges.map((run) =>
      run.size === "1" ? run.range : `${run.range} (${run.size})`,
    );
    lines.push(...wrap(`free: ${free.length > 0 ? free.join(", ") : "none"}`, "  "));
  }
  if (report.outside.length > 0) {
    lines.push("", "outside every pool");
    lines.push(...table(ADDRESS_HEADER, addressRows(report.outside), ADDRESS_FLEXIBLE, "  "));
  }
  if (report.namespaces.length > 0) {
    lines.push(
      "",
      ...table(
        ["NAMESPACE", "QUOTA", "USED", "ADDRESSES"],
        report.namespaces.map((entry) => [
          entry.namespace,
          String(entry.quota),
          `${entry.used}${entry.used > entry.quota ? " (over)" : ""}`,
          entry.addresses.length > 0 ? entry.addresses.join(", ") : "-",
        ]),
        [3, 0],
      ),
    );
  }
  lines.push("");
  if (report.problems.length === 0) lines.push("no problems");
  else lines.push("PROBLEMS", ...report.problems.flatMap((problem) => wrap(problem.message, "  ")));
  return `${lines.join("\n")}\n`;
}
