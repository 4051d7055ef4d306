// Provides what a real node of the e2e control plane runs (test/e2e/node.ts) and prints the
// folder of the binaries built here:
//
// - kubelet, kube-controller-manager, kube-scheduler and kube-proxy, from the same
//   k8s.io/kubernetes module (and wrapper module) as kube-apiserver, in one `go build`;
// - containerd, its runc shim and ctr (containerd v2: kubelet 1.36 and later no longer talk to
//   containerd 1.x, and Debian bookworm ships 1.6), from the Go module proxy;
// - from Debian's packages, where bookworm's are recent enough: runc 1.1.5, the CNI plugins
//   (bridge, host-local), iptables and conntrack (kube-proxy's) and buildah (for the pause
//   image), installed with apt-get as root.
//
// Built into a cache keyed by version like the control plane's binaries, so only the first run
// on a machine pays for the build (minutes).

import { spawn } from "node:child_process";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { outputOf } from "./child-output.ts";
import { debianProgram } from "./debian-package.ts";
import {
  type BuildContext,
  buildCached,
  cacheRoot,
  isExecutable,
  type Log,
  runAsScript,
} from "./go-assets.ts";
import { K8S_VERSION, kubernetesModule } from "./k8s-assets.ts";

/** Newest containerd v2 release on the module proxy. */
export const CONTAINERD_VERSION = "2.4.2";

export const KUBE_BINARIES = [
  "kubelet",
  "kube-controller-manager",
  "kube-scheduler",
  "kube-proxy",
] as const;
export const CONTAINERD_BINARIES = ["containerd", "containerd-shim-runc-v2", "ctr"] as const;

/**
 * The pod sandbox image: Kubernetes' own pause program (build/pause/linux/pause.c of the
 * k8s.io/kubernetes module, its Makefile's TAG), compiled here with gcc as its Makefile does,
 * since registry.k8s.io cannot be reached. A local name, so nothing mistakes it for the
 * published image; containerd is told to use it (test/e2e/node.ts).
 */
export const PAUSE_TAG = "3.10.2";
export const PAUSE_IMAGE = `localhost/lb-ip-guard-e2e/pause:${PAUSE_TAG}`;
/** Its OCI archive in the cache folder, for `ctr images import`. */
export const PAUSE_ARCHIVE = "pause.oci.tar";

const stderrLog: Log = (line) => process.stderr.write(`node-assets: ${line}\n`);

export function nodeCacheDir(): string {
  return join(cacheRoot(), "node", `${K8S_VERSION}-containerd${CONTAINERD_VERSION}`);
}

export interface NodeAssets {
  /** kubelet, kube-controller-manager, kube-scheduler, kube-proxy, containerd, its shim, ctr. */
  bin: string;
  /** The OCI archive of PAUSE_IMAGE. */
  pauseArchive: string;
  runc: string;
  /** The folder of the CNI plugins. */
  cniBin: string;
  /** The folder of iptables and conntrack, for kube-proxy's PATH. */
  sbin: string;
}

async function holdsAll(dir: string): Promise<boolean> {
  for (const bin of [...KUBE_BINARIES, ...CONTAINERD_BINARIES]) {
    if (!(await isExecutable(join(dir, bin)))) return false;
  }
  return exists(join(dir, PAUSE_ARCHIVE));
}

/** Installs the Debian packages and builds the binaries if needed. */
export async function nodeAssets(log: Log = stderrLog): Promise<NodeAssets> {
  const runc = await debianProgram(
    { package: "runc", binary: "/usr/sbin/runc", variable: "RUNC" },
    log,
  );
  const bridge = await debianProgram(
    {
      package: "containernetworking-plugins",
      binary: "/usr/lib/cni/bridge",
      variable: "CNI_BRIDGE",
    },
    log,
  );
  await debianProgram(
    { package: "iptables", binary: "/usr/sbin/iptables", variable: "IPTABLES" },
    log,
  );
  await debianProgram(
    { package: "conntrack", binary: "/usr/sbin/conntrack", variable: "CONNTRACK" },
    log,
  );
  const buildah = await debianProgram(
    { package: "buildah", binary: "/usr/bin/buildah", variable: "BUILDAH" },
    log,
  );
  const dir = nodeCacheDir();
  await buildCached({
    dir,
    purpose: "to build kubelet, kube-controller-manager, kube-scheduler, kube-proxy and containerd",
    complete: () => holdsAll(dir),
    build: (ctx) => build(ctx, dir, buildah),
    log,
  });
  return {
    bin: dir,
    pauseArchive: join(dir, PAUSE_ARCHIVE),
    runc,
    cniBin: join(bridge, ".."),
    sbin: "/usr/sbin",
  };
}

async function build(ctx: BuildContext, dir: string, buildah: string): Promise<void> {
  const { step } = ctx;
  const missingKube = [];
  for (const bin of KUBE_BINARIES) if (!(await isExecutable(join(dir, bin)))) missingKube.push(bin);
  if (missingKube.length > 0) {
    const { kubeDir, ldflags, describe } = await kubernetesModule(ctx);
    step(`building ${missingKube.join(", ")} ${describe}`);
    // One invocation: the four share most of their packages, and Go compiles each once.
    await ctx.runGo(
      [
        "build",
        "-trimpath",
        `-ldflags=${ldflags}`,
        "-o",
        `${ctx.staging}/`,
        ...missingKube.map((bin) => `k8s.io/kubernetes/cmd/${bin}`),
      ],
      kubeDir,
      `build ${missingKube.join(", ")}`,
    );
    for (const bin of missingKube) await ctx.install(bin);
  }

  const missingContainerd = [];
  for (const bin of CONTAINERD_BINARIES) {
    if (!(await isExecutable(join(dir, bin)))) missingContainerd.push(bin);
  }
  if (missingContainerd.length > 0) {
    const module = "github.com/containerd/containerd/v2";
    const version = `v${CONTAINERD_VERSION}`;
    step(`building ${missingContainerd.join(", ")} ${version}`);
    // A wrapper module requiring containerd, as for etcd (scripts/k8s-assets.ts): `go build`
    // takes no @version. containerd's go.mod has no replace directives, so this builds it as
    // released. CGO_ENABLED=0 (runGo) leaves out only the btrfs snapshotter; the node's is
    // overlayfs.
    const info = JSON.parse(
      await ctx.runGo(["mod", "download", "-json", `${module}@${version}`], ctx.work, "download"),
    ) as { GoMod?: string; Error?: string };
    if (!info.GoMod) throw new Error(`go mod download gave no go.mod: ${info.Error ?? "?"}`);
    const goLine = /^go (\S+)$/m.exec(await readFile(info.GoMod, "utf8"))?.[1] ?? "1.26.0";
    const wrapper = join(ctx.work, "containerd");
    await mkdir(wrapper);
    await writeFile(
      join(wrapper, "go.mod"),
      `module lb-ip-guard.invalid/containerd-build\ngo ${goLine}\nrequire ${module} ${version}\n`,
    );
    await ctx.runGo(
      [
        "build",
        "-trimpath",
        `-ldflags=-s -w -X ${module}/version.Version=${version}`,
        "-o",
        `${ctx.staging}/`,
        ...missingContainerd.map((bin) => `${module}/cmd/${bin}`),
      ],
      wrapper,
      `build ${missingContainerd.join(", ")}`,
    );
    for (const bin of missingContainerd) await ctx.install(bin);
  }

  if (!(await exists(join(dir, PAUSE_ARCHIVE)))) {
    step(`building ${PAUSE_IMAGE}`);
    const info = JSON.parse(
      await ctx.runGo(
        ["mod", "download", "-json", `k8s.io/kubernetes@v${K8S_VERSION}`],
        ctx.work,
        "download",
      ),
    ) as { Dir?: string; Error?: string };
    if (!info.Dir) throw new Error(`go mod download gave no folder: ${info.Error ?? "?"}`);
    const pause = join(ctx.work, "pause");
    // The Makefile's CFLAGS: a static binary, so the image needs nothing else.
    await command("gcc", [
      "-Os",
      "-Wall",
      "-Werror",
      "-static",
      `-DVERSION=v${PAUSE_TAG}-lb-ip-guard`,
      "-o",
      pause,
      join(info.Dir, "build/pause/linux/pause.c"),
    ]);
    const ctr = (await command(buildah, ["from", "scratch"])).trim();
    try {
      await command(buildah, ["copy", "--chmod", "0755", ctr, pause, "/pause"]);
      // As the published image: the nobody user, pause as the entrypoint.
      await command(buildah, [
        "config",
        "--user",
        "65535:65535",
        "--entrypoint",
        '["/pause"]',
        ctr,
      ]);
      await command(buildah, ["commit", "--rm", ctr, PAUSE_IMAGE]);
    } catch (err) {
      await command(buildah, ["rm", ctr]).catch(() => {});
      throw err;
    }
    await command(buildah, [
      "push",
      PAUSE_IMAGE,
      `oci-archive:${join(ctx.staging, PAUSE_ARCHIVE)}:${PAUSE_IMAGE}`,
    ]);
    await ctx.install(PAUSE_ARCHIVE);
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function command(binary: string, args: readonly string[]): Promise<string> {
  const { code, stdout, stderr } = await outputOf(
    spawn(binary, args, { stdio: ["ignore", "pipe", "pipe"] }),
  );
  if (code !== 0) {
    const last = `${stdout.trim()}\n${stderr.trim()}`.trim().split("\n").slice(-5).join(" | ");
    throw new Error(`${binary} ${args[0]} failed (exit ${code}): ${last}`);
  }
  return stdout;
}

await runAsScript(import.meta.url, "node-assets", async () => (await nodeAssets()).bin);
