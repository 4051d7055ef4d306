// check and the webhook agree on the address lifecycle: random clusters (Services, Namespaces
// with quotas, AddressReservations, claim Leases pending, retaining and expired) and random
// manifests (Services asking for an address, for none, auto-assigned, updates of existing ones,
// AddressReservations) go through `lb-ip-guard check` and through the webhook's HTTP app
// (POST /mutate, the patch applied, POST /validate, as the API server calls it), whose view is
// built here from the same objects the way its watches hold them. Each object must get the same
// decision, addresses, reason and message from both.

import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import fc from "fast-check";
import { pino } from "pino";
import { applyPatch, type PatchOperation } from "../../../src/admission/patch.ts";
import type { AdmissionState } from "../../../src/admission/ports.ts";
import { runCheck } from "../../../src/cli/check/command.ts";
import { claimOwner, parseClaim } from "../../../src/cluster/claims/lease.ts";
import {
  formatAddress,
  type IPAddress,
  parseAddress,
  sameAddress,
} from "../../../src/ipam/address.ts";
import { parseQuota, QUOTA_ANNOTATION } from "../../../src/ipam/decide/quota.ts";
import { type ClusterView, policyFor, recordService } from "../../../src/ipam/decide.ts";
import { ReservationIndex, reservationSpecOf } from "../../../src/ipam/reservations.ts";
import { RetainedAddresses } from "../../../src/ipam/retained.ts";
import {
  addressRequest,
  type ServiceObject,
  serviceRef,
  statusAddresses,
} from "../../../src/ipam/service.ts";
import { UsageIndex } from "../../../src/ipam/usage.ts";
import { buildApp } from "../../../src/server/app.ts";
import { poolSet } from "../../admission/fixtures.ts";
import { claim, configMap, namespace, reservation, service, yaml } from "./helpers.ts";

const POOL = "- name: lan\n  protocol: layer2\n  addresses:\n  - 10.0.0.10-10.0.0.14";
const HOUR = 3_600_000;
const SEED = Number(process.env.LB_IP_GUARD_AGREEMENT_SEED ?? Date.now() % 1_000_000);

const address = fc.integer({ min: 10, max: 15 }).map((n) => `10.0.0.${n}`);
const ref = fc
  .tuple(fc.constantFrom("a", "b"), fc.constantFrom("s0", "s1", "s2"))
  .map(([ns, name]) => `${ns}/${name}`);

const scenario = fc.record({
  quotas: fc.tuple(
    fc.option(fc.constantFrom("0", "1", "2", "3", "x")),
    fc.option(fc.constantFrom("0", "1", "2", "3")),
  ),
  services: fc.uniqueArray(fc.record({ ref, ip: address, served: fc.boolean() }), {
    maxLength: 3,
    selector: (each) => each.ref,
  }),
  leases: fc.uniqueArray(
    fc.record({
      ip: address,
      ref,
      retention: fc.constantFrom("none", "running", "running", "ended"),
    }),
    { maxLength: 3, selector: (each) => each.ip },
  ),
  reservations: fc.uniqueArray(
    fc.record({
      ns: fc.constantFrom("a", "b"),
      name: fc.constantFrom("r0", "r1"),
      ip: address,
      serviceName: fc.option(fc.constantFrom("s0", "s1")),
    }),
    { maxLength: 2, selector: (each) => `${each.ns}/${each.name}` },
  ),
  manifests: fc.array(
    fc.oneof(
      fc.record({
        kind: fc.constant("service" as const),
        ref,
        ip: fc.option(address, { freq: 2 }),
        auto: fc.boolean(),
      }),
      fc.record({
        kind: fc.constant("reservation" as const),
        ns: fc.constantFrom("a", "b"),
        name: fc.constantFrom("r0", "r1", "r2"),
        ip: address,
        serviceName: fc.option(fc.constantFrom("s0", "s1")),
      }),
    ),
    { minLength: 1, maxLength: 6 },
  ),
});
type Scenario = typeof scenario extends fc.Arbitrary<infer T> ? T : never;

/** Cases run first, so that every run meets what random ones meet only now and then. */
const EXAMPLES: Scenario[] = [
  {
    // Given back to its re-created Service; taken from it, with a warning, by another.
    quotas: [null, "2"],
    services: [{ ref: "b/s0", ip: "10.0.0.10", served: true }],
    leases: [
      { ip: "10.0.0.11", ref: "a/s0", retention: "running" },
      { ip: "10.0.0.12", ref: "a/s1", retention: "running" },
      { ip: "10.0.0.13", ref: "a/s2", retention: "ended" },
    ],
    reservations: [{ ns: "b", name: "r0", ip: "10.0.0.14", serviceName: "s1" }],
    manifests: [
      { kind: "service", ref: "a/s0", ip: null, auto: true },
      { kind: "service", ref: "b/s2", ip: "10.0.0.12", auto: false },
      { kind: "service", ref: "a/s1", ip: null, auto: false },
      { kind: "service", ref: "b/s1", ip: null, auto: false },
      { kind: "reservation", ns: "b", name: "r1", ip: "10.0.0.13", serviceName: null },
    ],
  },
  {
    // A pending claim held for its Service; the ratchet past a lowered quota.
    quotas: ["1", null],
    services: [
      { ref: "a/s0", ip: "10.0.0.10", served: true },
      { ref: "a/s1", ip: "10.0.0.11", served: false },
    ],
    leases: [{ ip: "10.0.0.12", ref: "b/s0", retention: "none" }],
    reservations: [],
    manifests: [
      { kind: "service", ref: "a/s0", ip: "10.0.0.10", auto: false },
      { kind: "service", ref: "a/s2", ip: "10.0.0.13", auto: false },
      { kind: "service", ref: "a/s1", ip: "10.0.0.12", auto: false },
      { kind: "service", ref: "b/s0", ip: null, auto: false },
    ],
  },
  {
    // A claim freed when its Service moves off the address, which another then takes.
    quotas: [null, null],
    services: [{ ref: "a/s2", ip: "10.0.0.13", served: false }],
    leases: [{ ip: "10.0.0.13", ref: "a/s2", retention: "none" }],
    reservations: [],
    manifests: [
      { kind: "service", ref: "a/s2", ip: "10.0.0.14", auto: false },
      { kind: "service", ref: "b/s2", ip: "10.0.0.13", auto: false },
    ],
  },
  {
    // A retained address taken by another Service is no longer retained once it moves off.
    quotas: [null, null],
    services: [],
    leases: [{ ip: "10.0.0.11", ref: "a/s0", retention: "running" }],
    reservations: [],
    manifests: [
      { kind: "service", ref: "b/s1", ip: "10.0.0.11", auto: false },
      { kind: "service", ref: "b/s1", ip: "10.0.0.12", auto: false },
      { kind: "service", ref: "a/s0", ip: null, auto: false },
    ],
  },
];

/** The scenario as documents: what is in the cluster, and the manifests in order. */
function documents(s: Scenario, now: number) {
  const existing = [
    ...s.quotas.flatMap((quota, i) =>
      quota === null ? [] : [namespace(["a", "b"][i] as string, quota)],
    ),
    ...s.services.map((each) => {
      const object = JSON.parse(service(each.ref, { loadBalancerIP: each.ip }));
      return JSON.stringify(
        each.served
          ? { ...object, status: { loadBalancer: { ingress: [{ ip: each.ip }] } } }
          : object,
      );
    }),
    ...s.reservations.map((each) =>
      reservation(`${each.ns}/${each.name}`, [each.ip], each.serviceName ?? undefined),
    ),
    ...s.leases.map((each) =>
      claim(
        each.ip,
        each.ref,
        each.retention === "none"
          ? undefined
          : each.retention === "running"
            ? { since: now - HOUR, until: now + 24 * HOUR }
            : { since: now - 48 * HOUR, until: now - HOUR },
      ),
    ),
  ];
  const manifests = s.manifests.map((each) =>
    each.kind === "reservation"
      ? reservation(`${each.ns}/${each.name}`, [each.ip], each.serviceName ?? undefined)
      : each.auto && each.ip === null
        ? service(each.ref, { type: "ClusterIP" }, { "lb-ip-guard.dev/auto-assign": "true" })
        : service(each.ref, each.ip === null ? {} : { loadBalancerIP: each.ip }),
  );
  return { existing, manifests };
}

interface Row {
  readonly object: string;
  readonly decision: string;
  readonly ips: readonly string[];
  readonly reason: string | null;
  readonly message: string;
}

/** What `lb-ip-guard check --format json` decides. */
async function throughCheck(dir: string, existing: string[], manifests: string[]): Promise<Row[]> {
  const file = join(dir, "existing.yaml");
  await writeFile(file, yaml(...existing));
  let stdout = "";
  const code = await runCheck(["--format", "json", "--existing", file, "-"], {
    stdout: (text) => {
      stdout += text;
    },
    stderr: () => {},
    readStdin: async () => yaml(configMap(POOL), ...manifests),
  });
  assert.ok(code === 0 || code === 1, `exit ${code}`);
  const report = JSON.parse(stdout) as {
    results: ({ kind?: string; namespace: string; name: string } & Omit<Row, "object">)[];
  };
  return report.results.map((result) => ({
    object: `${result.kind ?? "Service"} ${result.namespace}/${result.name}`,
    decision: result.decision,
    // A refusal's addresses are what its message names; the webhook answers the message only.
    ips: result.decision === "denied" ? [] : result.ips,
    reason: result.reason,
    message: result.message,
  }));
}

/**
 * What the webhook answers, one review after the other, its state held as its watches would hold
 * it: the Services stored, the pending claims holding their addresses (a claim is freed when its
 * Service gives the address up), running retentions, reservations, quotas.
 */
async function throughWebhook(existing: string[], manifests: string[], now: number) {
  const policy = policyFor();
  const usage = new UsageIndex();
  const stored = new Map<string, ServiceObject>();
  const retained = new RetainedAddresses();
  const reservations = new ReservationIndex();
  const quotas = new Map<string, number>();
  const claims = new Map<string, string>();
  for (const object of existing.map((text) => JSON.parse(text))) {
    if (object.kind === "Service") {
      stored.set(serviceRef(object), object);
      recordService(usage, object, policy, serviceRef(object));
    } else if (object.kind === "Namespace") {
      const quota = parseQuota(object.metadata.annotations?.[QUOTA_ANNOTATION]);
      if (quota !== undefined) quotas.set(object.metadata.name, quota);
    } else if (object.kind === "Lease") {
      const parsed = parseClaim(object);
      assert.ok(parsed !== undefined);
      if (parsed.retention === undefined) {
        usage.set(claimOwner(parsed.name), parsed.holder, [parsed.address]);
        claims.set(claimOwner(parsed.name), parsed.holder.ref);
      } else if (parsed.retention.until > now) {
        retained.retain(parsed.address, { ref: parsed.holder.ref, ...parsed.retention });
      }
    } else {
      reservations.put(parsedReservation(object));
    }
  }
  const view: ClusterView = {
    pools: poolSet(`address-pools:\n${POOL}`),
    usage,
    retained,
    reservations,
    namespaceLabels: (ns) => ({ "kubernetes.io/metadata.name": ns }),
    quotaOf: (ns) => quotas.get(ns),
  };
  // Reviews come one at a time and the watch's record of each admitted object comes before the
  // next: a grant needs no hold of its own here.
  const state: AdmissionState = {
    context: () => ({ view, ready: true, policy, ipTarget: "spec" }),
    record: () => {},
  };
  const app = buildApp({ state, logger: pino({ level: "silent" }) });
  let uid = 0;
  const review = async (path: string, request: Record<string, unknown>) => {
    const response = await app.inject({
      method: "POST",
      url: path,
      headers: { "content-type": "application/json" },
      payload: JSON.stringify({
        apiVersion: "admission.k8s.io/v1",
        kind: "AdmissionReview",
        request: { uid: `review-${++uid}`, ...request },
      }),
    });
    assert.equal(response.statusCode, 200, response.body);
    return JSON.parse(response.body).response as {
      allowed: boolean;
      patch?: string;
      status?: { message: string };
    };
  };
  const refusal = (object: string, answer: { status?: { message: string } }): Row => {
    const [, reason = "", message = ""] = /^(\w+): (.*)$/s.exec(answer.status?.message ?? "") ?? [];
    return { object, decision: "denied", ips: [], reason, message };
  };

  const rows: Row[] = [];
  for (const object of manifests.map((text) => JSON.parse(text))) {
    const { namespace: ns, name } = object.metadata;
    if (object.kind === "AddressReservation") {
      const what = `AddressReservation ${ns}/${name}`;
      const answer = await review("/validate", {
        kind: { group: "lb-ip-guard.dev", version: "v1alpha1", kind: "AddressReservation" },
        resource: {
          group: "lb-ip-guard.dev",
          version: "v1alpha1",
          resource: "addressreservations",
        },
        operation: reservations.named(ns, name) === undefined ? "CREATE" : "UPDATE",
        namespace: ns,
        name,
        object,
      });
      if (!answer.allowed) {
        rows.push(refusal(what, answer));
        continue;
      }
      const admitted = parsedReservation(object);
      reservations.put(admitted);
      rows.push({
        object: what,
        decision: "allowed",
        ips: admitted.addresses.map(formatAddress),
        reason: null,
        message: `${what} reserves ${admitted.addresses.map(formatAddress).join(", ")} of pool "lan" for ${admitted.serviceName === undefined ? `the Services of namespace ${ns}` : `${ns}/${admitted.serviceName}`}`,
      });
      continue;
    }
    const what = `Service ${ns}/${name}`;
    const old = stored.get(`${ns}/${name}`);
    const request = {
      kind: { group: "", version: "v1", kind: "Service" },
      resource: { group: "", version: "v1", resource: "services" },
      operation: old === undefined ? "CREATE" : "UPDATE",
      namespace: ns,
      name,
      object,
      ...(old !== undefined && { oldObject: old }),
    };
    const mutated = await review("/mutate", request);
    if (!mutated.allowed) {
      rows.push(refusal(what, mutated));
      continue;
    }
    const patch: PatchOperation[] =
      mutated.patch === undefined
        ? []
        : JSON.parse(Buffer.from(mutated.patch, "base64").toString());
    const patched: ServiceObject = applyPatch(object, patch);
    const validated = await review("/validate", { ...request, object: patched });
    if (!validated.allowed) {
      rows.push(refusal(what, validated));
      continue;
    }
    // What the API server stores (an update keeps the stored status), as the watch then sees it.
    const kept: ServiceObject =
      old?.status === undefined ? patched : { ...patched, status: old.status };
    const before = usage.addressesOf(`${ns}/${name}`);
    stored.set(`${ns}/${name}`, kept);
    recordService(usage, kept, policy, `${ns}/${name}`);
    const holds = usage.addressesOf(`${ns}/${name}`);
    // A claim whose holder is seen giving its address up is freed at once; one it never held
    // stays until the claim's grace is over (later than any run here).
    for (const [owner, holder] of claims) {
      const claimed = usage.addressesOf(owner)[0];
      if (holder !== `${ns}/${name}` || claimed === undefined) continue;
      const gaveUp = (list: readonly IPAddress[]) =>
        list.some((each) => sameAddress(each, claimed));
      if (gaveUp(before) && !gaveUp(holds)) usage.delete(owner);
    }
    for (const each of holds) retained.drop(each);
    // What it is granted: what it asks for (or was assigned), else what MetalLB serves it.
    const asked = addressRequest(patched, policy.reads);
    const ips =
      asked.source === "spec" || asked.source === "annotation"
        ? asked.texts
        : statusAddresses(kept);
    rows.push({
      object: what,
      decision: patch.length > 0 ? "assigned" : "allowed",
      ips,
      reason: null,
      message: "",
    });
  }
  return rows;
}

function parsedReservation(object: unknown) {
  const spec = reservationSpecOf(object, "default");
  return {
    ...spec,
    addresses: spec.addresses.map((text) => {
      const parsed = parseAddress(text);
      assert.ok(parsed.ok);
      return parsed.value;
    }),
  };
}

describe("check and the webhook agree on retention, reservations and quotas", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "lb-ip-guard-agreement-"));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test(`random clusters and manifests: the same decisions (seed ${SEED})`, async () => {
    const reasons = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(scenario, async (s) => {
        const now = Date.now();
        const { existing, manifests } = documents(s, now);
        const checked = await throughCheck(dir, existing, manifests);
        const answered = await throughWebhook(existing, manifests, now);
        // The webhook's answer to an admitted Service has no message: compare the decision.
        const comparable = checked.map((row, index) =>
          row.decision === "denied" || row.object.startsWith("AddressReservation")
            ? row
            : { ...row, message: answered[index]?.message ?? "" },
        );
        assert.deepEqual(
          comparable,
          answered,
          `check ${JSON.stringify(comparable)}\nwebhook ${JSON.stringify(answered)}`,
        );
        for (const row of checked) {
          const key = /gets back/.test(row.message)
            ? "given back"
            : /reserved by AddressReservation/.test(row.message)
              ? "reserved, given"
              : (row.reason ?? row.decision);
          reasons.set(key, (reasons.get(key) ?? 0) + 1);
        }
      }),
      { seed: SEED, numRuns: 200, examples: EXAMPLES.map((example) => [example]) },
    );
    process.stderr.write(
      `agreement: ${[...reasons].map(([key, count]) => `${key} ${count}`).join(", ")}\n`,
    );
    // The generator reaches every decision the lifecycle adds.
    for (const key of [
      "AddressReserved",
      "QuotaExceeded",
      "AddressInUse",
      "given back",
      "reserved, given",
      "assigned",
      "allowed",
    ]) {
      assert.ok((reasons.get(key) ?? 0) > 0, `no ${key} among ${[...reasons.keys()].join(", ")}`);
    }
  });
});
