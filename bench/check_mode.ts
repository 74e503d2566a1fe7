// check_mode.ts — what check mode (HAKMEM_CHECK=1) costs on the bench's single-thread
// workload rows (issue 21: at most ×3 the normal mode's time). main.ts runs each such row
// with hakmem twice per run, normal mode then check mode, one after the other (the same
// run, interleaved with the peers); the check-mode samples sit in the row under the
// allocator name "hakmem check" (never a peer: the tables and ratios name their allocators).
// Here: per row, time per operation in check mode ÷ in normal mode, from the medians of
// ops/s of the same runs, and the min–max of the per-run ratios.
import { formatMiB, formatRatio, formatValue } from "./format.ts";
import type { Row, Section } from "./results.ts";
import { countedSamples } from "./results.ts";
import { geomean, median } from "./stats.ts";

/** The allocator name of check-mode samples (the safety table's column has the same name). */
export const CHECK_ALLOCATOR = "hakmem check";
/** The environment a check-mode run adds. */
export const CHECK_ENV: Record<string, string> = { HAKMEM_CHECK: "1" };
/** Issue 21's target: check mode at most this many times slower than normal mode. */
export const CHECK_TARGET = 3;

export interface CheckModeRow {
  section: string;
  row: string;
  /** medians of hakmem's ops/s in the row's runs: normal mode, check mode */
  normalOpsPerSec: number | null;
  checkOpsPerSec: number | null;
  /** time per operation in check mode ÷ in normal mode (normal ops/s ÷ check ops/s, medians) */
  slowdown: number | null;
  /** the lowest and highest of the per-run ratios (run k's normal ÷ run k's check) */
  min: number | null;
  max: number | null;
  /** runs with both a normal and a check-mode sample */
  runs: number;
  /** the check-mode runs' share of the normal runs' work (1: the same command) */
  scale: number;
  normalPeakRssKb: number | null;
  checkPeakRssKb: number | null;
  /** why there is no ratio (a failed run's message) */
  error?: string;
}

export interface CheckModeReport {
  title: string;
  target: number;
  rows: CheckModeRow[];
}

export const CHECK_TITLE = "check mode — hakmem with HAKMEM_CHECK=1 ÷ normal mode, single-thread workload rows (time per operation; issue 21's target: at most ×3)";

function medianOrNull(values: number[]): number | null {
  return values.length ? median(values) : null;
}

/** The check-mode figures of one workload row (`scale`: the check-mode runs' share of the work). */
export function checkModeRow(section: string, row: Row, scale: number): CheckModeRow {
  const normal = countedSamples(row, "hakmem");
  const check = countedSamples(row, CHECK_ALLOCATOR);
  const perRun: number[] = [];
  for (const c of check) {
    const n = normal.find((s) => s.run === c.run);
    if (n && n.value > 0 && c.value > 0) perRun.push(n.value / c.value);
  }
  const normalOps = medianOrNull(normal.map((s) => s.value));
  const checkOps = medianOrNull(check.map((s) => s.value));
  const rss = (samples: typeof normal) => medianOrNull(samples.map((s) => s.peakRssKb).filter((x): x is number => x !== null));
  const error = row.errors.find((e) => e.allocator === CHECK_ALLOCATOR)?.message;
  return {
    section, row: row.name,
    normalOpsPerSec: normalOps, checkOpsPerSec: checkOps,
    slowdown: normalOps !== null && checkOps !== null && checkOps > 0 ? normalOps / checkOps : null,
    min: perRun.length ? Math.min(...perRun) : null,
    max: perRun.length ? Math.max(...perRun) : null,
    runs: perRun.length, scale,
    normalPeakRssKb: rss(normal), checkPeakRssKb: rss(check),
    ...(error ? { error } : {}),
  };
}

/** The report over every row that ran in check mode (`scaleOf`: its check-mode share of the work). */
export function checkModeReport(sections: Section[], scaleOf: (section: string, row: string) => number | null): CheckModeReport | null {
  const rows: CheckModeRow[] = [];
  for (const section of sections) {
    for (const row of section.rows) {
      const scale = scaleOf(section.name, row.name);
      if (scale === null) continue;
      if (!row.samples.some((s) => s.allocator === CHECK_ALLOCATOR) && !row.errors.some((e) => e.allocator === CHECK_ALLOCATOR)) continue;
      rows.push(checkModeRow(section.name, row, scale));
    }
  }
  return rows.length ? { title: CHECK_TITLE, target: CHECK_TARGET, rows } : null;
}

function pad(s: string, w: number): string {
  return s.length >= w ? `${s} ` : s + " ".repeat(w - s.length);
}

function spread(r: CheckModeRow): string {
  return r.min !== null && r.max !== null && r.runs > 1 ? `${formatRatio(r.min)}–${formatRatio(r.max).slice(1)}` : r.runs === 1 ? "(1 run)" : "-";
}

function scaleNote(r: CheckModeRow): string {
  return r.scale === 1 ? "" : `check-mode runs do ${r.scale < 1 ? `1/${Math.round(1 / r.scale)}` : `×${r.scale}`} of the work`;
}

/** The text table: one line per row. */
export function checkModeTable(report: CheckModeReport): string {
  const label = Math.max(34, ...report.rows.map((r) => r.section.length + r.row.length + 3));
  const lines = [`\n${report.title}`,
    "  [check ÷ normal: normal-mode ops/s ÷ check-mode ops/s, medians of the same runs (>1 = check mode slower); min–max of the per-run ratios; peak RSS normal → check]",
    pad("", label) + pad("normal", 15) + pad("check", 15) + pad("check ÷ normal", 16) + pad("min–max", 15) + "peak RSS MiB"];
  for (const r of report.rows) {
    const name = `${r.section} ${r.row}`;
    if (r.slowdown === null) {
      lines.push(pad(name, label) + `error: ${r.error ?? "no check-mode sample"}`);
      continue;
    }
    const note = scaleNote(r);
    lines.push(pad(name, label) + pad(`${formatValue("ops/s", r.normalOpsPerSec!)} ops/s`, 15) + pad(`${formatValue("ops/s", r.checkOpsPerSec!)} ops/s`, 15)
      + pad(`${formatRatio(r.slowdown)}${r.slowdown <= report.target ? "" : " >×" + report.target}`, 16) + pad(spread(r), 15)
      + `${formatMiB(r.normalPeakRssKb)} → ${formatMiB(r.checkPeakRssKb)}${note ? `  (${note})` : ""}`);
  }
  return lines.join("\n");
}

/** One line for the summary: how many rows are within the target, the geometric mean, the worst. */
export function checkModeSummary(report: CheckModeReport): string {
  const measured = report.rows.filter((r) => r.slowdown !== null);
  if (measured.length === 0) return "  check mode: no row measured (see the errors above)";
  const within = measured.filter((r) => r.slowdown! <= report.target).length;
  const worst = [...measured].sort((a, b) => b.slowdown! - a.slowdown!)[0];
  return `  check mode ÷ normal (time per op): within ×${report.target} on ${within}/${measured.length} rows, geometric mean ${formatRatio(geomean(measured.map((r) => r.slowdown!)))}, worst ${worst.section} ${worst.row} ${formatRatio(worst.slowdown)}`;
}

export function checkModeMarkdown(report: CheckModeReport): string {
  const out = ["| row | normal ops/s | check ops/s | check ÷ normal | min–max | peak RSS MiB normal → check |", "|---|---:|---:|---:|---:|---:|"];
  for (const r of report.rows) {
    const note = scaleNote(r);
    const name = `${r.section} ${r.row}${note ? ` (${note})` : ""}`;
    if (r.slowdown === null) { out.push(`| ${name} | - | - | error | - | - |`); continue; }
    out.push(`| ${name} | ${formatValue("ops/s", r.normalOpsPerSec!)} | ${formatValue("ops/s", r.checkOpsPerSec!)} | ${formatRatio(r.slowdown)} | ${spread(r)} | ${formatMiB(r.normalPeakRssKb)} → ${formatMiB(r.checkPeakRssKb)} |`);
  }
  return out.join("\n");
}
