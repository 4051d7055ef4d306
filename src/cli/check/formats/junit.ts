// `--format junit`: JUnit XML, which most CI systems render as a test report (GitLab's
// `artifacts:reports:junit`, Jenkins, Azure Pipelines, the test-report actions of GitHub). A test
// suite per file, a test case per Service (namespace/name), a failure per denial; admission
// warnings in the case's system-out, where such reports show a passing test's notes.

import { type CheckResult, type CheckRun, resultRef } from "../report.ts";
import { type XmlElement, xmlDocument } from "./xml.ts";

/** The suite of the Services read from the cluster or --existing, which have no file. */
const CLUSTER_SUITE = "cluster";

export function formatJUnit({ report, serviceWarnings }: CheckRun): string {
  const suites = new Map<string, XmlElement[]>();
  const failures = new Map<string, number>();
  report.results.forEach((result, index) => {
    const suite = result.file ?? CLUSTER_SUITE;
    let cases = suites.get(suite);
    if (cases === undefined) {
      cases = [];
      suites.set(suite, cases);
      failures.set(suite, 0);
    }
    if (result.decision === "denied") failures.set(suite, (failures.get(suite) ?? 0) + 1);
    cases.push(testCase(result, suite, serviceWarnings[index] ?? []));
  });
  return xmlDocument({
    name: "testsuites",
    attributes: {
      name: "lb-ip-guard check",
      tests: report.results.length,
      failures: report.summary.denied,
      errors: 0,
    },
    children: [...suites].map(([name, cases]) => ({
      name: "testsuite",
      attributes: {
        name,
        tests: cases.length,
        failures: failures.get(name),
        errors: 0,
        skipped: 0,
      },
      children: cases,
    })),
  });
}

function testCase(result: CheckResult, suite: string, warnings: readonly string[]): XmlElement {
  const ref = resultRef(result);
  const where = result.file === null ? "" : ` (${result.file}:${result.line})`;
  const children: XmlElement[] = [];
  if (result.decision === "denied") {
    children.push({
      name: "failure",
      attributes: { type: result.reason ?? undefined, message: result.message },
      children: [`${result.reason}: ${result.message}${where}`],
    });
  }
  if (warnings.length > 0) {
    children.push({
      name: "system-out",
      children: [warnings.map((warning) => `warning: ${warning}`).join("\n")],
    });
  }
  return {
    name: "testcase",
    attributes: {
      name: ref,
      classname: suite,
      file: result.file ?? undefined,
      line: result.line ?? undefined,
    },
    children,
  };
}
