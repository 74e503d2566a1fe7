// options.ts — what a fuzz run is asked to do (FuzzOptions, with their defaults) and what
// it reports when it ends (FuzzReport).

export interface FuzzOptions {
  seed: number;
  /** steps to run */
  ops: number;
  /** most blocks live at once (default 600) */
  maxLive?: number;
  /** largest request of the large tier (default 4 MiB) */
  largeMax?: number;
  /** most blocks above 256 KiB live at once (default 8) */
  maxBig?: number;
  /** change the routing thresholds now and then (default true; the threaded run does it between phases) */
  routing?: boolean;
  /** called every `progressEvery` steps */
  onProgress?: (step: number, live: number) => void;
  progressEvery?: number;
  /** print every step to stderr before running it (to locate a crash) */
  trace?: boolean;
}

export interface OpCounts {
  [op: string]: number;
}

export function addCounts(into: OpCounts, from: OpCounts): void {
  for (const [op, n] of Object.entries(from)) into[op] = (into[op] ?? 0) + n;
}

export function defaults(options: FuzzOptions) {
  return {
    seed: options.seed,
    maxLive: options.maxLive ?? 600,
    largeMax: options.largeMax ?? 4 * 1024 * 1024,
    maxBig: options.maxBig ?? 8,
    routing: options.routing ?? true,
  };
}

export interface FuzzReport {
  seed: number;
  threads: number;
  steps: number;
  counts: OpCounts;
  ms: number;
}
