// verdict.ts — does a candidate beat the defaults? Decided on the confirmation runs only:
// the candidate and the defaults run alternately (defaults, candidate, defaults, …), each
// adjacent pair gives one score (the candidate's run against the defaults' run of the same
// pair), and the candidate wins only when every pair scores above 1 — its gain is larger
// than the run-to-run spread those pairs show — over at least MIN_PAIRS pairs.
//
// Why not the median: the best of many candidates screened on short runs is flattered by
// noise (the winner's curse); re-measured, a setting that changes nothing lands at ×1.00
// give or take the noise, and its median pair is above 1 about half the time. Requiring
// every one of n pairs to favour it leaves that chance at 2^-n (3 % for the default 5).
import { ratios, score, median, type Measurement, type Ratios, type Weights } from "./score.ts";

/** Fewer pairs than this show no spread worth the name: no winner is declared. */
export const MIN_PAIRS = 3;

/** One interleaved pair of runs: the defaults', then the candidate's. */
export interface Pair {
  defaults: Measurement;
  candidate: Measurement;
}

/** The pair scores' median and range (higher is better; the defaults are 1). */
export interface Interval {
  n: number;
  median: number;
  min: number;
  max: number;
}

export interface Verdict {
  /** the candidate beats the defaults by more than the spread of the pairs */
  better: boolean;
  interval: Interval;
  /** one plain sentence: why it wins or why not */
  reason: string;
}

export function pairScores(pairs: readonly Pair[], weights: Weights): number[] {
  return pairs.map((p) => score(p.candidate, p.defaults, weights));
}

/** Per-metric medians of the pairs' ratios (above 1 is better), as ratios() orients them. */
export function pairRatios(pairs: readonly Pair[]): Ratios {
  const each = pairs.map((p) => ratios(p.candidate, p.defaults));
  return {
    throughput: median(each.map((r) => r.throughput)),
    faults: median(each.map((r) => r.faults)),
    rss: median(each.map((r) => r.rss)),
  };
}

export function interval(scores: readonly number[]): Interval {
  return {
    n: scores.length,
    median: median(scores),
    min: scores.length ? Math.min(...scores) : NaN,
    max: scores.length ? Math.max(...scores) : NaN,
  };
}

export const times = (x: number, digits = 3) => (Number.isFinite(x) ? `×${x.toFixed(digits)}` : "-");

/** "median ×1.004, range ×0.971–×1.032 over 5 pairs" */
export function formatInterval(i: Interval): string {
  return `median ${times(i.median)}, range ${times(i.min)}–${times(i.max)} over ${i.n} pair${i.n === 1 ? "" : "s"}`;
}

/** The decision, from the pair scores alone (so it can be tested on synthetic numbers). */
export function judge(scores: readonly number[], minPairs: number = MIN_PAIRS): Verdict {
  const i = interval(scores);
  const need = Math.max(1, minPairs);
  if (i.n < need) {
    return { better: false, interval: i, reason: `only ${i.n} confirmation pair${i.n === 1 ? "" : "s"} ran; at least ${need} are needed to measure the run-to-run spread` };
  }
  if (!(i.min > 1)) {
    const where = i.median > 1
      ? `its gain (${formatInterval(i)}) is within the run-to-run spread: ${scores.filter((s) => !(s > 1)).length} of ${i.n} pairs did not favour it`
      : `it did not beat the defaults when re-measured (${formatInterval(i)})`;
    return { better: false, interval: i, reason: where };
  }
  return { better: true, interval: i, reason: `every one of ${i.n} interleaved pairs favoured it (${formatInterval(i)})` };
}
