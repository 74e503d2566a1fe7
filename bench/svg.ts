// svg.ts — the chart of the ratios, written as SVG text (no browser): one line per row,
// a bar for hakmem's speed relative to the best peer, a mark for every peer, and a
// reference line at 1.0.
import { bestPeerValue, cellOf, type Section, speedRatio } from "./results.ts";

const COLORS: Record<string, string> = {
  hakmem: "#d62728", glibc: "#1f77b4", mimalloc: "#2ca02c", jemalloc: "#9467bd", tcmalloc: "#ff7f0e",
};

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

interface Line { label: string; section: string; ratios: Record<string, number> }

function chartLines(sections: Section[], allocators: string[]): Line[] {
  const lines: Line[] = [];
  for (const section of sections) {
    for (const row of section.rows) {
      const best = bestPeerValue(section, row, allocators);
      const ratios: Record<string, number> = {};
      for (const a of allocators) {
        const c = cellOf(row, a);
        if (c && best !== null) ratios[a] = speedRatio(section, c.value, best);
      }
      lines.push({ label: `${section.name} · ${row.name}`, section: section.name, ratios });
    }
  }
  return lines;
}

export function ratioChart(sections: Section[], allocators: string[], subtitle: string): string {
  const lines = chartLines(sections, allocators);
  const labelW = 290, plotW = 560, rowH = 18, top = 64, right = 56;
  const maxRatio = Math.min(4, Math.max(1.5, ...lines.flatMap((l) => Object.values(l.ratios))) * 1.05);
  const x = (r: number) => labelW + (Math.min(r, maxRatio) / maxRatio) * plotW;
  const height = top + lines.length * rowH + 40;
  const width = labelW + plotW + right;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="100%" height="100%" fill="white"/>`);
  out.push(`<text x="10" y="18" font-size="14" font-weight="bold">Speed relative to the best peer (1.0 = best of ${esc(allocators.filter((a) => a !== "hakmem").join(", "))})</text>`);
  out.push(`<text x="10" y="34" fill="#555">${esc(subtitle)}</text>`);
  allocators.forEach((a, i) => {
    const lx = 10 + i * 110;
    out.push(`<rect x="${lx}" y="42" width="10" height="10" fill="${COLORS[a] ?? "#333"}"/><text x="${lx + 14}" y="51">${esc(a)}</text>`);
  });
  for (let t = 0; t <= maxRatio + 1e-9; t += 0.5) {
    out.push(`<line x1="${x(t)}" y1="${top - 4}" x2="${x(t)}" y2="${top + lines.length * rowH}" stroke="${t === 1 ? "#000" : "#ddd"}" stroke-width="${t === 1 ? 1.5 : 1}"/>`);
    out.push(`<text x="${x(t)}" y="${top + lines.length * rowH + 14}" text-anchor="middle">${t.toFixed(1)}</text>`);
  }
  lines.forEach((line, i) => {
    const y = top + i * rowH;
    if (i > 0 && lines[i - 1].section !== line.section) {
      out.push(`<line x1="10" y1="${y}" x2="${width - 10}" y2="${y}" stroke="#bbb" stroke-dasharray="3,3"/>`);
    }
    out.push(`<text x="${labelW - 6}" y="${y + 12}" text-anchor="end">${esc(line.label)}</text>`);
    const h = line.ratios.hakmem;
    if (h !== undefined) {
      out.push(`<rect x="${labelW}" y="${y + 3}" width="${x(h) - labelW}" height="${rowH - 6}" fill="${COLORS.hakmem}" opacity="0.8"/>`);
      out.push(`<text x="${labelW + plotW + 8}" y="${y + 12}" fill="#000">${h.toFixed(2)}</text>`);
    } else {
      out.push(`<text x="${labelW + 4}" y="${y + 12}" fill="${COLORS.hakmem}">hakmem: error / not run</text>`);
    }
    for (const a of allocators) {
      const r = line.ratios[a];
      if (a === "hakmem" || r === undefined) continue;
      out.push(`<circle cx="${x(r)}" cy="${y + rowH / 2}" r="3.5" fill="${COLORS[a] ?? "#333"}"/>`);
    }
  });
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}
