// stats.ts — hakmem's statistics as plain objects: per-tier counters and global counters,
// named from the library itself (hak_stat_name, snake_case → camelCase), plus deltas.
import { native } from "./ffi.ts";

/** Counters of one tier (tiny, mid or large). */
export interface TierStats {
  allocs: number;
  frees: number;
  /** blocks given back to a page another thread owns; counted when the freeing thread's
   * cache hands them back (cache overflow, collect, maintenance, thread exit), not at free() */
  remoteFrees: number;
  liveBlocks: number;
  /** usable bytes of live blocks */
  liveBytes: number;
  mappedBytes: number;
  residentBytes: number;
  purges: number;
  purgedBytes: number;
  /** large tier: mapping cache hits */
  cacheHits: number;
  cacheMisses: number;
  pages: number;
}

/** Process-wide counters. */
export interface GlobalStats {
  segmentsMapped: number;
  segmentsAbandoned: number;
  segmentsAdopted: number;
  threadsLive: number;
  threadsTotal: number;
  osMappedBytes: number;
  osResidentBytes: number;
  largeCachedBytes: number;
}

export interface Stats {
  tiny: TierStats;
  mid: TierStats;
  large: TierStats;
  global: GlobalStats;
}

const FIELDS = 12; // HAK_STAT_FIELDS
const GLOBALS = 8; // HAK_STAT_GLOBALS
const TIER_NAMES = ["tiny", "mid", "large"] as const;

function camelCase(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

let names: string[] | undefined;
function statNames(): string[] {
  names ??= Array.from({ length: FIELDS + GLOBALS }, (_, i) => camelCase(native.hak_stat_name(i) ?? `stat${i}`));
  return names;
}

const buffer = new BigUint64Array(3 * FIELDS + GLOBALS);

/** A snapshot of every counter, summed over all threads (live and exited). */
export function readStats(): Stats {
  native.hak_stats_read(buffer, buffer.length);
  const n = statNames();
  const tier = (t: number) => {
    const out: Record<string, number> = {};
    for (let f = 0; f < FIELDS; f++) out[n[f]] = Number(buffer[t * FIELDS + f]);
    return out as unknown as TierStats;
  };
  const global: Record<string, number> = {};
  for (let g = 0; g < GLOBALS; g++) global[n[FIELDS + g]] = Number(buffer[3 * FIELDS + g]);
  return { tiny: tier(0), mid: tier(1), large: tier(2), global: global as unknown as GlobalStats };
}

function subtract<T extends object>(after: T, before: T): T {
  const out: Record<string, number> = {};
  for (const [key, value] of Object.entries(after)) out[key] = value - (before as Record<string, number>)[key];
  return out as T;
}

/** after − before, field by field (gauges such as liveBytes become signed changes). */
export function statsDelta(before: Stats, after: Stats): Stats {
  return {
    tiny: subtract(after.tiny, before.tiny),
    mid: subtract(after.mid, before.mid),
    large: subtract(after.large, before.large),
    global: subtract(after.global, before.global),
  };
}

/** The sum of one field over the three tiers. */
export function totalOf(stats: Stats, field: keyof TierStats): number {
  return TIER_NAMES.reduce((sum, t) => sum + stats[t][field], 0);
}
