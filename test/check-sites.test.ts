// check-sites.test.ts — check mode's reports name the call sites (issue 21): where the block
// was allocated and where it was freed, as return addresses inside the program's functions
// that made the calls (test/c/check_sites.c), symbolized; with HAKMEM_CHECK_STACKS=1 as a
// short backtrace whose next frame is the program's main.
import { describe, expect, test } from "bun:test";
import { explain, type RunResult, runC, systemMode } from "./helpers/c.ts";

const FLAGS = ["-fno-omit-frame-pointer"];
/** How far into a function its call of malloc/free may be (they are a few instructions long). */
const CALL_WITHIN = 96;

function funcs(r: RunResult): Record<string, bigint> {
  const m = r.stdout.match(/FUNCS alloc=0x([0-9a-f]+) realloc=0x([0-9a-f]+) free=0x([0-9a-f]+) again=0x([0-9a-f]+) main=0x([0-9a-f]+)/);
  if (!m) throw new Error(`no FUNCS line\n${explain(r)}`);
  const [alloc, realloc, free, again, main] = m.slice(1).map((h) => BigInt(`0x${h}`));
  return { alloc, realloc, free, again, main };
}

/** The return address a report names for `label` (its first frame, with backtraces). */
function site(r: RunResult, label: string): bigint {
  const m = r.stderr.match(new RegExp(`^hakmem:   ${label} at(?: 0x([0-9a-f]+) \\(check_sites[^+ ]*\\+0x[0-9a-f]+|:\\nhakmem:     #0 0x([0-9a-f]+))`, "m"));
  if (!m) throw new Error(`no "${label} at" line\n${explain(r)}`);
  return BigInt(`0x${m[1] ?? m[2]}`);
}

function expectInside(r: RunResult, address: bigint, fn: bigint, what: string) {
  const offset = address - fn;
  expect({ what, inside: offset > 0n && offset < BigInt(CALL_WITHIN) }, explain(r)).toEqual({ what, inside: true });
}

const CASES: [name: string, size: number, problem: RegExp, sites: [label: string, fn: string][]][] = [
  ["overflow", 40, /hakmem: CHECK: write past the requested size of 0x/, [["allocated", "alloc"], ["freed", "free"]]],
  ["overflow", 3000, /hakmem: CHECK: write past the requested size of 0x/, [["allocated", "alloc"], ["freed", "free"]]],
  ["realloc_overflow", 100, /hakmem: CHECK: write past the requested size of 0x/, [["allocated", "realloc"], ["freed", "free"]]],
  ["write_after_free", 40, /hakmem: CHECK: write to a freed block/, [["allocated", "alloc"], ["freed", "free"]]],
  ["write_after_free", 9000, /hakmem: CHECK: write to a freed block/, [["allocated", "alloc"], ["freed", "free"]]],
  ["double_free", 40, /hakmem: CHECK: double free of 0x/, [["allocated", "alloc"], ["freed", "free"], ["freed again", "again"]]],
  // Long after the free, the block out of the quarantine: its record still names both calls.
  ["write_after_free_reused", 40, /hakmem: CHECK: write to a freed block, found when reusing 0x[0-9a-f]+ \(tiny tier, .*offset 20,/, [["allocated", "alloc"], ["freed", "free"]]],
  ["write_after_free_reused", 3000, /hakmem: CHECK: write to a freed block, found when reusing 0x[0-9a-f]+ \(mid tier, .*offset 1500,/, [["allocated", "alloc"], ["freed", "free"]]],
  ["double_free_reused", 40, /hakmem: CHECK: double free of 0x/, [["allocated", "alloc"], ["freed", "free"], ["freed again", "again"]]],
  // A block out of the quarantine that is never handed out again, its thread alive at exit:
  // its edges were verified when it left.
  ["write_after_free_left", 3000, /hakmem: CHECK: write to a freed block, found when reusing 0x[0-9a-f]+ \(mid tier, .*offset 0,/, [["allocated", "alloc"], ["freed", "free"]]],
];

describe.skipIf(systemMode())("check mode names the call sites", () => {
  for (const [name, size, problem, sites] of CASES) {
    test(`${name} ${size}: ${sites.map(([l]) => l).join(", ")} at return addresses inside the program's calls`, async () => {
      const r = await runC("check_sites", [name, size], { env: { HAKMEM_CHECK: "warn" }, compileFlags: FLAGS });
      expect(r.stderr, explain(r)).toMatch(problem);
      expect(r.stdout, explain(r)).toContain("reached end");
      const f = funcs(r);
      for (const [label, fn] of sites) expectInside(r, site(r, label), f[fn], label);
    });
  }

  test("HAKMEM_CHECK_STACKS=1: a backtrace, its first frame in the caller of malloc, the next in main", async () => {
    const r = await runC("check_sites", ["overflow", 40], { env: { HAKMEM_CHECK: "1", HAKMEM_CHECK_STACKS: "1" }, compileFlags: FLAGS });
    expect(r.signal, explain(r)).toBe("SIGABRT");
    const f = funcs(r);
    for (const [label, fn] of [["allocated", "alloc"], ["freed", "free"]] as const) {
      const m = r.stderr.match(new RegExp(`^hakmem:   ${label} at:\\nhakmem:     #0 0x([0-9a-f]+) [^\\n]*\\nhakmem:     #1 0x([0-9a-f]+)`, "m"));
      expect(m, explain(r)).not.toBeNull();
      expectInside(r, BigInt(`0x${m![1]}`), f[fn], `${label} #0`);
      const inMain = BigInt(`0x${m![2]}`) - f.main;
      expect({ label, inMain: inMain > 0n && inMain < 4096n }, explain(r)).toEqual({ label, inMain: true });
    }
  });

  test("HAKMEM_CHECK_STACKS=1 on a program without frame pointers: sites still reported, nothing crashes", async () => {
    const r = await runC("check_sites", ["double_free", 40], { env: { HAKMEM_CHECK: "warn", HAKMEM_CHECK_STACKS: "1" }, compileFlags: ["-fomit-frame-pointer"] });
    expect(r.stdout, explain(r)).toContain("reached end");
    const f = funcs(r);
    expectInside(r, site(r, "allocated"), f.alloc, "allocated");
    expectInside(r, site(r, "freed again"), f.again, "freed again");
  });

  test("a malformed HAKMEM_CHECK_STACKS gives one line and the default", async () => {
    const r = await runC("check_sites", ["overflow", 40], { env: { HAKMEM_CHECK: "warn", HAKMEM_CHECK_STACKS: "yes" }, compileFlags: FLAGS });
    expect(r.stderr).toContain("hakmem: ignoring HAKMEM_CHECK_STACKS=yes (malformed; expected 1 or 0); using the default 0");
    expect(r.stderr, explain(r)).toMatch(/^hakmem:   allocated at 0x[0-9a-f]+ \(check_sites/m);
  });
});
