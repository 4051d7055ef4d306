// Provides the real CRDs of the kinds the chart's optional objects use and a bare control plane
// lacks: ServiceMonitor and PrometheusRule (the Prometheus Operator's), Certificate and Issuer
// (cert-manager's). They come with each project's Go module from the module proxy (the only
// source of third-party files this project uses), copied into a cache folder keyed by version.
//
//   node scripts/crd-assets.ts      prints the folder (downloading on first use)

import { cp, readdir } from "node:fs/promises";
import { join } from "node:path";
import { type BuildContext, buildCached, cacheRoot, type Log, runAsScript } from "./go-assets.ts";

const SOURCES = [
  {
    module: "github.com/prometheus-operator/prometheus-operator",
    version: "v0.85.0",
    files: [
      "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml",
      "example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml",
    ],
  },
  {
    module: "github.com/cert-manager/cert-manager",
    version: "v1.21.2",
    files: [
      "deploy/crds/cert-manager.io_certificates.yaml",
      "deploy/crds/cert-manager.io_issuers.yaml",
    ],
  },
] as const;

const FILE_COUNT = SOURCES.reduce((count, source) => count + source.files.length, 0);

const stderrLog: Log = (line) => process.stderr.write(`crd-assets: ${line}\n`);

export function crdCacheDir(): string {
  const key = SOURCES.map((source) => `${source.module.split("/").pop()}-${source.version}`);
  return join(cacheRoot(), "crds", key.join("_"));
}

/** The folder holding the four CRD files, downloading them on first use. */
export async function thirdPartyCrds(log: Log = stderrLog): Promise<string> {
  const dir = crdCacheDir();
  await buildCached({
    dir,
    purpose: "to download the Prometheus Operator's and cert-manager's CRDs",
    complete: async () => (await crdFiles(dir)).length === FILE_COUNT,
    build: (ctx) => download(ctx),
    log,
  });
  return dir;
}

async function crdFiles(dir: string): Promise<string[]> {
  return (await readdir(dir).catch(() => [])).filter((name) => name.endsWith(".yaml"));
}

async function download(ctx: BuildContext): Promise<void> {
  for (const { module, version, files } of SOURCES) {
    ctx.step(`downloading ${module}@${version}`);
    const info = JSON.parse(
      await ctx.runGo(["mod", "download", "-json", `${module}@${version}`], ctx.work, "download"),
    ) as { Dir?: string; Error?: string };
    if (!info.Dir) throw new Error(`go mod download gave no folder: ${info.Error ?? "?"}`);
    for (const file of files) {
      const name = file.split("/").pop() as string;
      await cp(join(info.Dir, file), join(ctx.staging, name));
      await ctx.install(name);
    }
  }
}

await runAsScript(import.meta.url, "crd-assets", () => thirdPartyCrds());
