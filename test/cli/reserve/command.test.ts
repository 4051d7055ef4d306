// `lb-ip-guard reserve` without a cluster: its usage errors (exit 2, one line naming the
// problem) and its help. What it writes, and the webhook's answers, are in
// test/e2e/reservations.test.ts on the real API server.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RESERVE_USAGE, runReserve } from "../../../src/cli/reserve/command.ts";

async function run(args: string[]) {
  let stdout = "";
  let stderr = "";
  const code = await runReserve(args, {
    stdout: (text) => {
      stdout += text;
    },
    stderr: (text) => {
      stderr += text;
    },
  });
  return { code, stdout, stderr };
}

describe("lb-ip-guard reserve: arguments", () => {
  it("prints its help with -h", async () => {
    assert.deepEqual(await run(["-h"]), { code: 0, stdout: RESERVE_USAGE, stderr: "" });
  });

  const usageErrors: [string[], RegExp][] = [
    [[], /give the ADDRESS to reserve, or --next --pool NAME/],
    [["--next"], /--next needs --pool NAME/],
    [["192.168.35.104", "--next", "--pool", "default"], /an ADDRESS or --next, not both/],
    [["192.168.35.104", "--pool", "default"], /--pool goes with --next/],
    [["10.0.0.1", "fd00::1", "10.0.0.2"], /at most two addresses/],
    [["192.168.35.104", "--name", "Not_A_Name"], /--name: not a valid name/],
    [["192.168.35.104", "-n", "team.a"], /--namespace: not a valid name/],
    [["192.168.35.104", "--colour"], /unknown option '--colour'/],
  ];
  for (const [args, message] of usageErrors) {
    it(`refuses ${JSON.stringify(args.join(" "))} with exit 2`, async () => {
      const { code, stdout, stderr } = await run(args);
      assert.equal(code, 2);
      assert.equal(stdout, "");
      assert.match(stderr, message);
      assert.match(stderr, /^lb-ip-guard reserve: [^\n]*\(see lb-ip-guard reserve --help\)\n$/);
    });
  }

  it("an unreadable kubeconfig is one input error line, exit 2", async () => {
    const { code, stderr } = await run([
      "192.168.35.104",
      "--kubeconfig",
      "/nonexistent/kubeconfig",
    ]);
    assert.equal(code, 2);
    assert.match(
      stderr,
      /^lb-ip-guard reserve: cluster: cannot load kubeconfig \/nonexistent\/kubeconfig/,
    );
    assert.equal(stderr.split("\n").length, 2);
  });
});
