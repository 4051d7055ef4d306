// What a nemesis run prints: the per-minute progress line of a long run, and the table at the
// end; and the figure every check must bring to zero.

import { answered, type Create, type Load } from "./clients.ts";
import type { ChaosReport } from "./runner.ts";

/** Each check's violations; the suite asserts every one is zero. */
export function violations(report: ChaosReport): Record<string, number> {
  return {
    "1. overlapping addresses (replay)": report.overlaps.length,
    "2. live LoadBalancer asking for nothing": report.end.askingNothing.length,
    "2. live LoadBalancer not served what it asks": report.end.notServedAsAsked.length,
    "3. AllocationFailed on an admitted Service":
      report.failures.live.length + report.failures.deleted.length,
    "4. leaked claims after the grace": report.leaked.length,
    "5. pools --cluster problems": report.problems.length,
    "history incomplete": report.historyBroken === undefined ? 0 : 1,
    "client errors (a test bug)":
      otherAnswers(report.load.creates).length + report.load.otherFailures.length,
  };
}

/** Share of the creates made while the pool had a free address that got an answer (answered()). */
export function availability(creates: readonly Create[]): { answered: number; of: number } {
  const counted = creates.filter((c) => c.poolHadFree);
  return { answered: counted.filter((c) => answered(c.answer)).length, of: counted.length };
}

function otherAnswers(creates: readonly Create[]): string[] {
  return creates.flatMap((c) =>
    c.answer.outcome === "other" ? [`${c.name}: ${c.answer.detail}`] : [],
  );
}

/** How each create was answered: "admitted", "refused NotReady", "failed calling webhook", ... */
function outcomes(creates: readonly Create[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const { answer } of creates) {
    const key = answer.outcome === "refused" ? `refused ${answer.reason}` : answer.outcome;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return new Map([...counts].sort(([a], [b]) => a.localeCompare(b)));
}

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
  return `${Math.round(elapsedMs / 1000)} s: ${load.creates.length} creates (${admitted} admitted), ${load.deletes} deletes, ${load.relabels} relabels, ${faultCount} faults, ${live} Services live; availability ${percent(availability(load.creates))}`;
}

/** The run's table: one `name | value` row each. */
export function reportTable(report: ChaosReport): string {
  const { options, load, end, failures } = report;
  const rows: [string, string | number][] = [
    ["seed", options.seed],
    ["allocator / MetalLB", `${options.allocator} / ${options.metallb}`],
    ["storm / clients", `${options.stormMs / 1000} s / ${options.clients}`],
    ["creates attempted", load.creates.length],
    ...[...outcomes(load.creates)].map(([key, n]): [string, number] => [`  ${key}`, n]),
    [
      "  by kind (auto/plain/explicit)",
      ["auto", "plain", "explicit"]
        .map((k) => load.creates.filter((c) => c.kind === k).length)
        .join("/"),
    ],
    ["deletes / relabels", `${load.deletes} / ${load.relabels}`],
    ["availability (pool had a free address)", percent(availability(load.creates))],
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
    ["live LoadBalancers at the end", end.live.length],
    ["MetalLB caught up in", `${(end.waitedMs / 1000).toFixed(1)} s`],
    ["wall time", `${(report.wallMs / 1000).toFixed(0)} s`],
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
    ...few("leaked claims", report.leaked),
    ...few("pools problems", report.problems),
    ...few("client errors", [...otherAnswers(report.load.creates), ...report.load.otherFailures]),
    ...(report.historyBroken === undefined ? [] : [`history: ${report.historyBroken}`]),
  ].join("\n");
}
