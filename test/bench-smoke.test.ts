// bench-smoke.test.ts — `bun bench/main.ts --quick` on a tiny configuration (hidden
// --scale knob, hakmem and glibc only): every section must produce numbers for both
// allocators and the JSON must parse (a slow run: `npm run test:slow`; about 80 s). The
// --cmd run and the parsers are part of `npm test`. No timing assertions: speed is the bench's job.
import { expect, test } from "bun:test";
import { readFileSync, rmSync, existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { checkHakmemStats, checkMallocOwner, parseHakmemStats } from "../bench/proof.ts";
import { parseResultLine } from "../bench/runner.ts";
import { parseBenchmarkCsv } from "../bench/redis.ts";
import { compileC } from "./helpers/c.ts";
import { spawnBun } from "./helpers/spawn.ts";
import { makeTempDir } from "./helpers/tmp.ts";

const ROOT = resolve(import.meta.dir, "..");
const WORKLOAD_SECTIONS = ["random_mixed", "larson", "mt_remote", "prodcons", "false_sharing", "fragmentation", "realloc_growth", "mt_churn", "thread_generations", "pool_bursts", "large_blocks"];

interface Sample { allocator: string; value: number; mismatch?: boolean; peakRssKb: number | null; extra: Record<string, number | string> }
interface Row { name: string; samples: Sample[]; errors: { allocator: string; message: string }[] }
interface Section { name: string; rows: Row[] }

/** The soak-length runs (the whole bench suite at --quick): `npm run test:slow` sets HAKMEM_TEST_SLOW=1. */
const slow = !!process.env.HAKMEM_TEST_SLOW && process.env.HAKMEM_TEST_SLOW !== "0";

test.skipIf(!slow)(`bench --quick produces numbers for hakmem and glibc in every section${slow ? "" : " (skipped: a slow run, npm run test:slow)"}`, async () => {
  const dir = makeTempDir("bench-smoke");
  try {
    const json = join(dir, "smoke.json");
    const r = await spawnBun(["bench/main.ts", "--quick", "--scale", "0.02", "--runs", "1", "--allocators", "hakmem,glibc", "--json", json], { timeoutMs: 290_000 });
    const [out, err] = [r.stdout, r.stderr];
    expect(existsSync(json), `no JSON written:\n${out}\n${err}`).toBe(true);
    const report = JSON.parse(readFileSync(json, "utf8"));
    expect(typeof report.hakmem.buildId).toBe("string");
    expect(report.machine.cores).toBeGreaterThan(0);
    expect(existsSync(join(dir, "smoke.svg"))).toBe(true);

    const sections = report.sections as Section[];
    const expected = ["micro_ffi", "micro_kernel", ...WORKLOAD_SECTIONS];
    if (Bun.which("valgrind")) expected.push("instructions");
    if (Bun.which("redis-server") && Bun.which("redis-benchmark") && Bun.which("redis-cli")) expected.push("redis");
    if (["python3", "gcc", "git", "perl", "sort"].some((p) => Bun.which(p))) expected.push("programs");
    expect(sections.map((s) => s.name).sort()).toEqual(expected.sort());
    for (const section of sections) {
      for (const row of section.rows) {
        for (const allocator of ["hakmem", "glibc"]) {
          const values = row.samples.filter((s) => s.allocator === allocator).map((s) => s.value);
          const errors = row.errors.filter((e) => e.allocator === allocator).map((e) => e.message);
          expect({ where: `${section.name} / ${row.name} / ${allocator}`, errors, measured: values.length > 0 && values.every((v) => v > 0) })
            .toEqual({ where: `${section.name} / ${row.name} / ${allocator}`, errors: [], measured: true });
        }
      }
    }
    // a real program's output must not depend on the allocator
    for (const row of sections.find((s) => s.name === "programs")?.rows ?? []) {
      const differing = row.samples.filter((s) => s.mismatch).map((s) => s.allocator);
      expect({ row: row.name, differing }).toEqual({ row: row.name, differing: [] });
    }
    // workload rows carry page faults per operation for every allocator
    const rm = sections.find((s) => s.name === "random_mixed")!.rows[0].samples;
    expect(rm.every((s) => Number.isFinite(Number(s.extra.faults_per_op)) && Number(s.extra.faults) > 0)).toBe(true);
    // check mode's slowdown: a figure for every single-thread workload row (bench/check_mode.ts)
    const checkRows = (report.checkMode?.rows ?? []) as { row: string; slowdown: number | null; error?: string }[];
    expect(checkRows.length).toBe(7);
    for (const c of checkRows) expect({ row: c.row, error: c.error, measured: (c.slowdown ?? 0) > 0 }).toEqual({ row: c.row, error: undefined, measured: true });
    expect(out).toContain("check mode — hakmem with HAKMEM_CHECK=1");
    // the safety table: a verdict for every case and allocator; hakmem reports a double free
    const safety = report.safety as { cases: { name: string }[]; results: { case: string; allocator: string; verdict: string }[] };
    expect(safety.results.length).toBe(safety.cases.length * 3); // hakmem, glibc, and hakmem in check mode
    expect(safety.results.filter((r) => r.verdict === "error")).toEqual([]);
    const verdict = (c: string, a: string) => safety.results.find((r) => r.case === c && r.allocator === a)?.verdict;
    expect([verdict("control", "hakmem"), verdict("control", "glibc")]).toEqual(["contained", "contained"]);
    expect(verdict("double_free_adjacent", "hakmem")).toBe("reported");
    // issue 21: check mode reports the overflow, and a guarded sample's overflow faults with a report
    expect(verdict("overflow_1_small", "hakmem check")).toBe("reported");
    expect(verdict("guarded_overflow", "hakmem")).toBe("reported");
    expect(out).toContain("safety —");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 300_000);

test("bench --cmd runs any program under every allocator and marks a run whose stdout differs from glibc's", async () => {
  const dir = makeTempDir("bench-cmd");
  try {
    const fixed = await compileC("cmd_fixed_output");
    const addresses = await compileC("cmd_heap_addresses");
    const json = join(dir, "cmd.json");
    const r = await spawnBun(["bench/main.ts", "--runs", "2", "--allocators", "hakmem,glibc", "--json", json,
      "--cmd", `${fixed} 5000`, "--cmd", addresses]);
    const [out, err] = [r.stdout, r.stderr];
    expect(r.code).toBe(1); // a --cmd whose output differs from glibc's fails the run
    expect(existsSync(json), `no JSON written:\n${out}\n${err}`).toBe(true);
    const report = JSON.parse(readFileSync(json, "utf8"));
    const sections = report.sections as Section[];
    expect(sections.map((s) => s.name)).toEqual(["cmd"]);
    const [same, differs] = sections[0].rows;
    expect(same.errors).toEqual([]);
    for (const allocator of ["hakmem", "glibc"]) {
      const samples = same.samples.filter((s) => s.allocator === allocator);
      expect(samples.length).toBe(2);
      for (const s of samples) {
        expect({ allocator, mismatch: s.mismatch }).toEqual({ allocator, mismatch: false });
        expect(s.value).toBeGreaterThan(0);
        expect(Number(s.extra.cpu_secs)).toBeGreaterThanOrEqual(0);
        expect(Number(s.extra.faults)).toBeGreaterThan(0);
        expect(s.peakRssKb).toBeGreaterThan(0);
      }
    }
    expect(new Set(same.samples.map((s) => s.extra.stdout_sha256)).size).toBe(1);
    // heap addresses: hakmem's runs differ from glibc's first run and are marked, never counted
    expect(differs.errors).toEqual([]);
    const hakmemRuns = differs.samples.filter((s) => s.allocator === "hakmem");
    expect(hakmemRuns.length).toBe(2);
    expect(hakmemRuns.every((s) => s.mismatch === true)).toBe(true);
    expect(differs.samples.find((s) => s.allocator === "glibc")?.mismatch).toBe(false);
    expect(out).toContain("≠ output");
    expect(report.summary.find((r: { row: string }) => r.row.includes("cmd_heap_addresses"))?.ratio ?? null).toBeNull();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);

test("the proof parsers read what the programs and hakmem print", () => {
  const stderr = "noise\nhakmem: build=cc56610d0b12fe29 allocs=50107 frees=50106 remote_frees=0 threads=1\nhakmem: tiny 49382 49382\n";
  expect(parseHakmemStats(stderr)).toEqual({ buildId: "cc56610d0b12fe29", allocs: 50107 });
  expect(parseHakmemStats("no report")).toBeNull();
  expect(checkHakmemStats(stderr, "cc56610d0b12fe29", 1000)).toBeNull();
  expect(checkHakmemStats(stderr, "0000000000000000", 1000)).toContain("stale library");
  expect(checkHakmemStats(stderr, null, 100000)).toContain("not served by hakmem");

  const fields = parseResultLine("x\nRESULT bench=random_mixed ops=10 secs=0.5 ops_per_sec=20.0 peak_rss_kb=1504 malloc_from=/lib/x86_64-linux-gnu/libc.so.6\n");
  expect(fields?.ops_per_sec).toBe("20.0");
  expect(fields?.malloc_from).toBe("/lib/x86_64-linux-gnu/libc.so.6");

  const glibc = { name: "glibc", preload: null, lib: "/usr/lib/x86_64-linux-gnu/libc.so.6", allocSymbol: "malloc", freeSymbol: "free", pkg: null };
  const hakmem = { ...glibc, name: "hakmem", preload: "/x/libhakmem.so", lib: "/x/libhakmem.so" };
  if (existsSync("/lib/x86_64-linux-gnu/libc.so.6") && existsSync(glibc.lib)) {
    expect(checkMallocOwner(glibc, "/lib/x86_64-linux-gnu/libc.so.6")).toBeNull();
  }
  expect(checkMallocOwner(hakmem, "/lib/x86_64-linux-gnu/libc.so.6")).toContain("preload did not take effect");

  expect(parseBenchmarkCsv('"test","rps","avg_latency_ms"\n"SET","98039.22","0.3"\n"GET","100000.00","0.2"\n')).toEqual({ SET: 98039.22, GET: 100000 });
});
