// threads.test.ts — real OS threads through Bun Workers (src/threads.ts, src/workloads.ts):
// pointers handed between workers, remote frees in the stats, live bytes back to where
// they started, native multi-thread workloads, user modules, errors and clean shutdown.
// Live bytes are compared with a baseline: only hak_* calls allocate from hakmem here.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { resolve } from "node:path";
import * as h from "../src/index.ts";
import { ThreadPool } from "../src/threads.ts";
import * as workloads from "../src/workloads.ts";
import { spawnBun } from "./helpers/spawn.ts";

const HANDOFF = resolve(import.meta.dir, "../src/examples/handoff.ts");
const RETURNS = resolve(import.meta.dir, "fixtures/returns.ts");
const REPO = resolve(import.meta.dir, "..");
const SIZES = [24, 100, 700, 3000, 40_000, 1_500_000]; // tiny, mid and large under the defaults

let pool: ThreadPool;
let baseline: h.Stats;

beforeAll(async () => {
  baseline = h.stats();
  pool = await ThreadPool.start(4);
});

afterAll(async () => {
  await pool?.close();
});

/** Remote frees of the tiers whose blocks have an owning thread (large mappings have none). */
function remoteFrees(s: h.Stats): number {
  return s.tiny.remoteFrees + s.mid.remoteFrees;
}

/** How many of `count` blocks cycling through SIZES go to tiny or mid. */
function ownedShare(count: number): number {
  return (count / SIZES.length) * SIZES.filter((size) => h.route(size) !== "large").length;
}

/** Flushes every worker's thread cache (remote frees are counted at the flush). */
async function settleAll(): Promise<void> {
  await pool.runAll([0, 1, 2, 3].map(() => ({ kind: "module" as const, path: HANDOFF, exportName: "settle", args: {} })));
}

function expectLiveAtBaseline(): void {
  const now = h.stats();
  for (const tier of ["tiny", "mid", "large"] as const) {
    expect({ tier, liveBytes: now[tier].liveBytes }).toEqual({ tier, liveBytes: baseline[tier].liveBytes });
    expect({ tier, liveBlocks: now[tier].liveBlocks }).toEqual({ tier, liveBlocks: baseline[tier].liveBlocks });
  }
}

describe("thread pool", () => {
  test("starts long-lived workers, each with the library loaded", async () => {
    expect(pool.size).toBe(4);
    const results = await pool.runAll([{ kind: "noop" }, { kind: "noop" }, { kind: "noop" }, { kind: "noop" }]);
    expect(results.map((r) => r.thread)).toEqual([0, 1, 2, 3]);
  });

  test("workers hand pointers to each other: every tiny/mid free is remote and live bytes return", async () => {
    const before = h.stats();
    const made = await pool.runAll([0, 1, 2, 3].map((thread) => ({
      kind: "module" as const,
      path: HANDOFF,
      exportName: "allocate",
      args: { count: 300, sizes: SIZES },
    })));
    const mid = h.stats();
    expect(h.totalOf(mid, "liveBlocks") - h.totalOf(before, "liveBlocks")).toBe(1200);
    // thread i frees what thread i+1 allocated
    const freed = await pool.runAll(made.map((_, i) => ({
      kind: "module" as const,
      path: HANDOFF,
      exportName: "release",
      args: { pointers: made[(i + 1) % 4].value as number[] },
    })));
    expect(freed.reduce((sum, r) => sum + r.ops, 0)).toBe(1200);
    // A remote free is counted when the freeing thread's cache gives the block back to its
    // page (a flush); collect(true) on each worker flushes now.
    await settleAll();
    const after = h.stats();
    expect(remoteFrees(after) - remoteFrees(before)).toBe(ownedShare(1200));
    for (const tier of ["tiny", "mid"] as const) {
      const expected = (1200 / SIZES.length) * SIZES.filter((size) => h.route(size) === tier).length;
      expect({ tier, remote: after[tier].remoteFrees - before[tier].remoteFrees }).toEqual({ tier, remote: expected });
    }
    expectLiveAtBaseline();
  });

  test("the main thread frees blocks a worker allocated, and a worker frees the main thread's", async () => {
    const before = h.stats();
    const [made] = await pool.runAll([{ kind: "module", path: HANDOFF, exportName: "allocate", args: { count: 60, sizes: SIZES } }]);
    for (const p of made.value as number[]) {
      expect(h.view(p, 1)[0]).toBe(0);
      h.free(p);
    }
    // The freed blocks sit in this thread's cache, which would hand them out again: flush
    // them back to the worker's pages first, so `mine` comes from this thread's pages.
    h.collect(true);
    const mine = SIZES.map((size) => h.alloc(size));
    await pool.run(2, { kind: "module", path: HANDOFF, exportName: "release", args: { pointers: mine } });
    await settleAll();
    expect(remoteFrees(h.stats()) - remoteFrees(before)).toBe(ownedShare(60) + ownedShare(SIZES.length));
    expectLiveAtBaseline();
  });

  test("a task's result carries ops, elapsed time and a stats delta", async () => {
    const [r] = await pool.runAll([{ kind: "random-mixed", cycles: 20_000, ws: 200, min: 16, max: 2048, seed: 5 }]);
    expect(r.kind).toBe("random-mixed");
    expect(r.ops).toBe(20_000);
    expect(r.elapsedNs).toBeGreaterThan(0);
    expect(r.wallNs).toBeGreaterThanOrEqual(r.elapsedNs);
    // the kernel empties its slots at the end (allocs = frees); sizes 16..2048 are tiny or mid
    const allocs = r.statsDelta.tiny.allocs + r.statsDelta.mid.allocs;
    expect(allocs).toBeGreaterThan(1000);
    expect(r.statsDelta.tiny.frees + r.statsDelta.mid.frees).toBe(allocs);
    expect(r.statsDelta.large.allocs).toBe(0);
  });

  test("errors in a task reject with the worker's message; the worker keeps serving", async () => {
    await expect(pool.run(1, { kind: "module", path: HANDOFF, exportName: "release", args: { pointers: [0] } }))
      .rejects.toThrow(/null or invalid pointer/);
    await expect(pool.run(1, { kind: "module", path: "/nonexistent/module.ts" })).rejects.toThrow();
    await expect(pool.run(1, { kind: "module", path: HANDOFF, exportName: "nope" })).rejects.toThrow(/no function export/);
    await expect(pool.run(9, { kind: "noop" })).rejects.toThrow(RangeError);
    const r = await pool.run(1, { kind: "noop" });
    expect(r.thread).toBe(1);
  });
});

// Regression: a module function returning a non-number gave ops 0 silently.
describe("module tasks: what a workload function may return", () => {
  test("a number, { ops, value } or nothing", async () => {
    expect((await pool.run(0, { kind: "module", path: RETURNS })).ops).toBe(1);
    const r = await pool.run(0, { kind: "module", path: RETURNS, exportName: "returnsOps", args: { ops: 7 } });
    expect([r.ops, r.value]).toEqual([7, "kept"]);
    expect((await pool.run(0, { kind: "module", path: RETURNS, exportName: "returnsNothing" })).ops).toBe(0);
  });

  test("anything else rejects with a TypeError message naming the function and what it returned", async () => {
    const cases: [string, RegExp][] = [
      ["returnsString", /export "returnsString" returned "12"; a workload function returns a number of operations, \{ ops\?, value\? \}/],
      ["returnsArray", /returned an array/],
      ["returnsOtherObject", /returned an object with keys count/],
      ["returnsBadOps", /returned ops "5"; ops must be a non-negative finite number/],
      ["returnsNaN", /returned ops NaN/],
    ];
    for (const [exportName, message] of cases) {
      await expect(pool.run(1, { kind: "module", path: RETURNS, exportName })).rejects.toThrow(message);
    }
    expect((await pool.run(1, { kind: "noop" })).thread).toBe(1); // the worker keeps serving
  });
});

// Regression: module paths were resolved against the current directory, so the README's
// "src/examples/handoff.ts" worked only from the repository root.
describe("module paths", () => {
  test("a relative path is resolved against the calling module, like an import", async () => {
    const [r] = await pool.runAll([{ kind: "module", path: "./fixtures/returns.ts" }]);
    expect(r.ops).toBe(1);
    expect((await pool.run(0, { kind: "module", path: "../test/fixtures/returns.ts" })).ops).toBe(1);
    expect((await workloads.moduleOnAll(pool, "fixtures/returns.ts")).ops).toBe(4);
  });

  test("file: URLs and URL objects are taken as they are", async () => {
    expect((await pool.run(0, { kind: "module", path: import.meta.resolve("./fixtures/returns.ts") })).ops).toBe(1);
    expect((await pool.run(0, { kind: "module", path: new URL("./fixtures/returns.ts", import.meta.url) })).ops).toBe(1);
  });

  test("a missing module is reported where it was looked for", async () => {
    await expect(pool.run(0, { kind: "module", path: "./fixtures/none.ts" }))
      .rejects.toThrow(`module ./fixtures/none.ts not found: ${resolve(import.meta.dir, "fixtures/none.ts")} (resolved against ${import.meta.dir})`);
  });

  test("from another directory, a script's relative path still finds its module", async () => {
    const script = `
      import { ThreadPool } from ${JSON.stringify(`${REPO}/src/threads.ts`)};
      const pool = await ThreadPool.start(1);
      const [r] = await pool.runAll([{ kind: "module", path: "./fixtures/returns.ts", exportName: "returnsOps", args: { ops: 3 } }]);
      console.log("ops", r.ops);
      await pool.close();
    `;
    const file = resolve(import.meta.dir, `.caller-${process.pid}.ts`);
    await Bun.write(file, script);
    try {
      const run = Bun.spawnSync([process.execPath, file], { cwd: "/", stdout: "pipe", stderr: "pipe" });
      expect({ code: run.exitCode, out: run.stdout.toString(), err: run.stderr.toString() }).toEqual({ code: 0, out: "ops 3\n", err: "" });
    } finally {
      await Bun.file(file).delete();
    }
  });
});

describe("native multi-thread workloads", () => {
  test("random-mixed on every thread", async () => {
    const report = await workloads.randomMixed(pool, { cycles: 20_000, ws: 500, min: 16, max: 4096 });
    expect(report.results.map((r) => r.thread).sort()).toEqual([0, 1, 2, 3]); // one run on each thread
    expect(report.ops).toBe(80_000);
    // every block the kernels allocated was freed (the kernel empties its slots at the end)
    const allocs = h.totalOf(report.stats, "allocs");
    expect(allocs).toBeGreaterThan(4 * 500);
    expect(h.totalOf(report.stats, "frees")).toBe(allocs);
    expectLiveAtBaseline();
  });

  test("Larson rotation frees blocks across threads", async () => {
    const before = h.stats();
    const report = await workloads.larson(pool, { nblocks: 500, min: 16, max: 2048, rounds: 3, replacements: 2000 });
    expect(report.ops).toBe(4 * 3 * 2000);
    await settleAll(); // remote frees are counted when the caches that took them flush
    expect(remoteFrees(h.stats()) - remoteFrees(before)).toBeGreaterThan(1000);
    expectLiveAtBaseline();
  });

  // A fresh pool: a thread cache may hand out a block another thread freed into it, so on
  // workers that already traded blocks (the tests above) some consumed blocks are the
  // consumer's own. Fresh producers only hand out blocks of their own pages.
  test("producer/consumer: every consumed block is a remote free", async () => {
    const fresh = await ThreadPool.start(4);
    try {
      const before = h.stats();
      const report = await workloads.producerConsumer(fresh, { count: 20_000, min: 16, max: 4096, capacity: 256 });
      const consumed = report.results.filter((r) => r.kind === "consume").reduce((s, r) => s + r.ops, 0);
      expect(consumed).toBe(40_000);
      // Consumers batch their frees in their caches: flush them (remote frees are counted then).
      await fresh.runAll([0, 1, 2, 3].map(() => ({ kind: "module" as const, path: HANDOFF, exportName: "settle", args: {} })));
      // (+ at most the 2 queues: the main thread may build them from blocks a worker freed)
      expect(remoteFrees(h.stats()) - remoteFrees(before) - 40_000).toBeWithin(0, 3);
    } finally {
      await fresh.close();
    }
    expectLiveAtBaseline();
  });

  test("producer/consumer on a used pool: every consumed block is freed", async () => {
    const report = await workloads.producerConsumer(pool, { count: 20_000, min: 16, max: 4096, capacity: 256 });
    const consumed = report.results.filter((r) => r.kind === "consume").reduce((s, r) => s + r.ops, 0);
    expect(consumed).toBe(40_000);
    expect(remoteFrees(report.stats)).toBeGreaterThan(20_000);
    expectLiveAtBaseline();
  });

  test("a user module on every thread", async () => {
    const report = await workloads.moduleOnAll(pool, HANDOFF, { count: 10, sizes: [32] }, "allocate");
    expect(report.ops).toBe(40);
    for (const r of report.results) for (const p of r.value as number[]) h.free(p);
    expectLiveAtBaseline();
  });
});

describe("shutdown", () => {
  test("blocks outlive their thread: freed after the pool closed", async () => {
    const small = await ThreadPool.start(2);
    const [a, b] = await small.runAll([
      { kind: "module", path: HANDOFF, exportName: "allocate", args: { count: 50, sizes: SIZES } },
      { kind: "module", path: HANDOFF, exportName: "allocate", args: { count: 50, sizes: SIZES } },
    ]);
    await small.close();
    await expect(small.run(0, { kind: "noop" })).rejects.toThrow(/closed/);
    for (const p of [...(a.value as number[]), ...(b.value as number[])]) h.free(p);
    expectLiveAtBaseline();
  });

  test("start validates its count", async () => {
    await expect(ThreadPool.start(0)).rejects.toThrow(RangeError);
  });

  // Regression: a script that forgot pool.close() never exited (the Workers kept it alive).
  // The 60 s limit only catches a hang; the script normally ends at once.
  test("a script that forgets close() exits when its work is done", async () => {
    const script = `
      import { ThreadPool } from ${JSON.stringify(`${REPO}/src/threads.ts`)};
      const pool = await ThreadPool.start(2);
      const results = await pool.runAll([{ kind: "noop" }, { kind: "random-mixed", cycles: 1000, ws: 10, min: 16, max: 64 }]);
      console.log("done", results.length);
    `;
    const r = await spawnBun(["-e", script], { timeoutMs: 60_000 });
    expect({ code: r.code, signal: r.signal, out: r.stdout, err: r.stderr }).toEqual({ code: 0, signal: null, out: "done 2\n", err: "" });
  }, 70_000);
});
