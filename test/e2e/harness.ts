// A real, throwaway Kubernetes control plane for the end-to-end tests: etcd and kube-apiserver
// on 127.0.0.1, random ports, everything in one mkdtemp folder, and the real kubectl.
// No controller-manager, scheduler or kubelet: admission is what most tests exercise (node.ts
// adds a real node, on a control plane started with `nodeAddress`). MetalLB's
// real controller can run beside it (startMetalLB): it needs no node to assign addresses.
//
// Teardown is guaranteed three ways, because a leftover etcd outlives any test run:
// stop() in the test's `after`; process exit / SIGINT / SIGTERM / SIGHUP handlers; and a
// detached watchdog shell that kills the servers and removes the folder if this process
// disappears without running any handler (SIGKILL, a runner's hard timeout).

import { type ChildProcess, spawn } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { appendFileSync, closeSync, openSync, rmSync } from "node:fs";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { request } from "node:https";
import { connect, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { generate } from "selfsigned";
import { parseAllDocuments, stringify } from "yaml";
import { outputOf } from "../../scripts/child-output.ts";
import { thirdPartyCrds } from "../../scripts/crd-assets.ts";
import { helmBinary } from "../../scripts/helm-assets.ts";
import { AssetsUnavailableError, k8sAssets } from "../../scripts/k8s-assets.ts";
import { type MetalLBVersion, metallbAssets } from "../../scripts/metallb-assets.ts";
import { nodeAssets } from "../../scripts/node-assets.ts";
import {
  generateCa,
  issueServingCertificate,
  type KeyPair,
  type ValidityWindow,
} from "../../src/certs/issue.ts";

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
export const CRD_FILE = join(repoRoot, "deploy/crds/ipaddresspools.metallb.io.yaml");
export const WEBHOOKS_FILE = join(repoRoot, "deploy/webhooks.yaml");

/**
 * A dual-stack --service-cluster-ip-range (IPv4 first, so the `kubernetes` Service keeps
 * 10.0.0.1): IPv6 and dual-stack Services get ClusterIPs. /108 is the widest IPv6 range the
 * apiserver accepts.
 */
export const DUAL_STACK_SERVICE_RANGE = "10.0.0.0/24,fd00:10::/108";

export interface KubectlOptions {
  /**
   * Written to kubectl's standard input (for `-f -`). A promise lets kubectl start now and get
   * its input when the promise resolves: a start line for races, where many processes should
   * send at once rather than as fast as they can be spawned.
   */
  stdin?: string | Promise<string>;
  /** Resolve with a non-zero code instead of throwing. */
  allowFailure?: boolean;
  /** Default 60 s. */
  timeoutMs?: number;
}

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ControlPlane {
  /** The temp folder holding data, certificates, logs; removed by stop(). */
  dir: string;
  /** Admin kubeconfig (user "admin" in group system:masters). */
  kubeconfigPath: string;
  /** https://127.0.0.1:PORT (or the `nodeAddress`) */
  apiserverUrl: string;
  /** The cluster CA (it signed the apiserver's serving cert and the admin client cert). */
  caPem: string;
  /** Its file, for the components of a node (kube-controller-manager's --root-ca-file). */
  caFile: string;
  /**
   * The client certificate the apiserver presents to every webhook (its AdmissionConfiguration),
   * for a test that calls a webhook started with `--client-ca` directly, as the apiserver would.
   */
  webhookClient: { cert: string; key: string };
  /** Runs the real kubectl against this control plane. Throws on a non-zero exit unless allowFailure. */
  kubectl(args: string[], options?: KubectlOptions): Promise<KubectlResult>;
  /**
   * Applies deploy/webhooks.yaml with each clientConfig replaced by `url + path` and caBundle.
   * `url` is a base such as https://127.0.0.1:8443. The apiserver picks the configuration up
   * asynchronously (usually well under a second): probe before relying on it. Without `caPem`
   * the configurations have no caBundle, as shipped: for a webhook that fills it in itself
   * (the certificate bootstrap, test/e2e/certificates.test.ts).
   */
  registerWebhook(url: string, caPem?: string): Promise<void>;
  /**
   * Starts the real `lb-ip-guard serve` (this repository's src/cli/main.ts, under the Node that
   * runs the tests) against this control plane, in its own namespace, with a fresh serving
   * certificate for 127.0.0.1, free ports and its log in the folder. Resolves once /readyz answers 200 (pools and Services
   * synced). It is torn down with the control plane (stop(), exit and signal handlers, the
   * watchdog) if its own stop() is never called. Not registered: see WebhookProcess.register().
   */
  startWebhook(options?: WebhookOptions): Promise<WebhookProcess>;
  /**
   * Applies CRD files or folders (kubectl apply -f each) and waits until every CRD they hold is
   * Established. A CRD of the same name is replaced.
   */
  installCrds(paths: readonly string[]): Promise<void>;
  /**
   * Starts MetalLB's real controller (scripts/metallb-assets.ts builds it) against this control
   * plane; resolves once it has synced and is assigning. v0.16.2 first gets its Pod object and
   * MetalLB's own CRDs (replacing the minimal IPAddressPool CRD, if the control plane installed
   * it). Torn down with the control plane if its own stop() is never called. No webhook is
   * involved unless one is registered.
   */
  startMetalLB(options: MetalLBOptions): Promise<MetalLBProcess>;
  /** Kills etcd, kube-apiserver and any webhook or MetalLB started here, and removes the folder. Safe to call twice. */
  stop(): Promise<void>;
}

export interface ControlPlaneOptions {
  /**
   * kube-apiserver's --service-cluster-ip-range; default 10.0.0.0/24. kubeadm's default,
   * 10.96.0.0/12, holds the fixed ClusterIPs of examples/kubeflow-v0.11/dashboards.yaml.
   */
  serviceClusterIPRange?: string;
  /** More kube-apiserver flags. */
  apiserverArgs?: readonly string[];
  /**
   * For a real node (test/e2e/node.ts): kube-apiserver binds and advertises this address of the
   * node's bridge instead of 127.0.0.1 (in its serving certificate too), so pods reach it
   * through the `kubernetes` Service, whose endpoints it then maintains; and the ServiceAccount
   * admission plugin gives pods their tokens (kube-controller-manager creates the accounts).
   */
  nodeAddress?: string;
  /**
   * CRD files or folders to install instead of CRD_FILE (the minimal IPAddressPool CRD of
   * deploy/crds), e.g. MetalLB's own: `[(await metallbAssets("v0.16.2")).crdDir]`.
   */
  crds?: readonly string[];
}

export interface MetalLBOptions {
  version: MetalLBVersion;
  /** Its namespace (`--namespace`), created if missing; default metallb-system. */
  namespace?: string;
  /** Controller flags added to the version's own (e.g. `--log-level=debug`). */
  args?: readonly string[];
}

/** A process the control plane started beside its servers, and ends with them. */
export interface ServerProcess {
  pid: number;
  /** Its JSON log (stdout and stderr). */
  logFile: string;
  /** The log so far. */
  log(): Promise<string>;
  /** SIGTERM (a graceful shutdown), SIGKILL if it has not exited after 5 s. Safe to call twice. */
  stop(): Promise<void>;
}

export interface MetalLBProcess extends ServerProcess {
  version: MetalLBVersion;
  namespace: string;
}

export interface WebhookOptions {
  /**
   * The webhook's own namespace (`--namespace`), created if missing; default lb-ip-guard, as
   * deploy/ installs it (the webhooks' namespaceSelector excludes it).
   */
  namespace?: string;
  /**
   * Flags added to `serve --kubeconfig … --namespace … --tls-cert … --tls-key … --client-ca …
   * --host 127.0.0.1 --port 0 --metrics-port 0 --peer-port 0 --shutdown-delay 0`.
   */
  args?: string[];
  /**
   * Whether callers must present a client certificate signed by the control plane's CA (the
   * apiserver presents one to every webhook): default true; false drops `--client-ca`.
   */
  clientAuth?: boolean;
  /**
   * The serving certificate; default a fresh one. Replicas of one deployment share theirs: the
   * elected allocator and its followers recognise each other by it (ADR 0012).
   */
  certificate?: ServingCertificate;
  /** The checkout whose src/cli/main.ts serves; default this one (a benchmark's baseline). */
  checkout?: string;
}

export interface WebhookProcess extends ServerProcess {
  /** https://127.0.0.1:PORT, the base URL for registerWebhook. */
  url: string;
  /** http://127.0.0.1:PORT/metrics */
  metricsUrl: string;
  /** The CA that signed its serving certificate (the caBundle to register). */
  caPem: string;
  /** Its JSON log records so far (a line still being written reads as an empty record). */
  records(): Promise<Record<string, unknown>[]>;
  /**
   * registerWebhook(url, caPem), then dry-run applies of a probe Service until this server logs
   * a review of it: the apiserver loads webhook configurations asynchronously.
   */
  register(timeoutMs?: number): Promise<void>;
}

export interface ServingCertificate {
  caPem: string;
  certPem: string;
  keyPem: string;
}

/**
 * The suite for tests that need the control plane: `await describeE2E(name, () => { … })`.
 * Where the binaries cannot be had (no Go and no KUBEBUILDER_ASSETS, outside CI) it is one
 * skipped test carrying the reason, so the run counts it as skipped, never as passed. A build
 * error, or anything missing under CI=true, is one failing test with a one-line reason.
 * `describeE2E(name, { metallb: ["v0.16.2"] }, fn)` holds MetalLB's controller to the same rule.
 */
export async function describeE2E(
  name: string,
  ...args: [fn: () => void] | [assets: E2EAssets, fn: () => void]
): Promise<void> {
  const [assets, fn] = args.length === 1 ? [{}, args[0]] : args;
  let skip: string | false;
  try {
    skip = await e2eSkipReason(assets);
  } catch (err) {
    it(name, () => {
      throw err;
    });
    return;
  }
  if (skip) it(name, { skip }, () => {});
  else describe(name, fn);
}

/** What a suite needs beyond etcd, kube-apiserver and kubectl. */
export interface E2EAssets {
  /** MetalLB controller versions (built on first use, like the k8s binaries). */
  metallb?: readonly MetalLBVersion[];
  /** The pinned Helm (scripts/helm.sh, built on first use). */
  helm?: boolean;
  /** The Prometheus Operator's and cert-manager's CRDs (scripts/crd-assets.ts). */
  thirdPartyCrds?: boolean;
  /** A real node's binaries and packages (scripts/node-assets.ts), and root to run them. */
  node?: boolean;
}

/**
 * False when the binaries are there (building them on first use), else the one-line reason
 * they cannot be had here. Throws (one line, no stack) under CI=true or on a build error.
 * `describe(name, { skip: await e2eSkipReason() }, …)` works too, but node:test then counts a
 * skipped suite, not a skipped test: prefer describeE2E.
 */
export async function e2eSkipReason(assets: E2EAssets = {}): Promise<string | false> {
  try {
    await k8sAssets();
    for (const version of assets.metallb ?? []) await metallbAssets(version);
    if (assets.helm) await helmBinary();
    if (assets.thirdPartyCrds) await thirdPartyCrds();
    if (assets.node) {
      // Bridges, cgroups, mounts and iptables: a node needs root.
      if (process.getuid?.() !== 0) throw new AssetsUnavailableError("a node needs root");
      await nodeAssets();
    }
    return false;
  } catch (err) {
    const message = `e2e: ${(err as Error).message.split("\n")[0]}`;
    if (err instanceof AssetsUnavailableError && process.env.CI !== "true") return message;
    const oneLine = new Error(message);
    oneLine.stack = message; // what node prints: the reason, not a stack into the harness
    throw oneLine;
  }
}

// ---------------------------------------------------------------------------------------------
// Emergency teardown for every control plane still running in this process.

interface Live {
  dir: string;
  /** etcd, kube-apiserver, webhooks and MetalLB controllers. */
  children: ChildProcess[];
  /** kubectl runs in flight. */
  kubectls: Set<ChildProcess>;
  watchdog: ChildProcess;
}
const live = new Set<Live>();
let handlersInstalled = false;

/** Each server (and the watchdog) leads its own process group: -pid reaches all it forked. */
function killGroup(child: ChildProcess): void {
  if (child.pid && child.exitCode === null && child.signalCode === null) {
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {}
  }
}

function killNow(l: Live): void {
  live.delete(l);
  for (const child of l.children) killGroup(child);
  for (const child of l.kubectls) child.kill("SIGKILL");
  try {
    rmSync(l.dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
  } catch {
    return; // a process still writing: the watchdog removes the folder once we are gone
  }
  // Only now: if we are killed before this line (a test runner's SIGKILL right after its
  // SIGTERM), the watchdog is still there to finish the job.
  killGroup(l.watchdog);
}

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on("exit", () => {
    for (const l of live) killNow(l);
  });
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    // `on`, not `once`: while a listener is installed, a second signal (a test runner sends
    // SIGTERM to its children when it is itself interrupted) waits for the cleanup instead of
    // killing the process halfway through it.
    const onSignal = () => {
      for (const l of live) killNow(l);
      // Our listener replaced the default "terminate": restore it and re-raise, unless another
      // listener (node:test's own) is there to end the process.
      if (process.listenerCount(signal) === 1) {
        process.off(signal, onSignal);
        process.kill(process.pid, signal);
      }
    };
    process.on(signal, onSignal);
  }
}

// ---------------------------------------------------------------------------------------------

/** Starts etcd and kube-apiserver, waits for /readyz, installs the IPAddressPool CRD (or `crds`). */
export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const assets = await k8sAssets();
  installHandlers();
  const dir = await mkdtemp(join(tmpdir(), "lb-ip-guard-e2e-"));
  // If this process dies without running any handler, the watchdog kills the process groups
  // listed in $2/pgids and removes the folder within a second. stop() ends it last.
  const watchdog = spawn(
    "sh",
    [
      "-c",
      'while kill -0 "$1" 2>/dev/null && [ -d "$2" ]; do sleep 1; done; ' +
        'for pg in $(cat "$2/pgids" 2>/dev/null); do kill -KILL -"$pg" 2>/dev/null; done; rm -rf "$2"',
      "lb-ip-guard-e2e-watchdog",
      String(process.pid),
      dir,
    ],
    { detached: true, stdio: "ignore" },
  );
  watchdog.unref();
  const l: Live = { dir, children: [], kubectls: new Set(), watchdog };
  live.add(l);

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      // The data is thrown away, so nothing needs a graceful shutdown: SIGKILL, then wait for
      // the exits so the folder is not removed under a still-writing etcd.
      const exits = l.children.map((c) =>
        c.exitCode !== null || c.signalCode !== null
          ? Promise.resolve()
          : new Promise<void>((resolve) => c.once("exit", () => resolve())),
      );
      for (const c of l.children) killGroup(c);
      await Promise.all(exits);
      killNow(l); // the folder, then the watchdog
    })();
    return stopped;
  };

  try {
    const address = options.nodeAddress ?? "127.0.0.1";
    const serviceRange = options.serviceClusterIPRange ?? "10.0.0.0/24";
    const pki = await writeCertificates(dir, address, kubernetesServiceIP(serviceRange));
    const [etcdPort, peerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    const apiserverUrl = `https://${address}:${apiPort}`;

    const etcd = startServer(l, join(assets, "etcd"), "etcd", [
      "--name=default",
      `--data-dir=${join(dir, "etcd-data")}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-cluster=default=http://127.0.0.1:${peerPort}`,
      "--unsafe-no-fsync", // a test cluster: speed over durability
      "--log-level=warn",
    ]);
    await waitFor("etcd /health", etcd, join(dir, "etcd.log"), async () => {
      const res = await fetch(`${etcdUrl}/health`);
      return res.ok;
    });

    const apiserver = startServer(l, join(assets, "kube-apiserver"), "kube-apiserver", [
      `--etcd-servers=${etcdUrl}`,
      `--bind-address=${address}`,
      `--advertise-address=${address}`,
      `--secure-port=${apiPort}`,
      `--cert-dir=${join(dir, "apiserver-certs")}`,
      `--tls-cert-file=${pki.servingCert}`,
      `--tls-private-key-file=${pki.servingKey}`,
      `--client-ca-file=${pki.ca}`,
      "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
      `--service-account-key-file=${pki.saPublic}`,
      `--service-account-signing-key-file=${pki.saPrivate}`,
      "--authorization-mode=RBAC",
      `--service-cluster-ip-range=${serviceRange}`,
      ...(options.nodeAddress === undefined
        ? [
            // The endpoint reconciler refuses a loopback advertise address, and without a
            // kubelet nothing needs the `kubernetes` Service's endpoints.
            "--endpoint-reconciler-type=none",
            // No controller-manager runs, so nothing would create the ServiceAccounts it expects.
            "--disable-admission-plugins=ServiceAccount",
          ]
        : // The node's name resolves nowhere: logs and stats go to its address.
          ["--kubelet-preferred-address-types=InternalIP"]),
      `--admission-control-config-file=${pki.admissionConfig}`,
      "--profiling=false",
      ...(options.apiserverArgs ?? []),
    ]);
    const tls = { ca: pki.caPem, cert: pki.adminCertPem, key: pki.adminKeyPem };
    const apiserverLog = join(dir, "kube-apiserver.log");
    await waitFor("kube-apiserver /readyz", apiserver, apiserverLog, () =>
      httpsOk(`${apiserverUrl}/readyz`, tls),
    );

    const kubeconfigPath = join(dir, "kubeconfig");
    await writeFile(kubeconfigPath, kubeconfig(apiserverUrl, pki));

    const kubectl = (args: string[], options: KubectlOptions = {}) =>
      runKubectl(l, join(assets, "kubectl"), kubeconfigPath, args, options);

    const installCrds = async (paths: readonly string[]) => {
      const names: string[] = [];
      for (const path of paths) {
        const applied = await kubectl(["apply", "-f", path, "-o", "name"]);
        names.push(...applied.stdout.split("\n").filter((line) => line.trim() !== ""));
      }
      // Not `kubectl wait`: it errors, rather than waits, while a CRD has no status yet.
      await waitFor(`CRDs ${paths.join(", ")}`, apiserver, apiserverLog, async () => {
        type Crd = { status?: { conditions?: { type: string; status: string }[] } };
        const got = JSON.parse((await kubectl(["get", ...names, "-o", "json"])).stdout) as
          | Crd
          | { items: Crd[] };
        // One name gets the object, several a List.
        return ("items" in got ? got.items : [got]).every((crd) =>
          crd.status?.conditions?.some((c) => c.type === "Established" && c.status === "True"),
        );
      });
    };
    await installCrds(options.crds ?? [CRD_FILE]);

    const registerWebhook = async (url: string, caPem?: string) => {
      const manifests = await webhookManifests(url, caPem);
      await kubectl(["apply", "-f", "-"], { stdin: JSON.stringify(manifests) });
    };
    return {
      dir,
      kubeconfigPath,
      apiserverUrl,
      caPem: pki.caPem,
      caFile: pki.ca,
      webhookClient: { cert: pki.webhookClientCertPem, key: pki.webhookClientKeyPem },
      kubectl,
      registerWebhook,
      startWebhook: (webhookOptions = {}) =>
        startWebhook(l, kubeconfigPath, kubectl, registerWebhook, pki, webhookOptions),
      installCrds,
      startMetalLB: (metallbOptions) =>
        startMetalLB(l, kubeconfigPath, kubectl, installCrds, metallbOptions),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

const CLI_MAIN = join(repoRoot, "src/cli/main.ts");
let webhookCount = 0;

async function startWebhook(
  l: Live,
  kubeconfigPath: string,
  kubectl: ControlPlane["kubectl"],
  registerWebhook: ControlPlane["registerWebhook"],
  pki: Pki,
  options: WebhookOptions,
): Promise<WebhookProcess> {
  const name = `webhook-${++webhookCount}`;
  const tls = options.certificate ?? (await generateServingCertificate());
  const certFile = join(l.dir, `${name}.crt`);
  const keyFile = join(l.dir, `${name}.key`);
  await writeFile(certFile, tls.certPem, { mode: 0o600 });
  await writeFile(keyFile, tls.keyPem, { mode: 0o600 });
  const namespace = options.namespace ?? "lb-ip-guard";
  await kubectl(["apply", "-f", "-"], {
    stdin: JSON.stringify({ apiVersion: "v1", kind: "Namespace", metadata: { name: namespace } }),
  });
  const logFile = join(l.dir, `${name}.log`);
  const child = startServer(l, process.execPath, name, [
    options.checkout === undefined ? CLI_MAIN : join(options.checkout, "src/cli/main.ts"),
    "serve",
    `--kubeconfig=${kubeconfigPath}`,
    `--namespace=${namespace}`,
    `--tls-cert=${certFile}`,
    `--tls-key=${keyFile}`,
    "--host=127.0.0.1",
    "--port=0",
    "--metrics-port=0",
    "--peer-port=0",
    "--shutdown-delay=0",
    // Callers must present the apiserver's webhook client certificate (see writeCertificates).
    ...(options.clientAuth === false ? [] : [`--client-ca=${pki.ca}`]),
    ...(options.args ?? []),
  ]);
  const stop = gracefulStop(child);
  const log = () => readFile(logFile, "utf8").catch(() => "");
  const records = async (): Promise<Record<string, unknown>[]> =>
    (await log())
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => {
        try {
          return JSON.parse(line) as Record<string, unknown>;
        } catch {
          return {}; // a line still being written
        }
      });

  try {
    // `--port 0`: the startup record names the port it got.
    let port = 0;
    let metricsPort = 0;
    await waitFor(`lb-ip-guard serve (${name})`, child, logFile, async () => {
      const serving = (await records()).find(
        (r) => typeof r.port === "number" && typeof r.metricsPort === "number",
      );
      if (serving === undefined) return false;
      port = serving.port as number;
      metricsPort = serving.metricsPort as number;
      return true;
    });
    const url = `https://127.0.0.1:${port}`;
    await waitFor(`lb-ip-guard serve (${name}) /readyz`, child, logFile, () =>
      httpsOk(`${url}/readyz`, {
        ca: tls.caPem,
        cert: pki.webhookClientCertPem,
        key: pki.webhookClientKeyPem,
      }),
    );
    const register = async (timeoutMs = 30_000) => {
      await registerWebhook(url, tls.caPem);
      const probe = JSON.stringify({
        apiVersion: "v1",
        kind: "Service",
        metadata: { name: "lb-ip-guard-probe", namespace: "default" },
        spec: { type: "LoadBalancer", ports: [{ port: 80 }] },
      });
      const seen = async () =>
        (await records()).some(
          (r) => r.msg === "admission review" && r.name === "lb-ip-guard-probe",
        );
      await waitFor(
        `the apiserver calling lb-ip-guard serve (${name})`,
        child,
        logFile,
        async () => {
          if (await seen()) return true;
          await kubectl(["apply", "--dry-run=server", "-f", "-"], { stdin: probe });
          return seen();
        },
        timeoutMs,
      );
    };
    return {
      url,
      metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
      caPem: tls.caPem,
      pid: child.pid ?? 0,
      logFile,
      log,
      records,
      register,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** How each MetalLB version runs out of cluster, and the log line that says it is assigning. */
const METALLB_ARGS: Record<MetalLBVersion, (kubeconfig: string, namespace: string) => string[]> = {
  // Reads the ConfigMap <namespace>/config. --port 0: a free port for its metrics.
  "v0.11.0": (kubeconfig, namespace) => [
    `--kubeconfig=${kubeconfig}`,
    `--namespace=${namespace}`,
    "--port=0",
  ],
  // --kubeconfig is controller-runtime's flag (KUBECONFIG works too). It reads its own Pod
  // (--pod-name) for owner references; the webhook server would need certificates and a Service
  // in front. --port 0 turns its metrics off; --health-probe-port 0 takes a free port.
  "v0.16.2": (kubeconfig, namespace) => [
    `--kubeconfig=${kubeconfig}`,
    `--namespace=${namespace}`,
    `--pod-name=${METALLB_POD}`,
    "--webhook-mode=disabled",
    "--port=0",
    "--health-probe-port=0",
  ],
};
const METALLB_READY: Record<MetalLBVersion, RegExp> = {
  "v0.11.0": /"event":"stateSynced"/,
  "v0.16.2": /"end reconcile":"metallbreload\/reload"/,
};
const METALLB_POD = "controller";
let metallbCount = 0;

async function startMetalLB(
  l: Live,
  kubeconfigPath: string,
  kubectl: ControlPlane["kubectl"],
  installCrds: ControlPlane["installCrds"],
  options: MetalLBOptions,
): Promise<MetalLBProcess> {
  const { version } = options;
  const namespace = options.namespace ?? "metallb-system";
  const assets = await metallbAssets(version);
  const objects: object[] = [
    { apiVersion: "v1", kind: "Namespace", metadata: { name: namespace } },
  ];
  if (assets.crdDir !== undefined) {
    // Only an object: without a scheduler and a kubelet it stays Pending and never runs.
    objects.push({
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name: METALLB_POD,
        namespace,
        labels: { app: "metallb", component: "controller" },
      },
      spec: {
        containers: [{ name: "controller", image: `quay.io/metallb/controller:${version}` }],
      },
    });
    await installCrds([assets.crdDir]);
  }
  await kubectl(["apply", "-f", "-"], {
    stdin: JSON.stringify({ apiVersion: "v1", kind: "List", items: objects }),
  });

  const name = `metallb-${version}-${++metallbCount}`;
  const logFile = join(l.dir, `${name}.log`);
  const args = [...METALLB_ARGS[version](kubeconfigPath, namespace), ...(options.args ?? [])];
  const child = startServer(l, assets.controller, name, args);
  const stop = gracefulStop(child);
  const log = () => readFile(logFile, "utf8").catch(() => "");
  try {
    await waitFor(`MetalLB controller ${version}`, child, logFile, async () =>
      METALLB_READY[version].test(await log()),
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { version, namespace, pid: child.pid ?? 0, logFile, log, stop };
}

/** An Event MetalLB's controller recorded about a Service. */
export interface MetalLBEvent {
  namespace: string;
  /** The Service's name. */
  service: string;
  /** The Service's uid: a Service deleted and created again under its name has another. */
  uid: string;
  /** IPAllocated, AllocationFailed, … */
  reason: string;
  /** Normal or Warning. */
  type: string;
  message: string;
  /** How often the recorder saw it (it folds repeats into one Event). */
  count: number;
}

/** The component MetalLB's controllers (both versions) record Events as. */
const METALLB_COMPONENT = "metallb-controller";

/** MetalLB's Events about Services in `namespace`, or in every namespace; `reason` narrows them. */
export async function metallbEvents(
  cp: ControlPlane,
  options: { namespace?: string; reason?: string } = {},
): Promise<MetalLBEvent[]> {
  const scope = options.namespace === undefined ? ["-A"] : ["-n", options.namespace];
  const selector = ["involvedObject.kind=Service"];
  if (options.reason !== undefined) selector.push(`reason=${options.reason}`);
  const { stdout } = await cp.kubectl([
    "get",
    "events",
    ...scope,
    `--field-selector=${selector.join(",")}`,
    "-o",
    "json",
  ]);
  const { items } = JSON.parse(stdout) as {
    items: {
      involvedObject: { namespace: string; name: string; uid: string };
      source?: { component?: string };
      reportingComponent?: string;
      reason: string;
      type: string;
      message: string;
      count?: number;
    }[];
  };
  return items
    .filter((e) => (e.source?.component || e.reportingComponent) === METALLB_COMPONENT)
    .map((e) => ({
      namespace: e.involvedObject.namespace,
      service: e.involvedObject.name,
      uid: e.involvedObject.uid,
      reason: e.reason,
      type: e.type,
      message: e.message,
      count: e.count ?? 1,
    }));
}

/** MetalLB's AllocationFailed Events in `namespace`, or in every namespace. */
export function allocationFailures(cp: ControlPlane, namespace?: string): Promise<MetalLBEvent[]> {
  return metallbEvents(cp, { namespace, reason: "AllocationFailed" });
}

/** What MetalLB made of a Service: the addresses it wrote to status, or why it wrote none. */
export type Allocation =
  | { outcome: "assigned"; ips: string[]; ms: number }
  | { outcome: "failed"; message: string; ms: number };

/**
 * Waits until the Service has an address in status.loadBalancer.ingress, or MetalLB recorded an
 * AllocationFailed Event for it (this Service, by uid), and says which; `ms` counts from the
 * call. Throws if neither happens within `timeoutMs` (default 15 s).
 */
export async function waitForAllocation(
  cp: ControlPlane,
  namespace: string,
  name: string,
  timeoutMs = 15_000,
): Promise<Allocation> {
  const started = Date.now();
  for (;;) {
    const { stdout } = await cp.kubectl(["get", "service", name, "-n", namespace, "-o", "json"]);
    const service = JSON.parse(stdout) as {
      metadata: { uid: string };
      status?: { loadBalancer?: { ingress?: { ip?: string }[] } };
    };
    const ips = (service.status?.loadBalancer?.ingress ?? []).flatMap((i) => i.ip ?? []);
    if (ips.length > 0) return { outcome: "assigned", ips, ms: Date.now() - started };
    const failed = (await allocationFailures(cp, namespace)).find(
      (e) => e.uid === service.metadata.uid,
    );
    if (failed) return { outcome: "failed", message: failed.message, ms: Date.now() - started };
    if (Date.now() - started > timeoutMs) {
      throw new Error(
        `${namespace}/${name}: neither an ingress address nor an AllocationFailed event after ${timeoutMs} ms`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** SIGTERM to the child's group (a graceful shutdown), SIGKILL after 5 s; safe to call twice. */
function gracefulStop(child: ChildProcess): () => Promise<void> {
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once("exit", () => resolve());
  });
  let stopped: Promise<void> | undefined;
  return () => {
    stopped ??= (async () => {
      if (child.pid && child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(-child.pid, "SIGTERM");
        } catch {}
        const timer = setTimeout(() => killGroup(child), 5000);
        await exited;
        clearTimeout(timer);
      }
    })();
    return stopped;
  };
}

const spawnErrors = new WeakMap<ChildProcess, Error>();

function startServer(l: Live, binary: string, name: string, args: string[]): ChildProcess {
  const log = openSync(join(l.dir, `${name}.log`), "a");
  const { KUBECONFIG: _ignored, ...env } = process.env;
  // detached: a process group of its own, so a terminal's Ctrl-C reaches our handlers (which
  // kill it) rather than racing them, and so the whole group can be killed at once.
  const child = spawn(binary, args, {
    cwd: l.dir,
    detached: true,
    stdio: ["ignore", log, log],
    env,
  });
  closeSync(log); // the child holds its own copy
  child.on("error", (err) => spawnErrors.set(child, err)); // e.g. a binary that cannot run
  l.children.push(child);
  if (child.pid) appendFileSync(join(l.dir, "pgids"), `${child.pid}\n`); // for the watchdog
  return child;
}

async function waitFor(
  what: string,
  child: ChildProcess,
  logFile: string,
  probe: () => Promise<boolean>,
  timeoutMs = 90_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const spawnError = spawnErrors.get(child);
    if (spawnError) throw new Error(`${what}: could not start: ${spawnError.message}`);
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `${what}: the process exited (${child.exitCode ?? child.signalCode}):\n${await tail(logFile)}`,
      );
    }
    if (await probe().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${what}: not ready after ${timeoutMs / 1000}s:\n${await tail(logFile)}`);
}

async function tail(file: string): Promise<string> {
  const text = await readFile(file, "utf8").catch(() => "");
  return text.trim().split("\n").slice(-15).join("\n");
}

function httpsOk(url: string, tls: { ca: string; cert?: string; key?: string }): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ...tls, timeout: 5000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.end();
  });
}

/**
 * The sum of the samples on the lines of a /metrics page that match `pattern` (0 when the page
 * cannot be read).
 */
export async function metricSum(metricsUrl: string, pattern: RegExp): Promise<number> {
  const text = await fetch(metricsUrl)
    .then((response) => response.text())
    .catch(() => "");
  let total = 0;
  for (const line of text.split("\n")) {
    if (pattern.test(line)) total += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return total;
}

/** A TCP proxy in front of webhook replicas, as a Service in front of pods: one URL, TLS untouched. */
export interface RoundRobinProxy {
  /** https://127.0.0.1:PORT */
  url: string;
  /** Connections handed to each backend, by its index in `ports`. */
  served: number[];
  /** Indexes of backends new connections avoid (a replica taken down on purpose). */
  down: Set<number>;
  close(): Promise<void>;
}

/**
 * Each new connection goes to the next backend port still up (and to another if connecting
 * fails); the bytes pass through untouched, so the caBundle must hold every backend's CA.
 */
export async function startRoundRobinProxy(ports: readonly number[]): Promise<RoundRobinProxy> {
  const served = ports.map(() => 0);
  const down = new Set<number>();
  const sockets = new Set<Socket>();
  let next = 0;
  const server: Server = createServer((client) => {
    // Small writes go out at once both ways, as they would without the proxy.
    client.setNoDelay(true);
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    client.on("error", () => client.destroy());
    const tryBackend = (left: number) => {
      const candidates = ports.map((_, i) => (next + i) % ports.length).filter((i) => !down.has(i));
      const index = candidates[0];
      if (index === undefined || left === 0) {
        client.destroy();
        return;
      }
      next = index + 1;
      const backend = connect(ports[index] as number, "127.0.0.1");
      backend.setNoDelay(true);
      sockets.add(backend);
      backend.on("close", () => sockets.delete(backend));
      backend.once("connect", () => {
        served[index] = (served[index] ?? 0) + 1;
        client.pipe(backend).pipe(client);
        backend.on("error", () => client.destroy());
        backend.on("close", () => client.destroy());
        client.on("close", () => backend.destroy());
      });
      backend.once("error", () => {
        if (backend.connecting) tryBackend(left - 1);
      });
    };
    tryBackend(ports.length);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  return {
    url: `https://127.0.0.1:${port}`,
    served,
    down,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A port free right now on 127.0.0.1 (bound to 0, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function runKubectl(
  l: Live,
  binary: string,
  kubeconfigPath: string,
  args: string[],
  { stdin, allowFailure = false, timeoutMs = 60_000 }: KubectlOptions,
): Promise<KubectlResult> {
  const { KUBECONFIG: _ignored, ...env } = process.env;
  const child = spawn(binary, [`--kubeconfig=${kubeconfigPath}`, ...args], {
    // The discovery cache goes into the temp folder, never into ~/.kube.
    env: { ...env, KUBECACHEDIR: join(l.dir, "kube-cache") },
    stdio: ["pipe", "pipe", "pipe"],
    timeout: timeoutMs,
    killSignal: "SIGKILL",
  });
  l.kubectls.add(child);
  const output = outputOf(child).finally(() => l.kubectls.delete(child));
  child.stdin.on("error", () => {}); // EPIPE when kubectl exits early: its exit code says why
  Promise.resolve(stdin ?? "").then(
    (text) => child.stdin.end(text),
    () => child.stdin.end(),
  );
  const { code, signal, stdout, stderr } = await output;
  const result = { code: code ?? 128, stdout, stderr };
  if (result.code !== 0 && !allowFailure) {
    const why = signal ? `killed by ${signal}` : `exit ${code}`;
    throw new Error(`kubectl ${args.join(" ")}: ${why}: ${stderr.trim()}`);
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// Certificates, keys, kubeconfig.

/** Test certificates live a week; the harness's clusters live minutes. */
function testWindow(): ValidityWindow {
  const notBefore = new Date(Date.now() - 60_000);
  return { notBefore, notAfter: new Date(notBefore.getTime() + 7 * 24 * 3600 * 1000) };
}

function newCa(commonName: string): Promise<KeyPair> {
  return generateCa(commonName, testWindow());
}

function serverCert(ca: KeyPair, dns: string[], ips: string[]): Promise<KeyPair> {
  return issueServingCertificate(ca, { dns, ips }, testWindow());
}

/** A fresh CA and a serving certificate for 127.0.0.1/::1/localhost, e.g. for a webhook server. */
export async function generateServingCertificate(): Promise<ServingCertificate> {
  const ca = await newCa("lb-ip-guard-e2e-webhook-ca");
  const leaf = await serverCert(ca, ["localhost"], ["127.0.0.1", "::1"]);
  return { caPem: ca.cert, certPem: leaf.cert, keyPem: leaf.key };
}

interface Pki {
  ca: string;
  caPem: string;
  servingCert: string;
  servingKey: string;
  saPublic: string;
  saPrivate: string;
  adminCertPem: string;
  adminKeyPem: string;
  /** What the apiserver presents to every webhook (its AdmissionConfiguration), signed by `ca`. */
  admissionConfig: string;
  webhookClientCertPem: string;
  webhookClientKeyPem: string;
}

/**
 * The `kubernetes` Service's ClusterIP: the first address of the (first, IPv4) service range,
 * which pods dial and the serving certificate must name.
 */
export function kubernetesServiceIP(serviceRange: string): string {
  const [network = "", bits = "32"] = (serviceRange.split(",")[0] ?? "").split("/");
  const octets = network.split(".").map(Number);
  const mask = Number(bits) === 0 ? 0 : (~0 << (32 - Number(bits))) >>> 0;
  const value = ((octets.reduce((n, o) => n * 256 + o, 0) & mask) >>> 0) + 1;
  return [24, 16, 8, 0].map((shift) => (value >>> shift) & 255).join(".");
}

async function writeCertificates(dir: string, address: string, serviceIP: string): Promise<Pki> {
  const ca = await newCa("lb-ip-guard-e2e-ca");
  const serving = await serverCert(
    ca,
    ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"],
    [...new Set(["127.0.0.1", address, serviceIP])],
  );
  const clientCertificate = (subject: { name: string; value: string }[]) =>
    generate(subject, {
      keyType: "ec",
      algorithm: "sha256",
      ca,
      extensions: [
        { name: "basicConstraints", cA: false },
        { name: "keyUsage", digitalSignature: true, critical: true },
        { name: "extKeyUsage", clientAuth: true },
      ],
    });
  // The apiserver maps the client certificate's CN to the user and O to groups.
  const admin = await clientCertificate([
    { name: "commonName", value: "admin" },
    { name: "organizationName", value: "system:masters" },
  ]);
  // The client certificate the apiserver presents to webhooks, as Kubernetes documents webhook
  // authentication: an AdmissionConfiguration naming a kubeconfig whose user "*" holds it.
  const webhookClient = await clientCertificate([
    { name: "commonName", value: "kube-apiserver-webhooks" },
  ]);
  const b64 = (text: string) => Buffer.from(text).toString("base64");
  const webhookKubeconfig = stringify({
    apiVersion: "v1",
    kind: "Config",
    users: [
      {
        name: "*",
        user: {
          "client-certificate-data": b64(webhookClient.cert),
          "client-key-data": b64(webhookClient.private),
        },
      },
    ],
  });
  const admissionConfig = stringify({
    apiVersion: "apiserver.config.k8s.io/v1",
    kind: "AdmissionConfiguration",
    plugins: ["ValidatingAdmissionWebhook", "MutatingAdmissionWebhook"].map((name) => ({
      name,
      configuration: {
        apiVersion: "apiserver.config.k8s.io/v1",
        kind: "WebhookAdmissionConfiguration",
        kubeConfigFile: join(dir, "webhook-kubeconfig.yaml"),
      },
    })),
  });
  // Service-account token signing keys (the apiserver refuses to start without them).
  const sa = generateKeyPairSync("ec", {
    namedCurve: "P-256",
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "sec1", format: "pem" },
  });
  const files: Record<string, string> = {
    "ca.crt": ca.cert,
    "apiserver.crt": serving.cert,
    "apiserver.key": serving.key,
    "sa.pub": sa.publicKey,
    "sa.key": sa.privateKey,
    "webhook-kubeconfig.yaml": webhookKubeconfig,
    "admission-config.yaml": admissionConfig,
  };
  for (const [name, pem] of Object.entries(files)) {
    await writeFile(join(dir, name), pem, { mode: 0o600 });
  }
  return {
    ca: join(dir, "ca.crt"),
    caPem: ca.cert,
    servingCert: join(dir, "apiserver.crt"),
    servingKey: join(dir, "apiserver.key"),
    saPublic: join(dir, "sa.pub"),
    saPrivate: join(dir, "sa.key"),
    adminCertPem: admin.cert,
    adminKeyPem: admin.private,
    admissionConfig: join(dir, "admission-config.yaml"),
    webhookClientCertPem: webhookClient.cert,
    webhookClientKeyPem: webhookClient.private,
  };
}

function kubeconfig(server: string, pki: Pki): string {
  const b64 = (s: string) => Buffer.from(s).toString("base64");
  return stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "e2e", cluster: { server, "certificate-authority-data": b64(pki.caPem) } }],
    users: [
      {
        name: "admin",
        user: {
          "client-certificate-data": b64(pki.adminCertPem),
          "client-key-data": b64(pki.adminKeyPem),
        },
      },
    ],
    contexts: [{ name: "e2e", context: { cluster: "e2e", user: "admin" } }],
    "current-context": "e2e",
  });
}

// ---------------------------------------------------------------------------------------------
// Webhook registration from the shipped manifests.

interface WebhookEntry {
  clientConfig?: { service?: { path?: string }; url?: string; caBundle?: string };
}

/**
 * deploy/webhooks.yaml with clientConfig.service swapped for url (+ the service's path) and
 * caBundle; no caBundle without `caPem`.
 */
export async function webhookManifests(baseUrl: string, caPem?: string): Promise<unknown> {
  const docs = parseAllDocuments(await readFile(WEBHOOKS_FILE, "utf8")).map((d) => d.toJS());
  for (const doc of docs as { webhooks?: WebhookEntry[] }[]) {
    for (const hook of doc.webhooks ?? []) {
      const path = hook.clientConfig?.service?.path ?? "/";
      hook.clientConfig = {
        url: `${baseUrl.replace(/\/+$/, "")}${path}`,
        ...(caPem !== undefined && { caBundle: Buffer.from(caPem).toString("base64") }),
      };
    }
  }
  return { apiVersion: "v1", kind: "List", items: docs };
}
