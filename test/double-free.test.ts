// double-free.test.ts — double frees across threads, through every interface (issue 21).
// Regression: from Bun, worker 1 freed 100 blocks worker 0 allocated and worker 2 freed the
// same pointers again; none was refused, nothing was counted, and worker 0's next collect of
// its pages' remote-free lists aborted the process with "heap corruption: a page's
// remote-free list is longer than its blocks in use" (3 of 3 runs). The second copies had
// gone onto the owner's remote-free list a second time (each rewrote its block's link, so
// the list looped back on itself), and collect tested its length bound before the bit that
// says "free already". Now each second copy is refused at the call (RangeError) when it is
// found, or dropped and counted (doubleFreesContained) when the owner collects it, and the
// pool closes cleanly. Under LD_PRELOAD the same sequence aborts with "double free of".
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { resolve } from "node:path";
import * as h from "../src/index.ts";
import { ThreadPool } from "../src/threads.ts";
import { explain, runC, systemMode } from "./helpers/c.ts";

const HANDOFF = resolve(import.meta.dir, "../src/examples/handoff.ts");
const COUNTING = resolve(import.meta.dir, "fixtures/double_free.ts");

let pool: ThreadPool;
beforeAll(async () => {
  pool = await ThreadPool.start(3);
});
afterAll(async () => {
  await pool?.close();
});

describe("a double free from a second worker (bun:ffi)", () => {
  for (const size of [64, 3000]) {
    test(`${size}-byte blocks: refused or contained and counted, never a corrupt page list`, async () => {
      const before = h.stats().global.doubleFreesContained;
      const [made] = await pool.runAll([{ kind: "module", path: HANDOFF, exportName: "allocate", args: { count: 100, sizes: [size] } }]);
      const pointers = made.value as number[];
      const first = await pool.run(1, { kind: "module", path: COUNTING, exportName: "releaseCounting", args: { pointers } });
      expect(first.value).toBe(0);
      const second = await pool.run(2, { kind: "module", path: COUNTING, exportName: "releaseCounting", args: { pointers } });
      // every worker gives its cache back, so the owner collects every copy
      await pool.runAll([0, 1, 2].map(() => ({ kind: "module" as const, path: HANDOFF, exportName: "settle", args: {} })));
      await pool.runAll([{ kind: "module", path: HANDOFF, exportName: "allocate", args: { count: 400, sizes: [size] } }]);
      await pool.runAll([0, 1, 2].map(() => ({ kind: "module" as const, path: HANDOFF, exportName: "settle", args: {} })));
      const contained = h.stats().global.doubleFreesContained - before;
      expect((second.value as number) + contained).toBeGreaterThan(0);
      expect(second.value as number).toBeLessThanOrEqual(100);
    });
  }

  test("the pool still works and closes cleanly afterwards", async () => {
    const [r] = await pool.runAll([{ kind: "random-mixed", cycles: 5000, ws: 100, min: 16, max: 4096, seed: 3 }]);
    expect(r.ops).toBe(5000);
  });
});

describe.skipIf(systemMode())("a double free from a second thread in C", () => {
  // Regression: check mode reported it as "write past the requested size (block trailer
  // overwritten)" (the freed pattern had covered the trailer).
  for (const size of [64, 3000]) {
    test(`check mode names it a double free (${size}-byte blocks)`, async () => {
      const r = await runC("cross_double_free", ["free", size, 100], { env: { HAKMEM_CHECK: "1" }, timeoutMs: 30_000 });
      expect(r.stderr, explain(r)).toMatch(/^hakmem: CHECK: double free of 0x[0-9a-f]+ \((tiny|mid) tier/);
      expect(r.stderr, explain(r)).not.toContain("trailer");
      expect(r.signal, explain(r)).toBe("SIGABRT");
    });
  }

  for (const how of ["free", "hak_free"]) {
    for (const flush of ["", "flush"]) {
      test(`${how}${flush ? " after the first thread flushed" : ""}: a double free is reported, not heap corruption`, async () => {
        const r = await runC("cross_double_free", [how, 64, 100, ...(flush ? [flush] : [])], { timeoutMs: 30_000 });
        expect(r.stderr, explain(r)).not.toContain("heap corruption");
        // preloaded, hakmem is the program's malloc: a double free found in a batch aborts as glibc's does
        expect(r.signal, explain(r)).toBe("SIGABRT");
        expect(r.stderr, explain(r)).toMatch(/^hakmem: double free of 0x[0-9a-f]+ \(tiny tier, class \d+, 64-byte blocks, thread \d+\)\n$/);
      });
    }
  }
});
