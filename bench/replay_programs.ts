// replay_programs.ts — `bun run replay:programs`: the trace replay checked against the real
// programs of the bench (bench/programs.ts: python, sqlite, gcc, git, perl, sort, inputs
// generated on the fly). For each program:
//   1. recording: the program under hakmem without and with HAKMEM_TRACE (alternately,
//      --runs each): the overhead (median wall ×) and the trace size (bytes an event, over
//      every process's file; uncompressed);
//   2. ranking by the program: the program itself under every allocator (the `--cmd` way:
//      commands.ts, stdout checked against glibc's), medians of wall time;
//   3. ranking by the replay: its biggest trace (the process that allocated most: cc1 for
//      gcc) replayed under every allocator (bench/replay.ts), medians of the replay's time;
// and says whether the two rankings agree (the whole order, and the fastest allocator).
//
//   bun run replay:programs -- --scale 0.5 --runs 3 [--filter gcc] [--allocators a,b]
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { discoverAllocators } from "./allocators.ts";
import { ensureLibrary, ROOT, snapshotLibrary } from "./build.ts";
import { runCommandSection } from "./commands.ts";
import { busyWarning, hakmemIdentity, machineInfo } from "./machine.ts";
import { runMeasured } from "./measure.ts";
import { cleanupPrograms, preparePrograms } from "./programs.ts";
import { Progress } from "./progress.ts";
import { cellOf, metricOf, type Row } from "./results.ts";
import { childEnv } from "./runner.ts";
import { median } from "./stats.ts";
import { replayerBinary, replayOnce, type Column } from "./replay.ts";
import { loadTrace, summarizeTrace } from "../src/trace.ts";

interface Options { scale: number; runs: number; filter: string | null; allocators: string[] | null; jsonPath: string }

function parse(argv: string[]): Options {
  const o: Options = { scale: 0.5, runs: 3, filter: null, allocators: null, jsonPath: "bench/results/replay-programs.json" };
  for (let i = 0; i < argv.length; i++) {
    const v = () => argv[++i] ?? "";
    if (argv[i] === "--scale") o.scale = Number(v());
    else if (argv[i] === "--runs") o.runs = Math.max(1, Number(v()));
    else if (argv[i] === "--filter") o.filter = v();
    else if (argv[i] === "--allocators") o.allocators = v().split(",");
    else if (argv[i] === "--json") o.jsonPath = v();
    else throw new Error(`unknown option ${argv[i]}\nusage: bun bench/replay_programs.ts [--scale X] [--runs N] [--filter NAME] [--allocators list] [--json FILE]`);
  }
  return o;
}

/** Allocators fastest first by median; those without a median are left out. */
/** What one program's recording and replay measured (one entry of the JSON it writes). */
interface ProgramResult {
  program: string; processes: number; events: number; bytes: number; bytesPerEvent: number;
  recordOverhead: number; plainSec: number; tracedSec: number;
  replayed: { events: number; threads: number; peakLiveBytes: number; crossThreadShare: number };
  byCmd: string[]; byReplay: string[]; sameOrder: boolean; sameBest: boolean; tau: number;
  selfTau: { cmd: number | null; replay: number | null; cmdCpu: number | null; replayCpu: number | null };
  byCmdCpu: string[]; byReplayCpu: string[]; sameOrderCpu: boolean; sameBestCpu: boolean; tauCpu: number;
  cmdMedians: Record<string, number | null>; replayMedians: Record<string, number | null>;
  errors: { allocator: string; message: string }[];
}

function ranking(medians: Record<string, number | null>): string[] {
  return Object.entries(medians).filter((e): e is [string, number] => e[1] !== null).sort((a, b) => a[1] - b[1]).map((e) => e[0]);
}

/** Kendall's tau of two rankings over the allocators both have (1: the same order, -1: reversed). */
export function kendallTau(a: string[], b: string[]): number {
  const common = a.filter((x) => b.includes(x));
  let concordant = 0, discordant = 0;
  for (let i = 0; i < common.length; i++) {
    for (let j = i + 1; j < common.length; j++) {
      if (b.indexOf(common[i]) < b.indexOf(common[j])) concordant++;
      else discordant++;
    }
  }
  const pairs = concordant + discordant;
  return pairs ? (concordant - discordant) / pairs : 1;
}

/**
 * How well a row's ranking agrees with itself: Kendall's tau between the ranking by the
 * first half of its runs and by the second half (null with fewer than 2 runs).
 */
function selfTau(row: Row, names: string[], runs: number, key: "value" | "cpu_secs"): number | null {
  if (runs < 2) return null;
  const half = Math.floor(runs / 2);
  const rank = (keep: (run: number) => boolean) => {
    const part: Row = { ...row, samples: row.samples.filter((x) => keep(x.run)) };
    return ranking(Object.fromEntries(names.map((a) => [a, key === "value" ? cellOf(part, a)?.value ?? null : metricOf(part, a, key)])));
  };
  return kendallTau(rank((r) => r <= half), rank((r) => r > half));
}

async function main(): Promise<number> {
  const o = parse(process.argv.slice(2));
  const lib = snapshotLibrary(ensureLibrary(false));
  const identity = hakmemIdentity(lib);
  const found = discoverAllocators(lib, o.allocators);
  const allocators = found.allocators;
  const hakmem = allocators.find((a) => a.name === "hakmem");
  if (!hakmem) throw new Error("hakmem must be among the allocators (it records the traces)");
  const binary = replayerBinary();
  const busy = busyWarning();
  if (busy.warning) console.log(busy.warning);
  const timeoutMs = 300_000;
  const prepared = preparePrograms(o.scale, (name) => !o.filter || name.includes(o.filter), timeoutMs);
  for (const s of prepared.skipped) console.log(s);
  const traceRoot = mkdtempSync(join(tmpdir(), "hakmem-replay-programs-"));
  const progress = new Progress(prepared.rows.length * o.runs * (2 + 2 * allocators.length));
  const results: ProgramResult[] = [];
  try {
    for (const row of prepared.rows) {
      // 1. recording overhead and size
      const plain: number[] = [], traced: number[] = [];
      const dir = join(traceRoot, String(results.length));
      for (let run = 1; run <= o.runs; run++) {
        const env = { ...childEnv(hakmem, null), ...row.env };
        progress.step(`${row.name} · hakmem · run ${run}/${o.runs}`);
        const a = await runMeasured(["/bin/sh", "-c", row.shell], { preload: hakmem.preload, env, timeoutMs, cwd: row.cwd });
        rmSync(dir, { recursive: true, force: true });
        mkdirSync(dir, { recursive: true });
        progress.step(`${row.name} · hakmem, recording · run ${run}/${o.runs}`);
        const b = await runMeasured(["/bin/sh", "-c", row.shell], { preload: hakmem.preload, env: { ...env, HAKMEM_TRACE: join(dir, "trace-%p.bin") }, timeoutMs, cwd: row.cwd });
        if (a.exitCode !== 0 || b.exitCode !== 0) throw new Error(`${row.name}: exit ${a.exitCode} / ${b.exitCode} (recorded): ${b.stderr.slice(-300)}`);
        if (a.stdoutHash !== b.stdoutHash) throw new Error(`${row.name}: the recorded run's output differs from the plain run's`);
        plain.push(a.wallSec);
        traced.push(b.wallSec);
      }
      const files = readdirSync(dir).map((f) => join(dir, f));
      const summaries = files.map((f) => summarizeTrace(loadTrace(f)));
      const events = summaries.reduce((n, s) => n + s.events, 0);
      const bytes = files.reduce((n, f) => n + statSync(f).size, 0);
      const biggest = summaries.reduce((best, s) => (s.events > best.events ? s : best));
      // 2. the program itself under every allocator
      const cmd = await runCommandSection({ name: "programs", title: row.name }, [row], allocators, { runs: o.runs, progress, hakmemBuildId: identity.buildId });
      const cmdRow = cmd.rows[0];
      // 3. its biggest trace replayed under every allocator
      const replayRow: Row = { name: row.name, samples: [], errors: [] };
      for (let run = 1; run <= o.runs; run++) {
        for (const alloc of allocators) {
          progress.step(`${row.name} · replay · ${alloc.name} · run ${run}/${o.runs}`);
          const col: Column = { name: alloc.name, alloc, env: {} };
          const r = await replayOnce(binary, biggest.path, col, identity.buildId, timeoutMs);
          if ("error" in r) replayRow.errors.push({ allocator: alloc.name, run, message: r.error! });
          else replayRow.samples.push({ allocator: alloc.name, run, value: Number(r.fields!.secs), peakRssKb: Number(r.fields!.peak_rss_kb) || null, extra: { cpu_secs: Number(r.fields!.cpu_secs) } });
        }
      }
      const byCmd = ranking(Object.fromEntries(allocators.map((a) => [a.name, cellOf(cmdRow, a.name)?.value ?? null])));
      const byReplay = ranking(Object.fromEntries(allocators.map((a) => [a.name, cellOf(replayRow, a.name)?.value ?? null])));
      const byCmdCpu = ranking(Object.fromEntries(allocators.map((a) => [a.name, metricOf(cmdRow, a.name, "cpu_secs")])));
      const byReplayCpu = ranking(Object.fromEntries(allocators.map((a) => [a.name, metricOf(replayRow, a.name, "cpu_secs")])));
      results.push({
        program: row.name, processes: files.length, events, bytes, bytesPerEvent: bytes / Math.max(1, events),
        recordOverhead: median(traced) / median(plain), plainSec: median(plain), tracedSec: median(traced),
        replayed: { events: biggest.events, threads: biggest.threads, peakLiveBytes: biggest.peakLiveBytes, crossThreadShare: biggest.crossThreadShare },
        byCmd, byReplay, sameOrder: byCmd.join() === byReplay.join(), sameBest: byCmd[0] === byReplay[0], tau: kendallTau(byCmd, byReplay),
        selfTau: {
          cmd: selfTau(cmdRow, allocators.map((a) => a.name), o.runs, "value"), replay: selfTau(replayRow, allocators.map((a) => a.name), o.runs, "value"),
          cmdCpu: selfTau(cmdRow, allocators.map((a) => a.name), o.runs, "cpu_secs"), replayCpu: selfTau(replayRow, allocators.map((a) => a.name), o.runs, "cpu_secs"),
        },
        byCmdCpu, byReplayCpu, sameOrderCpu: byCmdCpu.join() === byReplayCpu.join(), sameBestCpu: byCmdCpu[0] === byReplayCpu[0], tauCpu: kendallTau(byCmdCpu, byReplayCpu),
        cmdMedians: Object.fromEntries(allocators.map((a) => [a.name, cellOf(cmdRow, a.name)?.value ?? null])),
        replayMedians: Object.fromEntries(allocators.map((a) => [a.name, cellOf(replayRow, a.name)?.value ?? null])),
        errors: [...cmdRow.errors, ...replayRow.errors],
      });
    }
  } finally {
    progress.clear();
    cleanupPrograms(prepared);
    rmSync(traceRoot, { recursive: true, force: true });
  }
  console.log(`\ntrace replay vs the programs themselves (--scale ${o.scale}, ${o.runs} runs each, medians; ${busy.warning ? `machine loaded: load ${busy.load.toFixed(1)}` : "machine idle"})`);
  for (const r of results) {
    console.log(`\n${r.program}: ${r.events} events in ${r.processes} process file${r.processes === 1 ? "" : "s"}, ${r.bytesPerEvent.toFixed(2)} bytes/event (uncompressed); recording ×${r.recordOverhead.toFixed(2)} wall (${r.plainSec.toFixed(3)} -> ${r.tracedSec.toFixed(3)} s)`);
    console.log(`  replayed: ${r.replayed.events} events, ${r.replayed.threads} thread(s), peak live ${(r.replayed.peakLiveBytes / 1048576).toFixed(1)} MiB`);
    console.log(`  ranking by the program: ${r.byCmd.map((a) => `${a} ${r.cmdMedians[a]!.toFixed(3)}s`).join(" < ")}`);
    console.log(`  ranking by the replay:  ${r.byReplay.map((a) => `${a} ${(r.replayMedians[a]! * 1000).toFixed(1)}ms`).join(" < ")}`);
    const f = (x: number | null) => (x === null ? "-" : x.toFixed(2));
    console.log(`  self-agreement (tau, first half of the runs vs second): program wall ${f(r.selfTau.cmd)} CPU ${f(r.selfTau.cmdCpu)}; replay wall ${f(r.selfTau.replay)} CPU ${f(r.selfTau.replayCpu)}`);
    console.log(`  by CPU time: program ${r.byCmdCpu.join(" < ")}; replay ${r.byReplayCpu.join(" < ")}`);
    console.log(`  wall: same order ${r.sameOrder ? "yes" : "no"}, same fastest ${r.sameBest ? "yes" : "no"}, Kendall tau ${r.tau.toFixed(2)}; CPU: same order ${r.sameOrderCpu ? "yes" : "no"}, same fastest ${r.sameBestCpu ? "yes" : "no"}, tau ${r.tauCpu.toFixed(2)}${r.errors.length ? `; ${r.errors.length} failed runs: ${r.errors[0].allocator}: ${r.errors[0].message.slice(0, 200)}` : ""}`);
  }
  const count = (f: (r: (typeof results)[number]) => boolean) => results.filter(f).length;
  const meanTau = (k: "tau" | "tauCpu") => results.reduce((n, r) => n + r[k], 0) / Math.max(1, results.length);
  console.log(`\nwall time: same order on ${count((r) => r.sameOrder)} of ${results.length} programs, same fastest on ${count((r) => r.sameBest)}, mean Kendall tau ${meanTau("tau").toFixed(2)}`);
  console.log(`CPU time:  same order on ${count((r) => r.sameOrderCpu)} of ${results.length} programs, same fastest on ${count((r) => r.sameBestCpu)}, mean Kendall tau ${meanTau("tauCpu").toFixed(2)}`);
  const jsonPath = resolve(ROOT, o.jsonPath);
  mkdirSync(dirname(jsonPath), { recursive: true });
  writeFileSync(jsonPath, JSON.stringify({ date: new Date().toISOString(), options: o, machine: { ...machineInfo(), loadAverageAtStart: busy.load }, hakmem: identity, results }, null, 1) + "\n");
  console.log(`wrote ${jsonPath}`);
  return 0;
}

main().then((c) => process.exit(c), (e: Error) => {
  console.error(e.message);
  process.exit(2);
});
