// `--format gitlab`: a GitLab Code Quality report (a subset of Code Climate's issue format), the
// JSON array that a job names under `artifacts:reports:codequality` and the merge request widget
// shows per line. GitLab keeps one finding per fingerprint, so each must be unique.

import type { CheckRun } from "../report.ts";
import { findingsOf } from "./findings.ts";

export function formatGitLab(run: CheckRun): string {
  const issues = findingsOf(run).map(({ level, rule, message, location, fingerprint }) => ({
    description: message,
    check_name: rule,
    fingerprint,
    // A denial fails `kubectl apply`: more than a style remark, as GitLab ranks them.
    severity: level === "error" ? "major" : "minor",
    // A Service of the cluster has no file: GitLab still lists it, in the report's overview.
    location: { path: location?.file ?? "", lines: { begin: location?.line ?? 1 } },
  }));
  return `${JSON.stringify(issues, null, 2)}\n`;
}
