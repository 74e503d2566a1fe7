// readme.test.ts — the README's constants and limits against their one source: zig/abi.zig
// (through src/abi.ts, generated from it), the library's answers, and the Zig code the
// numbers describe. A number changed in the code and not in the README (or the other way
// round) fails here, naming both.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as abi from "../src/abi.ts";
import * as hakmem from "../src/index.ts";
import { REPO } from "./helpers/spawn.ts";

const README = readFileSync(join(REPO, "README.md"), "utf8");

function zig(file: string): string {
  return readFileSync(join(REPO, "zig", file), "utf8");
}

/** The number a Zig declaration `name ... = <expr>;` gives, for the plain forms used here (a * b, 1 << n). */
function zigConst(file: string, name: string): number {
  const m = zig(file).match(new RegExp(`(?:const|var) ${name}(?:: [\\w.]+)? = ([^;]+);`));
  if (!m) throw new Error(`no ${name} in zig/${file}`);
  const expr = m[1].replace(/@as\(\w+, (\d+)\)/g, "$1").trim();
  if (!/^[\d\s*<()]+$/.test(expr)) throw new Error(`zig/${file} ${name} = ${expr}: not a plain number`);
  return Function(`return (${expr});`)() as number;
}

/** "8 KiB" -> 8192, "1 MiB" -> 1048576, "4 MiB" …; plain numbers as they are. */
function bytes(text: string): number {
  const m = text.trim().match(/^(\d+)\s*(KiB|MiB|GiB)?$/);
  if (!m) throw new Error(`not a size: ${text}`);
  return Number(m[1]) * { KiB: 1024, MiB: 1 << 20, GiB: 1 << 30, "": 1 }[m[2] ?? ""]!;
}

function found(pattern: RegExp): RegExpMatchArray {
  const m = README.match(pattern);
  if (!m) throw new Error(`README.md has no ${pattern}`);
  return m;
}

describe("README numbers are the code's", () => {
  test("default thresholds and their limits (zig/abi.zig)", () => {
    const defaults = found(/Default thresholds: `tiny_max = (\d+)`[^`]*`mid_max = ([\d ]+[KMG]iB)`/);
    expect(Number(defaults[1])).toBe(abi.HAK_TINY_MAX_DEFAULT);
    expect(bytes(defaults[2])).toBe(abi.HAK_MID_MAX_DEFAULT);
    const limits = found(/Limits: `0 ≤ tiny_max ≤ ([\d ]+[KMG]iB)`[^`]*`([\d ]+[KMG]iB) ≤ mid_max ≤ ([\d ]+[KMG]iB)`/);
    expect(bytes(limits[1])).toBe(abi.HAK_TINY_MAX_LIMIT);
    expect(bytes(limits[2])).toBe(abi.HAK_MID_MAX_MIN);
    expect(bytes(limits[3])).toBe(abi.HAK_MID_MAX_LIMIT);
    expect(hakmem.routing()).toMatchObject({ tinyMax: abi.HAK_TINY_MAX_DEFAULT, midMax: abi.HAK_MID_MAX_DEFAULT });
  });

  test("the size classes: count, and steps up to their limit", () => {
    const m = found(/8 classes per power of two up to ([\d ]+[KMG]iB)\s+\((\d+) classes\)/);
    expect(bytes(m[1])).toBe(abi.HAK_MID_MAX_LIMIT);
    expect(Number(m[2])).toBe(hakmem.routing().classes.length);
  });

  test("segments and slices (zig/base/segment_map.zig, zig/settings/size_class.zig)", () => {
    const m = found(/\*\*Segments\*\* are ([\d ]+[KMG]iB), [\d ]+[KMG]iB aligned: a header \(slice 0\) then (\d+) slices of ([\d ]+[KMG]iB)/);
    const segment = 2 ** zigConst("base/segment_map.zig", "chunk_shift");
    const slice = 2 ** zigConst("settings/size_class.zig", "slice_shift");
    expect(bytes(m[1])).toBe(segment);
    expect(bytes(m[3])).toBe(slice);
    expect(Number(m[2])).toBe(segment / slice - 1);
  });

  test("the thread cache's bounds (zig/thread/thread_cache.zig)", () => {
    const first = found(/A bin holds at most (\d+) blocks at first,\s+and no more than ([\d ]+[KMG]iB) of them \(bins of blocks above ([\d ]+[KMG]iB)/);
    expect(Number(first[1])).toBe(zigConst("thread/thread_cache.zig", "initial_blocks"));
    expect(bytes(first[2])).toBe(zigConst("thread/thread_cache.zig", "initial_bytes_per_bin"));
    expect(bytes(first[3])).toBe(zigConst("thread/thread_cache.zig", "initial_bytes_per_bin"));
    const freeOnly = found(/or up to (\d+) blocks when the bin is only\s+freed into/);
    expect(Number(freeOnly[1])).toBe(zigConst("thread/thread_cache.zig", "free_only_blocks_max"));
    const budget = found(/All the bins of a thread hold at most ([\d ]+[KMG]iB) together/);
    expect(bytes(budget[1])).toBe(zigConst("thread/thread_cache.zig", "budget_bytes"));
    const all = found(/caches of all live threads hold at most ([\d ]+[KMG]iB) of room together/);
    expect(bytes(all[1])).toBe(zigConst("thread/thread_cache.zig", "all_threads_budget_bytes"));
    const grows = found(/\(up to ([\d ]+[KMG]iB) or (\d+) blocks; ([\d ]+[KMG]iB) for blocks of\s+([\d]+)–([\d ]+[KMG]iB)/);
    expect(bytes(grows[1])).toBe(zigConst("thread/thread_cache.zig", "max_bytes_per_bin"));
    expect(Number(grows[2])).toBe(zigConst("thread/thread_cache.zig", "max_blocks"));
    expect(bytes(grows[3])).toBe(zigConst("thread/thread_cache.zig", "max_bytes_per_big_bin"));
    expect(bytes(grows[4] + " KiB")).toBe(zigConst("thread/thread_cache.zig", "big_block_min"));
    expect(bytes(grows[5])).toBe(zigConst("abi.zig", "single_block_min"));
    const idle = found(/Blocks sitting in an idle thread's cache \(at most ([\d ]+[KMG]iB) per bin, ([\d ]+[KMG]iB) for blocks of/);
    expect(bytes(idle[1])).toBe(zigConst("thread/thread_cache.zig", "max_bytes_per_bin"));
    expect(bytes(idle[2])).toBe(zigConst("thread/thread_cache.zig", "max_bytes_per_big_bin"));
  });

  test("stats().global has as many keys as zig/abi.zig's globals", () => {
    const m = found(/hakmem\.stats\(\)\.global\);\s+\/\/ \{ [^}]* \} \((\d+)\)/);
    expect(Number(m[1])).toBe(abi.HAK_STAT_GLOBALS);
    expect(Object.keys(hakmem.stats().global).length).toBe(abi.HAK_STAT_GLOBALS);
  });

  test("the configuration table: every HAKMEM_* of zig/settings/config.zig, with its default", () => {
    const config = zig("settings/config.zig");
    const known = [...config.matchAll(/\.name = "(HAKMEM_\w+)"[^\n]*?\.default = ("[^"]*"|std\.fmt\.comptimePrint\("\{d\}", \.\{(\w+)\}\))/g)];
    expect(known.length).toBeGreaterThan(8);
    const table = new Map([...README.matchAll(/^\| `(HAKMEM_\w+)` \| `?([^`|]+?)`? \|/gm)].map((m) => [m[1], m[2].trim()]));
    expect([...table.keys()].sort()).toEqual(known.map((k) => k[1]).sort());
    const fromAbi: Record<string, number> = { tiny_max_default: abi.HAK_TINY_MAX_DEFAULT, mid_max_default: abi.HAK_MID_MAX_DEFAULT };
    for (const [, name, literal, abiName] of known) {
      const readme = table.get(name)!;
      if (abiName) {
        expect({ name, bytes: readme.endsWith("M") ? Number(readme.slice(0, -1)) << 20 : Number(readme) }).toEqual({ name, bytes: fromAbi[abiName] });
      } else if (literal !== '"stderr"') {
        expect({ name, readme }).toEqual({ name, readme: literal.slice(1, -1) });
      }
    }
    const delay = found(/`HAKMEM_PURGE_DELAY_MS` \((\d+) ms\)/);
    expect(delay[1]).toBe(table.get("HAKMEM_PURGE_DELAY_MS")!);
  });

  test("the large tier's unit, region and per-block limit (zig/memory/large_units.zig)", () => {
    const units = found(/\*large\* blocks up to ([\d ]+[KMG]iB) are runs of ([\d ]+[KMG]iB) units\s+in ([\d ]+[KMG]iB) regions/);
    const unit = 2 ** zigConst("memory/large_units.zig", "unit_shift");
    expect(bytes(units[2])).toBe(unit);
    expect(bytes(units[3])).toBe(zigConst("memory/large_units.zig", "region_units") * unit);
    expect(bytes(units[1])).toBe((zigConst("memory/large_units.zig", "region_units") / 4) * unit);
  });
});
