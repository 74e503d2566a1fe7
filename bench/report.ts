// report.ts — the text output: one table per section (allocator columns; each figure with
// its ratio to the best peer; peak RSS), the errors, and a short summary of where hakmem
// leads and trails. Also the same summary as Markdown for the README.
import { formatMiB, formatNumber, formatRatio, formatValue } from "./format.ts";
import { bestPeerValue, cellOf, lowestPeerMetric, lowestPeerRss, metricOf, type Row, type Section, speedRatio, withinNoise } from "./results.ts";
import { geomean } from "./stats.ts";

const COL = 17;

function pad(s: string, w: number): string {
  return s.length >= w ? `${s} ` : s + " ".repeat(w - s.length);
}

function speedCell(section: Section, row: Row, alloc: string, best: number | null): string {
  const c = cellOf(row, alloc);
  if (!c) {
    if (row.samples.some((x) => x.allocator === alloc && x.mismatch)) return "≠ output";
    return row.errors.some((e) => e.allocator === alloc) ? "error" : "-";
  }
  const ratio = best === null ? null : speedRatio(section, c.value, best);
  return `${formatValue(section.unit, c.value)} ${formatRatio(ratio)}`;
}

function rssCell(row: Row, alloc: string, low: number | null, field: "peakRssKb" | "finalRssKb"): string {
  const v = cellOf(row, alloc)?.[field] ?? null;
  if (v === null) return "-";
  return `${formatMiB(v)} ${formatRatio(low ? v / low : null)}`;
}

function metricCell(row: Row, alloc: string, key: string, low: number | null): string {
  const v = metricOf(row, alloc, key);
  if (v === null) return "-";
  return `${formatNumber(v)} ${formatRatio(low ? v / low : null)}`;
}

function spreadCell(section: Section, row: Row, alloc: string): string {
  const v = row.samples.filter((x) => x.allocator === alloc && !x.mismatch).map((x) => x.value);
  if (v.length < 2) return v.length ? "(1 run)" : "-";
  const lo = formatValue(section.unit, Math.min(...v)), hi = formatValue(section.unit, Math.max(...v));
  const unit = lo.match(/ \S+$/)?.[0];
  return unit && hi.endsWith(unit) ? `${lo.slice(0, -unit.length)}–${hi}` : `${lo}–${hi}`;
}

function outputCell(row: Row, alloc: string): string {
  const all = row.samples.filter((x) => x.allocator === alloc);
  if (all.length === 0) return "-";
  const same = all.filter((x) => !x.mismatch).length;
  return same === all.length ? `same ${same}/${all.length}` : `≠ ${all.length - same}/${all.length} differ`;
}

/** The legend under a section's title: what each figure and each × means. */
function legend(section: Section): string {
  const direction = section.higherIsBetter ? "higher is better" : "lower is better";
  const what = section.unit === "s" ? "wall time" : section.unit;
  return `  [${what}, ${direction}; speed ×best: relative to the best peer (>1 = faster); RSS, faults, CPU ×lowest: relative to the lowest peer (>1 = more)]`;
}

export function sectionTable(section: Section, allocators: string[]): string {
  const labelWidth = Math.max(26, ...section.rows.map((r) => r.name.length + 2));
  const lines: string[] = [];
  lines.push(`\n${section.title}`);
  lines.push(legend(section));
  if (section.note) lines.push(`  ${section.note}`);
  lines.push(pad("", labelWidth) + allocators.map((a) => pad(a, COL)).join(""));
  const hasRss = section.rows.some((r) => r.samples.some((s) => s.peakRssKb !== null));
  const hasFinal = section.rows.some((r) => r.samples.some((s) => s.extra?.final_rss_kb !== undefined));
  const line = (label: string, cell: (a: string) => string) => pad(label, labelWidth) + allocators.map((a) => pad(cell(a), COL)).join("");
  for (const row of section.rows) {
    const best = bestPeerValue(section, row, allocators);
    lines.push(line(row.name, (a) => speedCell(section, row, a, best)));
    if (section.spread) lines.push(line("  min–max", (a) => spreadCell(section, row, a)));
    for (const m of section.metrics ?? []) {
      if (!row.samples.some((x) => x.extra?.[m.key] !== undefined)) continue;
      const low = lowestPeerMetric(row, allocators, m.key);
      lines.push(line(`  ${m.label} ×lowest`, (a) => metricCell(row, a, m.key, low)));
    }
    if (hasRss) {
      const low = lowestPeerRss(row, allocators);
      lines.push(line("  peak RSS MiB ×lowest", (a) => rssCell(row, a, low, "peakRssKb")));
    }
    if (hasFinal) {
      const low = lowestPeerRss(row, allocators, "finalRssKb");
      lines.push(line("  final RSS MiB ×lowest", (a) => rssCell(row, a, low, "finalRssKb")));
    }
    if (section.outputCheck) lines.push(line("  stdout = reference", (a) => outputCell(row, a)));
  }
  lines.push(...errorLines(section));
  return lines.join("\n");
}

function errorLines(section: Section): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const row of section.rows) {
    for (const e of row.errors) {
      const key = `${e.allocator}\0${e.message}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push(`  ERROR ${e.allocator} (${row.name}, run ${e.run}): ${e.message.split("\n").join("\n    ")}`);
    }
  }
  return out;
}

export interface SummaryRow {
  section: string; row: string; unit: string;
  hakmem: number | null; bestPeer: string | null; bestPeerValue: number | null; ratio: number | null;
  hakmemRssKb: number | null; lowestPeerRssKb: number | null; rssRatio: number | null;
  /** the section's first extra metric (page faults/op, CPU s …): hakmem ÷ lowest peer */
  metric?: string; metricRatio?: number | null;
  /** why hakmem has no value: "error", or "≠ output" when every run's stdout differed */
  hakmemMissing?: string;
  /** hakmem's min–max range overlaps the best peer's: the ratio is within the noise */
  withinNoise?: boolean;
}

/** A ratio as printed in summaries: "×0.98", or "×0.98 within noise" when the ranges overlap. */
export function ratioText(r: SummaryRow): string {
  const ratio = formatRatio(r.ratio);
  return ratio && r.withinNoise ? `${ratio} within noise` : ratio;
}

export function summaryRows(sections: Section[], allocators: string[]): SummaryRow[] {
  const out: SummaryRow[] = [];
  for (const section of sections) {
    for (const row of section.rows) {
      const h = cellOf(row, "hakmem");
      const bestValue = bestPeerValue(section, row, allocators);
      const bestPeer = allocators.find((a) => a !== "hakmem" && cellOf(row, a)?.value === bestValue) ?? null;
      const lowRss = lowestPeerRss(row, allocators);
      const m = section.metrics?.[0];
      const hm = m ? metricOf(row, "hakmem", m.key) : null;
      const lm = m ? lowestPeerMetric(row, allocators, m.key) : null;
      const missing = h ? undefined : row.samples.some((x) => x.allocator === "hakmem" && x.mismatch) ? "≠ output" : "error";
      out.push({
        section: section.name, row: row.name, unit: section.unit,
        hakmem: h?.value ?? null, bestPeer, bestPeerValue: bestValue,
        ratio: h && bestValue !== null ? speedRatio(section, h.value, bestValue) : null,
        hakmemRssKb: h?.peakRssKb ?? null, lowestPeerRssKb: lowRss,
        rssRatio: h?.peakRssKb && lowRss ? h.peakRssKb / lowRss : null,
        ...(m ? { metric: m.label, metricRatio: hm !== null && lm ? hm / lm : null } : {}),
        ...(missing ? { hakmemMissing: missing } : {}),
        ...(h && withinNoise(row, bestPeer) ? { withinNoise: true } : {}),
      });
    }
  }
  return out;
}

const GROUPS: [string, (section: string) => boolean][] = [
  ["FFI pairs (micro_ffi)", (s) => s === "micro_ffi"],
  ["native pairs (micro_kernel)", (s) => s === "micro_kernel"],
  ["workload programs (bench/c)", (s) => !s.startsWith("micro") && !NOT_WORKLOADS.includes(s)],
  ["instructions (callgrind)", (s) => s === "instructions"],
  ["real programs (wall time)", (s) => s === "programs"],
  ["redis", (s) => s === "redis"],
  ["your commands (--cmd)", (s) => s === "cmd"],
];
const NOT_WORKLOADS = ["redis", "instructions", "programs", "cmd"];

function rowName(r: SummaryRow): string {
  return `${r.section} ${r.row} ${ratioText(r)}${r.bestPeer ? ` (vs ${r.bestPeer})` : ""}`;
}

export function summaryText(rows: SummaryRow[], errorCount: number): string {
  const lines = ["\nSummary — hakmem's speed ×best: relative to the best peer of each row (×1.00 = as fast as the best, >1 = faster)"];
  const measured = rows.filter((r) => r.ratio !== null);
  for (const [label, inGroup] of GROUPS) {
    const group = measured.filter((r) => inGroup(r.section));
    if (group.length === 0) continue;
    const leads = group.filter((r) => r.ratio! >= 1).length;
    const noise = group.filter((r) => r.withinNoise).length;
    lines.push(`  ${pad(label, 30)} geometric mean ${formatRatio(geomean(group.map((r) => r.ratio!)))}, leads ${leads}/${group.length} rows${noise ? ` (${noise} within noise)` : ""}`);
  }
  if (measured.length === 0 && rows.length > 0) lines.push("  hakmem has no measured rows (see the errors above).");
  const leads = measured.filter((r) => r.ratio! >= 1).sort((a, b) => b.ratio! - a.ratio!);
  const trails = measured.filter((r) => r.ratio! < 1).sort((a, b) => a.ratio! - b.ratio!);
  if (leads.length) lines.push(`  leads:  ${leads.slice(0, 6).map(rowName).join("; ")}${leads.length > 6 ? `; … ${leads.length - 6} more` : ""}`);
  if (trails.length) lines.push(`  trails most: ${trails.slice(0, 6).map(rowName).join("; ")}${trails.length > 6 ? `; … ${trails.length - 6} more` : ""}`);
  const rss = rows.filter((r) => r.rssRatio !== null);
  if (rss.length) {
    const within = rss.filter((r) => r.rssRatio! <= 1.1).length;
    lines.push(`  peak RSS ×lowest peer (>1 = more memory): within ×1.10 on ${within}/${rss.length} rows, geometric mean ${formatRatio(geomean(rss.map((r) => r.rssRatio!)))}`);
  }
  for (const metric of [...new Set(rows.filter((r) => r.metric).map((r) => r.metric!))]) {
    const m = rows.filter((r) => r.metric === metric && r.metricRatio !== null && r.metricRatio !== undefined);
    if (m.length === 0) continue;
    const within = m.filter((r) => r.metricRatio! <= 1.1).length;
    lines.push(`  ${metric} ×lowest peer: within ×1.10 on ${within}/${m.length} rows, geometric mean ${formatRatio(geomean(m.map((r) => r.metricRatio!)))}`);
  }
  if (errorCount > 0) lines.push(`  ${errorCount} run(s) failed or could not prove their allocator: reported as errors above, not as numbers.`);
  return lines.join("\n");
}

export function summaryMarkdown(rows: SummaryRow[]): string {
  const out = [
    "| section | row | hakmem | best peer | speed ×best peer | hakmem peak RSS MiB | lowest peer RSS MiB | RSS ×lowest peer |",
    "|---|---|---:|---|---:|---:|---:|---:|",
  ];
  for (const r of rows) {
    const hv = r.hakmem === null ? (r.hakmemMissing ?? "error") : formatValue(r.unit, r.hakmem);
    const peer = r.bestPeer && r.bestPeerValue !== null ? `${r.bestPeer} ${formatValue(r.unit, r.bestPeerValue)}` : "-";
    const unit = r.hakmem === null || r.unit === "ns/pair" || r.unit === "s" ? "" : ` ${r.unit}`;
    out.push(`| ${r.section} | ${r.row} | ${hv}${unit} | ${peer} | ${ratioText(r) || "-"} | ${formatMiB(r.hakmemRssKb)} | ${formatMiB(r.lowestPeerRssKb)} | ${formatRatio(r.rssRatio) || "-"} |`);
  }
  return out.join("\n");
}

/** Every allocator's medians for a section of commands (programs, --cmd): wall time (speed
 * ×best peer), CPU time, peak RSS and page faults; ≠ where the output differed. */
export function commandsMarkdown(section: Section, allocators: string[]): string {
  const out = [`| ${section.name} | ${allocators.join(" | ")} |`, `|---|${allocators.map(() => "---:").join("|")}|`];
  for (const row of section.rows) {
    const best = bestPeerValue(section, row, allocators);
    const cells = allocators.map((a) => {
      const c = cellOf(row, a);
      if (!c) return speedCell(section, row, a, best);
      const cpu = metricOf(row, a, "cpu_secs"), faults = metricOf(row, a, "faults");
      const ratio = best === null ? "" : ` ${formatRatio(speedRatio(section, c.value, best))}`;
      return `${formatValue(section.unit, c.value)}${ratio}<br>CPU ${formatNumber(cpu)} s · ${formatMiB(c.peakRssKb)} MiB · ${formatNumber(faults)} faults`;
    });
    out.push(`| ${row.name} | ${cells.join(" | ")} |`);
  }
  return out.join("\n");
}
