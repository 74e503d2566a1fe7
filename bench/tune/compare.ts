// compare.ts — `bun run tune -- <workload> --compare FILE`: measures a profile against
// the defaults on a workload, alternating runs (defaults, profile, defaults, …) so that
// load on the machine hits both alike; reports medians, the score under the weights and
// the verdict of verdict.ts on the pairs (does it beat the defaults beyond the spread?).
import { parseProfile } from "./profile.ts";
import { ratios, score, summarize, type Measurement, type Ratios, type Weights } from "./score.ts";
import { defaults, PARAMS, type Param, type Settings } from "./space.ts";
import { judge, pairScores, type Pair, type Verdict } from "./verdict.ts";

export interface Comparison {
  runs: number;
  defaults: Measurement;
  profile: Measurement;
  ratios: Ratios;
  score: number;
  /** the pairs' scores: median, range and whether every pair favours the profile */
  verdict: Verdict;
}

/** The searched parameters and their values in a profile file's text. */
export function profileSettings(text: string): { params: Param[]; settings: Settings } {
  const { env } = parseProfile(text);
  const params = PARAMS.filter((p) => env[p.env] !== undefined);
  if (params.length === 0) throw new Error("the profile sets no HAKMEM_* variable the tuner knows");
  const settings: Settings = {};
  for (const p of params) {
    const value = parseValue(env[p.env]);
    if (value === null) throw new Error(`bad value in profile: ${p.env}=${env[p.env]}`);
    settings[p.env] = value;
  }
  return { params, settings };
}

/** "4k" -> 4096, "1M" -> 1048576, "50" -> 50. */
function parseValue(text: string): number | null {
  const m = text.match(/^(\d+)([kKmM]?)$/);
  if (!m) return null;
  const unit = m[2] === "" ? 1 : /k/i.test(m[2]) ? 1024 : 1024 * 1024;
  return Number(m[1]) * unit;
}

export async function compare(
  evaluate: (settings: Settings) => Promise<Measurement>,
  params: readonly Param[],
  settings: Settings,
  runs: number,
  weights: Weights,
  onRun?: (n: number, total: number) => void,
): Promise<Comparison> {
  const base: Measurement[] = [];
  const tuned: Measurement[] = [];
  for (let i = 0; i < runs; i++) {
    onRun?.(2 * i + 1, 2 * runs);
    base.push(await evaluate(defaults(params)));
    onRun?.(2 * i + 2, 2 * runs);
    tuned.push(await evaluate(settings));
  }
  const d = summarize(base);
  const p = summarize(tuned);
  const pairs: Pair[] = base.map((b, i) => ({ defaults: b, candidate: tuned[i] }));
  const verdict = judge(pairScores(pairs, weights));
  return { runs, defaults: d, profile: p, ratios: ratios(p, d), score: score(p, d, weights), verdict };
}
