// stats.ts — hakmem's statistics as plain objects: per-tier counters and global counters,
// named after the layout in src/abi.ts (generated from zig/abi.zig; snake_case there,
// camelCase here), plus deltas. src/ffi.ts checks when it loads the library that the
// library names its counters the same way (one built from other sources is refused).
import { native } from "./ffi.ts";
import {
  HAK_STAT_FIELDS,
  HAK_STAT_GLOBALS,
  HAK_STAT_VALUES,
  HAK_TIER_COUNT,
  STAT_FIELD_NAMES,
  STAT_GLOBAL_NAMES,
  TIERS,
  type GlobalStats,
  type TierStats,
} from "./abi.ts";

export type { GlobalStats, TierStats } from "./abi.ts";

export interface Stats {
  tiny: TierStats;
  mid: TierStats;
  large: TierStats;
  global: GlobalStats;
}

function camelCase(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

const FIELD_KEYS = STAT_FIELD_NAMES.map(camelCase) as (keyof TierStats)[];
const GLOBAL_KEYS = STAT_GLOBAL_NAMES.map(camelCase) as (keyof GlobalStats)[];

const buffer = new BigUint64Array(HAK_STAT_VALUES);

/** A snapshot of every counter, summed over all threads (live and exited). */
export function readStats(): Stats {
  const written = native.hak_stats_read(buffer, buffer.length);
  if (written !== HAK_STAT_VALUES) throw new Error(`hakmem.stats: the library wrote ${written} values, expected ${HAK_STAT_VALUES}`);
  const tier = (t: number) => {
    const out: Record<string, number> = {};
    FIELD_KEYS.forEach((key, f) => (out[key] = Number(buffer[t * HAK_STAT_FIELDS + f])));
    return out as unknown as TierStats;
  };
  const global: Record<string, number> = {};
  GLOBAL_KEYS.forEach((key, g) => (global[key] = Number(buffer[HAK_TIER_COUNT * HAK_STAT_FIELDS + g])));
  return { tiny: tier(0), mid: tier(1), large: tier(2), global: global as unknown as GlobalStats };
}

/** The camelCase keys of a tier's counters and of the globals, in library order. */
export const statKeys = { tier: FIELD_KEYS as readonly (keyof TierStats)[], global: GLOBAL_KEYS as readonly (keyof GlobalStats)[] };

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
  return TIERS.reduce((sum, t) => sum + stats[t][field], 0);
}

// The layout has as many globals as the interface has keys (checked when this file loads).
if (GLOBAL_KEYS.length !== HAK_STAT_GLOBALS || FIELD_KEYS.length !== HAK_STAT_FIELDS) {
  throw new Error("hakmem: src/abi.ts is inconsistent (run npm run abi)");
}
