// tune.ts — `bun run tune`: the experiment runner. For one workload (a bench/c program
// preloaded, a TypeScript workload module on Worker threads, or any command), searches
// hakmem's settings (routing thresholds, purge delay, retained memory, large cache) by
// successive halving against the default settings, shows progress, prints a leaderboard
// (screening), re-runs the best candidate alternately with the defaults (confirmation:
// it wins only if every pair favours it) and writes the winner as an environment profile:
//
//   bun run tune -- random_mixed --minutes 3
//   bun run tune -- app.trace --minutes 3    # a program's own allocations (HAKMEM_TRACE, bench/replay.ts)
//   env $(cat bench/results/tuned.env) LD_PRELOAD=$PWD/zig-out/lib/libhakmem.so prog
//   env $(cat bench/results/tuned.env) bun my-script.ts        # a Bun script: no preload
//   bun run tune -- random_mixed --compare bench/results/tuned.env   # profile vs defaults
//
// Modules: bench/tune/{options,space,probe,search,score,verdict,workloads,measure,phase,report,profile,compare}.ts.
import { readFileSync } from "node:fs";
import { relative, resolve } from "node:path";
import { ensureLibrary } from "./build.ts";
import { formatElapsed } from "./progress.ts";
import { hakmemIdentity } from "./machine.ts";
import { compare, profileSettings } from "./tune/compare.ts";
import { parseOptions, USAGE, type TuneOptions } from "./tune/options.ts";
import { writeJson, writeProfile } from "./tune/profile.ts";
import { comparisonTable, confirmation, failures, leaderboard, ProgressLine, useLines, verdictLine } from "./tune/report.ts";
import { DEFAULT_WEIGHTS, formatWeights, parseWeights } from "./tune/score.ts";
import { search, type SearchResult } from "./tune/search.ts";
import { defaults, envLines, selectParams, type Param } from "./tune/space.ts";
import { unknownParams } from "./tune/probe.ts";
import { formatInterval } from "./tune/verdict.ts";
import { benchPrograms, openWorkload, type TuneWorkload } from "./tune/workloads.ts";

function shown(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith("..") ? rel : path;
}

function listPrograms(scale: number): string {
  const lines = benchPrograms(scale).map((b) => `  ${b.program.padEnd(15)} ${b.args.join(" ").padEnd(28)} (${b.row})`);
  return `bench programs and their default args at --scale ${scale}:\n${lines.join("\n")}`;
}

/** The variables to search: --params, else all this library knows (routing only in-process). */
async function searchParams(o: TuneOptions, workload: TuneWorkload, lib: string): Promise<Param[]> {
  const params = selectParams(o.params ?? (workload.searchable ? "tiny,mid" : "all"));
  const refused = workload.searchable ? params.filter((p) => !workload.searchable!(p)) : [];
  if (refused.length) {
    throw new Error(`${refused.map((p) => p.name).join(", ")} cannot change in-process (read once at startup): drop --in-process to search them`);
  }
  const unknown = await unknownParams(lib, params);
  if (unknown.length && o.params) throw new Error(`${shown(lib)} does not know ${unknown.map((p) => p.env).join(", ")}`);
  if (unknown.length) console.log(`not searched (unknown to this library): ${unknown.map((p) => p.env).join(" ")}`);
  return params.filter((p) => !unknown.includes(p));
}

function summary(result: SearchResult, elapsedMs: number): string {
  const why = { finished: "search finished", time: "time limit reached", budget: "run budget used", aborted: "interrupted" }[result.stoppedBy];
  // (the search stops short of --minutes/--budget by what the confirmation runs need)
  return `${why}: ${result.runs} runs in ${result.brackets} bracket${result.brackets === 1 ? "" : "s"}, ${formatElapsed(elapsedMs)}`;
}

async function compareProfile(o: TuneOptions, workload: TuneWorkload): Promise<number> {
  const { params, settings } = profileSettings(readFileSync(o.compare!, "utf8"));
  const weights = o.weights ? parseWeights(o.weights) : DEFAULT_WEIGHTS;
  console.log(`workload: ${workload.label}; throughput by ${o.clock === "cpu" ? "CPU" : "wall"} time`);
  console.log(`profile ${shown(resolve(o.compare!))}: ${envLines(settings, params).join(" ")}`);
  const tty = Boolean(process.stderr.isTTY);
  const c = await compare((s) => workload.evaluate(s, params), params, settings, o.runs, weights, (n, total) => {
    if (tty) process.stderr.write(`\r\x1b[2Krun ${n}/${total}`);
  });
  if (tty) process.stderr.write("\r\x1b[2K");
  console.log(`\n${comparisonTable(c)}\n\nscore ×${c.score.toFixed(3)} (${formatWeights(weights)}; defaults = 1)`);
  console.log(`score per pair: ${formatInterval(c.verdict.interval)}`);
  console.log(c.verdict.better ? `the profile beats the defaults: ${c.verdict.reason}` : `no gain beyond the run-to-run spread: ${c.verdict.reason}`);
  return 0;
}

async function tune(o: TuneOptions): Promise<number> {
  const lib = ensureLibrary(false);
  const identity = hakmemIdentity(lib);
  const workload = await openWorkload({
    positional: o.positional, cmd: o.cmd, threads: o.threads, moduleArgs: o.moduleArgs ?? {}, exportName: o.exportName,
    inProcess: o.inProcess, scale: o.scale, timeoutMs: o.timeoutMs, clock: o.clock, lib, buildId: identity.buildId,
  });
  try {
    if (o.compare) return await compareProfile(o, workload);
    const params = await searchParams(o, workload, lib);
    const weights = o.weights ? parseWeights(o.weights) : DEFAULT_WEIGHTS;
    const timeLimitMs = o.minutes !== undefined ? o.minutes * 60_000 : undefined;
    console.log(`hakmem ${identity.version ?? "?"} build ${identity.buildId ?? "?"} (${shown(lib)})`);
    console.log(`workload: ${workload.label}`);
    console.log(`searching: ${params.map((p) => p.env).join(" ")}`);
    console.log(`score: ${formatWeights(weights)} (weighted geometric mean of ratios to the defaults; defaults = 1); throughput by ${o.clock === "cpu" ? "CPU" : "wall"} time`);
    console.log(`limits: ${[timeLimitMs ? `${o.minutes} min` : "", o.budget ? `${o.budget} runs` : ""].filter(Boolean).join(", ")}; seed ${o.seed}; ${o.candidates} candidates per bracket`);

    const controller = new AbortController();
    const onSigint = () => controller.abort();
    process.on("SIGINT", onSigint);
    const progress = new ProgressLine({ timeLimitMs, budgetRuns: o.budget });
    const started = performance.now();
    let result: SearchResult;
    try {
      result = await search({
        params, weights, seed: o.seed, candidates: o.candidates, reps: o.reps, baselineReps: o.baselineReps, confirmRuns: o.confirm,
        budgetRuns: o.budget, timeLimitMs, signal: controller.signal,
        evaluate: (settings) => workload.evaluate(settings, params),
        onProgress: (p) => progress.update(p),
      });
    } finally {
      progress.clear();
      process.off("SIGINT", onSigint);
    }
    const elapsedMs = performance.now() - started;

    console.log(`\n${leaderboard(result, o.top)}\n`);
    const confirmed = confirmation(result);
    if (confirmed) console.log(`${confirmed}\n`);
    const failed = failures(result);
    if (failed) console.log(`${failed}\n`);
    console.log(summary(result, elapsedMs));

    const winner = result.winner;
    const settings = winner ? winner.candidate.settings : defaults(params);
    // The confirmation runs are the fairest comparison; without them, the search's medians.
    const gain = winner ? (result.confirmation ?? winner) : null;
    const out = resolve(o.out);
    writeProfile(out, settings, params, {
      date: new Date(), workload: workload.label, seed: o.seed, weights: formatWeights(weights), runs: result.runs,
      score: gain?.score ?? 1, throughputRatio: gain?.ratios.throughput ?? 1,
      faultsRatio: gain ? 1 / gain.ratios.faults : 1, rssRatio: gain ? 1 / gain.ratios.rss : 1,
      defaultsWon: winner === null,
      pairs: winner && result.confirmation ? result.confirmation.verdict.interval : undefined,
    });
    console.log(verdictLine(result));
    console.log(`wrote ${shown(out)}: ${envLines(settings, params).join(" ")}`);
    if (o.json) {
      writeJson(resolve(o.json), { date: new Date().toISOString(), argv: process.argv.slice(2), hakmem: identity, workload: workload.label,
        params: params.map((p) => p.env), weights, seed: o.seed, throughput: o.clock, elapsedMs, result });
      console.log(`wrote ${shown(resolve(o.json))}`);
    }
    if (winner) for (const line of useLines({ kind: workload.kind, lib, profile: out, settings, params })) console.log(line);
    return 0;
  } finally {
    await workload.close();
  }
}

async function main(): Promise<number> {
  let o: TuneOptions;
  try {
    o = parseOptions(process.argv.slice(2));
  } catch (e) {
    console.error(`tune: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (o.help) {
    console.log(USAGE);
    return 0;
  }
  if (o.list) {
    console.log(listPrograms(o.scale));
    return 0;
  }
  try {
    return await tune(o);
  } catch (e) {
    console.error(`tune: ${(e as Error).message}`);
    return 1;
  }
}

process.exitCode = await main();
