// format.ts — number formatting shared by the tables, the Markdown summary and the chart.

export function formatValue(unit: string, v: number): string {
  if (!Number.isFinite(v)) return "-";
  if (unit === "ns/pair") return v >= 100 ? `${v.toFixed(0)} ns` : `${v.toFixed(1)} ns`;
  if (unit === "instr/pair") return v.toFixed(0);
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
