// `--format github`: GitHub Actions workflow commands, which the runner turns into annotations on
// the pull request's diff at the offending line (`::error file=…,line=…,title=…::message`).
// Escaping as GitHub documents it: in the message `%`, CR and LF; in a property also `:` and `,`,
// which would otherwise end the property.

import { type CheckRun, summaryLine } from "../report.ts";
import { findingsOf } from "./findings.ts";

export function formatGitHub(run: CheckRun): string {
  const lines = findingsOf(run).map(({ level, rule, ref, message, location }) => {
    // In the order GitHub's own toolkit (@actions/core) writes them.
    const properties = [
      ["title", `lb-ip-guard ${rule}: ${ref}`],
      ...(location === undefined
        ? []
        : [
            ["file", location.file],
            ["line", String(location.line)],
            ["col", String(location.column)],
          ]),
    ]
      .map(([name, value]) => `${name}=${escapeProperty(value ?? "")}`)
      .join(",");
    return `::${level} ${properties}::${escapeData(message)}`;
  });
  // A plain line: the step's log shows it, the runner leaves it alone.
  lines.push(`lb-ip-guard check: ${summaryLine(run.report.summary)}`);
  return `${lines.join("\n")}\n`;
}

export function escapeData(text: string): string {
  return text.replaceAll("%", "%25").replaceAll("\r", "%0D").replaceAll("\n", "%0A");
}

export function escapeProperty(text: string): string {
  return escapeData(text).replaceAll(":", "%3A").replaceAll(",", "%2C");
}
