// tune.test.ts — the experiment runner (`bun run tune`, bench/tune.ts and bench/tune/):
// the search finds a planted optimum of a synthetic scoring function and is
// deterministic given its seed (no process spawned); scores and profiles behave; and a
// quick real tune of a tiny random_mixed run writes a profile that a preloaded run of
// the same program accepts (hakmem's HAKMEM_STATS line shows it served the run).
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { spawnBun, spawnCollect } from "./helpers/spawn.ts";
import { withTempDir } from "./helpers/tmp.ts";
import { search, type SearchOptions } from "../bench/tune/search.ts";
import { PARAMS, defaults, formatValue, keyOf, sample, satisfies, selectParams, type Settings } from "../bench/tune/space.ts";
import { Rng } from "../bench/tune/random.ts";
import { DEFAULT_WEIGHTS, parseWeights, score, type Measurement } from "../bench/tune/score.ts";
import { parseProfile } from "../bench/tune/profile.ts";
import { judge, MIN_PAIRS } from "../bench/tune/verdict.ts";
import { confirmation, leaderboard, shellWord, useLines, verdictLine } from "../bench/tune/report.ts";

const ROOT = resolve(import.meta.dir, "..");

// A planted optimum: throughput peaks at tiny=2048, purge=200; RSS grows with retain.
const PLANTED = { HAKMEM_TINY_MAX: 2048, HAKMEM_PURGE_DELAY_MS: 200 };
function synthetic(s: Settings): Measurement {
  const dist = (v: number, best: number) => Math.log2((v + 16) / (best + 16)) ** 2;
  const ops = 1e6 * Math.exp(-0.1 * dist(s.HAKMEM_TINY_MAX, PLANTED.HAKMEM_TINY_MAX) - 0.05 * dist(s.HAKMEM_PURGE_DELAY_MS, PLANTED.HAKMEM_PURGE_DELAY_MS));
  return { opsPerSec: ops, faults: 1000, peakRssKb: 10_000 + 500 * Math.sqrt(s.HAKMEM_RETAIN_MAX_MB) };
}

function options(over: Partial<SearchOptions> = {}): SearchOptions {
  return {
    params: selectParams("tiny,purge,retain"),
    evaluate: async (s) => synthetic(s),
    weights: parseWeights("throughput=0.8,rss=0.2"),
    seed: 7,
    candidates: 16,
    budgetRuns: 400,
    ...over,
  };
}

describe("search (synthetic, no processes)", () => {
  test("finds the planted optimum, through ±1 % noise", async () => {
    const noise = new Rng(99);
    const r = await search(options({
      budgetRuns: undefined,
      maxBrackets: 12,
      evaluate: async (s) => {
        const m = synthetic(s);
        return { ...m, opsPerSec: m.opsPerSec * (0.99 + 0.02 * noise.next()) };
      },
    }));
    expect(r.winner).not.toBeNull();
    const best = r.winner!.candidate.settings;
    expect(best.HAKMEM_TINY_MAX).toBe(2048);
    expect(best.HAKMEM_PURGE_DELAY_MS).toBe(200);
    expect(best.HAKMEM_RETAIN_MAX_MB).toBe(0);
    expect(r.winner!.score).toBeGreaterThan(1);
    expect(r.stoppedBy).toBe("finished");
    expect(r.brackets).toBe(12);
  });

  test("same seed, same candidates in the same order; another seed differs", async () => {
    const a = await search(options({ budgetRuns: 60 }));
    const b = await search(options({ budgetRuns: 60 }));
    const c = await search(options({ budgetRuns: 60, seed: 8 }));
    expect(b.trace).toEqual(a.trace);
    expect(b.leaderboard.map((x) => x.candidate.key)).toEqual(a.leaderboard.map((x) => x.candidate.key));
    expect(c.trace).not.toEqual(a.trace);
  });

  test("time limit: stops cleanly and reports the best so far", async () => {
    let clock = 0;
    const r = await search(options({
      budgetRuns: undefined,
      timeLimitMs: 50,
      now: () => clock,
      evaluate: async (s) => {
        clock += 1;
        return synthetic(s);
      },
    }));
    expect(r.stoppedBy).toBe("time");
    expect(r.runs).toBe(50);
    expect(r.leaderboard.length).toBeGreaterThan(0);
  });

  test("a failing candidate is dropped, the search goes on; a failing baseline is an error", async () => {
    const r = await search(options({
      budgetRuns: 80,
      evaluate: async (s) => {
        if (s.HAKMEM_TINY_MAX === 0) throw new Error("crashed");
        return synthetic(s);
      },
    }));
    expect(r.failed.every((c) => c.settings.HAKMEM_TINY_MAX === 0 && c.error === "crashed")).toBe(true);
    expect(r.leaderboard.every((x) => x.candidate.settings.HAKMEM_TINY_MAX !== 0)).toBe(true);
    await expect(search(options({ evaluate: async () => { throw new Error("no such program"); } }))).rejects.toThrow(/default settings: no such program/);
  });

  test("without a time limit or budget, one bracket runs to a single survivor", async () => {
    const r = await search(options({ budgetRuns: undefined, candidates: 8 }));
    expect(r.stoppedBy).toBe("finished");
    expect(r.brackets).toBe(1);
    // 8 + 4×2 + 2×4 + 1×8 candidate runs, baseline 3 + one more per round at least
    expect(r.leaderboard[0].candidate.samples.length).toBe(8);
  });

  test("confirmation: the winner is re-run against the defaults and must still win", async () => {
    const kept = await search(options({ budgetRuns: 60, confirmRuns: 3 }));
    expect(kept.runs).toBe(60);
    expect(kept.confirmation?.runs).toBe(3);
    expect(kept.confirmation!.score).toBeCloseTo(kept.winner!.score, 10);
    expect(kept.trace.slice(-6)).toEqual(Array(3).fill([kept.baseline.key, kept.winner!.candidate.key]).flat());

    let confirming = false;
    const lucky = await search(options({
      budgetRuns: 60,
      confirmRuns: 3,
      evaluate: async (s, c) => {
        const m = synthetic(s);
        return confirming && c.id !== 0 ? { ...m, opsPerSec: m.opsPerSec / 2 } : m;
      },
      onProgress: (p) => {
        confirming = p.round < 0;
      },
    }));
    expect(lucky.confirmation!.score).toBeLessThan(1);
    expect(lucky.winner).toBeNull();
  });

  test("an aborted search reports what it has", async () => {
    const controller = new AbortController();
    let n = 0;
    const r = await search(options({
      budgetRuns: undefined,
      timeLimitMs: 1e9,
      signal: controller.signal,
      evaluate: async (s) => {
        if (++n === 20) controller.abort();
        return synthetic(s);
      },
    }));
    expect(r.stoppedBy).toBe("aborted");
    expect(r.runs).toBe(20);
  });
});

// Issue 14: `tune -- random_mixed --minutes 1` declared a winner at score ×1.000 (ops
// ×0.98) after a leaderboard showing ×1.20. A winner must beat the defaults by more than
// the spread of the confirmation pairs, else "no better setting found".
describe("verdict: the confirmation decides, beyond its run-to-run spread", () => {
  test("judge: every pair must favour the candidate, over at least MIN_PAIRS pairs", () => {
    // What the issue saw: the median pair at ×1.000 with pairs either side of it.
    const issue = judge([0.99, 1.004, 1.0, 0.985, 1.01]);
    expect(issue.better).toBe(false);
    expect(issue.interval).toEqual({ n: 5, median: 1.0, min: 0.985, max: 1.01 });
    expect(issue.reason).toContain("did not beat the defaults");
    // A median above 1 inside the spread is no gain either.
    const spread = judge([1.03, 0.97, 1.01, 0.99, 1.02]);
    expect(spread.better).toBe(false);
    expect(spread.reason).toContain("within the run-to-run spread: 2 of 5 pairs did not favour it");
    const real = judge([1.02, 1.05, 1.01, 1.04, 1.03]);
    expect(real.better).toBe(true);
    expect(real.interval).toEqual({ n: 5, median: 1.03, min: 1.01, max: 1.05 });
    expect(real.reason).toBe("every one of 5 interleaved pairs favoured it (median ×1.030, range ×1.010–×1.050 over 5 pairs)");
    expect(MIN_PAIRS).toBe(3);
    expect(judge([1.2, 1.3]).better).toBe(false);
    expect(judge([1.2, 1.3]).reason).toContain("at least 3 are needed");
    expect(judge([]).better).toBe(false);
    expect(judge([1.2, 1.3], 2).better).toBe(true);
  });

  // The candidate is no better when re-measured: its confirmation runs are the defaults'
  // numbers times noise whose median is above 1 (so the old rule, score of medians > 1, kept it).
  async function noisyConfirmation() {
    const noise = [1.03, 0.97, 1.01, 0.99, 1.02];
    let confirming = false;
    let pair = 0;
    const base = synthetic(defaults(selectParams("tiny,purge,retain")));
    return search(options({
      budgetRuns: 60,
      confirmRuns: noise.length,
      evaluate: async (s, c) => {
        if (!confirming || c.id === 0) return synthetic(s);
        return { ...base, opsPerSec: base.opsPerSec * noise[pair++] };
      },
      onProgress: (p) => {
        confirming = p.round < 0;
      },
    }));
  }

  test("a candidate whose confirmation gain is within the spread is no winner", async () => {
    const r = await noisyConfirmation();
    expect(r.leaderboard[0].score).toBeGreaterThan(1); // it led the screening
    expect(r.confirmation!.runs).toBe(5);
    expect(r.confirmation!.score).toBeGreaterThan(1); // median pair above 1 …
    expect(r.confirmation!.verdict.interval.min).toBeLessThan(1); // … but not every pair
    expect(r.winner).toBeNull();
    expect(r.why).toContain("within the run-to-run spread");
    expect(verdictLine(r)).toMatch(/^no better setting found: its gain \(median ×1\.008, range ×0\.976–×1\.024 over 5 pairs\) is within the run-to-run spread/);
    expect(verdictLine(r)).toContain("The profile holds the default settings.");
  });

  test("report: the leaderboard says what its order and score mean; the confirmation gives the interval", async () => {
    const r = await noisyConfirmation();
    const board = leaderboard(r, 5);
    expect(board).toContain("leaderboard of the screening runs");
    expect(board).toContain("candidates that survived more rounds\n(more runs) come first, then the higher score");
    expect(board).toContain("score = weighted geometric mean of the ratios");
    expect(board).toContain("The confirmation below decides.");
    expect(board).toContain("defaults (baseline)");
    const conf = confirmation(r);
    expect(conf).toContain("5 pairs; it wins only if every pair favours it (at least 3 pairs)");
    expect(conf).toContain("score per pair: median ×1.008, range ×0.976–×1.024 over 5 pairs");
    expect(conf).toMatch(/ops\/s ×1\.01, faults ×1\.00, peak RSS ×1\.00/);

    const kept = await search(options({ budgetRuns: 60, confirmRuns: 3 }));
    expect(verdictLine(kept)).toMatch(/^winner: \S.* — score ×1\.\d{3} over the defaults: every one of 3 interleaved pairs favoured it \(median/);
    const unconfirmed = await search(options({ budgetRuns: 60 }));
    expect(unconfirmed.winner).not.toBeNull();
    expect(verdictLine(unconfirmed)).toMatch(/^winner \(unconfirmed\): .* — score ×1\.\d{3} on the screening runs only \(no confirmation runs were asked for\); check it with --compare$/);
  });

  test("use it: absolute paths; a program is preloaded, a .ts workload is not (env or setRouting)", () => {
    const params = selectParams("tiny,mid,purge");
    const settings = { HAKMEM_TINY_MAX: 2048, HAKMEM_MID_MAX: 98304, HAKMEM_PURGE_DELAY_MS: 10 };
    const lib = "/opt/hakmem/zig-out/lib/libhakmem.so";
    expect(useLines({ kind: "program", lib, profile: "/home/u/tuned.env", settings, params }))
      .toEqual(["use it: env $(cat /home/u/tuned.env) LD_PRELOAD=/opt/hakmem/zig-out/lib/libhakmem.so <program>"]);
    const spaced = useLines({ kind: "program", lib: "/my libs/libhakmem.so", profile: "/home/u/it's.env", settings, params });
    expect(spaced[0]).toBe(`use it: env $(cat '/home/u/it'\\''s.env') LD_PRELOAD='/my libs/libhakmem.so' <program>`);
    expect(shellWord("/a/b.env")).toBe("/a/b.env");

    const mod = useLines({ kind: "module", lib, profile: "/home/u/tuned.env", settings, params }).join("\n");
    expect(mod).not.toContain("LD_PRELOAD=");
    expect(mod).toContain("use it: env $(cat /home/u/tuned.env) HAKMEM_LIB=/opt/hakmem/zig-out/lib/libhakmem.so bun <script.ts>");
    expect(mod).toContain("hakmem.setRouting({ tinyMax: 2048, midMax: 98304 })");
    const live = useLines({ kind: "in-process", lib, profile: "/home/u/tuned.env", settings: { HAKMEM_TINY_MAX: 256, HAKMEM_MID_MAX: 65536 }, params: selectParams("tiny,mid") });
    expect(live[0]).toBe("use it: in the script, before the workload runs: hakmem.setRouting({ tinyMax: 256, midMax: 65536 })");
    expect(live.join("\n")).not.toContain("LD_PRELOAD=");
    // Without routing variables, a module gets no setRouting line.
    expect(useLines({ kind: "module", lib, profile: "/p.env", settings, params: selectParams("purge") }).join("\n")).not.toContain("setRouting");
  });
});

describe("space and score", () => {
  test("samples are valid and include the defaults' values", () => {
    const rng = new Rng(1);
    for (let i = 0; i < 200; i++) expect(satisfies(sample(PARAMS, rng))).toBe(true);
    for (const p of PARAMS) expect(p.values).toContain(p.default);
    expect(keyOf(defaults(PARAMS), PARAMS)).toBe(keyOf({ ...defaults(PARAMS) }, PARAMS));
    expect(formatValue(PARAMS[1], 1 << 20)).toBe("1M");
    expect(formatValue(PARAMS[0], 1536)).toBe("1536");
  });

  test("score: baseline 1, better throughput or less memory above 1", () => {
    const base = { opsPerSec: 100, faults: 99, peakRssKb: 999 };
    expect(score(base, base, DEFAULT_WEIGHTS)).toBeCloseTo(1, 10);
    expect(score({ ...base, opsPerSec: 200 }, base, DEFAULT_WEIGHTS)).toBeGreaterThan(1);
    expect(score({ ...base, peakRssKb: 499 }, base, DEFAULT_WEIGHTS)).toBeGreaterThan(1);
    expect(score({ ...base, faults: 199 }, base, DEFAULT_WEIGHTS)).toBeLessThan(1);
    expect(score({ ...base, faults: 0 }, base, parseWeights("throughput=1"))).toBeCloseTo(1, 10);
    expect(() => parseWeights("speed=1")).toThrow(/bad weight/);
  });
});

describe("bun run tune (real runs, small budgets)", () => {
  const lib = process.env.HAKMEM_LIB ? resolve(process.env.HAKMEM_LIB) : join(ROOT, "zig-out/lib/libhakmem.so");

  async function tune(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
    const r = await spawnBun(["bench/tune.ts", ...args], { cwd: ROOT });
    return { code: r.code, out: r.stdout, err: r.stderr };
  }

  async function sh(script: string): Promise<{ code: number | null; out: string; err: string }> {
    const r = await spawnCollect(["sh", "-c", script], { cwd: ROOT });
    return { code: r.code, out: r.stdout, err: r.stderr };
  }

  test("a quick tune of random_mixed writes a profile that a preloaded run accepts", async () => {
    await withTempDir("tune", async (dir) => {
      const profile = join(dir, "hakmem.env");
      const r = await tune(["random_mixed", "200000", "400", "42", "--budget", "10", "--confirm", "2", "--candidates", "4", "--baseline-reps", "2", "--out", profile]);
      expect({ code: r.code, err: r.err }).toEqual({ code: 0, err: expect.not.stringContaining("tune:") });
      expect(r.out).toContain("defaults (baseline)");
      expect(r.out).toContain("The confirmation below decides.");
      // Either a confirmed winner with a usable line (absolute paths), or a plain "no".
      expect(r.out).toMatch(/no better setting found: |use it: env \$\(cat \/\S+\) LD_PRELOAD=\/\S+ <program>/);
      expect(r.out).toMatch(/run budget used: (6|10) runs/);
      expect(r.err).toMatch(/^\[0:00 run 1\/10\] bracket 1 round 1 candidate 1\/1 · best: - · now: defaults/); // progress
      expect(existsSync(profile)).toBe(true);

      const parsed = parseProfile(readFileSync(profile, "utf8"));
      // Every variable of the space this library knows (a newer row may be unknown to it).
      const core = ["HAKMEM_TINY_MAX", "HAKMEM_MID_MAX", "HAKMEM_PURGE_DELAY_MS", "HAKMEM_RETAIN_MAX_MB", "HAKMEM_LARGE_CACHE_MB"];
      expect(Object.keys(parsed.env)).toEqual(expect.arrayContaining(core));
      expect(PARAMS.map((p) => p.env)).toEqual(expect.arrayContaining(Object.keys(parsed.env)));
      expect(parsed.meta.workload).toContain("random_mixed");
      expect(Number(parsed.meta.score)).toBeGreaterThan(0);

      const { compileProgram } = await import("../bench/build.ts");
      const program = compileProgram("random_mixed");
      for (const use of [`env $(cat '${profile}')`, `set -a; . '${profile}'; set +a; env`]) {
        const run = await sh(`${use} HAKMEM_STATS=1 LD_PRELOAD='${lib}' '${program}' 100000 400 7`);
        expect(run.code).toBe(0);
        expect(run.err).not.toMatch(/hakmem: (ignoring|unknown)/);
        expect(run.out).toContain(`malloc_from=${lib}`);
        const allocs = Number(run.err.match(/hakmem: build=\S+ allocs=(\d+)/)?.[1] ?? 0);
        expect(allocs).toBeGreaterThan(10_000);
      }
      // --compare reads the profile back and measures it against the defaults.
      const cmp = await tune(["random_mixed", "100000", "400", "42", "--compare", profile, "--runs", "1", "--throughput", "cpu"]);
      expect(cmp.code).toBe(0);
      expect(cmp.out).toContain(`HAKMEM_TINY_MAX=${parsed.env.HAKMEM_TINY_MAX}`);
      expect(cmp.out).toMatch(/ops\/s\s+\S+\s+\S+\s+×\d/);
    });
  }, 60_000);

  test("a TypeScript module workload and a --cmd workload tune too", async () => {
    await withTempDir("tune", async (dir) => {
      const m = await tune(["bench/tune/example_workload.ts", "--module-args", '{"rounds":2000}', "--budget", "4", "--confirm", "0", "--candidates", "2", "--baseline-reps", "1", "--out", join(dir, "m.env")]);
      expect({ code: m.code, err: m.err }).toEqual({ code: 0, err: expect.not.stringContaining("tune:") });
      expect(existsSync(join(dir, "m.env"))).toBe(true);
      expect(m.out).toMatch(/\n1  \S+/); // a candidate ran (leaderboard row 1)
      expect(m.out).not.toContain("LD_PRELOAD="); // a .ts workload is not preloaded
      const inProcess = await tune(["bench/tune/example_workload.ts", "--in-process", "--module-args", '{"rounds":2000}', "--budget", "4", "--confirm", "0", "--candidates", "2", "--baseline-reps", "1", "--out", join(dir, "i.env")]);
      expect({ code: inProcess.code, err: inProcess.err }).toEqual({ code: 0, err: expect.not.stringContaining("tune:") });
      expect(Object.keys(parseProfile(readFileSync(join(dir, "i.env"), "utf8")).env)).toEqual(["HAKMEM_TINY_MAX", "HAKMEM_MID_MAX"]);
      const refused = await tune(["bench/tune/example_workload.ts", "--in-process", "--params", "purge", "--budget", "2"]);
      expect(refused.err).toContain("purge cannot change in-process");
      const c = await tune(["--cmd", "python3 -c 'x=[str(i) for i in range(1000)]'", "--params", "tiny,mid", "--budget", "3", "--confirm", "0", "--candidates", "2", "--baseline-reps", "1", "--out", join(dir, "c.env")]);
      expect({ code: c.code, err: c.err }).toEqual({ code: 0, err: expect.not.stringContaining("tune:") });
      expect(Object.keys(parseProfile(readFileSync(join(dir, "c.env"), "utf8")).env)).toEqual(["HAKMEM_TINY_MAX", "HAKMEM_MID_MAX"]);
    });
  }, 60_000);

  test("bad options and a broken workload fail with a message", async () => {
    expect((await tune(["random_mixed", "--weights", "speed=1"])).err).toContain("bad weight");
    expect((await tune(["no_such_program", "--budget", "1"])).err).toContain("unknown bench program");
    const broken = await tune(["--cmd", "exit 3", "--budget", "2"]);
    expect(broken.code).toBe(1);
    expect(broken.err).toContain("failed with default settings: exit code 3");
  }, 30_000);
});

describe("layout", () => {
  test("src/ is the library: nothing in it imports from bench/ (the tuner lives in bench/)", () => {
    const offenders: string[] = [];
    const files = [...new Bun.Glob("**/*.ts").scanSync({ cwd: join(ROOT, "src") })];
    expect(files.length).toBeGreaterThan(5);
    for (const f of files) {
      const text = readFileSync(join(ROOT, "src", f), "utf8");
      const specs = [...text.matchAll(/(?:from|import)\s*\(?\s*["']([^"']+)["']/g)].map((m) => m[1]);
      for (const spec of specs) {
        if (!spec.startsWith(".")) continue;
        const target = resolve(join(ROOT, "src", f, ".."), spec);
        if (!target.startsWith(join(ROOT, "src") + "/")) offenders.push(`src/${f} imports ${spec}`);
      }
    }
    expect(offenders).toEqual([]);
    expect(existsSync(join(ROOT, "src/tune.ts"))).toBe(false);
    expect(existsSync(join(ROOT, "bench/tune.ts"))).toBe(true);
  });
});
