// The names of a serving certificate (src/certs/names.ts): every form of the Service's name,
// extras after, compared as sets and merged without dropping another replica's.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { coversNames, servingNames, unionNames } from "../../src/certs/names.ts";

describe("serving names", () => {
  it("names the Service in every form the API server or a client may dial, extras after", () => {
    assert.deepEqual(servingNames("guard", "net", ["Guard.Example.com", "10.0.0.7", "fd00::0:1"]), {
      dns: [
        "guard.net.svc",
        "guard.net.svc.cluster.local",
        "guard.net",
        "guard",
        "guard.example.com",
      ],
      ips: ["10.0.0.7", "fd00::1"],
    });
    assert.deepEqual(servingNames("guard", "net", ["guard", "10.0.0.7", "10.0.0.7"]).ips, [
      "10.0.0.7",
    ]);
    assert.equal(servingNames("guard", "net", ["guard"]).dns.length, 4, "no duplicate");
  });

  it("compares names as sets and unions them without dropping another replica's", () => {
    const have = { dns: ["a", "B"], ips: ["fd00:0:0:0:0:0:0:1"] };
    assert.ok(coversNames(have, { dns: ["b"], ips: ["fd00::1"] }));
    assert.ok(!coversNames(have, { dns: ["c"], ips: [] }));
    assert.deepEqual(unionNames({ dns: ["c"], ips: ["10.0.0.1"] }, have), {
      dns: ["c", "a", "B"],
      ips: ["10.0.0.1", "fd00::1"],
    });
  });
});
