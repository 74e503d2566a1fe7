// workloads.ts — ready-made multi-thread workloads over a ThreadPool, parameterised like
// the benchmarks: random-mixed on every thread, Larson-style rotation of block arrays
// between threads, and producer/consumer pairs whose consumers free remotely. Each returns
// the per-thread results and the process-wide change of hakmem's counters over the run
// (cleanup included, so live bytes return to where they started).
import * as api from "./index.ts";
import type { Stats } from "./stats.ts";
import type { Task, TaskResult, ThreadPool } from "./threads.ts";
import type { RandomMixedOptions } from "./kernels.ts";

export interface RunReport {
  workload: string;
  threads: number;
  /** results of the measured phase, one per task */
  results: TaskResult[];
  /** operations of the measured phase, summed over threads */
  ops: number;
  /** main-thread wall time of the measured phase */
  wallNs: number;
  /** process-wide counters: after the run and its cleanup minus before it */
  stats: Stats;
}

async function measure(
  workload: string,
  pool: ThreadPool,
  body: () => Promise<TaskResult[]>,
): Promise<RunReport> {
  const before = api.stats();
  const start = Bun.nanoseconds();
  const results = await body();
  const wallNs = Bun.nanoseconds() - start;
  const ops = results.reduce((sum, r) => sum + r.ops, 0);
  return { workload, threads: pool.size, results, ops, wallNs, stats: api.statsDelta(before, api.stats()) };
}

/** The random-mixed kernel on every thread at once (seed + thread index per thread). */
export function randomMixed(pool: ThreadPool, options: RandomMixedOptions): Promise<RunReport> {
  const seed = options.seed ?? 1;
  const tasks = Array.from({ length: pool.size }, (_, i): Task => ({ kind: "random-mixed", ...options, seed: seed + i }));
  return measure("random-mixed", pool, () => pool.runAll(tasks));
}

export interface LarsonRunOptions {
  /** entries per thread's block array */
  nblocks: number;
  min: number;
  max: number;
  /** rounds; in round r thread i works on the array thread (i + r) mod n filled */
  rounds: number;
  /** replacements per thread per round */
  replacements: number;
  seed?: number;
}

/**
 * Larson-style rotation: every thread fills its own block array, then in each round works
 * on the array of another thread, freeing blocks that thread allocated (remote frees).
 * Results are those of the rounds; the arrays are freed at the end.
 */
export function larson(pool: ThreadPool, options: LarsonRunOptions): Promise<RunReport> {
  const { nblocks, min, max, rounds, replacements } = options;
  const seed = options.seed ?? 1;
  const n = pool.size;
  return measure("larson", pool, async () => {
    const arrays = Array.from({ length: n }, () => api.kernels.newBlockArray(nblocks));
    try {
      await pool.runAll(arrays.map((array, i): Task => ({ kind: "larson-fill", array, nblocks, min, max, seed: seed + i })));
      const results: TaskResult[] = [];
      for (let r = 1; r <= rounds; r++) {
        const tasks = arrays.map((_, i): Task => ({
          kind: "larson-round",
          array: arrays[(i + r) % n],
          nblocks,
          min,
          max,
          replacements,
          seed: seed + r * n + i,
        }));
        results.push(...(await pool.runAll(tasks)));
      }
      return results;
    } finally {
      for (const array of arrays) api.kernels.freeBlockArray(array, nblocks);
    }
  });
}

export interface ProducerConsumerOptions {
  /** blocks each producer allocates and its consumer frees */
  count: number;
  min: number;
  max: number;
  /** queue capacity (default 1024) */
  capacity?: number;
  seed?: number;
}

/**
 * Producer/consumer pairs: thread 2k allocates blocks into queue k, thread 2k+1 takes them
 * out and frees them, so every free is a remote free. Needs at least 2 threads (an odd
 * last thread stays idle).
 */
export function producerConsumer(pool: ThreadPool, options: ProducerConsumerOptions): Promise<RunReport> {
  const pairs = Math.floor(pool.size / 2);
  if (pairs < 1) return Promise.reject(new RangeError("hakmem.producerConsumer: needs a pool of at least 2 threads"));
  const { count, min, max } = options;
  const seed = options.seed ?? 1;
  return measure("producer-consumer", pool, async () => {
    const queues = Array.from({ length: pairs }, () => api.kernels.queueNew(options.capacity ?? 1024));
    try {
      const tasks: Task[] = [];
      queues.forEach((queue, k) => {
        tasks.push({ kind: "produce", queue, count, min, max, seed: seed + k });
        tasks.push({ kind: "consume", queue, count });
      });
      return await pool.runAll(tasks);
    } finally {
      for (const queue of queues) api.kernels.queueFree(queue);
    }
  });
}

/**
 * A user module's function on every thread at once: `fn(api, args, { thread, threads })`.
 * A relative `path` is resolved against the calling module's directory (see threads.ts).
 */
export function moduleOnAll(pool: ThreadPool, path: string | URL, args?: unknown, exportName?: string): Promise<RunReport> {
  const tasks = Array.from({ length: pool.size }, (): Task => ({ kind: "module", path, args, exportName }));
  return measure(`module ${path}`, pool, () => pool.runAll(tasks));
}
