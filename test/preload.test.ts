// The C test programs of test/c/, each compiled with zig cc and run with libhakmem.so
// preloaded (LD_PRELOAD). Every program checks that hakmem really serves malloc, verifies
// its own results and prints "PASS <name>"; a failure shows the exact command to rerun.
import { describe, expect, test } from "bun:test";
import { expectPass, explain, type RunResult, runC, systemMode } from "./helpers/c.ts";

// bunfig.toml's [test] timeout is not applied by Bun 1.4.5, so each test states its own.
const TIMEOUT_MS = 120_000;

describe("C programs under LD_PRELOAD=libhakmem.so", () => {
  test("api_conformance: every libc entry point behaves as documented", async () => {
    expectPass(await runC("api_conformance"), "api_conformance");
  }, TIMEOUT_MS);

  test("sizes_boundaries: sizes 1..4096, class boundaries ±1, 63/64/65-byte masses", async () => {
    expectPass(await runC("sizes_boundaries"), "sizes_boundaries");
  }, TIMEOUT_MS);

  for (const mode of ["local", "cross"]) {
    test(`stress_mt (${mode} frees): 2/4/8 threads x 3 seeds`, async () => {
      for (const threads of [2, 4, 8]) {
        for (const seed of [1, 2, 3]) {
          const ops = Math.floor(240_000 / threads);
          expectPass(await runC("stress_mt", [threads, seed, ops, mode]), "stress_mt");
        }
      }
    }, TIMEOUT_MS);
  }

  for (const threads of [4, 2, 8]) {
    test(`larson: ${threads} threads, 20 runs, no failure`, async () => {
      const rounds = Math.floor(200 / threads);
      const failures: string[] = [];
      for (let rep = 0; rep < 20; rep++) {
        const r = await runC("larson", [threads, rounds, rep + 1]);
        try {
          expectPass(r, "larson");
        } catch (e) {
          failures.push((e as Error).message);
        }
      }
      if (failures.length) throw new Error(`${failures.length}/20 larson runs failed; first:\n${failures[0]}`);
    }, TIMEOUT_MS);
  }

  test("prodcons: 2M remote frees keep peak RSS under 64 MiB", async () => {
    const r = await runC("prodcons", [2, 2, 2_000_000, 64]);
    expectPass(r, "prodcons");
    expect(r.stdout).toContain("peak_rss=");
    expectPass(await runC("prodcons", [3, 1, 1_000_000, 64]), "prodcons");
  }, TIMEOUT_MS);

  test("thread_churn: 2000 short-lived threads, RSS 300 ms after the last free under 32 MiB", async () => {
    expectPass(await runC("thread_churn", [2000, 8, 200, 32]), "thread_churn");
  }, TIMEOUT_MS);

  test("fork_load: 40 forks while 2 threads allocate; every child exits 0", async () => {
    expectPass(await runC("fork_load", [40, 2]), "fork_load");
  }, TIMEOUT_MS);

  test.skipIf(systemMode())("rss_return: RSS falls to <= 10% of a 1 GiB peak within 2 s", async () => {
    expectPass(await runC("rss_return", [1024, 10]), "rss_return");
  }, TIMEOUT_MS);

  // An idle program: 1 GiB filled and freed, then no allocator call at all. Memory freed
  // within the decay time is still retained when the program goes idle; only the background
  // thread (HAKMEM_BACKGROUND=1) gives it back then. The control run shows it would stay.
  test.skipIf(systemMode())("idle_return: with HAKMEM_BACKGROUND=1 an idle process drops to <= 5% of a 1 GiB peak within 2 s", async () => {
    const idlePct = (r: RunResult) => Number(/idle_pct=([\d.]+)/.exec(r.stdout)?.[1] ?? NaN);
    const control = await runC("idle_return", [1024, 500], { env: { HAKMEM_PURGE_DELAY_MS: "5000" } });
    expect(idlePct(control), explain(control)).toBeGreaterThan(5);
    const background = await runC("idle_return", [1024, 2000], { env: { HAKMEM_BACKGROUND: "1" } });
    expect(idlePct(background), explain(background)).toBeLessThanOrEqual(5);
    const slowDecay = await runC("idle_return", [1024, 2000], { env: { HAKMEM_BACKGROUND: "1", HAKMEM_PURGE_DELAY_MS: "1000" } });
    expect(idlePct(slowDecay), explain(slowDecay)).toBeLessThanOrEqual(5);
  }, TIMEOUT_MS);

  // An exited thread's segments keep their empty slices resident for the thread that adopts
  // them (purging at exit made threads created in rounds fault everything in again); when
  // nobody adopts them they still go back along the decay time.
  test.skipIf(systemMode())("abandoned_return: an exited thread's empty memory goes back even if no thread adopts it", async () => {
    const afterPct = (r: RunResult) => Number(/after_pct=([\d.]+)/.exec(r.stdout)?.[1] ?? NaN);
    const idle = await runC("abandoned_return", [512, 1500, "idle"], { env: { HAKMEM_BACKGROUND: "1" } });
    expect(afterPct(idle), explain(idle)).toBeLessThanOrEqual(5);
  }, TIMEOUT_MS);

  test.skipIf(systemMode())("the background thread purges while threads allocate, free and fork (HAKMEM_BACKGROUND=1)", async () => {
    const env = { HAKMEM_BACKGROUND: "1", HAKMEM_PURGE_DELAY_MS: "20" }; // a sweep every 5 ms
    expectPass(await runC("stress_mt", [4, 2, 60000, "cross"], { env }), "stress_mt");
    expectPass(await runC("fork_load", [40, 2], { env }), "fork_load");
  }, TIMEOUT_MS);

  test("lifecycle: constructors, key destructors, atexit, destructors, exit() during allocation", async () => {
    for (let rep = 0; rep < 5; rep++) expectPass(await runC("lifecycle"), "lifecycle");
    // the HAKMEM_STATS=1 summary is printed at exit while other threads still allocate
    const r = await runC("lifecycle", [], { env: { HAKMEM_STATS: "1" } });
    if (r.code !== 0 || r.signal || !r.stdout.includes("PASS lifecycle")) throw new Error(`lifecycle with HAKMEM_STATS=1 failed\n${explain(r)}`);
  }, TIMEOUT_MS);

  test("large_remap_race: large blocks moved by mremap while other threads map new ones stay owned", async () => {
    for (let rep = 0; rep < 3; rep++) expectPass(await runC("large_remap_race", [2000, 8]), "large_remap_race");
  }, TIMEOUT_MS);

  test("foreign_free: libc-allocated blocks are freed/realloc'd safely", async () => {
    expectPass(await runC("foreign_free"), "foreign_free");
  }, TIMEOUT_MS);
});

// The same programs under non-default settings: other routing thresholds (tiny off, the
// limits), immediate purging with no retained or cached memory, and the checking mode.
// (foreign_free is left out of HAKMEM_CHECK=1: that mode aborts on foreign frees by design.)
const SETTINGS: Record<string, string>[] = [
  { HAKMEM_TINY_MAX: "256", HAKMEM_MID_MAX: "64k" },
  { HAKMEM_TINY_MAX: "0", HAKMEM_MID_MAX: "32k" },
  { HAKMEM_TINY_MAX: "8k", HAKMEM_MID_MAX: "1m" },
  { HAKMEM_PURGE_DELAY_MS: "0", HAKMEM_RETAIN_MAX_MB: "0", HAKMEM_LARGE_CACHE_MB: "0" },
  { HAKMEM_CHECK: "1" },
];

describe("C programs under non-default hakmem settings", () => {
  for (const env of SETTINGS) {
    const label = Object.entries(env).map(([k, v]) => `${k}=${v}`).join(" ");
    test(label, async () => {
      expectPass(await runC("api_conformance", [], { env }), "api_conformance");
      expectPass(await runC("sizes_boundaries", [], { env }), "sizes_boundaries");
      expectPass(await runC("stress_mt", [4, 7, 60_000, "cross"], { env }), "stress_mt");
      expectPass(await runC("larson", [4, 50, 7], { env }), "larson");
      expectPass(await runC("lifecycle", [], { env }), "lifecycle");
    }, TIMEOUT_MS);
  }
});
