// score.ts — how good a candidate is: a weighted geometric mean of its ratios to the
// default-settings baseline measured in the same run. Throughput counts up (ops/s over
// the baseline's), page faults and peak RSS count down (baseline's over the candidate's),
// each on the median of the repetitions. The baseline scores exactly 1; 1.05 reads
// "5 % better overall under these weights".

/** One run of the workload. */
export interface Measurement {
  /** operations per second (higher is better) */
  opsPerSec: number;
  /** minor + major page faults (lower is better) */
  faults: number;
  /** peak resident set size in KiB (lower is better) */
  peakRssKb: number;
}

export interface Weights {
  throughput: number;
  faults: number;
  rss: number;
}

/** HAKMEM's ELO weights: 40 % CPU (here: throughput), 30 % page faults, 30 % memory. */
export const DEFAULT_WEIGHTS: Weights = { throughput: 0.4, faults: 0.3, rss: 0.3 };

/** Parses "throughput=0.6,faults=0.2,rss=0.2" (any subset; missing ones are 0); normalised to sum 1. */
export function parseWeights(spec: string): Weights {
  const w: Weights = { throughput: 0, faults: 0, rss: 0 };
  for (const part of spec.split(",").map((s) => s.trim()).filter(Boolean)) {
    const [name, value] = part.split("=");
    const key = ({ throughput: "throughput", ops: "throughput", faults: "faults", rss: "rss", memory: "rss" } as const)[name?.trim() as "ops"];
    const n = Number(value);
    if (!key || value === undefined || !Number.isFinite(n) || n < 0) {
      throw new Error(`bad weight "${part}": expected throughput=<n>, faults=<n> or rss=<n> with n >= 0`);
    }
    w[key] = n;
  }
  const sum = w.throughput + w.faults + w.rss;
  if (sum <= 0) throw new Error(`weights "${spec}" sum to 0`);
  return { throughput: w.throughput / sum, faults: w.faults / sum, rss: w.rss / sum };
}

export function formatWeights(w: Weights): string {
  const f = (x: number) => String(Math.round(x * 1000) / 1000);
  return `throughput=${f(w.throughput)},faults=${f(w.faults)},rss=${f(w.rss)}`;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Per-metric medians of a candidate's repetitions. */
export function summarize(samples: readonly Measurement[]): Measurement {
  return {
    opsPerSec: median(samples.map((s) => s.opsPerSec)),
    faults: median(samples.map((s) => s.faults)),
    peakRssKb: median(samples.map((s) => s.peakRssKb)),
  };
}

/** Candidate over baseline per metric, oriented so that above 1 is better. */
export interface Ratios {
  throughput: number;
  faults: number;
  rss: number;
}

export function ratios(candidate: Measurement, baseline: Measurement): Ratios {
  // +1 keeps a workload with no faults (or a 0 reading) finite.
  return {
    throughput: candidate.opsPerSec / baseline.opsPerSec,
    faults: (baseline.faults + 1) / (candidate.faults + 1),
    rss: (baseline.peakRssKb + 1) / (candidate.peakRssKb + 1),
  };
}

/** Weighted geometric mean of the ratios: 1 for the baseline, higher is better. */
export function score(candidate: Measurement, baseline: Measurement, weights: Weights): number {
  const r = ratios(candidate, baseline);
  const log = (x: number) => (x > 0 && Number.isFinite(x) ? Math.log(x) : -Infinity);
  const terms: [number, number][] = [[weights.throughput, r.throughput], [weights.faults, r.faults], [weights.rss, r.rss]];
  const s = terms.filter(([w]) => w > 0).reduce((sum, [w, x]) => sum + w * log(x), 0);
  return Number.isNaN(s) ? -Infinity : Math.exp(s);
}
