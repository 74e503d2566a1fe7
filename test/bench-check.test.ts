// bench-check.test.ts — the bench reports what check mode costs (issue 21): every
// single-thread workload row runs hakmem in check mode too, right after its normal run, and
// the report gives check ÷ normal per row (medians of the same runs), in the text output, the
// JSON and the Markdown. No timing assertions: the figures are the bench's job.
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { CHECK_ALLOCATOR, checkModeReport, checkModeRow, checkModeSummary, checkModeTable } from "../bench/check_mode.ts";
import type { Row, Section } from "../bench/results.ts";
import { WORKLOADS } from "../bench/workloads.ts";
import { describeRun, spawnBun } from "./helpers/spawn.ts";
import { withTempDir } from "./helpers/tmp.ts";

function row(normal: number[], check: number[], errors: Row["errors"] = []): Row {
  return {
    name: "ws=400 16..1040 B",
    samples: [
      ...normal.map((value, i) => ({ allocator: "hakmem", run: i + 1, value, peakRssKb: 2048 })),
      ...check.map((value, i) => ({ allocator: CHECK_ALLOCATOR, run: i + 1, value, peakRssKb: 8192 })),
      { allocator: "glibc", run: 1, value: 1, peakRssKb: 1 },
    ],
    errors,
  };
}

describe("check mode's figures", () => {
  test("check ÷ normal is the ratio of the medians of ops/s; min–max the per-run ratios", () => {
    const r = checkModeRow("random_mixed", row([60, 50, 40], [10, 20, 5]), 1);
    expect(r.normalOpsPerSec).toBe(50);
    expect(r.checkOpsPerSec).toBe(10);
    expect(r.slowdown).toBe(5);
    expect([r.min, r.max, r.runs]).toEqual([2.5, 8, 3]);
    expect([r.normalPeakRssKb, r.checkPeakRssKb]).toEqual([2048, 8192]);
    expect(checkModeTable({ title: "t", target: 3, rows: [r] })).toContain("×5.00");
  });

  test("a row whose check-mode runs failed says so, without a ratio", () => {
    const r = checkModeRow("random_mixed", row([60], [], [{ allocator: CHECK_ALLOCATOR, run: 1, message: "exit code 1: boom" }]), 1);
    expect(r.slowdown).toBeNull();
    expect(r.error).toBe("exit code 1: boom");
    expect(checkModeTable({ title: "t", target: 3, rows: [r] })).toContain("error: exit code 1: boom");
    expect(checkModeSummary({ title: "t", target: 3, rows: [r] })).toContain("no row measured");
  });

  test("only rows that ran in check mode are reported, with their share of the work", () => {
    const sections: Section[] = [{ name: "random_mixed", title: "t", unit: "ops/s", higherIsBetter: true, rows: [row([60], [12]), { ...row([60], []), name: "other" }] }];
    const report = checkModeReport(sections, (_, name) => (name === "other" ? null : 0.5))!;
    expect(report.rows.map((r) => [r.row, r.scale, r.slowdown])).toEqual([["ws=400 16..1040 B", 0.5, 5]]);
    expect(checkModeTable(report)).toContain("1/2 of the work");
    expect(checkModeSummary(report)).toContain("within ×3 on 0/1 rows");
    expect(checkModeReport(sections, () => null)).toBeNull();
  });

  test("every single-thread workload row runs in check mode, and no multi-thread one", () => {
    const checked = WORKLOADS.filter((w) => w.check !== undefined).map((w) => `${w.section} ${w.row}`);
    expect(checked).toEqual([
      "random_mixed ws=400 16..1040 B", "random_mixed ws=8192 16..1040 B", "random_mixed ws=400 1..32 KiB",
      "larson 1 thread 8..1024 B", "fragmentation sawtooth 16..4096 B", "realloc_growth 16 buffers to 64 KiB", "large_blocks 4 live, 1..32 MiB",
    ]);
    for (const w of WORKLOADS) if (w.check !== undefined) expect(w.check).toBeGreaterThan(0);
  });
});

test("the bench runs hakmem in check mode on a single-thread row and reports check ÷ normal (text, JSON, Markdown)", async () => {
  await withTempDir("bench-check", async (dir) => {
    const json = join(dir, "check.json");
    const r = await spawnBun(["bench/main.ts", "--no-build", "--filter", "ws=400 16..1040", "--scale", "0.01", "--runs", "2",
      "--allocators", "hakmem,glibc", "--json", json], { timeoutMs: 120_000 });
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.stdout).toContain("check mode — hakmem with HAKMEM_CHECK=1 ÷ normal mode");
    expect(r.stdout).toMatch(/random_mixed ws=400 16\.\.1040 B\s+\S+ ops\/s\s+\S+ ops\/s\s+×\d+\.\d\d/);
    expect(r.stdout).toMatch(/check mode ÷ normal \(time per op\): within ×3 on \d\/1 rows/);
    expect(existsSync(json)).toBe(true);
    const report = JSON.parse(readFileSync(json, "utf8"));
    const rm = (report.sections as Section[]).find((s) => s.name === "random_mixed")!.rows[0];
    expect(rm.samples.filter((s) => s.allocator === CHECK_ALLOCATOR).length).toBe(2);
    expect(rm.errors).toEqual([]);
    expect(report.checkMode.rows.length).toBe(1);
    const c = report.checkMode.rows[0];
    expect([c.section, c.row, c.runs, c.scale]).toEqual(["random_mixed", "ws=400 16..1040 B", 2, 1]);
    expect(c.slowdown).toBeGreaterThan(0);
    expect(c.min).toBeLessThanOrEqual(c.max);
    // the check-mode runs were check mode: its quarantine holds thousands of freed blocks
    expect(c.checkPeakRssKb).toBeGreaterThan(c.normalPeakRssKb);
    expect(readFileSync(join(dir, "check.md"), "utf8")).toContain("| random_mixed ws=400 16..1040 B |");
    // the workload's own table and summary know nothing of the check-mode column
    expect(report.summary.map((s: { row: string }) => s.row)).toEqual(["ws=400 16..1040 B"]);
  });
}, 150_000);
