// bench-cli.test.ts — the rough edges a new user hit with the bench's command line: the
// quick start's command, where --cmd writes, its exit status when an output differs,
// "within noise" when the runs' ranges overlap, --help listing each option once, and
// unknown options rejected by every CLI (bench, tune, soak, fuzz).
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { CMD_JSON_PATH, parseOptions, USAGE } from "../bench/options.ts";
import { summaryMarkdown, summaryRows, summaryText } from "../bench/report.ts";
import type { Section } from "../bench/results.ts";
import { ratioChart } from "../bench/svg.ts";
import { describeRun, REPO, spawnBun } from "./helpers/spawn.ts";

describe("the quick start", () => {
  test("runs --cmd through npm (bun is only in node_modules/.bin after npm install)", () => {
    const readme = readFileSync(join(REPO, "README.md"), "utf8");
    const quickStart = readme.slice(readme.indexOf("## Quick start"), readme.indexOf("### Prerequisites"));
    expect(quickStart).toContain('npm run bench -- --cmd "');
    expect(readme).not.toMatch(/(^|[^x] )bun run (bench|tune)\b/m);
  });
});

describe("--help", () => {
  test("describes every option on exactly one line", async () => {
    const r = await spawnBun(["bench/main.ts", "--help"]);
    expect(r.code).toBe(0);
    const options = [...new Set([...USAGE.matchAll(/--[a-z][a-z-]*/g)].map((m) => m[0]))];
    expect(options.length).toBeGreaterThan(5);
    for (const o of options) {
      const count = r.stdout.split("\n").filter((line) => line.trimStart().startsWith(`${o} `) || line.includes(`[${o}`)).length;
      expect({ option: o, count }).toEqual({ option: o, count: 1 });
    }
  });
});

describe("--cmd", () => {
  test("writes its own file by default, never the suite's latest.*", () => {
    expect(parseOptions(["--cmd", "true"]).jsonPath).toBe(CMD_JSON_PATH);
    expect(parseOptions([]).jsonPath).toBe("bench/results/latest.json");
    expect(parseOptions(["--cmd", "true", "--json", "x.json"]).jsonPath).toBe("x.json");
  });

  test("a failing command and a differing output: cmd.json written, latest.json untouched, exit 1", async () => {
    const latest = join(REPO, "bench/results/latest.json");
    const before = existsSync(latest) ? statSync(latest).mtimeMs : null;
    const cmdJson = join(REPO, CMD_JSON_PATH);
    rmSync(cmdJson, { force: true });
    // the output names the preloaded library: it differs between hakmem and glibc
    const r = await spawnBun(["bench/main.ts", "--no-build", "--runs", "1", "--allocators", "hakmem,glibc",
      "--cmd", "/bin/echo preload=$LD_PRELOAD", "--cmd", "exit 3"], { timeoutMs: 120_000 });
    expect(r.code, describeRun(r)).toBe(1);
    expect(r.stdout).toContain(`wrote ${CMD_JSON_PATH}`);
    expect(r.stderr).toContain("printed another stdout than glibc's");
    expect(existsSync(cmdJson)).toBe(true);
    expect(existsSync(latest) ? statSync(latest).mtimeMs : null).toBe(before);
  }, 150_000);

  test("the same output under every allocator exits 0", async () => {
    const r = await spawnBun(["bench/main.ts", "--no-build", "--runs", "1", "--allocators", "hakmem,glibc",
      "--cmd", "/bin/echo same", "--json", join(REPO, "bench/results/cmd-test-same.json")], { timeoutMs: 120_000 });
    expect(r.code, describeRun(r)).toBe(0);
  }, 150_000);
});

function section(hakmem: number[], glibc: number[]): Section {
  const samples = [
    ...hakmem.map((value, i) => ({ allocator: "hakmem", run: i + 1, value, peakRssKb: null })),
    ...glibc.map((value, i) => ({ allocator: "glibc", run: i + 1, value, peakRssKb: null })),
  ];
  return { name: "random_mixed", title: "t", unit: "ops/s", higherIsBetter: true, rows: [{ name: "row", samples, errors: [] }] };
}

describe("within noise", () => {
  test("a ratio whose min–max ranges overlap says so; one whose ranges are apart does not", () => {
    const overlap = summaryRows([section([98, 100, 103], [99, 101, 104])], ["hakmem", "glibc"]);
    expect(overlap[0].withinNoise).toBe(true);
    expect(summaryText(overlap, 0)).toContain("within noise");
    expect(summaryMarkdown(overlap)).toContain("within noise");
    const apart = summaryRows([section([120, 121, 122], [99, 101, 104])], ["hakmem", "glibc"]);
    expect(apart[0].withinNoise).toBeUndefined();
    expect(summaryText(apart, 0)).not.toContain("within noise");
    const oneRun = summaryRows([section([100], [101])], ["hakmem", "glibc"]);
    expect(oneRun[0].withinNoise).toBeUndefined();
  });

  test("the SVG draws each allocator's spread as a range", () => {
    const svg = ratioChart([section([98, 100, 103], [99, 101, 104])], ["hakmem", "glibc"], "test");
    const spreads = [...svg.matchAll(/<line class="spread" data-allocator="(\w+)" x1="([\d.]+)" y1="[\d.]+" x2="([\d.]+)"/g)];
    expect(spreads.map((m) => m[1]).sort()).toEqual(["glibc", "hakmem"]);
    for (const m of spreads) expect(Number(m[3])).toBeGreaterThan(Number(m[2]));
    expect(ratioChart([section([100], [101])], ["hakmem", "glibc"], "test")).not.toContain('class="spread"');
  });
});

describe("unknown options are rejected (exit 2, the usage printed)", () => {
  const cases: [string, string[]][] = [
    ["bench", ["bench/main.ts", "--runz", "2"]],
    ["tune", ["bench/tune.ts", "random_mixed", "--budgte", "1"]],
    ["soak", ["test/soak.ts", "--minuts", "1"]],
    ["fuzz", ["test/fuzz/cli.ts", "--sed", "1"]],
  ];
  for (const [name, args] of cases) {
    test(name, async () => {
      const r = await spawnBun(args, { timeoutMs: 60_000 });
      expect(r.code, describeRun(r)).toBe(2);
      expect(`${r.stdout}${r.stderr}`).toContain("usage");
      expect(r.stderr).not.toMatch(/\n\s+at .*:\d+:\d+/); // no stack trace
    });
  }
});
