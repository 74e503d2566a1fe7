// Compiles the C test programs in test/c/ with `zig cc` (cached by source hash) and runs
// them with libhakmem.so preloaded, returning exit status and output for assertions.
// Compiling is bench/zigcc.ts's job (one cache-by-hash for the bench and the tests).
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { ZIG, zigCcAsync } from "../../bench/zigcc.ts";
import { spawnCollect } from "./spawn.ts";

export const REPO = resolve(import.meta.dir, "../..");
export { ZIG };
const C_DIR = join(REPO, "test/c");
const BUILD_DIR = join(tmpdir(), `hakmem-c-tests-${process.getuid?.() ?? 0}`);

// -fno-builtin-*: the compiler must not fold or elide allocation calls under test.
const CFLAGS = [
  "-O2",
  "-pthread",
  "-g",
  "-Wall",
  "-Wextra",
  "-fno-builtin-malloc",
  "-fno-builtin-calloc",
  "-fno-builtin-realloc",
  "-fno-builtin-free",
];

/** The library under test: $HAKMEM_LIB, else the repository build. */
export function hakmemLib(): string {
  return process.env.HAKMEM_LIB ? resolve(process.env.HAKMEM_LIB) : join(REPO, "zig-out/lib/libhakmem.so");
}

/** The checked library (ReleaseSafe, validators at slow paths: zig/thread/validate.zig), beside the one under test. */
export function checkedLib(): string {
  return join(REPO, "zig-out/lib/libhakmem-checked.so");
}

/** HAKMEM_TEST_SYSTEM=1 runs the programs on the system allocator (to validate the tests). */
export function systemMode(): boolean {
  const v = process.env.HAKMEM_TEST_SYSTEM;
  return !!v && v !== "0";
}

function requireLibrary(path?: string): string {
  const lib = path ?? hakmemLib();
  if (!existsSync(lib)) throw new Error(`${lib} does not exist: run 'npm run build' first`);
  return lib;
}

/**
 * Compiles test/c/<name>.c once per source version (and flags); returns the executable's
 * path. `extraFlags` go after the source (e.g. -I/-L/-l and an rpath to link libhakmem).
 * zig/hakmem.h is part of the hash: a program built against an older header (another
 * stats layout) must be rebuilt.
 */
export async function compileC(name: string, extraFlags: string[] = []): Promise<string> {
  return zigCcAsync({
    source: join(C_DIR, `${name}.c`), outDir: BUILD_DIR, flags: CFLAGS, after: extraFlags,
    dependsOn: [join(REPO, "zig/hakmem.h")],
  });
}

export interface RunResult {
  command: string;
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface RunOptions {
  preload?: boolean; // default: true unless systemMode()
  env?: Record<string, string>;
  timeoutMs?: number; // default 90 s
  cwd?: string;
  /** extra compiler/linker flags for runC (after the source file) */
  compileFlags?: string[];
  /** the library to preload (default hakmemLib(); checkedLib() for the checked one) */
  library?: string;
}

/** Runs a command, by default with libhakmem.so preloaded. */
export async function run(argv: string[], options: RunOptions = {}): Promise<RunResult> {
  const preload = options.preload ?? !systemMode();
  const env: Record<string, string> = { ...(process.env as Record<string, string>), ...options.env };
  delete env.LD_PRELOAD;
  if (preload) env.LD_PRELOAD = requireLibrary(options.library);
  const prefix = preload ? `LD_PRELOAD=${env.LD_PRELOAD} ` : "";
  const extra = Object.entries(options.env ?? {}).map(([k, v]) => `${k}=${v} `).join("");
  const command = `${prefix}${extra}${argv.join(" ")}`;
  const r = await spawnCollect(argv, { cwd: options.cwd ?? REPO, env, timeoutMs: options.timeoutMs });
  return { ...r, command };
}

/** Compiles and runs test/c/<name>.c with the given arguments. */
export async function runC(name: string, args: (string | number)[] = [], options: RunOptions = {}): Promise<RunResult> {
  const exe = await compileC(name, options.compileFlags);
  return run([exe, ...args.map(String)], options);
}

function tail(text: string, max = 4000): string {
  return text.length <= max ? text : `...${text.slice(-max)}`;
}

/** A readable account of a run, for failure messages. */
export function explain(r: RunResult): string {
  const status = r.signal ? `killed by ${r.signal}` : `exit ${r.code}`;
  return `command: ${r.command}\n${status} after ${Math.round(r.ms)} ms\n--- stdout ---\n${tail(r.stdout)}\n--- stderr ---\n${tail(r.stderr)}`;
}

/**
 * Throws with the full story unless the program exited 0, printed "PASS <name>" and wrote
 * nothing to stderr (the test programs are silent on success, and so must hakmem be unless
 * HAKMEM_STATS is set).
 */
export function expectPass(r: RunResult, name: string): void {
  if (r.code !== 0 || r.signal || !r.stdout.includes(`PASS ${name}`)) {
    throw new Error(`${name} failed\n${explain(r)}`);
  }
  if (!process.env.HAKMEM_STATS && r.stderr.trim() !== "") {
    throw new Error(`${name} passed but wrote to stderr\n${explain(r)}`);
  }
}
