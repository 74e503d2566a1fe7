// checked.test.ts — the checked library (zig-out/lib/libhakmem-checked.so: ReleaseSafe,
// asserts on, validators at every heap_every-th slow path and at thread exit,
// zig/thread/validate.zig) under the preloaded C test programs, and proof that its validators
// run: a freed block's key overwritten makes it abort, where the ReleaseFast library runs
// on and only hak_validate() notices. (The fuzzer's threaded run and the soak smoke run
// use the checked library too: fuzz.test.ts, soak-smoke.test.ts.)
import { describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { checkedLib, expectPass, explain, hakmemLib, runC } from "./helpers/c.ts";

const library = checkedLib();

describe("libhakmem-checked.so", () => {
  test("is built by npm run build, beside libhakmem.so", () => {
    expect(existsSync(library)).toBe(true);
  });

  test("validators run: a broken invariant aborts the checked library, hak_validate() reports it in the fast one", async () => {
    const clean = await runC("validate_probe", ["clean"], { library });
    expectPass(clean, "validate_probe");
    expect(clean.stdout).toContain("validate=0");
    const checked = await runC("validate_probe", ["corrupt"], { library });
    expect(checked.signal, explain(checked)).toBe("SIGABRT");
    expect(checked.stderr).toContain("hakmem: validate: ");
    expect(checked.stderr).toContain("FreeBlockKeyWrong");
    const fast = await runC("validate_probe", ["corrupt"], { library: hakmemLib() });
    expect(fast.code, explain(fast)).toBe(0);
    expect(fast.stdout).toContain("validate=-2");
    expect(fast.stderr).toContain("FreeBlockKeyWrong");
  });
});

describe("the preloaded C programs under the checked library", () => {
  const programs: [string, (string | number)[]][] = [
    ["api_conformance", []],
    ["stress_mt", [4, 3, 60_000, "cross"]],
    ["larson", [2, 20, 5]],
    ["prodcons", [2, 1, 300_000, 64]],
    ["thread_churn", [400, 4, 100, 32]],
    ["fork_load", [10, 2]],
    ["lifecycle", []],
    ["large_remap_race", [500, 4]],
    ["foreign_free", []],
  ];
  for (const [name, args] of programs) {
    test(`${name} ${args.join(" ")}`, async () => {
      expectPass(await runC(name, args, { library }), name);
    }, 120_000);
  }
});

describe("hak_validate()", () => {
  test("in this process (the ReleaseFast library): HAK_OK after blocks of every tier came and went", async () => {
    const { native } = await import("../src/ffi.ts");
    const hakmem = await import("../src/index.ts");
    const blocks = [16, 1000, 5000, 300_000, 3 << 20].map((size) => hakmem.alloc(size));
    expect(native.hak_validate()).toBe(0);
    for (const p of blocks) hakmem.free(p);
    expect(native.hak_validate()).toBe(0);
  });
});

describe("the C programs' command lines (test/c/test_common.h arg_in_range)", () => {
  test("a malformed or out-of-range number is refused with the usage, not run as 0", async () => {
    for (const args of [["2", "x", "1"], ["0", "10", "1"], ["2", "10"]]) {
      const r = await runC("larson", args, { library });
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.stderr).toContain("usage:");
    }
  });
});
