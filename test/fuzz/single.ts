// single.ts — the single-thread runner: one seeded sequence on the calling thread, every
// invariant (statistics included) after every step; replays exactly from its seed.
import * as hak from "../../src/index.ts";
import { Sequence } from "./sequence.ts";
import { failure } from "./failure.ts";
import { defaults, type FuzzOptions, type FuzzReport } from "./options.ts";

/** Runs one seeded sequence on the calling thread; throws a FuzzFailure on the first broken invariant. */
export function runFuzz(options: FuzzOptions): FuzzReport {
  const started = performance.now();
  const seq = new Sequence({ ...defaults(options), thread: 0, threads: 1, learn: true, handoff: false });
  seq.baseline = hak.stats();
  const every = options.progressEvery ?? 10_000;
  try {
    for (let i = 0; i < options.ops; i++) {
      if (options.trace) console.error(`step=${seq.step} live=${seq.live.size}`);
      seq.runStep();
      seq.checkStats();
      if (options.onProgress && seq.step % every === 0) options.onProgress(seq.step, seq.live.size);
    }
    seq.freeAll();
    seq.setRouting(seq.initialRouting);
    seq.op = "end";
    seq.checkStats();
  } catch (error) {
    try {
      hak.setRouting(seq.initialRouting);
    } catch {}
    throw failure(options.seed, "", seq, error);
  }
  return { seed: options.seed, threads: 1, steps: seq.step, counts: seq.counts, ms: performance.now() - started };
}
