import assert from "node:assert/strict";
import { test } from "node:test";
import { RestingAddresses } from "../../src/ipam/resting.ts";
import { address } from "./fixtures.ts";

const value = (text: string) => address(text).value;
const ends = (refusals: number, rest: number) => ({ refusals, rest });

test("a resting address is kept from every Service but the one that released it, until its rest ends", () => {
  const resting = new RestingAddresses();
  resting.rest(address("10.0.0.1"), "team-a/web", ends(500, 1000));
  resting.rest(address("fd00::1"), "team-a/web", ends(500, 1000));
  assert.equal(resting.keepsFrom("IPv4", value("10.0.0.1"), "team-b/api"), true);
  assert.equal(resting.keepsFrom("IPv4", value("10.0.0.1"), undefined), true);
  assert.equal(resting.keepsFrom("IPv4", value("10.0.0.1"), "team-a/web"), false);
  assert.equal(resting.keepsFrom("IPv4", value("10.0.0.2"), "team-b/api"), false);
  assert.equal(resting.keepsFrom("IPv6", value("fd00::1"), "team-b/api"), true);
  resting.expire(999);
  assert.equal(resting.size, 2);
  assert.equal(resting.keepsFrom("IPv4", value("10.0.0.1"), "team-b/api"), true);
  resting.expire(1000);
  assert.equal(resting.size, 0);
  assert.equal(resting.keepsFrom("IPv4", value("10.0.0.1"), "team-b/api"), false);
});

test("explicit requests are refused for the first part of the rest only", () => {
  const resting = new RestingAddresses();
  resting.rest(address("10.0.0.1"), "team-a/web", ends(500, 1000));
  const release = resting.refusalOf("IPv4", value("10.0.0.1"));
  assert.deepEqual([release?.ref, release?.refusedUntil], ["team-a/web", 500]);
  resting.expire(499);
  assert.equal(resting.refusalOf("IPv4", value("10.0.0.1"))?.ref, "team-a/web");
  resting.expire(500);
  assert.equal(resting.refusalOf("IPv4", value("10.0.0.1")), undefined);
  assert.equal(resting.keepsFrom("IPv4", value("10.0.0.1"), "team-b/api"), true, "still resting");
});

test("a second release rests again from its own time, whoever released it, and expiry follows release order", () => {
  const resting = new RestingAddresses();
  resting.rest(address("10.0.0.1"), "ns/a", ends(100, 100));
  resting.rest(address("10.0.0.2"), "ns/b", ends(200, 200));
  resting.rest(address("10.0.0.1"), "ns/c", ends(300, 300));
  resting.expire(200);
  assert.equal(resting.keepsFrom("IPv4", value("10.0.0.2"), "ns/a"), false);
  assert.equal(resting.refusalOf("IPv4", value("10.0.0.1"))?.ref, "ns/c");
  assert.equal(resting.keepsFrom("IPv4", value("10.0.0.1"), "ns/a"), true);
});
