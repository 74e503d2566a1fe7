// build.ts — keeps what the bench measures current: rebuilds libhakmem.so (zig build is a
// no-op when nothing changed) and compiles the C workload programs and native loops with the
// system C compiler (`cc -O2`, as a user's program is built: every peer takes its real fast
// path; zig cc only when there is no cc), cached under bench/results/.build/ by a hash of
// their sources (bench/zigcc.ts).
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync } from "node:fs";
import { join, resolve } from "node:path";
import { ROOT, SYSTEM_CC, ZIG, zigCc } from "./zigcc.ts";

export { ROOT, ZIG };
const C_DIR = join(ROOT, "bench/c");
const BUILD_DIR = join(ROOT, "bench/results/.build");
const CFLAGS = ["-O2", "-pthread"];

/** Path of the hakmem library to measure: $HAKMEM_LIB as given, else a fresh zig build. */
export function ensureLibrary(build: boolean): string {
  const fromEnv = process.env.HAKMEM_LIB;
  if (fromEnv) {
    if (!existsSync(fromEnv)) throw new Error(`HAKMEM_LIB=${fromEnv} does not exist`);
    return resolve(fromEnv);
  }
  if (build) {
    const r = Bun.spawnSync([ZIG, "build", "-Doptimize=ReleaseFast"], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
    if (r.exitCode !== 0) {
      throw new Error(`zig build -Doptimize=ReleaseFast failed:\n${r.stderr.toString()}${r.stdout.toString()}`);
    }
  }
  const lib = join(ROOT, "zig-out/lib/libhakmem.so");
  if (!existsSync(lib)) throw new Error(`${lib} is missing (run zig/toolchain/zig build -Doptimize=ReleaseFast)`);
  return lib;
}

/**
 * A private copy of the library, named by its content hash: every run of one bench
 * invocation measures the same bytes even when zig-out/ is rebuilt meanwhile (the working
 * tree is shared; a rebuild mid-run would otherwise mix builds, which the proof rejects).
 */
export function snapshotLibrary(lib: string): string {
  const bytes = readFileSync(lib);
  const hash = createHash("sha256").update(bytes).digest("hex").slice(0, 16);
  const out = join(BUILD_DIR, `libhakmem-${hash}.so`);
  if (existsSync(out)) return out;
  mkdirSync(BUILD_DIR, { recursive: true });
  const tmp = `${out}.tmp${process.pid}`;
  copyFileSync(lib, tmp);
  renameSync(tmp, out);
  return out;
}

export interface CompileOptions {
  shared?: boolean;
  /** zig cc -mcpu value when zig cc builds it (the default is the host CPU; valgrind needs e.g.
   * x86_64_v3: no AVX-512). The system cc builds for its default target (baseline x86-64, no
   * AVX-512), so it ignores this. */
  cpu?: string;
}

/** What compiles the bench's C programs: "cc" (the system compiler) or "zig cc" (none on PATH). */
export const BENCH_CC = SYSTEM_CC !== null ? "cc" : "zig cc";

/** Compiles bench/c/<name>.c (once per source hash) and returns the binary's path. */
export function compileProgram(name: string, options: CompileOptions = {}): string {
  const systemCc = SYSTEM_CC !== null;
  const cpu = systemCc ? undefined : options.cpu;
  const extra = [...(options.shared ? ["-shared", "-fPIC"] : []), ...(cpu ? [`-mcpu=${cpu}`] : [])];
  return zigCc({
    source: join(C_DIR, `${name}.c`), outDir: BUILD_DIR, name: `${name}${cpu ? `-${cpu}` : ""}`,
    flags: [...CFLAGS, ...extra], suffix: options.shared ? ".so" : "", systemCc,
  });
}
