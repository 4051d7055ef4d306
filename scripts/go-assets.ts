// What scripts/k8s-assets.ts and scripts/metallb-assets.ts share: binaries built with Go from the
// Go module proxy (the only source of binaries this project may use) into a cache under one root,
// so only the first run on a machine pays for a build.
//
// A cache folder is only ever seen complete or absent: binaries are written into a staging folder
// beside it (same filesystem) and renamed into place, and a lock file makes concurrent runs (two
// test files, a test and `npm run …:assets`) build once; the later ones wait and reuse.

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
} from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { outputOf } from "./child-output.ts";

/** The assets cannot be had here at all (no Go, no prebuilt folder): callers may skip. */
export class AssetsUnavailableError extends Error {
  override name = "AssetsUnavailableError";
}

export type Log = (line: string) => void;

/** `$LB_IP_GUARD_CACHE`, else ~/.cache/lb-ip-guard. */
export function cacheRoot(): string {
  return process.env.LB_IP_GUARD_CACHE ?? join(homedir(), ".cache", "lb-ip-guard");
}

export async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** $GO, /usr/local/go/bin/go or go on PATH; `purpose` completes the message when there is none. */
export async function findGo(purpose: string): Promise<string> {
  const candidates = [process.env.GO, "/usr/local/go/bin/go"].filter((p): p is string => !!p);
  for (const dir of (process.env.PATH ?? "").split(":")) if (dir) candidates.push(join(dir, "go"));
  for (const c of candidates) if (await isExecutable(c)) return c;
  throw new AssetsUnavailableError(
    `no Go toolchain (/usr/local/go/bin/go or go on PATH) ${purpose}`,
  );
}

/**
 * A lock file created with O_EXCL holds our pid. A lock whose pid is gone (a run killed with
 * SIGKILL) is stale and taken over; a live one is waited for, since its owner builds the same thing.
 */
export async function lock(path: string, log: Log): Promise<() => Promise<void>> {
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
export async function runGo(
  go: string,
  args: string[],
  cwd: string,
  step: string,
): Promise<string> {
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

/** What a build step gets from buildCached. */
export interface BuildContext {
  go: string;
  /** A scratch folder for wrapper modules and source copies, removed afterwards. */
  work: string;
  /** Logs a line prefixed with the seconds since the build started. */
  step(what: string): void;
  /** runGo with this build's go. */
  runGo(args: string[], cwd: string, step: string): Promise<string>;
  /** The staging folder, in the cache folder's filesystem, for what `install` renames into place. */
  staging: string;
  /** Renames `staging/name` to `dir/name`: atomic, so a reader never sees half a file or folder. */
  install(name: string): Promise<void>;
  /**
   * `go build -trimpath -ldflags=<ldflags> -o staging/name pkg` in `cwd`, then install(name).
   * Default ldflags `-s -w`: no symbol tables, the binaries are for running, not debugging.
   */
  goBuild(cwd: string, pkg: string, name: string, ldflags?: string): Promise<void>;
}

export interface CachedBuild {
  /** The cache folder (created if missing); holds `.lock` while a build runs. */
  dir: string;
  /** Ends the "no Go toolchain …" message, e.g. "to build MetalLB's controller v0.11.0". */
  purpose: string;
  /** Whether `dir` holds everything; asked before and again after waiting for the lock. */
  complete(): Promise<boolean>;
  build(ctx: BuildContext): Promise<void>;
  log: Log;
}

/** Runs `build` unless `complete()`, under the folder's lock; throws if it left `dir` incomplete. */
export async function buildCached(spec: CachedBuild): Promise<void> {
  const { dir, log } = spec;
  if (await spec.complete()) return;
  const go = await findGo(spec.purpose);
  await mkdir(dir, { recursive: true });
  const release = await lock(join(dir, ".lock"), log);
  try {
    // Another run may have finished the build while we waited for the lock.
    if (await spec.complete()) return;
    // Staging folders of runs that died mid-build (we hold the lock, so none is in use).
    for (const name of await readdir(dir)) {
      if (name.startsWith(".build-")) await rm(join(dir, name), { recursive: true, force: true });
    }
    const work = await mkdtemp(join(tmpdir(), "lb-ip-guard-go-build-"));
    const staging = join(dir, `.build-${process.pid}`);
    await mkdir(staging);
    const started = Date.now();
    const install = (name: string) => rename(join(staging, name), join(dir, name));
    const ctx: BuildContext = {
      go,
      work,
      staging,
      step: (what) => log(`[${Math.round((Date.now() - started) / 1000)}s] ${what}`),
      runGo: (args, cwd, step) => runGo(go, args, cwd, step),
      install,
      goBuild: async (cwd, pkg, name, ldflags = "-s -w") => {
        const out = join(staging, name);
        const args = ["build", "-trimpath", `-ldflags=${ldflags}`, "-o", out, pkg];
        await runGo(go, args, cwd, `build ${name}`);
        await install(name);
      },
    };
    try {
      await spec.build(ctx);
      ctx.step(`done: ${dir}`);
    } finally {
      await rm(staging, { recursive: true, force: true });
      await rm(work, { recursive: true, force: true });
    }
  } finally {
    await release();
  }
  if (!(await spec.complete())) throw new Error(`build finished but ${dir} is incomplete`);
}

/**
 * When `moduleUrl` (import.meta.url) is the script node was started with: prints what `main`
 * returns, or one line saying why not (prefixed `name: `) and exit code 1.
 */
export async function runAsScript(
  moduleUrl: string,
  name: string,
  main: () => Promise<string>,
): Promise<void> {
  if (!process.argv[1] || fileURLToPath(moduleUrl) !== process.argv[1]) return;
  try {
    process.stdout.write(`${await main()}\n`);
  } catch (err) {
    process.stderr.write(`${name}: ${(err as Error).message.split("\n")[0]}\n`);
    process.exitCode = 1;
  }
}
