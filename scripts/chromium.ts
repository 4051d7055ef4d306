// Provides headless Chromium for the browser tests (the pool map) and prints its path.
//
// 1. $CHROMIUM, or Debian's /usr/bin/chromium when it is installed.
// 2. Otherwise, as root (CI), `apt-get install chromium` from Debian's packages: apt is the cache,
//    so only the first run on a machine pays for it. A lock makes two test files install once.
// Anything else (not root, no apt-get) cannot have it: AssetsUnavailableError, which the tests
// turn into a skip outside CI and a failure under CI=true, as for the k8s binaries.

import { spawn } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { outputOf } from "./child-output.ts";
import {
  AssetsUnavailableError,
  cacheRoot,
  isExecutable,
  type Log,
  lock,
  runAsScript,
} from "./go-assets.ts";

export const DEBIAN_CHROMIUM = "/usr/bin/chromium";

const stderrLog: Log = (line) => process.stderr.write(`chromium: ${line}\n`);

export async function chromium(log: Log = stderrLog): Promise<string> {
  const given = process.env.CHROMIUM;
  if (given) {
    if (await isExecutable(given)) return given;
    throw new AssetsUnavailableError(`CHROMIUM=${given} is not an executable`);
  }
  if (await isExecutable(DEBIAN_CHROMIUM)) return DEBIAN_CHROMIUM;
  if (process.getuid?.() !== 0) {
    throw new AssetsUnavailableError(
      `no ${DEBIAN_CHROMIUM}, and only root may apt-get install chromium (or set CHROMIUM)`,
    );
  }
  const aptGet = "/usr/bin/apt-get";
  if (!(await isExecutable(aptGet))) {
    throw new AssetsUnavailableError(`no ${DEBIAN_CHROMIUM} and no apt-get to install it`);
  }
  const dir = join(cacheRoot(), "chromium");
  await mkdir(dir, { recursive: true });
  const release = await lock(join(dir, ".lock"), log);
  try {
    if (await isExecutable(DEBIAN_CHROMIUM)) return DEBIAN_CHROMIUM;
    // The package lists may be missing (a fresh container) or stale (a package moved on).
    for (const args of [["update"], ["install", "-y", "--no-install-recommends", "chromium"]]) {
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
  if (!(await isExecutable(DEBIAN_CHROMIUM))) {
    throw new Error(`apt-get installed chromium but ${DEBIAN_CHROMIUM} is not there`);
  }
  return DEBIAN_CHROMIUM;
}

await runAsScript(import.meta.url, "chromium", () => chromium());
