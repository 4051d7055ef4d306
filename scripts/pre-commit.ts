// Provides the real pre-commit for the test of the repository's hook (.pre-commit-hooks.yaml) and
// prints its path: $PRE_COMMIT, or Debian's /usr/bin/pre-commit, installed with apt-get as root
// when missing (scripts/debian-package.ts).

import { debianProgram } from "./debian-package.ts";
import { type Log, runAsScript } from "./go-assets.ts";

const stderrLog: Log = (line) => process.stderr.write(`pre-commit: ${line}\n`);

export function preCommit(log: Log = stderrLog): Promise<string> {
  return debianProgram(
    { package: "pre-commit", binary: "/usr/bin/pre-commit", variable: "PRE_COMMIT" },
    log,
  );
}

await runAsScript(import.meta.url, "pre-commit", () => preCommit());
