// profile.ts — the tuner's output: an environment profile, one `HAKMEM_X=value` line per
// tuned setting, under a header of `#key=value` words. Every word of the file contains
// `=` and none holds a glob character, so both of these work:
//   env $(cat tuned.env) LD_PRELOAD=$PWD/zig-out/lib/libhakmem.so prog
//   set -a; . ./tuned.env; set +a
// (`env` also passes the header words on as harmless variables named `#date` and so on;
// a shell reads the header lines as comments). --json writes the whole run next to it.
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { envLines, type Param, type Settings } from "./space.ts";

export interface ProfileHeader {
  date: Date;
  workload: string;
  seed: number;
  weights: string;
  score: number;
  throughputRatio: number;
  faultsRatio: number;
  rssRatio: number;
  runs: number;
  /** true when no candidate beat the defaults: the profile holds the defaults */
  defaultsWon: boolean;
  /** the confirmation's pair scores (score is their median), when it ran */
  pairs?: { n: number; min: number; max: number };
}

/** Keeps a header value one shell word without glob or expansion characters. */
function word(value: string): string {
  return value.trim().replace(/\s+/g, ",").replace(/[^A-Za-z0-9_.,:/+@%=-]/g, "_");
}

const fixed = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : "nan");

export function profileText(settings: Settings, params: readonly Param[], h: ProfileHeader): string {
  const header = [
    [["hakmem_profile", "bun_run_tune"], ["date", h.date.toISOString().slice(0, 19) + "Z"], ["seed", String(h.seed)]],
    [["workload", h.workload]],
    [["score", fixed(h.score)], ["throughput_x", fixed(h.throughputRatio)], ["faults_x", fixed(h.faultsRatio)],
      ["peak_rss_x", fixed(h.rssRatio)], ["runs", String(h.runs)], ["defaults_won", h.defaultsWon ? "1" : "0"]],
    ...(h.pairs ? [[["confirm_pairs", String(h.pairs.n)], ["score_min", fixed(h.pairs.min)], ["score_max", fixed(h.pairs.max)]]] : []),
    [["weights", h.weights.replace(/=/g, ":")]],
  ];
  const lines = header.map((pairs) => pairs.map(([k, v]) => `#${k}=${word(v)}`).join(" "));
  return [...lines, ...envLines(settings, params)].join("\n") + "\n";
}

export function writeProfile(path: string, settings: Settings, params: readonly Param[], header: ProfileHeader): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, profileText(settings, params, header));
}

/** The whole run as JSON (--json): settings, every sample, leaderboard, confirmation. */
export function writeJson(path: string, record: unknown): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify(record, null, 1) + "\n");
}

export interface ParsedProfile {
  /** HAKMEM_* assignments */
  env: Record<string, string>;
  /** header words (#key=value) */
  meta: Record<string, string>;
}

export function parseProfile(text: string): ParsedProfile {
  const env: Record<string, string> = {};
  const meta: Record<string, string> = {};
  for (const line of text.split("\n").map((l) => l.trim()).filter(Boolean)) {
    if (line.startsWith("#")) {
      for (const w of line.split(/\s+/)) {
        const eq = w.indexOf("=");
        if (w.startsWith("#") && eq > 1) meta[w.slice(1, eq)] = w.slice(eq + 1);
      }
      continue;
    }
    const eq = line.indexOf("=");
    if (eq > 0) env[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return { env, meta };
}
