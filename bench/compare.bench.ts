/**
 * This checkout's webhook server against another revision's, in one run: for "no worse than
 * before" (issue 13). One server process measured against another differs by up to 10 µs of CPU
 * per review on this machine whatever their code (each process's JIT and heap layout), so several
 * processes of each revision serve side by side, driven in short rounds that interleave them all,
 * and each revision's figure is the mean over its processes, with the spread of that mean.
 *
 *   npm run bench:compare -- REVISION
 *     LB_IP_GUARD_BENCH_PROCESSES (default 5) servers of each revision,
 *     LB_IP_GUARD_BENCH_ROUNDS (default 6) rounds of 1 s per server and endpoint
 *
 * The other revision is checked out in a temporary git worktree that shares this checkout's
 * node_modules, and serves through its own `bench/webhook.bench.ts --serve webhook` (the same
 * state and reviews as bench:webhook, as that revision builds them). Server CPU per request comes
 * from /proc (Linux only).
 */

import { execFileSync } from "node:child_process";
import { existsSync, symlinkSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { generateCertificate } from "../src/certs/issue.ts";
import {
  type Child,
  cpuSeconds,
  MUTATE_BODY,
  run,
  startChild,
  stopChild,
  VALIDATE_BODY,
} from "./webhook.bench.ts";

const PROCESSES = Number(process.env.LB_IP_GUARD_BENCH_PROCESSES ?? 5);
const ROUNDS = Number(process.env.LB_IP_GUARD_BENCH_ROUNDS ?? 6);
const WARMUP_SECONDS = 2;
const ROOT = fileURLToPath(new URL("..", import.meta.url));

interface Server {
  readonly revision: string;
  readonly child: Child;
}

/** Mean and standard error of the mean. */
function meanOf(values: readonly number[]): { mean: number; error: number } {
  const mean = values.reduce((sum, value) => sum + value, 0) / values.length;
  const variance =
    values.reduce((sum, value) => sum + (value - mean) ** 2, 0) / Math.max(1, values.length - 1);
  return { mean, error: Math.sqrt(variance / values.length) };
}

/** Server CPU per answered request (µs) of each server, over ROUNDS interleaved rounds. */
async function measure(
  servers: readonly Server[],
  path: string,
  body: string,
  ca: string,
): Promise<number[]> {
  const url = (server: Server) => `https://127.0.0.1:${server.child.port}${path}`;
  for (const server of servers) await run(url(server), body, ca, WARMUP_SECONDS);
  const spent = servers.map(() => ({ cpu: 0, answered: 0 }));
  for (let round = 0; round < ROUNDS; round++) {
    // Every other round backwards, so that no server always follows the same one.
    const order = servers.map((_, index) => (round % 2 === 0 ? index : servers.length - 1 - index));
    for (const index of order) {
      const server = servers[index] as Server;
      const before = cpuSeconds(server.child.child.pid);
      const samples = await run(url(server), body, ca, 1);
      const after = cpuSeconds(server.child.child.pid);
      if (before === undefined || after === undefined) {
        throw new Error("no /proc/PID/stat here: server CPU time needs Linux");
      }
      const total = spent[index] as { cpu: number; answered: number };
      total.cpu += after - before;
      total.answered += samples.times.length;
    }
  }
  return spent.map(({ cpu, answered }) => (cpu * 1e6) / answered);
}

async function main(): Promise<void> {
  const revision = process.argv[2];
  if (revision === undefined) {
    console.error(
      "usage: npm run bench:compare -- REVISION (a commit, tag or branch to measure this checkout against)",
    );
    process.exit(2);
  }
  const directory = await mkdtemp(join(tmpdir(), "lb-ip-guard-compare-"));
  const tree = join(directory, "tree");
  const servers: Server[] = [];
  try {
    execFileSync("git", ["-C", ROOT, "worktree", "add", "--detach", tree, revision], {
      stdio: "ignore",
    });
    const theirs = join(tree, "bench", "webhook.bench.ts");
    if (!existsSync(theirs))
      throw new Error(`${revision} has no bench/webhook.bench.ts to serve with`);
    symlinkSync(join(ROOT, "node_modules"), join(tree, "node_modules"));
    const commit = execFileSync("git", ["-C", tree, "rev-parse", "--short", "HEAD"])
      .toString()
      .trim();
    const generated = await generateCertificate();
    const certFile = join(directory, "cert.json");
    await writeFile(certFile, JSON.stringify({ cert: generated.cert, key: generated.key }));
    console.log(
      `this checkout against ${revision} (${commit}): ${PROCESSES} server processes of each, ${ROUNDS} interleaved rounds of 1 s per server and endpoint, node ${process.version}, ${cpus().length} CPUs, load average ${loadavg()[0]?.toFixed(2)}\n`,
    );
    const ours = join(ROOT, "bench", "webhook.bench.ts");
    for (let index = 0; index < PROCESSES; index++) {
      servers.push({
        revision: "this checkout",
        child: await startChild("webhook", certFile, ours),
      });
      servers.push({ revision: commit, child: await startChild("webhook", certFile, theirs) });
    }
    for (const [path, body] of [
      ["/validate", VALIDATE_BODY],
      ["/mutate", MUTATE_BODY],
    ] as const) {
      const perServer = await measure(servers, path, body, generated.ca);
      const of = (name: string) =>
        perServer.filter((_, index) => servers[index]?.revision === name);
      const [mine, before] = [of("this checkout"), of(commit)];
      const [a, b] = [meanOf(mine), meanOf(before)];
      const difference = a.mean - b.mean;
      const margin = 2 * Math.sqrt(a.error ** 2 + b.error ** 2);
      const shown = (values: number[]) => values.map((value) => value.toFixed(1)).join(" ");
      console.log(`${path} server CPU per request`);
      console.log(
        `  this checkout ${a.mean.toFixed(1).padStart(6)} µs ± ${a.error.toFixed(1)}   (processes: ${shown(mine)})`,
      );
      console.log(
        `  ${commit.padEnd(13)} ${b.mean.toFixed(1).padStart(6)} µs ± ${b.error.toFixed(1)}   (processes: ${shown(before)})`,
      );
      console.log(
        `  difference ${difference >= 0 ? "+" : ""}${difference.toFixed(1)} µs ± ${margin.toFixed(1)} (two standard errors), ratio ${(a.mean / b.mean).toFixed(3)}: ${difference - margin > 0 ? "WORSE" : "no worse"}\n`,
      );
    }
    console.log(`load average at the end: ${loadavg()[0]?.toFixed(2)}`);
  } finally {
    for (const server of servers) await stopChild(server.child);
    execFileSync("git", ["-C", ROOT, "worktree", "remove", "--force", tree], { stdio: "ignore" });
    await rm(directory, { recursive: true, force: true });
  }
}

await main().catch((error: unknown) => {
  console.error(`bench:compare: ${(error as Error).message}`);
  process.exit(1);
});
