// Provides the pinned Helm for the tests, as k8s-assets.ts provides kubectl: scripts/helm.sh
// builds it from the Go module proxy on first use (minutes) and reuses the cached binary after.
// Without Go it cannot be had here: AssetsUnavailableError, which the tests turn into a skip with
// the reason outside CI and a failure under CI=true.

import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { AssetsUnavailableError } from "./go-assets.ts";

const script = fileURLToPath(new URL("helm.sh", import.meta.url));

/** The path of the pinned helm binary, built if missing. */
export function helmBinary(): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(script, [], { maxBuffer: 1 << 20 }, (error, stdout, stderr) => {
      if (!error) {
        resolve(stdout.trim());
        return;
      }
      const why = stderr.trim().split("\n").pop() ?? error.message;
      // helm.sh exits 2 when there is no Go to build with.
      reject(error.code === 2 ? new AssetsUnavailableError(why) : new Error(why));
    });
  });
}
