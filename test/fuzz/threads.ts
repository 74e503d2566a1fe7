// threads.ts — the threaded runner: `threads` Bun Workers (src/threads.ts), each running
// its own seeded sequence (phase.ts) in phases; between phases, with every worker idle, the
// main thread changes the thresholds, checks the global statistics against the union of
// the workers' models and that no two live blocks overlap, and hands each worker's outbox
// to the next worker. The sequences replay from the seed; the interleaving does not.
import { fileURLToPath } from "node:url";
import * as hak from "../../src/index.ts";
import type { Stats } from "../../src/index.ts";
import { ThreadPool } from "../../src/threads.ts";
import { Rng } from "./rng.ts";
import { addTotals, emptyTotals, findOverlap, type Block } from "./model.ts";
import { compareStats } from "./compare.ts";
import { FuzzFailure } from "./failure.ts";
import { addCounts, defaults, type FuzzOptions, type FuzzReport, type OpCounts } from "./options.ts";
import type { PhaseArgs, PhaseResult } from "./phase.ts";

export interface ThreadFuzzOptions extends FuzzOptions {
  threads: number;
  /** barriers at which the main thread checks global stats (default 8) */
  phases?: number;
  /** a phase that takes longer is reported as a hang (default 120 s) */
  hangMs?: number;
}

/** The module the workers run (its export `fuzzPhase`). */
const PHASE_MODULE = fileURLToPath(new URL("./phase.ts", import.meta.url));
let runCounter = 0;

/**
 * Runs `threads` workers, each its own seeded sequence, in `phases` rounds; between rounds
 * the main thread changes the thresholds, checks global stats against all models and hands
 * each worker's outbox to the next worker. Throws a FuzzFailure on the first broken invariant;
 * the workers are then left running (see below): exit the process after a failure.
 */
export async function runFuzzThreads(options: ThreadFuzzOptions): Promise<FuzzReport> {
  const started = performance.now();
  const threads = options.threads;
  const phases = Math.max(1, options.phases ?? 8);
  const opsPerPhase = Math.max(1, Math.ceil(options.ops / threads / phases));
  const rng = new Rng(options.seed ^ 0x7f4a7c15);
  const routing = hak.routing();
  const initial = { tinyMax: routing.tinyMax, midMax: routing.midMax };
  const run = `${process.pid}-${++runCounter}-${options.seed}`;
  const counts: OpCounts = {};
  let steps = 0;
  const hangMs = options.hangMs ?? 120_000;
  const pool = await ThreadPool.start(threads);
  try {
    const baseline = hak.stats();
    let inboxes: Block[][] = Array.from({ length: threads }, () => []);
    for (let phase = 0; phase <= phases; phase++) {
      const final = phase === phases;
      const where = `threads=${threads} phase=${phase}`;
      const changeRouting = options.routing !== false && !final;
      if (changeRouting && rng.chance(0.5)) setRandomRouting(rng, routing, initial);
      if (final) hak.setRouting(initial);
      // every third phase, the thresholds also change while the workers allocate
      const churn = changeRouting && phase % 3 === 2;
      const phaseRun = pool.runAll(inboxes.map((inbox) => ({
        kind: "module" as const,
        path: PHASE_MODULE,
        exportName: "fuzzPhase",
        args: { run, seed: options.seed, options: { ...defaults(options), maxLive: Math.ceil((options.maxLive ?? 600) / threads) }, ops: final ? 0 : opsPerPhase, inbox, final, churn } satisfies PhaseArgs,
      })));
      const churner = churn ? setInterval(() => setRandomRouting(rng, routing, initial), 1) : undefined;
      const results = await withDeadline(phaseRun, hangMs, () =>
        new FuzzFailure(options.seed, where, -1, "hang", `the workers did not finish the phase within ${hangMs / 1000} s: an allocator call hangs`))
        .finally(() => clearInterval(churner));
      const values = results.map((r) => r.value as PhaseResult);
      const failed = values.findIndex((v) => v.failure);
      if (failed >= 0) {
        const f = values[failed].failure!;
        throw new FuzzFailure(options.seed, `${where} thread=${failed}`, f.step, f.op, f.detail);
      }
      checkBarrier(options.seed, where, baseline, values);
      inboxes = values.map((_, i) => values[(i + threads - 1) % threads].outbox);
      options.onProgress?.(phase, values.reduce((n, v) => n + v.blocks.length, 0));
      if (final) for (const v of values) {
        addCounts(counts, v.counts);
        steps += v.steps;
      }
    }
  } catch (error) {
    // The allocator may be corrupted: terminating the workers runs its thread-exit code,
    // which could hang. They are left to the process exit (cli.ts exits at once).
    hak.setRouting(initial);
    throw error;
  }
  hak.setRouting(initial);
  await pool.close();
  return { seed: options.seed, threads, steps, counts, ms: performance.now() - started };
}

/** `promise`, or a rejection with `timeout()` when it has not settled after `ms`. */
function withDeadline<T>(promise: Promise<T>, ms: number, timeout: () => Error): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(timeout()), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

function setRandomRouting(rng: Rng, limits: hak.Routing, initial: { tinyMax: number; midMax: number }): void {
  if (rng.chance(0.3)) return hak.setRouting(initial);
  const tinyMax = rng.chance(0.5) ? rng.pick([0, 64, 256, 1024, limits.tinyMaxLimit]) : rng.range(0, limits.tinyMaxLimit);
  const midMax = rng.chance(0.5) ? rng.range(tinyMax, limits.midMaxLimit) : Math.max(tinyMax, rng.pick([4096, 65536, limits.midMaxLimit]));
  hak.setRouting({ tinyMax, midMax: Math.max(midMax, limits.midMaxMin) });
}

/** Main thread, all workers idle: global stats vs every model, no overlap across threads. */
function checkBarrier(seed: number, where: string, baseline: Stats, values: PhaseResult[]): void {
  const totals = emptyTotals();
  for (const v of values) addTotals(totals, v.totals);
  const problem = compareStats(hak.stats(), baseline, totals, hak.checkMode() !== "off") ?? findOverlap(values.flatMap((v) => [...v.blocks, ...v.outbox]));
  if (problem) throw new FuzzFailure(seed, where, -1, "barrier", problem);
}
