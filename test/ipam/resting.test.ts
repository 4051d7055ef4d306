import assert from "node:assert/strict";
import { test } from "node:test";
import { RestingAddresses } from "../../src/ipam/resting.ts";
import { address } from "./fixtures.ts";

const value = (text: string) => address(text).value;

test("a resting address is kept from every Service but the one that released it, until its rest ends", () => {
  const resting = new RestingAddresses();
  resting.rest(address("10.0.0.1"), "team-a/web", 1000);
  resting.rest(address("fd00::1"), "team-a/web", 1000);
  assert.equal(resting.keepsFrom("IPv4", value("10.0.0.1"), "team-b/api"), true);
  assert.equal(resting.keepsFrom("IPv4", value("10.0.0.1"), undefined), true);
  assert.equal(resting.keepsFrom("IPv4", value("10.0.0.1"), "team-a/web"), false);
  assert.equal(resting.keepsFrom("IPv4", value("10.0.0.2"), "team-b/api"), false);
  assert.equal(resting.keepsFrom("IPv6", value("fd00::1"), "team-b/api"), true);
  assert.deepEqual(resting.releaseOf("IPv4", value("10.0.0.1")), {
    ref: "team-a/web",
    until: 1000,
  });
  resting.expire(999);
  assert.equal(resting.size, 2);
  resting.expire(1000);
  assert.equal(resting.size, 0);
  assert.equal(resting.keepsFrom("IPv4", value("10.0.0.1"), "team-b/api"), false);
});

test("a second release rests again from its own time, whoever released it, and expiry follows release order", () => {
  const resting = new RestingAddresses();
  resting.rest(address("10.0.0.1"), "ns/a", 100);
  resting.rest(address("10.0.0.2"), "ns/b", 200);
  resting.rest(address("10.0.0.1"), "ns/c", 300);
  resting.expire(200);
  assert.equal(resting.releaseOf("IPv4", value("10.0.0.2")), undefined);
  assert.deepEqual(resting.releaseOf("IPv4", value("10.0.0.1")), { ref: "ns/c", until: 300 });
  assert.equal(resting.keepsFrom("IPv4", value("10.0.0.1"), "ns/a"), true);
});
