// memory.ts — the memory report (hak_memory_report, zig/process/memory_report.zig) as a plain
// object, named after src/abi.ts's MEMORY_PART_NAMES (generated from zig/abi.zig), and
// as text. `unexplained` is signed here (the library writes it as two's complement).
import { native } from "./ffi.ts";
import { HAK_MEM_PARTS, MEMORY_PART_NAMES, type MemoryReport } from "./abi.ts";

export type { MemoryReport } from "./abi.ts";

function camelCase(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

const KEYS = MEMORY_PART_NAMES.map(camelCase) as (keyof MemoryReport)[];
const buffer = new BigUint64Array(HAK_MEM_PARTS);

/** The report, read now (walks the heaps and measures hakmem's mappings: a few ms). */
export function readMemory(): MemoryReport {
  const written = native.hak_memory_report(buffer, buffer.length);
  if (written !== HAK_MEM_PARTS) throw new Error(`hakmem.memory: the library wrote ${written} values, expected ${HAK_MEM_PARTS}`);
  const out: Record<string, number> = {};
  KEYS.forEach((key, i) => (out[key] = Number(key === "unexplained" ? BigInt.asIntN(64, buffer[i]!) : buffer[i]!)));
  return out as unknown as MemoryReport;
}

/** The parts that add up to allocatorResident (with unexplained). */
export const MEMORY_PARTS = [
  "liveRequested", "internalWaste", "threadCache", "pageFree", "emptyDirty", "largeRetained", "largeOverhead", "metadata",
] as const satisfies readonly (keyof MemoryReport)[];

/** The report as a small table: each part in KiB and as a share of the allocator's resident memory. */
export function formatMemory(r: MemoryReport): string {
  const kib = (n: number) => `${Math.round(n / 1024)}`.padStart(10);
  const pct = (n: number) => (r.allocatorResident > 0 ? `${((100 * n) / r.allocatorResident).toFixed(1)}%` : "-").padStart(7);
  const lines = [`${"part".padEnd(18)} ${"KiB".padStart(10)} ${"share".padStart(7)}`];
  for (const key of [...MEMORY_PARTS, "unexplained"] as const) lines.push(`${key.padEnd(18)} ${kib(r[key])} ${pct(r[key])}`);
  lines.push(`${"allocatorResident".padEnd(18)} ${kib(r.allocatorResident)} ${pct(r.allocatorResident)}`);
  lines.push(`${"rss (kernel)".padEnd(18)} ${kib(r.rss)}   (not the allocator's: ${Math.round(r.notAllocator / 1024)} KiB — program, stacks, libc)`);
  return lines.join("\n");
}
