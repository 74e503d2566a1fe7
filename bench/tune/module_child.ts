// module_child.ts — one run of a user's TypeScript workload module in a fresh Bun
// process, so that hakmem reads the candidate's HAKMEM_* environment at its start:
//   bun bench/tune/module_child.ts '{"path":"w.ts","threads":2,"args":{},"exportName":"default"}'
// Starts a ThreadPool (libhakmem.so through bun:ffi, $HAKMEM_LIB or the repository build),
// runs the module's function on every thread once, prints a RESULT line for that phase
// (ops/s, its page faults, its peak RSS) and, with HAKMEM_STATS=1, hakmem's report.
import * as hakmem from "../../src/index.ts";
import { ThreadPool } from "../../src/threads.ts";
import { moduleOnAll } from "../../src/workloads.ts";
import { measurePhase, resultLine } from "./phase.ts";

interface ChildSpec {
  path: string;
  threads: number;
  args?: unknown;
  exportName?: string;
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? "{}") as ChildSpec;
  const pool = await ThreadPool.start(spec.threads);
  try {
    const phase = await measurePhase(() => moduleOnAll(pool, spec.path, spec.args, spec.exportName));
    console.log(resultLine("module", phase));
  } finally {
    await pool.close();
  }
  // A library loaded through bun:ffi does not print its exit report: print it here.
  if (process.env.HAKMEM_STATS === "1") hakmem.printStats();
}

await main();
