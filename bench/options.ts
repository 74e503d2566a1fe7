// options.ts — the command line of `npm run bench -- …` (= `bun bench/main.ts …`): USAGE
// below is the one list of options (--help prints it). An unknown option is an error.
// Hidden knobs for tests: --scale X (multiplies every workload's size), --no-build.

export interface Options {
  quick: boolean;
  runs: number;
  scale: number;
  filters: string[];
  allocators: string[] | null;
  jsonPath: string;
  build: boolean;
  microMs: number;
  redisRequests: number;
  /** --cmd command lines, in order */
  commands: string[];
}

/** Where --cmd writes its results when --json is not given: never over the suite's latest.*. */
export const CMD_JSON_PATH = "bench/results/cmd.json";

export const USAGE = `usage: npm run bench -- [options]   (the same: npx bun bench/main.ts [options])
  --quick            about a minute: one run, workloads at 1/5 size, short microbenchmarks
  --runs N           runs per allocator and row, interleaved; medians of several runs are reported (default 3)
  --cmd "LINE"       measure your command (run by /bin/sh -c) preloaded with every allocator: wall and
                     CPU time, page faults, peak RSS, spread, stdout compared with glibc's (repeatable;
                     alone it runs only these; with --filter the selected sections run too)
  --filter NAME      only sections/rows whose name contains NAME (comma list), e.g. larson,micro,programs,safety
  --allocators LIST  among hakmem,glibc,mimalloc,jemalloc,tcmalloc (default: all installed)
  --json FILE        samples and machine info (default bench/results/latest.json, with --cmd alone
                     bench/results/cmd.json; .svg and .md beside)
  --help             this list
  HAKMEM_LIB=path    measure that library instead of building zig-out/lib/libhakmem.so
A --cmd run whose stdout differs from glibc's (the reference) makes the exit status 1.`;

/** Thrown for --help: print USAGE and exit 0. */
export class HelpRequested extends Error {}

export function parseOptions(argv: string[]): Options {
  const opts: Options = {
    quick: false, runs: 0, scale: 0, filters: [], allocators: null,
    jsonPath: "bench/results/latest.json", build: true, microMs: 0, redisRequests: 0, commands: [],
  };
  let jsonGiven = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value\n${USAGE}`);
      return v;
    };
    if (arg === "--quick") opts.quick = true;
    else if (arg === "--runs") opts.runs = positiveInt(arg, value());
    else if (arg === "--scale") opts.scale = positiveNumber(arg, value());
    else if (arg === "--filter") opts.filters = splitList(value());
    else if (arg === "--allocators") opts.allocators = splitList(value());
    else if (arg === "--json") { opts.jsonPath = value(); jsonGiven = true; }
    else if (arg === "--no-build") opts.build = false;
    else if (arg === "--cmd") {
      const line = value();
      if (line.trim() === "") throw new Error(`--cmd needs a command line\n${USAGE}`);
      opts.commands.push(line);
    }
    else if (arg === "--help" || arg === "-h") throw new HelpRequested(USAGE);
    else throw new Error(`unknown option ${arg}\n${USAGE}`);
  }
  if (opts.commands.length > 0 && opts.filters.length === 0 && !jsonGiven) opts.jsonPath = CMD_JSON_PATH;
  if (opts.runs === 0) opts.runs = opts.quick ? 1 : 3;
  if (opts.scale === 0) opts.scale = opts.quick ? 0.2 : 1;
  opts.microMs = opts.scale >= 1 ? 100 : opts.scale >= 0.1 ? 40 : 10;
  opts.redisRequests = Math.max(1000, Math.round(30000 * opts.scale));
  return opts;
}

function splitList(s: string): string[] {
  return s.split(",").map((x) => x.trim()).filter((x) => x.length > 0);
}

function positiveInt(name: string, s: string): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} wants a positive integer, got ${s}`);
  return n;
}

function positiveNumber(name: string, s: string): number {
  const n = Number(s);
  if (!(n > 0)) throw new Error(`${name} wants a positive number, got ${s}`);
  return n;
}

/** True when a section/row passes --filter (no filter: everything, unless --cmd alone). */
export function selected(opts: Options, ...names: string[]): boolean {
  if (opts.filters.length === 0) return opts.commands.length === 0;
  const hay = names.join(" ").toLowerCase();
  return opts.filters.some((f) => hay.includes(f.toLowerCase()));
}
