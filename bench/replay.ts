// replay.ts — `bun run replay -- trace.bin`: one program's allocations (recorded once with
// HAKMEM_TRACE=path under LD_PRELOAD, zig/process/trace.zig) replayed under every installed
// allocator and any hakmem settings, with the bench's machinery: each run goes through the
// measuring wrapper (measure.ts) with the allocator preloaded into bench/c/replay.c (built
// with the system compiler, `cc -O2`, as a user's program would be), allocators interleaved
// run by run, medians; the table (report.ts), JSON and SVG (svg.ts) of the bench.
//
//   bun run replay -- app.trace                         every allocator, 5 runs
//   bun run replay -- app.trace --env "HAKMEM_TINY_MAX=512" --env "HAKMEM_ADAPT=0"
//   bun run replay -- a.trace b.trace --runs 3 --allocators hakmem,glibc --json out.json
//
// The figure is the replay's own wall time (the RESULT line's secs: the trace is checked
// and loaded before the clock starts); CPU time and page faults are the replay phase's
// (getrusage around it), peak RSS the replayer's VmHWM (its tables and the mapped trace
// included: the same for every allocator). An --env setting is a column of its own,
// hakmem with those variables ("hakmem HAKMEM_X=v").
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { type Allocator, discoverAllocators } from "./allocators.ts";
import { ensureLibrary, ROOT, snapshotLibrary } from "./build.ts";
import { allocatorInfo, busyWarning, gitInfo, hakmemIdentity, machineInfo } from "./machine.ts";
import { runMeasured } from "./measure.ts";
import { Progress, formatElapsed } from "./progress.ts";
import { checkHakmemStats, checkMallocOwner } from "./proof.ts";
import { sectionTable } from "./report.ts";
import type { Row, Section } from "./results.ts";
import { childEnv, parseResultLine } from "./runner.ts";
import { ratioChart } from "./svg.ts";
import { formatSummary, loadTrace, summarizeTrace, TraceError, type TraceSummary } from "../src/trace.ts";

const USAGE = `usage: bun run replay -- TRACE... [--runs N] [--allocators list] [--env "HAKMEM_X=v ..."]... [--json FILE] [--timeout S]
  TRACE     a file recorded with HAKMEM_TRACE=path (LD_PRELOAD=zig-out/lib/libhakmem.so)
  --runs    runs per allocator and trace, interleaved (default 5); medians are reported
  --env     one more column: hakmem with these variables (repeatable)
  --json    where the JSON goes (default bench/results/replay.json; .svg beside it)`;

export interface ReplayOptions {
  traces: string[];
  runs: number;
  allocators: string[] | null;
  envs: Record<string, string>[];
  jsonPath: string;
  timeoutMs: number;
}

export function parseReplayOptions(argv: string[]): ReplayOptions {
  const o: ReplayOptions = { traces: [], runs: 5, allocators: null, envs: [], jsonPath: "bench/results/replay.json", timeoutMs: 300_000 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value\n${USAGE}`);
      return v;
    };
    if (a === "--runs") o.runs = Math.max(1, Number.parseInt(value(), 10) || 1);
    else if (a === "--allocators") o.allocators = value().split(",").map((s) => s.trim()).filter(Boolean);
    else if (a === "--env") o.envs.push(parseEnv(value()));
    else if (a === "--json") o.jsonPath = value();
    else if (a === "--timeout") o.timeoutMs = Number(value()) * 1000;
    else if (a === "--help" || a === "-h") throw new Error(USAGE);
    else if (a.startsWith("--")) throw new Error(`unknown option ${a}\n${USAGE}`);
    else o.traces.push(a);
  }
  if (o.traces.length === 0) throw new Error(`no trace given\n${USAGE}`);
  return o;
}

function parseEnv(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const part of text.split(/[\s,]+/).filter(Boolean)) {
    const eq = part.indexOf("=");
    if (eq <= 0 || !part.startsWith("HAKMEM_")) throw new Error(`--env takes HAKMEM_NAME=value pairs, not ${part}`);
    env[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return env;
}

/** bench/c/replay.c built with the system C compiler (`cc -O2 -pthread`), cached by source hash. */
export function replayerBinary(): string {
  const sources = ["bench/c/replay.c", "bench/c/common.h", "zig/hakmem.h"].map((f) => join(ROOT, f));
  const hash = createHash("sha256");
  for (const f of sources) hash.update(readFileSync(f));
  const out = join(ROOT, "bench/results/.build", `replay-cc-${hash.digest("hex").slice(0, 16)}`);
  if (existsSync(out)) return out;
  mkdirSync(dirname(out), { recursive: true });
  const tmp = `${out}.tmp${process.pid}`;
  const r = Bun.spawnSync(["cc", "-O2", "-pthread", "-o", tmp, sources[0], "-ldl"], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`cc -O2 bench/c/replay.c failed (exit ${r.exitCode}):\n${r.stderr.toString()}`);
  renameSync(tmp, out);
  return out;
}

export interface Column { name: string; alloc: Allocator; env: Record<string, string> }

/** One replay of `trace` under a column: a sample's fields, or why it does not count. */
export async function replayOnce(binary: string, trace: string, col: Column, buildId: string | null, timeoutMs: number, extraArgs: string[] = []) {
  const env = { ...childEnv(col.alloc, null), ...col.env };
  const m = await runMeasured([binary, ...extraArgs, trace], { preload: col.alloc.preload, env, timeoutMs });
  const tail = m.stderr.trim().split("\n").slice(-3).join(" | ");
  if (m.signal) return { error: `killed by ${m.signal}${m.timedOut ? " (timeout)" : ""}: ${tail}` };
  if (m.exitCode !== 0) return { error: `exit code ${m.exitCode}: ${tail}` };
  const fields = parseResultLine(m.stdout);
  if (!fields) return { error: `no RESULT line: ${tail}` };
  const owner = checkMallocOwner(col.alloc, fields.malloc_from);
  if (owner) return { error: owner };
  if (col.alloc.name === "hakmem") {
    // every allocation event of the trace reaches hakmem (events / 4: a loose floor)
    const stats = checkHakmemStats(m.stderr, buildId, Math.floor(Number(fields.ops) / 4));
    if (stats) return { error: stats };
  }
  return { fields, measured: m };
}

function columnsFor(allocators: Allocator[], envs: Record<string, string>[]): Column[] {
  const cols: Column[] = allocators.map((a) => ({ name: a.name, alloc: a, env: {} }));
  const hakmem = allocators.find((a) => a.name === "hakmem");
  if (envs.length && !hakmem) throw new Error("--env needs hakmem among --allocators");
  for (const env of envs) {
    cols.push({ name: `hakmem ${Object.entries(env).map(([k, v]) => `${k.replace(/^HAKMEM_/, "")}=${v}`).join(" ")}`, alloc: hakmem!, env });
  }
  return cols;
}

function summaryOf(path: string): TraceSummary | string {
  // the TypeScript loader keeps ~50 bytes an event: big traces are checked by the replayer only
  if (statSync(path).size > 96 << 20) return `trace ${path}: ${statSync(path).size} bytes (not summarized here: above 96 MiB)`;
  return summarizeTrace(loadTrace(path)); // a TraceError names the file, offset and what was expected
}

export async function main(argv: string[]): Promise<number> {
  const o = parseReplayOptions(argv);
  const started = new Date();
  const hakmemLib = snapshotLibrary(ensureLibrary(false));
  const hakmem = hakmemIdentity(hakmemLib);
  const found = discoverAllocators(hakmemLib, o.allocators);
  const cols = columnsFor(found.allocators, o.envs);
  const names = cols.map((c) => c.name);
  const binary = replayerBinary();
  const busy = busyWarning();
  console.log(`allocators: ${names.join(", ")}${found.missing.length ? ` (not installed: ${found.missing.join(", ")}; ${found.installHint})` : ""}`);
  console.log(`runs: ${o.runs} per allocator and trace, interleaved; medians reported · replayer: cc -O2 bench/c/replay.c`);
  if (busy.warning) console.log(busy.warning);
  const summaries: (TraceSummary | string)[] = [];
  for (const t of o.traces) {
    const s = summaryOf(t);
    summaries.push(s);
    console.log(typeof s === "string" ? s : formatSummary(s));
  }
  const section: Section = {
    name: "replay", title: "trace replay: the recorded program's allocations under each allocator (bench/c/replay.c)",
    unit: "s", higherIsBetter: false, spread: true,
    metrics: [{ key: "cpu_secs", label: "CPU s" }, { key: "faults", label: "page faults" }],
    note: "time, CPU and faults of the replay phase; peak RSS includes the replayer's tables and the mapped trace",
    rows: [],
  };
  const progress = new Progress(o.traces.length * o.runs * cols.length);
  for (const trace of o.traces) {
    const row: Row = { name: trace.split("/").pop()!, command: [binary, trace], samples: [], errors: [] };
    section.rows.push(row);
    for (let run = 1; run <= o.runs; run++) {
      for (const col of cols) {
        progress.step(`replay ${row.name} · ${col.name} · run ${run}/${o.runs}`);
        const r = await replayOnce(binary, resolve(trace), col, hakmem.buildId, o.timeoutMs);
        if ("error" in r) {
          row.errors.push({ allocator: col.name, run, message: r.error! });
          continue;
        }
        const f = r.fields!;
        row.samples.push({
          allocator: col.name, run, value: Number(f.secs), peakRssKb: Number(f.peak_rss_kb) || null,
          extra: { cpu_secs: Number(f.cpu_secs), faults: Number(f.faults), events: Number(f.ops), threads: Number(f.threads), failed: Number(f.failed), process_wall_secs: Number(r.measured!.wallSec.toFixed(4)) },
        });
      }
    }
  }
  progress.clear();
  console.log(sectionTable(section, names));
  const machine = machineInfo();
  const command = `bun bench/replay.ts ${argv.join(" ")}`.trim();
  const report = {
    schema: 1, date: started.toISOString(), durationSec: Math.round(progress.elapsedMs() / 1000), command, options: o,
    machine: { ...machine, loadAverageAtStart: Number(busy.load.toFixed(2)) }, git: gitInfo(), hakmem,
    allocators: allocatorInfo(found.allocators, hakmem), columns: cols.map((c) => ({ name: c.name, allocator: c.alloc.name, env: c.env })),
    traces: summaries.map((s) => (typeof s === "string" ? { note: s } : { ...s, liveOverTime: s.liveOverTime.filter((_, i, all) => i % Math.ceil(all.length / 200) === 0) })),
    sections: [section],
  };
  const jsonPath = resolve(ROOT, o.jsonPath);
  mkdirSync(dirname(jsonPath), { recursive: true });
  writeFileSync(jsonPath, JSON.stringify(report, null, 1) + "\n");
  const subtitle = `${started.toISOString().slice(0, 16).replace("T", " ")} UTC · ${machine.cpu}, ${machine.cores} cores · ${command} · hakmem build ${hakmem.buildId ?? "?"}`;
  const svgPath = jsonPath.replace(/\.json$/, "") + ".svg";
  writeFileSync(svgPath, ratioChart([section], names, subtitle));
  console.log(`\nwrote ${jsonPath}, ${svgPath} · ${formatElapsed(progress.elapsedMs())}`);
  return section.rows.some((r) => r.errors.length) ? 1 : 0;
}

if (import.meta.main) {
  main(process.argv.slice(2)).then((code) => process.exit(code), (e: Error) => {
    console.error(e instanceof TraceError ? `replay: ${e.message}` : e.message);
    process.exit(2);
  });
}
