// The differential test: MetalLB itself is the judge of lb-ip-guard's decisions. Generated pools
// and Services (metallb-scenarios.ts) go, one Service at a time, to `lb-ip-guard check --cluster`
// and to the real MetalLB controller alone (no webhook), on a real kube-apiserver:
// - a Service that check admits is applied as check --assign writes it, and MetalLB must serve
//   it exactly the addresses check named;
// - a Service that check refuses is applied as its user wrote it (an auto-assign one as the
//   LoadBalancer it would have been), and MetalLB must leave it <pending> (AllocationFailed, or
//   the API server refuses it first); then it is deleted, since the webhook would never have let
//   it in. Refusals ADR 0009 lists as intended (MetalLB serves what we refuse) are counted apart.
// The release is detected by check from a controller Deployment object, as on a real cluster.
//
// LB_IP_GUARD_ORACLE_SCENARIOS (default 10 per release) and LB_IP_GUARD_ORACLE_SEED reproduce or
// lengthen a run (scripts/metallb-oracle-soak.sh); the seed is printed, and named on failure.

import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import fc from "fast-check";
import { stringify } from "yaml";
import { metallbAssets } from "../../scripts/metallb-assets.ts";
import { runCheck } from "../../src/cli/check/command.ts";
import {
  type Allocation,
  type ControlPlane,
  DUAL_STACK_SERVICE_RANGE,
  describeE2E,
  type MetalLBProcess,
  startControlPlane,
  waitForAllocation,
} from "./harness.ts";
import {
  type GenService,
  type MetalLBRelease,
  poolManifests,
  type Scenario,
  scenarioArbitrary,
  serviceManifest,
} from "./metallb-scenarios.ts";

const NAMESPACE = "oracle";
const SCENARIOS = Number(process.env.LB_IP_GUARD_ORACLE_SCENARIOS ?? 10);
const SEED = Number(process.env.LB_IP_GUARD_ORACLE_SEED ?? Math.floor(Math.random() * 2 ** 31));
const RELEASES: readonly MetalLBRelease[] = ["v0.11.0", "v0.16.2"];

interface CheckResult {
  decision: "allowed" | "assigned" | "denied";
  ips: string[];
  reason: string | null;
  message: string;
}

/** One Service compared: what check decided, what MetalLB did, and whether they agree. */
interface Comparison {
  scenario: number;
  service: GenService;
  check: CheckResult;
  metallb: Allocation | { outcome: "refused by the API server"; message: string };
  verdict: "agree" | "intended" | "DISAGREE";
}

process.stderr.write(`metallb-oracle: seed ${SEED}, ${SCENARIOS} scenarios per release\n`);

for (const release of RELEASES) {
  await describeE2E(`MetalLB ${release} judges check`, { metallb: [release] }, () => {
    let cp: ControlPlane | undefined;
    let metallb: MetalLBProcess | undefined;
    before(async () => {
      const { crdDir } = await metallbAssets(release);
      cp = await startControlPlane({
        serviceClusterIPRange: DUAL_STACK_SERVICE_RANGE,
        ...(crdDir !== undefined && { crds: [crdDir] }),
      });
      await cp.kubectl(["apply", "-f", "-"], {
        stdin: JSON.stringify({
          apiVersion: "v1",
          kind: "List",
          items: [
            { apiVersion: "v1", kind: "Namespace", metadata: { name: "metallb-system" } },
            { apiVersion: "v1", kind: "Namespace", metadata: { name: NAMESPACE } },
            controllerDeployment(release),
          ],
        }),
      });
    });
    after(async () => {
      await metallb?.stop();
      await cp?.stop();
    });

    it(`${SCENARIOS} generated scenarios: every Service check admits gets exactly its addresses, every one it refuses stays pending`, async () => {
      assert.ok(cp);
      const plane = cp;
      const scenarios = fc.sample(scenarioArbitrary(release, NAMESPACE), {
        seed: SEED,
        numRuns: SCENARIOS,
      });
      const compared: Comparison[] = [];
      for (const [index, scenario] of scenarios.entries()) {
        await metallb?.stop();
        await reset(plane, release, scenario);
        metallb = await plane.startMetalLB({ version: release });
        for (const service of scenario.services) {
          compared.push(await compare(plane, release, index, service));
        }
      }
      const intended = compared.filter((c) => c.verdict === "intended");
      const wrong = compared.filter((c) => c.verdict === "DISAGREE");
      process.stderr.write(summary(release, compared));
      assert.deepEqual(
        wrong.map(describe),
        [],
        `check and MetalLB ${release} disagree (seed ${SEED}; rerun with LB_IP_GUARD_ORACLE_SEED=${SEED})`,
      );
      // The scenarios must reach both sides of the judgement, or the test proves little.
      assert.ok(
        compared.some((c) => c.check.decision !== "denied"),
        "nothing was admitted",
      );
      assert.ok(
        compared.some((c) => c.check.decision === "denied" && c.verdict === "agree"),
        "nothing was refused",
      );
      assert.ok(intended.length < compared.length / 2, "intended differences dominate");
    });
  });
}

/** Only an object: no controller-manager runs it. check --cluster reads the release off it. */
function controllerDeployment(release: MetalLBRelease): object {
  const labels = { app: "metallb", component: "controller" };
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: "controller", namespace: "metallb-system", labels },
    spec: {
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: {
          containers: [{ name: "controller", image: `quay.io/metallb/controller:${release}` }],
        },
      },
    },
  };
}

/** No Services left, then the scenario's pools (MetalLB is stopped: it reads them at start). */
async function reset(cp: ControlPlane, release: MetalLBRelease, scenario: Scenario): Promise<void> {
  await cp.kubectl(["delete", "services", "--all", "-n", NAMESPACE, "--wait=true"]);
  if (release !== "v0.11.0") {
    await cp.kubectl(["delete", "ipaddresspools", "--all", "-n", "metallb-system", "--wait=true"]);
  }
  await cp.kubectl(["apply", "-f", "-"], {
    stdin: JSON.stringify({
      apiVersion: "v1",
      kind: "List",
      items: poolManifests(release, scenario.pools),
    }),
  });
}

async function compare(
  cp: ControlPlane,
  release: MetalLBRelease,
  scenario: number,
  service: GenService,
): Promise<Comparison> {
  const manifest = stringify(serviceManifest(service, NAMESPACE));
  const check = await checkService(cp, manifest);
  if (check.decision === "denied") {
    const written = stringify(serviceManifest(service, NAMESPACE, true));
    const applied = await cp.kubectl(["apply", "-f", "-"], { stdin: written, allowFailure: true });
    const metallb: Comparison["metallb"] =
      applied.code !== 0
        ? { outcome: "refused by the API server", message: applied.stderr.trim() }
        : await waitForAllocation(cp, NAMESPACE, service.name);
    if (applied.code === 0) {
      await cp.kubectl(["delete", "service", service.name, "-n", NAMESPACE, "--wait=true"]);
      // MetalLB frees what it served on the delete event; give it that moment.
      if (metallb.outcome === "assigned") await new Promise((resolve) => setTimeout(resolve, 500));
    }
    const verdict =
      metallb.outcome !== "assigned"
        ? "agree"
        : intendedDifference(release, check, service)
          ? "intended"
          : "DISAGREE";
    return { scenario, service, check, metallb, verdict };
  }
  const assigned = await runCheckCli(cp, ["--assign"], manifest);
  assert.equal(assigned.code, 0, assigned.stderr);
  await cp.kubectl(["apply", "-f", "-"], { stdin: assigned.stdout });
  const metallb = await waitForAllocation(cp, NAMESPACE, service.name);
  const same =
    metallb.outcome === "assigned" &&
    [...metallb.ips].sort().join() === [...check.ips].sort().join();
  return { scenario, service, check, metallb, verdict: same ? "agree" : "DISAGREE" };
}

/**
 * ADR 0009's intended differences that generated Services reach: a key the release ignores, and
 * a requested address with a pool annotation that does not fit it (another pool, or none of
 * that name), which MetalLB before v0.13.10 serves, ignoring the annotation.
 */
function intendedDifference(
  release: MetalLBRelease,
  check: CheckResult,
  service: GenService,
): boolean {
  if (check.reason === "IgnoredAnnotation") return true;
  const contradictory = check.reason === "PoolMismatch" || check.reason === "PoolNotFound";
  return (
    release === "v0.11.0" &&
    contradictory &&
    service.request !== undefined &&
    service.pool !== undefined
  );
}

async function checkService(cp: ControlPlane, manifest: string): Promise<CheckResult> {
  const run = await runCheckCli(cp, ["--format", "json"], manifest);
  assert.ok(run.code === 0 || run.code === 1, `check exit ${run.code}: ${run.stderr}`);
  const report = JSON.parse(run.stdout) as { results: CheckResult[] };
  const [result] = report.results;
  assert.ok(result !== undefined, run.stdout);
  return result;
}

/** `lb-ip-guard check --cluster - ...` in this process, on the manifest as stdin. */
async function runCheckCli(
  cp: ControlPlane,
  args: readonly string[],
  manifest: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const code = await runCheck(["--cluster", "--kubeconfig", cp.kubeconfigPath, "-", ...args], {
    stdout: (text) => {
      stdout += text;
    },
    stderr: (text) => {
      stderr += text;
    },
    readStdin: async () => manifest,
  });
  return { code, stdout, stderr };
}

function describe(c: Comparison): string {
  const s = c.service;
  const asked = [
    s.auto ? "auto-assign" : "LoadBalancer",
    s.family,
    s.request ? `${s.request.key}=${s.request.text}` : "no address",
    s.pool ? `${s.pool.key}=${s.pool.name}` : "",
    s.share ? `${s.share.key}=${s.share.value}` : "",
    `ports ${s.ports.join("+")}`,
    `tier ${s.tier}`,
    s.local ? "Local" : "",
  ].filter((part) => part !== "");
  const checked = `${c.check.decision}${c.check.reason ? ` ${c.check.reason}` : ""} [${c.check.ips.join(",")}]`;
  const judged =
    c.metallb.outcome === "assigned"
      ? `served [${c.metallb.ips.join(",")}]`
      : `${c.metallb.outcome}: ${c.metallb.message}`;
  return `scenario ${c.scenario} ${s.name} (${asked.join(", ")}): check ${checked}; MetalLB ${judged}; check said: ${c.check.message}`;
}

function summary(release: MetalLBRelease, compared: readonly Comparison[]): string {
  const count = (pick: (c: Comparison) => boolean) => compared.filter(pick).length;
  const reasons = new Map<string, number>();
  for (const c of compared) {
    const key = c.check.reason ?? c.check.decision;
    reasons.set(key, (reasons.get(key) ?? 0) + 1);
  }
  const byReason = [...reasons].map(([reason, n]) => `${reason} ${n}`).join(", ");
  return `metallb-oracle ${release}: ${compared.length} Services in ${new Set(compared.map((c) => c.scenario)).size} scenarios (seed ${SEED}): ${count((c) => c.verdict === "agree")} agree, ${count((c) => c.verdict === "intended")} intended differences, ${count((c) => c.verdict === "DISAGREE")} disagree; check decisions: ${byReason}\n`;
}
