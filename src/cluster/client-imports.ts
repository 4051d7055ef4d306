// @kubernetes/client-node's KubeConfig (dist/config.js) imports two names from the index of its
// generated API, and that index loads every API group and model the package has: about 45 MB of
// a process's memory and 0.35 s of CPU at its start, for classes this project never calls
// (kube.ts keeps objects as plain JSON). A module resolution hook, registered before the client
// is first imported, points that one import at a module of just those two names, re-exported
// from the files the index itself takes them from: the same module instances, fewer loaded.
// Should a release of the client import more from the index, linking fails at start with the
// missing name (every test that starts the command sees it), never a wrong object.
// See docs/decisions/0021-client-imports.md.

import { registerHooks } from "node:module";

/** The client's configuration module, by the end of its URL. */
const CONFIG_MODULE = "/@kubernetes/client-node/dist/config.js";
/** The import of the generated API's index in it. */
const GENERATED_INDEX = "./gen/index.js";
/** A URL of this scheme carries the configuration module's own URL after the colon. */
const SCHEME = "lb-ip-guard-client-gen:";
/** What config.js imports from the index, and the file of the index's that each comes from. */
const IMPORTED = [
  ["createConfiguration", "./gen/configuration.js"],
  ["ServerConfiguration", "./gen/servers.js"],
] as const;

let registered = false;

/** From now on, the client's configuration module loads only what it imports of the index. */
export function importClientConfigurationAlone(): void {
  if (registered) return;
  registered = true;
  registerHooks({
    resolve(specifier, context, nextResolve) {
      const parent = context.parentURL;
      if (specifier !== GENERATED_INDEX || parent?.endsWith(CONFIG_MODULE) !== true) {
        return nextResolve(specifier, context);
      }
      return { url: `${SCHEME}${parent}`, shortCircuit: true };
    },
    load(url, context, nextLoad) {
      if (!url.startsWith(SCHEME)) return nextLoad(url, context);
      const config = url.slice(SCHEME.length);
      const source = IMPORTED.map(
        ([name, file]) => `export { ${name} } from ${JSON.stringify(new URL(file, config).href)};`,
      ).join("\n");
      return { format: "module", source, shortCircuit: true };
    },
  });
}
