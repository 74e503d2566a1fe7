// commit.test.ts — hakmem promises only memory the OS will commit: a request beyond what
// the machine has (RAM + swap) fails with NULL/ENOMEM under preload and throws from Bun,
// as glibc's malloc fails; a block of a few GiB still works. Regression: large blocks were
// mapped MAP_NORESERVE, so malloc(64 GiB) on a 23 GiB machine returned a pointer.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import * as h from "../src/index.ts";
import { explain, runC } from "./helpers/c.ts";

function meminfoMiB(key: string): number {
  const line = readFileSync("/proc/meminfo", "utf8").split("\n").find((l) => l.startsWith(`${key}:`));
  return line ? Math.floor(Number(line.split(/\s+/)[1]) / 1024) : 0;
}

// Only the kernel's default heuristic (0) refuses a single request beyond RAM + swap.
const heuristic = readFileSync("/proc/sys/vm/overcommit_memory", "utf8").trim() === "0";
const machineMiB = meminfoMiB("MemTotal") + meminfoMiB("SwapTotal");
const beyondMiB = Math.max(64 * 1024, 2 * machineMiB);

describe.skipIf(!heuristic)("memory the OS cannot commit", () => {
  test(`preloaded malloc(${beyondMiB} MiB) is NULL with ENOMEM; malloc(4 GiB) works`, async () => {
    const beyond = await runC("commit_limit", [String(beyondMiB)]);
    expect(beyond.stdout, explain(beyond)).toBe("NULL errno=ENOMEM\n");
    const system = await runC("commit_limit", [String(beyondMiB)], { preload: false });
    expect(system.stdout, explain(system)).toBe("NULL errno=ENOMEM\n"); // glibc agrees
    const four = await runC("commit_limit", ["4096"]);
    expect(four.stdout, explain(four)).toBe("OK\n");
    expect(four.code, explain(four)).toBe(0);
  });

  test("alloc beyond the machine throws from Bun; alloc(2**40) too", () => {
    expect(() => h.alloc(beyondMiB * 2 ** 20)).toThrow(/out of memory/);
    expect(() => h.alloc(2 ** 40)).toThrow(/out of memory/);
    const p = h.alloc(2 ** 30);
    h.free(p);
  });
});
