// Shared by the tests of serve's flags: the configuration `serve ARGS` parses to, or the one line
// it is refused with.

import assert from "node:assert/strict";
import { parseServeArgs } from "../../src/cli/serve-args.ts";
import type { ServeConfig } from "../../src/server/config.ts";

/** The parsed config of `serve ARGS` (with `env` as the environment); fails the test if refused. */
export async function serveConfig(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<ServeConfig> {
  const parsed = await parseServeArgs(args, env);
  if (!parsed.ok) assert.fail(parsed.error);
  assert.notEqual(parsed.value, "help");
  return parsed.value as ServeConfig;
}

/** The one-line reason `serve ARGS` is refused; fails the test if it is accepted. */
export async function serveRefusal(args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const parsed = await parseServeArgs(args, env);
  assert.ok(!parsed.ok, `expected ${args.join(" ")} to be refused`);
  return parsed.error;
}
