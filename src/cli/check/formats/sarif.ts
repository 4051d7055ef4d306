// `--format sarif`: SARIF 2.1.0, what GitHub code scanning (`github/codeql-action/upload-sarif`)
// and other code-scanning consumers read. One rule per reason code, its help the README's
// troubleshooting table, plus one for admission warnings; denials are errors, warnings warnings;
// every result has a region and a partial fingerprint that survives the Service moving lines.

import type { AdmissionReason } from "../../../admission/admit.ts";
import { packageVersion } from "../../version.ts";
import type { Location } from "../locations.ts";
import { plainText, REASON_HELP, type ReasonHelp } from "../reasons.ts";
import type { CheckRun } from "../report.ts";
import { findingsOf, WARNING_RULE } from "./findings.ts";

const HOME = "https://github.com/lb-ip-guard/lb-ip-guard";
const TROUBLESHOOTING = `${HOME}#troubleshooting-reason-codes`;

const WARNING_HELP: ReasonHelp = {
  meaning:
    "the webhook admits the Service and `kubectl apply` prints a warning: a key the guarded release deprecates, an address retained for another Service, MetalLB serving something else",
  fix: "read the warning, which names what to change; the Service is admitted as it is",
};

/** Rules in a fixed order (the reason codes as the README lists them, then the warning). */
const RULES = [
  ...(Object.entries(REASON_HELP) as [AdmissionReason, ReasonHelp][]),
  [WARNING_RULE, WARNING_HELP] as const,
].map(([id, help]) => {
  const meaning = capitalised(plainText(help.meaning));
  const full = `${meaning}. Fix: ${plainText(help.fix)}.`;
  return {
    // No `name`: SARIF wants it to differ from the id, and the code is the name users know.
    id,
    shortDescription: { text: meaning },
    fullDescription: { text: full },
    help: { text: full, markdown: `**${id}**: ${help.meaning}.\n\n**Fix**: ${help.fix}.` },
    helpUri: TROUBLESHOOTING,
    defaultConfiguration: { level: id === WARNING_RULE ? "warning" : "error" },
  };
});

const RULE_INDEX = new Map(RULES.map((rule, index) => [rule.id, index]));

export function formatSarif(run: CheckRun): string {
  const results = findingsOf(run).map((finding) => ({
    ruleId: finding.rule,
    ruleIndex: RULE_INDEX.get(finding.rule),
    level: finding.level,
    message: { text: finding.message },
    locations: [physicalLocation(finding.location)],
    partialFingerprints: { "lbIpGuardFinding/v1": finding.fingerprint },
  }));
  const log = {
    $schema: "https://json.schemastore.org/sarif-2.1.0.json",
    version: "2.1.0",
    runs: [
      {
        tool: {
          driver: {
            name: "lb-ip-guard",
            informationUri: HOME,
            semanticVersion: packageVersion(),
            rules: RULES,
          },
        },
        results,
      },
    ],
  };
  return `${JSON.stringify(log, null, 2)}\n`;
}

/**
 * A result's place. A manifest's file is a relative URI (each segment percent-encoded), resolved
 * against the checkout (`%SRCROOT%`), as code scanning expects; a Service of the cluster (an
 * audit) has no file: it points at the artifact `cluster`, line 1, as every result needs a region.
 */
function physicalLocation(location: Location | undefined) {
  if (location === undefined) {
    return {
      physicalLocation: {
        artifactLocation: { uri: "cluster" },
        region: { startLine: 1 },
      },
    };
  }
  return {
    physicalLocation: {
      artifactLocation: {
        uri: location.file.split("/").map(encodeURIComponent).join("/"),
        uriBaseId: "%SRCROOT%",
      },
      region: { startLine: location.line, startColumn: location.column },
    },
  };
}

function capitalised(text: string): string {
  return `${text.charAt(0).toUpperCase()}${text.slice(1)}`;
}
