// Provides the real control-plane binaries (etcd, kube-apiserver, kubectl) for the e2e tests
// and prints the folder that holds them.
//
// 1. KUBEBUILDER_ASSETS, when that folder holds all three (the envtest convention).
// 2. Otherwise they are built with Go from the Go module proxy (the only source of binaries this
//    project may use) into a cache keyed by version, so only the first run pays for the build.
//
// `go install k8s.io/kubernetes/cmd/kube-apiserver@v…` is refused: Kubernetes' go.mod replaces its
// staging modules (k8s.io/api, …) with local folders and requires them as v0.0.0. The route is a
// throwaway wrapper module that requires k8s.io/kubernetes and replaces each of those v0.0.0
// requirements with the published v0.X.Y of the same release. etcd gets a wrapper module too:
// its server module also carries replace directives, which only a main module may have.

import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  AssetsUnavailableError,
  type BuildContext,
  buildCached,
  cacheRoot,
  isExecutable,
  type Log,
  runAsScript,
} from "./go-assets.ts";

export { AssetsUnavailableError };

/** Newest Kubernetes release on the module proxy that builds with go1.26 (its go.mod says go 1.26.0). */
export const K8S_VERSION = "1.37.2";
/** Kubernetes 1.37 requires etcd >= 3.7.0 (hack/lib/etcd.sh, build/dependencies.yaml); newest 3.7 patch. */
export const ETCD_VERSION = "3.7.3";

export const BINARIES = ["etcd", "kube-apiserver", "kubectl"] as const;

const stderrLog: Log = (line) => process.stderr.write(`k8s-assets: ${line}\n`);

export function cacheDir(): string {
  return join(cacheRoot(), "k8s", `${K8S_VERSION}-etcd${ETCD_VERSION}`);
}

async function holdsAll(dir: string): Promise<boolean> {
  for (const bin of BINARIES) if (!(await isExecutable(join(dir, bin)))) return false;
  return true;
}

/** Returns the folder holding etcd, kube-apiserver and kubectl, building them if needed. */
export async function k8sAssets(log: Log = stderrLog): Promise<string> {
  const fromEnv = process.env.KUBEBUILDER_ASSETS;
  if (fromEnv) {
    if (await holdsAll(fromEnv)) return fromEnv;
    log(`KUBEBUILDER_ASSETS=${fromEnv} lacks one of ${BINARIES.join(", ")}; building instead`);
  }
  const dir = cacheDir();
  await buildCached({
    dir,
    purpose: "and no KUBEBUILDER_ASSETS to build etcd/kube-apiserver/kubectl",
    complete: () => holdsAll(dir),
    build: (ctx) => build(ctx, dir),
    log,
  });
  return dir;
}

/**
 * The wrapper module that builds commands of k8s.io/kubernetes (see the top of this file) in the
 * build's scratch folder, and the ldflags with the version stamps `make` would set.
 * scripts/node-assets.ts builds the node's binaries from the same module.
 */
export async function kubernetesModule(
  ctx: BuildContext,
): Promise<{ kubeDir: string; goLine: string; ldflags: string; describe: string }> {
  const { work, step } = ctx;
  const kube = `v${K8S_VERSION}`;
  const [, minor, patch] = K8S_VERSION.split(".");
  const stagingVersion = `v0.${minor}.${patch}`;

  step(`downloading k8s.io/kubernetes@${kube} to read its go.mod`);
  const info = JSON.parse(
    await ctx.runGo(["mod", "download", "-json", `k8s.io/kubernetes@${kube}`], work, "download"),
  ) as { GoMod?: string; Error?: string };
  if (!info.GoMod) throw new Error(`go mod download gave no go.mod: ${info.Error ?? "?"}`);
  const kubeMod = await readFile(info.GoMod, "utf8");
  const goLine = /^go (\S+)$/m.exec(kubeMod)?.[1] ?? "1.26.0";
  // Every k8s.io module required at the placeholder v0.0.0 is a staging module.
  const staging = [...kubeMod.matchAll(/^\s*(k8s\.io\/\S+) v0\.0\.0\s*(?:\/\/.*)?$/gm)].map(
    (m) => m[1],
  );
  if (staging.length === 0) throw new Error("found no k8s.io/* v0.0.0 requirement in go.mod");

  const kubeDir = join(work, "kubernetes");
  await mkdir(kubeDir);
  await writeFile(
    join(kubeDir, "go.mod"),
    [
      "module lb-ip-guard.invalid/k8s-build",
      `go ${goLine}`,
      `require k8s.io/kubernetes ${kube}`,
      "replace (",
      ...staging.map((m) => `\t${m} => ${m} ${stagingVersion}`),
      ")",
      "",
    ].join("\n"),
  );
  // The version stamps `make` would set, so `kubectl version` and /version tell the truth.
  const stamp = ["k8s.io/component-base/version", "k8s.io/client-go/pkg/version"].flatMap((pkg) => [
    `-X ${pkg}.gitVersion=${kube}`,
    `-X ${pkg}.gitMajor=1`,
    `-X ${pkg}.gitMinor=${minor}`,
    `-X ${pkg}.gitTreeState=clean`,
  ]);
  const ldflags = `-s -w ${stamp.join(" ")}`;
  return {
    kubeDir,
    goLine,
    ldflags,
    describe: `${kube} (${staging.length} staging modules at ${stagingVersion})`,
  };
}

async function build(ctx: BuildContext, dir: string): Promise<void> {
  const { step } = ctx;
  const { kubeDir, goLine, ldflags, describe } = await kubernetesModule(ctx);

  for (const bin of ["kube-apiserver", "kubectl"]) {
    if (await isExecutable(join(dir, bin))) continue;
    step(`building ${bin} ${describe}`);
    await ctx.goBuild(kubeDir, `k8s.io/kubernetes/cmd/${bin}`, bin, ldflags);
  }

  if (!(await isExecutable(join(dir, "etcd")))) {
    const etcdDir = join(ctx.work, "etcd");
    await mkdir(etcdDir);
    await writeFile(
      join(etcdDir, "go.mod"),
      `module lb-ip-guard.invalid/etcd-build\ngo ${goLine}\nrequire go.etcd.io/etcd/server/v3 v${ETCD_VERSION}\n`,
    );
    step(`building etcd v${ETCD_VERSION}`);
    // The server module's root package is etcd's main package.
    await ctx.goBuild(etcdDir, "go.etcd.io/etcd/server/v3", "etcd");
  }
}

// As a script: print the folder, or one line saying why not.
await runAsScript(import.meta.url, "k8s-assets", () => k8sAssets());
