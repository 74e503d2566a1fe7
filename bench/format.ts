// format.ts — number formatting shared by the tables, the Markdown summary and the chart.

export function formatValue(unit: string, v: number): string {
  if (!Number.isFinite(v)) return "-";
  if (unit === "ns/pair") return v >= 100 ? `${v.toFixed(0)} ns` : `${v.toFixed(1)} ns`;
  if (unit === "instr/pair") return v.toFixed(0);
  if (unit === "s") {
    if (v < 1) return `${v < 0.01 ? (v * 1000).toFixed(1) : (v * 1000).toFixed(0)} ms`;
    return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} s`;
  }
  return si(v);
}

export function si(v: number): string {
  const abs = Math.abs(v);
  if (abs >= 1e9) return `${(v / 1e9).toFixed(2)}G`;
  if (abs >= 1e6) return `${(v / 1e6).toFixed(2)}M`;
  if (abs >= 1e3) return `${(v / 1e3).toFixed(1)}k`;
  return v.toFixed(1);
}

export function formatMiB(kb: number | null): string {
  if (kb === null || !Number.isFinite(kb)) return "-";
  const mib = kb / 1024;
  return mib >= 100 ? mib.toFixed(0) : mib.toFixed(1);
}

export function formatRatio(r: number | null): string {
  if (r === null || !Number.isFinite(r)) return "";
  return `×${r.toFixed(2)}`;
}

/** A count or a small ratio: 3 significant digits below 1000, SI suffixes above. */
export function formatNumber(v: number | null): string {
  if (v === null || !Number.isFinite(v)) return "-";
  if (Math.abs(v) >= 1000) return si(v);
  if (v === 0) return "0";
  return Math.abs(v) >= 100 ? v.toFixed(0) : Number(v.toPrecision(3)).toString();
}
