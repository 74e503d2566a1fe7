// commands.ts — any command, every allocator: runs a shell command (`/bin/sh -c`) preloaded
// with each allocator, interleaved, `--runs` times, under the measuring wrapper, and makes a
// section of it: wall time (the value), CPU time (user+sys), page faults, peak RSS, the
// spread, and whether each run's stdout matched the reference run's (the first glibc run;
// without glibc, the first run). A run whose output differs is kept in the JSON, marked, and
// never counted (no median, no ratio, no win). Used by `--cmd` and by the `programs` section.
//
// Proof of the allocator, for programs that print nothing about it: the dynamic linker's
// log (LD_DEBUG=libs, to files) must show the preloaded object's initialisation, and
// hakmem's HAKMEM_STATS_FILE reports must carry the build id just built and some
// allocations. The glibc column preloads libc.so.6 itself, so a program linked against
// another allocator (redis links jemalloc) still gets glibc's malloc there.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Allocator, sameFile } from "./allocators.ts";
import { type Measured, runMeasured } from "./measure.ts";
import type { Progress } from "./progress.ts";
import { parseHakmemStats } from "./proof.ts";
import type { Row, Sample, Section } from "./results.ts";
import { childEnv } from "./runner.ts";

export interface CommandRow {
  name: string;
  /** a shell command line, run as /bin/sh -c */
  shell: string;
  cwd?: string;
  env?: Record<string, string>;
  timeoutMs: number;
}

export interface CommandSectionDef {
  name: string;
  title: string;
  note?: string;
}

export interface CommandContext { runs: number; progress: Progress; hakmemBuildId: string | null }

/** The object each column preloads: the allocator's own, libc.so.6 for glibc. */
export function columnPreload(alloc: Allocator): string {
  return alloc.preload ?? alloc.lib;
}

function tail(text: string, lines = 4): string {
  return text.trim().split("\n").slice(-lines).join("\n");
}

/** Objects whose initialisers the dynamic linker ran, from LD_DEBUG=libs logs in `dir`. */
export function initialisedObjects(dir: string): string[] {
  const out: string[] = [];
  for (const file of readdirSync(dir).filter((f) => f.startsWith("ld."))) {
    for (const m of readFileSync(join(dir, file), "utf8").matchAll(/calling init: (\S+)/g)) out.push(m[1]);
  }
  return out;
}

/** Why this run cannot be counted for `alloc`, or null when it proves its allocator. */
function proofError(alloc: Allocator, dir: string, buildId: string | null): string | null {
  const preload = columnPreload(alloc);
  const inits = initialisedObjects(dir);
  if (!inits.some((o) => sameFile(o, preload))) {
    return `preload did not take effect: the dynamic linker never initialised ${preload} (a static or setuid program, or one that clears LD_PRELOAD?)`;
  }
  if (alloc.name !== "hakmem") return null;
  const reports = readdirSync(dir).filter((f) => f.startsWith("hakmem.")).map((f) => parseHakmemStats(readFileSync(join(dir, f), "utf8")));
  const valid = reports.filter((r) => r !== null);
  if (valid.length === 0) return "no HAKMEM_STATS_FILE report: cannot prove hakmem served the run";
  const stale = valid.find((r) => buildId && r!.buildId && r!.buildId !== buildId);
  if (stale) return `stale library: the run reports build ${stale.buildId}, the built library is ${buildId}`;
  if (valid.reduce((n, r) => n + r!.allocs, 0) === 0) return "hakmem counted no allocations: not served by hakmem";
  return null;
}

async function runOnce(row: CommandRow, alloc: Allocator, buildId: string | null): Promise<{ m: Measured } | { error: string }> {
  const dir = mkdtempSync(join(tmpdir(), "hakmem-bench-cmd-"));
  try {
    const env: Record<string, string> = { ...childEnv(alloc, null), ...row.env, LD_DEBUG: "libs", LD_DEBUG_OUTPUT: join(dir, "ld") };
    if (alloc.name === "hakmem") env.HAKMEM_STATS_FILE = join(dir, "hakmem.%p");
    const m = await runMeasured(["/bin/sh", "-c", row.shell], { preload: columnPreload(alloc), env, timeoutMs: row.timeoutMs, cwd: row.cwd });
    if (m.timedOut) return { error: `timed out after ${row.timeoutMs / 1000} s` };
    if (m.signal) return { error: `killed by ${m.signal}: ${tail(m.stderr)}` };
    if (m.exitCode === 127 && /measure: cannot run|not found/.test(m.stderr)) return { error: `cannot run: ${tail(m.stderr)}` };
    const proof = proofError(alloc, dir, buildId);
    if (proof) return { error: proof };
    return { m };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Marks every sample whose stdout differs from the reference's (and whose exit code does). */
export function markMismatches(row: Row, reference: string | null): void {
  const counted = row.samples;
  const ref = counted.find((s) => s.allocator === reference) ?? counted[0];
  if (!ref) return;
  for (const s of counted) {
    s.mismatch = s.extra?.stdout_sha256 !== ref.extra?.stdout_sha256 || s.extra?.exit !== ref.extra?.exit;
  }
}

export async function runCommandSection(def: CommandSectionDef, rows: CommandRow[], allocators: Allocator[], ctx: CommandContext): Promise<Section> {
  const reference = allocators.some((a) => a.name === "glibc") ? "glibc" : allocators[0]?.name ?? null;
  const section: Section = {
    name: def.name, title: def.title, unit: "s", higherIsBetter: false, spread: true, outputCheck: true,
    metrics: [{ key: "cpu_secs", label: "CPU s" }, { key: "faults", label: "page faults" }],
    note: [def.note, `stdout compared with ${reference === "glibc" ? "glibc's first run" : `the first run (${reference}; glibc not measured)`}: a run that differs is marked ≠ and never counted`].filter(Boolean).join("; "),
    rows: [],
  };
  for (const def of rows) {
    const row: Row = { name: def.name, command: ["/bin/sh", "-c", def.shell], samples: [], errors: [] };
    section.rows.push(row);
    for (let run = 1; run <= ctx.runs; run++) {
      for (const alloc of allocators) {
        ctx.progress.step(`${section.name} ${def.name} · ${alloc.name} · run ${run}/${ctx.runs}`);
        const r = await runOnce(def, alloc, ctx.hakmemBuildId);
        if ("error" in r) { row.errors.push({ allocator: alloc.name, run, message: r.error }); continue; }
        const m = r.m;
        const sample: Sample = {
          allocator: alloc.name, run, value: m.wallSec, peakRssKb: m.maxRssKb || null,
          extra: {
            cpu_secs: Number(m.cpuSec.toFixed(4)), user_secs: Number(m.userSec.toFixed(4)), sys_secs: Number(m.sysSec.toFixed(4)),
            faults: m.faults, minflt: m.minflt, majflt: m.majflt, exit: m.exitCode ?? -1,
            stdout_sha256: m.stdoutHash, stdout_bytes: m.stdoutBytes,
          },
        };
        row.samples.push(sample);
      }
    }
    markMismatches(row, reference);
  }
  return section;
}

/** A short row name for a command line. */
export function commandName(shell: string, max = 40): string {
  const s = shell.replace(/\s+/g, " ").trim();
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}
