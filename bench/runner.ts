// runner.ts — runs one workload program preloaded with one allocator and turns its
// output into a sample, or into an error when it failed or cannot prove its allocator.
// It runs under the measuring wrapper (measure.ts): page faults and CPU time come from
// wait4's rusage of the child.
import type { Allocator } from "./allocators.ts";
import { type Measured, runMeasured } from "./measure.ts";
import { checkHakmemStats, checkMallocOwner, parseHakmemStats } from "./proof.ts";

export interface RunOutcome {
  ok: boolean;
  message?: string;
  fields?: Record<string, string>;
  peakRssKb?: number;
  stderr?: string;
  /** what the wrapper measured (when the program ran at all) */
  measured?: Measured;
}

const TIMEOUT_MS = 120_000;

/** Environment of a child run: the caller's, minus any allocator settings, plus ours. */
export function childEnv(alloc: Allocator, preload: string | null = alloc.preload): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || k === "LD_PRELOAD" || k.startsWith("HAKMEM_") || k.startsWith("MIMALLOC_")) continue;
    if (k === "MALLOC_CONF" || k.startsWith("GLIBC_TUNABLES") || k.startsWith("TCMALLOC_")) continue;
    env[k] = v;
  }
  if (preload) env.LD_PRELOAD = preload;
  if (alloc.name === "hakmem") env.HAKMEM_STATS = "1";
  return env;
}

/** RESULT line fields (key=value) of a workload's stdout, or null. */
export function parseResultLine(stdout: string): Record<string, string> | null {
  const line = stdout.split("\n").reverse().find((l) => l.startsWith("RESULT "));
  if (!line) return null;
  const fields: Record<string, string> = {};
  for (const part of line.slice(7).trim().split(/\s+/)) {
    const eq = part.indexOf("=");
    if (eq > 0) fields[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return fields;
}

function tail(text: string, lines = 6): string {
  return text.trim().split("\n").slice(-lines).join("\n");
}

export interface ProofContext { hakmemBuildId: string | null; minAllocsPerOp: number }

/** `extraEnv`: more settings for the run (check mode's HAKMEM_CHECK=1). */
export async function runWorkload(cmd: string[], alloc: Allocator, proof: ProofContext, extraEnv: Record<string, string> = {}): Promise<RunOutcome> {
  const m = await runMeasured(cmd, { preload: alloc.preload, env: { ...childEnv(alloc, null), ...extraEnv }, timeoutMs: TIMEOUT_MS });
  const { stdout, stderr } = m;
  if (m.signal) return { ok: false, message: `killed by ${m.signal}${m.timedOut ? " (timeout)" : ""}${stderr ? `: ${tail(stderr)}` : ""}` };
  if (m.exitCode !== 0) return { ok: false, message: `exit code ${m.exitCode}: ${tail(stderr)}` };
  const fields = parseResultLine(stdout);
  if (!fields || !Number.isFinite(Number(fields.ops_per_sec))) return { ok: false, message: `no RESULT line: ${tail(stdout + stderr)}` };
  const ownerError = checkMallocOwner(alloc, fields.malloc_from);
  if (ownerError) return { ok: false, message: ownerError };
  if (alloc.name === "hakmem") {
    const statsError = checkHakmemStats(stderr, proof.hakmemBuildId, Number(fields.ops) * proof.minAllocsPerOp);
    if (statsError) return { ok: false, message: statsError };
    fields.hakmem_allocs = String(parseHakmemStats(stderr)?.allocs ?? "");
  }
  // The program's own VmHWM: ru_maxrss (and Bun's resourceUsage().maxRSS) keep the
  // parent's peak across fork+exec, so they would report Bun's RSS for small programs.
  const peakRssKb = Number(fields.peak_rss_kb);
  return { ok: true, fields, peakRssKb: Number.isFinite(peakRssKb) && peakRssKb > 0 ? peakRssKb : undefined, stderr, measured: m };
}
