// hardening.test.ts — normal mode's checks at no cost per call (issue 21): a thread cache
// checks the key word of every block it gives back to a page (flush) or takes from one
// (refill), so a linear overflow of a live block that rewrote the free block after it is
// reported there, naming the overflowed block (test/c/free_key_overflow.c).
import { describe, expect, test } from "bun:test";
import { explain, runC, systemMode } from "./helpers/c.ts";

function addresses(stdout: string): { a: string; b: string } {
  const m = stdout.match(/A=(0x[0-9a-f]+) B=(0x[0-9a-f]+)/);
  if (!m) throw new Error(`no A=/B= line in\n${stdout}`);
  return { a: m[1], b: m[2] };
}

describe.skipIf(systemMode())("a free block's key word overwritten by an overflow of the block before it", () => {
  for (const when of ["flush", "refill"]) {
    test(`found at a cache ${when}: one line naming both blocks, then abort`, async () => {
      const r = await runC("free_key_overflow", [when]);
      expect(r.signal, explain(r)).toBe("SIGABRT");
      const { a, b } = addresses(r.stdout);
      expect(r.stderr, explain(r)).toContain(`hakmem: heap corruption: the key word of a free block was overwritten: a write after free, or an overflow of the 64-byte block before it, ${a} (block ${b}, thread `);
      expect(r.stdout).not.toContain("NOT DETECTED");
    });
  }

  test("no false report: the same frees without the overflow run to the end quietly", async () => {
    const r = await runC("free_key_overflow", ["clean"]);
    expect(r.code, explain(r)).toBe(0);
    expect(r.stderr, explain(r)).toBe("");
    expect(r.stdout).toContain("NOT DETECTED");
  });
});
