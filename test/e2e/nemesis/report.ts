// What a nemesis run prints: the per-minute progress line of a long run, and the table at the
// end; and the figure every check must bring to zero.

import {
  type Answer,
  answered,
  type Create,
  type Load,
  outcomeKey,
  reachedReplica,
} from "./clients.ts";
import type { ChaosReport } from "./runner.ts";

/** Each check's violations; the suite asserts every one is zero. */
export function violations(report: ChaosReport): Record<string, number> {
  return {
    "1. overlapping addresses (replay)": report.overlaps.length,
    "2. live LoadBalancer asking for nothing": report.end.askingNothing.length,
    "2. live LoadBalancer not served what it asks": report.end.notServedAsAsked.length,
    "3. AllocationFailed on an admitted Service":
      report.failures.live.length + report.failures.deleted.length,
    "4. leaked claims after the grace": report.claims.leaked.length,
    "5. pools --cluster problems": report.pools.problems.length,
    "history incomplete": report.historyBroken === undefined ? 0 : 1,
    "unexplained answers (a test bug)": report.load.unexplained.length,
  };
}

/** Share of the creates made while the pool had a free address that got an answer (answered()). */
export function availability(creates: readonly Create[]): { answered: number; of: number } {
  const counted = creates.filter((c) => c.poolHadFree);
  return { answered: counted.filter((c) => answered(c.answer)).length, of: counted.length };
}

/**
 * availability() of the creates whose webhook calls all reached a running replica: a call the
 * proxy sent to a frozen or dead one fails however lb-ip-guard is built (ADR 0017), so this is
 * the share its design answers, the figure the 99 % target is held to.
 */
export function designAvailability(creates: readonly Create[]): { answered: number; of: number } {
  return availability(creates.filter((c) => reachedReplica(c.answer)));
}

/** The outcomes a create table always shows, zero or not: the webhook's failures among them. */
const ALWAYS_SHOWN = [
  "admitted",
  "refused NotReady",
  "failed calling webhook",
  "HTTP 5xx",
  "timeout",
];

function outcomes(answers: readonly Answer[]): Map<string, number> {
  const counts = new Map<string, number>(ALWAYS_SHOWN.map((key) => [key, 0]));
  for (const answer of answers) {
    const key = outcomeKey(answer);
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

/** `key: n` rows, sorted by key, indented under their heading. */
function countRows(counts: ReadonlyMap<string, number>): [string, number][] {
  return [...counts].sort(([a], [b]) => a.localeCompare(b)).map(([key, n]) => [`  ${key}`, n]);
}

const total = (counts: ReadonlyMap<string, number>) =>
  [...counts.values()].reduce((sum, n) => sum + n, 0);

const KINDS = ["auto", "plain", "explicit"] as const;

const percent = ({ answered: n, of }: { answered: number; of: number }) =>
  of === 0 ? "n/a" : `${((100 * n) / of).toFixed(1)} % (${n}/${of})`;

export function progressLine(
  elapsedMs: number,
  load: Load,
  faults: ReadonlyMap<string, number>,
  live: number,
): string {
  const admitted = load.creates.filter((c) => c.answer.outcome === "admitted").length;
  const faultCount = [...faults.values()].reduce((sum, n) => sum + n, 0);
  return `${Math.round(elapsedMs / 1000)} s: ${load.creates.length} creates (${admitted} admitted), ${total(load.updates.delete)} deletes, ${total(load.updates.relabel)} relabels, ${faultCount} faults, ${live} Services live; availability ${percent(availability(load.creates))}`;
}

/** The run's table: one `name | value` row each. */
export function reportTable(report: ChaosReport): string {
  const { options, load, end, failures } = report;
  const failedNames = new Set([...failures.live, ...failures.deleted]);
  const failed = load.creates.filter((c) => failedNames.has(c.name));
  const rows: [string, string | number][] = [
    ["seed", options.seed],
    ["allocator / MetalLB", `${options.allocator} / ${options.metallb}`],
    ["storm / clients", `${options.stormMs / 1000} s / ${options.clients}`],
    ["creates attempted", load.creates.length],
    ...countRows(outcomes(load.creates.map((c) => c.answer))),
    [
      "  by kind (auto/plain/explicit)",
      ["auto", "plain", "explicit"]
        .map((k) => load.creates.filter((c) => c.kind === k).length)
        .join("/"),
    ],
    ["deletes", total(load.updates.delete)],
    ...countRows(load.updates.delete),
    ["relabels", total(load.updates.relabel)],
    ...countRows(load.updates.relabel),
    ["availability (pool had a free address)", percent(availability(load.creates))],
    ["  of creates that reached a running replica", percent(designAvailability(load.creates))],
    ["auto-assigns admitted unmutated (ClusterIP)", report.unmutatedAutoAssigns],
    ...[...report.faults]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([kind, n]): [string, number] => [`fault ${kind}`, n]),
    ...Object.entries(violations(report)),
    [
      "AllocationFailed Services live / deleted",
      `${failures.live.length} / ${failures.deleted.length}`,
    ],
    ["  of the live, served as asked at the end", failures.liveServedLater.length],
    ["  of the deleted, served as asked before", failures.deletedServedBefore.length],
    [
      "  by kind (auto/plain/explicit)",
      KINDS.map((kind) => failed.filter((c) => c.kind === kind).length).join("/"),
    ],
    ["live LoadBalancers at the end", end.live.length],
    [
      "claims / addresses pools counts held at the end",
      `${report.claims.claims} / ${report.pools.held}`,
    ],
    ["MetalLB caught up in", `${(end.waitedMs / 1000).toFixed(1)} s`],
    ["wall time", `${(report.wallMs / 1000).toFixed(0)} s`],
    ["history and creates", report.historyFile],
  ];
  const width = Math.max(...rows.map(([name]) => name.length));
  return `${rows.map(([name, value]) => `${name.padEnd(width)} | ${value}`).join("\n")}\n`;
}

/** The violations themselves, a few of each, for the log of a failing run. */
export function violationDetails(report: ChaosReport): string {
  const few = (title: string, items: readonly string[]) =>
    items.length === 0
      ? []
      : [`${title} (${items.length}):`, ...items.slice(0, 10).map((i) => `  ${i}`)];
  return [
    ...few(
      "overlaps",
      report.overlaps.map(
        (o) => `${o.address} ${o.how} by ${o.services.join(" and ")} at rv ${o.rv}`,
      ),
    ),
    ...few("asking for nothing", report.end.askingNothing),
    ...few("not served as asked", report.end.notServedAsAsked),
    ...few("AllocationFailed", report.failures.messages),
    ...few("leaked claims", report.claims.leaked),
    ...few("pools problems", report.pools.problems),
    ...few("unexplained answers", report.load.unexplained),
    ...(report.historyBroken === undefined ? [] : [`history: ${report.historyBroken}`]),
  ].join("\n");
}
