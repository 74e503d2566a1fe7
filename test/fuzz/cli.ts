// cli.ts — long randomized API runs (test/fuzz/) from the command line.
//
//   bun test/fuzz/cli.ts [--seed S] [--ops N] [--threads T] [--runs R] [--phases P]
//                       [--max-live N] [--large-max BYTES] [--hang-seconds S] [--check] [--trace]
//
// --threads 1 (default) runs one sequence on this thread with every check after every step
// (stats included); T > 1 runs T Workers with their own sequences and cross-thread handoffs,
// stats checked at the barriers between phases. --runs R tries seeds S, S+1, ... S+R-1.
// Prints progress, then OK lines; on the first failure prints the FAIL line (seed, step, op)
// and the command that replays it, and exits 1. Single-thread runs replay exactly; threaded
// runs replay the same sequences, though the interleaving of the threads differs.
// --trace prints every step before running it (to find the step of a crash).
// --check runs in check mode (abort): any report on stderr is a false positive, since the
// sequences use the API correctly (the deliberate double free is left out in this mode).
import { writeSync } from "node:fs";
import { parseArgs } from "node:util";
import { dlopen } from "bun:ffi";
import { libraryPath, setCheckMode } from "../../src/index.ts";
import { FuzzFailure, runFuzz, runFuzzThreads, type FuzzReport } from "./index.ts";

const USAGE = "usage: bun test/fuzz/cli.ts [--seed S] [--ops N] [--threads T] [--runs R] [--phases P] [--max-live N] [--large-max BYTES] [--hang-seconds S] [--check] [--trace]";

function say(line: string): void {
  writeSync(1, `${line}\n`);
}

function integer(name: string, text: string | undefined, fallback: number, min = 0): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min) {
    writeSync(2, `fuzz: --${name} must be an integer >= ${min}, got ${text}\n${USAGE}\n`);
    process.exit(2);
  }
  return n;
}

/** An unknown or malformed option: one line and the usage (exit 2), not a stack trace. */
function usageError(error: unknown): never {
  writeSync(2, `fuzz: ${(error as Error).message}\n${USAGE}\n`);
  process.exit(2);
}

function parse() {
  const { values } = (() => {
    try {
      return parseArgs({
        args: process.argv.slice(2),
        options: {
          seed: { type: "string" },
          ops: { type: "string" },
          threads: { type: "string" },
          runs: { type: "string" },
          phases: { type: "string" },
          "max-live": { type: "string" },
          "large-max": { type: "string" },
          "hang-seconds": { type: "string" },
          trace: { type: "boolean" },
          check: { type: "boolean" },
          help: { type: "boolean", short: "h" },
        },
      });
    } catch (error) {
      return usageError(error);
    }
  })();
  if (values.help) {
    say(USAGE);
    process.exit(0);
  }
  return {
    seed: integer("seed", values.seed, Date.now() % 1_000_000_007),
    ops: integer("ops", values.ops, 100_000, 1),
    threads: integer("threads", values.threads, 1, 1),
    runs: integer("runs", values.runs, 1, 1),
    phases: integer("phases", values.phases, 8, 1),
    maxLive: values["max-live"] === undefined ? undefined : integer("max-live", values["max-live"], 0, 1),
    largeMax: values["large-max"] === undefined ? undefined : integer("large-max", values["large-max"], 0, 1),
    hangMs: integer("hang-seconds", values["hang-seconds"], 120, 1) * 1000,
    trace: values.trace ?? false,
    check: values.check ?? false,
  };
}

type Args = ReturnType<typeof parse>;

function replayCommand(args: Args, seed: number): string {
  const extra = [
    args.threads > 1 ? ` --threads ${args.threads} --phases ${args.phases}` : "",
    args.maxLive !== undefined ? ` --max-live ${args.maxLive}` : "",
    args.largeMax !== undefined ? ` --large-max ${args.largeMax}` : "",
    args.check ? " --check" : "",
  ].join("");
  return `bun test/fuzz/cli.ts --seed ${seed} --ops ${args.ops}${extra}`;
}

function summary(r: FuzzReport): string {
  const ops = Object.entries(r.counts).sort(([a], [b]) => a.localeCompare(b)).map(([op, n]) => `${op}=${n}`).join(" ");
  return `OK seed=${r.seed} threads=${r.threads} steps=${r.steps} ms=${Math.round(r.ms)} ${ops}`;
}

async function runOne(args: Args, seed: number): Promise<FuzzReport> {
  const common = { seed, ops: args.ops, maxLive: args.maxLive, largeMax: args.largeMax };
  if (args.threads === 1) {
    const every = Math.max(1, Math.floor(args.ops / 10));
    return runFuzz({
      ...common,
      trace: args.trace,
      progressEvery: every,
      onProgress: (step, live) => say(`seed=${seed} step=${step}/${args.ops} live=${live}`),
    });
  }
  return runFuzzThreads({
    ...common,
    threads: args.threads,
    phases: args.phases,
    hangMs: args.hangMs,
    onProgress: (phase, live) => say(`seed=${seed} threads=${args.threads} phase=${phase}/${args.phases} live=${live}`),
  });
}

/** Exits at once, without waiting for Workers (one may be stuck inside the allocator). */
function exitNow(code: number): never {
  const libc = dlopen("libc.so.6", { _exit: { args: ["i32"], returns: "void" } });
  libc.symbols._exit(code);
  process.exit(code);
}

async function main(): Promise<void> {
  const args = parse();
  if (args.check) setCheckMode("abort");
  say(`fuzz: library ${libraryPath}, seeds ${args.seed}..${args.seed + args.runs - 1}, ${args.ops} ops, ${args.threads} thread(s)${args.check ? ", check mode" : ""}`);
  for (let i = 0; i < args.runs; i++) {
    const seed = args.seed + i;
    try {
      say(summary(await runOne(args, seed)));
    } catch (error) {
      const message = error instanceof FuzzFailure ? error.message : `FAIL seed=${seed} ${(error as Error)?.stack ?? error}`;
      say(message);
      say(`replay: ${replayCommand(args, seed)}`);
      exitNow(1);
    }
  }
}

await main();
