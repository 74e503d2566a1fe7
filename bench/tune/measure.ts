// measure.ts — runs one child process under the rusage wrapper (bench/tune/rusage.c,
// compiled once with `zig cc`) with the candidate's HAKMEM_* environment and turns what
// it printed into a Measurement: ops/s from the program's RESULT line (else runs per
// second of wall time; or ops per CPU second, see ThroughputClock), page faults and peak RSS from the RESULT line when it reports
// them for its measured phase, else from wait4's rusage of the child. A run counts only
// when it exited 0, hakmem accepted every setting and its HAKMEM_STATS=1 report is there.
import { join } from "node:path";
import { ROOT } from "../build.ts";
import { zigCc } from "../zigcc.ts";
import { parseResultLine } from "../runner.ts";
import { parseHakmemStats, type HakmemStats } from "../proof.ts";
import type { Measurement } from "./score.ts";

const WRAPPER_SOURCE = join(import.meta.dir, "rusage.c");
const BUILD_DIR = join(ROOT, "bench/results/.build");

/** Path of the compiled rusage wrapper (built on first use; bench/zigcc.ts caches it by hash). */
export function wrapperPath(): string {
  return zigCc({ source: WRAPPER_SOURCE, outDir: BUILD_DIR, name: "tune-rusage", flags: ["-O2"] });
}

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

const RUSAGE_LINE = /^TUNE_RUSAGE (.*)$/m;

function fieldsOf(text: string): Record<string, number> {
  return Object.fromEntries(text.trim().split(/\s+/).map((kv) => kv.split("=")).map(([k, v]) => [k, Number(v)]));
}

export async function runChild(run: ChildRun): Promise<ChildOutput> {
  const argv = [wrapperPath(), run.preload ?? "-", ...run.argv];
  const started = performance.now();
  const proc = Bun.spawn(argv, { env: { ...cleanEnv(), ...run.env }, stdout: "pipe", stderr: "pipe", timeout: run.timeoutMs });
  const [stdout, rawStderr] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  await proc.exited;
  const timedOut = performance.now() - started >= run.timeoutMs;
  const lines = [...rawStderr.matchAll(new RegExp(RUSAGE_LINE, "gm"))];
  const usage = lines.length ? fieldsOf(lines[lines.length - 1][1]) : null;
  const stderr = rawStderr.replace(new RegExp(RUSAGE_LINE, "gm"), "").trimEnd();
  if (!usage) {
    const why = proc.signalCode ? `killed by ${proc.signalCode}${timedOut ? " (timeout)" : ""}` : `wrapper exit ${proc.exitCode}`;
    throw new Error(`${why}: ${tail(stderr)}`);
  }
  return {
    exitCode: usage.exit,
    signal: usage.signal,
    wallNs: usage.wall_ns,
    cpuUs: usage.cpu_us,
    faults: usage.minflt + usage.majflt,
    maxRssKb: usage.maxrss_kb,
    stdout,
    stderr,
    result: parseResultLine(stdout),
    hakmem: parseHakmemStats(stderr),
    timedOut,
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
