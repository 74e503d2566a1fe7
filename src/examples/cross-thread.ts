// cross-thread.ts — blocks allocated on one thread and freed on another. Real OS threads
// (Bun Workers) run producer/consumer pairs through a native queue, then hand each other
// blocks from a TypeScript module; the tables show the remote frees hakmem counted.
//
//   bun src/examples/cross-thread.ts [threads] [blocksPerProducer]
import { resolve } from "node:path";
import * as hakmem from "../index.ts";
import { TIERS } from "../abi.ts";
import { ThreadPool } from "../threads.ts";
import * as workloads from "../workloads.ts";
import { integerArg, noMoreArgs } from "./args.ts";

const USAGE = "bun src/examples/cross-thread.ts [threads: 2..64, default 4] [blocksPerProducer: 1..10^8, default 200000]";
noMoreArgs(USAGE, 2);
const threads = integerArg(USAGE, 0, "threads", 4, 2, 64);
const count = integerArg(USAGE, 1, "blocksPerProducer", 200_000, 1, 1e8);
const tiers = TIERS;

function tierTable(stats: hakmem.Stats) {
  return tiers.map((tier) => ({
    tier,
    allocs: stats[tier].allocs,
    frees: stats[tier].frees,
    "remote frees": stats[tier].remoteFrees,
    "live blocks Δ": stats[tier].liveBlocks,
  }));
}

const pool = await ThreadPool.start(threads);
try {
  const pc = await workloads.producerConsumer(pool, { count, min: 16, max: 4096, capacity: 1024 });
  console.log(`producer/consumer: ${threads} threads, ${count} blocks per producer, ${(pc.wallNs / 1e6).toFixed(1)} ms`);
  console.table(pc.results.map((r) => ({ thread: r.thread, role: r.kind, blocks: r.ops, "ns/block": (r.elapsedNs / r.ops).toFixed(1) })));
  console.table(tierTable(pc.stats));

  const module = resolve(import.meta.dir, "handoff.ts");
  const sizes = [32, 200, 900, 5000, 60_000, 2_000_000];
  const before = hakmem.stats();
  const made = await pool.runAll(Array.from({ length: threads }, () => ({
    kind: "module" as const, path: module, exportName: "allocate", args: { count: 600, sizes },
  })));
  await pool.runAll(made.map((_, i) => ({
    kind: "module" as const, path: module, exportName: "release", args: { pointers: made[(i + 1) % threads].value },
  })));
  console.log(`hand-off: thread i frees the 600 blocks thread i+1 allocated (sizes ${sizes.join(", ")} B);`);
  console.log("large blocks are one mapping each with no owning thread, so their frees never count as remote");
  console.table(tierTable(hakmem.statsDelta(before, hakmem.stats())));
} finally {
  await pool.close();
}
