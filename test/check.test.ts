// Check mode (HAKMEM_CHECK): each misuse in test/c/check_misuse.c is reported with one
// clear line naming the problem, the pointer and its tier; HAKMEM_CHECK=1 then aborts,
// =warn carries on. Normal mode runs the others quietly; a double free or a free of a pointer
// that is no block is caught in every mode (one line, then abort, like glibc).
import { describe, expect, test } from "bun:test";
import { explain, runC, systemMode } from "./helpers/c.ts";

const cases: [name: string, message: RegExp][] = [
  ["double_free", /hakmem: CHECK: double free of 0x[0-9a-f]+ \(tiny tier, class \d+, \d+-byte blocks/],
  ["double_free_later", /hakmem: CHECK: double free of 0x[0-9a-f]+ \(tiny tier/],
  ["interior", /hakmem: CHECK: free of an interior pointer \(not the start of a block\) 0x[0-9a-f]+ \(tiny tier, class \d+, \d+-byte blocks, offset 8/],
  ["realloc_interior", /hakmem: CHECK: free of an interior pointer \(not the start of a block\) 0x[0-9a-f]+ \(tiny tier/],
  ["foreign", /hakmem: CHECK: free of a pointer hakmem does not own 0x[0-9a-f]+ \(in a loaded file's code or static data, not heap memory, thread \d+\)/],
  // Regression: a stack buffer freed (before or after the first malloc) was reported by
  // nothing, and glibc then segfaulted: the environment was read only at the first
  // malloc, and warn mode handed every foreign pointer to glibc.
  ["stack", /hakmem: CHECK: free of a pointer hakmem does not own 0x[0-9a-f]+ \(on the calling thread's stack, not heap memory, thread \d+\)/],
  ["stack_first", /hakmem: CHECK: free of a pointer hakmem does not own 0x[0-9a-f]+ \(on the calling thread's stack, not heap memory, thread \d+\)/],
  ["overflow", /hakmem: CHECK: write past the requested size of 0x[0-9a-f]+ \(tiny tier, class \d+, \d+-byte blocks, offset 40,/],
  ["overflow_large", /hakmem: CHECK: write past the requested size of 0x[0-9a-f]+ \(large tier, \d+-byte mapping, offset 3145731,/],
  ["use_after_free", /hakmem: CHECK: write to a freed block, found when reusing 0x[0-9a-f]+ \(tiny tier, class \d+, \d+-byte blocks, offset 20,/],
];

/** What normal mode (HAKMEM_CHECK=0) says before it aborts, for the misuses it catches. */
const normalModeLine: Record<string, RegExp> = {
  double_free: /^hakmem: double free of 0x[0-9a-f]+ \(tiny tier, class \d+, \d+-byte blocks, thread \d+\)\n/,
  double_free_later: /^hakmem: double free of 0x[0-9a-f]+ \(tiny tier, class \d+, \d+-byte blocks, thread \d+\)\n/,
  interior: /^hakmem: free of a pointer into hakmem's heap that is not a live block \(an interior pointer, or a block freed earlier\) 0x[0-9a-f]+ \(tiny tier/,
  realloc_interior: /^hakmem: free of a pointer into hakmem's heap that is not a live block .* \(tiny tier/,
};

describe.skipIf(systemMode())("check mode", () => {
  test("a clean program reports nothing, in every mode", async () => {
    for (const mode of ["1", "warn", "0"]) {
      const r = await runC("check_misuse", ["clean"], { env: { HAKMEM_CHECK: mode } });
      expect(r.code, explain(r)).toBe(0);
      expect(r.stderr, explain(r)).toBe("");
      expect(r.stdout).toContain("reached end");
    }
  });

  for (const [name, message] of cases) {
    test(`${name}: reported, then abort (HAKMEM_CHECK=1)`, async () => {
      const r = await runC("check_misuse", [name], { env: { HAKMEM_CHECK: "1" } });
      expect(r.stderr, explain(r)).toMatch(message);
      expect(r.stderr).toContain("hakmem: CHECK: aborting");
      expect(r.signal, explain(r)).toBe("SIGABRT");
      expect(r.stdout).not.toContain("reached end");
    });

    // warn mode hands a foreign pointer to glibc only when it may be one of glibc's blocks
    test(`${name}: reported once, then the program goes on (HAKMEM_CHECK=warn)`, async () => {
      const r = await runC("check_misuse", [name], { env: { HAKMEM_CHECK: "warn" } });
      expect(r.stderr, explain(r)).toMatch(message);
      expect(r.stderr.match(/hakmem: CHECK:/g)?.length, explain(r)).toBe(1);
      expect(r.code, explain(r)).toBe(0);
      expect(r.stdout).toContain("reached end");
    });

    // (a foreign pointer goes to glibc in normal mode, which crashes on a non-heap one as it would alone)
    if (!["foreign", "stack", "stack_first"].includes(name)) {
      const normal = normalModeLine[name];
      if (normal) {
        // Caught in normal mode too, as glibc does (misuse.test.ts has every variant).
        test(`${name}: normal mode reports it in one line and aborts`, async () => {
          const r = await runC("check_misuse", [name], { env: { HAKMEM_CHECK: "0" } });
          expect(r.stderr, explain(r)).toMatch(normal);
          expect(r.stderr.split("\n").length, explain(r)).toBe(2);
          expect(r.signal, explain(r)).toBe("SIGABRT");
        });
        continue;
      }
      test(`${name}: normal mode does not report`, async () => {
        const r = await runC("check_misuse", [name], { env: { HAKMEM_CHECK: "0" } });
        expect(r.stderr, explain(r)).not.toContain("hakmem:");
        expect(r.code, explain(r)).toBe(0);
      });
    }
  }

  // Regression: fresh blocks carved over stale bytes of an earlier page (partly purged)
  // looked like freed blocks written to; the stress run reported false use-after-free.
  test("no false reports: the verifying stress and the API conformance run clean in check mode", async () => {
    for (const args of [[4, 1, 60000, "cross"], [4, 2, 60000, "cross"], [8, 3, 60000, "local"]]) {
      const r = await runC("stress_mt", args, { env: { HAKMEM_CHECK: "1" } });
      expect(r.stderr, explain(r)).not.toContain("hakmem: CHECK");
      expect(r.code, explain(r)).toBe(0);
    }
    const api = await runC("api_conformance", [], { env: { HAKMEM_CHECK: "1" } });
    expect(api.stderr, explain(api)).not.toContain("hakmem: CHECK");
    expect(api.code, explain(api)).toBe(0);
  }, 120_000);

  test("a malformed HAKMEM_CHECK value gives one clear line and the default", async () => {
    const r = await runC("check_misuse", ["clean"], { env: { HAKMEM_CHECK: "sometimes" } });
    expect(r.stderr).toContain("hakmem: ignoring HAKMEM_CHECK=sometimes (malformed; expected 1 (or abort), warn, or 0 (or off)); using the default 0");
    expect(r.code, explain(r)).toBe(0);
  });

  // Regression: a large block freed twice was "a pointer hakmem does not own" (its mapping
  // was gone), and warn mode then handed it to glibc, which crashed.
  test("a large block freed twice is a double free, in both check modes", async () => {
    for (const name of ["double_free_adjacent", "double_free_apart", "double_free_thread"]) {
      const abort = await runC("heap_misuse", [name, "5000000"], { env: { HAKMEM_CHECK: "1" } });
      expect(abort.stderr, explain(abort)).toMatch(/^hakmem: CHECK: double free of 0x[0-9a-f]+ \(large tier, \d+-byte mapping/);
      expect(abort.signal, explain(abort)).toBe("SIGABRT");
      const warn = await runC("heap_misuse", [name, "5000000"], { env: { HAKMEM_CHECK: "warn" } });
      expect(warn.stderr, explain(warn)).toMatch(/^hakmem: CHECK: double free of 0x[0-9a-f]+ \(large tier/);
      expect(warn.stdout, explain(warn)).toContain("CONTAINED");
      expect(warn.code, explain(warn)).toBe(0);
    }
  });
});
