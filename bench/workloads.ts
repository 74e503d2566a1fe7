// workloads.ts — the C workload programs and the rows the suite runs them with.
// Sizes are for the default suite; --quick and --scale shrink the amount of work
// (never the shapes: working sets, thread counts and size ranges stay the same).

export interface Workload {
  section: string;
  row: string;
  program: string;            // bench/c/<program>.c
  args: (scale: number) => (string | number)[];
  /** hakmem's counters must show at least this many allocations per reported op. */
  minAllocsPerOp: number;
  /** Single-thread rows: hakmem runs them in check mode too (HAKMEM_CHECK=1, right after its
   * normal run; bench/check_mode.ts reports the slowdown), doing this share of the work
   * (1: the same command; realloc_growth less: check mode's realloc always moves the block). */
  check?: number;
}

export const SECTION_TITLES: Record<string, string> = {
  random_mixed: "random_mixed — random slot: free if occupied, else malloc (1 thread)",
  larson: "larson — server simulation, arrays rotate between threads (remote frees)",
  mt_remote: "mt_remote — 2 threads, a share of blocks freed by the other thread",
  prodcons: "prodcons — producer allocates, consumer frees (xmalloc-test style)",
  false_sharing: "false_sharing — small objects written hard by 2 threads (cache-thrash / cache-scratch)",
  fragmentation: "fragmentation — sawtooth lifetimes around pinned blocks (peak and final RSS)",
  realloc_growth: "realloc_growth — 16 buffers grown side by side to 64 KiB",
  large_blocks: "large_blocks — 1–32 MiB blocks, every page touched",
  mt_churn: "mt_churn — threads re-created in rounds swap blocks through a shared array (1 B..128 KiB, 1 in 8 realloc'ed)",
  thread_generations: "thread_generations — threads exit while half their blocks live on; the next generation frees them",
  pool_bursts: "pool_bursts — a thread pool idle between bursts (bursts timed; final RSS after the last idle period)",
};

const n = (base: number, scale: number) => Math.max(1, Math.round(base * scale));

export const WORKLOADS: Workload[] = [
  { section: "random_mixed", row: "ws=400 16..1040 B", program: "random_mixed", args: (s) => [n(10e6, s), 400, 42], minAllocsPerOp: 0.25, check: 1 },
  { section: "random_mixed", row: "ws=8192 16..1040 B", program: "random_mixed", args: (s) => [n(10e6, s), 8192, 42], minAllocsPerOp: 0.25, check: 1 },
  { section: "random_mixed", row: "ws=400 1..32 KiB", program: "random_mixed", args: (s) => [n(4e6, s), 400, 42, 1024, 32768], minAllocsPerOp: 0.25, check: 1 },
  // 8M replacements in total whatever the thread count (800 rounds of 10000 on 1 thread).
  ...[1, 2, 4].map((t): Workload => ({
    section: "larson", row: `${t} thread${t > 1 ? "s" : ""} 8..1024 B`, program: "larson",
    args: (s) => [t, n(800 / t, s), 10000, 1024, 8, 1024, 42], minAllocsPerOp: 0.5, ...(t === 1 ? { check: 1 } : {}),
  })),
  ...[[2048, 500e3], [32768, 300e3]].flatMap(([max, ops]) => [0, 50, 90].map((pct): Workload => ({
    section: "mt_remote", row: `${pct}% remote 16..${max === 2048 ? "2048 B" : "32 KiB"}`, program: "mt_remote",
    args: (s) => [2, n(ops, s), pct, 16, max, 42], minAllocsPerOp: 0.5,
  }))),
  { section: "prodcons", row: "1 pair 16..512 B", program: "prodcons", args: (s) => [1, n(2e6, s), 16, 512, 42], minAllocsPerOp: 0.5 },
  { section: "prodcons", row: "2 pairs 16..512 B", program: "prodcons", args: (s) => [2, n(1e6, s), 16, 512, 42], minAllocsPerOp: 0.5 },
  ...["thrash", "scratch"].map((mode): Workload => ({
    section: "false_sharing", row: `cache-${mode} 8 B`, program: "false_sharing",
    args: (s) => [mode, 2, n(120e3, s), 500, 8], minAllocsPerOp: 0.5,
  })),
  { section: "fragmentation", row: "sawtooth 16..4096 B", program: "fragmentation", args: (s) => [n(250, s), 10000, 16, 4096, 42], minAllocsPerOp: 0.5, check: 1 },
  { section: "realloc_growth", row: "16 buffers to 64 KiB", program: "realloc_growth", args: (s) => [n(500, s), 16, 65536, 42], minAllocsPerOp: 0, check: 1 / 20 },
  { section: "mt_churn", row: "2 threads × 20 rounds, 64 slots", program: "mt_churn", args: (s) => [2, 20, n(10000, s), 64, 131072, 42], minAllocsPerOp: 0.5 },
  { section: "thread_generations", row: "40 generations × 2 threads, 16..2048 B", program: "thread_generations", args: (s) => [40, 2, n(20000, s), 2048, 42], minAllocsPerOp: 0.5 },
  { section: "pool_bursts", row: "2 threads × 20 bursts, 20 ms idle, 16..8192 B", program: "pool_bursts", args: (s) => [2, 20, n(50000, s), 8192, 20, 42], minAllocsPerOp: 0.5 },
  { section: "large_blocks", row: "4 live, 1..32 MiB", program: "large_blocks", args: (s) => [n(100, s), 4, 1, 32, 42], minAllocsPerOp: 0.5, check: 1 },
];
