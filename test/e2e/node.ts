// A real node for the e2e control plane: containerd (with runc and the bridge CNI plugin),
// kubelet, kube-proxy, and the kube-controller-manager and kube-scheduler a cluster needs to turn
// a Deployment into running pods. Built by scripts/node-assets.ts; one node per machine at a time
// (a lock), since a bridge, iptables chains and cgroups are the machine's.
//
// The network stays on this machine: the pods' bridge (BRIDGE, POD_CIDR) is made here with the
// node's address on it, kube-apiserver binds that address (not 0.0.0.0), the Service range is
// routed into the bridge (so a ClusterIP not yet rewritten by kube-proxy goes nowhere), and IPv4
// forwarding stays off: pods reach only the node's own addresses and each other. No CNI plugin is
// a gateway or masquerades.
//
// Teardown is one shell script written at start (teardown.sh in the node's folder): stop() runs
// it, and so does a detached watchdog if this process dies without stopping the node. It kills
// the node's processes and everything in its cgroups (containers, shims), removes kube-proxy's
// rules (kube-proxy --cleanup), unmounts everything under the folder (container root
// filesystems, network namespaces, volumes), deletes the bridge, the route and the cgroups,
// restores the kernel settings kubelet changes, and removes the folder.

import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { appendFile, mkdir, mkdtemp, open, readFile, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { outputOf } from "../../scripts/child-output.ts";
import { cacheRoot } from "../../scripts/go-assets.ts";
import { type NodeAssets, nodeAssets, PAUSE_IMAGE } from "../../scripts/node-assets.ts";
import {
  type ControlPlane,
  type ControlPlaneOptions,
  describeE2E,
  freePort,
  kubernetesServiceIP,
  startControlPlane,
} from "./harness.ts";
import { EXAMPLE_METALLB, KUBEADM_SERVICE_RANGE } from "./webhook-fixtures.ts";

export const NODE_NAME = "lb-ip-guard-e2e-node";
const BRIDGE = "lbg-e2e0";
const POD_CIDR = "10.244.0.0/24";
/** The node's address: on the bridge, the pods' gateway, and where kube-apiserver listens. */
export const NODE_ADDRESS = "10.244.0.1";
/**
 * kubeadm's, which holds the fixed ClusterIPs of examples/kubeflow-v0.11/dashboards.yaml
 * (webhook-fixtures.ts).
 */
const SERVICE_RANGE = KUBEADM_SERVICE_RANGE;
/** The cgroup (in every v1 hierarchy) that holds containerd, its shims and every pod. */
const CGROUP = "lb-ip-guard-e2e-node";
const CGROUP_CONTROLLERS = [
  "cpu",
  "cpuacct",
  "cpuset",
  "memory",
  "devices",
  "freezer",
  "blkio",
  "pids",
  "systemd",
] as const;
/** kubelet sets these (its protectKernelDefaults: false); teardown puts them back. */
const KERNEL_TUNABLES = [
  "vm/overcommit_memory",
  "vm/panic_on_oom",
  "kernel/panic",
  "kernel/panic_on_oops",
  "kernel/keys/root_maxkeys",
  "kernel/keys/root_maxbytes",
];
const LOCK = join(cacheRoot(), "node", "running.lock");

export interface Node {
  dir: string;
  /** `ctr -n k8s.io images import` of an OCI archive into the node's containerd. */
  importImage(archive: string): Promise<void>;
  /** Names of the node's images (containerd's k8s.io namespace). */
  images(): Promise<string[]>;
  /** kubelet's /stats/summary through the API server: memory per pod. */
  podMemory(namespace: string): Promise<Map<string, number>>;
  /** Runs teardown.sh: nothing of the node is left. Safe to call twice. */
  stop(): Promise<void>;
}

export interface NodeCluster {
  cp: ControlPlane;
  node: Node;
  /** The node, then the control plane. */
  stop(): Promise<void>;
}

async function sh(script: string, args: readonly string[] = []): Promise<string> {
  const { code, stdout, stderr } = await outputOf(
    spawn("sh", ["-c", script, "sh", ...args], { stdio: ["ignore", "pipe", "pipe"] }),
  );
  if (code !== 0) throw new Error(`sh -c '${script}': exit ${code}: ${stderr.trim()}`);
  return stdout;
}

/** Takes the machine's node lock, or says who holds it. */
async function takeLock(): Promise<() => Promise<void>> {
  await mkdir(join(cacheRoot(), "node"), { recursive: true });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = await open(LOCK, "wx");
      await fd.writeFile(String(process.pid));
      await fd.close();
      return () => unlink(LOCK).catch(() => {});
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const owner = Number((await readFile(LOCK, "utf8").catch(() => "")).trim());
    try {
      if (owner > 0) process.kill(owner, 0);
      throw new Error(
        `another node runs on this machine (pid ${owner}, lock ${LOCK}): one at a time (npm run dev:cluster?)`,
      );
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
      await unlink(LOCK).catch(() => {}); // its owner is gone
    }
  }
  throw new Error(`could not take ${LOCK}`);
}

function teardownScript(dir: string, assets: NodeAssets, lock: string): string {
  // Every hierarchy, not only the controllers kubelet is given: runc also makes the containers'
  // cgroups in the hybrid layout's unified (v2) one.
  const cgroups = `/sys/fs/cgroup/*/${CGROUP}`;
  return `#!/bin/sh
# The node's teardown (test/e2e/node.ts), for stop() and for the watchdog. Every step goes on
# when one fails: what is left must be as little as possible.
dir='${dir}'
# 1. The node's processes (their process groups), then whatever is left in its cgroups
#    (containers and the shims containerd started), until none is.
for pg in $(cat "$dir/pgids" 2>/dev/null); do kill -KILL -"$pg" 2>/dev/null; done
for i in $(seq 50); do
  pids=$(cat $(find ${cgroups} -name cgroup.procs 2>/dev/null) 2>/dev/null)
  [ -z "$pids" ] && break
  kill -KILL $pids 2>/dev/null
  sleep 0.1
done
# 2. kube-proxy's iptables rules, then the KUBE-* chains it leaves (KUBE-FIREWALL, the hint and
#    kubelet's canaries): with one node per machine (the lock) every KUBE-* chain is this node's.
'${join(assets.bin, "kube-proxy")}' --cleanup >/dev/null 2>&1
for cmd in iptables ip6tables; do
  for table in filter nat mangle; do
    $cmd -t $table -S 2>/dev/null | awk '/^-A [A-Z]+ .*-j KUBE-/ && $2 !~ /^KUBE-/ { sub(/^-A/, "-D"); print }' |
      while read -r rule; do eval "$cmd -t $table $rule"; done
    chains=$($cmd -t $table -S 2>/dev/null | awk '/^-N KUBE-/ { print $2 }')
    for chain in $chains; do $cmd -t $table -F "$chain"; done
    for chain in $chains; do $cmd -t $table -X "$chain"; done
  done
done
# 3. Every mount under the folder, deepest first: container root filesystems, the pods' network
#    namespaces (containerd keeps them under its state folder), kubelet's volumes.
for m in $(awk -v d="$dir/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
  umount -l "$m" 2>/dev/null
done
# 4. The bridge (the pods' veths went with their namespaces) and the Service range's route.
ip route del ${SERVICE_RANGE} dev ${BRIDGE} 2>/dev/null
ip link del ${BRIDGE} 2>/dev/null
# 5. The cgroups, deepest first.
for root in ${cgroups}; do
  [ -d "$root" ] && find "$root" -depth -type d -exec rmdir {} \\; 2>/dev/null
done
# 6. The kernel settings kubelet changed, as they were.
while read -r key value; do
  [ -n "$key" ] && echo "$value" > "/proc/sys/$key" 2>/dev/null
done < "$dir/sysctl.saved"
rm -f '${lock}'
rm -rf "$dir"
`;
}

/** The CNI configuration: the bridge made here, addresses from POD_CIDR, no gateway, no NAT. */
function cniConfig(dir: string): string {
  return JSON.stringify({
    cniVersion: "1.0.0",
    name: "lb-ip-guard-e2e",
    plugins: [
      {
        type: "bridge",
        bridge: BRIDGE,
        // The bridge already has NODE_ADDRESS; as a gateway the plugin would also turn on
        // IPv4 forwarding, which would let pods reach beyond this machine.
        isGateway: false,
        ipMasq: false,
        hairpinMode: true,
        ipam: {
          type: "host-local",
          ranges: [[{ subnet: POD_CIDR, gateway: NODE_ADDRESS }]],
          routes: [{ dst: "0.0.0.0/0", gw: NODE_ADDRESS }],
          dataDir: join(dir, "cni-ipam"),
        },
      },
    ],
  });
}

function containerdConfig(dir: string, assets: NodeAssets): string {
  return `version = 3
root = '${join(dir, "containerd/root")}'
state = '${join(dir, "containerd/state")}'
# No NRI socket in /var/run: nothing here uses NRI.
disabled_plugins = ['io.containerd.nri.v1.nri']

[grpc]
  address = '${join(dir, "containerd.sock")}'
[ttrpc]
  address = '${join(dir, "containerd.sock.ttrpc")}'

[plugins.'io.containerd.internal.v1.opt']
  path = '${join(dir, "containerd/opt")}'

[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = '${PAUSE_IMAGE}'

[plugins.'io.containerd.cri.v1.runtime']
  # Under the state folder, so teardown finds every network namespace among the folder's mounts.
  netns_mounts_under_state_dir = true
  # Pods get kubelet's OOM score (down to -998), but lowering one's oom_score_adj needs
  # CAP_SYS_RESOURCE, which this machine's root lacks (runc init: "failed to update
  # /proc/self/oom_score_adj: Permission denied"): no lower than containerd's own.
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = 'runc'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = '${assets.runc}'
        Root = '${join(dir, "runc")}'
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ['${assets.cniBin}']
    conf_dir = '${join(dir, "cni")}'
`;
}

interface Started {
  child: ChildProcess;
  logFile: string;
}

/** Waits for `probe`, failing early (with the log's end) if the process exits. */
async function waitFor(
  what: string,
  started: Started,
  probe: () => Promise<boolean>,
  timeoutMs = 120_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const { child } = started;
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `${what}: exited (${child.exitCode ?? child.signalCode}):\n${await tail(started.logFile)}`,
      );
    }
    if (await probe().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(
    `${what}: not ready after ${timeoutMs / 1000} s:\n${await tail(started.logFile)}`,
  );
}

async function tail(file: string): Promise<string> {
  return (await readFile(file, "utf8").catch(() => "")).trim().split("\n").slice(-20).join("\n");
}

/**
 * What a node left on the machine, one line each: its bridge, route, cgroups, mounts, KUBE-*
 * iptables chains, kernel settings not restored. Empty after stop() (the suite checks).
 */
export async function leftovers(saved: ReadonlyMap<string, string>): Promise<string[]> {
  const found = (
    await sh(
      `ip link show ${BRIDGE} >/dev/null 2>&1 && echo "bridge ${BRIDGE}"
ip route show ${SERVICE_RANGE} | grep -q . && echo "route ${SERVICE_RANGE}"
for d in /sys/fs/cgroup/*/${CGROUP}; do [ -d "$d" ] && echo "cgroup $d"; done
grep -o ' [^ ]*lb-ip-guard-node-[^ ]* ' /proc/self/mountinfo | sed 's/^/mount/'
for cmd in iptables ip6tables; do for t in filter nat mangle; do
  $cmd -t $t -S 2>/dev/null | grep -q KUBE- && echo "$cmd -t $t: KUBE- chains"
done; done; true`,
    )
  )
    .split("\n")
    .filter((line) => line !== "");
  for (const [key, value] of saved) {
    const now = (await readFile(`/proc/sys/${key}`, "utf8")).trim();
    if (now !== value) found.push(`${key} = ${now}, was ${value}`);
  }
  return found;
}

/** The kernel settings kubelet changes, as they are now. */
export async function kernelTunables(): Promise<Map<string, string>> {
  const values = new Map<string, string>();
  for (const key of KERNEL_TUNABLES) {
    values.set(key, (await readFile(`/proc/sys/${key}`, "utf8")).trim());
  }
  return values;
}

/**
 * The suite for tests on a node: `await describeNode(name, () => { … })`, as describeE2E
 * (harness.ts) with the node's binaries, the pinned Helm and MetalLB v0.11.0: outside CI, one
 * skipped test with the reason when they cannot be had here (no Go, not root); under CI=true, or
 * on a build error, one failing test.
 */
export async function describeNode(name: string, fn: () => void): Promise<void> {
  await describeE2E(name, { helm: true, metallb: [EXAMPLE_METALLB], node: true }, fn);
}

/**
 * The control plane on the node's address (harness.ts, `nodeAddress`), then the node: resolves
 * once the Node is Ready and kube-proxy has written the `kubernetes` Service's rules.
 */
export async function startNodeCluster(
  options: Omit<ControlPlaneOptions, "nodeAddress" | "serviceClusterIPRange"> = {},
): Promise<NodeCluster> {
  const assets = await nodeAssets();
  const releaseLock = await takeLock();
  const dir = await mkdtemp(join(tmpdir(), "lb-ip-guard-node-"));
  const teardown = join(dir, "teardown.sh");
  await writeFile(teardown, teardownScript(dir, assets, LOCK), { mode: 0o755 });
  // If this process dies without stopping the node, the watchdog runs the teardown.
  const watchdog = spawn(
    "sh",
    [
      "-c",
      'while kill -0 "$1" 2>/dev/null && [ -d "$2" ]; do sleep 1; done; [ -d "$2" ] && sh "$3"',
      "lb-ip-guard-node-watchdog",
      String(process.pid),
      dir,
      teardown,
    ],
    { detached: true, stdio: "ignore" },
  );
  watchdog.unref();
  let stopped: Promise<void> | undefined;
  const stopNode = () => {
    stopped ??= (async () => {
      await sh(`sh '${teardown}'`);
      await releaseLock();
      try {
        process.kill(-(watchdog.pid ?? 0), "SIGKILL");
      } catch {}
    })();
    return stopped;
  };

  let cp: ControlPlane | undefined;
  try {
    // What kubelet will change, to be put back.
    const saved = [...(await kernelTunables())].map(([key, value]) => `${key} ${value}`);
    await writeFile(join(dir, "sysctl.saved"), `${saved.join("\n")}\n`);

    await sh(
      `ip link add ${BRIDGE} type bridge && ip addr add ${NODE_ADDRESS}/24 dev ${BRIDGE} && ip link set ${BRIDGE} up && ip route add ${SERVICE_RANGE} dev ${BRIDGE}`,
    );
    for (const controller of CGROUP_CONTROLLERS) {
      await mkdir(`/sys/fs/cgroup/${controller}/${CGROUP}/containerd`, { recursive: true });
    }
    // A new cpuset cgroup has no CPUs or memory nodes until given its parent's.
    for (const sub of [CGROUP, `${CGROUP}/containerd`]) {
      for (const file of ["cpuset.cpus", "cpuset.mems"]) {
        const parent = await readFile(`/sys/fs/cgroup/cpuset/${sub}/../${file}`, "utf8");
        await writeFile(`/sys/fs/cgroup/cpuset/${sub}/${file}`, parent);
      }
    }

    cp = await startControlPlane({
      ...options,
      serviceClusterIPRange: SERVICE_RANGE,
      nodeAddress: NODE_ADDRESS,
    });
    const kubeconfig = cp.kubeconfigPath;
    const env = {
      ...process.env,
      PATH: `${assets.sbin}:/usr/sbin:/sbin:${process.env.PATH ?? ""}`,
      KUBECONFIG: undefined,
    };
    const start = async (
      name: string,
      binary: string,
      args: string[],
      cgroup?: string,
    ): Promise<Started> => {
      const logFile = join(dir, `${name}.log`);
      const log = openSync(logFile, "a");
      const child = spawn(binary, args, {
        cwd: dir,
        detached: true,
        stdio: ["ignore", log, log],
        env,
      });
      closeSync(log);
      child.on("error", () => {}); // its exit code and log say why
      if (child.pid) {
        await appendFile(join(dir, "pgids"), `${child.pid}\n`);
        if (cgroup) {
          for (const controller of CGROUP_CONTROLLERS) {
            await writeFile(
              `/sys/fs/cgroup/${controller}/${cgroup}/cgroup.procs`,
              String(child.pid),
            );
          }
        }
      }
      return { child, logFile };
    };

    await start("kube-controller-manager", join(assets.bin, "kube-controller-manager"), [
      `--kubeconfig=${kubeconfig}`,
      `--root-ca-file=${cp.caFile}`,
      "--leader-elect=false",
      "--bind-address=127.0.0.1",
      "--secure-port=0",
      // Node IPAM is not needed: the CNI plugin hands out POD_CIDR itself.
      "--controllers=*,-nodeipam",
    ]);
    await start("kube-scheduler", join(assets.bin, "kube-scheduler"), [
      `--kubeconfig=${kubeconfig}`,
      "--leader-elect=false",
      "--bind-address=127.0.0.1",
      "--secure-port=0",
    ]);

    await mkdir(join(dir, "cni"));
    await writeFile(join(dir, "cni", "10-lb-ip-guard-e2e.conflist"), cniConfig(dir));
    await writeFile(join(dir, "containerd.toml"), containerdConfig(dir, assets));
    const containerd = await start(
      "containerd",
      join(assets.bin, "containerd"),
      ["--config", join(dir, "containerd.toml")],
      `${CGROUP}/containerd`,
    );
    const ctr = (args: string[]) =>
      outputOf(
        spawn(
          join(assets.bin, "ctr"),
          ["--address", join(dir, "containerd.sock"), "-n", "k8s.io", ...args],
          {
            stdio: ["ignore", "pipe", "pipe"],
          },
        ),
      );
    await waitFor("containerd", containerd, async () => (await ctr(["version"])).code === 0);
    const importImage = async (archive: string) => {
      const { code, stderr } = await ctr(["images", "import", archive]);
      if (code !== 0) throw new Error(`ctr images import ${archive}: ${stderr.trim()}`);
    };
    const images = async () => {
      const { stdout } = await ctr(["images", "list", "-q"]);
      return stdout.split("\n").filter((line) => line !== "");
    };
    await importImage(assets.pauseArchive);

    // kubelet's own files; an empty resolv.conf: pods resolve nothing off this machine.
    await writeFile(join(dir, "resolv.conf"), "");
    const kubeletPort = await freePort();
    await writeFile(
      join(dir, "kubelet.yaml"),
      stringify({
        apiVersion: "kubelet.config.k8s.io/v1beta1",
        kind: "KubeletConfiguration",
        // kubelet 1.35+ refuses cgroup v1 unless told otherwise; no systemd here.
        failCgroupV1: false,
        cgroupDriver: "cgroupfs",
        cgroupRoot: `/${CGROUP}`,
        containerRuntimeEndpoint: `unix://${join(dir, "containerd.sock")}`,
        address: NODE_ADDRESS,
        port: kubeletPort,
        readOnlyPort: 0,
        healthzPort: 0,
        // The API server calls kubelet (logs, stats) without a client certificate here; kubelet
        // listens on the node's address only.
        authentication: { anonymous: { enabled: true }, webhook: { enabled: false } },
        authorization: { mode: "AlwaysAllow" },
        resolvConf: join(dir, "resolv.conf"),
        failSwapOn: false,
        // The images were imported, not pulled: nothing may collect them.
        imageGCHighThresholdPercent: 100,
        imageGCLowThresholdPercent: 99,
        evictionHard: {
          "memory.available": "100Mi",
          "nodefs.available": "1%",
          "imagefs.available": "1%",
        },
        // The chart's pods are the only ones: start them at once, stop them fast.
        serializeImagePulls: false,
        shutdownGracePeriod: "0s",
        staticPodPath: "",
        podCIDR: POD_CIDR,
        maxPods: 20,
      }),
    );
    const kubelet = await start("kubelet", join(assets.bin, "kubelet"), [
      `--config=${join(dir, "kubelet.yaml")}`,
      `--kubeconfig=${kubeconfig}`,
      `--root-dir=${join(dir, "kubelet")}`,
      `--cert-dir=${join(dir, "kubelet-pki")}`,
      `--hostname-override=${NODE_NAME}`,
      `--node-ip=${NODE_ADDRESS}`,
      "--v=1",
    ]);
    await writeFile(
      join(dir, "kube-proxy.yaml"),
      stringify({
        apiVersion: "kubeproxy.config.k8s.io/v1alpha1",
        kind: "KubeProxyConfiguration",
        clientConnection: { kubeconfig },
        hostnameOverride: NODE_NAME,
        mode: "iptables",
        clusterCIDR: POD_CIDR,
        metricsBindAddress: `127.0.0.1:${await freePort()}`,
        healthzBindAddress: "",
        // 0: leave the machine's conntrack settings alone.
        conntrack: {
          maxPerCore: 0,
          min: 0,
          tcpEstablishedTimeout: "0s",
          tcpCloseWaitTimeout: "0s",
        },
        // No NodePort on 127.0.0.1, which would need route_localnet on the machine.
        iptables: { localhostNodePorts: false },
        nodePortAddresses: [`${NODE_ADDRESS}/32`],
      }),
    );
    const proxy = await start("kube-proxy", join(assets.bin, "kube-proxy"), [
      `--config=${join(dir, "kube-proxy.yaml")}`,
    ]);

    const control = cp;
    await waitFor("kubelet: the Node Ready", kubelet, async () => {
      const { stdout } = await control.kubectl(
        [
          "get",
          "node",
          NODE_NAME,
          "-o",
          'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
        ],
        { allowFailure: true },
      );
      return stdout.trim() === "True";
    });
    await waitFor("kube-proxy: the kubernetes Service's rules", proxy, async () =>
      (await sh("iptables -t nat -S KUBE-SERVICES")).includes(
        `${kubernetesServiceIP(SERVICE_RANGE)}/32`,
      ),
    );
    const node: Node = {
      dir,
      importImage,
      images,
      podMemory: async (namespace) => {
        // kubelet's stats lag a pod's start by its housekeeping interval: until every pod of
        // the namespace has a working set.
        const deadline = Date.now() + 60_000;
        for (;;) {
          const { stdout } = await control.kubectl([
            "get",
            "--raw",
            `/api/v1/nodes/${NODE_NAME}/proxy/stats/summary`,
          ]);
          const summary = JSON.parse(stdout) as {
            pods?: {
              podRef: { name: string; namespace: string };
              memory?: { workingSetBytes?: number };
            }[];
          };
          const memory = new Map<string, number>();
          for (const pod of summary.pods ?? []) {
            if (pod.podRef.namespace === namespace) {
              memory.set(pod.podRef.name, pod.memory?.workingSetBytes ?? 0);
            }
          }
          if ([...memory.values()].every((bytes) => bytes > 0) || Date.now() > deadline) {
            return memory;
          }
          await new Promise((resolve) => setTimeout(resolve, 1000));
        }
      },
      stop: stopNode,
    };
    const cluster = cp;
    return {
      cp: cluster,
      node,
      stop: async () => {
        await stopNode();
        await cluster.stop();
      },
    };
  } catch (err) {
    await stopNode().catch(() => {});
    await cp?.stop();
    throw err;
  }
}
