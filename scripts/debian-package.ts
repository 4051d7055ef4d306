// A program from Debian's packages for the tests (Chromium for the pool map, pre-commit for the
// hook), and its path:
//
// 1. $<VARIABLE> when set (it must be an executable), or the package's binary when installed.
// 2. Otherwise, as root (CI), `apt-get install PACKAGE` from Debian's packages: apt is the cache,
//    so only the first run on a machine pays for it. A lock makes two test files install once.
// Anything else (not root, no apt-get) cannot have it: AssetsUnavailableError, which the tests
// turn into a skip outside CI and a failure under CI=true, as for the k8s binaries.

import { spawn } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { outputOf } from "./child-output.ts";
import { AssetsUnavailableError, cacheRoot, isExecutable, type Log, lock } from "./go-assets.ts";

export interface DebianProgram {
  /** The Debian package, e.g. chromium. */
  readonly package: string;
  /** Where the package installs the program, e.g. /usr/bin/chromium. */
  readonly binary: string;
  /** The environment variable that names another executable instead, e.g. CHROMIUM. */
  readonly variable: string;
}

export async function debianProgram(program: DebianProgram, log: Log): Promise<string> {
  const { package: name, binary, variable } = program;
  const given = process.env[variable];
  if (given) {
    if (await isExecutable(given)) return given;
    throw new AssetsUnavailableError(`${variable}=${given} is not an executable`);
  }
  if (await isExecutable(binary)) return binary;
  if (process.getuid?.() !== 0) {
    throw new AssetsUnavailableError(
      `no ${binary}, and only root may apt-get install ${name} (or set ${variable})`,
    );
  }
  const aptGet = "/usr/bin/apt-get";
  if (!(await isExecutable(aptGet))) {
    throw new AssetsUnavailableError(`no ${binary} and no apt-get to install it`);
  }
  const dir = join(cacheRoot(), name);
  await mkdir(dir, { recursive: true });
  const release = await lock(join(dir, ".lock"), log);
  try {
    if (await isExecutable(binary)) return binary;
    // The package lists may be missing (a fresh container) or stale (a package moved on).
    for (const args of [["update"], ["install", "-y", "--no-install-recommends", name]]) {
      log(`apt-get ${args.join(" ")}`);
      const run = await outputOf(
        spawn(aptGet, ["-q", ...args], {
          stdio: ["ignore", "pipe", "pipe"],
          env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
        }),
      );
      if (run.code !== 0) {
        const last = (run.stderr.trim() || run.stdout.trim()).split("\n").slice(-2).join(" | ");
        throw new Error(`apt-get ${args.join(" ")} failed (exit ${run.code}): ${last}`);
      }
    }
  } finally {
    await release();
  }
  if (!(await isExecutable(binary))) {
    throw new Error(`apt-get installed ${name} but ${binary} is not there`);
  }
  return binary;
}
