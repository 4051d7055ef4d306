// The lb-ip-guard command line, for both of its entry points (main.ts, and kubectl-plugin.ts for
// `kubectl lb-ip-guard`): a table of subcommands. To add one, add a row that imports its module.

import { importClientConfigurationAlone } from "../cluster/client-imports.ts";
import type { CheckIO } from "./check/command.ts";
import { packageVersion } from "./version.ts";
import { keepYoungGenerationSmall } from "./young-generation.ts";

/** This file's own exit statuses, the ones every command shares (check's and serve's EXIT). */
const EXIT = { ok: 0, usage: 2 } as const;

interface Command {
  /** One line for the command list. */
  readonly summary: string;
  /** The command's full help, printed for `lb-ip-guard help COMMAND`. */
  readonly usage: string;
  /** Runs with the arguments after the command's name; resolves to the exit status. */
  readonly run: (args: readonly string[], io: CheckIO) => Promise<number>;
}

/**
 * Each command's module, imported only when that command is run (or for the help): a command
 * loads what it uses, not the others' modules (check --cluster need not load the server's
 * fastify, pino and prom-client, serve not the manifest parser).
 */
const COMMANDS: Readonly<Record<string, () => Promise<Command>>> = {
  check: async () => {
    const { CHECK_SUMMARY, CHECK_USAGE, runCheck } = await import("./check/command.ts");
    return { summary: CHECK_SUMMARY, usage: CHECK_USAGE, run: runCheck };
  },
  convert: async () => {
    const { CONVERT_SUMMARY, CONVERT_USAGE, runConvert } = await import("./convert/command.ts");
    return { summary: CONVERT_SUMMARY, usage: CONVERT_USAGE, run: runConvert };
  },
  pools: async () => {
    const { POOLS_SUMMARY, POOLS_USAGE, runPools } = await import("./pools/command.ts");
    return { summary: POOLS_SUMMARY, usage: POOLS_USAGE, run: runPools };
  },
  reserve: async () => {
    const { RESERVE_SUMMARY, RESERVE_USAGE, runReserve } = await import("./reserve/command.ts");
    return { summary: RESERVE_SUMMARY, usage: RESERVE_USAGE, run: runReserve };
  },
  serve: async () => {
    const { SERVE_SUMMARY, SERVE_USAGE, runServe } = await import("./serve.ts");
    return { summary: SERVE_SUMMARY, usage: SERVE_USAGE, run: runServe };
  },
};

/** How the program was started: as itself, or as a kubectl plugin. */
export interface Invocation {
  /** What the user typed: `lb-ip-guard`, or `kubectl lb-ip-guard`. */
  readonly name: string;
  /** The commands that read the live cluster without --cluster (a kubectl plugin's are). */
  readonly clusterByDefault: ReadonlySet<string>;
}

export const STANDALONE: Invocation = { name: "lb-ip-guard", clusterByDefault: new Set() };

async function usage(invocation: Invocation): Promise<string> {
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length));
  const rows = await Promise.all(
    Object.entries(COMMANDS).map(
      async ([name, load]) => `  ${name.padEnd(width)}  ${(await load()).summary}`,
    ),
  );
  const plugin =
    invocation.clusterByDefault.size === 0
      ? ""
      : `\nAs a kubectl plugin, ${[...invocation.clusterByDefault].join(" and ")} read the cluster of the current
kubeconfig context (--cluster is implied); --kubeconfig FILE, --context NAME and KUBECONFIG
choose another, as for kubectl.
`;
  return `Usage: ${invocation.name} <command> [options]

Validates MetalLB load-balancer addresses of Kubernetes Services.
${plugin}
Commands:
${rows.join("\n")}

Options:
  -h, --help     this help (${invocation.name} <command> --help: the command's)
  --version      print the version

Exit status: 0 ok, 2 usage or input error; 1 is the command's own: check, something
denied; convert --check, a decision differs; pools, a problem found; serve, serving failed
(${invocation.name} help COMMAND).
`;
}

async function main(argv: readonly string[], invocation: Invocation): Promise<number> {
  const io: CheckIO = {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
  };
  const [first, ...rest] = argv;
  if (first === undefined || first === "-h" || first === "--help" || first === "help") {
    const topic = first === "help" ? rest[0] : undefined;
    if (topic !== undefined) {
      const load = Object.hasOwn(COMMANDS, topic) ? COMMANDS[topic] : undefined;
      if (load === undefined) return unknownCommand(topic, io);
      io.stdout((await load()).usage);
      return EXIT.ok;
    }
    io.stdout(await usage(invocation));
    return EXIT.ok;
  }
  if (first === "--version") {
    io.stdout(`${packageVersion()}\n`);
    return EXIT.ok;
  }
  if (first.startsWith("-")) {
    io.stderr(`lb-ip-guard: unknown option '${first}'; a command comes first (try --help)\n`);
    return EXIT.usage;
  }
  const load = Object.hasOwn(COMMANDS, first) ? COMMANDS[first] : undefined;
  if (load === undefined) return unknownCommand(first, io);
  // serve lets it grow again once its caches are filled (serve.ts).
  keepYoungGenerationSmall();
  const implied =
    invocation.clusterByDefault.has(first) &&
    !rest.some((arg) => arg === "--cluster" || arg === "-h" || arg === "--help");
  return (await load()).run(implied ? ["--cluster", ...rest] : rest, io);
}

function unknownCommand(name: string, io: CheckIO): number {
  io.stderr(
    `lb-ip-guard: unknown command '${name}'; commands: ${Object.keys(COMMANDS).join(", ")} (try --help)\n`,
  );
  return EXIT.usage;
}

/** Runs the command line of `process.argv` and sets the exit status. */
export function startProgram(invocation: Invocation): void {
  // Before any command imports the Kubernetes client.
  importClientConfigurationAlone();
  // A closed pipe (`lb-ip-guard check ... | head`) is not an error worth a stack trace.
  process.stdout.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code === "EPIPE") process.exit(process.exitCode ?? 0);
    throw error;
  });

  main(process.argv.slice(2), invocation).then(
    (code) => {
      // exitCode, not exit(): pending stdout writes to a pipe must finish first.
      process.exitCode = code;
    },
    (error: unknown) => {
      // A bug, not bad input: say so on one line (the stack only on request).
      const detail = process.env.LB_IP_GUARD_DEBUG ? (error as Error).stack : String(error);
      process.stderr.write(`lb-ip-guard: internal error: ${detail}\n`);
      process.exitCode = EXIT.usage;
    },
  );
}
