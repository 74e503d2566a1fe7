// phase.ts — measures one phase of a TypeScript workload inside the current process:
// ops and wall time, page faults (process.resourceUsage, all threads) and the peak RSS
// of the phase alone (VmHWM, reset before the phase through /proc/self/clear_refs).
import { readFileSync, writeFileSync } from "node:fs";
import type { RunReport } from "../workloads.ts";

export interface PhaseResult {
  ops: number;
  secs: number;
  faults: number;
  peakRssKb: number;
}

function faultCount(): number {
  const u = process.resourceUsage();
  return u.minorPageFault + u.majorPageFault;
}

/** Resets the kernel's peak-RSS mark to the current RSS (Linux ≥ 4.0); false if refused. */
function resetPeakRss(): boolean {
  try {
    writeFileSync("/proc/self/clear_refs", "5");
    return true;
  } catch {
    return false;
  }
}

function peakRssKb(): number {
  const m = readFileSync("/proc/self/status", "utf8").match(/^VmHWM:\s*(\d+)/m);
  return m ? Number(m[1]) : 0;
}

export async function measurePhase(body: () => Promise<RunReport>): Promise<PhaseResult> {
  resetPeakRss();
  const faults0 = faultCount();
  const report = await body();
  const faults = faultCount() - faults0;
  return { ops: Math.max(1, report.ops), secs: report.wallNs / 1e9, faults, peakRssKb: peakRssKb() };
}

/** The RESULT line the bench programs print, for a phase measured here. */
export function resultLine(bench: string, r: PhaseResult): string {
  const opsPerSec = r.secs > 0 ? r.ops / r.secs : 0;
  return `RESULT bench=${bench} ops=${r.ops} secs=${r.secs.toFixed(6)} ops_per_sec=${opsPerSec.toFixed(1)} peak_rss_kb=${r.peakRssKb} faults=${r.faults}`;
}
