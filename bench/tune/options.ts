// options.ts — the command line of `bun run tune` (bench/tune.ts).
import { PARAMS } from "./space.ts";

export const USAGE = `usage: bun run tune -- <workload> [options]

workload (one of):
  <program> [args…]     a bench/c program, e.g. random_mixed, larson, mt_remote (list: --list);
                        without args it runs the bench suite's first row for it, scaled by --scale
  <module.ts>           a TypeScript workload module: its default export (or --export NAME)
                        runs on every thread of a ThreadPool, in a fresh Bun process per run
  --cmd "<command>"     any command, run through sh -c with libhakmem.so preloaded
  <trace.bin>           an allocation trace recorded with HAKMEM_TRACE, replayed by
                        bench/c/replay.c with libhakmem.so preloaded (ops: its events)

search:
  --minutes M           stop starting runs after M minutes (default 3 unless --budget is given)
  --budget N            at most N workload runs (the baseline's included)
  --seed S              PRNG seed: same seed, same candidates in the same order (default 1)
  --candidates N        candidates per successive-halving bracket (default 16)
  --reps N              repetitions per candidate in a bracket's first round (default 1)
  --baseline-reps N     default-settings runs before the first round (default 3)
  --confirm N           then run the best candidate N more times interleaved with the
                        defaults; it wins only if every pair favours it, i.e. it beats the
                        defaults by more than the run-to-run spread, over at least 3 pairs
                        (default 5; 0: off, the screening's best is written unconfirmed;
                        these runs get 15 % of --minutes and 2N runs of --budget)
  --throughput CLOCK    wall: ops per second as the program times it (default); cpu: ops
                        per CPU second of the run, steadier when the machine is busy
  --params LIST         variables to search: ${PARAMS.map((p) => p.name).join(",")} (default: all
                        that the library knows)
  --weights SPEC        score weights, e.g. throughput=0.6,faults=0.2,rss=0.2
                        (default throughput=0.4,faults=0.3,rss=0.3, as HAKMEM)

module workloads:
  --threads N           threads (default 2)
  --module-args JSON    second argument of the module's function (default {})
  --export NAME         function to call (default: the default export)
  --in-process          run in this process, routing set live (searches tiny,mid only)

check a profile:
  --compare FILE        no search: run the workload alternately with the defaults and with
                        the profile FILE (--runs times each) and report medians and ratios
  --runs N              runs each for --compare (default 10)

output:
  --out FILE            the winner as an environment profile (default bench/results/tuned.env)
  --json FILE           also write every run's numbers and the leaderboard as JSON
  --top N               leaderboard rows (default 10)
  --scale X             size of the default bench program args (default 0.2)
  --timeout S           per-run limit in seconds (default 120)
  --list                the bench programs and their default args`;

export interface TuneOptions {
  positional: string[];
  cmd?: string;
  minutes?: number;
  budget?: number;
  seed: number;
  candidates: number;
  reps: number;
  baselineReps: number;
  confirm: number;
  compare?: string;
  runs: number;
  params?: string;
  clock: "wall" | "cpu";
  weights?: string;
  threads: number;
  moduleArgs?: unknown;
  exportName?: string;
  inProcess: boolean;
  out: string;
  json?: string;
  top: number;
  scale: number;
  timeoutMs: number;
  list: boolean;
  help: boolean;
}

export function parseOptions(argv: string[]): TuneOptions {
  const o: TuneOptions = {
    positional: [], seed: 1, candidates: 16, reps: 1, baselineReps: 3, confirm: 5, runs: 10, clock: "wall", threads: 2, inProcess: false,
    out: "bench/results/tuned.env", top: 10, scale: 0.2, timeoutMs: 120_000, list: false, help: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    // Once the workload is named, anything that is not a tune option is its argument.
    if (!arg.startsWith("--") || arg === "--") {
      if (arg !== "--") o.positional.push(arg);
      continue;
    }
    switch (arg) {
      case "--cmd": o.cmd = value(); break;
      case "--minutes": o.minutes = positive(arg, value()); break;
      case "--budget": o.budget = integer(arg, value(), 1); break;
      case "--seed": o.seed = integer(arg, value(), 0); break;
      case "--candidates": o.candidates = integer(arg, value(), 2); break;
      case "--reps": o.reps = integer(arg, value(), 1); break;
      case "--baseline-reps": o.baselineReps = integer(arg, value(), 1); break;
      case "--confirm": o.confirm = integer(arg, value(), 0); break;
      case "--compare": o.compare = value(); break;
      case "--runs": o.runs = integer(arg, value(), 1); break;
      case "--throughput": o.clock = clock(value()); break;
      case "--params": o.params = value(); break;
      case "--weights": o.weights = value(); break;
      case "--threads": o.threads = integer(arg, value(), 1); break;
      case "--module-args": o.moduleArgs = json(arg, value()); break;
      case "--export": o.exportName = value(); break;
      case "--in-process": o.inProcess = true; break;
      case "--out": o.out = value(); break;
      case "--json": o.json = value(); break;
      case "--top": o.top = integer(arg, value(), 1); break;
      case "--scale": o.scale = positive(arg, value()); break;
      case "--timeout": o.timeoutMs = positive(arg, value()) * 1000; break;
      case "--list": o.list = true; break;
      case "--help": o.help = true; break;
      default: throw new Error(`unknown option ${arg}`);
    }
  }
  if (o.minutes === undefined && o.budget === undefined) o.minutes = 3;
  if (o.cmd !== undefined && o.positional.length) throw new Error(`--cmd and a workload (${o.positional[0]}) are exclusive`);
  return o;
}

function clock(s: string): "wall" | "cpu" {
  if (s !== "wall" && s !== "cpu") throw new Error(`--throughput wants wall or cpu, got ${s}`);
  return s;
}

function positive(name: string, s: string): number {
  const n = Number(s);
  if (!(n > 0) || !Number.isFinite(n)) throw new Error(`${name} wants a positive number, got ${s}`);
  return n;
}

function integer(name: string, s: string, min: number): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} wants an integer >= ${min}, got ${s}`);
  return n;
}

function json(name: string, s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    throw new Error(`${name} wants JSON, got ${s}`);
  }
}
