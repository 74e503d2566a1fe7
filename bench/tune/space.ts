// space.ts — the settings space the tuner searches: one row per HAKMEM_* variable (its
// default, the values worth trying, whether it can change live), constraints between
// them, and the few operations the search needs (sample, mutate, key, env lines).
// To search a new variable, add a row to PARAMS (and a constraint if it has one); an
// on/off switch is a row with values [0, 1] and unit "flag".
import type { Rng } from "./random.ts";
import { HAK_MID_MAX_DEFAULT, HAK_MID_MAX_LIMIT, HAK_MID_MAX_MIN, HAK_TINY_MAX_DEFAULT, HAK_TINY_MAX_LIMIT } from "../../src/abi.ts";

/** Values of the searched variables, by environment name (e.g. HAKMEM_TINY_MAX). */
export type Settings = Record<string, number>;

export interface Param {
  /** short name used on the command line (--params tiny,purge) and in tables */
  name: string;
  /** environment variable read by libhakmem.so */
  env: string;
  /** the library's default */
  default: number;
  /** candidate values, ascending; must include the default */
  values: readonly number[];
  /** how a value is written: bytes get k/M suffixes when exact */
  unit: "bytes" | "ms" | "MiB" | "count" | "flag";
  /** set live with hakmem.setRouting (in-process runs); otherwise read once at startup */
  routing?: "tinyMax" | "midMax";
}

const KiB = 1024;
const MiB = 1024 * 1024;

/** Powers of two from `lo` to `hi`, with the 1.5× step between each pair. */
function powersAndHalves(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let v = lo; v <= hi; v *= 2) {
    out.push(v);
    if (v * 1.5 <= hi && v * 1.5 < v * 2) out.push(v * 1.5);
  }
  return out.filter((v) => Number.isInteger(v)).sort((a, b) => a - b);
}

export const PARAMS: readonly Param[] = [
  { name: "tiny", env: "HAKMEM_TINY_MAX", default: HAK_TINY_MAX_DEFAULT, values: [0, ...powersAndHalves(16, HAK_TINY_MAX_LIMIT)], unit: "bytes", routing: "tinyMax" },
  { name: "mid", env: "HAKMEM_MID_MAX", default: HAK_MID_MAX_DEFAULT, values: powersAndHalves(HAK_MID_MAX_MIN, HAK_MID_MAX_LIMIT), unit: "bytes", routing: "midMax" },
  { name: "purge", env: "HAKMEM_PURGE_DELAY_MS", default: 50, values: [0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000], unit: "ms" },
  { name: "retain", env: "HAKMEM_RETAIN_MAX_MB", default: 64, values: [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512], unit: "MiB" },
  { name: "largecache", env: "HAKMEM_LARGE_CACHE_MB", default: 128, values: [0, 4, 8, 16, 32, 64, 128, 256, 512], unit: "MiB" },
  { name: "adapt", env: "HAKMEM_ADAPT", default: 1, values: [0, 1], unit: "flag" },
];

/** Constraints every candidate must satisfy (missing variables count as their default). */
export const CONSTRAINTS: readonly ((value: (env: string) => number) => boolean)[] = [
  (v) => v("HAKMEM_TINY_MAX") <= v("HAKMEM_MID_MAX"),
];

/** The parameters named on the command line (comma-separated short or env names; "all"). */
export function selectParams(spec: string | undefined, all: readonly Param[] = PARAMS): Param[] {
  if (!spec || spec === "all") return [...all];
  const wanted = spec.split(",").map((s) => s.trim()).filter(Boolean);
  return wanted.map((w) => {
    const p = all.find((q) => q.name === w || q.env === w || q.env === `HAKMEM_${w.toUpperCase()}`);
    if (!p) throw new Error(`unknown parameter ${w} (known: ${all.map((q) => q.name).join(", ")})`);
    return p;
  });
}

export function defaults(params: readonly Param[]): Settings {
  return Object.fromEntries(params.map((p) => [p.env, p.default]));
}

export function satisfies(settings: Settings, all: readonly Param[] = PARAMS): boolean {
  const value = (env: string) => settings[env] ?? all.find((p) => p.env === env)?.default ?? 0;
  return CONSTRAINTS.every((c) => c(value));
}

/** Canonical identity of a candidate: equal settings give equal keys. */
export function keyOf(settings: Settings, params: readonly Param[]): string {
  return params.map((p) => `${p.name}=${settings[p.env]}`).join(" ");
}

/** A uniformly random valid candidate (rejection sampling over the value lists). */
export function sample(params: readonly Param[], rng: Rng): Settings {
  for (let attempt = 0; attempt < 1000; attempt++) {
    const s = Object.fromEntries(params.map((p) => [p.env, p.values[rng.below(p.values.length)]]));
    if (satisfies(s)) return s;
  }
  return defaults(params);
}

/** Every valid candidate one step away along one parameter's value list. */
export function neighbours(settings: Settings, params: readonly Param[]): Settings[] {
  const out: Settings[] = [];
  for (const p of params) {
    const at = p.values.indexOf(settings[p.env]);
    for (const to of [at - 1, at + 1]) {
      if (at < 0 || to < 0 || to >= p.values.length) continue;
      const s = { ...settings, [p.env]: p.values[to] };
      if (satisfies(s)) out.push(s);
    }
  }
  return out;
}

/** A random neighbour: one or two parameters moved one or two steps along their value lists. */
export function mutate(settings: Settings, params: readonly Param[], rng: Rng): Settings {
  for (let attempt = 0; attempt < 100; attempt++) {
    const s = { ...settings };
    const moves = params.length > 1 && rng.below(2) === 1 ? 2 : 1;
    for (let m = 0; m < moves; m++) {
      const p = params[rng.below(params.length)];
      const at = Math.max(0, p.values.indexOf(s[p.env]));
      const step = (rng.below(2) + 1) * (rng.below(2) ? 1 : -1);
      s[p.env] = p.values[Math.min(p.values.length - 1, Math.max(0, at + step))];
    }
    if (satisfies(s) && keyOf(s, params) !== keyOf(settings, params)) return s;
  }
  return sample(params, rng);
}

/** A value as hakmem reads it: 4096 -> "4k", 1048576 -> "1M" for byte sizes. */
export function formatValue(param: Param, value: number): string {
  if (param.unit === "bytes" && value > 0) {
    if (value % MiB === 0) return `${value / MiB}M`;
    if (value % KiB === 0) return `${value / KiB}k`;
  }
  return String(value);
}

/** `HAKMEM_X=value` lines of a candidate, in table order. */
export function envLines(settings: Settings, params: readonly Param[]): string[] {
  return params.filter((p) => settings[p.env] !== undefined).map((p) => `${p.env}=${formatValue(p, settings[p.env])}`);
}

/** The candidate as environment variables for a child process. */
export function envOf(settings: Settings, params: readonly Param[]): Record<string, string> {
  return Object.fromEntries(envLines(settings, params).map((l) => l.split("=") as [string, string]));
}

/** Short description for tables and progress: only what differs from the defaults. */
export function describe(settings: Settings, params: readonly Param[]): string {
  const changed = params.filter((p) => settings[p.env] !== p.default);
  if (changed.length === 0) return "defaults";
  return changed.map((p) => `${p.name}=${formatValue(p, settings[p.env])}`).join(" ");
}
