// What bench:check and bench:scale share: a baseline revision exported beside this checkout, a
// command-line run measured as a child process, and medians.

import { execFileSync, spawn } from "node:child_process";
import { mkdir, symlink } from "node:fs/promises";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";

export const root = fileURLToPath(new URL("../", import.meta.url));

/**
 * The child reports its own peak memory and CPU time on exit: portable, and no wrapper process to
 * count. CPU time is the steadier figure on a machine that other work shares (wall time includes
 * waiting for a core).
 */
const REPORT_USAGE = `data:text/javascript,process.on("exit",()=>{const u=process.resourceUsage();process.stderr.write("usage="+u.maxRSS+","+(u.userCPUTime+u.systemCPUTime)+"\\n")})`;

export interface Sample {
  readonly seconds: number;
  readonly cpuSeconds: number;
  readonly maxRssMB: number;
}

/**
 * `revision`'s src/ and package.json (default: where this branch left main), exported with
 * `git archive` into `dir`, borrowing this checkout's node_modules, so both sides run the same
 * way (Node's type stripping, the same dependencies). Returns the revision.
 */
export async function exportBaseline(dir: string, revision?: string): Promise<string> {
  const chosen =
    revision ??
    execFileSync("git", ["merge-base", "HEAD", "main"], { cwd: root, encoding: "utf8" }).trim();
  await mkdir(dir, { recursive: true });
  const archive = execFileSync("git", ["archive", chosen, "src", "package.json"], {
    cwd: root,
    maxBuffer: 1 << 28,
  });
  execFileSync("tar", ["-x", "-C", dir], { input: archive });
  await symlink(join(root, "node_modules"), join(dir, "node_modules"));
  return chosen;
}

/**
 * `lb-ip-guard ARGS` of `checkout`, stdout discarded; its wall time, CPU time and maximum RSS.
 * An exit status outside `codes` throws with the child's stderr.
 */
export async function runCli(
  checkout: string,
  args: readonly string[],
  options: { readonly cwd: string; readonly codes: readonly number[] },
): Promise<Sample> {
  const started = performance.now();
  const child = spawn(
    process.execPath,
    [`--import=${REPORT_USAGE}`, join(checkout, "src/cli/main.ts"), ...args],
    { cwd: options.cwd, stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  const seconds = (performance.now() - started) / 1000;
  if (code === null || !options.codes.includes(code)) {
    throw new Error(`${checkout} ${args.join(" ")}: exit ${code}: ${stderr}`);
  }
  const [, rss, cpu] = /usage=(\d+),(\d+)/.exec(stderr) ?? [];
  return { seconds, cpuSeconds: Number(cpu) / 1e6, maxRssMB: Number(rss) / 1024 };
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] ?? 0)
    : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}
