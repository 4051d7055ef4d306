// What the CI formats report: the problems of a run, one per denial (an error) and one per
// admission warning (a warning; an update admitted under the ratchet warns under the rule of the
// refusal it was spared), each with the rule it breaks and where it points. Allowed and
// assigned Services without warnings are no finding (JUnit, which lists every Service, reads the
// run itself).

import { createHash } from "node:crypto";
import type { AdmissionReason } from "../../../admission/admit.ts";
import type { Location } from "../locations.ts";
import { type CheckResult, type CheckRun, resultRef } from "../report.ts";

/** The rule of an admission warning: the webhook admits the Service and kubectl prints it. */
export const WARNING_RULE = "AdmissionWarning";

export interface Finding {
  readonly level: "error" | "warning";
  readonly rule: AdmissionReason | typeof WARNING_RULE;
  readonly ref: string;
  readonly message: string;
  readonly result: CheckResult;
  readonly location: Location | undefined;
  /**
   * The same between runs while the same Service has the same problem in the same file, whatever
   * line it moved to: code scanning and GitLab match findings across runs by it.
   */
  readonly fingerprint: string;
}

export function findingsOf({ report, serviceWarnings, locations, ratchet }: CheckRun): Finding[] {
  return report.results.flatMap((result, index) => {
    const ref = resultRef(result);
    const location = locations[index];
    const finding = (level: Finding["level"], rule: Finding["rule"], message: string): Finding => ({
      level,
      rule,
      ref,
      message,
      result,
      location,
      fingerprint: fingerprint([rule, result.file ?? "", ref, level === "error" ? "" : message]),
    });
    const warnings = (serviceWarnings[index] ?? []).map((warning) =>
      finding("warning", WARNING_RULE, `${ref}: ${warning}`),
    );
    const spared = ratchet[index];
    if (spared !== undefined)
      return [finding("warning", spared, `${ref}: ${result.message}`), ...warnings];
    return result.reason === null
      ? warnings
      : [finding("error", result.reason, result.message), ...warnings];
  });
}

function fingerprint(parts: readonly string[]): string {
  // NUL cannot occur in a file name or a Kubernetes name: the parts cannot run into each other.
  return createHash("sha256").update(parts.join("\0")).digest("hex");
}
