// The nemesis (issue 26), short: a 60 s storm per allocator mode, each with the MetalLB release
// it is run beside in the field, and every check of nemesis/checks.ts at zero violations. In the
// default mode (claims, ADR 0017) at least 99 % of the creates whose calls reached a running
// replica are answered; the elected allocator's figure is printed. LB_IP_GUARD_NEMESIS_SEED
// replays a run's schedule; the seed is printed first. Long runs: `npm run soak:chaos`
// (scripts/soak-chaos.ts).

import assert from "node:assert/strict";
import { it } from "node:test";
import { DEFAULT_ALLOCATOR } from "../../src/server/config.ts";
import { describeE2E } from "./harness.ts";
import { newSeed } from "./nemesis/random.ts";
import { designAvailability, reportTable, violationDetails, violations } from "./nemesis/report.ts";
import { runChaos } from "./nemesis/runner.ts";

const SEED = Number(process.env.LB_IP_GUARD_NEMESIS_SEED ?? newSeed());
const STORM_MS = 60_000;
const MODES = [
  { allocator: "elected", metallb: "v0.16.2" },
  { allocator: "claims", metallb: "v0.11.0" },
] as const;
const AVAILABILITY_TARGET = 0.99;

process.stderr.write(`nemesis: seed ${SEED} (LB_IP_GUARD_NEMESIS_SEED=${SEED} replays it)\n`);

for (const { allocator, metallb } of MODES) {
  await describeE2E(
    `nemesis: --allocator ${allocator} beside MetalLB ${metallb}`,
    { metallb: [metallb] },
    () => {
      it("a storm of creates, deletes and relabels under freezes and kills: no check finds a violation", async () => {
        const report = await runChaos({
          seed: SEED,
          allocator,
          metallb,
          stormMs: STORM_MS,
          progressEveryMs: 20_000,
          log: (line) => process.stderr.write(`nemesis ${allocator}: ${line}\n`),
        });
        process.stderr.write(`${reportTable(report)}${violationDetails(report)}\n`);
        const found = Object.entries(violations(report)).filter(([, count]) => count > 0);
        assert.deepEqual(
          found,
          [],
          `violations (seed ${SEED}; LB_IP_GUARD_NEMESIS_SEED=${SEED} replays it)`,
        );
        if (allocator === DEFAULT_ALLOCATOR) {
          const { answered, of } = designAvailability(report.load.creates);
          assert.ok(
            answered >= AVAILABILITY_TARGET * of,
            `${answered} of ${of} creates that reached a running replica answered, under ${AVAILABILITY_TARGET * 100} % (seed ${SEED})`,
          );
        }
      });
    },
  );
}
