// fuzz.test.ts — a short run of the randomized API tests (test/fuzz/): a few seeds on one
// thread in this process (every invariant, stats included, after every step), a threaded
// run and a check-mode run in child processes (bun test/fuzz/cli.ts: a corrupted heap can
// hang thread exit, and check mode must be set before the first allocation; the threaded
// run loads the checked library, libhakmem-checked.so, whose validators run at slow paths
// and thread exit), and the
// minimal reproductions of bugs the fuzzer found.
// A failure message starts with the FAIL line and ends with the command that replays it.
import { describe, expect, test } from "bun:test";
import { resolve } from "node:path";
import * as hak from "../src/index.ts";
import { runFuzz } from "./fuzz/index.ts";
import { REPO, spawnBun } from "./helpers/spawn.ts";

const TIMEOUT_MS = 60_000;

interface ChildRun {
  code: number | null;
  signal: string | null;
  output: string;
}

/** The checked library (ReleaseSafe, validators at slow paths): the threaded run uses it. */
const CHECKED_LIB = resolve(REPO, "zig-out/lib/libhakmem-checked.so");

async function runChild(args: string[], timeoutMs: number, env: Record<string, string> = {}): Promise<ChildRun> {
  const r = await spawnBun(args, { env: { ...process.env, ...env }, timeoutMs });
  return { code: r.code, signal: r.signal, output: r.stdout + r.stderr };
}

describe("randomized API sequences", () => {
  for (const seed of [1, 2, 3]) {
    test(`one thread, seed ${seed}: 6000 steps, every invariant after every step`, () => {
      let failure = "";
      try {
        runFuzz({ seed, ops: 6000 });
      } catch (e) {
        failure = `${(e as Error).message}\nreplay: bun test/fuzz/cli.ts --seed ${seed} --ops 6000`;
      }
      expect(failure).toBe("");
    }, TIMEOUT_MS);
  }

  test("4 threads, seed 7: own sequences, handoffs, stats at every barrier (child process, checked library)", async () => {
    const r = await runChild(["test/fuzz/cli.ts", "--seed", "7", "--ops", "16000", "--threads", "4", "--hang-seconds", "30"], 50_000, { HAKMEM_LIB: CHECKED_LIB });
    const status = r.signal ? `killed by ${r.signal}` : `exit ${r.code}`;
    expect(`${status}\n${r.output}`).toBe(`exit 0\n${r.output}`);
    expect(r.output).toContain("OK seed=7 threads=4");
  }, TIMEOUT_MS);

  test("check mode, seed 11: correct use gets no report (child process: the mode is set before the first allocation)", async () => {
    const r = await runChild(["test/fuzz/cli.ts", "--seed", "11", "--ops", "5000", "--check"], 50_000);
    const status = r.signal ? `killed by ${r.signal}` : `exit ${r.code}`;
    expect(`${status}\n${r.output}`).toBe(`exit 0\n${r.output}`);
    expect(r.output).toContain("OK seed=11 threads=1");
    expect(r.output).not.toContain("CHECK");
  }, TIMEOUT_MS);
});

// Minimal reproductions of what the fuzzer found (see each test's comment).
describe("fuzzer findings", () => {
  // alignedAlloc(alignment > 64 KiB, 0) went to a large mapping of exactly `offset` bytes:
  // the block started at the end of its mapping, so owns() and usableSize() rejected it and
  // free() could not release it (found by: bun test/fuzz/cli.ts --seed 1 --ops 5000).
  test("alignedAlloc(2^17..2^22, 0) returns a live block that can be freed", () => {
    const rejected: string[] = [];
    for (let shift = 17; shift <= 22; shift++) {
      const p = hak.alignedAlloc(2 ** shift, 0);
      if (!hak.owns(p)) rejected.push(`alignedAlloc(2^${shift}, 0) = 0x${p.toString(16)}: owns() is false`);
      else hak.free(p);
    }
    expect(rejected).toEqual([]);
  });

  // A thread that frees a block it does not own pushes it on the page's thread_free list;
  // a second free right after is accepted (only page.free is checked), the list loops on
  // itself, and the owner hangs in Page.collect (thread exit or refill)
  // (found by: bun test/fuzz/cli.ts --seed 7 --ops 20000 --threads 2). 600 KB: a bin without
  // a thread cache, so the block goes straight to thread_free (found by: bun
  // test/fuzz/cli.ts --seed 3 --ops 6000 --threads 3). Child process: the corrupted heap can hang.
  for (const size of [64, 600_000]) {
    test(`a ${size}-byte block freed twice by a thread that does not own it: the second free throws`, async () => {
      const script = `
        import { ThreadPool } from "${REPO}/src/threads.ts";
        import { dlopen } from "bun:ffi";
        const handoff = "${REPO}/src/examples/handoff.ts";
        const pool = await ThreadPool.start(2);
        await pool.run(1, { kind: "module", path: handoff, exportName: "allocate", args: { count: 1, sizes: [16] } });
        const [made] = await pool.runAll([{ kind: "module", path: handoff, exportName: "allocate", args: { count: 1, sizes: [${size}] } }]);
        await pool.run(1, { kind: "module", path: handoff, exportName: "release", args: { pointers: made.value } });
        let second = "accepted";
        try { await pool.run(1, { kind: "module", path: handoff, exportName: "release", args: { pointers: made.value } }); }
        catch (e) { second = String(e).includes("not a live block") ? "rejected" : String(e); }
        console.log("second free: " + second);
        dlopen("libc.so.6", { _exit: { args: ["i32"], returns: "void" } }).symbols._exit(0);
      `;
      const r = await runChild(["-e", script], 30_000);
      expect(r.output).toContain("second free: rejected");
    }, TIMEOUT_MS);
  }

  // The large cache resizes itself every 32 large allocations. When a window ended on a
  // cache hit with a shrinking limit, the eviction could pick the very mapping being
  // handed out: the caller got unmapped memory (found by: bun test/fuzz/cli.ts --seed 7
  // --ops 16000 --threads 4 --phases 8). A fresh process, so the 32nd lookup is the hit.
  test("a large cache hit that ends a sizing window is handed out live", async () => {
    const script = `
      import * as hak from "${REPO}/src/index.ts";
      const MiB = 1024 * 1024;
      const held = [];
      for (let i = 0; i < 30; i++) held.push(hak.alloc(1.5 * MiB));   // lookups 1..30: misses
      const big = hak.alloc(12 * MiB);                                   // 31: miss
      hak.free(big);                                                     // cached (16 MiB limit)
      const again = hak.alloc(12 * MiB);                                 // 32: hit, window ends
      const ok = hak.owns(again) && hak.usableSize(again) >= 12 * MiB;
      if (ok) { hak.view(again, 12 * MiB).fill(7); hak.free(again); }
      for (const p of held) hak.free(p);
      console.log("hit block: " + (ok ? "live" : "not live"));
    `;
    const r = await runChild(["-e", script], 30_000);
    expect(r.output).toContain("hit block: live");
  }, TIMEOUT_MS);
});
