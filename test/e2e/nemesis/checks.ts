// The nemesis's verdict, with MetalLB's real controller as the judge:
// 1. the history replayed in etcd's order: no two live LoadBalancer Services ever ask for, or are
//    served, one address at once, unless MetalLB's sharing rules let them;
// 2. at the end, once MetalLB has caught up: every live LoadBalancer asks for an address, and
//    MetalLB serves it exactly that;
// 3. no AllocationFailed Event from MetalLB on any Service of the history (every one of them was
//    admitted);
// 4. no claim Lease, after the grace period, for an address no live Service holds (a retention,
//    ADR 0018, holds none: it keeps the address of a Service gone, and is no leak);
// 5. `lb-ip-guard pools --cluster` finds no problem.

import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { allocationFailures, type ControlPlane } from "../harness.ts";
import { claimLeases } from "../replicas.ts";
import { type ServiceVersion, serviceVersion } from "./history.ts";

/** Two Services holding one address at once, first seen at `rv`. */
export interface Overlap {
  address: string;
  /** "asked" (both ask for it), "served" (MetalLB serves it to both), or "asked/served". */
  how: string;
  services: [string, string];
  rv: number;
}

/** Check 1: every overlap the replay meets, once per (address, pair of Services). */
export function replayOverlaps(versions: readonly ServiceVersion[]): Overlap[] {
  const ordered = [...versions].sort((x, y) => x.rv - y.rv);
  const live = new Map<string, ServiceVersion>();
  const found = new Map<string, Overlap>();
  for (const version of ordered) {
    if (version.change === "DELETED") {
      live.delete(version.uid);
      continue;
    }
    live.set(version.uid, version);
    if (version.type !== "LoadBalancer") continue;
    for (const other of live.values()) {
      if (other.uid === version.uid || other.type !== "LoadBalancer" || mayShare(version, other)) {
        continue;
      }
      for (const address of new Set([...version.asked, ...version.served])) {
        const how = [
          version.asked.includes(address) && other.asked.includes(address) && "asked",
          version.served.includes(address) && other.served.includes(address) && "served",
          ((version.asked.includes(address) && other.served.includes(address)) ||
            (version.served.includes(address) && other.asked.includes(address))) &&
            "asked/served",
        ].filter((word) => word !== false);
        if (how.length === 0) continue;
        const pair = [version.name, other.name].sort() as [string, string];
        const key = `${address} ${pair.join(" ")}`;
        if (!found.has(key))
          found.set(key, { address, how: how.join("+"), services: pair, rv: version.rv });
      }
    }
  }
  return [...found.values()];
}

/** MetalLB's checkSharing: the same non-empty key, no (protocol, port) twice, one backend key. */
function mayShare(a: ServiceVersion, b: ServiceVersion): boolean {
  return (
    a.sharingKey !== "" &&
    a.sharingKey === b.sharingKey &&
    !a.ports.some((port) => b.ports.includes(port)) &&
    a.backendKey === b.backendKey
  );
}

/** Check 2's findings, and how MetalLB's catching up went. */
export interface EndState {
  /** LoadBalancer Services live at the end. */
  live: ServiceVersion[];
  /** Live LoadBalancers asking for no address (MetalLB serves them its own pick). */
  askingNothing: string[];
  /** Live LoadBalancers not served exactly what they ask for, once the wait was over. */
  notServedAsAsked: string[];
  /** How long MetalLB took to catch up (or the whole bounded wait). */
  waitedMs: number;
}

/**
 * MetalLB's controller is rate limited on the client side (~2.5 Services/s), so it is given 20 s
 * and 0.5 s for each live LoadBalancer to serve everything that asks for something.
 */
export async function endState(cp: ControlPlane, namespace: string): Promise<EndState> {
  const started = Date.now();
  for (;;) {
    const live = (await liveServices(cp, namespace)).filter((s) => s.type === "LoadBalancer");
    const asking = live.filter((s) => s.asked.length > 0);
    const notServedAsAsked = asking
      .filter((s) => !servedAsAsked(s))
      .map((s) => `${s.name} asks [${s.asked.join(",")}], served [${s.served.join(",")}]`);
    const waitedMs = Date.now() - started;
    if (notServedAsAsked.length === 0 || waitedMs > 20_000 + 500 * live.length) {
      const askingNothing = live
        .filter((s) => s.asked.length === 0)
        .map((s) => `${s.name} served [${s.served.join(",")}]`);
      return { live, askingNothing, notServedAsAsked, waitedMs };
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

function servedAsAsked(service: ServiceVersion): boolean {
  return (
    service.asked.length > 0 &&
    [...service.served].sort().join() === [...service.asked].sort().join()
  );
}

export async function liveServices(cp: ControlPlane, namespace: string): Promise<ServiceVersion[]> {
  const { stdout } = await cp.kubectl(["get", "services", "-n", namespace, "-o", "json"]);
  const { items } = JSON.parse(stdout) as { items: Parameters<typeof serviceVersion>[1][] };
  return items.map((item) => serviceVersion("LISTED", item));
}

/** Check 3: the Services of the history MetalLB failed to allocate for, by uid. */
export interface Failures {
  /** Still live at the end. */
  live: string[];
  /** Of those, served what they ask for at the end (MetalLB's retry got there). */
  liveServedLater: string[];
  /** Deleted before the end. */
  deleted: string[];
  /** Of those, served what they asked for at some point before (MetalLB's retry got there). */
  deletedServedBefore: string[];
  /** One message per Service, for the log. */
  messages: string[];
}

export async function metallbFailures(
  cp: ControlPlane,
  namespace: string,
  versions: readonly ServiceVersion[],
  end: EndState,
): Promise<Failures> {
  const names = new Map(versions.map((v) => [v.uid, v.name]));
  const events = await allocationFailures(cp, namespace);
  const failed = new Map(events.map((e) => [e.uid, `${e.service} (x${e.count}): ${e.message}`]));
  const liveByUid = new Map(end.live.map((s) => [s.uid, s]));
  const live = [...failed.keys()].filter((uid) => liveByUid.has(uid));
  const servedLater = live.filter((uid) => {
    const service = liveByUid.get(uid);
    return service !== undefined && servedAsAsked(service);
  });
  const deleted = [...failed.keys()].filter((uid) => !liveByUid.has(uid));
  const everServed = new Set(versions.filter(servedAsAsked).map((v) => v.uid));
  return {
    live: live.map((uid) => names.get(uid) ?? uid),
    deletedServedBefore: deleted
      .filter((uid) => everServed.has(uid))
      .map((uid) => names.get(uid) ?? uid),
    liveServedLater: servedLater.map((uid) => names.get(uid) ?? uid),
    deleted: deleted.map((uid) => names.get(uid) ?? uid),
    messages: [...failed.values()],
  };
}

/** Check 4: the claim Leases there are, and those whose address no live Service holds. */
export async function claimsAtEnd(
  cp: ControlPlane,
  claimsNamespace: string,
): Promise<{ claims: number; leaked: string[] }> {
  const { stdout } = await cp.kubectl(["get", "services", "-A", "-o", "json"]);
  const { items } = JSON.parse(stdout) as { items: Parameters<typeof serviceVersion>[1][] };
  const held = new Set(
    items.map((item) => serviceVersion("LISTED", item)).flatMap((s) => [...s.asked, ...s.served]),
  );
  const claims = await claimLeases(cp, claimsNamespace);
  const leaked = [...claims]
    .filter(([, claim]) => !held.has(claim.address))
    .map(([name, claim]) => `${name} (for ${claim.holder})`);
  return { claims: claims.size, leaked };
}

const CLI_MAIN = fileURLToPath(new URL("../../../src/cli/main.ts", import.meta.url));

/** Check 5: what `lb-ip-guard pools --cluster --format json` reports: held addresses, problems. */
export function poolsReport(
  kubeconfigPath: string,
  claimsNamespace: string,
  metallbVersion: string,
): Promise<{ held: number; problems: string[] }> {
  const args = [
    CLI_MAIN,
    "pools",
    "--cluster",
    `--kubeconfig=${kubeconfigPath}`,
    `--claims-namespace=${claimsNamespace}`,
    `--metallb-version=${metallbVersion}`,
    "--format=json",
  ];
  return new Promise((resolve, reject) => {
    // Exit 1 means "problems found": the JSON on stdout says which.
    execFile(process.execPath, args, { timeout: 60_000 }, (err, stdout, stderr) => {
      if (err && err.code !== 1) {
        reject(new Error(`lb-ip-guard pools: ${err.message}: ${stderr.trim()}`));
        return;
      }
      const report = JSON.parse(stdout) as {
        summary: { held: number };
        problems: { message: string }[];
      };
      resolve({
        held: report.summary.held,
        problems: report.problems.map((problem) => problem.message),
      });
    });
  });
}
