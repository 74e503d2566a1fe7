// workloads.ts — what the tuner measures, as one `evaluate(settings)` per workload kind:
//   bench program   a bench/c workload (random_mixed, larson, mt_remote, …) preloaded
//                   with libhakmem.so and the candidate's HAKMEM_* environment
//   --cmd "…"       any command (through sh -c), preloaded the same way
//   trace.bin       a recorded allocation trace (HAKMEM_TRACE), replayed by bench/c/replay.c
//                   preloaded the same way: ops are the trace's events
//   module.ts       a TypeScript workload module run on every thread of a ThreadPool: in a
//                   fresh Bun process per run (every setting applies), or with
//                   --in-process in this process's pool (routing only, set live)
// Every run goes through the bench's measuring wrapper (bench/measure.ts) except in-process ones.
import { closeSync, existsSync, openSync, readSync } from "node:fs";
import { resolve } from "node:path";
import { compileProgram, ROOT } from "../build.ts";
import { checkHakmemStats, checkMallocOwner } from "../proof.ts";
import { WORKLOADS } from "../workloads.ts";
import { replayerBinary } from "../replay.ts";
import { HAK_TRACE_MAGIC } from "../../src/abi.ts";
import { runChild, toMeasurement, type ThroughputClock } from "./measure.ts";
import { measurePhase } from "./phase.ts";
import type { WorkloadKind } from "./report.ts";
import type { Measurement } from "./score.ts";
import { envOf, type Param, type Settings } from "./space.ts";

export interface TuneWorkload {
  /** one line for tables and the profile header */
  label: string;
  /** preloaded program, TypeScript module in a fresh Bun, or module in this process */
  kind: WorkloadKind;
  /** only these parameters can be searched (null: all) */
  searchable: ((p: Param) => boolean) | null;
  evaluate: (settings: Settings, params: readonly Param[]) => Promise<Measurement>;
  close: () => Promise<void>;
}

export interface WorkloadSpec {
  /** a bench program name or a module path, with its arguments */
  positional: string[];
  cmd?: string;
  threads: number;
  moduleArgs?: unknown;
  exportName?: string;
  inProcess: boolean;
  scale: number;
  timeoutMs: number;
  clock: ThroughputClock;
  lib: string;
  buildId: string | null;
}

/** Bench programs and the arguments a tune runs them with when none are given. */
export function benchPrograms(scale: number): { program: string; args: string[]; row: string }[] {
  const seen = new Set<string>();
  return WORKLOADS.filter((w) => !seen.has(w.program) && seen.add(w.program)).map((w) => ({
    program: w.program, row: w.row, args: w.args(scale).map(String),
  }));
}

export async function openWorkload(spec: WorkloadSpec): Promise<TuneWorkload> {
  if (spec.cmd !== undefined) return commandWorkload(spec);
  const [first, ...rest] = spec.positional;
  if (!first) throw new Error("no workload: give a bench program (see --list), a .ts module or --cmd \"…\"");
  if (isTraceFile(first)) return traceWorkload(spec, first);
  if (/\.(ts|js|mjs|tsx)$/.test(first)) return spec.inProcess ? inProcessModule(spec, first) : moduleWorkload(spec, first);
  return benchWorkload(spec, first, rest);
}

function hakmemEnv(settings: Settings, params: readonly Param[]): Record<string, string> {
  return { ...envOf(settings, params), HAKMEM_STATS: "1" };
}

function benchWorkload(spec: WorkloadSpec, program: string, given: string[]): TuneWorkload {
  const w = WORKLOADS.find((x) => x.program === program);
  if (!w) throw new Error(`unknown bench program ${program} (known: ${benchPrograms(1).map((b) => b.program).join(", ")})`);
  const args = given.length ? given : w.args(spec.scale).map(String);
  const binary = compileProgram(program);
  return {
    label: `bench/c/${program} ${args.join(" ")}`,
    kind: "program",
    searchable: null,
    close: async () => {},
    evaluate: async (settings, params) => {
      const out = await runChild({ argv: [binary, ...args], preload: spec.lib, env: hakmemEnv(settings, params), timeoutMs: spec.timeoutMs });
      const m = toMeasurement(out, spec.clock);
      const owner = checkMallocOwner({ name: "hakmem", preload: spec.lib, lib: spec.lib, allocSymbol: "", freeSymbol: "", pkg: null }, out.result?.malloc_from);
      if (owner) throw new Error(owner);
      const proof = checkHakmemStats(out.stderr, spec.buildId, Number(out.result?.ops ?? 0) * w.minAllocsPerOp);
      if (proof) throw new Error(proof);
      return m;
    },
  };
}

/** A file that starts with the trace magic (zig/abi.zig "allocation traces"). */
function isTraceFile(path: string): boolean {
  if (!existsSync(path)) return false;
  const fd = openSync(path, "r");
  try {
    const head = Buffer.alloc(4);
    return readSync(fd, head, 0, 4, 0) === 4 && head.readUInt32LE(0) === HAK_TRACE_MAGIC;
  } finally {
    closeSync(fd);
  }
}

function traceWorkload(spec: WorkloadSpec, path: string): TuneWorkload {
  const trace = resolve(path);
  const binary = replayerBinary();
  const hakmem = { name: "hakmem", preload: spec.lib, lib: spec.lib, allocSymbol: "", freeSymbol: "", pkg: null };
  return {
    label: `trace ${path} (bench/c/replay.c)`,
    kind: "program",
    searchable: null,
    close: async () => {},
    evaluate: async (settings, params) => {
      const out = await runChild({ argv: [binary, trace], preload: spec.lib, env: hakmemEnv(settings, params), timeoutMs: spec.timeoutMs });
      const m = toMeasurement(out, spec.clock);
      const owner = checkMallocOwner(hakmem, out.result?.malloc_from);
      if (owner) throw new Error(owner);
      return m;
    },
  };
}

function commandWorkload(spec: WorkloadSpec): TuneWorkload {
  const cmd = spec.cmd!;
  return {
    label: cmd,
    kind: "program",
    searchable: null,
    close: async () => {},
    evaluate: async (settings, params) => {
      const out = await runChild({ argv: ["sh", "-c", cmd], preload: spec.lib, env: hakmemEnv(settings, params), timeoutMs: spec.timeoutMs });
      return toMeasurement(out, spec.clock);
    },
  };
}

function modulePath(path: string): string {
  const full = resolve(path);
  if (!existsSync(full)) throw new Error(`workload module ${path} does not exist`);
  return full;
}

function moduleWorkload(spec: WorkloadSpec, path: string): TuneWorkload {
  const child = JSON.stringify({ path: modulePath(path), threads: spec.threads, args: spec.moduleArgs, exportName: spec.exportName });
  const argv = [process.execPath, resolve(ROOT, "bench/tune/module_child.ts"), child];
  return {
    label: `${path} on ${spec.threads} thread${spec.threads > 1 ? "s" : ""}`,
    kind: "module",
    searchable: null,
    close: async () => {},
    evaluate: async (settings, params) => {
      const env = { ...hakmemEnv(settings, params), HAKMEM_LIB: spec.lib };
      return toMeasurement(await runChild({ argv, preload: null, env, timeoutMs: spec.timeoutMs }), spec.clock);
    },
  };
}

/** In this process: one ThreadPool for the whole tune, thresholds set live between runs. */
async function inProcessModule(spec: WorkloadSpec, path: string): Promise<TuneWorkload> {
  process.env.HAKMEM_LIB ??= spec.lib;
  const hakmem = await import("../../src/index.ts");
  const { ThreadPool } = await import("../../src/threads.ts");
  const { moduleOnAll } = await import("../../src/workloads.ts");
  const full = modulePath(path);
  const pool = await ThreadPool.start(spec.threads);
  return {
    label: `${path} on ${spec.threads} thread${spec.threads > 1 ? "s" : ""} (in-process)`,
    kind: "in-process",
    searchable: (p) => p.routing !== undefined,
    close: () => pool.close(),
    evaluate: async (settings, params) => {
      const routing: { tinyMax?: number; midMax?: number } = {};
      for (const p of params) if (p.routing) routing[p.routing] = settings[p.env];
      hakmem.setRouting(routing);
      hakmem.collect(true);
      const r = await measurePhase(() => moduleOnAll(pool, full, spec.moduleArgs, spec.exportName));
      return { opsPerSec: r.ops / (spec.clock === "cpu" ? r.cpuSecs : r.secs), faults: r.faults, peakRssKb: r.peakRssKb };
    },
  };
}
