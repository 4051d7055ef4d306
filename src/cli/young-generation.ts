// V8's young generation, kept small for the commands that read a whole cluster or many files at
// once (check, pools, convert): they keep most of what they allocate until the report is
// written, and V8, seeing so much survive, grows the young generation to its maximum, which on
// a big machine is about 100 MB of resident memory for objects that mostly die young anyway
// (issue 24: 350 MB against 240 MB for check --cluster at 10,000 Services, for some 0.3 s more
// CPU in scavenges). `serve` keeps it small only while its first lists fill its caches, which
// survive as check's objects do; then it gets V8's own sizing back: its reviews' short-lived
// garbage must die young (ADR 0008), which a small young generation would promote.

import { setFlagsFromString } from "node:v8";

/**
 * From now on the young generation does not grow past its current size. The growth factor is
 * read each time V8 would grow it, so unlike --max-semi-space-size it takes effect after start;
 * were it ignored, the only cost is the memory this saves.
 */
export function keepYoungGenerationSmall(): void {
  setFlagsFromString("--semi-space-growth-factor=1");
}

/** V8's own growth of the young generation again (its default factor, 2). */
export function letYoungGenerationGrow(): void {
  setFlagsFromString("--semi-space-growth-factor=2");
}
