// `lb-ip-guard convert` as a user runs it: the Kubeflow example and a ConfigMap using every legacy
// field converted and proven with --check, the objects read back as pools equal to the
// ConfigMap's, a real difference caught, and bad input refused with exit 2.

import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import { poolsFromDocument } from "../../../src/ipam/config/document.ts";
import { cli, configMap, KUBEFLOW, KUBEFLOW_POOLS, service, yaml } from "../check/helpers.ts";

const EVERY_FIELD = fileURLToPath(new URL("every-field.yaml", import.meta.url));

function documents(text: string): Record<string, unknown>[] {
  return parseAllDocuments(text).map((document) => {
    assert.deepEqual(document.errors, []);
    return document.toJS() as Record<string, unknown>;
  });
}

/** The pools a set of objects declares, without their origins: what decisions read. */
function poolsOf(objects: readonly unknown[]): unknown[] {
  return objects.flatMap((object) => {
    const found = poolsFromDocument(object, "");
    assert.deepEqual(found?.errors ?? [], []);
    return (found?.pools ?? []).map(({ origin: _origin, ...pool }) => pool);
  });
}

describe("convert", { concurrency: true }, () => {
  let scratch: string | undefined;
  after(async () => {
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
  });

  test("the Kubeflow example: one IPAddressPool and one L2Advertisement, every decision the same", async () => {
    const run = await cli(["convert", KUBEFLOW, "--check", "--metallb-version", "v0.11.0"]);
    assert.equal(run.code, 0, run.stderr);
    const objects = documents(run.stdout);
    assert.deepEqual(
      objects.map((object) => `${object.apiVersion} ${object.kind}`),
      ["metallb.io/v1beta1 IPAddressPool", "metallb.io/v1beta1 L2Advertisement"],
    );
    assert.deepEqual(poolsOf(objects), poolsOf(documents(await readFile(KUBEFLOW_POOLS, "utf8"))));
    assert.match(run.stdout, /^# Converted by lb-ip-guard convert from .*metallb-config\.yaml#1:/);
    assert.match(run.stdout, /# IPAddressPool default: from address-pools\[0\] "default"/);
    const lines = run.stderr.trim().split("\n");
    assert.equal(lines.at(-1), "6 services: 6 decided the same, 0 differently");
    assert.ok(lines.includes("same     kubeflow/ml-pipeline-ui assigned 192.168.35.104 [default]"));
    assert.ok(
      lines.includes("same     team-a/minio-copy denied 192.168.35.101 [default] AddressInUse"),
    );
  });

  test("a ConfigMap with every legacy field: written to --output, read back as the same pools, stable", async () => {
    scratch ??= await mkdtemp(join(tmpdir(), "lb-ip-guard-convert-"));
    const output = join(scratch, "every-field.yaml");
    const services = yaml(
      service("web/a", { loadBalancerIP: "198.51.100.7" }),
      service("web/b", {}, { "metallb.universe.tf/address-pool": "public" }),
      service("web/c"),
      service("web/d", { loadBalancerIP: "198.51.100.7" }),
      service("web/e", {}, { "metallb.universe.tf/loadBalancerIPs": "10.1.0.5,2001:db8:1::5" }),
    );
    const run = await cli(
      ["convert", EVERY_FIELD, "--output", output, "--check", "--existing", "-"],
      services,
    );
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, "");
    const written = await readFile(output, "utf8");
    const objects = documents(written);
    assert.deepEqual(
      objects.map((object) => `${object.kind}/${(object.metadata as { name: string }).name}`),
      [
        "Community/bgp-communities",
        "BFDProfile/fast",
        "BGPPeer/peer-1",
        "BGPPeer/peer-2",
        "IPAddressPool/public",
        "IPAddressPool/internal",
        "IPAddressPool/lan",
        "L2Advertisement/lan",
        "BGPAdvertisement/public-1",
        "BGPAdvertisement/public-2",
        "BGPAdvertisement/internal-1",
      ],
    );
    assert.deepEqual(poolsOf(objects), poolsOf(documents(await readFile(EVERY_FIELD, "utf8"))));
    // The existing Services are audited: d asks for a's address and is the one refused, on both sides.
    assert.match(run.stderr, /same {5}web\/d denied 198\.51\.100\.7 \[public\] AddressInUse/);
    assert.match(run.stderr, /5 services: 5 decided the same, 0 differently/);
    assert.match(run.stderr, /warning: peers\[0\].*plain text/);
    const again = await cli(["convert", EVERY_FIELD]);
    assert.equal(again.stdout, written, "the same input gives the same bytes");
  });

  test("--check prints a Service the upgrade decides differently, and exits 1", async () => {
    const manifests = yaml(
      configMap("- name: lan\n  protocol: layer2\n  addresses: [10.0.0.0/28]"),
      // Read from v0.14.9 on, ignored (and so refused) by v0.11.
      service("web/new-key", {}, { "metallb.io/loadBalancerIPs": "10.0.0.3" }),
      service("web/old-key", { loadBalancerIP: "10.0.0.4" }),
    );
    const run = await cli(["convert", "-", "--check", "--metallb-version", "v0.11.0"], manifests);
    assert.equal(run.code, 1, run.stderr);
    assert.match(
      run.stderr,
      /^differs {2}web\/new-key v0\.11\.0 with the ConfigMap: denied - IgnoredAnnotation; newest release with the converted objects: allowed 10\.0\.0\.3 \[lan\]$/m,
    );
    assert.match(run.stderr, /^same {5}web\/old-key allowed 10\.0\.0\.4 \[lan\]$/m);
    assert.match(run.stderr, /2 services: 1 decided the same, 1 differently/);
  });

  test("a ConfigMap that declares nothing gives the header and says so", async () => {
    const empty = yaml(
      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config, namespace: metallb-system}\ndata: {config: ''}",
    );
    const run = await cli(["convert", "-"], empty);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^# Converted by lb-ip-guard convert from <stdin>#1:/);
    assert.match(run.stdout, /^# The configuration declares nothing\.$/m);
    assert.deepEqual(
      documents(run.stdout).filter((object) => object !== null),
      [],
    );
  });

  test("bad input is exit 2 with one line naming it", async () => {
    const cases: [string[], string, RegExp][] = [
      [["convert"], "", /no ConfigMap given/],
      [
        ["convert", "--pools", KUBEFLOW_POOLS],
        "",
        /--pools is check's: name the file .* as a PATH/,
      ],
      [
        ["convert", KUBEFLOW, "--load-balancer-class", "x"],
        "",
        /--load-balancer-class is for --check/,
      ],
      [["convert", KUBEFLOW, "--context", "prod"], "", /--context needs --cluster/],
      [["convert", "-"], service("web/a"), /no legacy MetalLB configuration in -/],
      [["convert", KUBEFLOW, "--existing", "x.yaml"], "", /--existing is for --check/],
      [
        ["convert", KUBEFLOW, "--check", "--metallb-version", "v0.13.0"],
        "",
        /v0\.13\.0 reads no ConfigMap/,
      ],
      [
        ["convert", "-"],
        configMap("- name: Lan_1\n  protocol: layer2\n  addresses: [10.0.0.0/28]"),
        /"Lan_1" cannot name a IPAddressPool/,
      ],
      [
        ["convert", "-"],
        configMap("- name: lan\n  protocol: layer2\n  addresses: [10.0.0.0/28]\n  color: red"),
        /pool "lan": unknown key "color"/,
      ],
      [
        ["convert", "-", KUBEFLOW_POOLS],
        configMap("- name: x\n  protocol: layer2\n  addresses: [10.9.0.0/28]"),
        /two legacy MetalLB configurations/,
      ],
      [
        ["convert", KUBEFLOW, "--output", join(KUBEFLOW, "no/such/dir/objects.yaml")],
        "",
        /--output: ENOENT/,
      ],
    ];
    await Promise.all(
      cases.map(async ([args, stdin, pattern]) => {
        const run = await cli(args, stdin);
        assert.equal(run.code, 2, `${args.join(" ")}: ${run.stderr}`);
        assert.match(run.stderr, pattern);
        assert.match(run.stderr, /^lb-ip-guard convert: /);
        assert.equal(run.stdout, "", "nothing is written on an error");
      }),
    );
  });
});
