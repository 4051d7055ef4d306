// `npm run soak:chaos -- --minutes N [--seed S] [--allocator elected|claims]
// [--metallb v0.16.2|v0.11.0]`: the nemesis of test/e2e/nemesis.test.ts with a long storm, a
// progress line a minute (SOAK_CHAOS_PROGRESS_MS for another period), and the same table at the
// end. Exit 1 when a check found a violation.

import { parseArgs } from "node:util";
import { newSeed } from "../test/e2e/nemesis/random.ts";
import { reportTable, violationDetails, violations } from "../test/e2e/nemesis/report.ts";
import { runChaos } from "../test/e2e/nemesis/runner.ts";

const { values } = parseArgs({
  options: {
    minutes: { type: "string", default: "10" },
    seed: { type: "string" },
    allocator: { type: "string", default: "elected" },
    metallb: { type: "string" },
  },
});
const allocator = values.allocator;
if (allocator !== "elected" && allocator !== "claims") {
  process.stderr.write(`soak-chaos: --allocator elected|claims, not ${allocator}\n`);
  process.exit(2);
}
// Each mode beside the release it is tested with in npm test, unless told otherwise.
const metallb = values.metallb ?? (allocator === "elected" ? "v0.16.2" : "v0.11.0");
if (metallb !== "v0.16.2" && metallb !== "v0.11.0") {
  process.stderr.write(`soak-chaos: --metallb v0.16.2|v0.11.0, not ${metallb}\n`);
  process.exit(2);
}
const minutes = Number(values.minutes);
const seed = values.seed === undefined ? newSeed() : Number(values.seed);
if (!(minutes > 0) || !Number.isInteger(seed)) {
  process.stderr.write("soak-chaos: --minutes takes a positive number, --seed an integer\n");
  process.exit(2);
}
process.stdout.write(`soak-chaos: seed ${seed} (--seed ${seed} replays it)\n`);
const report = await runChaos({
  seed,
  allocator,
  metallb,
  stormMs: minutes * 60_000,
  log: (line) => process.stdout.write(`soak-chaos: ${line}\n`),
  progressEveryMs: Number(process.env.SOAK_CHAOS_PROGRESS_MS ?? 60_000),
});
process.stdout.write(`${reportTable(report)}${violationDetails(report)}\n`);
process.exit(Object.values(violations(report)).some((count) => count > 0) ? 1 : 0);
