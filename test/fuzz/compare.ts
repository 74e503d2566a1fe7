// compare.ts — the statistics invariant: the library's live blocks and bytes per tier
// (hakmem.stats(), less a baseline) against the model's totals.
import type { Stats, Tier } from "../../src/index.ts";
import { TIERS } from "../../src/abi.ts";
import type { Totals } from "./model.ts";

/**
 * Compares live stats (minus `baseline`) with the model totals; returns the discrepancy or
 * null. Known blocks must match exactly per tier; the surplus per tier must be explained by
 * the blocks of unknown tier (count per tier consistent with their lowest tiers, bytes
 * within their bounds). In check mode (`checking`) usable sizes are the requested sizes
 * while the stats count whole blocks, so a block's usable size is only a lower bound of
 * its bytes: counts are compared as above, bytes must be at least the model's.
 */
export function compareStats(now: Stats, baseline: Stats, totals: Totals, checking = false): string | null {
  const liveBlocks: Record<Tier, number> = { tiny: 0, mid: 0, large: 0 };
  const liveBytes: Record<Tier, number> = { tiny: 0, mid: 0, large: 0 };
  const surplusBlocks: Record<Tier, number> = { tiny: 0, mid: 0, large: 0 };
  const surplusBytes: Record<Tier, number> = { tiny: 0, mid: 0, large: 0 };
  for (const t of TIERS) {
    liveBlocks[t] = now[t].liveBlocks - baseline[t].liveBlocks;
    liveBytes[t] = now[t].liveBytes - baseline[t].liveBytes;
    surplusBlocks[t] = liveBlocks[t] - totals.blocks[t];
    surplusBytes[t] = liveBytes[t] - totals.bytes[t];
  }
  const report = () =>
    TIERS.map((t) => `${t}: stats live ${liveBlocks[t]} blocks/${liveBytes[t]} B, model ${totals.blocks[t]}/${totals.bytes[t]} B`).join("; ") +
    (totals.unknownBlocks ? `; aligned of unknown tier: ${totals.unknownBlocks} blocks, ${totals.unknownMinBytes}..${totals.unknownMaxBytes} B` : "") +
    (checking ? " (check mode: bytes are lower bounds)" : "");
  const differ = () => `stats differ from the model: ${report()}`;
  if (totals.unknownBlocks === 0 && !checking) {
    for (const t of TIERS) if (surplusBlocks[t] !== 0 || surplusBytes[t] !== 0) return differ();
    return null;
  }
  let cumulativeStats = 0;
  let cumulativeModel = 0;
  for (const t of TIERS) {
    if (surplusBlocks[t] < 0 || surplusBytes[t] < 0) return differ();
    if (checking ? liveBlocks[t] === 0 && liveBytes[t] !== 0 : (surplusBlocks[t] === 0) !== (surplusBytes[t] === 0)) return differ();
    cumulativeStats += surplusBlocks[t];
    cumulativeModel += totals.unknownByMinTier[t];
    if (cumulativeStats > cumulativeModel) return `aligned blocks counted in a tier below their request's: ${report()}`;
  }
  if (cumulativeStats !== totals.unknownBlocks) return differ();
  const bytes = surplusBytes.tiny + surplusBytes.mid + surplusBytes.large;
  if (!checking && (bytes < totals.unknownMinBytes || bytes > totals.unknownMaxBytes)) return differ();
  return null;
}
