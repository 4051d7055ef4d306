// Provides headless Chromium for the browser tests (the pool map) and prints its path: $CHROMIUM,
// or Debian's /usr/bin/chromium, installed with apt-get as root when missing
// (scripts/debian-package.ts).

import { debianProgram } from "./debian-package.ts";
import { type Log, runAsScript } from "./go-assets.ts";

export const DEBIAN_CHROMIUM = "/usr/bin/chromium";

const stderrLog: Log = (line) => process.stderr.write(`chromium: ${line}\n`);

export function chromium(log: Log = stderrLog): Promise<string> {
  return debianProgram({ package: "chromium", binary: DEBIAN_CHROMIUM, variable: "CHROMIUM" }, log);
}

await runAsScript(import.meta.url, "chromium", () => chromium());
