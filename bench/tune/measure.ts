// measure.ts — runs one child process under the bench's measuring wrapper (bench/measure.ts,
// bench/c/measure.c: fork, LD_PRELOAD in the child only, wait4) with the candidate's HAKMEM_*
// environment and turns what it printed into a Measurement: ops/s from the program's RESULT line (else runs per
// second of wall time; or ops per CPU second, see ThroughputClock), page faults and peak RSS from the RESULT line when it reports
// them for its measured phase, else from wait4's rusage of the child. A run counts only
// when it exited 0, hakmem accepted every setting and its HAKMEM_STATS=1 report is there.
import os from "node:os";
import { runMeasured } from "../measure.ts";
import { parseResultLine } from "../runner.ts";
import { parseHakmemStats, type HakmemStats } from "../proof.ts";
import type { Measurement } from "./score.ts";

export interface ChildRun {
  argv: string[];
  /** library to LD_PRELOAD into the program (null: none, e.g. a Bun child using bun:ffi) */
  preload: string | null;
  /** HAKMEM_* (and other) variables for the child, on top of the cleaned environment */
  env: Record<string, string>;
  timeoutMs: number;
}

export interface ChildOutput {
  exitCode: number;
  signal: number;
  wallNs: number;
  /** user + system CPU time of the child (and its waited-for children) */
  cpuUs: number;
  faults: number;
  maxRssKb: number;
  stdout: string;
  stderr: string;
  /** RESULT line fields, when the program printed one */
  result: Record<string, string> | null;
  hakmem: HakmemStats | null;
  /** the run hit its time limit */
  timedOut: boolean;
}

/** The caller's environment without allocator settings. */
export function cleanEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || k === "LD_PRELOAD" || (k.startsWith("HAKMEM_") && k !== "HAKMEM_LIB")) continue;
    if (k === "MALLOC_CONF" || k.startsWith("MIMALLOC_") || k.startsWith("TCMALLOC_") || k.startsWith("GLIBC_TUNABLES")) continue;
    env[k] = v;
  }
  return env;
}

export async function runChild(run: ChildRun): Promise<ChildOutput> {
  const m = await runMeasured(run.argv, { preload: run.preload, env: { ...cleanEnv(), ...run.env }, timeoutMs: run.timeoutMs });
  const stderr = m.stderr.trimEnd();
  return {
    exitCode: m.exitCode ?? -1,
    signal: m.signal ? (os.constants.signals[m.signal as keyof typeof os.constants.signals] ?? -1) : 0,
    wallNs: m.wallSec * 1e9,
    cpuUs: m.cpuSec * 1e6,
    faults: m.faults,
    maxRssKb: m.maxRssKb,
    stdout: m.stdout,
    stderr,
    result: parseResultLine(m.stdout),
    hakmem: parseHakmemStats(stderr),
    timedOut: m.timedOut,
  };
}

export function tail(text: string, lines = 4): string {
  return text.trim().split("\n").slice(-lines).join(" | ");
}

/** hakmem's complaints about its environment (a setting it did not apply). */
const SETTING_ERRORS = /hakmem: (ignoring HAKMEM_\S+|unknown environment variable \S+|HAKMEM_TINY_MAX \(\d+\) is above[^\n]*)/;

/**
 * How throughput is counted: "wall" — ops per second of the program's own timing (its
 * RESULT line), else runs per second of wall time; "cpu" — ops per CPU second (user +
 * system), steadier on a loaded machine (time slices lost to other processes do not count).
 */
export type ThroughputClock = "wall" | "cpu";

/** A Measurement from a finished child, or an Error saying why the run does not count. */
export function toMeasurement(out: ChildOutput, clock: ThroughputClock = "wall"): Measurement {
  if (out.signal && out.timedOut) throw new Error(`timed out (--timeout): ${tail(out.stderr)}`);
  if (out.signal) throw new Error(`killed by signal ${out.signal}: ${tail(out.stderr)}`);
  if (out.exitCode !== 0) throw new Error(`exit code ${out.exitCode}: ${tail(out.stderr)}`);
  const bad = out.stderr.match(SETTING_ERRORS);
  if (bad) throw new Error(`setting not applied: ${bad[0]}`);
  if (!out.hakmem) throw new Error("no `hakmem: build=…` report on stderr with HAKMEM_STATS=1: the preload did not take effect, nothing was allocated, or the program closed stderr before exit (GNU coreutils do)");
  const r = out.result;
  const num = (key: string) => (r && r[key] !== undefined && Number.isFinite(Number(r[key])) ? Number(r[key]) : undefined);
  const peak = num("peak_rss_kb");
  const ops = num("ops") ?? 1;
  const cpuSecs = num("cpu_secs") ?? out.cpuUs / 1e6;
  return {
    opsPerSec: clock === "cpu" ? ops / Math.max(cpuSecs, 1e-6) : num("ops_per_sec") ?? 1e9 / out.wallNs,
    faults: num("faults") ?? out.faults,
    peakRssKb: peak !== undefined && peak > 0 ? peak : out.maxRssKb,
  };
}
