// misuse.test.ts — a program's heap misuse under LD_PRELOAD, in normal mode (no
// HAKMEM_CHECK): every double free is reported in one line and the process aborts, as
// glibc's does; nothing hangs, crashes elsewhere, or hands a block out twice. Each case of
// test/c/heap_misuse.c runs in every tier (tiny, mid, large). Regressions: before the free
// path kept a key per free block and a bit per block on its page, a non-adjacent double
// free looped the cache flush forever, and flushed or cross-thread double frees and a
// write to a freed block's link crashed later.
import { describe, expect, test } from "bun:test";
import * as h from "../src/index.ts";
import { explain, runC, systemMode } from "./helpers/c.ts";

// Blocks of the first two sizes sit in a thread cache when freed, so a second free is
// always found. A big mid block or a large one goes back to its page or mapping at once,
// and that memory may serve another block before the second free (pthread_create's own
// allocations often take it): then no allocator can tell, and the case must only be
// contained (or reported), never crash, hang or hand a block out twice.
const SIZES = { tiny: 64, mid: 3000, "mid-big": 200_000, large: 5_000_000 } as const;
type Tier = keyof typeof SIZES;
const ALWAYS_CAUGHT: Tier[] = ["tiny", "mid"];

const DOUBLE_FREE = /^hakmem: double free of 0x[0-9a-f]+ \((tiny|mid|large) tier, .*thread \d+\)\n$/;
const NOT_A_BLOCK = /^hakmem: free of a pointer into hakmem's heap that is not a live block \(an interior pointer, or a block freed earlier\) 0x[0-9a-f]+ \(.*thread \d+\)\n$/;
const REALLOC_FREED = /^hakmem: realloc of a freed block 0x[0-9a-f]+ \(.*thread \d+\)\n$/;
const LINK_WRITTEN = /^hakmem: heap corruption: the free-list link of a freed block was overwritten \(a write after free\?\) \(block 0x[0-9a-f]+, thread \d+\); run with HAKMEM_CHECK=1/;
const KEY_WRITTEN = /^hakmem: heap corruption: the key word of a free block was overwritten: a write after free(, or an overflow of the \d+-byte block before it, 0x[0-9a-f]+)? \(block 0x[0-9a-f]+, thread \d+\); run with HAKMEM_CHECK=1/;

/** The lines hakmem may print (then abort) for a case; [] = must run on, contained. */
function reports(name: string): RegExp[] {
  if (name.startsWith("double_free")) return [DOUBLE_FREE, NOT_A_BLOCK]; // the second: its page was given back in between
  if (name === "interior_free") return [NOT_A_BLOCK];
  if (name === "realloc_freed") return [REALLOC_FREED, NOT_A_BLOCK];
  if (name === "write_link") return [LINK_WRITTEN]; // only when the block sits on a page list (a cached block has no link)
  if (name === "write_link_8") return [KEY_WRITTEN]; // when a cache flush or refill meets the block before it is handed out again
  return [];
}

function mustReport(name: string, tier: Tier): boolean {
  if (name === "interior_free") return true;
  return ALWAYS_CAUGHT.includes(tier) && (name.startsWith("double_free") || name === "realloc_freed");
}

const CASES = [
  "clean",
  "double_free_adjacent",
  "double_free_apart",
  "double_free_flushed",
  "double_free_thread",
  "double_free_both_threads",
  "interior_free",
  "realloc_freed",
  "write_link",
  "write_link_8",
];

describe.skipIf(systemMode())("heap misuse under LD_PRELOAD, normal mode", () => {
  for (const [tier, size] of Object.entries(SIZES) as [Tier, number][]) {
    for (const name of CASES) {
      // A large block's freed mapping is gone (or parked): writing to it faults, as with glibc's mmapped chunks.
      if (tier === "large" && name.startsWith("write_link")) continue;
      const lines = reports(name);
      const must = mustReport(name, tier);
      test(`${tier} ${name}: ${must ? "reported, abort" : lines.length ? "reported or contained" : "contained"}`, async () => {
        const r = await runC("heap_misuse", [name, String(size)], { timeoutMs: 30_000 });
        const reported = r.signal === "SIGABRT" && lines.some((line) => line.test(r.stderr));
        if (must || (lines.length > 0 && r.signal !== null)) {
          expect(reported, explain(r)).toBe(true);
        } else {
          expect(r.stdout, explain(r)).toContain("CONTAINED");
          expect(r.code, explain(r)).toBe(0);
          expect(r.stderr, explain(r)).toBe("");
        }
      });
    }
  }
});

describe("double free through the library (bun:ffi)", () => {
  test("a second free of a cached, flushed or large block throws a RangeError and changes nothing", () => {
    for (const size of [48, 3000, 200_000, 3_000_000]) {
      const p = h.alloc(size);
      h.free(p);
      expect(() => h.free(p)).toThrow(/is not a live block \(already freed/);
      const blocks = Array.from({ length: 600 }, () => h.alloc(size > 100_000 ? 64 : size));
      for (const b of blocks) h.free(b);
      h.collect(true); // flushes this thread's cache: p is on its page (or its mapping is gone)
      expect(() => h.free(p)).toThrow(/is not (a live block|memory owned by hakmem)/);
      const again = [h.alloc(size), h.alloc(size)];
      expect(new Set(again).size).toBe(2);
      for (const b of again) h.free(b);
    }
  });
});
