// report.ts — what the tuner shows: one progress line on stderr while it runs (rewritten
// in place on a terminal, every few seconds otherwise), the leaderboard and the
// confirmation at the end, and the table of --compare.
import { formatMiB, si } from "../format.ts";
import { formatElapsed } from "../progress.ts";
import type { Comparison } from "./compare.ts";
import type { Ranked, SearchProgress, SearchResult } from "./search.ts";
import type { Measurement } from "./score.ts";

export class ProgressLine {
  private lastPrint = -Infinity;
  private readonly tty = Boolean(process.stderr.isTTY);

  constructor(private readonly limits: { timeLimitMs?: number; budgetRuns?: number }) {}

  update(p: SearchProgress): void {
    const time = formatElapsed(p.elapsedMs) + (this.limits.timeLimitMs ? `/${formatElapsed(this.limits.timeLimitMs)}` : "");
    const runs = `run ${p.runs + 1}${this.limits.budgetRuns ? `/${this.limits.budgetRuns}` : ""}`;
    const best = p.best ? `best ×${p.best.score.toFixed(3)} ${p.best.candidate.label}` : "best: -";
    const where = p.round < 0 ? `confirming ${p.position}/${p.roundSize}` : `bracket ${p.bracket + 1} round ${p.round + 1} candidate ${p.position}/${p.roundSize}`;
    const line = `[${time} ${runs}] ${where} · ${best} · now: ${p.current}`;
    if (this.tty) {
      process.stderr.write(`\r\x1b[2K${line.slice(0, (process.stderr.columns ?? 120) - 1)}`);
    } else if (p.elapsedMs - this.lastPrint >= 5000) {
      process.stderr.write(`${line}\n`);
      this.lastPrint = p.elapsedMs;
    }
  }

  clear(): void {
    if (this.tty) process.stderr.write("\r\x1b[2K");
  }
}

const ratio = (x: number) => (Number.isFinite(x) ? `×${x.toFixed(2)}` : "-");

function row(rank: string, label: string, runs: number, score: string, m: Measurement, r: Ranked["ratios"] | null): string[] {
  return [
    rank, label, String(runs), score,
    si(m.opsPerSec), r ? ratio(r.throughput) : "",
    String(Math.round(m.faults)), r ? ratio(1 / r.faults) : "",
    formatMiB(m.peakRssKb), r ? ratio(1 / r.rss) : "",
  ];
}

/** The top candidates (most repetitions first, then score) and the baseline, as a text table. */
export function leaderboard(result: SearchResult, top: number): string {
  const head = ["#", "settings (changed from defaults)", "runs", "score", "ops/s", "vs def", "faults", "vs def", "peak MiB", "vs def"];
  const rows = result.leaderboard.slice(0, top).map((e, i) =>
    row(String(i + 1), e.candidate.label, e.candidate.samples.length, e.score.toFixed(3), e.summary, e.ratios));
  rows.push(row("-", "defaults (baseline)", result.baseline.samples.length, "1.000", result.baselineSummary, null));
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const left = new Set([1]);
  const fmt = (cells: string[]) => cells.map((s, c) => (left.has(c) ? s.padEnd(widths[c]) : s.padStart(widths[c]))).join("  ").trimEnd();
  return [fmt(head), fmt(widths.map((w) => "-".repeat(w))), ...rows.map(fmt)].join("\n");
}

/** The confirmation runs of the best candidate against the defaults, or "". */
export function confirmation(result: SearchResult): string {
  const c = result.confirmation;
  if (!c) return "";
  const verdict = result.winner ? "confirmed" : "not confirmed: the defaults stay";
  return `confirmation, ${c.runs} runs each interleaved with the defaults: ${c.candidate.label} — score ×${c.score.toFixed(3)}, ` +
    `ops/s ${ratio(c.ratios.throughput)}, faults ${ratio(1 / c.ratios.faults)}, peak RSS ${ratio(1 / c.ratios.rss)} (${verdict})`;
}

export function failures(result: SearchResult): string {
  if (result.failed.length === 0) return "";
  const lines = result.failed.slice(0, 5).map((c) => `  ${c.label}: ${c.error}`);
  const more = result.failed.length > 5 ? `\n  … and ${result.failed.length - 5} more` : "";
  return `failed candidates (${result.failed.length}, left out):\n${lines.join("\n")}${more}`;
}

/** --compare: medians of the defaults and of the profile, and their ratio. */
export function comparisonTable(c: Comparison): string {
  const rows = [
    ["ops/s", si(c.defaults.opsPerSec), si(c.profile.opsPerSec), `×${c.ratios.throughput.toFixed(3)}`],
    ["page faults", String(Math.round(c.defaults.faults)), String(Math.round(c.profile.faults)), `×${(1 / c.ratios.faults).toFixed(3)}`],
    ["peak RSS MiB", formatMiB(c.defaults.peakRssKb), formatMiB(c.profile.peakRssKb), `×${(1 / c.ratios.rss).toFixed(3)}`],
  ];
  const head = [`medians of ${c.runs} runs`, "defaults", "profile", "profile/defaults"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const fmt = (r: string[]) => r.map((x, i) => (i === 0 ? x.padEnd(widths[i]) : x.padStart(widths[i]))).join("  ");
  return [fmt(head), ...rows.map(fmt)].join("\n");
}
