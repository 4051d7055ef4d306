// `lb-ip-guard check` decides spec.externalIPs as the webhook does: of every Service type, against
// the pools and what others hold; and an address a Service lists there is held for later requests.

import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { checkJson, LAN, rows, service, yaml } from "./helpers.ts";

describe("check: spec.externalIPs", () => {
  let dir = "";
  let existing = "";
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "lb-ip-guard-external-"));
    existing = join(dir, "existing.yaml");
    // Already in the cluster, from before the webhook: a ClusterIP Service on a pool address.
    await writeFile(
      existing,
      yaml(service("legacy/edge", { type: "ClusterIP", externalIPs: ["10.0.0.11"] })),
    );
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test("refuses another's address and a pool's, allows one outside, and counts them as held", async () => {
    const run = await checkJson(
      ["-", "--existing", existing],
      yaml(
        LAN,
        service("team-a/first", {}),
        service("team-a/second", {}),
        service("team-a/asks", { loadBalancerIP: "10.0.0.11" }),
        service("team-b/steal", { type: "ClusterIP", externalIPs: ["10.0.0.10"] }),
        service("team-b/pool", { type: "NodePort", externalIPs: ["10.0.0.17"] }),
        service("team-b/outside", { type: "ClusterIP", externalIPs: ["192.0.2.7"] }),
        service("team-b/copy", { type: "ClusterIP", externalIPs: ["192.0.2.7"] }),
      ),
    );
    assert.equal(run.code, 1);
    assert.deepEqual(rows(run.report), [
      ["team-a/first", "assigned", ["10.0.0.10"], "lan", null],
      // 10.0.0.11 is legacy/edge's: auto-assign skips it.
      ["team-a/second", "assigned", ["10.0.0.12"], "lan", null],
      ["team-a/asks", "denied", ["10.0.0.11"], "lan", "AddressInUse"],
      ["team-b/steal", "denied", ["10.0.0.10"], "lan", "AddressInUse"],
      ["team-b/pool", "denied", ["10.0.0.17"], "lan", "ExternalIPInPool"],
      ["team-b/outside", "allowed", [], null, null],
      ["team-b/copy", "denied", ["192.0.2.7"], null, "AddressInUse"],
    ]);
    const message = (ref: string) =>
      run.report.results.find((r) => `${r.namespace}/${r.name}` === ref)?.message ?? "";
    assert.match(message("team-a/asks"), /10\.0\.0\.11, which legacy\/edge already holds/);
    assert.match(message("team-b/steal"), /10\.0\.0\.10 in spec\.externalIPs, which team-a\/first/);
    assert.match(message("team-b/copy"), /which team-b\/outside already holds/);
  });

  test("an audit refuses the later of two Services listing one address", async () => {
    const both = join(dir, "both.yaml");
    await writeFile(
      both,
      yaml(
        LAN,
        service("a/one", { type: "ClusterIP", externalIPs: ["192.0.2.9"] }),
        service("b/two", { type: "ClusterIP", externalIPs: ["192.0.2.9"] }),
      ),
    );
    const run = await checkJson(["--existing", both]);
    assert.equal(run.code, 1);
    assert.deepEqual(rows(run.report), [
      ["a/one", "allowed", [], null, null],
      ["b/two", "denied", ["192.0.2.9"], null, "AddressInUse"],
    ]);
  });
});
