// Reading serve's flags (the table in src/cli/serve-flags.ts) into a checked configuration: each
// row the same way, the flag if given, else its variable, else the default; a bad value is
// refused with one line naming the flag or the variable it came from. Then the rules between
// flags, and the files that must be readable.

import { access, constants } from "node:fs/promises";
import { parseArgs } from "node:util";
import { oneLine } from "../base/text.ts";
import { fail, ok, type Result } from "../ipam/result.ts";
import { ipTargetProblem, type ServeConfig } from "../server/config.ts";
import { anyText, envName, SERVE_FLAGS, type ServeFlag } from "./serve-flags.ts";

const PARSE_OPTIONS = {
  ...Object.fromEntries(
    SERVE_FLAGS.map((flag) => [
      flag.name,
      flag.kind === "switch"
        ? { type: "boolean" as const }
        : { type: "string" as const, multiple: flag.kind === "list" },
    ]),
  ),
  help: { type: "boolean", short: "h" },
} as const;

type Given = Record<string, string | boolean | string[] | undefined>;

/** One row's value: the flag, else its variable (empty is unset), else the default. */
function readRow(
  flag: ServeFlag,
  given: Given,
  env: NodeJS.ProcessEnv,
  read: Partial<ServeConfig>,
): Result<unknown> {
  const variable = envName(flag.name);
  const fromEnv = env[variable] === "" ? undefined : env[variable];
  const value = given[flag.name];
  switch (flag.kind ?? "value") {
    case "switch":
      if (value === true) return ok(true);
      if (fromEnv === undefined || /^(false|0|no)$/i.test(fromEnv)) return ok(false);
      if (/^(true|1|yes)$/i.test(fromEnv)) return ok(true);
      return fail(`${variable} must be true or false, not "${fromEnv}"`);
    case "list": {
      const items = Array.isArray(value)
        ? value
        : (fromEnv ?? "")
            .split(",")
            .map((item) => item.trim())
            .filter((item) => item !== "");
      const problem = items.map((item) => flag.item?.(item)).find((text) => text !== undefined);
      return problem === undefined ? ok(items) : fail(problem);
    }
    case "value": {
      const text = typeof value === "string" ? value : fromEnv;
      if (text === undefined) {
        return ok(typeof flag.default === "function" ? flag.default(read) : flag.default);
      }
      return (flag.read ?? anyText)(text, typeof value === "string" ? `--${flag.name}` : variable);
    }
  }
}

/** What must hold between flags, each refused with one line. */
const RULES: readonly ((config: ServeConfig) => string | undefined)[] = [
  (config) =>
    config.caTrustDelayMs * 3 >= config.certValidityMs
      ? `--ca-trust-delay (${config.caTrustDelayMs / 1000}s) must be under a third of --cert-validity (${config.certValidityMs / 1000}s): a certificate due for renewal could not wait for its new CA to be trusted`
      : undefined,
  (config) =>
    config.certValidityMs > config.caValidityMs
      ? `--cert-validity (${config.certValidityMs / 1000}s) must not exceed --ca-validity (${config.caValidityMs / 1000}s)`
      : undefined,
  (config) =>
    config.port !== 0 && config.port === config.metricsPort
      ? `--port and --metrics-port are both ${config.port}; they need two ports`
      : undefined,
  (config) =>
    (config.tlsCert === undefined) === (config.tlsKey === undefined)
      ? undefined
      : config.tlsCert === undefined
        ? "--tls-key is given without --tls-cert; give both or neither"
        : "--tls-cert is given without --tls-key; give both or neither",
  (config) =>
    config.standalone && config.pools.length === 0
      ? "--standalone needs at least one --pools FILE (there is no cluster to read pools from)"
      : undefined,
  (config) => ipTargetProblem(config.ipTarget, config.metallbVersion),
  (config) =>
    config.standalone && config.kubeconfig !== undefined
      ? "--kubeconfig and --standalone exclude each other: standalone reads no cluster"
      : undefined,
];

/** Flags and environment to a checked configuration (no file is read here but for existence). */
export async function parseServeArgs(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
): Promise<Result<ServeConfig | "help">> {
  let given: Given;
  try {
    ({ values: given } = parseArgs({
      args: [...args],
      options: PARSE_OPTIONS,
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    return fail(describeParseError(error));
  }
  if (given.help === true) return ok("help");

  const read: Partial<Record<keyof ServeConfig, unknown>> = {};
  for (const flag of SERVE_FLAGS) {
    const value = readRow(flag, given, env, read as Partial<ServeConfig>);
    if (!value.ok) return value;
    read[flag.key] = value.value;
  }
  const config = read as ServeConfig;
  for (const rule of RULES) {
    const problem = rule(config);
    if (problem !== undefined) return fail(problem);
  }

  for (const flag of SERVE_FLAGS) {
    if (flag.file !== true) continue;
    const value = config[flag.key];
    for (const file of Array.isArray(value) ? value : [value]) {
      if (typeof file !== "string") continue;
      try {
        await access(file, constants.R_OK);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        const why =
          code === "ENOENT"
            ? "no such file"
            : code === "EACCES"
              ? "permission denied"
              : String(code);
        return fail(`--${flag.name} ${file}: ${why}`);
      }
    }
  }
  return ok(config);
}

function describeParseError(error: unknown): string {
  const { code, message } = error as { code?: string; message: string };
  const option = /'(-[^' ]*)/.exec(message)?.[1];
  switch (code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
      return `unknown flag ${option ?? message}`;
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE":
      return option !== undefined && /argument missing/.test(message)
        ? `${option} needs a value`
        : oneLine(message);
    case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL":
      return `unexpected argument ${/'([^']*)'/.exec(message)?.[1] ?? message}; serve takes only flags`;
    default:
      return oneLine(message);
  }
}
