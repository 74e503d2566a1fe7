// soak.ts — the soak runner: stress and benchmark workloads in a loop under
// LD_PRELOAD=libhakmem.so, thread counts cycling 1..8 and seeds varying, until time is up.
//
//   bun run soak --minutes N        (npm run soak -- --minutes N; default 30)
//   bun test/soak.ts [--minutes N] [--seed S] [--fuzz-ops N] [--threads T]
//
// Each loop runs every program once: the verifying C tests of test/c (stress_mt, larson,
// prodcons, thread_churn, fork_load: exit 0, "PASS <name>", nothing on stderr) and the
// workloads of bench/c (exit 0, a RESULT line with ops > 0 whose malloc_from is
// libhakmem.so, nothing on stderr), then a slice of the randomized API tests (test/fuzz/):
// one thread in this process, and a run in a child process (bun test/fuzz/cli.ts) on the
// loop's threads, every other one in check mode (where any report is a false positive;
// 1-thread loops always). A run also fails when its peak RSS (VmHWM at exit, read
// by a small preloaded probe; polled from /proc when the program dies first) exceeds the
// program's bound on the run and on one repeat of the same command. Prints a line per loop, each failure as it happens with the command
// that replays it, and a summary: runs, failures, peak RSS overall and per program.
// Exits 1 on any failure. The library is $HAKMEM_LIB or zig-out/lib/libhakmem.so.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { compileProgram } from "../bench/build.ts";
import { zigCcAsync } from "../bench/zigcc.ts";
import { FuzzFailure, runFuzz } from "./fuzz/index.ts";
import { compileC, hakmemLib, REPO } from "./helpers/c.ts";

const RUN_TIMEOUT_MS = 180_000;
const MIB = 1024 * 1024;

// ---------------------------------------------------------------------------------------
// The programs

interface Program {
  name: string;
  /** test/c or bench/c */
  source: "test" | "bench";
  file: string;
  args: (threads: number, seed: number) => (string | number)[];
  /** peak RSS bound in MiB for a thread count */
  rssMiB: (threads: number) => number;
}

const half = (t: number) => Math.max(1, Math.ceil(t / 2));

// RSS bounds (MiB, a function of the thread count): about 1.5-2x the peak the same run
// reaches with glibc and with hakmem (measured on 1, 4 and 8 threads): working sets grow
// with threads; a leak or unbounded growth within a run goes through the bound.
const PROGRAMS: Program[] = [
  // stress_mt's peak swings with thread timing: 3 threads cross, 10 runs: hakmem 144-195 MiB,
  // glibc 136, mimalloc 129, jemalloc 114 (1.5x glibc: 208)
  { name: "stress_mt", source: "test", file: "stress_mt", rssMiB: (t) => 64 + 48 * t,
    args: (t, s) => [t, s, Math.floor(160_000 / t), s % 2 ? "cross" : "local"] },
  { name: "larson", source: "test", file: "larson", rssMiB: (t) => 32 + 4 * t, args: (t, s) => [t, Math.max(4, Math.floor(100 / t)), s] },
  { name: "prodcons", source: "test", file: "prodcons", rssMiB: () => 96, args: (t) => [half(t), Math.max(1, Math.floor(t / 2)), 600_000, 64] },
  { name: "thread_churn", source: "test", file: "thread_churn", rssMiB: (t) => 48 + 4 * t, args: (t) => [100 * t + 100, t, 200, 32] },
  { name: "fork_load", source: "test", file: "fork_load", rssMiB: (t) => 24 + 24 * t, args: (t) => [12, t] },
  { name: "bench/random_mixed", source: "bench", file: "random_mixed", rssMiB: () => 64,
    args: (_t, s) => (s % 2 ? [2_000_000, 8192, s] : [1_000_000, 400, s, 1024, 32768]) },
  { name: "bench/larson", source: "bench", file: "larson", rssMiB: (t) => 32 + 4 * t,
    args: (t, s) => [t, Math.max(2, Math.floor(40 / t)), 10_000, 1024, 8, 1024, s] },
  { name: "bench/mt_remote", source: "bench", file: "mt_remote", rssMiB: (t) => 32 + 32 * t,
    args: (t, s) => [Math.max(2, t), 150_000, [0, 50, 90][s % 3], 16, s % 2 ? 2048 : 32768, s] },
  // threads re-created in rounds swap blocks of 1 B..128 KiB (some realloc'ed) through a
  // shared array: 2 threads, hakmem ~50 MiB, glibc 14, mimalloc 28, tcmalloc 28-32
  { name: "bench/mt_churn", source: "bench", file: "mt_churn", rssMiB: (t) => 64 + 16 * t,
    args: (t, s) => [Math.max(2, t), 6, 10_000, 64, 131072, s] },
  { name: "bench/prodcons", source: "bench", file: "prodcons", rssMiB: () => 64, args: (t, s) => [half(t), 400_000, 16, 512, s] },
  { name: "bench/false_sharing", source: "bench", file: "false_sharing", rssMiB: () => 32,
    args: (t, s) => [s % 2 ? "thrash" : "scratch", Math.max(2, t), 20_000, 500, 8] },
  { name: "bench/fragmentation", source: "bench", file: "fragmentation", rssMiB: () => 128, args: (_t, s) => [40, 10_000, 16, 4096, s] },
  { name: "bench/realloc_growth", source: "bench", file: "realloc_growth", rssMiB: () => 48, args: (_t, s) => [40, 16, 65536, s] },
  // 4 live blocks of up to 32 MiB (128 MiB) plus freed mappings in the large cache
  // (HAKMEM_LARGE_CACHE_MB, 128 MiB; the limit, the recent peak of live bytes + 1/8) until their decay
  { name: "bench/large_blocks", source: "bench", file: "large_blocks", rssMiB: () => 272, args: (_t, s) => [30, 4, 1, 32, s] },
];

// ---------------------------------------------------------------------------------------
// Peak RSS probe: a preloaded destructor that appends "<pid> <VmHWM kB>" to $SOAK_RSS_FILE

const PROBE_SOURCE = `
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
/* No malloc: runs at exit inside the program under test. */
__attribute__((destructor)) static void soak_report_peak_rss(void) {
    const char *path = getenv("SOAK_RSS_FILE");
    if (!path) return;
    char buf[8192];
    int fd = open("/proc/self/status", O_RDONLY);
    if (fd < 0) return;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return;
    buf[n] = 0;
    char *line = strstr(buf, "VmHWM:");
    if (!line) return;
    long kb = strtol(line + 6, NULL, 10);
    char out[64];
    int len = 0;
    char digits[24];
    int d = 0;
    for (long v = getpid(); v > 0 || d == 0; v /= 10) digits[d++] = (char)('0' + v % 10);
    while (d) out[len++] = digits[--d];
    out[len++] = ' ';
    for (long v = kb; v > 0 || d == 0; v /= 10) digits[d++] = (char)('0' + v % 10);
    while (d) out[len++] = digits[--d];
    out[len++] = '\\n';
    int o = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (o < 0) return;
    ssize_t w = write(o, out, (size_t)len);
    (void)w;
    close(o);
}
`;

async function buildProbe(): Promise<string> {
  const dir = join(tmpdir(), `hakmem-soak-${process.getuid?.() ?? 0}`);
  mkdirSync(dir, { recursive: true });
  const src = join(dir, "rss-probe.c");
  if (!existsSync(src) || readFileSync(src, "utf8") !== PROBE_SOURCE) writeFileSync(src, PROBE_SOURCE);
  return zigCcAsync({ source: src, outDir: dir, name: "rss-probe", flags: ["-O2", "-shared", "-fPIC"], suffix: ".so" });
}

/** VmHWM of a live process in kB (0 when it is gone). */
function polledPeakKb(pid: number): number {
  try {
    const m = readFileSync(`/proc/${pid}/status`, "utf8").match(/VmHWM:\s+(\d+)/);
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

// ---------------------------------------------------------------------------------------
// Running one program

interface Outcome {
  program: string;
  command: string;
  ok: boolean;
  reason: string;
  peakKb: number;
  /** the RSS bound of this run (0: none) */
  boundMiB: number;
  /** it verified, and failed only by its peak RSS */
  overBound?: boolean;
  ms: number;
}

interface Context {
  lib: string;
  probe: string;
  rssFile: string;
  executables: Map<string, string>;
}

function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, "'\\''")}'`;
}

function tail(text: string, lines = 8): string {
  return text.trim().split("\n").slice(-lines).join("\n");
}

/** What is wrong with a finished run's output, or "" when it verified. */
function verify(program: Program, stdout: string, stderr: string): string {
  if (program.source === "test") {
    if (!stdout.includes(`PASS ${program.file}`)) return `no "PASS ${program.file}" line`;
  } else {
    const line = stdout.split("\n").find((l) => l.startsWith("RESULT "));
    if (!line) return "no RESULT line";
    const ops = Number(line.match(/\bops=(\S+)/)?.[1]);
    if (!(ops > 0)) return `RESULT line without ops > 0: ${line}`;
    const from = line.match(/\bmalloc_from=(\S+)/)?.[1] ?? "";
    if (!from.includes("libhakmem")) return `malloc was served by ${from || "?"}, not libhakmem.so: the preload did not take effect`;
  }
  if (stderr.trim()) return `unexpected stderr: ${tail(stderr, 4)}`;
  return "";
}

async function runProgram(ctx: Context, program: Program, threads: number, seed: number): Promise<Outcome> {
  const exe = ctx.executables.get(program.name)!;
  const argv = [exe, ...program.args(threads, seed).map(String)];
  const command = `LD_PRELOAD=${ctx.lib} ${argv.map(shellQuote).join(" ")}`;
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && k !== "LD_PRELOAD" && !k.startsWith("HAKMEM_")) env[k] = v;
  env.LD_PRELOAD = `${ctx.lib} ${ctx.probe}`;
  env.SOAK_RSS_FILE = ctx.rssFile;
  const started = performance.now();
  const proc = Bun.spawn(argv, { cwd: REPO, env, stdin: "ignore", stdout: "pipe", stderr: "pipe", timeout: RUN_TIMEOUT_MS, killSignal: "SIGKILL" });
  let polled = 0;
  const poller = setInterval(() => (polled = Math.max(polled, polledPeakKb(proc.pid))), 100);
  const [stdout, stderr] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  await proc.exited;
  clearInterval(poller);
  const ms = performance.now() - started;
  const reported = readProbe(ctx.rssFile, proc.pid);
  const peakKb = Math.max(reported, polled);
  let reason = "";
  if (proc.signalCode) reason = `killed by ${proc.signalCode}${ms >= RUN_TIMEOUT_MS ? ` (timeout ${RUN_TIMEOUT_MS / 1000} s)` : ""}; stderr: ${tail(stderr, 4)}`;
  else if (proc.exitCode !== 0) reason = `exit ${proc.exitCode}; stderr: ${tail(stderr)}; stdout: ${tail(stdout, 3)}`;
  else reason = verify(program, stdout, stderr);
  const bound = program.rssMiB(threads);
  const overBound = !reason && peakKb > bound * 1024;
  if (overBound) reason = `peak RSS ${mib(peakKb)} above the bound of ${bound} MiB`;
  return { program: program.name, command, ok: !reason, reason, peakKb, boundMiB: bound, ms, overBound };
}

/**
 * A run, and once more when it verified but went over its RSS bound. A multi-threaded
 * program's peak swings with thread timing (fork_load, 4 threads, 10 runs on this 2-core
 * machine: 82-121 MiB, its bound 120): a leak or unbounded growth goes over again on the
 * same command, a timing spike seldom does. Both peaks are printed; the run fails when the
 * repeat is over its bound too (or fails in any other way).
 */
async function runProgramOnce(ctx: Context, program: Program, threads: number, seed: number, log: (line: string) => void): Promise<Outcome> {
  const first = await runProgram(ctx, program, threads, seed);
  if (!first.overBound) return first;
  const again = await runProgram(ctx, program, threads, seed);
  const both = `first run ${mib(first.peakKb)}, repeat ${mib(again.peakKb)} (bound ${first.boundMiB} MiB)`;
  if (again.ok) {
    log(`over its RSS bound once, within it on the repeat: ${program.name} threads=${threads} seed=${seed}: ${both}`);
    return { ...again, peakKb: Math.max(first.peakKb, again.peakKb), ms: first.ms + again.ms };
  }
  return { ...again, reason: again.overBound ? `peak RSS above its bound twice: ${both}` : again.reason };
}

/** The probe's figure for `pid` (0 when the program did not reach its exit handlers). */
function readProbe(file: string, pid: number): number {
  if (!existsSync(file)) return 0;
  const lines = readFileSync(file, "utf8").split("\n");
  rmSync(file, { force: true });
  const line = lines.find((l) => l.startsWith(`${pid} `));
  return line ? Number(line.split(" ")[1]) : 0;
}

// ---------------------------------------------------------------------------------------
// Fuzz slices

async function fuzzInProcess(seed: number, ops: number): Promise<Outcome> {
  const started = performance.now();
  const command = `HAKMEM_LIB=${hakmemLib()} bun test/fuzz/cli.ts --seed ${seed} --ops ${ops}`;
  let reason = "";
  try {
    runFuzz({ seed, ops });
  } catch (e) {
    reason = e instanceof FuzzFailure ? e.message : `threw ${(e as Error)?.stack ?? e}`;
  }
  return { program: "fuzz (1 thread, in process)", command, ok: !reason, reason, peakKb: 0, boundMiB: 0, ms: performance.now() - started };
}

/** A fuzz run in a child process: threads (a corrupted heap can hang) or check mode (set before the first allocation). */
async function fuzzChild(seed: number, ops: number, threads: number, checkMode: boolean): Promise<Outcome> {
  const args = ["test/fuzz/cli.ts", "--seed", String(seed), "--ops", String(ops), "--threads", String(threads), "--hang-seconds", "60"];
  if (checkMode) args.push("--check");
  const command = `HAKMEM_LIB=${hakmemLib()} bun ${args.join(" ")}`;
  const env: Record<string, string> = { ...(process.env as Record<string, string>), HAKMEM_LIB: hakmemLib() };
  delete env.LD_PRELOAD;
  const started = performance.now();
  const proc = Bun.spawn([process.execPath, ...args], { cwd: REPO, env, stdout: "pipe", stderr: "pipe", timeout: RUN_TIMEOUT_MS, killSignal: "SIGKILL" });
  const [stdout, stderr] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  await proc.exited;
  let reason = "";
  if (proc.signalCode) reason = `killed by ${proc.signalCode}; ${tail(stdout + stderr, 4)}`;
  else if (proc.exitCode !== 0) reason = tail(stdout.split("\n").filter((l) => l.startsWith("FAIL")).join("\n") || stdout + stderr, 6);
  else if (stderr.trim()) reason = `unexpected stderr: ${tail(stderr, 4)}`;
  const program = `fuzz (child${threads > 1 ? ", threads" : ""}${checkMode ? ", check mode" : ""})`;
  return { program, command, ok: !reason, reason, peakKb: 0, boundMiB: 0, ms: performance.now() - started };
}

// ---------------------------------------------------------------------------------------
// The loop and the summary

interface Tally {
  runs: number;
  failures: number;
  peakKb: number;
  peakAt: string;
  /** the RSS bound of the run that reached peakKb */
  bound: number;
}

const USAGE = "usage: bun test/soak.ts [--minutes N] [--seed S] [--fuzz-ops N] [--threads T (fixed, instead of cycling 1..8)]";

/** An unknown or malformed option: one line and the usage (exit 2), not a stack trace. */
function usageError(error: unknown): never {
  console.error(`soak: ${(error as Error).message}\n${USAGE}`);
  process.exit(2);
}

function parse() {
  const { values } = (() => {
    try {
      return parseArgs({
        args: process.argv.slice(2),
        options: {
          minutes: { type: "string", default: "30" },
          seed: { type: "string", default: "1" },
          "fuzz-ops": { type: "string", default: "3000" },
          threads: { type: "string" },
        },
      });
    } catch (error) {
      return usageError(error);
    }
  })();
  const minutes = Number(values.minutes);
  const seed = Number(values.seed);
  const fuzzOps = Number(values["fuzz-ops"]);
  const threads = values.threads === undefined ? 0 : Number(values.threads);
  if (!(minutes >= 0) || !Number.isSafeInteger(seed) || !Number.isSafeInteger(fuzzOps) || fuzzOps < 1 ||
      !Number.isInteger(threads) || threads < 0 || threads > 64) {
    console.error(USAGE);
    process.exit(2);
  }
  return { minutes, seed, fuzzOps, threads };
}

function clock(ms: number): string {
  const s = Math.floor(ms / 1000);
  return `${String(Math.floor(s / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
}

const mib = (kb: number) => `${(kb / 1024).toFixed(1)} MiB`;

async function prepare(): Promise<Context> {
  const lib = hakmemLib();
  if (!existsSync(lib)) throw new Error(`${lib} does not exist: run 'npm run build' first`);
  const executables = new Map<string, string>();
  for (const p of PROGRAMS) executables.set(p.name, p.source === "test" ? await compileC(p.file) : compileProgram(p.file));
  const probe = await buildProbe();
  const rssFile = join(tmpdir(), `hakmem-soak-rss-${process.pid}.txt`);
  rmSync(rssFile, { force: true });
  return { lib, probe, rssFile, executables };
}

async function main(): Promise<void> {
  const { minutes, seed, fuzzOps, threads: fixedThreads } = parse();
  const ctx = await prepare();
  console.log(`soak: ${minutes} min, library ${ctx.lib}, ${PROGRAMS.length} programs + fuzz per loop, threads 1..8, seeds from ${seed}`);
  const tallies = new Map<string, Tally>();
  const failures: Outcome[] = [];
  let runs = 0;
  const started = performance.now();
  const deadline = started + minutes * 60_000;
  const record = (o: Outcome, where: string) => {
    runs++;
    const t = tallies.get(o.program) ?? { runs: 0, failures: 0, peakKb: 0, peakAt: "", bound: 0 };
    t.runs++;
    if (o.peakKb > t.peakKb) {
      t.peakKb = o.peakKb;
      t.peakAt = where;
      t.bound = o.boundMiB;
    }
    if (!o.ok) {
      t.failures++;
      failures.push(o);
      console.log(`[${clock(performance.now() - started)}] FAIL ${o.program} (${where}): ${o.reason}\n    replay: ${o.command}`);
    }
    tallies.set(o.program, t);
  };
  let loop = 0;
  loops: while (loop === 0 || performance.now() < deadline) {
    const threads = fixedThreads || (loop % 8) + 1;
    const loopSeed = seed + loop;
    const where = `threads=${threads} seed=${loopSeed}`;
    const before = failures.length;
    for (const program of PROGRAMS) {
      if (loop > 0 && performance.now() >= deadline) break loops;
      record(await runProgramOnce(ctx, program, threads, loopSeed, (line) => console.log(`[${clock(performance.now() - started)}] ${line}`)), where);
    }
    record(await fuzzInProcess(loopSeed, fuzzOps), where);
    // threaded runs, every other one in check mode; 1-thread loops: check mode
    record(await fuzzChild(loopSeed, fuzzOps * 2, threads, threads === 1 || loop % 2 === 1), where);
    loop++;
    const peak = Math.max(...[...tallies.values()].map((t) => t.peakKb));
    console.log(`[${clock(performance.now() - started)}] loop ${loop} ${where}: ${failures.length - before} failed; total ${runs} runs, ${failures.length} failures, peak RSS ${mib(peak)}`);
  }
  printSummary(performance.now() - started, loop, runs, tallies, failures);
  process.exit(failures.length ? 1 : 0);
}

function printSummary(ms: number, loops: number, runs: number, tallies: Map<string, Tally>, failures: Outcome[]): void {
  const rows = [...tallies.entries()];
  const top = rows.reduce((best, row) => (row[1].peakKb > best[1].peakKb ? row : best), rows[0]);
  console.log(`\nsoak summary: ${(ms / 60_000).toFixed(1)} min, ${loops} loops, ${runs} runs, ${failures.length} failures`);
  if (top) console.log(`peak RSS overall: ${mib(top[1].peakKb)} (${top[0]}, ${top[1].peakAt})`);
  console.log(`${"program".padEnd(30)} ${"runs".padStart(6)} ${"fail".padStart(5)} ${"peak RSS".padStart(11)} ${"its bound".padStart(9)}  peak run`);
  for (const [name, t] of rows) {
    const peak = t.peakKb ? mib(t.peakKb) : "-";
    const bound = t.bound ? `${t.bound} MiB` : "-";
    console.log(`${name.padEnd(30)} ${String(t.runs).padStart(6)} ${String(t.failures).padStart(5)} ${peak.padStart(11)} ${bound.padStart(9)}  ${t.peakKb ? t.peakAt : ""}`);
  }
  if (failures.length) {
    console.log("\nfailures (replay commands):");
    for (const f of failures) console.log(`  ${f.program}: ${f.reason.split("\n")[0]}\n    ${f.command}`);
  }
}

await main();
