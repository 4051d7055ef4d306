// The Lease of an address claim (src/cluster/claims/lease.ts): its name, what it records and
// reads back, and the rule of when a claim may be collected.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { asRecord } from "../../../src/base/objects.ts";
import {
  ADMISSION_TAIL_MS,
  type Claim,
  claimLease,
  collectReason,
  type HolderView,
  leaseName,
  parseClaim,
  RELEASE_MARGIN_MS,
  RETENTION_KEYS,
  renewedLease,
  retainedLease,
} from "../../../src/cluster/claims/lease.ts";
import { address, holder, NAMESPACE } from "./fake-leases.ts";

describe("Lease names and contents", () => {
  it("names a claim after the canonical address", () => {
    assert.equal(leaseName(address("192.168.35.100")), "ip-192-168-35-100");
    assert.equal(leaseName(address("FD00:10:0::5")), "ip-fd00-10--5");
    assert.equal(leaseName(address("fd00::")), "ip-fd00--0");
    assert.equal(leaseName(address("::")), "ip---0");
    assert.equal(leaseName(address("2001:db8:1:2:3:4:5:6")), "ip-2001-db8-1-2-3-4-5-6");
  });

  it("records holder, pool and the sharing data, and reads them back", () => {
    const sharing = holder("team-a/dns", {
      sharingKey: "dns",
      ports: ["UDP/53", "TCP/53"],
      backendKey: "Local{app=dns}",
    });
    const lease = claimLease(
      NAMESPACE,
      address("10.0.0.7"),
      sharing,
      "lan",
      Date.UTC(2026, 0, 2),
      "pod-1",
    );
    assert.deepEqual(lease.metadata, {
      name: "ip-10-0-0-7",
      namespace: NAMESPACE,
      labels: {
        "app.kubernetes.io/managed-by": "lb-ip-guard",
        "lb-ip-guard.dev/service-namespace": "team-a",
      },
      annotations: {
        "lb-ip-guard.dev/address": "10.0.0.7",
        "lb-ip-guard.dev/holder": "team-a/dns",
        "lb-ip-guard.dev/pool": "lan",
        "lb-ip-guard.dev/sharing-key": "dns",
        "lb-ip-guard.dev/ports": "UDP/53,TCP/53",
        "lb-ip-guard.dev/backend-key": "Local{app=dns}",
        "lb-ip-guard.dev/claimed-by": "pod-1",
      },
    });
    assert.deepEqual(lease.spec, {
      holderIdentity: "team-a/dns",
      acquireTime: "2026-01-02T00:00:00.000000Z",
      renewTime: "2026-01-02T00:00:00.000000Z",
    });
    const claim = parseClaim(lease);
    assert.deepEqual(claim?.holder, sharing);
    assert.equal(claim?.pool, "lan");
    assert.equal(claim?.writtenAt, Date.UTC(2026, 0, 2));
    assert.equal(claim?.acquiredAt, Date.UTC(2026, 0, 2));
  });

  it("renews a claim for a repeated admission without moving the first grant's time", () => {
    const sharing = holder("team-a/dns");
    const first = Date.UTC(2026, 0, 2);
    const lease = claimLease(NAMESPACE, address("10.0.0.7"), sharing, "lan", first, "pod-1");
    const fresh = claimLease(
      NAMESPACE,
      address("10.0.0.7"),
      sharing,
      "lan",
      first + 50_000,
      "pod-2",
    );
    const renewed = parseClaim(renewedLease(lease, fresh, false));
    assert.equal(renewed?.acquiredAt, first);
    assert.equal(renewed?.writtenAt, first + 50_000);
    // A grant anew (the first one's grace was over): acquireTime moves too.
    const regranted = parseClaim(renewedLease(lease, fresh, true));
    assert.equal(regranted?.acquiredAt, first + 50_000);
  });

  it("a retention is read back, and a renewal for its holder drops it and takes a new quota place", () => {
    const lease = {
      ...claimLease(NAMESPACE, address("10.0.0.7"), holder("a/b"), "lan", 0, "pod-1"),
    };
    (lease.metadata as Record<string, unknown>).resourceVersion = "41";
    const since = Date.UTC(2026, 0, 2);
    const retained = retainedLease(lease, since, since + 3_600_000);
    assert.deepEqual(parseClaim(retained)?.retention, { since, until: since + 3_600_000 });
    assert.equal(parseClaim(retained)?.createdRevision, "41");
    const fresh = claimLease(NAMESPACE, address("10.0.0.7"), holder("a/b"), "lan", since, "pod-2");
    const taken = renewedLease(retained, fresh, true);
    assert.equal(parseClaim(taken)?.retention, undefined);
    const annotations = asRecord(asRecord(taken.metadata).annotations);
    for (const key of RETENTION_KEYS) assert.equal(annotations[key], undefined);
    // A plain renewal keeps the place the claim was created at, which its write would move.
    const renewed = renewedLease(lease, fresh, false);
    assert.equal(
      asRecord(asRecord(renewed.metadata).annotations)["lb-ip-guard.dev/created-revision"],
      "41",
    );
  });

  it("ignores Leases that are not well-formed claims", () => {
    assert.equal(parseClaim({ metadata: { name: "leader" } }), undefined);
    const lease = claimLease(NAMESPACE, address("10.0.0.7"), holder("a/b"), "", 0, "x");
    (lease.metadata as Record<string, unknown>).name = "ip-10-0-0-8";
    assert.equal(parseClaim(lease), undefined);
  });
});

describe("collectReason", () => {
  const claim: Claim = {
    name: "ip-10-0-0-7",
    resourceVersion: "1",
    createdRevision: "1",
    address: address("10.0.0.7"),
    holder: holder("team-a/web"),
    pool: "",
    claimedBy: "pod-1",
    acquiredAt: 1_000_000,
    writtenAt: 1_000_000,
  };
  const view = (holds: boolean, releasedAt?: number): HolderView => ({
    holds: () => holds,
    releasedAt: () => releasedAt,
  });

  it("keeps a claim whose Service holds the address, however old", () => {
    assert.equal(collectReason(claim, view(true), 1e12, 60_000), undefined);
  });

  it("keeps a young claim whose Service is not seen yet (an admission in flight)", () => {
    assert.equal(collectReason(claim, view(false), 1_000_000 + 59_000, 60_000), undefined);
  });

  it("collects it once the grace period is over", () => {
    assert.match(
      collectReason(claim, view(false), 1_000_000 + 61_000, 60_000) ?? "",
      /team-a\/web does not hold 10\.0\.0\.7 and was granted it 61 s ago \(grace 60 s\)/,
    );
  });

  it("counts the grace from the first grant: renewals by repeated admissions do not extend it", () => {
    // Renewed by a validating call just before the grace ended: kept for the rest of that
    // admission (ADMISSION_TAIL_MS), then collected, whatever repeats wrote in between.
    const renewed = { ...claim, writtenAt: 1_000_000 + 59_000 };
    assert.equal(collectReason(renewed, view(false), 1_000_000 + 61_000, 60_000), undefined);
    assert.match(
      collectReason(renewed, view(false), 1_000_000 + 59_001 + ADMISSION_TAIL_MS, 60_000) ?? "",
      /granted it 69 s ago/,
    );
  });

  it("collects at once when the Service was seen giving the address up after the claim", () => {
    const released = 1_000_000 + RELEASE_MARGIN_MS + 1;
    assert.match(
      collectReason(claim, view(false, released), released + 5, 60_000) ?? "",
      /team-a\/web gave up 10\.0\.0\.7/,
    );
    // Released right around the claim's write: it may be a newer admission of the same name,
    // whose Service shows within the admission's tail; past it, the release counts.
    assert.equal(collectReason(claim, view(false, 1_000_500), 1_000_600, 60_000), undefined);
    const tailOver = 1_000_000 + ADMISSION_TAIL_MS + 1;
    assert.equal(collectReason(claim, view(false, 1_000_500), tailOver - 2, 60_000), undefined);
    assert.match(
      collectReason(claim, view(false, 1_000_500), tailOver, 60_000) ?? "",
      /team-a\/web gave up 10\.0\.0\.7/,
    );
    // Without a release, the tail alone is not enough: the grace counts.
    assert.equal(collectReason(claim, view(false), tailOver, 60_000), undefined);
  });

  it("keeps a retention, held by no one, past every grace, and collects it once it ends", () => {
    const retention = { ...claim, retention: { since: 1_000_000, until: 5_000_000 } };
    assert.equal(collectReason(retention, view(false, 2_000_000), 4_999_999, 1000), undefined);
    assert.match(
      collectReason(retention, view(false), 5_000_000, 1000) ?? "",
      /the retention of 10\.0\.0\.7 for team-a\/web ended/,
    );
  });
});
