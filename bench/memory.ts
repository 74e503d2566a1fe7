// memory.ts — hakmem's memory report in the bench: the "hakmem: memory" lines of the
// HAKMEM_STATS=1 summary (zig/process/memory_report.zig, at the run's exit) become sample extras
// (mem_<part>_kib), and the summary prints the split for the row whose peak RSS is
// furthest above the lowest peer's (the first place to look for memory going astray).
import type { Section } from "./results.ts";
import type { SummaryRow } from "./report.ts";

/** mem_<name>_kib (and mem_unexplained_pct) from the memory lines of a hakmem run's stderr. */
export function parseMemoryLines(stderr: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of stderr.split("\n")) {
    if (!line.startsWith("hakmem: memory ")) continue;
    for (const m of line.matchAll(/(\w+)_kib=(-?\d+)/g)) out[`mem_${m[1]}_kib`] = Number(m[2]);
    const pct = line.match(/unexplained_kib=-?\d+ \(([\d.]+)%\)/);
    if (pct) out.mem_unexplained_pct = Number(pct[1]);
  }
  return out;
}

const PARTS = ["live_requested", "internal_waste", "thread_cache", "page_free", "empty_dirty", "large_retained", "large_overhead", "metadata", "unexplained"];

/** The split of hakmem's memory at exit for the row with the largest RSS ratio, or "". */
export function memorySplitText(sections: Section[], rows: SummaryRow[]): string {
  const worst = rows.filter((r) => r.rssRatio !== null).sort((a, b) => b.rssRatio! - a.rssRatio!)[0];
  if (!worst) return "";
  const row = sections.find((s) => s.name === worst.section)?.rows.find((r) => r.name === worst.row);
  const sample = row?.samples.find((s) => s.allocator === "hakmem" && s.extra?.mem_allocator_resident_kib !== undefined);
  if (!sample?.extra) return "";
  const e = sample.extra as Record<string, number>;
  const parts = PARTS.map((p) => `${p} ${e[`mem_${p}_kib`] ?? "?"}`).join(", ");
  return `\nhakmem's memory at exit of ${worst.section} ${worst.row} (peak RSS ×${worst.rssRatio!.toFixed(2)} the lowest peer), KiB: ` +
    `rss ${e.mem_rss_kib}, allocator resident ${e.mem_allocator_resident_kib} (not the allocator's: ${e.mem_not_allocator_kib}) = ${parts} ` +
    `(unexplained ${e.mem_unexplained_pct ?? "?"}%)`;
}
