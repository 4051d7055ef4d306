// The release of lb-ip-guard running: `--version`, and the tool version a SARIF log names.

import { readFileSync } from "node:fs";

export function packageVersion(): string {
  // package.json is two levels up from both src/cli/version.ts and dist/cli/version.js.
  const manifest = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));
  return String(manifest.version);
}
