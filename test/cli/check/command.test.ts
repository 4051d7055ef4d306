// The command line of `lb-ip-guard` and `check`: the usage, and one line with exit 2 for an
// unknown command, an unknown flag or a bad value.
// Subtests run concurrently: each is a separate process.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { cli, KUBEFLOW, KUBEFLOW_DASHBOARDS } from "./helpers.ts";

describe("command line", { concurrency: true }, () => {
  test("no arguments, -h and --help print the usage and exit 0", async () => {
    for (const { code, stdout } of await Promise.all([cli([]), cli(["-h"]), cli(["--help"])])) {
      assert.equal(code, 0);
      assert.match(stdout, /Usage: lb-ip-guard <command>/);
      assert.match(stdout, /check +check Service manifests/);
    }
  });

  test("check --help documents the flags and --assign", async () => {
    const { code, stdout } = await cli(["check", "--help"]);
    assert.equal(code, 0);
    for (const flag of ["--pools", "--existing", "--format", "--assign", "kubectl apply -f -"]) {
      assert.ok(stdout.includes(flag), flag);
    }
  });

  test("unknown command, unknown flag, bad values: exit 2 with one line", async () => {
    const runs = await Promise.all([
      cli(["frobnicate"]),
      cli(["--frobnicate"]),
      cli(["check", KUBEFLOW, "--frobnicate"]),
      cli(["check", KUBEFLOW, "--format", "yaml"]),
      cli(["check", KUBEFLOW, "--format"]),
      cli(["check"]),
      cli(["check", "-", "--existing", "-"]),
      cli(["check", "--existing", KUBEFLOW_DASHBOARDS, "--assign"]),
      cli(["check", KUBEFLOW, "--output", "a.sarif", "--format", "sarif"]),
      cli(["check", KUBEFLOW, "--format", "sarif", "--format", "json"]),
      cli(["check", KUBEFLOW, "--format", "sarif", "--output", "a", "--output", "b"]),
      cli([
        "check",
        KUBEFLOW,
        "--format",
        "sarif",
        "--output",
        "a",
        "--format",
        "json",
        "--output",
        "a",
      ]),
      cli(["check", KUBEFLOW, "--stdin-filename", "chart.yaml"]),
    ]);
    const expected = [
      /unknown command 'frobnicate'/,
      /unknown option '--frobnicate'/,
      /unknown option '--frobnicate'/,
      /--format must be one of text, json, sarif, junit, github, gitlab, not "yaml"/,
      /'--format' needs a value/,
      /no manifests given/,
      /stdin \(-\) can be read only once/,
      /--assign writes the manifests it is given/,
      /--output a\.sarif: give the --format it writes just before it/,
      /only one --format can go to stdout/,
      /--output b: give the --format it writes just before it/,
      /--output a is given twice/,
      /--stdin-filename names stdin: give - among the PATHs/,
    ];
    runs.forEach((run, index) => {
      assert.equal(run.code, 2, run.stderr);
      assert.equal(run.stdout, "");
      assert.equal(run.stderr.trimEnd().split("\n").length, 1, run.stderr);
      assert.match(run.stderr, expected[index] as RegExp);
    });
  });
});
