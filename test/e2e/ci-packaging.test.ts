// The CI packaging of `check`, each example of docs/ci.md run as its CI system would run it, on a
// repository laid out as the examples say (manifests/ with the Kubeflow dashboards, whose
// minio-copy asks for minio's address, and metallb/pools.yaml):
// - the GitHub workflow: its lb-ip-guard step runs action.yml's own steps as a script (the
//   `run:` steps with their inputs and env, as the runner expands them; setup-node is the Node 24
//   these tests run on), and the SARIF file the upload step names is there, pointing at the line;
// - the GitLab job: its script lines in a shell, then its report artifacts read back;
// - the pre-commit configuration: the real pre-commit (Debian's package) installs the hook from
//   this repository's .pre-commit-hooks.yaml at HEAD and refuses, then accepts, a commit.

import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { chmod, cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { after, before, describe, it, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { parse as parseTestResults } from "test-results-parser";
import { parse } from "yaml";
import { outputOf } from "../../scripts/child-output.ts";
import { AssetsUnavailableError } from "../../scripts/go-assets.ts";
import { preCommit } from "../../scripts/pre-commit.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));
const run = promisify(execFile);
/** Node 24 first on PATH, as setup-node leaves it and as pre-commit's node hooks need. */
const PATH = `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ""}`;

/** The YAML block of docs/ci.md after `<!-- example: NAME -->`. */
async function example(name: string): Promise<string> {
  const docs = await readFile(join(root, "docs/ci.md"), "utf8");
  const block = new RegExp(`<!-- example: ${name} -->\\n\`\`\`yaml\\n([\\s\\S]*?)\\n\`\`\``).exec(
    docs,
  );
  assert.ok(block?.[1] !== undefined, `docs/ci.md has no example ${name}`);
  return block[1];
}

const DASHBOARDS = await readFile(join(root, "examples/kubeflow-v0.11/dashboards.yaml"), "utf8");
/** The line of minio-copy's loadBalancerIP: the second of the two asking for .101. */
const DUPLICATE_LINE =
  DASHBOARDS.split("\n").findLastIndex((line) => line.includes("loadBalancerIP: 192.168.35.101")) +
  1;

/** A repository as the examples have it. */
async function workspace(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "lb-ip-guard-ci-"));
  await mkdir(join(dir, "manifests"));
  await mkdir(join(dir, "metallb"));
  await writeFile(join(dir, "manifests/dashboards.yaml"), DASHBOARDS);
  await cp(
    join(root, "examples/kubeflow-v0.11/metallb-config.yaml"),
    join(dir, "metallb/pools.yaml"),
  );
  return dir;
}

function shell(script: string, cwd: string, env: NodeJS.ProcessEnv) {
  // As the runners run a step: bash, stop at the first failing command.
  return outputOf(
    spawn("bash", ["--noprofile", "--norc", "-eo", "pipefail", "-c", script], {
      cwd,
      env: { ...process.env, PATH, ...env },
    }),
  );
}

describe("docs/ci.md: the GitHub workflow, through action.yml", () => {
  let actionPath: string;
  let dir: string;
  before(async () => {
    // The Action as the runner checks it out: its own folder (its npm ci must not touch ours).
    actionPath = await mkdtemp(join(tmpdir(), "lb-ip-guard-action-"));
    for (const file of ["action.yml", "package.json", "package-lock.json", "src"]) {
      await cp(join(root, file), join(actionPath, file), { recursive: true });
    }
    dir = await workspace();
  });
  after(async () => {
    await rm(actionPath, { recursive: true, force: true });
    await rm(dir, { recursive: true, force: true });
  });

  /** Runs action.yml's steps with `inputs`: what the runner does for a composite Action. */
  async function runAction(inputs: Record<string, string>) {
    const action = parse(await readFile(join(actionPath, "action.yml"), "utf8"));
    const values: Record<string, string> = {};
    for (const [name, input] of Object.entries(
      action.inputs as Record<string, { default?: string; required?: boolean }>,
    )) {
      const given = inputs[name] ?? input.default;
      assert.ok(given !== undefined || !input.required, `input ${name} is required`);
      values[name] = given ?? "";
    }
    for (const name of Object.keys(inputs))
      assert.ok(name in values, `action.yml has no input ${name}`);
    // The expressions the Action uses; any other would not be run here, so it is refused.
    const expand = (text: string) =>
      text.replace(/\$\{\{\s*([^}]+?)\s*\}\}/g, (_, expression: string) => {
        if (expression === "github.action_path") return actionPath;
        const input = /^inputs\.([\w-]+)$/.exec(expression)?.[1];
        assert.ok(input !== undefined && input in values, `unexpected expression ${expression}`);
        return values[input] ?? "";
      });
    let last: Awaited<ReturnType<typeof shell>> | undefined;
    for (const step of action.runs.steps as {
      uses?: string;
      run?: string;
      env?: Record<string, string>;
      "working-directory"?: string;
      shell?: string;
    }[]) {
      if (step.uses !== undefined) {
        assert.match(step.uses, /^actions\/setup-node@/, "the only step not run here sets up Node");
        continue;
      }
      assert.equal(step.shell, "bash");
      const env = Object.fromEntries(
        Object.entries(step.env ?? {}).map(([name, value]) => [name, expand(value)]),
      );
      const cwd = step["working-directory"] === undefined ? dir : expand(step["working-directory"]);
      last = await shell(expand(step.run ?? ""), cwd, {
        ...env,
        GITHUB_ACTION_PATH: actionPath,
        GITHUB_WORKSPACE: dir,
      });
      if (last.code !== 0) break;
    }
    assert.ok(last !== undefined);
    return last;
  }

  test("the check step fails on the duplicate, annotates its line, and leaves the SARIF the upload step names", async () => {
    const workflow = parse(await example("github-workflow"));
    const steps = workflow.jobs["lb-ip-guard"].steps as {
      uses?: string;
      with?: Record<string, string>;
      if?: string;
    }[];
    const check = steps.find((step) => step.uses?.startsWith("lb-ip-guard/lb-ip-guard@"));
    const upload = steps.find((step) =>
      step.uses?.startsWith("github/codeql-action/upload-sarif@"),
    );
    assert.ok(check?.with !== undefined && upload?.with !== undefined);
    // Uploaded even though the check step failed.
    assert.equal(upload.if, "success() || failure()");
    assert.equal(workflow.permissions["security-events"], "write");

    const result = await runAction(check.with);
    assert.equal(result.code, 1, result.stderr);
    assert.match(
      result.stdout,
      new RegExp(
        `^::error title=lb-ip-guard AddressInUse%3A team-a/minio-copy,file=manifests/dashboards\\.yaml,line=${DUPLICATE_LINE},col=\\d+::`,
        "m",
      ),
    );
    const sarif = JSON.parse(await readFile(join(dir, upload.with.sarif_file ?? ""), "utf8"));
    const errors = sarif.runs[0].results.filter(
      (entry: { level: string }) => entry.level === "error",
    );
    assert.deepEqual(
      errors.map(
        (entry: {
          ruleId: string;
          locations: {
            physicalLocation: { artifactLocation: { uri: string }; region: { startLine: number } };
          }[];
        }) => [
          entry.ruleId,
          entry.locations[0]?.physicalLocation.artifactLocation.uri,
          entry.locations[0]?.physicalLocation.region.startLine,
        ],
      ),
      [["AddressInUse", "manifests/dashboards.yaml", DUPLICATE_LINE]],
    );
  });

  test("the defaults: annotations in the log, exit 0 when nothing is denied", async () => {
    const clean = await workspace();
    try {
      await writeFile(
        join(clean, "manifests/dashboards.yaml"),
        DASHBOARDS.replace(
          /loadBalancerIP: 192\.168\.35\.101(?![\s\S]*192\.168\.35\.101)/,
          "loadBalancerIP: 192.168.35.109",
        ),
      );
      const saved = dir;
      dir = clean;
      try {
        const result = await runAction({ paths: "manifests/", pools: "metallb/pools.yaml" });
        assert.equal(result.code, 0, result.stderr);
        assert.doesNotMatch(result.stdout, /^::error/m);
        assert.match(
          result.stdout,
          /^lb-ip-guard check: 6 services: 5 allowed, 1 assigned, 0 denied$/m,
        );
      } finally {
        dir = saved;
      }
    } finally {
      await rm(clean, { recursive: true, force: true });
    }
  });
});

describe("docs/ci.md: the GitLab job", () => {
  test("its script fails on the duplicate and leaves the Code Quality and JUnit reports it names", async () => {
    const job = parse(await example("gitlab-ci"))["lb-ip-guard"];
    const [install, ...script] = job.script as string[];
    // The one line not run as written: this checkout is what is installed.
    assert.equal(install, "npm install --global lb-ip-guard");
    const bin = await mkdtemp(join(tmpdir(), "lb-ip-guard-bin-"));
    const dir = await workspace();
    try {
      await writeFile(
        join(bin, "lb-ip-guard"),
        `#!/bin/sh\nexec "${process.execPath}" "${join(root, "src/cli/main.ts")}" "$@"\n`,
      );
      await chmod(join(bin, "lb-ip-guard"), 0o755);
      const result = await shell(script.join("\n"), dir, { PATH: `${bin}${delimiter}${PATH}` });
      assert.equal(result.code, 1, result.stderr);
      assert.match(
        result.stdout,
        new RegExp(
          `^denied +team-a/minio-copy .* \\(manifests/dashboards\\.yaml:${DUPLICATE_LINE}\\)$`,
          "m",
        ),
      );
      assert.equal(job.artifacts.when, "always");
      const { codequality, junit } = job.artifacts.reports;
      const issues = JSON.parse(await readFile(join(dir, codequality), "utf8"));
      assert.deepEqual(
        issues
          .filter((issue: { severity: string }) => issue.severity === "major")
          .map(
            (issue: {
              check_name: string;
              location: { path: string; lines: { begin: number } };
            }) => [issue.check_name, issue.location.path, issue.location.lines.begin],
          ),
        [["AddressInUse", "manifests/dashboards.yaml", DUPLICATE_LINE]],
      );
      const tests = parseTestResults({ type: "junit", files: [join(dir, junit)] });
      assert.deepEqual([tests.total, tests.failed], [6, 1]);
    } finally {
      await rm(bin, { recursive: true, force: true });
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/** pre-commit, or why it cannot be had here (a failure under CI=true). */
async function preCommitOrSkip(): Promise<{ path: string } | { skip: string }> {
  try {
    return { path: await preCommit() };
  } catch (error) {
    const message = `pre-commit: ${(error as Error).message.split("\n")[0]}`;
    if (error instanceof AssetsUnavailableError && process.env.CI !== "true")
      return { skip: message };
    throw error;
  }
}

const found = await preCommitOrSkip();
if ("skip" in found) {
  it("docs/ci.md: the pre-commit configuration", { skip: found.skip }, () => {});
} else {
  describe("docs/ci.md: the pre-commit configuration, by the real pre-commit", () => {
    test("the hook refuses a commit that takes a committed Service's address, and takes it fixed", async () => {
      const dir = await workspace();
      const git = (...args: string[]) => run("git", args, { cwd: dir });
      // pre-commit's own cache of installed hooks, kept between runs (keyed by repository and rev).
      const env = {
        ...process.env,
        PATH,
        PRE_COMMIT_HOME: join(
          process.env.LB_IP_GUARD_CACHE ?? join(homedir(), ".cache/lb-ip-guard"),
          "pre-commit",
        ),
      };
      try {
        const head = (await run("git", ["rev-parse", "HEAD"], { cwd: root })).stdout.trim();
        const config = (await example("pre-commit"))
          .replace(/repo: https:\/\/github\.com\/lb-ip-guard\/lb-ip-guard/, `repo: ${root}`)
          .replace(/rev: v0\.1\.0/, `rev: ${head}`);
        assert.ok(config.includes(`repo: ${root}`) && config.includes(`rev: ${head}`), config);
        // The dashboards without minio-copy are committed first.
        const copyAt = DASHBOARDS.lastIndexOf("\n---\n");
        await writeFile(join(dir, "manifests/dashboards.yaml"), DASHBOARDS.slice(0, copyAt + 1));
        await writeFile(join(dir, ".pre-commit-config.yaml"), config);
        await git("init", "-q");
        await git("config", "user.email", "ci@example.invalid");
        await git("config", "user.name", "ci");
        await git("add", ".");
        await git("commit", "-q", "-m", "dashboards");
        // A new file asks for minio's address.
        await writeFile(join(dir, "manifests/minio-copy.yaml"), DASHBOARDS.slice(copyAt + 5));
        await git("add", "manifests/minio-copy.yaml");
        const refused = await outputOf(spawn(found.path, ["run"], { cwd: dir, env }));
        assert.equal(refused.code, 1, `${refused.stdout}\n${refused.stderr}`);
        const copyLine = DUPLICATE_LINE - DASHBOARDS.slice(0, copyAt + 5).split("\n").length + 1;
        assert.match(
          refused.stdout,
          new RegExp(
            `denied +team-a/minio-copy 192\\.168\\.35\\.101 \\[default\\] AddressInUse: .*kubeflow/minio-service.* \\(manifests/minio-copy\\.yaml:${copyLine}\\)`,
          ),
        );
        // Fixed: a free address.
        const fixed = DASHBOARDS.slice(copyAt + 5).replace("192.168.35.101", "192.168.35.109");
        await writeFile(join(dir, "manifests/minio-copy.yaml"), fixed);
        await git("add", "manifests/minio-copy.yaml");
        const accepted = await outputOf(spawn(found.path, ["run"], { cwd: dir, env }));
        assert.equal(accepted.code, 0, `${accepted.stdout}\n${accepted.stderr}`);
        assert.match(accepted.stdout, /lb-ip-guard check\.+Passed/);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  });
}
