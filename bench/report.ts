// report.ts — the text output: one table per section (allocator columns; each figure with
// its ratio to the best peer; peak RSS), the errors, and a short summary of where hakmem
// leads and trails. Also the same summary as Markdown for the README.
import { formatMiB, formatRatio, formatValue } from "./format.ts";
import { bestPeerValue, cellOf, lowestPeerRss, type Row, type Section, speedRatio } from "./results.ts";
import { geomean } from "./stats.ts";

const COL = 17;

function pad(s: string, w: number): string {
  return s.length >= w ? `${s} ` : s + " ".repeat(w - s.length);
}

function speedCell(section: Section, row: Row, alloc: string, best: number | null): string {
  const c = cellOf(row, alloc);
  if (!c) return row.errors.some((e) => e.allocator === alloc) ? "error" : "-";
  const ratio = best === null ? null : speedRatio(section, c.value, best);
  return `${formatValue(section.unit, c.value)} ${formatRatio(ratio)}`;
}

function rssCell(row: Row, alloc: string, low: number | null, field: "peakRssKb" | "finalRssKb"): string {
  const v = cellOf(row, alloc)?.[field] ?? null;
  if (v === null) return "-";
  return `${formatMiB(v)} ${formatRatio(low ? v / low : null)}`;
}

export function sectionTable(section: Section, allocators: string[]): string {
  const labelWidth = Math.max(24, ...section.rows.map((r) => r.name.length + 2));
  const lines: string[] = [];
  const direction = section.higherIsBetter ? "higher is better" : "lower is better";
  lines.push(`\n${section.title}`);
  lines.push(`  [${section.unit}, ${direction}; ×: speed relative to the best peer, RSS relative to the lowest peer]`);
  if (section.note) lines.push(`  ${section.note}`);
  lines.push(pad("", labelWidth) + allocators.map((a) => pad(a, COL)).join(""));
  const hasRss = section.rows.some((r) => r.samples.some((s) => s.peakRssKb !== null));
  const hasFinal = section.rows.some((r) => r.samples.some((s) => s.extra?.final_rss_kb !== undefined));
  for (const row of section.rows) {
    const best = bestPeerValue(section, row, allocators);
    lines.push(pad(row.name, labelWidth) + allocators.map((a) => pad(speedCell(section, row, a, best), COL)).join(""));
    if (hasRss) {
      const low = lowestPeerRss(row, allocators);
      lines.push(pad("  peak RSS MiB", labelWidth) + allocators.map((a) => pad(rssCell(row, a, low, "peakRssKb"), COL)).join(""));
    }
    if (hasFinal) {
      const low = lowestPeerRss(row, allocators, "finalRssKb");
      lines.push(pad("  final RSS MiB", labelWidth) + allocators.map((a) => pad(rssCell(row, a, low, "finalRssKb"), COL)).join(""));
    }
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
}

export function summaryRows(sections: Section[], allocators: string[]): SummaryRow[] {
  const out: SummaryRow[] = [];
  for (const section of sections) {
    for (const row of section.rows) {
      const h = cellOf(row, "hakmem");
      const bestValue = bestPeerValue(section, row, allocators);
      const bestPeer = allocators.find((a) => a !== "hakmem" && cellOf(row, a)?.value === bestValue) ?? null;
      const lowRss = lowestPeerRss(row, allocators);
      out.push({
        section: section.name, row: row.name, unit: section.unit,
        hakmem: h?.value ?? null, bestPeer, bestPeerValue: bestValue,
        ratio: h && bestValue !== null ? speedRatio(section, h.value, bestValue) : null,
        hakmemRssKb: h?.peakRssKb ?? null, lowestPeerRssKb: lowRss,
        rssRatio: h?.peakRssKb && lowRss ? h.peakRssKb / lowRss : null,
      });
    }
  }
  return out;
}

const GROUPS: [string, (section: string) => boolean][] = [
  ["FFI pairs (micro_ffi)", (s) => s === "micro_ffi"],
  ["native pairs (micro_kernel)", (s) => s === "micro_kernel"],
  ["workload programs", (s) => !s.startsWith("micro") && s !== "redis" && s !== "instructions"],
  ["instructions (callgrind)", (s) => s === "instructions"],
  ["redis", (s) => s === "redis"],
];

function rowName(r: SummaryRow): string {
  return `${r.section} ${r.row} ${formatRatio(r.ratio)}${r.bestPeer ? ` (vs ${r.bestPeer})` : ""}`;
}

export function summaryText(rows: SummaryRow[], errorCount: number): string {
  const lines = ["\nSummary — hakmem's speed relative to the best peer of each row (×1.00 = as fast as the best)"];
  const measured = rows.filter((r) => r.ratio !== null);
  for (const [label, inGroup] of GROUPS) {
    const group = measured.filter((r) => inGroup(r.section));
    if (group.length === 0) continue;
    const leads = group.filter((r) => r.ratio! >= 1).length;
    lines.push(`  ${pad(label, 30)} geometric mean ${formatRatio(geomean(group.map((r) => r.ratio!)))}, leads ${leads}/${group.length} rows`);
  }
  if (measured.length === 0) lines.push("  hakmem has no measured rows (see the errors above).");
  const leads = measured.filter((r) => r.ratio! >= 1).sort((a, b) => b.ratio! - a.ratio!);
  const trails = measured.filter((r) => r.ratio! < 1).sort((a, b) => a.ratio! - b.ratio!);
  if (leads.length) lines.push(`  leads:  ${leads.slice(0, 6).map(rowName).join("; ")}${leads.length > 6 ? `; … ${leads.length - 6} more` : ""}`);
  if (trails.length) lines.push(`  trails most: ${trails.slice(0, 6).map(rowName).join("; ")}${trails.length > 6 ? `; … ${trails.length - 6} more` : ""}`);
  const rss = rows.filter((r) => r.rssRatio !== null);
  if (rss.length) {
    const within = rss.filter((r) => r.rssRatio! <= 1.1).length;
    lines.push(`  peak RSS within 1.1× of the lowest peer: ${within}/${rss.length} rows (geometric mean ${formatRatio(geomean(rss.map((r) => r.rssRatio!)))})`);
  }
  if (errorCount > 0) lines.push(`  ${errorCount} run(s) failed or could not prove their allocator: reported as errors above, not as numbers.`);
  return lines.join("\n");
}

export function summaryMarkdown(rows: SummaryRow[]): string {
  const out = [
    "| section | row | hakmem | best peer | hakmem ÷ best (speed) | hakmem peak RSS MiB | lowest peer RSS MiB |",
    "|---|---|---:|---|---:|---:|---:|",
  ];
  for (const r of rows) {
    const hv = r.hakmem === null ? "error" : formatValue(r.unit, r.hakmem);
    const peer = r.bestPeer && r.bestPeerValue !== null ? `${r.bestPeer} ${formatValue(r.unit, r.bestPeerValue)}` : "-";
    const unit = r.hakmem === null || r.unit === "ns/pair" ? "" : ` ${r.unit}`;
    out.push(`| ${r.section} | ${r.row} | ${hv}${unit} | ${peer} | ${formatRatio(r.ratio) || "-"} | ${formatMiB(r.hakmemRssKb)} | ${formatMiB(r.lowestPeerRssKb)} |`);
  }
  return out.join("\n");
}
