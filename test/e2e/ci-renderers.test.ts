// `check -` on what the tools people render manifests with write, the real helm and kubectl the
// test bed builds (no control plane): the Lyra team's chart (test/e2e/fixtures/ci-renderers/chart),
// and a kustomize overlay that patches one address into a duplicate, rendered with kustomize's
// origin annotations, so the result points at the base file the Service came from.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { outputOf } from "../../scripts/child-output.ts";
import { helmBinary } from "../../scripts/helm-assets.ts";
import { k8sAssets } from "../../scripts/k8s-assets.ts";
import { describeE2E } from "./harness.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));
const fixtures = join(root, "test/e2e/fixtures/ci-renderers");
const POOLS = join(root, "examples/kubeflow-v0.11/metallb-config.yaml");

interface Result {
  namespace: string;
  name: string;
  decision: string;
  reason: string | null;
  file: string | null;
  document: number | null;
  line: number | null;
}

/** `render | lb-ip-guard check - ARGS --format json`, as a shell pipeline would run them. */
async function pipeline(render: readonly string[], args: readonly string[]) {
  const [command = "", ...renderArgs] = render;
  const rendered = await outputOf(spawn(command, renderArgs, { cwd: root }));
  assert.equal(rendered.code, 0, rendered.stderr);
  const check = spawn(
    process.execPath,
    [join(root, "src/cli/main.ts"), "check", "-", "--pools", POOLS, "--format", "json", ...args],
    { cwd: root },
  );
  const output = outputOf(check);
  check.stdin.end(rendered.stdout);
  const run = await output;
  assert.ok(run.code === 0 || run.code === 1, run.stderr);
  return {
    code: run.code,
    stream: rendered.stdout,
    results: JSON.parse(run.stdout).results as Result[],
  };
}

/** The 1-based lines of `text` that contain `marker`. */
function linesOf(text: string, marker: string): number[] {
  return text.split("\n").flatMap((line, index) => (line.includes(marker) ? [index + 1] : []));
}

await describeE2E("check on helm template and kubectl kustomize output", { helm: true }, () => {
  const chart = relative(root, join(fixtures, "chart"));

  test("helm template | check -: the chart's Services decided, pointing at their lines of the stream", async () => {
    const helm = await helmBinary();
    const { code, stream, results } = await pipeline(
      [helm, "template", "lyra", chart],
      ["--stdin-filename", chart],
    );
    assert.equal(code, 0);
    assert.deepEqual(
      results.map((result) => [`${result.namespace}/${result.name}`, result.decision, result.file]),
      [
        ["lyra/lyra-api", "allowed", chart],
        ["lyra/lyra-metrics", "assigned", chart],
        ["lyra/lyra-web", "allowed", chart],
      ],
    );
    const api = results[0];
    assert.deepEqual(
      [api?.document, api?.line],
      [0, linesOf(stream, "loadBalancerIP: 192.168.35.106")[0]],
    );
    assert.equal(results[1]?.line, linesOf(stream, "lb-ip-guard.dev/auto-assign")[0]);
  });

  test("helm template --set onto a taken address: the duplicate denied at its line", async () => {
    const helm = await helmBinary();
    const { code, stream, results } = await pipeline(
      [helm, "template", "lyra", chart, "--set", "services.web.address=192.168.35.106"],
      ["--stdin-filename", chart],
    );
    assert.equal(code, 1);
    const web = results.find((result) => result.name === "lyra-web");
    assert.deepEqual([web?.decision, web?.reason], ["denied", "AddressInUse"]);
    assert.equal(web?.line, linesOf(stream, "loadBalancerIP: 192.168.35.106")[1]);
  });

  test("kubectl kustomize | check -: the overlay's duplicate points at its Service's line in the base file", async () => {
    const kubectl = join(await k8sAssets(), "kubectl");
    const overlay = relative(root, join(fixtures, "kustomize/overlays/duplicate"));
    const base = join(fixtures, "kustomize/base/services.yaml");
    const baseText = await readFile(base, "utf8");
    const { code, stream, results } = await pipeline(
      [kubectl, "kustomize", overlay],
      ["--stdin-filename", join(overlay, "kustomization.yaml")],
    );
    assert.equal(code, 1);
    assert.match(stream, /config\.kubernetes\.io\/origin/);
    // kustomize writes api first: web, patched onto api's address, is the one refused.
    const [api, web] = results;
    assert.deepEqual([api?.name, api?.decision], ["api", "allowed"]);
    assert.deepEqual([web?.name, web?.decision, web?.reason], ["web", "denied", "AddressInUse"]);
    const [webLine, apiLine] = linesOf(baseText, "loadBalancerIP:");
    assert.deepEqual([web?.file, web?.document, web?.line], [relative(root, base), 0, webLine]);
    assert.deepEqual([api?.file, api?.document, api?.line], [relative(root, base), 1, apiLine]);
  });

  test("kubectl kustomize without --stdin-filename: origins read from the current folder, which is not the kustomization's: the stream stays the place", async () => {
    const kubectl = join(await k8sAssets(), "kubectl");
    const overlay = relative(root, join(fixtures, "kustomize/overlays/duplicate"));
    const { results } = await pipeline([kubectl, "kustomize", overlay], []);
    assert.ok(
      results.every((result) => result.file === "<stdin>"),
      JSON.stringify(results),
    );
  });
});
