// What a child process wrote and how it ended, for the scripts and tests that run go, kubectl
// and the lb-ip-guard command itself.

import type { ChildProcess } from "node:child_process";

export interface ChildOutput {
  /** The exit code; null when a signal ended the process. */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Resolves once the child has closed (its output is complete), rejects when it could not be
 * started. Decoded as UTF-8 across chunk boundaries, so a character split between two reads
 * stays whole. The child must have been spawned with piped stdout and stderr.
 */
export function outputOf(child: ChildProcess): Promise<ChildOutput> {
  return new Promise((resolve, reject) => {
    let stdout = "";
    let stderr = "";
    child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}
