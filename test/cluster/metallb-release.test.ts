// The MetalLB release a cluster runs, read from its controller Deployment's image.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { releaseOf } from "../../src/cluster/metallb-release.ts";
import { formatMetalLBVersion } from "../../src/ipam/metallb-version.ts";

function deployment(name: string, ...images: string[]) {
  return {
    metadata: { name, namespace: "metallb-system" },
    spec: { template: { spec: { containers: images.map((image) => ({ image })) } } },
  };
}

describe("releaseOf", () => {
  test("the tag of a metallb/controller image, from any registry, with or without a digest", () => {
    for (const image of [
      "quay.io/metallb/controller:v0.11.0",
      "metallb/controller:v0.11.0",
      "registry.example.com:5000/mirror/metallb/controller:v0.11.0@sha256:0123abcd",
    ]) {
      const found = releaseOf([deployment("controller", image)]);
      assert.equal(found.version && formatMetalLBVersion(found.version), "v0.11.0", image);
      assert.match("from" in found ? found.from : "", /Deployment metallb-system\/controller runs/);
    }
  });

  test("the speaker, other images and unversioned tags tell nothing", () => {
    const found = releaseOf([
      deployment("speaker", "quay.io/metallb/speaker:v0.16.2"),
      deployment(
        "controller",
        "quay.io/metallb/controller:main",
        "sidecar/kube-rbac-proxy:v0.16.2",
      ),
    ]);
    assert.equal(found.version, undefined);
    assert.match("why" in found ? found.why : "", /no Deployment runs a metallb\/controller/);
  });

  test("two releases at once (an upgrade under way) are not guessed at", () => {
    const found = releaseOf([
      deployment("controller", "quay.io/metallb/controller:v0.13.5"),
      deployment("metallb-controller", "quay.io/metallb/controller:v0.15.2"),
    ]);
    assert.equal(found.version, undefined);
    assert.match("why" in found ? found.why : "", /v0\.13\.5 and v0\.15\.2/);
  });
});
