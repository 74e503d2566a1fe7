// zigcc.ts — the one way this repository compiles a C file: `zig cc` (the pinned
// toolchain) or, for the bench's programs, the system C compiler (`cc`, as a user builds a
// program: with zig cc some peers take slow paths, e.g. mimalloc's free 117-266 instructions
// a pair instead of 51-53), cached by a hash of everything that goes into the binary (the
// compiler, the source, every header of the directories it may include, extra files such as
// zig/hakmem.h, and the flags). Used by the bench (bench/build.ts), the tests (test/helpers/c.ts), the safety
// section (test/c/heap_misuse.c) and the soak's RSS probe. A compile writes a temporary file and renames it, so
// concurrent processes never see half a binary.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dir, "..");
export const ZIG = join(ROOT, "zig/toolchain/zig");
/** Headers every C program may include: bench/c/common.h (RNG, clock, RSS, malloc owner). */
export const SHARED_HEADER_DIR = join(ROOT, "bench/c");
/** The system C compiler (`cc` on PATH), or null when there is none. */
export const SYSTEM_CC: string | null = Bun.which("cc");

export interface ZigCcJob {
  /** absolute path of the .c file */
  source: string;
  /** where the binary goes (created when missing) */
  outDir: string;
  /** binary name before the hash (default: the source's base name); the hash is appended */
  name?: string;
  /** flags before the source (-O2, -pthread, -shared …) */
  flags: string[];
  /** flags after the source (-I/-L/-l, rpath) */
  after?: string[];
  /** extra files whose contents go into the hash (e.g. zig/hakmem.h) */
  dependsOn?: string[];
  /** appended to the binary name, e.g. ".so" */
  suffix?: string;
  /** compile with SYSTEM_CC instead of zig cc (the caller checks it is not null) */
  systemCc?: boolean;
}

function compilerOf(job: ZigCcJob): string[] {
  if (!job.systemCc) return [ZIG, "cc"];
  if (SYSTEM_CC === null) throw new Error("no system C compiler (cc) on PATH");
  return [SYSTEM_CC];
}

function headersOf(dir: string): string[] {
  return readdirSync(dir).filter((f) => f.endsWith(".h")).sort().map((f) => join(dir, f));
}

/** Path the job's binary has for its current inputs (whether built yet or not). */
export function outputPath(job: ZigCcJob): string {
  const hash = createHash("sha256");
  hash.update([...compilerOf(job), "|", ...job.flags, "|", ...(job.after ?? [])].join(" "));
  const dirs = [...new Set([dirname(job.source), SHARED_HEADER_DIR])];
  for (const file of [...dirs.flatMap(headersOf), ...(job.dependsOn ?? [])]) {
    hash.update(file.startsWith(ROOT) ? file.slice(ROOT.length) : file);
    hash.update(readFileSync(file));
  }
  hash.update(readFileSync(job.source));
  const name = job.name ?? basename(job.source).replace(/\.c$/, "");
  return join(job.outDir, `${name}-${hash.digest("hex").slice(0, 16)}${job.suffix ?? ""}`);
}

function argv(job: ZigCcJob, tmp: string): string[] {
  return [...compilerOf(job), ...job.flags, job.source, ...(job.after ?? []), "-o", tmp];
}

function failure(job: ZigCcJob, code: number | null, text: string): Error {
  return new Error(`${job.systemCc ? "cc" : "zig cc"} ${job.source.startsWith(ROOT) ? job.source.slice(ROOT.length + 1) : job.source} failed (exit ${code}):\n${text}`);
}

/** Compiles once per input hash and returns the binary's path (synchronous). */
export function zigCc(job: ZigCcJob): string {
  const out = outputPath(job);
  if (existsSync(out)) return out;
  mkdirSync(job.outDir, { recursive: true });
  const tmp = `${out}.tmp${process.pid}`;
  const r = Bun.spawnSync(argv(job, tmp), { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) {
    rmSync(tmp, { force: true });
    throw failure(job, r.exitCode, r.stdout.toString() + r.stderr.toString());
  }
  renameSync(tmp, out);
  return out;
}

/** The same, without blocking the event loop. */
export async function zigCcAsync(job: ZigCcJob): Promise<string> {
  const out = outputPath(job);
  if (existsSync(out)) return out;
  mkdirSync(job.outDir, { recursive: true });
  const tmp = `${out}.tmp${process.pid}`;
  const proc = Bun.spawn(argv(job, tmp), { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  const [code, text, err] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  if (code !== 0) {
    rmSync(tmp, { force: true });
    throw failure(job, code, text + err);
  }
  renameSync(tmp, out);
  return out;
}
