// One source for the ABI (zig/abi.zig): the generated copies (the constants block of
// zig/hakmem.h, src/abi.ts) match it, the header and src/abi.ts agree constant by constant,
// the library behaves as they say, and no other file keeps its own copy of a constant.
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { ptr } from "bun:ffi";
import { checkPointer } from "../src/check.ts";
import * as abi from "../src/abi.ts";
import { abiMismatches, native, type AbiProbe } from "../src/ffi.ts";
import * as h from "../src/index.ts";

const REPO = join(import.meta.dir, "..");
const ZIG = join(REPO, "zig/toolchain/zig");

/** The numeric #defines of hakmem.h: HAK_OK 0, HAK_ERR_ARG (-3), HAK_SIZE_MAX ((size_t)…). */
function headerDefines(): Map<string, number> {
  const header = readFileSync(join(REPO, "zig/hakmem.h"), "utf8");
  const out = new Map<string, number>();
  for (const m of header.matchAll(/^#define (HAK_\w+)\s+\(*(?:\(size_t\))?(-?\d+)\)*/gm)) out.set(m[1], Number(m[2]));
  return out;
}

function tsConstants(): Map<string, number> {
  return new Map(Object.entries(abi).filter(([k, v]) => k.startsWith("HAK_") && typeof v === "number") as [string, number][]);
}

describe("the generated copies", () => {
  test("zig/hakmem.h and src/abi.ts match zig/abi.zig (zig build abi-check)", () => {
    const r = Bun.spawnSync([ZIG, "build", "abi-check"], { cwd: REPO, stdout: "pipe", stderr: "pipe" });
    expect({ code: r.exitCode, stderr: r.stderr.toString() }).toEqual({ code: 0, stderr: "" });
  }, 120_000);

  test("every constant of hakmem.h is in src/abi.ts with the same value, and the other way round", () => {
    const header = headerDefines();
    const ts = tsConstants();
    expect(header.size).toBeGreaterThan(40);
    expect(Object.fromEntries(header)).toEqual(Object.fromEntries(ts));
  });
});

describe("the library agrees with src/abi.ts", () => {
  test("statistics: names, order and count", () => {
    const names = Array.from({ length: abi.HAK_STAT_NAMES + 1 }, (_, i) => native.hak_stat_name(i) ?? null);
    expect(names).toEqual([...abi.STAT_FIELD_NAMES, ...abi.STAT_GLOBAL_NAMES, null]);
    expect(abi.HAK_STAT_VALUES).toBe(abi.HAK_TIER_COUNT * abi.HAK_STAT_FIELDS + abi.HAK_STAT_GLOBALS);
    const buffer = new BigUint64Array(abi.HAK_STAT_VALUES + 8);
    expect(native.hak_stats_read(buffer, buffer.length)).toBe(abi.HAK_STAT_VALUES);
    const s = h.stats();
    expect(Object.keys(s.tiny).length).toBe(abi.HAK_STAT_FIELDS);
    expect(Object.keys(s.global).length).toBe(abi.HAK_STAT_GLOBALS);
  });

  // src/ffi.ts refuses, when it loads the library, one whose limits or statistics layout
  // differ from src/abi.ts (say, a stale build with 8 globals where src/abi.ts names 12).
  test("the load-time check finds no difference here, and names each one it would find", () => {
    expect(abiMismatches(native as unknown as AbiProbe)).toEqual([]);
    const stale: AbiProbe = {
      hak_tiny_max_limit: () => abi.HAK_TINY_MAX_LIMIT,
      hak_mid_max_min: () => 0,
      hak_mid_max_limit: () => abi.HAK_MID_MAX_LIMIT,
      hak_stat_name: (i) => (i < abi.HAK_STAT_FIELDS + 8 ? native.hak_stat_name(i) : null),
    };
    expect(abiMismatches(stale)).toEqual([
      `mid_max lowest value: library 0, src/abi.ts ${abi.HAK_MID_MAX_MIN}`,
      ...abi.STAT_GLOBAL_NAMES.slice(8).map((name, k) => `statistic ${abi.HAK_STAT_FIELDS + 8 + k}: library null, src/abi.ts "${name}"`),
    ]);
  });

  test("limits, defaults, tiers and check modes", () => {
    expect(native.hak_tiny_max_limit()).toBe(abi.HAK_TINY_MAX_LIMIT);
    expect(native.hak_mid_max_min()).toBe(abi.HAK_MID_MAX_MIN);
    expect(native.hak_mid_max_limit()).toBe(abi.HAK_MID_MAX_LIMIT);
    expect(h.routing().tinyMax).toBe(abi.HAK_TINY_MAX_DEFAULT);
    expect(h.routing().midMax).toBe(abi.HAK_MID_MAX_DEFAULT);
    expect(native.hak_route(0)).toBe(abi.HAK_TIER_TINY);
    expect(native.hak_route(abi.HAK_MID_MAX_DEFAULT)).toBe(abi.HAK_TIER_MID);
    expect(native.hak_route(abi.HAK_MID_MAX_DEFAULT + 1)).toBe(abi.HAK_TIER_LARGE);
    expect(abi.TIERS.map((_, i) => i)).toEqual([abi.HAK_TIER_TINY, abi.HAK_TIER_MID, abi.HAK_TIER_LARGE]);
    expect(native.hak_check_mode()).toBe(abi.HAK_CHECK_OFF);
    expect(abi.CHECK_MODES[abi.HAK_CHECK_WARN]).toBe("warn");
    expect(native.hak_set_check_mode(abi.HAK_CHECK_WARN + 1)).toBe(abi.HAK_ERR_ARG);
    expect(native.hak_set_thresholds(0, abi.HAK_MID_MAX_MIN - 1)).toBe(abi.HAK_ERR_ARG);
    expect(h.MAX_SIZE).toBe(abi.HAK_SIZE_MAX);
  });

  test("return codes and size limits", () => {
    expect(native.hak_free(ptr(new Uint8Array(64)))).toBe(abi.HAK_ERR_NOT_OWNED);
    const p = native.hak_alloc(100)!;
    expect(p % abi.HAK_MIN_ALIGNMENT).toBe(0);
    expect(native.hak_free(checkPointer("test", p + 1))).toBe(abi.HAK_ERR_INVALID);
    expect(native.hak_owns(p)).toBe(abi.HAK_OK);
    expect(native.hak_free(p)).toBe(abi.HAK_OK);
    expect(native.hak_alloc(abi.HAK_SIZE_MAX + 1)).toBeNull();
    expect(native.hak_aligned_alloc(abi.HAK_ALIGNMENT_MAX * 2, 16)).toBeNull();
  });

  test("a double free has its own code, HAK_ERR_DOUBLE_FREE, in every tier", () => {
    expect(abi.HAK_ERR_DOUBLE_FREE).toBe(-4);
    for (const size of [64, 3000, 200_000, abi.HAK_MID_MAX_DEFAULT + 1]) {
      const p = native.hak_alloc(size)!;
      expect(native.hak_free(p)).toBe(abi.HAK_OK);
      expect(native.hak_free(p)).toBe(abi.HAK_ERR_DOUBLE_FREE);
    }
  });
});

/** Files under `dir` (relative to the repository) whose name ends with one of `exts`. */
function sources(dir: string, exts: string[]): string[] {
  const out: string[] = [];
  const walk = (d: string, depth: number) => {
    if (depth > 6) return;
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, e.name);
      if (e.isDirectory()) walk(path, depth + 1);
      else if (exts.some((x) => e.name.endsWith(x))) out.push(relative(REPO, path));
    }
  };
  walk(join(REPO, dir), 0);
  return out;
}

// Regression: MAX_SIZE was 2^47 in TS against 2^46 in Zig, `1 << 46` was written three
// times, and src/stats.ts read 8 globals of 12.
test("no other file keeps its own copy of an ABI constant", () => {
  const generatedOrSource = new Set(["zig/abi.zig", "zig/tools/abi_gen.zig", "src/abi.ts", "zig/hakmem.h"]);
  const copies: RegExp[] = [
    /1 << 4[67]\b/, // the size limit
    /2 \*\* 4[67]\b/,
    /const HAK_(OK|ERR_\w+)\b[^=]*= *-?\d/, // return codes
    /\b(FIELDS|GLOBALS) = \d+/, // the stats layout
    /field_names|global_names/,
    /\[\s*"tiny",\s*"mid",\s*"large"\s*\]/, // the tier order
    /\[\s*"off",\s*"abort",\s*"warn"\s*\]/, // the check modes
    /enum\(u8\) \{ tiny = 0/,
  ];
  const found: string[] = [];
  for (const file of [...sources("zig", [".zig", ".h"]), ...sources("src", [".ts"])]) {
    if (generatedOrSource.has(file)) continue;
    readFileSync(join(REPO, file), "utf8").split("\n").forEach((line, i) => {
      if (copies.some((re) => re.test(line))) found.push(`${file}:${i + 1}: ${line.trim()}`);
    });
  }
  expect(found).toEqual([]);
});
