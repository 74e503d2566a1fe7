// svg.ts — the chart of the ratios, written as SVG text (no browser): one line per row,
// a bar for hakmem's speed relative to the best peer, a mark for every peer, and a
// reference line at 1.0. The axis ends just past the largest ratio (at most 4); peer marks
// are drawn last, outlined, so the best peer's mark sits visibly on the 1.0 line. With two
// runs or more, each allocator's min–max is drawn as a thin range through its mark (hakmem's
// over its bar): where hakmem's range and the best peer's overlap, the ratio is noise.
import { bestPeerValue, cellOf, rangeOf, type Section, speedRatio } from "./results.ts";

const COLORS: Record<string, string> = {
  hakmem: "#d62728", glibc: "#1f77b4", mimalloc: "#2ca02c", jemalloc: "#9467bd", tcmalloc: "#ff7f0e",
};

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

interface Line { label: string; section: string; ratios: Record<string, number>; spreads: Record<string, [number, number]>; best: string | null }

function chartLines(sections: Section[], allocators: string[]): Line[] {
  const lines: Line[] = [];
  for (const section of sections) {
    for (const row of section.rows) {
      const best = bestPeerValue(section, row, allocators);
      const ratios: Record<string, number> = {};
      const spreads: Record<string, [number, number]> = {};
      for (const a of allocators) {
        const c = cellOf(row, a);
        if (c && best !== null) ratios[a] = speedRatio(section, c.value, best);
        const range = rangeOf(row, a);
        if (range && best !== null) {
          const [lo, hi] = range.map((v) => speedRatio(section, v, best));
          spreads[a] = [Math.min(lo, hi), Math.max(lo, hi)];
        }
      }
      const bestName = allocators.find((a) => a !== "hakmem" && ratios[a] === 1) ?? null;
      lines.push({ label: `${section.name} · ${row.name}`, section: section.name, ratios, spreads, best: bestName });
    }
  }
  return lines;
}

export function ratioChart(sections: Section[], allocators: string[], subtitle: string): string {
  const lines = chartLines(sections, allocators);
  const labelW = 290, plotW = 560, rowH = 18, top = 64, right = 120;
  const dataMax = Math.max(1, ...lines.flatMap((l) => Object.values(l.ratios)).filter(Number.isFinite));
  const maxRatio = Math.min(4, Math.ceil(dataMax * 1.06 * 10) / 10);
  const step = maxRatio <= 1.6 ? 0.1 : maxRatio <= 2.5 ? 0.25 : 0.5;
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
  const ticks = Math.round(maxRatio / step);
  for (let i = 0; i <= ticks; i++) {
    const t = Math.round(i * step * 100) / 100;
    const one = Math.abs(t - 1) < 1e-9;
    out.push(`<line x1="${x(t)}" y1="${top - 4}" x2="${x(t)}" y2="${top + lines.length * rowH}" stroke="${one ? "#888" : "#e4e4e4"}" stroke-width="1"${one ? ` stroke-dasharray="4,2"` : ""}/>`);
    if (i % (step < 0.2 ? 2 : 1) === 0 || one) out.push(`<text x="${x(t)}" y="${top + lines.length * rowH + 14}" text-anchor="middle"${one ? ` font-weight="bold"` : ""}>${step < 0.25 ? t.toFixed(1) : t.toFixed(2).replace(/0$/, "")}</text>`);
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
      out.push(`<text x="${labelW + plotW + 8}" y="${y + 12}" fill="#000">${h.toFixed(2)}${line.best ? ` <tspan fill="#777">vs ${esc(line.best)}</tspan>` : ""}</text>`);
    } else {
      out.push(`<text x="${labelW + 4}" y="${y + 12}" fill="${COLORS.hakmem}">hakmem: error / not run</text>`);
    }
    for (const a of allocators) {
      const range = line.spreads[a];
      if (!range) continue;
      const cy = a === "hakmem" ? y + rowH / 2 - 1 : y + rowH / 2 + 1;
      out.push(`<line class="spread" data-allocator="${esc(a)}" x1="${x(range[0])}" y1="${cy}" x2="${x(range[1])}" y2="${cy}" stroke="${a === "hakmem" ? "#000" : COLORS[a] ?? "#333"}" stroke-width="1.5"/>`);
    }
    // the best peer last: on top of the others and of the 1.0 line, with a dark outline
    const peers = allocators.filter((a) => a !== "hakmem" && line.ratios[a] !== undefined).sort((a, b) => Number(a === line.best) - Number(b === line.best));
    for (const a of peers) {
      const best = a === line.best;
      out.push(`<circle cx="${x(line.ratios[a])}" cy="${y + rowH / 2}" r="${best ? 4.5 : 3.5}" fill="${COLORS[a] ?? "#333"}" stroke="${best ? "#000" : "#fff"}" stroke-width="1"/>`);
    }
  });
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}
