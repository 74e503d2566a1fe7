// report.ts — what the tuner shows: one progress line on stderr while it runs (rewritten
// in place on a terminal, every few seconds otherwise), the leaderboard (with what its
// order and score mean), the confirmation and the verdict at the end, how to use the
// profile, and the table of --compare.
import { formatMiB, si } from "../format.ts";
import { formatElapsed } from "../progress.ts";
import type { Comparison } from "./compare.ts";
import type { Ranked, SearchProgress, SearchResult } from "./search.ts";
import type { Measurement } from "./score.ts";
import type { Param, Settings } from "./space.ts";
import { formatInterval, MIN_PAIRS, times } from "./verdict.ts";

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

/** What the leaderboard's order and score mean (printed above it). */
export const LEADERBOARD_NOTE = [
  "leaderboard of the screening runs (successive halving): candidates that survived more rounds",
  "(more runs) come first, then the higher score. score = weighted geometric mean of the ratios",
  "to the defaults (ops/s over the defaults', the defaults' faults and peak RSS over the",
  "candidate's), on the medians of the candidate's runs and of every defaults run; defaults = 1.",
  "vs def: the candidate's figure ÷ the defaults' (ops/s: higher is better; faults, peak RSS: lower).",
  "Screening runs are short and few, and the best of many candidates is flattered by noise:",
  "these scores rank candidates, they do not prove a gain. The confirmation below decides.",
].join("\n");

/** The top candidates (most repetitions first, then score) and the baseline, as a text table under LEADERBOARD_NOTE. */
export function leaderboard(result: SearchResult, top: number): string {
  const head = ["#", "settings (changed from defaults)", "runs", "score", "ops/s", "vs def", "faults", "vs def", "peak MiB", "vs def"];
  const rows = result.leaderboard.slice(0, top).map((e, i) =>
    row(String(i + 1), e.candidate.label, e.candidate.samples.length, e.score.toFixed(3), e.summary, e.ratios));
  rows.push(row("-", "defaults (baseline)", result.baseline.samples.length, "1.000", result.baselineSummary, null));
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const left = new Set([1]);
  const fmt = (cells: string[]) => cells.map((s, c) => (left.has(c) ? s.padEnd(widths[c]) : s.padStart(widths[c]))).join("  ").trimEnd();
  return [LEADERBOARD_NOTE, "", fmt(head), fmt(widths.map((w) => "-".repeat(w))), ...rows.map(fmt)].join("\n");
}

/** The confirmation runs of the best candidate against the defaults, or "". */
export function confirmation(result: SearchResult): string {
  const c = result.confirmation;
  if (!c) return "";
  return [
    `confirmation: ${c.candidate.label} and the defaults run alternately, ${c.runs} pair${c.runs === 1 ? "" : "s"}; ` +
      `it wins only if every pair favours it (at least ${MIN_PAIRS} pairs)`,
    `  score per pair: ${formatInterval(c.verdict.interval)}`,
    `  medians of the pairs' ratios: ops/s ${ratio(c.ratios.throughput)}, faults ${ratio(1 / c.ratios.faults)}, peak RSS ${ratio(1 / c.ratios.rss)}` +
      ` (faults and RSS: candidate ÷ defaults, lower is better)`,
  ].join("\n");
}

/** The outcome in one line: the winner and its confirmed gain, or "no better setting found: …". */
export function verdictLine(result: SearchResult): string {
  const w = result.winner;
  if (!w) return `no better setting found: ${result.why}. The profile holds the default settings.`;
  const c = result.confirmation;
  if (c) return `winner: ${w.candidate.label} — score ${times(c.score)} over the defaults: ${result.why}`;
  return `winner (unconfirmed): ${w.candidate.label} — score ${times(w.score)} on the screening runs only (${result.why}); check it with --compare`;
}

/** How the tuned workload was run, which decides how a profile is used. */
export type WorkloadKind = "program" | "module" | "in-process";

/** A word for a shell command line: as is when safe, else single-quoted. */
export function shellWord(s: string): string {
  return /^[A-Za-z0-9_\/.,:+@%=-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * How to use the winning profile, with absolute paths (the lines work from any directory):
 * a program (bench program or --cmd) preloads the library; a TypeScript module loads it
 * through bun:ffi (no LD_PRELOAD), reading HAKMEM_* at load, and can set routing live.
 */
export function useLines(o: { kind: WorkloadKind; lib: string; profile: string; settings: Settings; params: readonly Param[] }): string[] {
  const profile = shellWord(o.profile);
  const lib = shellWord(o.lib);
  const routing = o.params.filter((p) => p.routing).map((p) => `${p.routing}: ${o.settings[p.env]}`);
  const live = routing.length ? `hakmem.setRouting({ ${routing.join(", ")} })` : "";
  if (o.kind === "program") return [`use it: env $(cat ${profile}) LD_PRELOAD=${lib} <program>`];
  const fresh = `env $(cat ${profile}) HAKMEM_LIB=${lib} bun <script.ts>`;
  if (o.kind === "in-process") {
    return [`use it: in the script, before the workload runs: ${live}`, `  or at start-up (hakmem reads HAKMEM_* when the library loads): ${fresh}`];
  }
  const lines = [`use it: ${fresh}  (a Bun script loads libhakmem.so through bun:ffi and reads HAKMEM_* when it loads; no LD_PRELOAD)`];
  if (live) lines.push(`  the routing thresholds can also be set live from the script: ${live}`);
  return lines;
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
