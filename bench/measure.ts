// measure.ts — runs one command under bench/c/measure.c (fork, LD_PRELOAD in the child
// only, wait4) and returns what it cost: wall time, user+system CPU time, page faults
// (minor+major) and peak RSS of the child and the descendants it waited for, its exit
// status, its stdout (and a SHA-256 of all of it) and stderr. A time limit kills the
// command's whole process group. Every section that runs a program uses it.
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { constants, tmpdir } from "node:os";
import { join } from "node:path";
import { compileProgram } from "./build.ts";

export interface Measured {
  /** exit code, or null when killed by a signal */
  exitCode: number | null;
  /** e.g. "SIGABRT", or null */
  signal: string | null;
  timedOut: boolean;
  wallSec: number;
  userSec: number;
  sysSec: number;
  cpuSec: number;
  minflt: number;
  majflt: number;
  faults: number;
  maxRssKb: number;
  /** stdout, whole up to KEEP_BYTES, else its last KEEP_BYTES */
  stdout: string;
  stdoutBytes: number;
  /** SHA-256 (hex, 16 digits) of all of stdout */
  stdoutHash: string;
  stderr: string;
}

export interface MeasureOptions {
  /** shared object to LD_PRELOAD into the command (not into the wrapper); null: none */
  preload: string | null;
  /** the whole environment of the command (without LD_PRELOAD) */
  env: Record<string, string>;
  timeoutMs: number;
  cwd?: string;
}

const KEEP_BYTES = 1 << 20;

let wrapper: string | null = null;

/** The compiled wrapper (bench/c/measure.c, cached by hash). */
export function measureWrapper(): string {
  wrapper ??= compileProgram("measure");
  return wrapper;
}

// The first name of each number (SIGABRT, not its alias SIGIOT).
const SIGNAL_NAMES = new Map<number, string>();
for (const [name, n] of Object.entries(constants.signals)) if (!SIGNAL_NAMES.has(n as number)) SIGNAL_NAMES.set(n as number, name);

async function drain(stream: ReadableStream<Uint8Array>): Promise<{ text: string; bytes: number; hash: string }> {
  const hash = createHash("sha256");
  const chunks: Uint8Array[] = [];
  let kept = 0, bytes = 0;
  for await (const chunk of stream) {
    hash.update(chunk);
    bytes += chunk.length;
    chunks.push(chunk);
    kept += chunk.length;
    while (kept - chunks[0].length >= KEEP_BYTES) kept -= chunks.shift()!.length;
  }
  const text = Buffer.concat(chunks).toString("utf8");
  return { text: text.length > KEEP_BYTES ? text.slice(-KEEP_BYTES) : text, bytes, hash: hash.digest("hex").slice(0, 16) };
}

/** key=value pairs of the wrapper's report line. */
export function parseReport(line: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const part of line.trim().split(/\s+/)) {
    const eq = part.indexOf("=");
    if (eq > 0) out[part.slice(0, eq)] = Number(part.slice(eq + 1));
  }
  return out;
}

export async function runMeasured(argv: string[], opts: MeasureOptions): Promise<Measured> {
  const dir = mkdtempSync(join(tmpdir(), "hakmem-measure-"));
  const reportFile = join(dir, "report");
  try {
    const env = { ...opts.env };
    delete env.LD_PRELOAD;
    const proc = Bun.spawn([measureWrapper(), reportFile, opts.preload ?? "-", String(opts.timeoutMs), ...argv], {
      env, cwd: opts.cwd, stdin: "ignore", stdout: "pipe", stderr: "pipe",
      // a backstop: the wrapper kills the command at timeoutMs itself
      timeout: opts.timeoutMs > 0 ? opts.timeoutMs + 30_000 : undefined,
    });
    const [out, err] = await Promise.all([drain(proc.stdout), new Response(proc.stderr).text()]);
    const wrapperCode = await proc.exited;
    let r: Record<string, number>;
    try {
      r = parseReport(readFileSync(reportFile, "utf8"));
    } catch {
      throw new Error(`the measuring wrapper gave no report (exit ${wrapperCode}${proc.signalCode ? `, ${proc.signalCode}` : ""}): ${err.trim().split("\n").slice(-3).join(" | ")}`);
    }
    const userSec = r.user_us / 1e6, sysSec = r.sys_us / 1e6;
    return {
      exitCode: r.signal ? null : r.exit,
      signal: r.signal ? (SIGNAL_NAMES.get(r.signal) ?? `signal ${r.signal}`) : null,
      timedOut: r.timed_out === 1,
      wallSec: r.wall_ns / 1e9, userSec, sysSec, cpuSec: userSec + sysSec,
      minflt: r.minflt, majflt: r.majflt, faults: r.minflt + r.majflt, maxRssKb: r.maxrss_kb,
      stdout: out.text, stdoutBytes: out.bytes, stdoutHash: out.hash, stderr: err,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
