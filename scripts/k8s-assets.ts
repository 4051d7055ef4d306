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

import { spawn } from "node:child_process";
import { constants } from "node:fs";
import {
  access,
  mkdir,
  mkdtemp,
  open,
  readdir,
  readFile,
  rename,
  rm,
  unlink,
  writeFile,
} from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { outputOf } from "./child-output.ts";

/** Newest Kubernetes release on the module proxy that builds with go1.26 (its go.mod says go 1.26.0). */
export const K8S_VERSION = "1.37.2";
/** Kubernetes 1.37 requires etcd >= 3.7.0 (hack/lib/etcd.sh, build/dependencies.yaml); newest 3.7 patch. */
export const ETCD_VERSION = "3.7.3";

export const BINARIES = ["etcd", "kube-apiserver", "kubectl"] as const;

/** The assets cannot be had here at all (no Go, no KUBEBUILDER_ASSETS): callers may skip. */
export class AssetsUnavailableError extends Error {
  override name = "AssetsUnavailableError";
}

type Log = (line: string) => void;
const stderrLog: Log = (line) => process.stderr.write(`k8s-assets: ${line}\n`);

export function cacheDir(): string {
  const root = process.env.LB_IP_GUARD_CACHE ?? join(homedir(), ".cache", "lb-ip-guard");
  return join(root, "k8s", `${K8S_VERSION}-etcd${ETCD_VERSION}`);
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
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
  if (await holdsAll(dir)) return dir;

  const go = await findGo();
  await mkdir(dir, { recursive: true });
  const release = await lock(join(dir, ".lock"), log);
  try {
    // Another run may have finished the build while we waited for the lock.
    if (await holdsAll(dir)) return dir;
    // Output folders of runs that died mid-build (we hold the lock, so none is in use).
    for (const name of await readdir(dir)) {
      if (name.startsWith(".build-")) await rm(join(dir, name), { recursive: true, force: true });
    }
    await build(go, dir, log);
  } finally {
    await release();
  }
  if (!(await holdsAll(dir))) throw new Error(`build finished but ${dir} lacks a binary`);
  return dir;
}

async function findGo(): Promise<string> {
  const candidates = [process.env.GO, "/usr/local/go/bin/go"].filter((p): p is string => !!p);
  for (const dir of (process.env.PATH ?? "").split(":")) if (dir) candidates.push(join(dir, "go"));
  for (const c of candidates) if (await isExecutable(c)) return c;
  throw new AssetsUnavailableError(
    "no Go toolchain (/usr/local/go/bin/go or go on PATH) and no KUBEBUILDER_ASSETS to build etcd/kube-apiserver/kubectl",
  );
}

/**
 * A lock file created with O_EXCL holds our pid. A lock whose pid is gone (a run killed with
 * SIGKILL) is stale and taken over; a live one is waited for, since its owner builds the same thing.
 */
async function lock(path: string, log: Log): Promise<() => Promise<void>> {
  let waiting = false;
  for (;;) {
    try {
      const fd = await open(path, "wx");
      await fd.writeFile(String(process.pid));
      await fd.close();
      return () => unlink(path).catch(() => {});
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const owner = Number((await readFile(path, "utf8").catch(() => "")).trim());
    if (!alive(owner)) {
      // Empty content means the owner is between open and write: give it a moment.
      if (owner) await unlink(path).catch(() => {});
      else await sleep(200);
      continue;
    }
    if (!waiting) log(`waiting for the build of pid ${owner} (lock ${path})`);
    waiting = true;
    await sleep(2000);
  }
}

function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs go, keeps its output for the error message; a failure names the step. */
async function runGo(go: string, args: string[], cwd: string, step: string): Promise<string> {
  const { code, stdout, stderr } = await outputOf(
    spawn(go, args, {
      cwd,
      stdio: ["ignore", "pipe", "pipe"],
      // GOTOOLCHAIN=local: never fetch another toolchain behind the caller's back; a too-old Go
      // fails with Go's own one-line "requires go >= …" message instead.
      env: { ...process.env, CGO_ENABLED: "0", GOTOOLCHAIN: "local", GOFLAGS: "-mod=mod" },
    }),
  );
  if (code === 0) return stdout;
  // `go mod download -json` reports its error in the JSON on stdout.
  const detail = stderr.trim() || (/"Error": (".*")/.exec(stdout)?.[1] ?? stdout.trim());
  const last = detail.split("\n").slice(-5).join(" | ");
  throw new Error(`${step} failed (go ${args.join(" ")}; exit ${code}): ${last}`);
}

async function build(go: string, dir: string, log: Log): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), "lb-ip-guard-k8s-build-"));
  // Binaries are written here, in the cache folder's filesystem, then renamed into place.
  const tmpOut = join(dir, `.build-${process.pid}`);
  const started = Date.now();
  const step = (what: string) => log(`[${Math.round((Date.now() - started) / 1000)}s] ${what}`);
  try {
    const kube = `v${K8S_VERSION}`;
    const [, minor, patch] = K8S_VERSION.split(".");
    const stagingVersion = `v0.${minor}.${patch}`;

    step(`downloading k8s.io/kubernetes@${kube} to read its go.mod`);
    const info = JSON.parse(
      await runGo(go, ["mod", "download", "-json", `k8s.io/kubernetes@${kube}`], work, "download"),
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
    const stamp = ["k8s.io/component-base/version", "k8s.io/client-go/pkg/version"].flatMap(
      (pkg) => [
        `-X ${pkg}.gitVersion=${kube}`,
        `-X ${pkg}.gitMajor=1`,
        `-X ${pkg}.gitMinor=${minor}`,
        `-X ${pkg}.gitTreeState=clean`,
      ],
    );
    const ldflags = `-ldflags=-s -w ${stamp.join(" ")}`;
    await mkdir(tmpOut, { recursive: true });

    for (const bin of ["kube-apiserver", "kubectl"]) {
      if (await isExecutable(join(dir, bin))) continue;
      step(`building ${bin} ${kube} (${staging.length} staging modules at ${stagingVersion})`);
      const out = join(tmpOut, bin);
      await runGo(
        go,
        ["build", "-trimpath", ldflags, "-o", out, `k8s.io/kubernetes/cmd/${bin}`],
        kubeDir,
        `build ${bin}`,
      );
      await rename(out, join(dir, bin)); // same filesystem: atomic
    }

    if (!(await isExecutable(join(dir, "etcd")))) {
      const etcdDir = join(work, "etcd");
      await mkdir(etcdDir);
      await writeFile(
        join(etcdDir, "go.mod"),
        `module lb-ip-guard.invalid/etcd-build\ngo ${goLine}\nrequire go.etcd.io/etcd/server/v3 v${ETCD_VERSION}\n`,
      );
      step(`building etcd v${ETCD_VERSION}`);
      const out = join(tmpOut, "etcd");
      // The server module's root package is etcd's main package.
      await runGo(
        go,
        ["build", "-trimpath", "-ldflags=-s -w", "-o", out, "go.etcd.io/etcd/server/v3"],
        etcdDir,
        "build etcd",
      );
      await rename(out, join(dir, "etcd"));
    }
    step(`done: ${dir}`);
  } finally {
    await rm(tmpOut, { recursive: true, force: true });
    await rm(work, { recursive: true, force: true });
  }
}

// As a script: print the folder, or one line saying why not.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    process.stdout.write(`${await k8sAssets()}\n`);
  } catch (err) {
    process.stderr.write(`k8s-assets: ${(err as Error).message.split("\n")[0]}\n`);
    process.exitCode = 1;
  }
}
