// phase.ts — measures one phase of a TypeScript workload inside the current process:
// ops, wall and CPU time, page faults (process.resourceUsage, all threads) and the peak RSS
// of the phase alone (VmHWM, reset before the phase through /proc/self/clear_refs).
import { readFileSync, writeFileSync } from "node:fs";
import type { RunReport } from "../../src/workloads.ts";

export interface PhaseResult {
  ops: number;
  secs: number;
  faults: number;
  peakRssKb: number;
  /** user + system CPU seconds of the whole process (every thread) during the phase */
  cpuSecs: number;
}

function counters(): { faults: number; cpuUs: number } {
  const u = process.resourceUsage();
  return { faults: u.minorPageFault + u.majorPageFault, cpuUs: u.userCPUTime + u.systemCPUTime };
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
  const before = counters();
  const report = await body();
  const after = counters();
  return {
    ops: Math.max(1, report.ops),
    secs: report.wallNs / 1e9,
    faults: after.faults - before.faults,
    peakRssKb: peakRssKb(),
    cpuSecs: (after.cpuUs - before.cpuUs) / 1e6,
  };
}

/** The RESULT line the bench programs print, for a phase measured here. */
export function resultLine(bench: string, r: PhaseResult): string {
  const opsPerSec = r.secs > 0 ? r.ops / r.secs : 0;
  return `RESULT bench=${bench} ops=${r.ops} secs=${r.secs.toFixed(6)} ops_per_sec=${opsPerSec.toFixed(1)} peak_rss_kb=${r.peakRssKb} faults=${r.faults} cpu_secs=${r.cpuSecs.toFixed(6)}`;
}
