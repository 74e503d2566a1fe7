// proof.ts — decides whether a preloaded run was really served by the allocator it was
// run for. A workload's RESULT line names the object that defines `malloc`
// (malloc_from=); for hakmem, its HAKMEM_STATS=1 report at exit must also show the run's
// allocations and the build id of the library we built (no stale binary).
import type { Allocator } from "./allocators.ts";
import { sameFile } from "./allocators.ts";

export interface HakmemStats { buildId: string | null; allocs: number }

/** The `hakmem: build=<id> ... allocs=<N>` report in a process's stderr, or null. */
export function parseHakmemStats(stderr: string): HakmemStats | null {
  const at = stderr.search(/hakmem:\s*build=/);
  if (at < 0) return null;
  const text = stderr.slice(at);
  const firstLine = text.split("\n")[0];
  const buildId = firstLine.match(/build=([^\s,;]+)/)?.[1] ?? null;
  const onLine = firstLine.match(/\ballocs=(\d+)/);
  if (onLine) return { buildId, allocs: Number(onLine[1]) };
  // Lenient: per-tier lines after the header.
  let allocs = 0;
  for (const m of text.matchAll(/\ballocs=(\d+)/g)) allocs += Number(m[1]);
  return { buildId, allocs };
}

/** Error message when malloc was served by another object than the allocator's, else null. */
export function checkMallocOwner(alloc: Allocator, mallocFrom: string | undefined): string | null {
  if (!mallocFrom) return "the program did not say which object defines malloc";
  if (sameFile(mallocFrom, alloc.lib)) return null;
  const what = alloc.preload ? "preload did not take effect" : "malloc is not glibc's";
  return `${what}: malloc was served by ${mallocFrom}, expected ${alloc.lib}`;
}

/** Error message when hakmem's own counters do not prove the run, else null. */
export function checkHakmemStats(stderr: string, expectedBuildId: string | null, minAllocs: number): string | null {
  const stats = parseHakmemStats(stderr);
  if (stats === null) {
    return "no `hakmem: build=... allocs=N` line on stderr with HAKMEM_STATS=1: cannot prove hakmem served the run";
  }
  if (expectedBuildId && stats.buildId && stats.buildId !== expectedBuildId) {
    return `stale library: the run reports build ${stats.buildId}, the built library is ${expectedBuildId}`;
  }
  const need = Math.max(1, Math.floor(minAllocs));
  if (stats.allocs < need) {
    return `hakmem counted ${stats.allocs} allocations, the workload made at least ${need}: not served by hakmem`;
  }
  return null;
}
