// The image, built from the Dockerfile for real (scripts/image.ts: buildah, on the local
// stand-ins of its base images): what it holds and whom it runs as. The node suite
// (node.test.ts) runs it under a kubelet; this is what can be checked without one.
//
// Before this suite the Dockerfile had never been built: its `npm run build` step ran
// scripts/build.sh, which the build context (.dockerignore) and the COPY steps left out.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { access } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { outputOf } from "../../scripts/child-output.ts";
import { AssetsUnavailableError } from "../../scripts/go-assets.ts";
import { type BuiltImage, buildImage, describeImage, IMAGE } from "../../scripts/image.ts";

async function buildah(args: readonly string[]): Promise<string> {
  const { code, stdout, stderr } = await outputOf(
    spawn("buildah", args, { stdio: ["ignore", "pipe", "pipe"] }),
  );
  if (code !== 0) throw new Error(`buildah ${args.join(" ")}: exit ${code}: ${stderr.trim()}`);
  return stdout;
}

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

/** Builds the image, or says why it cannot be built here (outside CI only: see the harness). */
async function built(): Promise<BuiltImage | string> {
  try {
    return await buildImage(() => {});
  } catch (err) {
    if (err instanceof AssetsUnavailableError && process.env.CI !== "true") {
      return `image: ${err.message}`;
    }
    throw err;
  }
}

const image = await built().catch((err: Error) => err);

if (image instanceof Error) {
  it("the image builds from the Dockerfile", () => {
    throw image;
  });
} else if (typeof image === "string") {
  it("the image builds from the Dockerfile", { skip: image }, () => {});
} else {
  describe("the image built from the Dockerfile", () => {
    let container = "";
    let rootfs = "";
    before(async () => {
      process.stderr.write(`${describeImage(image)}\n`);
      container = (await buildah(["from", "--pull=never", IMAGE])).trim();
      rootfs = (await buildah(["mount", container])).trim();
    });
    after(async () => {
      if (container) await buildah(["rm", container]);
    });

    it("runs node as uid 65532 from /app, with `serve` as its command", async () => {
      const info = JSON.parse(await buildah(["inspect", "--type", "image", IMAGE])) as {
        OCIv1: {
          config: { User?: string; Entrypoint?: string[]; Cmd?: string[]; WorkingDir?: string };
        };
      };
      const config = info.OCIv1.config;
      assert.equal(config.User, "65532:65532");
      assert.equal(config.WorkingDir, "/app");
      assert.deepEqual(config.Entrypoint, [
        "/nodejs/bin/node",
        "--enable-source-maps",
        "dist/cli/main.js",
      ]);
      assert.deepEqual(config.Cmd, ["serve"]);
    });

    it("has no shell, and only the production dependencies", async () => {
      for (const shell of ["bin/sh", "usr/bin/sh", "bin/bash", "bin/dash", "usr/bin/dash"]) {
        assert.equal(await exists(join(rootfs, shell)), false, `${shell} in the image`);
      }
      assert.equal(await exists(join(rootfs, "app/dist/cli/main.js")), true);
      assert.equal(await exists(join(rootfs, "app/node_modules/fastify")), true);
      // npm prune leaves a pruned scope's folder behind, empty: the packages are what count.
      for (const dev of ["typescript", "@biomejs/biome", "fast-check", "lb-ip-guard"]) {
        assert.equal(await exists(join(rootfs, "app/node_modules", dev)), false, `${dev} kept`);
      }
      assert.equal(await exists(join(rootfs, "app/src")), false, "sources in the run stage");
    });

    it("runs the image's node as uid 65532", async () => {
      // chroot isolation: the image's own filesystem and user, no container runtime needed.
      const { code, stdout, stderr } = await outputOf(
        spawn(
          "buildah",
          [
            "run",
            "--isolation=chroot",
            "--user=65532:65532",
            container,
            "--",
            "/nodejs/bin/node",
            "-e",
            "process.stdout.write(JSON.stringify({uid: process.getuid(), version: process.version}))",
          ],
          { stdio: ["ignore", "pipe", "pipe"] },
        ),
      );
      assert.equal(code, 0, stderr);
      const got = JSON.parse(stdout) as { uid: number; version: string };
      assert.equal(got.uid, 65532);
      assert.match(got.version, /^v24\./);
    });

    it("adds only package.json, node_modules and dist to the base", () => {
      assert.deepEqual(
        image.ours.map((layer) => /in (\S+)\s*$/.exec(layer.createdBy)?.[1]),
        ["./", "./node_modules", "./dist"],
      );
    });
  });
}
