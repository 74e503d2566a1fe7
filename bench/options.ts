// options.ts — the command line of `bun bench/main.ts`.
//
//   --quick            about a minute: one run, workloads scaled to 1/5, short microbenchmarks
//   --runs N           runs per allocator and row (medians are reported; default 3)
//   --filter NAME      only sections or rows whose name contains NAME (case-insensitive; comma list)
//   --allocators LIST  comma list among hakmem,glibc,mimalloc,jemalloc,tcmalloc
//   --json FILE        where to write every sample (default bench/results/latest.json; the
//                      SVG chart goes next to it with the extension .svg)
//   --cmd "LINE"       (repeatable) measure a shell command line under every allocator;
//                      alone it runs only that section (add --filter to run others too)
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

export const USAGE = `usage: bun bench/main.ts [--quick] [--runs N] [--filter NAME] [--allocators list] [--json FILE] [--cmd "LINE"]...
  --quick            about a minute: one run, workloads at 1/5 size, short microbenchmarks
  --runs N           runs per allocator and row, interleaved; medians of several runs are reported (default 3)
  --cmd "LINE"       measure your command (run by /bin/sh -c) preloaded with every allocator: wall and
                     CPU time, page faults, peak RSS, spread, stdout compared with glibc's (repeatable;
                     alone it runs only these; with --filter the selected sections run too)
  --filter NAME      only sections/rows whose name contains NAME (comma list), e.g. larson,micro,programs,safety
  --allocators LIST  among hakmem,glibc,mimalloc,jemalloc,tcmalloc (default: all installed)
  --json FILE        samples and machine info (default bench/results/latest.json; .svg and .md beside)
  HAKMEM_LIB=path    measure that library instead of building zig-out/lib/libhakmem.so`;

/** Thrown for --help: print USAGE and exit 0. */
export class HelpRequested extends Error {}

export function parseOptions(argv: string[]): Options {
  const opts: Options = {
    quick: false, runs: 0, scale: 0, filters: [], allocators: null,
    jsonPath: "bench/results/latest.json", build: true, microMs: 0, redisRequests: 0, commands: [],
  };
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
    else if (arg === "--json") opts.jsonPath = value();
    else if (arg === "--no-build") opts.build = false;
    else if (arg === "--cmd") {
      const line = value();
      if (line.trim() === "") throw new Error(`--cmd needs a command line\n${USAGE}`);
      opts.commands.push(line);
    }
    else if (arg === "--help" || arg === "-h") throw new HelpRequested(USAGE);
    else throw new Error(`unknown option ${arg}\n${USAGE}`);
  }
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
