// `lb-ip-guard pools`: the address space of every pool, who holds what, what is free and what is
// wrong, from the same inputs as `check`. Here: the arguments and the run; the map itself is
// ipam/pool-map.ts (pure), the text and JSON ./report.ts, the page ./html.ts.

import { mappedServiceOf, poolMap } from "../../ipam/pool-map.ts";
import type { ManifestObject } from "../../manifests/loader.ts";
import type { CheckIO } from "../check/command.ts";
import { asService, auditOrder, refOf } from "../check/input.ts";
import { lifecycleOf } from "../check/lifecycle.ts";
import {
  CLAIMS_NAMESPACE_FLAG,
  loadSources,
  parseSourceArgs,
  runWithSources,
  type Sources,
  sourcesOf,
  writeOutput,
} from "../sources.ts";
import { poolMapPage } from "./html.ts";
import { formatText, reportOf } from "./report.ts";

export const POOLS_SUMMARY =
  "show every pool: its addresses, their holders, what is free (text, JSON, a page)";

export const POOLS_USAGE = `Usage: lb-ip-guard pools [PATH|-]... [--pools FILE]... [--existing FILE]...
                         [--cluster [--kubeconfig FILE] [--context NAME] [--claims-namespace NS]]
                         [--format text|json|html] [--output FILE]
                         [--load-balancer-class NAME] [--metallb-version VERSION]

Shows every address pool: its ranges, size, addresses used and free, the share used and its
serviceAllocation; every held address with its holders (the Services MetalLB serves it to, the
Services that request it, and with --cluster the address claims still pending), their sharing
key and ports; the free ranges; the addresses kept for someone: retained for the Service that
gave them up (for whom, until when), reserved by an AddressReservation (for whom, who holds it);
each namespace's use against its lb-ip-guard.dev/address-quota; and the problems: a Service that
requests an address another holds and may not share (MetalLB leaves it <pending>), an address
held outside every pool, a claim whose Service does not exist, a reserved address held by a
Service it is not reserved for.

Inputs (as for check; see lb-ip-guard check --help):
  PATH                      manifests: their Services count as applied, each replacing the
                            Service of the same namespace/name (pools shows requests; check
                            decides them). With no PATH, the Services of --cluster/--existing
  --pools FILE              MetalLB pools (repeatable); pool sources among the PATHs count too
  --existing FILE           Services, Namespaces, AddressReservations and the webhook's claim
                            Leases already in the cluster (repeatable)
  --cluster                 read pools, Services, Namespaces, AddressReservations and the
                            webhook's claim Leases from the live cluster, read-only
  --kubeconfig FILE         the cluster for --cluster (default: $KUBECONFIG, ~/.kube/config,
                            in-cluster)
  --context NAME            the kubeconfig context for --cluster (default: its current one)
  --claims-namespace NS     where the webhook keeps its address claims (default lb-ip-guard)
  --load-balancer-class NAME, --metallb-version VERSION
                            the MetalLB guarded, as for check

Options:
  --format text|json|html   text (default): a pool table, then each pool's held addresses and
                            free ranges, then the problems; json: one object (docs/pools.md);
                            html: one self-contained page, the pool map (no network access)
  --output FILE             write there instead of stdout
  -h, --help                this help

Exit status: 0 no problem found, 1 a problem found (the report is printed all the same),
2 usage or input error.
`;

const EXIT = { ok: 0, problems: 1 } as const;

type Format = "text" | "json" | "html";

interface PoolsOptions {
  readonly sources: Sources;
  readonly format: Format;
  readonly output: string | undefined;
}

export function runPools(args: readonly string[], io: CheckIO): Promise<number> {
  return runWithSources(
    { name: "pools", usage: POOLS_USAGE },
    args,
    io,
    parsePoolsArgs,
    async (options) => {
      const { report, warnings } = await mapPools(options, io);
      for (const warning of warnings) io.stderr(`lb-ip-guard pools: warning: ${warning}\n`);
      const text =
        options.format === "json"
          ? `${JSON.stringify(report, null, 2)}\n`
          : options.format === "html"
            ? poolMapPage(report)
            : formatText(report);
      await writeOutput(options.output, text, io);
      return report.summary.problems > 0 ? EXIT.problems : EXIT.ok;
    },
  );
}

function parsePoolsArgs(args: readonly string[]): PoolsOptions | "help" {
  const { values, positionals } = parseSourceArgs(args, {
    ...CLAIMS_NAMESPACE_FLAG,
    format: { type: "string" },
    output: { type: "string", short: "o" },
  });
  if (values.help) return "help";
  const format = values.format ?? "text";
  if (format !== "text" && format !== "json" && format !== "html") {
    throw new Error(`--format must be text, json or html, not ${JSON.stringify(format)}`);
  }
  if (values.output === "") throw new Error("--output needs a file name");
  return { sources: sourcesOf(values, positionals), format, output: values.output };
}

async function mapPools(options: PoolsOptions, io: CheckIO) {
  const { policy, poolSet, existingObjects, manifests, audit, warnings } = await loadSources(
    options.sources,
    io.readStdin,
    "all",
  );
  // The manifests as applied: each replaces the Service of its name; then the order an audit
  // uses, so that whoever MetalLB serves keeps an address asked for twice.
  const byRef = new Map<string, { manifest: ManifestObject; ref: string }>();
  for (const manifest of audit ? manifests : [...existingObjects, ...manifests]) {
    const service = asService(manifest);
    if (service === undefined) continue;
    const ref = refOf(service, manifest);
    byRef.delete(ref);
    byRef.set(ref, { manifest, ref });
  }
  const refs = new Map([...byRef.values()].map(({ manifest, ref }) => [manifest, ref]));
  const services = auditOrder([...refs.keys()]).map((manifest) =>
    mappedServiceOf(asService(manifest) ?? {}, policy, refs.get(manifest) ?? ""),
  );
  // Everything given counts as applied: the manifests' reservations and Leases too.
  const lifecycle = lifecycleOf(
    audit ? existingObjects : [...existingObjects, ...manifests],
    Date.now(),
    warnings,
  );
  const claims = lifecycle.claims.map(({ address, holder }) => ({ address, holder }));
  return { report: reportOf(poolMap(poolSet, services, claims, lifecycle)), warnings };
}
