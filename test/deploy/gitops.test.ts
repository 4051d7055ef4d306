// docs/gitops.md: every YAML snippet parses, the objects and fields it names are the ones the
// chart renders (so a renamed configuration or a third webhook cannot leave the snippets
// ignoring the wrong thing), and the kustomize snippet builds.

import assert from "node:assert/strict";
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parseAllDocuments } from "yaml";
import {
  chartDir,
  deployDir,
  findHelm,
  findKubectl,
  need,
  type Obj,
  parseDocs,
  repoRoot,
  run,
  type Tool,
} from "./tools.ts";

const GITOPS = join(repoRoot, "docs", "gitops.md");

/** Each ```yaml block of the document, as its text and its parsed objects. */
async function snippets(): Promise<{ text: string; objects: Obj[] }[]> {
  const markdown = await readFile(GITOPS, "utf8");
  return [...markdown.matchAll(/^```yaml\n([\s\S]*?)^```$/gm)].map(([, text]) => {
    const objects = parseAllDocuments(text as string).map((document) => {
      assert.deepEqual(document.errors, [], (text as string).slice(0, 80));
      return document.toJS() as Obj;
    });
    return { text: text as string, objects };
  });
}

describe("docs/gitops.md", () => {
  let helm: Tool;
  let kubectl: Tool;
  let configurations: Obj[] = [];
  let scratch: string | undefined;

  before(async () => {
    [helm, kubectl] = await Promise.all([findHelm(), findKubectl()]);
    if (helm.path) {
      const rendered = parseDocs(
        await run(helm.path, ["template", "lb-ip-guard", chartDir, "-n", "lb-ip-guard"]),
        "helm template",
      );
      configurations = rendered.filter((o) => /WebhookConfiguration$/.test(o.kind));
    }
  });
  after(async () => {
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
  });

  it("every snippet parses into Kubernetes objects", async () => {
    const all = await snippets();
    assert.ok(all.length >= 5, `${all.length} snippets`);
    for (const { objects } of all) {
      for (const object of objects) assert.ok(object.kind, "a kind");
    }
  });

  it("Argo CD ignores exactly the caBundle of each webhook configuration the chart renders", async (t) => {
    if (!need(t, helm)) return;
    const application = (await snippets())
      .flatMap((s) => s.objects)
      .find((o) => o.kind === "Application");
    assert.ok(application);
    assert.ok(application.spec.syncPolicy.syncOptions.includes("RespectIgnoreDifferences=true"));
    const ignored: Obj[] = application.spec.ignoreDifferences;
    assert.deepEqual(
      ignored.map((entry) => `${entry.kind}/${entry.name}`).sort(),
      configurations.map((o) => `${o.kind}/${o.metadata.name}`).sort(),
    );
    for (const configuration of configurations) {
      const entry = ignored.find((e) => e.kind === configuration.kind) as Obj;
      assert.equal(entry.group, configuration.apiVersion.split("/")[0]);
      // Every webhook's caBundle, in jq's words: the entries' only path.
      assert.deepEqual(entry.jqPathExpressions, [".webhooks[]?.clientConfig.caBundle"]);
      for (const webhook of configuration.webhooks) assert.ok(webhook.clientConfig.service);
    }
  });

  it("Flux's drift detection ignores the caBundle of every webhook, by index", async (t) => {
    if (!need(t, helm)) return;
    const release = (await snippets())
      .flatMap((s) => s.objects)
      .find((o) => o.kind === "HelmRelease");
    assert.ok(release);
    assert.equal(release.spec.chart.spec.chart, "./deploy/helm/lb-ip-guard");
    for (const configuration of configurations) {
      const entry: Obj | undefined = release.spec.driftDetection.ignore.find(
        (e: Obj) => e.target.kind === configuration.kind,
      );
      assert.equal(entry?.target.name, configuration.metadata.name);
      assert.deepEqual(
        entry?.paths,
        configuration.webhooks.map((_: Obj, i: number) => `/webhooks/${i}/clientConfig/caBundle`),
      );
    }
    const kustomizations = (await snippets())
      .flatMap((s) => s.objects)
      .filter((o) => o.kind === "Kustomization" && o.apiVersion.startsWith("kustomize.toolkit"));
    const guard = kustomizations.find((k) => k.metadata.name === "lb-ip-guard");
    assert.equal(guard?.spec.path, "./deploy");
    assert.equal(guard?.spec.wait, true);
    assert.ok(
      kustomizations.some((k) => k.spec.dependsOn?.some((d: Obj) => d.name === "lb-ip-guard")),
    );
  });

  it("the kustomize snippet builds with the real kubectl, every object in wave -1", async (t) => {
    if (!need(t, kubectl)) return;
    const overlay = (await snippets()).find(({ text }) => text.startsWith("# kustomization.yaml"));
    assert.ok(overlay, "a kustomization.yaml snippet");
    scratch ??= await mkdtemp(join(tmpdir(), "lb-ip-guard-gitops-"));
    await mkdir(join(scratch, "lb-ip-guard"));
    await cp(deployDir, join(scratch, "lb-ip-guard", "deploy"), { recursive: true });
    await writeFile(join(scratch, "kustomization.yaml"), overlay.text);
    const built = parseDocs(await run(kubectl.path as string, ["kustomize", scratch]), "overlay");
    assert.ok(built.some((o) => o.kind === "ValidatingWebhookConfiguration"));
    for (const object of built) {
      assert.equal(
        object.metadata.annotations?.["argocd.argoproj.io/sync-wave"],
        "-1",
        `${object.kind}/${object.metadata.name}`,
      );
    }
  });
});
