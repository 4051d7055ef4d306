// `lb-ip-guard check` decides the address lifecycle offline as the webhook does (design.md,
// "Address lifecycle"): the claim Leases' retentions give an address back to its Service and
// warn another that takes it, AddressReservations refuse others (AddressReserved), Namespace
// quotas refuse a grant past them (QuotaExceeded) but never an UPDATE adding no address, and an
// AddressReservation among the manifests is itself admitted by the same rules.

import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  checkJson,
  claim,
  cli,
  find,
  LAN,
  namespace,
  reservation,
  rows,
  service,
  yaml,
} from "./helpers.ts";

const HOUR = 3_600_000;
const running = () => ({ since: Date.now() - HOUR, until: Date.now() + 24 * HOUR });

describe("check: the address lifecycle", { concurrency: true }, () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "lb-ip-guard-check-lifecycle-"));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  /** Writes `documents` as one --existing file and returns the flags that read it. */
  let files = 0;
  async function existing(...documents: string[]): Promise<string[]> {
    const file = join(dir, `existing-${++files}.yaml`);
    await writeFile(file, yaml(...documents));
    return ["--existing", file];
  }

  test("a retained address goes back to the re-created Service; others pass over it", async () => {
    const { code, report } = await checkJson(
      [...(await existing(claim("10.0.0.10", "kubeflow/ml-pipeline-ui", running()))), "-"],
      yaml(
        LAN,
        service("team-a/first"),
        service(
          "kubeflow/ml-pipeline-ui",
          { type: "ClusterIP" },
          { "lb-ip-guard.dev/auto-assign": "true" },
        ),
      ),
    );
    assert.equal(code, 0);
    assert.deepEqual(rows(report), [
      ["team-a/first", "assigned", ["10.0.0.11"], "lan", null],
      ["kubeflow/ml-pipeline-ui", "assigned", ["10.0.0.10"], "lan", null],
    ]);
    assert.match(
      find(report, "kubeflow/ml-pipeline-ui").message,
      /gets back 10\.0\.0\.10 from pool "lan" \(retained for kubeflow\/ml-pipeline-ui since \d{4}-\d\d-\d\dT/,
    );
  });

  test("a retention that has ended by now keeps nothing", async () => {
    const ended = { since: Date.now() - 48 * HOUR, until: Date.now() - HOUR };
    const { report } = await checkJson(
      [...(await existing(claim("10.0.0.10", "kubeflow/ml-pipeline-ui", ended))), "-"],
      yaml(LAN, service("team-a/first")),
    );
    assert.deepEqual(rows(report), [["team-a/first", "assigned", ["10.0.0.10"], "lan", null]]);
  });

  test("another Service asking for a retained address is admitted with a warning naming whose it is and until when", async () => {
    const retention = running();
    const run = await cli(
      ["check", ...(await existing(claim("10.0.0.10", "kubeflow/ml-pipeline-ui", retention))), "-"],
      yaml(LAN, service("team-a/web", { loadBalancerIP: "10.0.0.10" })),
    );
    assert.equal(run.code, 0, run.stderr);
    const until = new Date(retention.until).toISOString().replace(/\.\d{3}Z$/, "Z");
    assert.match(run.stdout, /^allowed {2}team-a\/web 10\.0\.0\.10 \[lan\] may use 10\.0\.0\.10/);
    assert.ok(
      run.stdout.includes(
        `\n         warning: 10.0.0.10 is retained for kubeflow/ml-pipeline-ui until ${until}`,
      ),
      run.stdout,
    );
  });

  test("once another Service took it, the retained address is not given back", async () => {
    const { report } = await checkJson(
      [...(await existing(claim("10.0.0.10", "kubeflow/ml-pipeline-ui", running()))), "-"],
      yaml(
        LAN,
        service("team-a/web", { loadBalancerIP: "10.0.0.10" }),
        service("kubeflow/ml-pipeline-ui"),
      ),
    );
    assert.deepEqual(rows(report), [
      ["team-a/web", "allowed", ["10.0.0.10"], "lan", null],
      ["kubeflow/ml-pipeline-ui", "assigned", ["10.0.0.11"], "lan", null],
    ]);
  });

  test("a pending claim of a Service not there holds its address for it", async () => {
    const flags = await existing(claim("10.0.0.12", "team-a/web"));
    const { report } = await checkJson(
      [...flags, "-"],
      yaml(LAN, service("team-b/copy", { loadBalancerIP: "10.0.0.12" }), service("team-a/web")),
    );
    assert.deepEqual(rows(report), [
      ["team-b/copy", "denied", ["10.0.0.12"], "lan", "AddressInUse"],
      // The grant the claim records is the one the Service gets when it is created.
      ["team-a/web", "assigned", ["10.0.0.12"], "lan", null],
    ]);
    assert.match(find(report, "team-b/copy").message, /team-a\/web/);
  });

  test("AddressReserved: another namespace's explicit request is refused, naming the reservation; the Service it is for gets it", async () => {
    const flags = await existing(reservation("team-a/db", ["10.0.0.10"], "db"));
    const { code, report } = await checkJson(
      [...flags, "-"],
      yaml(
        LAN,
        service("team-b/other", { loadBalancerIP: "10.0.0.10" }),
        service("team-a/web", { loadBalancerIP: "10.0.0.10" }),
        service("team-a/auto"),
        service("team-a/db"),
      ),
    );
    assert.equal(code, 1);
    assert.deepEqual(rows(report), [
      ["team-b/other", "denied", ["10.0.0.10"], "lan", "AddressReserved"],
      ["team-a/web", "denied", ["10.0.0.10"], "lan", "AddressReserved"],
      ["team-a/auto", "assigned", ["10.0.0.11"], "lan", null],
      ["team-a/db", "assigned", ["10.0.0.10"], "lan", null],
    ]);
    assert.match(
      find(report, "team-b/other").message,
      /AddressReservation team-a\/db reserves for team-a\/db/,
    );
    assert.match(find(report, "team-a/db").message, /reserved by AddressReservation team-a\/db/);
  });

  test("QuotaExceeded: a grant past the Namespace's address-quota is refused, a shared address counts once", async () => {
    const shared = (ref: string, port: number) =>
      service(
        ref,
        { loadBalancerIP: "10.0.0.10", ports: [{ port, protocol: "TCP" }] },
        { "metallb.io/allow-shared-ip": "k" },
      );
    const { code, report } = await checkJson(
      [...(await existing(namespace("team-q", "2"))), "-"],
      yaml(
        LAN,
        shared("team-q/a", 80),
        shared("team-q/b", 81),
        service("team-q/c", { loadBalancerIP: "10.0.0.11" }),
        service("team-q/d"),
        service("team-q/e", { loadBalancerIP: "10.0.0.12" }),
        service("team-other/f"),
      ),
    );
    assert.equal(code, 1);
    assert.deepEqual(rows(report), [
      ["team-q/a", "allowed", ["10.0.0.10"], "lan", null],
      ["team-q/b", "allowed", ["10.0.0.10"], "lan", null],
      ["team-q/c", "allowed", ["10.0.0.11"], "lan", null],
      ["team-q/d", "denied", ["10.0.0.12"], "lan", "QuotaExceeded"],
      ["team-q/e", "denied", ["10.0.0.12"], "lan", "QuotaExceeded"],
      ["team-other/f", "assigned", ["10.0.0.12"], "lan", null],
    ]);
    assert.match(
      find(report, "team-q/e").message,
      /namespace team-q may hold 2 addresses \(lb-ip-guard\.dev\/address-quota\) and holds 2 already \(10\.0\.0\.10, 10\.0\.0\.11\)/,
    );
  });

  test("a Namespace among the manifests brings its quota, as applying it first would", async () => {
    const { report } = await checkJson(
      ["-"],
      yaml(LAN, namespace("team-q", "1"), service("team-q/a"), service("team-q/b")),
    );
    assert.deepEqual(
      report.results.map((result) => result.reason),
      [null, "QuotaExceeded"],
    );
  });

  test("the ratchet: an UPDATE adding no address is never refused for quota, one adding an address is", async () => {
    // The namespace holds 3 with a quota of 1 (lowered since, or written past the webhook).
    const flags = await existing(
      namespace("team-q", "1"),
      service("team-q/a", { loadBalancerIP: "10.0.0.10" }),
      service("team-q/b", { loadBalancerIP: "10.0.0.11" }),
      service("team-q/c", { loadBalancerIP: "10.0.0.12" }),
    );
    const { report } = await checkJson(
      [...flags, "-"],
      yaml(
        LAN,
        service("team-q/a", { loadBalancerIP: "10.0.0.10" }, {}, { tier: "web" }),
        service("team-q/b", { loadBalancerIP: "10.0.0.13" }),
        service("team-q/new"),
      ),
    );
    assert.deepEqual(rows(report), [
      ["team-q/a", "allowed", ["10.0.0.10"], "lan", null],
      ["team-q/b", "denied", ["10.0.0.13"], "lan", "QuotaExceeded"],
      ["team-q/new", "denied", ["10.0.0.13"], "lan", "QuotaExceeded"],
    ]);
  });

  test("an AddressReservation among the manifests is checked by the same rules and, admitted, reserves for the next ones", async () => {
    const flags = await existing(
      namespace("team-q", "1"),
      service("team-b/web", { loadBalancerIP: "10.0.0.10" }),
      reservation("team-b/kept", ["10.0.0.11"]),
      service("team-q/held", { loadBalancerIP: "10.0.0.15" }),
    );
    const { code, report } = await checkJson(
      [...flags, "-"],
      yaml(
        LAN,
        reservation("team-a/taken", ["10.0.0.10"]),
        reservation("team-a/twice", ["10.0.0.11"]),
        reservation("team-a/nowhere", ["10.9.9.9"]),
        reservation("team-a/bad", ["10.0.0.300"]),
        reservation("team-q/over", ["10.0.0.16"]),
        reservation("team-a/db", ["10.0.0.12"], "db"),
        service("team-b/copy", { loadBalancerIP: "10.0.0.12" }),
        service("team-a/db"),
      ),
    );
    assert.equal(code, 1);
    assert.deepEqual(
      report.results.map((result) => [
        (result as { kind?: string }).kind ?? "Service",
        `${result.namespace}/${result.name}`,
        result.decision,
        result.ips,
        result.reason,
      ]),
      [
        ["AddressReservation", "team-a/taken", "denied", ["10.0.0.10"], "AddressInUse"],
        ["AddressReservation", "team-a/twice", "denied", ["10.0.0.11"], "AddressReserved"],
        ["AddressReservation", "team-a/nowhere", "denied", ["10.9.9.9"], "NotInAnyPool"],
        ["AddressReservation", "team-a/bad", "denied", [], "InvalidAddress"],
        ["AddressReservation", "team-q/over", "denied", ["10.0.0.16"], "QuotaExceeded"],
        ["AddressReservation", "team-a/db", "allowed", ["10.0.0.12"], null],
        ["Service", "team-b/copy", "denied", ["10.0.0.12"], "AddressReserved"],
        ["Service", "team-a/db", "assigned", ["10.0.0.12"], null],
      ],
    );
    // Service results keep the contract's shape; the summary counts reservations apart.
    assert.equal("kind" in find(report, "team-b/copy"), false);
    assert.deepEqual(report.summary, {
      services: 2,
      allowed: 1,
      assigned: 1,
      denied: 6,
      reservations: 6,
    });
    const db = find(report, "team-a/db");
    assert.equal(db.file, "<stdin>");
    assert.match(
      db.message,
      /^AddressReservation team-a\/db reserves 10\.0\.0\.12 of pool "lan" for team-a\/db$/,
    );

    const text = await cli(
      ["check", ...flags, "-"],
      yaml(LAN, reservation("team-a/db", ["10.0.0.12"], "db")),
    );
    assert.equal(
      text.stdout,
      'allowed  AddressReservation team-a/db 10.0.0.12 [lan] reserves 10.0.0.12 of pool "lan" for team-a/db (<stdin>:19)\n0 services, 1 reservation: 1 allowed, 0 assigned, 0 denied\n',
    );
  });

  test("the CI formats name a reservation's result by its kind, and count it", async () => {
    const input = yaml(
      LAN,
      `apiVersion: lb-ip-guard.dev/v1alpha1
kind: AddressReservation
metadata:
  name: db
  namespace: team-a
spec:
  addresses:
  - 10.9.9.9`,
      service("team-a/web"),
    );
    const github = await cli(["check", "--format", "github", "-"], input);
    assert.equal(github.code, 1);
    assert.match(
      github.stdout,
      // The line of spec.addresses.
      /^::error title=lb-ip-guard NotInAnyPool%3A AddressReservation team-a\/db,file=<stdin>,line=25,col=3::AddressReservation team-a\/db reserves 10\.9\.9\.9, which lies in no pool/m,
    );
    assert.match(
      github.stdout,
      /\nlb-ip-guard check: 1 service, 1 reservation: 0 allowed, 1 assigned, 1 denied\n$/,
    );
    const junit = await cli(["check", "--format", "junit", "-"], input);
    assert.match(junit.stdout, /<testsuites name="lb-ip-guard check" tests="2" failures="1"/);
    assert.match(junit.stdout, /<testcase name="AddressReservation team-a\/db"/);
  });

  test("a quota that is not a number is a warning, and no quota, as in the webhook", async () => {
    const { report, stderr } = await checkJson(
      [...(await existing(namespace("team-q", "three"))), "-"],
      yaml(LAN, service("team-q/a"), service("team-q/b")),
    );
    assert.match(
      stderr,
      /warning: Namespace team-q: lb-ip-guard\.dev\/address-quota "three" is not a number of addresses/,
    );
    assert.deepEqual(
      report.results.map((result) => result.decision),
      ["assigned", "assigned"],
    );
  });

  test("--claims-namespace is --cluster's: without it, exit 2", async () => {
    const run = await cli(["check", "-", "--claims-namespace", "lb-ip-guard"]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /--claims-namespace needs --cluster/);
  });
});
