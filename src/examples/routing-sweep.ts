// routing-sweep.ts — how the tiny/mid boundary changes a workload: for each tinyMax the
// random-mixed kernel runs inside the library and the table shows time per operation,
// where the allocations went, and the memory the tiers mapped.
//
//   bun src/examples/routing-sweep.ts [cycles] [maxSize]
import * as hakmem from "../index.ts";
import { integerArg, noMoreArgs } from "./args.ts";

const USAGE = "bun src/examples/routing-sweep.ts [cycles: 1..10^9, default 400000] [maxSize: 16..2^20, default 8192]";
noMoreArgs(USAGE, 2);
const cycles = integerArg(USAGE, 0, "cycles", 400_000, 1, 1e9);
const maxSize = integerArg(USAGE, 1, "maxSize", 8192, 16, 1 << 20);
const workingSet = 2000;
const tinyMaxes = [64, 128, 256, 512, 1024, 2048, 4096, 8192];

const original = hakmem.routing();
const limit = original.tinyMaxLimit;

function percent(part: number, whole: number): string {
  return whole === 0 ? "-" : `${((100 * part) / whole).toFixed(1)}%`;
}

const rows = [];
try {
  for (const tinyMax of tinyMaxes.filter((t) => t <= Math.min(limit, original.midMax))) {
    hakmem.setRouting({ tinyMax });
    hakmem.collect(true);
    hakmem.resetStats();
    const ns = hakmem.kernels.randomMixed({ cycles, ws: workingSet, min: 16, max: maxSize, seed: 42 });
    const s = hakmem.stats();
    const allocs = s.tiny.allocs + s.mid.allocs + s.large.allocs;
    rows.push({
      tinyMax,
      "ns/op": (ns / cycles).toFixed(1),
      "tiny allocs": percent(s.tiny.allocs, allocs),
      "mid allocs": percent(s.mid.allocs, allocs),
      "tiny KiB mapped": Math.round(s.tiny.mappedBytes / 1024),
      "mid KiB mapped": Math.round(s.mid.mappedBytes / 1024),
    });
  }
} finally {
  hakmem.setRouting({ tinyMax: original.tinyMax, midMax: original.midMax });
}

console.log(`random-mixed: ${cycles} cycles, ${workingSet} slots, sizes 16..${maxSize} B (hakmem ${hakmem.version()})`);
console.table(rows);
