import assert from "node:assert/strict";
import { test } from "node:test";
import { backoffDelay } from "../../src/cluster/reflector.ts";

test("backoff: 1 s doubling to a 30 s cap, jittered to 50-100 %", () => {
  const high = () => 0.999999;
  const low = () => 0;
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 40].map((attempt) => backoffDelay(attempt, undefined, high)),
    [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000],
  );
  assert.deepEqual(
    [0, 1, 5].map((attempt) => backoffDelay(attempt, undefined, low)),
    [500, 1000, 15000],
  );
  assert.equal(backoffDelay(3, { initialMs: 100, maxMs: 500 }, high), 500);
});
