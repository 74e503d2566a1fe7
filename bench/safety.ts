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

export interface SafetyCase { name: string; title: string; args: string[] }
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
];

const CFLAGS = ["-O2", "-pthread", "-fno-builtin-malloc", "-fno-builtin-calloc", "-fno-builtin-realloc", "-fno-builtin-free"];

export function safetyProgram(): string {
  return zigCc({ source: join(ROOT, "test/c/heap_misuse.c"), outDir: join(ROOT, "bench/results/.build"), flags: CFLAGS });
}

export function safetyCount(allocators: number): number {
  return SAFETY_CASES.length * allocators;
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
    if (message) return r.signal === "SIGABRT" || r.signal === "SIGTRAP" || r.signal === "SIGILL"
      ? { verdict: "reported", detail: `${r.signal}: ${message}` }
      : { verdict: "crashed", detail: `${r.signal} after: ${message}` };
    return { verdict: "crashed", detail: r.signal };
  }
  if (r.exitCode === 0 && r.stdout.includes("CONTAINED")) return { verdict: "contained", detail: message ? `warned: ${message}` : "silent" };
  if (message && r.exitCode !== 0) return { verdict: "reported", detail: `exit ${r.exitCode}: ${message}` };
  return { verdict: "crashed", detail: `exit ${r.exitCode}${message ? `: ${message}` : ""}` };
}

export async function runSafety(allocators: Allocator[], progress: Progress, timeoutMs: number): Promise<SafetyReport> {
  const program = safetyProgram();
  const report: SafetyReport = {
    title: "safety — heap misuse (test/c/heap_misuse.c) under each allocator, preloaded; one run each",
    timeoutMs, cases: SAFETY_CASES, results: [],
  };
  for (const c of SAFETY_CASES) {
    for (const alloc of allocators) {
      progress.step(`safety ${c.name} · ${alloc.name}`);
      const dir = mkdtempSync(join(tmpdir(), "hakmem-bench-safety-"));
      try {
        const env: Record<string, string> = { ...childEnv(alloc, null), LD_DEBUG: "libs", LD_DEBUG_OUTPUT: join(dir, "ld") };
        delete env.HAKMEM_STATS; // nothing on stderr but what the allocator says about the misuse
        const preload = columnPreload(alloc);
        const m = await runMeasured([program, ...c.args], { preload, env, timeoutMs });
        if (!initialisedObjects(dir).some((o) => sameFile(o, preload))) {
          report.results.push({ case: c.name, allocator: alloc.name, verdict: "error", detail: `preload of ${preload} did not take effect` });
          continue;
        }
        report.results.push({ case: c.name, allocator: alloc.name, ...classify(m) });
      } catch (e) {
        report.results.push({ case: c.name, allocator: alloc.name, verdict: "error", detail: (e as Error).message });
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

export function safetyTable(report: SafetyReport, allocators: string[]): string {
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
export function safetySummary(report: SafetyReport, allocators: string[]): string {
  const misuse = report.results.filter((r) => r.case !== "control");
  const parts = allocators.map((a) => {
    const mine = misuse.filter((r) => r.allocator === a);
    const counts = (["reported", "contained", "handed out twice", "crashed", "hung", "error"] as Verdict[])
      .map((v) => [v, mine.filter((r) => r.verdict === v).length] as const).filter(([, n]) => n > 0);
    return `${a} ${counts.map(([v, n]) => `${n} ${v}`).join(", ")}`;
  });
  return `  safety (${misuse.length / Math.max(1, allocators.length)} misuse cases): ${parts.join("; ")}`;
}

export function safetyMarkdown(report: SafetyReport, allocators: string[]): string {
  const out = [`| misuse | ${allocators.join(" | ")} |`, `|---|${allocators.map(() => "---").join("|")}|`];
  for (const c of report.cases) out.push(`| ${c.title} | ${allocators.map((a) => cell(report, c.name, a)).join(" | ")} |`);
  return out.join("\n");
}
