// Development certificates for lb-ip-guard: a CA and a serving certificate it signed, valid for
// localhost, 127.0.0.1, ::1 and the in-cluster names of the webhook's Service. Never for
// production: on a cluster, `serve` makes and rotates its own (docs/decisions/0006), or mount
// cert-manager's.
//
//   node certs/generate.ts [--out DIR] [--service NAME] [--namespace NAME] [--days N] [--san NAME|IP]...
//
// Writes DIR/ca.crt, ca.key, tls.crt, tls.key (default DIR: certs/dev, ignored by git and
// docker). The keys are EC P-256, written 0600.

import { chmod, mkdir, writeFile } from "node:fs/promises";
import { isIP } from "node:net";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { generateCa, issueServingCertificate, validityWindow } from "../src/certs/issue.ts";
import { servingNames } from "../src/certs/names.ts";

export interface DevCertificateOptions {
  readonly out: string;
  readonly service: string;
  readonly namespace: string;
  readonly days: number;
  readonly sans: readonly string[];
}

export interface DevCertificateFiles {
  readonly ca: string;
  readonly caKey: string;
  readonly cert: string;
  readonly key: string;
  readonly names: readonly string[];
}

/** Generates the four files into `options.out`; resolves to their paths and the names. */
export async function generateDevCertificates(
  options: DevCertificateOptions,
): Promise<DevCertificateFiles> {
  const now = Date.now();
  const validity = options.days * 86_400_000;
  const names = servingNames(options.service, options.namespace, [
    "localhost",
    "127.0.0.1",
    "::1",
    ...options.sans,
  ]);
  const ca = await generateCa(
    `lb-ip-guard development CA ${new Date(now).toISOString().replace(/\.\d+Z$/, "Z")}`,
    validityWindow(now, validity),
  );
  const leaf = await issueServingCertificate(ca, names, validityWindow(now, validity));
  await mkdir(options.out, { recursive: true });
  const files = {
    ca: join(options.out, "ca.crt"),
    caKey: join(options.out, "ca.key"),
    cert: join(options.out, "tls.crt"),
    key: join(options.out, "tls.key"),
  };
  await writeFile(files.ca, ca.cert, { mode: 0o644 });
  await writeFile(files.cert, leaf.cert, { mode: 0o644 });
  for (const [file, pem] of [
    [files.caKey, ca.key],
    [files.key, leaf.key],
  ] as const) {
    await writeFile(file, pem, { mode: 0o600 });
    await chmod(file, 0o600); // an existing file keeps its mode otherwise
  }
  return { ...files, names: [...names.dns, ...names.ips] };
}

const USAGE = `Usage: node certs/generate.ts [options]

Writes a development CA and a serving certificate it signed (ca.crt, ca.key, tls.crt, tls.key).
  --out DIR          where (default certs/dev)
  --service NAME     the webhook's Service (default lb-ip-guard)
  --namespace NAME   its namespace (default lb-ip-guard)
  --days N           validity in days (default 30)
  --san NAME|IP      an extra name or address; repeatable
  -h, --help         this help
`;

async function main(argv: readonly string[]): Promise<number> {
  let values: ReturnType<typeof parseArgs>["values"];
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        out: { type: "string" },
        service: { type: "string" },
        namespace: { type: "string" },
        days: { type: "string" },
        san: { type: "string", multiple: true },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    process.stderr.write(`certs/generate.ts: ${(error as Error).message} (try --help)\n`);
    return 2;
  }
  if (values.help === true) {
    process.stdout.write(USAGE);
    return 0;
  }
  const days = Number(values.days ?? "30");
  if (!Number.isInteger(days) || days < 1 || days > 3650) {
    process.stderr.write(`certs/generate.ts: --days must be a whole number from 1 to 3650\n`);
    return 2;
  }
  const sans = (values.san as string[] | undefined) ?? [];
  const bad = sans.find((san) => isIP(san) === 0 && !/^[a-z0-9.*-]+$/i.test(san));
  if (bad !== undefined) {
    process.stderr.write(`certs/generate.ts: --san ${bad} is neither a DNS name nor an address\n`);
    return 2;
  }
  const root = resolve(import.meta.dirname, "..");
  const out = resolve((values.out as string | undefined) ?? join(root, "certs", "dev"));
  const files = await generateDevCertificates({
    out,
    service: (values.service as string | undefined) ?? "lb-ip-guard",
    namespace: (values.namespace as string | undefined) ?? "lb-ip-guard",
    days,
    sans,
  });
  const show = (path: string) => {
    const near = relative(process.cwd(), path);
    return near === "" || near.startsWith("..") ? path : near;
  };
  process.stdout.write(
    `Wrote ${show(files.ca)}, ${show(files.caKey)}, ${show(files.cert)}, ${show(files.key)} (valid ${days} days)\n` +
      `names: ${files.names.join(", ")}\n\n` +
      `  lb-ip-guard serve --standalone --pools FILE --tls-cert ${show(files.cert)} --tls-key ${show(files.key)}\n` +
      `  curl --cacert ${show(files.ca)} https://127.0.0.1:8443/healthz\n`,
  );
  return 0;
}

// Run as a script only (the test imports generateDevCertificates).
if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}
