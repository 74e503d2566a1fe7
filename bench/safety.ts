// safety.ts — what each allocator does when a program misuses its heap: the cases of
// test/c/heap_misuse.c (the program hakmem's own misuse tests run), each preloaded with
// every allocator, once, with a time limit. Data, not a test of the peers: every verdict
// is what happened on this machine.
//   reported         the process stopped (abort or error exit) with a message on stderr
//   contained        it ran on and no block was handed out twice (the program checks
//                    every block it allocates afterwards; "warned" when it printed something)
//   handed out twice the program found a block handed out twice (or overlapping): silent
//                    heap corruption
//   crashed          killed by a signal without a message (SIGSEGV, a bare abort) or failed
//   hung             still running at the time limit (killed)
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Allocator, sameFile } from "./allocators.ts";
import { columnPreload, initialisedObjects } from "./commands.ts";
import { runMeasured } from "./measure.ts";
import type { Progress } from "./progress.ts";
import { childEnv } from "./runner.ts";
import { ROOT, zigCc } from "./zigcc.ts";

export type Verdict = "reported" | "contained" | "handed out twice" | "crashed" | "hung" | "error";

/** A case: a program of test/c (heap_misuse by default), its arguments, extra environment. */
export interface SafetyCase { name: string; title: string; args: string[]; program?: "heap_misuse" | "safety_cases" | "guarded_sample"; env?: Record<string, string> }
export interface SafetyResult { case: string; allocator: string; verdict: Verdict; detail: string }
export interface SafetyReport { title: string; timeoutMs: number; cases: SafetyCase[]; results: SafetyResult[] }

export const SAFETY_CASES: SafetyCase[] = [
  { name: "control", title: "no misuse (control)", args: ["clean", "64"] },
  { name: "double_free_adjacent", title: "double free, adjacent (64 B)", args: ["double_free_adjacent", "64"] },
  { name: "double_free_apart", title: "double free, another free between (64 B)", args: ["double_free_apart", "64"] },
  { name: "double_free_flushed", title: "double free after the block went back to its page (64 B)", args: ["double_free_flushed", "64"] },
  { name: "double_free_thread", title: "double free, first free on another thread (64 B)", args: ["double_free_thread", "64"] },
  { name: "double_free_mid_big", title: "double free of a big mid block (200 KB)", args: ["double_free_adjacent", "200000"] },
  { name: "double_free_large", title: "double free of a large block (5 MB)", args: ["double_free_adjacent", "5000000"] },
  { name: "interior_free", title: "free of an interior pointer (64 B block + 16)", args: ["interior_free", "64"] },
  { name: "realloc_freed", title: "realloc of a freed block (64 B)", args: ["realloc_freed", "64"] },
  { name: "write_link", title: "write to the link word of a freed block (64 B)", args: ["write_link", "64"] },
  // issue 21: overflows, underflows, writes after free, zero-size access (test/c/safety_cases.c)
  { name: "overflow_1_small", title: "overflow by 1 byte (40 B block)", args: ["overflow_1", "40"], program: "safety_cases" },
  { name: "overflow_32_memcpy", title: "overflow by 32 bytes, memcpy (3000 B block)", args: ["overflow_32", "3000"], program: "safety_cases" },
  { name: "overflow_1_large", title: "overflow by 1 byte (1 MiB block)", args: ["overflow_1", "1048576"], program: "safety_cases" },
  { name: "overflow_1m_large", title: "overflow by 1 MiB, memset (1 MiB block)", args: ["overflow_1m", "1048576"], program: "safety_cases" },
  { name: "underflow_1", title: "underflow by 1 byte (40 B block)", args: ["underflow_1", "40"], program: "safety_cases" },
  { name: "underflow_32_memcpy", title: "underflow by 32 bytes, memcpy (3000 B block)", args: ["underflow_32", "3000"], program: "safety_cases" },
  { name: "write_after_free", title: "write after free (40 B block)", args: ["write_after_free_0", "40"], program: "safety_cases" },
  { name: "zero_after_free_large", title: "memset after free (1 MiB block)", args: ["zero_after_free", "1048576"], program: "safety_cases" },
  { name: "zero_size_write", title: "write to a malloc(0) block", args: ["zero_size_write", "40"], program: "safety_cases" },
  { name: "zero_size_read", title: "read of a malloc(0) block", args: ["zero_size_read", "40"], program: "safety_cases" },
  // a sampled block (hakmem: a guarded sample; other allocators: the 1000th block)
  { name: "guarded_overflow", title: "overflow of a sampled block (48 B, 1 MiB sampling)", args: ["overflow", "48", "any"], program: "guarded_sample", env: { HAKMEM_GUARD_SAMPLE_MB: "1" } },
  { name: "guarded_use_after_free", title: "use after free of a sampled block (48 B, 1 MiB sampling)", args: ["use_after_free", "48", "any"], program: "guarded_sample", env: { HAKMEM_GUARD_SAMPLE_MB: "1" } },
];

/** The extra column: hakmem in check mode (HAKMEM_CHECK=1). */
export const HAKMEM_CHECK_COLUMN = "hakmem check";

const CFLAGS = ["-O2", "-pthread", "-fno-builtin-malloc", "-fno-builtin-calloc", "-fno-builtin-realloc", "-fno-builtin-free"];

export function safetyProgram(name: SafetyCase["program"] = "heap_misuse"): string {
  const flags = name === "heap_misuse" ? CFLAGS : [...CFLAGS, "-fno-builtin-memcpy", "-fno-builtin-memset"];
  return zigCc({ source: join(ROOT, `test/c/${name}.c`), outDir: join(ROOT, "bench/results/.build"), flags, after: ["-ldl"] });
}

export function safetyCount(allocators: number): number {
  return SAFETY_CASES.length * (allocators + 1); // + hakmem in check mode
}

/** The columns of a report: the allocators asked for, then hakmem check when it ran. */
function columns(report: SafetyReport, allocators: string[]): string[] {
  const extra = [...new Set(report.results.map((r) => r.allocator))].filter((a) => !allocators.includes(a));
  return [...allocators, ...extra];
}

function firstLine(text: string): string {
  const line = text.split("\n").map((l) => l.trim()).find((l) => l.length > 0) ?? "";
  return line.length > 110 ? `${line.slice(0, 109)}…` : line;
}

/** The verdict for one run, from its status and output. */
export function classify(r: { timedOut: boolean; signal: string | null; exitCode: number | null; stdout: string; stderr: string }): { verdict: Verdict; detail: string } {
  const message = firstLine(r.stderr);
  if (r.timedOut) return { verdict: "hung", detail: "killed at the time limit" };
  if (r.stdout.includes("DUPLICATE")) return { verdict: "handed out twice", detail: firstLine(r.stdout.slice(r.stdout.indexOf("DUPLICATE"))) };
  if (r.signal) {
    // a fault the allocator set up and explained (a guard page, a protected freed block)
    const said = r.stderr.split("\n").find((l) => l.trim().length > 0) ?? "";
    const explained = (r.signal === "SIGSEGV" || r.signal === "SIGBUS") && /overflow|underflow|use after free|freed block|zero-size|guard page|write past/i.test(said);
    if (message) return r.signal === "SIGABRT" || r.signal === "SIGTRAP" || r.signal === "SIGILL" || explained
      ? { verdict: "reported", detail: `${r.signal}: ${message}` }
      : { verdict: "crashed", detail: `${r.signal} after: ${message}` };
    return { verdict: "crashed", detail: r.signal };
  }
  if (r.exitCode === 0 && (r.stdout.includes("CONTAINED") || r.stdout.includes("reached end"))) return { verdict: "contained", detail: message ? `warned: ${message}` : "silent" };
  if (message && r.exitCode !== 0) return { verdict: "reported", detail: `exit ${r.exitCode}: ${message}` };
  return { verdict: "crashed", detail: `exit ${r.exitCode}${message ? `: ${message}` : ""}` };
}

export async function runSafety(allocators: Allocator[], progress: Progress, timeoutMs: number): Promise<SafetyReport> {
  const programs = new Map<string, string>();
  const programOf = (c: SafetyCase) => {
    const name = c.program ?? "heap_misuse";
    if (!programs.has(name)) programs.set(name, safetyProgram(c.program));
    return programs.get(name)!;
  };
  const report: SafetyReport = {
    title: "safety — heap misuse (test/c/heap_misuse.c) under each allocator, preloaded; one run each",
    timeoutMs, cases: SAFETY_CASES, results: [],
  };
  const hakmem = allocators.find((a) => a.name === "hakmem");
  const runs = [...allocators.map((a) => ({ alloc: a, column: a.name, extra: {} as Record<string, string> })),
    ...(hakmem ? [{ alloc: hakmem, column: HAKMEM_CHECK_COLUMN, extra: { HAKMEM_CHECK: "1" } }] : [])];
  for (const c of SAFETY_CASES) {
    const program = programOf(c);
    for (const { alloc, column, extra } of runs) {
      progress.step(`safety ${c.name} · ${column}`);
      const dir = mkdtempSync(join(tmpdir(), "hakmem-bench-safety-"));
      try {
        const env: Record<string, string> = { ...childEnv(alloc, null), ...(c.env ?? {}), ...extra, LD_DEBUG: "libs", LD_DEBUG_OUTPUT: join(dir, "ld") };
        delete env.HAKMEM_STATS; // nothing on stderr but what the allocator says about the misuse
        const preload = columnPreload(alloc);
        const m = await runMeasured([program, ...c.args], { preload, env, timeoutMs });
        if (!initialisedObjects(dir).some((o) => sameFile(o, preload))) {
          report.results.push({ case: c.name, allocator: column, verdict: "error", detail: `preload of ${preload} did not take effect` });
          continue;
        }
        report.results.push({ case: c.name, allocator: column, ...classify(m) });
      } catch (e) {
        report.results.push({ case: c.name, allocator: column, verdict: "error", detail: (e as Error).message });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  }
  return report;
}

const SHORT: Record<Verdict, string> = {
  reported: "reported", contained: "contained", "handed out twice": "HANDED TWICE", crashed: "CRASHED", hung: "HUNG", error: "error",
};

function pad(s: string, w: number): string {
  return s.length >= w ? `${s} ` : s + " ".repeat(w - s.length);
}

function cell(report: SafetyReport, c: string, a: string): string {
  const r = report.results.find((x) => x.case === c && x.allocator === a);
  if (!r) return "-";
  return r.verdict === "contained" && r.detail.startsWith("warned") ? "contained*" : SHORT[r.verdict];
}

export function safetyTable(report: SafetyReport, asked: string[]): string {
  const allocators = columns(report, asked);
  const w = Math.max(...report.cases.map((c) => c.title.length)) + 2;
  const lines = [`\n${report.title}`,
    `  [reported: stopped with a message · contained: ran on, no block handed out twice (*: printed a warning) · HANDED TWICE: a block given out twice · CRASHED: signal without a message · HUNG: killed after ${report.timeoutMs / 1000} s]`,
    pad("", w) + allocators.map((a) => pad(a, 14)).join("")];
  for (const c of report.cases) lines.push(pad(c.title, w) + allocators.map((a) => pad(cell(report, c.name, a), 14)).join(""));
  const errors = report.results.filter((r) => r.verdict === "error");
  for (const e of errors) lines.push(`  ERROR ${e.allocator} (${e.case}): ${e.detail}`);
  return lines.join("\n");
}

/** One line: per allocator, how many misuse cases ended each way. */
export function safetySummary(report: SafetyReport, asked: string[]): string {
  const allocators = columns(report, asked);
  const misuse = report.results.filter((r) => r.case !== "control");
  const parts = allocators.map((a) => {
    const mine = misuse.filter((r) => r.allocator === a);
    const counts = (["reported", "contained", "handed out twice", "crashed", "hung", "error"] as Verdict[])
      .map((v) => [v, mine.filter((r) => r.verdict === v).length] as const).filter(([, n]) => n > 0);
    return `${a} ${counts.map(([v, n]) => `${n} ${v}`).join(", ")}`;
  });
  return `  safety (${misuse.length / Math.max(1, allocators.length)} misuse cases): ${parts.join("; ")}`;
}

export function safetyMarkdown(report: SafetyReport, asked: string[]): string {
  const allocators = columns(report, asked);
  const out = [`| misuse | ${allocators.join(" | ")} |`, `|---|${allocators.map(() => "---").join("|")}|`];
  for (const c of report.cases) out.push(`| ${c.title} | ${allocators.map((a) => cell(report, c.name, a)).join(" | ")} |`);
  return out.join("\n");
}
