// `lb-ip-guard reserve`: writes one AddressReservation into the cluster of the kubeconfig. The
// address is given, or with --next the one the allocator would hand out next from a pool (read
// from the cluster as `check --cluster` reads it, plus what is reserved, retained and claimed).
// Whether it may be reserved is the webhook's to decide when the object is created: a refusal
// is printed as the webhook words it, reason code first.

import { parseArgs } from "node:util";
import { isDnsLabel, isDnsSubdomain } from "../../base/k8s-names.ts";
import { formatAddress } from "../../ipam/address.ts";
import { firstFreeInPool } from "../../ipam/allocator.ts";
import { usageEntriesOf } from "../../ipam/decide.ts";
import {
  RESERVATION_API_VERSION,
  RESERVATION_KIND,
  ReservationIndex,
  reservationRef,
} from "../../ipam/reservations.ts";
import { UsageIndex } from "../../ipam/usage.ts";
import type { CheckIO } from "../check/command.ts";
import { asService, InputError, refOf } from "../check/input.ts";
import { lifecycleOf } from "../check/lifecycle.ts";
import { type ClusterTarget, loadSources, runWithSources } from "../sources.ts";

export const RESERVE_SUMMARY =
  "reserve an address for a namespace or one Service of it (an AddressReservation)";

export const RESERVE_USAGE = `Usage: lb-ip-guard reserve ADDRESS [ADDRESS] | --next --pool NAME
                           [-n NAMESPACE] [--service NAME] [--name NAME] [--dry-run]
                           [--kubeconfig FILE] [--context NAME] [--claims-namespace NS]

Writes one AddressReservation (lb-ip-guard.dev/v1alpha1) into the cluster of the current
kubeconfig context: its address then goes only to a Service of NAMESPACE (and with --service,
to that Service alone), which gets it first when it asks for no address. Any other Service's
request for it is refused AddressReserved, and allocations pass over it. The webhook admits the
reservation as it admits a grant: the address must lie in a pool whose serviceAllocation allows
the namespace, be held by no Service of another namespace, be reserved by no one else, and fit
the namespace's address quota; a refusal is printed on one line, and the exit status is 1.

Address:
  ADDRESS [ADDRESS]         the address to reserve; two of different families (IPv4 and IPv6)
                            of one pool for a dual-stack Service
  --next                    the address the allocator would hand out next from --pool: its
                            lowest free one (in the family of its first range), passing over
                            addresses held, claimed, reserved and retained, as read from the
                            cluster now
  --pool NAME               the pool for --next

Options:
  -n, --namespace NAMESPACE the reservation's namespace (default: the context's, else default)
  --service NAME            only this Service of the namespace gets the address
  --name NAME               the reservation's name (default: the --service name, else the
                            address, with ':' as '-')
  --dry-run                 a server-side dry run: the webhook decides, nothing is written
  --kubeconfig FILE         the cluster (default: $KUBECONFIG, ~/.kube/config, in-cluster)
  --context NAME            the kubeconfig context (default: its current one)
  --claims-namespace NS     where the webhook keeps its address claims, which carry the
                            retained addresses --next passes over (default lb-ip-guard)
  --cluster                 accepted for symmetry with check and pools: reserve always acts on
                            the cluster
  -h, --help                this help

Exit status: 0 reserved (or, with --dry-run, it would be), 1 refused, 2 usage or input error.
`;

const EXIT = { ok: 0, refused: 1 } as const;

interface ReserveOptions {
  /** The addresses given, or undefined for --next. */
  readonly addresses: readonly string[] | undefined;
  readonly pool: string | undefined;
  readonly namespace: string | undefined;
  readonly service: string | undefined;
  readonly name: string | undefined;
  readonly dryRun: boolean;
  readonly target: ClusterTarget;
}

export function runReserve(args: readonly string[], io: CheckIO): Promise<number> {
  return runWithSources(
    { name: "reserve", usage: RESERVE_USAGE },
    args,
    io,
    parseReserveArgs,
    (options) => reserve(options, io),
  );
}

function parseReserveArgs(args: readonly string[]): ReserveOptions | "help" {
  // Not the shared source flags: reserve reads no manifests, and always the cluster.
  const { values, positionals } = parseArgs({
    args: [...args],
    strict: true,
    allowPositionals: true,
    options: {
      next: { type: "boolean" },
      pool: { type: "string" },
      namespace: { type: "string", short: "n" },
      service: { type: "string" },
      name: { type: "string" },
      "dry-run": { type: "boolean" },
      kubeconfig: { type: "string" },
      context: { type: "string" },
      "claims-namespace": { type: "string" },
      cluster: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return "help";
  const next = values.next === true;
  if (next && positionals.length > 0) throw new Error("give an ADDRESS or --next, not both");
  if (!next && positionals.length === 0)
    throw new Error("give the ADDRESS to reserve, or --next --pool NAME");
  if (positionals.length > 2) throw new Error("at most two addresses (one of each family)");
  if (next && values.pool === undefined) throw new Error("--next needs --pool NAME");
  if (!next && values.pool !== undefined)
    throw new Error("--pool goes with --next (an address's pool is the one it lies in)");
  for (const [flag, value, valid] of [
    ["--namespace", values.namespace, isDnsLabel],
    ["--service", values.service, isDnsLabel],
    ["--name", values.name, isDnsSubdomain],
    ["--claims-namespace", values["claims-namespace"], isDnsLabel],
  ] as const) {
    if (value !== undefined && !valid(value))
      throw new Error(`${flag}: not a valid name: ${JSON.stringify(value)}`);
  }
  for (const flag of ["kubeconfig", "context", "pool"] as const) {
    if (values[flag] === "") throw new Error(`--${flag} needs a value`);
  }
  return {
    addresses: next ? undefined : positionals,
    pool: values.pool,
    namespace: values.namespace,
    service: values.service,
    name: values.name,
    dryRun: values["dry-run"] === true,
    target: {
      ...(values.kubeconfig !== undefined && { kubeconfig: values.kubeconfig }),
      ...(values.context !== undefined && { context: values.context }),
      claimsNamespace: values["claims-namespace"] ?? "lb-ip-guard",
    },
  };
}

type ReservationClient = typeof import("../../cluster/reservation-client.ts");

/** A cluster call; what it cannot reach or read is an input error (one line, exit 2). */
async function inCluster<T>(what: () => T | Promise<T>): Promise<T> {
  try {
    return await what();
  } catch (error) {
    throw new InputError([`cluster: ${(error as Error).message}`]);
  }
}

async function reserve(options: ReserveOptions, io: CheckIO): Promise<number> {
  // Loaded only here, as for check --cluster: the other commands never pay for the client.
  const cluster: ReservationClient = await import("../../cluster/reservation-client.ts");
  const namespace =
    options.namespace ??
    (await inCluster(() => cluster.contextNamespace(options.target))) ??
    "default";
  const next = options.addresses === undefined ? await nextFree(options, io) : undefined;
  if (typeof next === "object") {
    io.stderr(`lb-ip-guard reserve: ${next.refused}\n`);
    return EXIT.refused;
  }
  const addresses = options.addresses ?? [next ?? ""];
  const name =
    options.name ?? options.service ?? addresses[0]?.toLowerCase().replace(/:/g, "-") ?? "";
  const object = {
    apiVersion: RESERVATION_API_VERSION,
    kind: RESERVATION_KIND,
    metadata: { name, namespace },
    spec: {
      addresses: [...addresses],
      ...(options.service !== undefined && { serviceName: options.service }),
    },
  };
  const outcome = await inCluster(() =>
    cluster.createReservation(options.target, object, options.dryRun),
  );
  const ref = reservationRef({ namespace, name });
  if (outcome.kind === "refused") {
    // The webhook's message names the reservation; the API server's own refusals do too.
    io.stderr(`lb-ip-guard reserve: refused: ${outcome.message}\n`);
    return EXIT.refused;
  }
  const forWhom =
    options.service === undefined
      ? `the Services of namespace ${namespace}`
      : `${namespace}/${options.service}`;
  io.stdout(
    `AddressReservation ${ref} ${options.dryRun ? "admitted (server dry run, not written)" : "created"}: ${addresses.join(", ")} for ${forWhom}\n`,
  );
  return EXIT.ok;
}

/**
 * The pool's next free address as the allocator would pick it for a Service that holds nothing
 * yet: the lowest of its first range's family that no Service holds or requests, no claim holds,
 * and no reservation or retention sets aside. The webhook decides again when the object arrives.
 */
async function nextFree(
  options: ReserveOptions,
  io: CheckIO,
): Promise<string | { readonly refused: string }> {
  const loaded = await loadSources(
    {
      paths: [],
      pools: [],
      existing: [],
      cluster: options.target,
      loadBalancerClass: undefined,
      metallbVersion: undefined,
    },
    undefined,
    "all",
  );
  // A release not known makes every MetalLB key count as asking for an address: the pick passes
  // over more, never less, and the webhook decides with the release it knows. Not worth a word.
  for (const warning of loaded.warnings.filter(
    (each) => !each.startsWith("MetalLB release unknown"),
  )) {
    io.stderr(`lb-ip-guard reserve: warning: ${warning}\n`);
  }
  const pool = loaded.poolSet.pools.find((each) => each.name === options.pool);
  if (pool === undefined) {
    const names = loaded.poolSet.pools.map((each) => each.name).join(", ") || "none";
    throw new InputError([
      `--pool: the cluster has no pool ${JSON.stringify(options.pool)} (its pools: ${names})`,
    ]);
  }
  // What check --cluster reads of the lifecycle: reservations, retentions, pending claims.
  const lifecycleWarnings: string[] = [];
  const lifecycle = lifecycleOf(loaded.existingObjects, Date.now(), lifecycleWarnings);
  for (const warning of lifecycleWarnings) io.stderr(`lb-ip-guard reserve: warning: ${warning}\n`);
  const reservations = ReservationIndex.from(lifecycle.reservations);
  const usage = UsageIndex.from(
    loaded.existingObjects.flatMap((manifest) => {
      const service = asService(manifest);
      return service === undefined
        ? []
        : usageEntriesOf(service, loaded.policy, refOf(service, manifest));
    }),
  );
  for (const claim of lifecycle.claims)
    usage.set(`claim ${claim.name}`, claim.holder, [claim.address]);
  const family = pool.ranges[0]?.family ?? "IPv4";
  const free = firstFreeInPool(pool, family, usage, undefined, {
    sets: (each) => [lifecycle.retained.values(each), reservations.values(each)],
  });
  return free === undefined
    ? {
        refused: `PoolExhausted: pool "${pool.name}" has no free ${family} address that is not reserved, retained or claimed`,
      }
    : formatAddress(free);
}
