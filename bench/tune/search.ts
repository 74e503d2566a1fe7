// search.ts — successive halving over the settings space, with an injected evaluate
// function (so tests can plant an optimum without spawning anything).
//
// The default settings (the baseline) are measured first and again before every pass over
// the candidates, so every score is relative to defaults measured under the same machine
// conditions. A bracket samples `candidates` settings with the seeded PRNG and runs each
// `reps` times; the better 1/eta (by score on medians) go on to eta× as many repetitions,
// until one is left. Repetitions are interleaved (every survivor once, then every survivor
// again) so that a burst of load on the machine hits all candidates alike. While time or
// budget remain, a new bracket starts from the winner so far plus neighbours of it and fresh
// random samples. Deterministic given the seed and a deterministic evaluate; stops
// cleanly before a run that would exceed the time limit or the budget.
// With `confirmRuns`, the best candidate is then run again that many times interleaved
// with the defaults (these runs are kept out of the search: it gets the time limit less
// 15 % and the budget less 2 × confirmRuns), and it wins only if every pair of those runs
// still favours it (verdict.ts): the search's own scores are screening, not evidence.
import { Rng } from "./random.ts";
import { defaults, describe, keyOf, mutate, neighbours, sample, type Param, type Settings } from "./space.ts";
import { ratios, score, summarize, type Measurement, type Ratios, type Weights } from "./score.ts";
import { judge, pairRatios, pairScores, type Pair, type Verdict } from "./verdict.ts";

export interface Candidate {
  /** creation order; 0 is the baseline */
  id: number;
  settings: Settings;
  key: string;
  /** what differs from the defaults */
  label: string;
  origin: "baseline" | "random" | "neighbour";
  /** bracket it was created in */
  bracket: number;
  samples: Measurement[];
  /** set when a run failed: the candidate is out of the search */
  error?: string;
}

export interface Ranked {
  candidate: Candidate;
  summary: Measurement;
  ratios: Ratios;
  score: number;
}

export interface SearchProgress {
  bracket: number;
  /** -1 while confirming the best candidate against the defaults */
  round: number;
  /** position of the current candidate in the round and the round's size */
  position: number;
  roundSize: number;
  current: string;
  runs: number;
  elapsedMs: number;
  best: Ranked | null;
}

export type StopReason = "finished" | "time" | "budget" | "aborted";

export interface SearchOptions {
  params: readonly Param[];
  evaluate: (settings: Settings, candidate: Candidate) => Promise<Measurement>;
  weights: Weights;
  seed: number;
  /** candidates per bracket (the incumbent included); default 16 */
  candidates?: number;
  /** repetitions per candidate in a bracket's first round; default 1 */
  reps?: number;
  /** keep 1/eta per round, eta× the repetitions; default 2 */
  eta?: number;
  /** baseline runs before the first round; default 3 */
  baselineReps?: number;
  /** at most this many workload runs (baseline included) */
  budgetRuns?: number;
  /** no run starts after this many ms */
  timeLimitMs?: number;
  /** runs of the best candidate and of the defaults, interleaved, after the search */
  confirmRuns?: number;
  /** default: unbounded when a time limit or budget is given, else 1 */
  maxBrackets?: number;
  now?: () => number;
  signal?: AbortSignal;
  onProgress?: (progress: SearchProgress) => void;
}

export interface Confirmation {
  candidate: Candidate;
  /** pairs of runs (defaults, candidate) that both completed */
  runs: number;
  /** medians of the confirmation runs only */
  baseline: Measurement;
  summary: Measurement;
  /** per-metric medians of the pairs' ratios */
  ratios: Ratios;
  /** the median of the pair scores */
  score: number;
  /** every pair's score, in run order */
  pairScores: number[];
  /** wins or not, the pair scores' interval, and why */
  verdict: Verdict;
}

export interface SearchResult {
  baseline: Candidate;
  baselineSummary: Measurement;
  /** candidates that ran without failing, most repetitions first, then by score */
  leaderboard: Ranked[];
  /** candidates whose run failed */
  failed: Candidate[];
  /**
   * The top of the leaderboard if it scores above the baseline and, when confirmation runs
   * were asked for, every confirmation pair favours it (verdict.ts); else null.
   */
  winner: Ranked | null;
  /** one sentence: why there is a winner, or why not */
  why: string;
  /** the confirmation runs of the top candidate, when asked for and run */
  confirmation: Confirmation | null;
  runs: number;
  brackets: number;
  stoppedBy: StopReason;
  elapsedMs: number;
  /** candidate keys in the order they were run */
  trace: string[];
}

class Stop extends Error {
  constructor(readonly reason: StopReason) {
    super(reason);
  }
}

export async function search(options: SearchOptions): Promise<SearchResult> {
  return new Searcher(options).run();
}

class Searcher {
  private readonly rng: Rng;
  private readonly now: () => number;
  private readonly start: number;
  private readonly all = new Map<string, Candidate>();
  private readonly trace: string[] = [];
  private readonly baseline: Candidate;
  private readonly perBracket: number;
  private readonly reps: number;
  private readonly eta: number;
  private runs = 0;
  private incumbent: Candidate | null = null;
  /** the candidate sent to the confirmation runs */
  private confirming: Candidate | null = null;
  private position = { bracket: 0, round: 0, index: 0, size: 0 };

  constructor(private readonly o: SearchOptions) {
    this.rng = new Rng(o.seed);
    this.now = o.now ?? (() => performance.now());
    this.start = this.now();
    this.perBracket = Math.max(2, o.candidates ?? 16);
    this.reps = Math.max(1, o.reps ?? 1);
    this.eta = Math.max(2, o.eta ?? 2);
    this.baseline = this.add(defaults(o.params), "baseline", 0);
  }

  async run(): Promise<SearchResult> {
    let stoppedBy: StopReason = "finished";
    let brackets = 0;
    try {
      await this.measureBaseline();
      const limited = this.o.budgetRuns !== undefined || this.o.timeLimitMs !== undefined;
      const maxBrackets = this.o.maxBrackets ?? (limited ? Infinity : 1);
      for (let b = 0; b < maxBrackets; b++) {
        const pool = this.newBracket(b);
        if (pool.filter((c) => c !== this.incumbent).length === 0) break;
        brackets++;
        await this.bracket(b, pool);
      }
    } catch (e) {
      if (!(e instanceof Stop)) throw e;
      stoppedBy = e.reason;
    }
    const confirmation = stoppedBy === "aborted" ? null : await this.confirm();
    if (this.o.signal?.aborted) stoppedBy = "aborted";
    return this.result(stoppedBy, brackets, confirmation);
  }

  /** Time and runs the search may use: the limits less what confirmation needs. */
  private get searchBudget(): number | undefined {
    const b = this.o.budgetRuns;
    return b === undefined ? undefined : Math.max(1, b - 2 * (this.o.confirmRuns ?? 0));
  }

  private get searchTimeMs(): number | undefined {
    const t = this.o.timeLimitMs;
    return t === undefined || !this.o.confirmRuns ? t : t * 0.85;
  }

  /**
   * Runs the top candidate and the defaults alternately (at least one pair, then as many
   * of `confirmRuns` as the time limit allows); null if not asked or nothing to confirm.
   */
  private async confirm(): Promise<Confirmation | null> {
    const n = this.o.confirmRuns ?? 0;
    const top = this.leaderboard()[0];
    if (n === 0 || !top || top.score <= 1 || this.baseline.samples.length === 0) return null;
    const pairs: Pair[] = [];
    const c = top.candidate;
    this.confirming = c;
    const limit = this.o.timeLimitMs;
    for (let i = 0; i < n; i++) {
      if (i > 0 && limit !== undefined && this.now() - this.start >= limit) break;
      const pair: Partial<Pair> = {};
      for (const [who, slot] of [[this.baseline, "defaults"], [c, "candidate"]] as const) {
        if (this.o.signal?.aborted) return null;
        this.position = { bracket: this.position.bracket, round: -1, index: i + 1, size: n };
        this.report(who);
        this.trace.push(who.key);
        try {
          pair[slot] = await this.o.evaluate(who.settings, who);
        } catch (e) {
          if (who === c) c.error = (e as Error)?.message ?? String(e);
        }
        this.runs++;
      }
      if (c.error) return null;
      // A failed run of the defaults loses its pair (the candidate's run has no partner).
      if (pair.defaults && pair.candidate) pairs.push(pair as Pair);
    }
    const scores = pairScores(pairs, this.o.weights);
    const verdict = judge(scores);
    return {
      candidate: c, runs: pairs.length,
      baseline: summarize(pairs.map((p) => p.defaults)), summary: summarize(pairs.map((p) => p.candidate)),
      ratios: pairRatios(pairs), score: verdict.interval.median, pairScores: scores, verdict,
    };
  }

  private add(settings: Settings, origin: Candidate["origin"], bracket: number): Candidate {
    const key = keyOf(settings, this.o.params);
    const c: Candidate = { id: this.all.size, settings, key, label: describe(settings, this.o.params), origin, bracket, samples: [] };
    this.all.set(key, c);
    return c;
  }

  private async measureBaseline(): Promise<void> {
    const n = Math.max(1, this.o.baselineReps ?? 3);
    this.position = { bracket: 0, round: 0, index: 0, size: 1 };
    for (let i = 0; i < n; i++) {
      await this.runOnce(this.baseline);
      if (this.baseline.error) throw new Error(`the workload failed with default settings: ${this.baseline.error}`);
    }
  }

  /**
   * The incumbent, then about half the bracket near it (one-step neighbours in a seeded
   * order, then random one- or two-parameter moves), then random samples; none tried before.
   */
  private newBracket(b: number): Candidate[] {
    const pool: Candidate[] = [];
    const tryAdd = (settings: Settings, origin: Candidate["origin"]) => {
      if (pool.length >= this.perBracket || this.all.has(keyOf(settings, this.o.params))) return;
      pool.push(this.add(settings, origin, b));
    };
    if (this.incumbent) {
      pool.push(this.incumbent);
      const near = 1 + Math.floor((this.perBracket - 1) / 2);
      for (const s of this.shuffled(neighbours(this.incumbent.settings, this.o.params))) if (pool.length < near) tryAdd(s, "neighbour");
      for (let tries = 0; pool.length < near && tries < 50; tries++) tryAdd(mutate(this.incumbent.settings, this.o.params, this.rng), "neighbour");
    }
    for (let tries = 0; pool.length < this.perBracket && tries < this.perBracket * 50; tries++) tryAdd(sample(this.o.params, this.rng), "random");
    return pool;
  }

  /** Fisher–Yates with the search's PRNG. */
  private shuffled<T>(items: T[]): T[] {
    const a = [...items];
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.rng.below(i + 1);
      [a[i], a[j]] = [a[j], a[i]];
    }
    return a;
  }

  private async bracket(b: number, pool: Candidate[]): Promise<void> {
    let survivors = pool;
    for (let round = 0; ; round++) {
      const need = this.reps * this.eta ** round;
      for (let level = 1; level <= need; level++) {
        const due = survivors.filter((c) => !c.error && c.samples.length < level);
        // The defaults run once at every level that has work, next to the candidates, so
        // drift in machine load moves the baseline with them.
        if (due.length) {
          this.position = { bracket: b, round, index: 0, size: survivors.length };
          await this.runOnce(this.baseline);
        }
        for (const c of due) {
          this.position = { bracket: b, round, index: survivors.indexOf(c) + 1, size: survivors.length };
          await this.runOnce(c);
        }
      }
      const alive = survivors.filter((c) => !c.error);
      if (alive.length <= 1) {
        this.incumbent = alive[0] ?? this.incumbent;
        return;
      }
      survivors = this.rank(alive).slice(0, Math.ceil(alive.length / this.eta)).map((r) => r.candidate);
    }
  }

  private checkLimits(): void {
    if (this.o.signal?.aborted) throw new Stop("aborted");
    const budget = this.searchBudget;
    const time = this.searchTimeMs;
    if (budget !== undefined && this.runs >= budget) throw new Stop("budget");
    if (time !== undefined && this.now() - this.start >= time) throw new Stop("time");
  }

  private async runOnce(c: Candidate): Promise<void> {
    this.checkLimits();
    this.report(c);
    this.trace.push(c.key);
    try {
      c.samples.push(await this.o.evaluate(c.settings, c));
    } catch (e) {
      if (this.o.signal?.aborted) throw new Stop("aborted");
      c.error = (e as Error)?.message ?? String(e);
    }
    this.runs++;
  }

  private report(current: Candidate): void {
    if (!this.o.onProgress) return;
    const board = this.leaderboard();
    this.o.onProgress({
      bracket: this.position.bracket,
      round: this.position.round,
      position: Math.max(1, this.position.index),
      roundSize: this.position.size,
      current: current.label,
      runs: this.runs,
      elapsedMs: this.now() - this.start,
      best: board[0] ?? null,
    });
  }

  private scoreOf(c: Candidate): Ranked {
    const base = summarize(this.baseline.samples);
    const summary = summarize(c.samples);
    return { candidate: c, summary, ratios: ratios(summary, base), score: score(summary, base, this.o.weights) };
  }

  /** Best first by score (ties: earlier candidate first). */
  private rank(candidates: Candidate[]): Ranked[] {
    return candidates.map((c) => this.scoreOf(c)).sort((a, b) => b.score - a.score || a.candidate.id - b.candidate.id);
  }

  /** Candidates that went furthest (most repetitions) first, then by score. */
  private leaderboard(): Ranked[] {
    const measured = [...this.all.values()].filter((c) => c !== this.baseline && !c.error && c.samples.length > 0);
    return this.rank(measured).sort((a, b) => b.candidate.samples.length - a.candidate.samples.length);
  }

  private result(stoppedBy: StopReason, brackets: number, confirmation: Confirmation | null): SearchResult {
    const leaderboard = this.baseline.samples.length > 0 ? this.leaderboard() : [];
    const top = leaderboard.find((r) => !r.candidate.error);
    const asked = (this.o.confirmRuns ?? 0) > 0;
    let why: string;
    let wins = false;
    if (!top || !(top.score > 1)) {
      why = "no candidate scored above the defaults in the screening runs";
    } else if (confirmation) {
      wins = confirmation.verdict.better;
      why = confirmation.verdict.reason;
    } else if (!asked) {
      wins = true;
      why = "no confirmation runs were asked for";
    } else if (this.confirming?.error) {
      why = `the best candidate (${this.confirming.label}) failed in its confirmation runs: ${this.confirming.error}`;
    } else {
      why = "the search was interrupted before the confirmation runs";
    }
    return {
      baseline: this.baseline,
      baselineSummary: summarize(this.baseline.samples),
      leaderboard,
      failed: [...this.all.values()].filter((c) => c.error !== undefined),
      winner: wins ? (top ?? null) : null,
      why,
      confirmation,
      runs: this.runs,
      brackets,
      stoppedBy,
      elapsedMs: this.now() - this.start,
      trace: this.trace,
    };
  }
}
