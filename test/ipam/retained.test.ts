// RetainedAddresses (src/ipam/retained.ts): retain, drop, per-Service lists oldest first, the
// values allocations pass over, and the one retained longest; checked against a plain model.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { formatAddress } from "../../src/ipam/address.ts";
import { RetainedAddresses } from "../../src/ipam/retained.ts";
import { address } from "./fixtures.ts";

const retention = (ref: string, since: number) => ({ ref, since, until: since + 1000 });

describe("RetainedAddresses", () => {
  it("retains for a Service, lists its addresses oldest first per family, and drops", () => {
    const retained = new RetainedAddresses();
    retained.retain(address("10.0.0.2"), retention("a/web", 20));
    retained.retain(address("10.0.0.1"), retention("a/web", 10));
    retained.retain(address("fd00::1"), retention("a/web", 5));
    retained.retain(address("10.0.0.3"), retention("b/api", 1));
    assert.deepEqual(retained.retainedFor("a/web", "IPv4").map(formatAddress), [
      "10.0.0.1",
      "10.0.0.2",
    ]);
    assert.deepEqual(retained.retainedFor("a/web", "IPv6").map(formatAddress), ["fd00::1"]);
    assert.equal(retained.size, 4);
    retained.drop(address("10.0.0.1"));
    retained.drop(address("10.0.0.9")); // never retained: nothing happens
    assert.deepEqual(retained.retainedFor("a/web", "IPv4").map(formatAddress), ["10.0.0.2"]);
    assert.equal(retained.retentionOf("IPv4", address("10.0.0.1").value), undefined);
    const values = retained.values("IPv4");
    assert.equal(values.size, 2);
    assert.ok(values.has(address("10.0.0.2").value) && values.has(address("10.0.0.3").value));
  });

  it("a second retention of an address replaces the first, for its new Service", () => {
    const retained = new RetainedAddresses();
    retained.retain(address("10.0.0.1"), retention("a/web", 10));
    retained.retain(address("10.0.0.1"), retention("b/api", 30));
    assert.deepEqual(retained.retainedFor("a/web", "IPv4"), []);
    assert.deepEqual(retained.retainedFor("b/api", "IPv4").map(formatAddress), ["10.0.0.1"]);
    assert.equal(retained.size, 1);
  });

  it("longestRetained takes the oldest retention that the caller accepts", () => {
    const retained = new RetainedAddresses();
    retained.retain(address("10.0.0.1"), retention("a/x", 30));
    retained.retain(address("10.0.0.2"), retention("a/y", 10));
    retained.retain(address("10.0.0.3"), retention("a/z", 20));
    assert.equal(retained.longestRetained("IPv4", () => true)?.retention.ref, "a/y");
    const notTwo = (value: bigint) => value !== address("10.0.0.2").value;
    assert.equal(retained.longestRetained("IPv4", notTwo)?.retention.ref, "a/z");
    assert.equal(
      retained.longestRetained("IPv4", () => false),
      undefined,
    );
    assert.equal(
      retained.longestRetained("IPv6", () => true),
      undefined,
    );
  });

  it("agrees with a plain map under any sequence of retains and drops", () => {
    const op = fc.record({
      drop: fc.boolean(),
      last: fc.integer({ min: 0, max: 7 }),
      ref: fc.constantFrom("a/web", "a/api", "b/web"),
      since: fc.integer({ min: 0, max: 100 }),
    });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const retained = new RetainedAddresses();
        const model = new Map<string, { ref: string; since: number }>();
        for (const { drop, last, ref, since } of ops) {
          const ip = `10.0.0.${last}`;
          if (drop) {
            retained.drop(address(ip));
            model.delete(ip);
          } else {
            retained.retain(address(ip), retention(ref, since));
            model.set(ip, { ref, since });
          }
        }
        assert.equal(retained.size, model.size);
        for (const ref of ["a/web", "a/api", "b/web"]) {
          const expected = [...model]
            .filter(([, entry]) => entry.ref === ref)
            .map(([ip]) => ip)
            .sort();
          assert.deepEqual(retained.retainedFor(ref, "IPv4").map(formatAddress).sort(), expected);
        }
        const oldest = Math.min(...[...model.values()].map((entry) => entry.since));
        const found = retained.longestRetained("IPv4", () => true);
        assert.equal(found?.retention.since, model.size === 0 ? undefined : oldest);
        assert.deepEqual(
          [...retained.entries()].map(([each]) => formatAddress(each)).sort(),
          [...model.keys()].sort(),
        );
      }),
    );
  });
});
