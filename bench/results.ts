// results.ts — the data every section produces (kept whole in the JSON) and the derived
// figures the report shows: per-allocator medians and ratios to the best peer.
import { median } from "./stats.ts";

export interface Sample {
  allocator: string;
  run: number;
  value: number;            // in the section's unit
  peakRssKb: number | null;
  extra?: Record<string, number | string>;
  /** its stdout differed from the reference run's (glibc's): shown, never counted */
  mismatch?: boolean;
}

export interface RunError { allocator: string; run: number; message: string }

export interface Row {
  name: string;
  command?: string[];
  samples: Sample[];
  errors: RunError[];
}

export interface Section {
  name: string;
  title: string;
  unit: string;             // "ops/s", "ns/pair", "req/s"
  higherIsBetter: boolean;
  note?: string;
  floorNs?: number;         // micro_ffi: one no-op FFI call
  /** more per-allocator figures, each a line under the row: medians of sample.extra[key] */
  metrics?: Metric[];
  /** a line with the min–max of the value per allocator */
  spread?: boolean;
  /** a line saying how many runs' stdout matched the reference run's */
  outputCheck?: boolean;
  rows: Row[];
}

/** A figure where lower is better (page faults, CPU time), shown ×lowest peer. */
export interface Metric { key: string; label: string; digits?: number }

export interface Cell { value: number; peakRssKb: number | null; finalRssKb: number | null; n: number }

/** Median value and RSS of one allocator's samples in a row (null when it has none). */
export function cellOf(row: Row, allocator: string): Cell | null {
  const samples = countedSamples(row, allocator);
  if (samples.length === 0) return null;
  const rss = samples.map((s) => s.peakRssKb).filter((x): x is number => x !== null);
  const finals = samples.map((s) => Number(s.extra?.final_rss_kb)).filter((x) => Number.isFinite(x) && x > 0);
  return {
    value: median(samples.map((s) => s.value)),
    peakRssKb: rss.length ? median(rss) : null,
    finalRssKb: finals.length ? median(finals) : null,
    n: samples.length,
  };
}

/** An allocator's samples that count: a run whose output differed never does. */
export function countedSamples(row: Row, allocator: string): Sample[] {
  return row.samples.filter((s) => s.allocator === allocator && !s.mismatch);
}

/** Median of a numeric extra field over an allocator's counted samples, or null. */
export function metricOf(row: Row, allocator: string, key: string): number | null {
  const v = countedSamples(row, allocator).map((s) => Number(s.extra?.[key])).filter((x) => Number.isFinite(x));
  return v.length ? median(v) : null;
}

/** The lowest median of a metric among the peers. */
export function lowestPeerMetric(row: Row, allocators: string[], key: string): number | null {
  let low: number | null = null;
  for (const a of allocators) {
    if (a === "hakmem") continue;
    const v = metricOf(row, a, key);
    if (v !== null && (low === null || v < low)) low = v;
  }
  return low;
}

/** Speed of `value` relative to `reference` (> 1: faster), whatever the unit's direction. */
export function speedRatio(section: Section, value: number, reference: number): number {
  return section.higherIsBetter ? value / reference : reference / value;
}

/** The best peer's median value in a row (peers: every allocator but hakmem). */
export function bestPeerValue(section: Section, row: Row, allocators: string[]): number | null {
  let best: number | null = null;
  for (const a of allocators) {
    if (a === "hakmem") continue;
    const c = cellOf(row, a);
    if (!c) continue;
    if (best === null || speedRatio(section, c.value, best) > 1) best = c.value;
  }
  return best;
}

/** The lowest peak RSS among the peers in a row. */
export function lowestPeerRss(row: Row, allocators: string[], field: "peakRssKb" | "finalRssKb" = "peakRssKb"): number | null {
  let low: number | null = null;
  for (const a of allocators) {
    if (a === "hakmem") continue;
    const v = cellOf(row, a)?.[field] ?? null;
    if (v !== null && (low === null || v < low)) low = v;
  }
  return low;
}

/** The min and max of an allocator's counted values in a row (null with fewer than 2 runs). */
export function rangeOf(row: Row, allocator: string): [number, number] | null {
  const v = countedSamples(row, allocator).map((s) => s.value);
  if (v.length < 2) return null;
  return [Math.min(...v), Math.max(...v)];
}

/**
 * True when hakmem's min–max range and `peer`'s overlap: the runs do not say which is
 * faster, so their ratio is within the noise (false when either has fewer than 2 runs).
 */
export function withinNoise(row: Row, peer: string | null): boolean {
  if (peer === null) return false;
  const h = rangeOf(row, "hakmem"), p = rangeOf(row, peer);
  if (h === null || p === null) return false;
  return h[0] <= p[1] && p[0] <= h[1];
}
