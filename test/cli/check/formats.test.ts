// The CI formats of `check`, each proven against a consumer of that format rather than by reading
// its text: SARIF against Microsoft's SARIF Multitool (the 2.1.0 schema, its SARIF rules and
// GitHub code scanning's ingestion rules), JUnit through a JUnit report parser
// (test-results-parser), GitHub workflow commands against GitHub's own toolkit (@actions/core)
// and the escaping rules GitHub documents, GitLab Code Quality against the fields GitLab's
// documentation requires. One run writes them all, with the exit status of every other run.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import {
  type AnnotationProperties,
  error as toolkitError,
  warning as toolkitWarning,
} from "@actions/core";
import { Ajv } from "ajv";
import { parse as parseTestResults } from "test-results-parser";
import { escapeData, escapeProperty } from "../../../src/cli/check/formats/github.ts";
import { REASON_HELP } from "../../../src/cli/check/reasons.ts";
import { cli, configMap, LAN, type Report, service, yaml } from "./helpers.ts";

const FILE = "manifests/team.yaml";

/** Services that between them meet several reasons, a warning and two clean ones. */
const MANIFESTS = yaml(
  LAN,
  service("team-a/web", { loadBalancerIP: "10.0.0.10" }),
  service("team-a/copy", { loadBalancerIP: "10.0.0.10" }),
  service("team-a/typo", {}, { "metallb.io/loadBalancerIPs": "10.0.0.300" }),
  service("team-b/outside", {}, { "metallb.io/loadBalancerIPs": "192.168.1.1" }),
  service("team-b/ext", { type: "ClusterIP", externalIPs: ["192.0.2.7", "10.0.0.15"] }),
  service("team-b/nopool", {}, { "metallb.io/address-pool": "nope" }),
  service("team-b/plain", { type: "ClusterIP" }),
);

const DENIED = ["team-a/copy", "team-a/typo", "team-b/outside", "team-b/ext", "team-b/nopool"];

let dir: string;
let report: Report;
let text: string;
const written: Record<"sarif" | "junit" | "github" | "gitlab", string> = {
  sarif: "",
  junit: "",
  github: "",
  gitlab: "",
};

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "lb-ip-guard-formats-"));
  const formats = Object.keys(written) as (keyof typeof written)[];
  const args = [
    "check",
    "-",
    "--stdin-filename",
    FILE,
    "--format",
    "json",
    "--output",
    join(dir, "report.json"),
  ];
  for (const format of formats) args.push("--format", format, "--output", join(dir, format));
  args.push("--format", "text");
  const run = await cli(args, MANIFESTS);
  assert.equal(run.code, 1, run.stderr);
  text = run.stdout;
  report = JSON.parse(await readFile(join(dir, "report.json"), "utf8")) as Report;
  for (const format of formats) written[format] = await readFile(join(dir, format), "utf8");
});

after(() => rm(dir, { recursive: true, force: true }));

function resultOf(ref: string) {
  const result = report.results.find((entry) => `${entry.namespace}/${entry.name}` === ref);
  assert.ok(result !== undefined, ref);
  return result;
}

describe("check --format, --output pairs", () => {
  test("one run writes every format to its file and text to stdout; the report is the same run", () => {
    assert.deepEqual(report.summary, { services: 7, allowed: 2, assigned: 0, denied: 5 });
    assert.deepEqual(
      report.results
        .filter((result) => result.decision === "denied")
        .map((r) => `${r.namespace}/${r.name}`),
      DENIED,
    );
    assert.match(
      text,
      /^denied +team-a\/copy 10\.0\.0\.10 \[lan\] AddressInUse: .* \(manifests\/team\.yaml:\d+\)$/m,
    );
    assert.match(text, /^7 services: 2 allowed, 0 assigned, 5 denied$/m);
  });

  test("the exit status is the same in every format: 1 with a denial, 0 without", async () => {
    const clean = yaml(LAN, service("team-a/web", { loadBalancerIP: "10.0.0.10" }));
    for (const format of ["text", "json", "sarif", "junit", "github", "gitlab"]) {
      const [denied, ok] = await Promise.all([
        cli(["check", "-", "--format", format], MANIFESTS),
        cli(["check", "-", "--format", format], clean),
      ]);
      assert.equal(denied.code, 1, `${format}: ${denied.stderr}`);
      assert.equal(ok.code, 0, `${format}: ${ok.stderr}`);
    }
  });
});

describe("--format sarif", () => {
  /** The SARIF Multitool's findings on `file`: the schema, its SARIF rules, GitHub's ingestion rules. */
  async function validateSarif(
    file: string,
  ): Promise<{ ruleId: string; level?: string; message: { id?: string; text?: string } }[]> {
    const require = createRequire(import.meta.url);
    const multitool = join(
      dirname(require.resolve("@microsoft/sarif-multitool-linux/package.json")),
      "Sarif.Multitool",
    );
    const log = join(dir, `${basename(file)}.validation`);
    await promisify(execFile)(multitool, [
      "validate",
      file,
      "--output",
      log,
      "--log",
      "ForceOverwrite",
      "--rule-kind",
      "Sarif;Ghas",
    ]);
    return JSON.parse(await readFile(log, "utf8")).runs[0].results;
  }

  test("SARIF Multitool validates it: schema, SARIF rules and GitHub's ingestion rules, nothing to say", async () => {
    const findings = await validateSarif(join(dir, "sarif"));
    assert.deepEqual(
      findings.map((result) => `${result.ruleId} ${result.message.id ?? result.message.text}`),
      [],
    );
    // It did run its rules: a result without a location is what GitHub refuses.
    const broken = JSON.parse(written.sarif);
    delete broken.runs[0].results[0].locations;
    await writeFile(join(dir, "broken.sarif"), JSON.stringify(broken));
    const refused = await validateSarif(join(dir, "broken.sarif"));
    assert.ok(refused.some((result) => result.level === "error"));
  });

  test("a rule per reason code with the README's help, errors for denials, warnings for warnings, a region each", () => {
    const { runs } = JSON.parse(written.sarif);
    assert.equal(runs.length, 1);
    const [run] = runs;
    const rules = run.tool.driver.rules as { id: string; help: { markdown: string } }[];
    assert.deepEqual(
      rules.map((rule) => rule.id),
      [...Object.keys(REASON_HELP), "AdmissionWarning"],
    );
    for (const rule of rules.slice(0, -1)) {
      const help = REASON_HELP[rule.id as keyof typeof REASON_HELP];
      assert.ok(
        rule.help.markdown.includes(help.meaning) && rule.help.markdown.includes(help.fix),
        rule.id,
      );
    }
    const errors = run.results.filter((result: { level: string }) => result.level === "error");
    assert.deepEqual(
      errors.map((result: { ruleId: string }) => result.ruleId),
      DENIED.map((ref) => resultOf(ref).reason),
    );
    for (const result of run.results) {
      assert.equal(rules[result.ruleIndex]?.id, result.ruleId);
      const location = result.locations[0].physicalLocation;
      assert.equal(location.artifactLocation.uri, FILE);
      assert.ok(Number.isInteger(location.region.startLine));
    }
    errors.forEach(
      (
        result: { locations: { physicalLocation: { region: { startLine: number } } }[] },
        index: number,
      ) => {
        assert.equal(
          result.locations[0]?.physicalLocation.region.startLine,
          resultOf(DENIED[index] ?? "").line,
        );
      },
    );
    assert.ok(run.results.some((result: { level: string }) => result.level === "warning"));
  });

  test("partial fingerprints stay when the Service moves lines, and differ between findings", async () => {
    const shifted = await cli(
      ["check", "-", "--stdin-filename", FILE, "--format", "sarif"],
      `# moved\n\n${MANIFESTS}`,
    );
    const print = (sarif: string) =>
      JSON.parse(sarif).runs[0].results.map(
        (result: {
          partialFingerprints: Record<string, string>;
          locations: { physicalLocation: { region: { startLine: number } } }[];
        }) => [
          result.partialFingerprints["lbIpGuardFinding/v1"],
          result.locations[0]?.physicalLocation.region.startLine,
        ],
      );
    const before = print(written.sarif);
    const moved = print(shifted.stdout);
    assert.deepEqual(
      moved.map(([fingerprint]: string[]) => fingerprint),
      before.map(([fingerprint]: string[]) => fingerprint),
    );
    assert.deepEqual(
      moved.map(([, line]: number[]) => line),
      before.map(([, line]: number[]) => (line ?? 0) + 2),
    );
    assert.equal(new Set(before.map(([fingerprint]: string[]) => fingerprint)).size, before.length);
  });
});

describe("--format junit", () => {
  test("a JUnit parser reads a suite per file, a case per Service, a failure per denial", () => {
    const path = join(dir, "junit");
    const parsed = parseTestResults({ type: "junit", files: [path] });
    assert.equal(parsed.total, 7);
    assert.equal(parsed.failed, 5);
    assert.equal(parsed.passed, 2);
    assert.deepEqual(
      parsed.suites.map((suite) => suite.name),
      [FILE],
    );
    const cases = parsed.suites[0]?.cases ?? [];
    assert.deepEqual(
      cases.map((entry) => entry.name),
      report.results.map((r) => `${r.namespace}/${r.name}`),
    );
    for (const entry of cases) {
      const denied = DENIED.includes(entry.name);
      assert.equal(entry.status, denied ? "FAIL" : "PASS", entry.name);
      if (denied) assert.ok(entry.failure.includes(resultOf(entry.name).message), entry.name);
    }
  });

  test("two files, two suites; the cluster's Services of an audit, one suite without a file", async () => {
    const run = await cli([
      "check",
      "examples/kubeflow-v0.11/dashboards.yaml",
      "examples/ipaddresspool",
      "--pools",
      "examples/kubeflow-v0.11/metallb-config.yaml",
      "--format",
      "junit",
      "--output",
      join(dir, "two.xml"),
    ]);
    assert.ok(run.code === 0 || run.code === 1, run.stderr);
    const suites = parseTestResults({ type: "junit", files: [join(dir, "two.xml")] }).suites.map(
      (suite) => suite.name,
    );
    assert.ok(suites.length >= 2, suites.join(" "));
    assert.equal(suites[0], "examples/kubeflow-v0.11/dashboards.yaml");
    const audit = await cli([
      "check",
      "--existing",
      "examples/kubeflow-v0.11/dashboards.yaml",
      "--pools",
      "examples/kubeflow-v0.11/metallb-config.yaml",
      "--format",
      "junit",
      "--output",
      join(dir, "audit.xml"),
    ]);
    assert.ok(audit.code === 0 || audit.code === 1, audit.stderr);
    const parsed = parseTestResults({ type: "junit", files: [join(dir, "audit.xml")] });
    assert.deepEqual(
      parsed.suites.map((suite) => suite.name),
      ["cluster"],
    );
  });
});

describe("an update admitted under the ratchet", () => {
  test("is a warning under the rule of the refusal it was spared, in SARIF, annotations and Code Quality", async () => {
    // minio holds 10.0.0.11, and the pool has shrunk to 10.0.0.10: relabelling it is admitted.
    const minio = (labels: Record<string, string>) =>
      service("kubeflow/minio-service", { loadBalancerIP: "10.0.0.11" }, {}, labels);
    await writeFile(join(dir, "existing.yaml"), yaml(minio({})));
    const shrunk = configMap("- name: lan\n  protocol: layer2\n  addresses:\n  - 10.0.0.10/32");
    await writeFile(join(dir, "shrunk.yaml"), yaml(shrunk));
    const args = [
      "check",
      "-",
      "--pools",
      join(dir, "shrunk.yaml"),
      "--existing",
      join(dir, "existing.yaml"),
    ];
    const [github, sarif, gitlab] = await Promise.all(
      ["github", "sarif", "gitlab"].map((format) =>
        cli([...args, "--format", format], yaml(minio({ tier: "storage" }))),
      ),
    );
    for (const run of [github, sarif, gitlab]) assert.equal(run?.code, 0, run?.stderr);
    assert.match(
      github?.stdout ?? "",
      /^::warning title=lb-ip-guard NotInAnyPool%3A kubeflow\/minio-service,file=<stdin>,line=\d+,col=\d+::kubeflow\/minio-service: NotInAnyPool: /m,
    );
    const [result] = JSON.parse(sarif?.stdout ?? "").runs[0].results;
    assert.deepEqual([result.ruleId, result.level], ["NotInAnyPool", "warning"]);
    const [issue] = JSON.parse(gitlab?.stdout ?? "");
    assert.deepEqual([issue.check_name, issue.severity], ["NotInAnyPool", "minor"]);
  });
});

describe("--format github", () => {
  /** What GitHub's toolkit writes for an annotation: the reference for every line. */
  function toolkitLine(
    level: "error" | "warning",
    message: string,
    properties: AnnotationProperties,
  ): string {
    const chunks: string[] = [];
    const write = process.stdout.write;
    process.stdout.write = ((chunk: string) => {
      chunks.push(chunk);
      return true;
    }) as typeof process.stdout.write;
    try {
      (level === "error" ? toolkitError : toolkitWarning)(message, properties);
    } finally {
      process.stdout.write = write;
    }
    return chunks.join("").trimEnd();
  }

  test("every annotation is the line @actions/core writes for it, at the result's line", () => {
    const lines = written.github.trimEnd().split("\n");
    const commands = lines.filter((line) => line.startsWith("::"));
    assert.equal(lines.at(-1), "lb-ip-guard check: 7 services: 2 allowed, 0 assigned, 5 denied");
    const errors = commands.filter((line) => line.startsWith("::error "));
    assert.equal(errors.length, DENIED.length);
    DENIED.forEach((ref, index) => {
      const result = resultOf(ref);
      const column = Number(/,col=(\d+)::/.exec(errors[index] ?? "")?.[1]);
      assert.equal(
        errors[index],
        toolkitLine("error", result.message, {
          title: `lb-ip-guard ${result.reason}: ${ref}`,
          file: FILE,
          startLine: result.line ?? 0,
          startColumn: column,
        }),
      );
    });
    assert.ok(commands.some((line) => line.startsWith("::warning ")));
  });

  test("escaping: GitHub's documented rules, round-tripped through a parser of them and equal to the toolkit's", () => {
    const hostile = [
      "100%",
      "a\r\nb",
      "key: value, other",
      "%0A literal",
      "::error::",
      "日本, 语:",
    ];
    // The runner's unescaping, as GitHub documents the escapes: %25 last, so %250A stays %0A.
    const unescapeData = (text: string) =>
      text.replaceAll("%0D", "\r").replaceAll("%0A", "\n").replaceAll("%25", "%");
    const unescapeProperty = (text: string) =>
      unescapeData(text.replaceAll("%3A", ":").replaceAll("%2C", ","));
    for (const value of hostile) {
      const message = escapeData(value);
      const property = escapeProperty(value);
      assert.ok(!/[\r\n]/.test(message) && !/[\r\n:,]/.test(property), JSON.stringify(value));
      assert.equal(unescapeData(message), value);
      assert.equal(unescapeProperty(property), value);
      const line = toolkitLine("error", value, { title: value, file: "f" });
      assert.equal(line, `::error title=${property},file=f::${message}`);
    }
  });
});

describe("--format gitlab", () => {
  // The Code Quality report format as GitLab's documentation gives it: an array of issues, each
  // with a description, check_name, fingerprint, severity (one of five) and location.path with
  // location.lines.begin.
  const schema = {
    type: "array",
    items: {
      type: "object",
      required: ["description", "check_name", "fingerprint", "severity", "location"],
      properties: {
        description: { type: "string", minLength: 1 },
        check_name: { type: "string", minLength: 1 },
        fingerprint: { type: "string", minLength: 1 },
        severity: { enum: ["info", "minor", "major", "critical", "blocker"] },
        location: {
          type: "object",
          required: ["path", "lines"],
          properties: {
            path: { type: "string" },
            lines: {
              type: "object",
              required: ["begin"],
              properties: { begin: { type: "integer", minimum: 1 } },
            },
          },
        },
      },
    },
  };

  interface Issue {
    check_name: string;
    fingerprint: string;
    severity: string;
    location: { path: string; lines: { begin: number } };
  }

  test("valid Code Quality issues, unique fingerprints (GitLab keeps one per fingerprint), at the result's line", () => {
    const issues: Issue[] = JSON.parse(written.gitlab);
    const validate = new Ajv({ allErrors: true, strict: true }).compile(schema);
    assert.ok(validate(issues), JSON.stringify(validate.errors));
    assert.equal(new Set(issues.map((issue) => issue.fingerprint)).size, issues.length);
    const majors = issues.filter((issue) => issue.severity === "major");
    assert.deepEqual(
      majors.map(
        (issue: { check_name: string; location: { path: string; lines: { begin: number } } }) => [
          issue.check_name,
          issue.location.path,
          issue.location.lines.begin,
        ],
      ),
      DENIED.map((ref) => [resultOf(ref).reason, FILE, resultOf(ref).line]),
    );
  });
});
