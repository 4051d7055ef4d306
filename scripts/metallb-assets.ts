// Provides MetalLB's real controller for the e2e tests: built with Go from the module proxy
// (go.universe.tf/metallb) into the cache beside the k8s binaries, one folder per version:
//
//   <cache>/metallb/v0.11.0/controller
//   <cache>/metallb/v0.16.2/controller, <cache>/metallb/v0.16.2/crds/*.yaml (MetalLB's own CRDs)
//
// `go install go.universe.tf/metallb/controller@v…` is refused: MetalLB's go.mod has replace
// directives, which only a main module may have. So the module's source is copied into a
// writable folder and built there as the main module, after the edits each version needs to
// build with today's Go and today's module proxy (see RECIPES). Nothing of MetalLB is committed
// to this repository; the CRDs come with the module from the proxy.
//
//   node scripts/metallb-assets.ts [VERSION…]   prints "VERSION FOLDER" per version (default: all)

import { chmod, cp, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  type BuildContext,
  buildCached,
  cacheRoot,
  isExecutable,
  runAsScript,
} from "./go-assets.ts";

const MODULE = "go.universe.tf/metallb";

interface Recipe {
  /** Makes the writable copy of the module buildable (run in its folder). */
  prepare(ctx: BuildContext, src: string): Promise<void>;
  /** Whether the version has CRDs (config/crd/bases) to install beside the controller. */
  crds: boolean;
}

const RECIPES = {
  // Configured by the ConfigMap metallb-system/config; CRDs came with v0.13.
  "v0.11.0": {
    crds: false,
    prepare: async (ctx, src) => {
      // Its go.mod selects reflect2 v1.0.1 (json-iterator's, which client-go v0.20 encodes
      // with). It reaches runtime.mapiterinit through linkname with the signature of Go < 1.18,
      // and encoding a map then crashes (modern-go/reflect2#24); v1.0.2 follows Go 1.18.
      await ctx.runGo(["get", "github.com/modern-go/reflect2@v1.0.2"], src, "go get reflect2");
    },
  },
  "v0.16.2": {
    crds: true,
    prepare: async (ctx, src) => {
      // It requires frr-k8s v0.0.27, which the module proxy refuses to serve; v0.0.21 is the
      // newest it serves. The controller never runs the FRR-K8s BGP code (that is the speaker's).
      await ctx.runGo(
        [
          "mod",
          "edit",
          "-replace",
          "github.com/metallb/frr-k8s=github.com/metallb/frr-k8s@v0.0.21",
        ],
        src,
        "replace frr-k8s",
      );
      await dropAsPathPrepend(join(src, "internal/bgp/frrk8s/frrk8s.go"));
    },
  },
} satisfies Record<string, Recipe>;

export type MetalLBVersion = keyof typeof RECIPES;
export const METALLB_VERSIONS = Object.keys(RECIPES) as MetalLBVersion[];

export interface MetalLBAssets {
  /** The controller binary. */
  controller: string;
  /** MetalLB's own CRDs (one YAML file each) for the versions that have them. */
  crdDir?: string;
}

const stderrLog = (line: string) => {
  process.stderr.write(`metallb-assets: ${line}\n`);
};

export function metallbCacheDir(version: MetalLBVersion): string {
  return join(cacheRoot(), "metallb", version);
}

/** The controller (and CRDs) of `version`, building them on first use. */
export async function metallbAssets(
  version: MetalLBVersion,
  log = stderrLog,
): Promise<MetalLBAssets> {
  const recipe: Recipe | undefined = RECIPES[version];
  if (!recipe) {
    throw new Error(`no recipe for MetalLB ${version} (known: ${METALLB_VERSIONS.join(", ")})`);
  }
  const dir = metallbCacheDir(version);
  const assets: MetalLBAssets = {
    controller: join(dir, "controller"),
    ...(recipe.crds && { crdDir: join(dir, "crds") }),
  };
  await buildCached({
    dir,
    purpose: `to build MetalLB's controller ${version}`,
    complete: async () =>
      (await isExecutable(assets.controller)) &&
      (assets.crdDir === undefined || (await yamlFiles(assets.crdDir)).length > 0),
    build: (ctx) => build(ctx, version, recipe),
    log,
  });
  return assets;
}

async function yamlFiles(dir: string): Promise<string[]> {
  const names = await readdir(dir).catch(() => []);
  return names.filter((name) => name.endsWith(".yaml"));
}

async function build(ctx: BuildContext, version: MetalLBVersion, recipe: Recipe): Promise<void> {
  ctx.step(`downloading ${MODULE}@${version}`);
  const info = JSON.parse(
    await ctx.runGo(["mod", "download", "-json", `${MODULE}@${version}`], ctx.work, "download"),
  ) as { Dir?: string; Error?: string };
  if (!info.Dir) throw new Error(`go mod download gave no folder: ${info.Error ?? "?"}`);

  // The module cache is read-only; the recipes edit go.mod, go.sum and sources.
  const src = join(ctx.work, `metallb-${version}`);
  await cp(info.Dir, src, { recursive: true });
  await chmod(src, 0o755);
  for (const entry of await readdir(src, { recursive: true, withFileTypes: true })) {
    await chmod(join(entry.parentPath, entry.name), entry.isDirectory() ? 0o755 : 0o644);
  }
  ctx.step(`preparing the ${version} source`);
  await recipe.prepare(ctx, src);

  ctx.step(`building MetalLB's controller ${version}`);
  await ctx.goBuild(src, "./controller", "controller");

  if (recipe.crds) {
    const bases = join(src, "config/crd/bases");
    const files = await yamlFiles(bases);
    if (files.length === 0) throw new Error(`${MODULE}@${version} has no CRDs in config/crd/bases`);
    await cp(bases, join(ctx.staging, "crds"), { recursive: true });
    await ctx.install("crds");
    ctx.step(`${files.length} CRDs copied`);
  }
}

/**
 * frr-k8s v0.0.21 lacks the AS-path-prepend advertisement (Advertise.PrefixesWithAsPathPrepend,
 * type AsPathPrependPrefixes) that MetalLB v0.16.2 fills in; these are its only uses. Each edit
 * must find its text exactly once, so a new version's source fails here, in one line, rather than
 * building something else.
 */
async function dropAsPathPrepend(file: string): Promise<void> {
  const edits: [what: string, pattern: RegExp, replacement: string][] = [
    [
      "the PrefixesWithAsPathPrepend field of the neighbor literal",
      /^[ \t]*PrefixesWithAsPathPrepend: make\(\[\]frrv1beta1\.AsPathPrependPrefixes, 0\),\n/gm,
      "",
    ],
    [
      "the PrefixesWithAsPathPrepend assignment",
      /^[ \t]*neighbor\.ToAdvertise\.PrefixesWithAsPathPrepend = toAdvertiseWithAsPathPrepend\(prefixesForAsPathPrepend\)\n/gm,
      // The map is still filled in above; reading it keeps Go's unused-variable check quiet.
      "\t\t_ = prefixesForAsPathPrepend\n",
    ],
    ["func toAdvertiseWithAsPathPrepend", /^func toAdvertiseWithAsPathPrepend\([\s\S]*?^}\n/gm, ""],
  ];
  let text = await readFile(file, "utf8");
  for (const [what, pattern, replacement] of edits) {
    const found = text.match(pattern)?.length ?? 0;
    if (found !== 1) {
      throw new Error(
        `source edit: ${file.slice(file.indexOf("internal/"))} has ${found} × ${what}, expected 1; the v0.16.2 recipe needs a look`,
      );
    }
    text = text.replace(pattern, replacement);
  }
  const left = /PrefixesWithAsPathPrepend|AsPathPrependPrefixes/.exec(text);
  if (left) throw new Error(`source edit: ${file} still uses ${left[0]} after the edits`);
  await writeFile(file, text);
}

// As a script: build (or reuse) the versions named, or all, one after the other (2 cores are
// better spent on one build at a time).
await runAsScript(import.meta.url, "metallb-assets", async () => {
  const wanted = process.argv.slice(2);
  const lines: string[] = [];
  for (const version of (wanted.length > 0 ? wanted : METALLB_VERSIONS) as MetalLBVersion[]) {
    const assets = await metallbAssets(version);
    lines.push(`${version} ${join(assets.controller, "..")}`);
  }
  return lines.join("\n");
});
