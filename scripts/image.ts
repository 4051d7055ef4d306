// Builds the lb-ip-guard image from the repository's Dockerfile with buildah (`npm run image`) and
// prints its size and the layers our code adds to the run stage's base image.
//
// The Dockerfile's base images (node:24-slim, distroless Node 24) live in registries this
// project's machines cannot reach, so unless BUILD_IMAGE / RUN_IMAGE name others the build runs
// on local stand-ins of the same shape, made once and kept in buildah's image store:
// - build: a Debian bookworm minbase (mmdebstrap, from Debian's packages) with the npm registry's
//   Node 24 (the binary scripts/with-node24 runs) at /usr/local/bin/node and npm beside it, as in
//   node:24-slim;
// - run: only libc6, libstdc++6 and libgcc-s1 extracted from Debian's packages (no shell, no
//   package manager), node at /nodejs/bin/node, the user nonroot (65532) and /tmp, as in
//   distroless's nonroot image.
// buildah and mmdebstrap come from Debian's packages (apt-get as root, scripts/debian-package.ts).
// The build itself downloads only what the Dockerfile's `npm ci` installs from the npm registry;
// the image downloads nothing when it runs.

import { spawn } from "node:child_process";
import { chmod, copyFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { outputOf } from "./child-output.ts";
import { debianProgram } from "./debian-package.ts";
import { AssetsUnavailableError, type Log, runAsScript } from "./go-assets.ts";

const repoRoot = fileURLToPath(new URL("../", import.meta.url));

/**
 * What the chart and the kustomize base run by default (the chart's appVersion), so a node that
 * holds this image starts them with every default and pulls nothing (imagePullPolicy
 * IfNotPresent).
 */
export const IMAGE = "ghcr.io/lb-ip-guard/lb-ip-guard:0.1.0";

/** Debian's CA bundle (ca-certificates), the one npm on this machine trusts. */
const MACHINE_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt";

const stderrLog: Log = (line) => process.stderr.write(`image: ${line}\n`);

/** Runs a command; throws with the end of its output on a non-zero exit. */
async function run(
  command: string,
  args: readonly string[],
  options: { cwd?: string; log?: Log } = {},
): Promise<string> {
  options.log?.(`${command} ${args.join(" ")}`);
  const { code, stdout, stderr } = await outputOf(
    spawn(command, args, { cwd: options.cwd, stdio: ["ignore", "pipe", "pipe"] }),
  );
  if (code !== 0) {
    // buildah writes the failing step's own output to stdout and only its verdict to stderr.
    const last = `${stdout.trim()}\n${stderr.trim()}`.trim().split("\n").slice(-6).join(" | ");
    throw new Error(`${command} ${args.slice(0, 2).join(" ")} failed (exit ${code}): ${last}`);
  }
  return stdout;
}

async function tools(log: Log): Promise<{ buildah: string; mmdebstrap: string }> {
  // mmdebstrap --mode=root and buildah's chroot builds in the system store: as root only.
  if (process.getuid?.() !== 0) {
    throw new AssetsUnavailableError("building the image here needs root (buildah, mmdebstrap)");
  }
  const buildah = await debianProgram(
    { package: "buildah", binary: "/usr/bin/buildah", variable: "BUILDAH" },
    log,
  );
  const mmdebstrap = await debianProgram(
    { package: "mmdebstrap", binary: "/usr/bin/mmdebstrap", variable: "MMDEBSTRAP" },
    log,
  );
  return { buildah, mmdebstrap };
}

async function imageExists(buildah: string, name: string): Promise<boolean> {
  const { code } = await outputOf(
    spawn(buildah, ["inspect", "--type", "image", name], { stdio: ["ignore", "pipe", "pipe"] }),
  );
  return code === 0;
}

export interface StandIns {
  build: string;
  run: string;
}

/** The stand-in base images for this Node (`process.execPath`), made on first use. */
export async function standIns(log: Log = stderrLog): Promise<StandIns> {
  const { buildah, mmdebstrap } = await tools(log);
  const node = process.version; // e.g. v24.21.0: a new Node makes new stand-ins
  if (!node.startsWith("v24.")) throw new Error(`the stand-ins need Node 24, not ${node}`);
  const names = {
    build: `localhost/lb-ip-guard-stand-in/node:${node.slice(1)}-slim`,
    run: `localhost/lb-ip-guard-stand-in/distroless-nodejs24:${node.slice(1)}-nonroot`,
  };
  const work = await mkdtemp(join(tmpdir(), "lb-ip-guard-stand-in-"));
  try {
    if (!(await imageExists(buildah, names.build))) {
      const rootfs = join(work, "build.tar");
      // No mirror argument: mmdebstrap takes Debian's archive (and, for a stable release, its
      // updates and security suites).
      await run(mmdebstrap, ["--variant=minbase", "--mode=root", "bookworm", rootfs], { log });
      // npm's own package bundles its dependencies: unpacked, it is what node:24-slim has in
      // /usr/local/lib/node_modules/npm. The version is the one running this script's npm.
      const npmVersion = (await run("npm", ["--version"])).trim();
      await run("npm", ["pack", `npm@${npmVersion}`, "--pack-destination", work, "--silent"], {
        log,
      });
      const ctr = (await run(buildah, ["from", "scratch"])).trim();
      try {
        await run(buildah, ["add", ctr, rootfs, "/"], { log });
        await run(buildah, [
          "copy",
          "--chmod",
          "0755",
          ctr,
          process.execPath,
          "/usr/local/bin/node",
        ]);
        await run(buildah, [
          "add",
          ctr,
          join(work, `npm-${npmVersion}.tgz`),
          "/usr/local/lib/node_modules/",
        ]);
        // The tarball unpacks to package/.
        await run(buildah, [
          "run",
          "--isolation=chroot",
          ctr,
          "--",
          "sh",
          "-c",
          "cd /usr/local/lib/node_modules && mv package npm && " +
            "ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm && " +
            "ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx && node --version && npm --version",
        ]);
        // The machine's trust store (which may hold the CA of a proxy in front of the registry)
        // for the Dockerfile's `npm ci`: the build stage reaches the npm registry as this
        // machine does. Only the build stage has it; the run stage copies nothing from /etc.
        await run(buildah, ["copy", ctr, MACHINE_CA_BUNDLE, "/etc/ssl/certs/ca-certificates.crt"]);
        await run(buildah, [
          "config",
          "--cmd",
          "node",
          "--env",
          `NODE_VERSION=${node.slice(1)}`,
          "--env",
          "NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt",
          ctr,
        ]);
        await run(buildah, ["commit", "--rm", ctr, names.build], { log });
      } catch (err) {
        await outputOf(spawn(buildah, ["rm", ctr], { stdio: ["ignore", "pipe", "pipe"] }));
        throw err;
      }
    }
    if (!(await imageExists(buildah, names.run))) {
      const rootfs = join(work, "run.tar");
      // extract: the packages and their dependencies unpacked, no maintainer scripts, so nothing
      // Essential (no shell, no dpkg) comes along.
      await run(
        mmdebstrap,
        [
          "--variant=extract",
          "--mode=root",
          "--include=libc6,libstdc++6,libgcc-s1",
          "bookworm",
          rootfs,
        ],
        { log },
      );
      const etc = join(work, "etc");
      await mkdir(etc);
      await writeFile(
        join(etc, "passwd"),
        "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
      );
      await writeFile(join(etc, "group"), "root:x:0:\nnonroot:x:65532:\n");
      const node24 = join(work, "node");
      await copyFile(process.execPath, node24);
      await chmod(node24, 0o755);
      const ctr = (await run(buildah, ["from", "scratch"])).trim();
      try {
        await run(buildah, ["add", ctr, rootfs, "/"], { log });
        for (const file of ["passwd", "group"]) {
          await run(buildah, ["copy", ctr, join(etc, file), `/etc/${file}`]);
        }
        await run(buildah, ["copy", ctr, node24, "/nodejs/bin/node"]);
        // Directories only: there is no shell in this image to run mkdir with.
        const empty = join(work, "empty");
        await mkdir(empty);
        await run(buildah, ["copy", "--chmod", "1777", ctr, empty, "/tmp"]);
        await run(buildah, ["copy", "--chown", "65532:65532", ctr, empty, "/home/nonroot"]);
        await run(buildah, [
          "config",
          "--user",
          "65532",
          "--workingdir",
          "/home/nonroot",
          "--entrypoint",
          '["/nodejs/bin/node"]',
          ctr,
        ]);
        await run(buildah, ["commit", "--rm", ctr, names.run], { log });
      } catch (err) {
        await outputOf(spawn(buildah, ["rm", ctr], { stdio: ["ignore", "pipe", "pipe"] }));
        throw err;
      }
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return names;
}

export interface LayerReport {
  /** The Dockerfile instruction that made it. */
  createdBy: string;
  bytes: number;
}

export interface BuiltImage {
  name: string;
  bases: StandIns;
  /** Every layer's size, uncompressed as buildah stores them. */
  totalBytes: number;
  baseBytes: number;
  /** The layers above the run stage's base image: our package.json, dependencies and dist/. */
  ours: LayerReport[];
}

interface OciManifest {
  layers: { size: number }[];
}
interface OciConfig {
  history?: { created_by?: string; empty_layer?: boolean }[];
}

async function layers(
  buildah: string,
  name: string,
): Promise<{ sizes: number[]; history: string[] }> {
  const info = JSON.parse(await run(buildah, ["inspect", "--type", "image", name])) as {
    Manifest: string;
    Config: string;
  };
  const manifest = JSON.parse(info.Manifest) as OciManifest;
  const config = JSON.parse(info.Config) as OciConfig;
  const history = (config.history ?? [])
    .filter((entry) => !entry.empty_layer)
    .map((entry) => entry.created_by ?? "");
  return { sizes: manifest.layers.map((layer) => layer.size), history };
}

/**
 * Builds IMAGE from the Dockerfile (on the stand-ins unless BUILD_IMAGE / RUN_IMAGE say
 * otherwise); `--layers` lets a rebuild with unchanged inputs reuse every step.
 */
export async function buildImage(log: Log = stderrLog): Promise<BuiltImage> {
  const { buildah } = await tools(log);
  const given = { build: process.env.BUILD_IMAGE, run: process.env.RUN_IMAGE };
  const bases =
    given.build && given.run
      ? { build: given.build, run: given.run }
      : {
          ...(await standIns(log)),
          ...Object.fromEntries(Object.entries(given).filter(([, v]) => v)),
        };
  await run(
    buildah,
    [
      "bud",
      "--layers",
      // chroot: the build needs no second container runtime; host network: `npm ci` reaches the
      // registry the way this machine does.
      "--isolation=chroot",
      "--network=host",
      "--build-arg",
      `BUILD_IMAGE=${bases.build}`,
      "--build-arg",
      `RUN_IMAGE=${bases.run}`,
      "-t",
      IMAGE,
      "-f",
      "Dockerfile",
      ".",
    ],
    { cwd: repoRoot, log },
  );
  const image = await layers(buildah, IMAGE);
  const base = await layers(buildah, bases.run);
  const sum = (sizes: number[]) => sizes.reduce((a, b) => a + b, 0);
  const oursSizes = image.sizes.slice(base.sizes.length);
  const oursHistory = image.history.slice(-oursSizes.length);
  return {
    name: IMAGE,
    bases,
    totalBytes: sum(image.sizes),
    baseBytes: sum(base.sizes),
    ours: oursSizes.map((bytes, i) => ({ createdBy: oursHistory[i] ?? "", bytes })),
  };
}

/** Writes IMAGE as an OCI archive (what `ctr images import` loads into a node's containerd). */
export async function exportImage(path: string, log: Log = stderrLog): Promise<void> {
  const { buildah } = await tools(log);
  await rm(path, { force: true });
  await run(buildah, ["push", IMAGE, `oci-archive:${path}:${IMAGE}`], { log });
}

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

export function describeImage(image: BuiltImage): string {
  const lines = [
    `${image.name}: ${mib(image.totalBytes)} uncompressed`,
    `  run-stage base ${image.bases.run}: ${mib(image.baseBytes)}`,
    `  our layers: ${mib(image.ours.reduce((a, l) => a + l.bytes, 0))}`,
    ...image.ours.map(
      (layer) =>
        `    ${mib(layer.bytes).padStart(10)}  ${layer.createdBy.replace(/\s+/g, " ").trim()}`,
    ),
  ];
  return lines.join("\n");
}

await runAsScript(import.meta.url, "image", async () => describeImage(await buildImage()));
