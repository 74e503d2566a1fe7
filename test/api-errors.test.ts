// api-errors.test.ts — the Bun API's errors and its first-use loading: every error is a
// HakmemError with a code (and still the TypeError/RangeError the README promises), option
// typos are rejected, and importing the library opens nothing.
import { describe, expect, test } from "bun:test";
import { ptr } from "bun:ffi";
import * as hakmem from "../src/index.ts";
import { HakmemError, HakmemRangeError } from "../src/index.ts";
import { spawnBun } from "./helpers/spawn.ts";

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error("expected a throw");
}

describe("one error class with a code", () => {
  test("a double free is a RangeError and a HakmemError, code DOUBLE_FREE, in every tier", () => {
    for (const size of [64, 3000, 200_000, 3_000_000]) {
      const p = hakmem.alloc(size);
      hakmem.free(p);
      const e = thrown(() => hakmem.free(p));
      expect(e).toBeInstanceOf(RangeError);
      expect(e).toBeInstanceOf(HakmemError);
      expect(e).toBeInstanceOf(HakmemRangeError);
      expect((e as HakmemError).code).toBe("DOUBLE_FREE");
      expect(String(e)).toContain("a double free");
    }
  });

  test("a pointer inside a live block: INVALID, not DOUBLE_FREE", () => {
    const p = hakmem.alloc(64);
    const e = thrown(() => hakmem.free(p + 16));
    expect(e).toBeInstanceOf(RangeError);
    expect((e as HakmemError).code).toBe("INVALID");
    hakmem.free(p);
  });

  test("a pointer hakmem does not own: NOT_OWNED", () => {
    const e = thrown(() => hakmem.free(ptr(new Uint8Array(64))));
    expect(e).toBeInstanceOf(RangeError);
    expect((e as HakmemError).code).toBe("NOT_OWNED");
  });

  test("bad arguments: TypeError or RangeError, code INVALID", () => {
    const t = thrown(() => hakmem.alloc("12" as unknown as number));
    expect(t).toBeInstanceOf(TypeError);
    expect(t).toBeInstanceOf(HakmemError);
    expect((t as HakmemError).code).toBe("INVALID");
    const r = thrown(() => hakmem.alloc(-1));
    expect(r).toBeInstanceOf(RangeError);
    expect((r as HakmemError).code).toBe("INVALID");
  });

  test("a request the machine cannot hold: OUT_OF_MEMORY, a plain HakmemError", () => {
    const e = thrown(() => hakmem.alloc(hakmem.MAX_SIZE));
    expect(e).toBeInstanceOf(HakmemError);
    expect(e).not.toBeInstanceOf(RangeError);
    expect((e as HakmemError).code).toBe("OUT_OF_MEMORY");
  });

  test("other errors are not HakmemErrors", () => {
    expect(new Error("x")).not.toBeInstanceOf(HakmemError);
    expect(new RangeError("x")).not.toBeInstanceOf(HakmemError);
  });
});

describe("option typos are rejected", () => {
  test("kernels.randomMixed({ sed: 42 }) throws naming the key", () => {
    const e = thrown(() => hakmem.kernels.randomMixed({ cycles: 10, ws: 4, min: 16, max: 64, sed: 42 } as never));
    expect(e).toBeInstanceOf(TypeError);
    expect(String(e)).toContain('"sed"');
    expect(hakmem.kernels.randomMixed({ cycles: 10, ws: 4, min: 16, max: 64, seed: 42 })).toBeGreaterThan(0);
  });

  test("collect takes a boolean only", () => {
    expect(thrown(() => hakmem.collect("x" as unknown as boolean))).toBeInstanceOf(TypeError);
    expect(thrown(() => hakmem.collect(1 as unknown as boolean))).toBeInstanceOf(TypeError);
    hakmem.collect(true);
    hakmem.collect();
  });
});

describe("the library is opened on first use", () => {
  test("importing with a missing library succeeds; the first call throws LIBRARY", async () => {
    const script = `
      import * as h from "./src/index.ts";
      import { libraryLoaded } from "./src/ffi.ts";
      console.log("imported", libraryLoaded());
      try { h.alloc(8); } catch (e) { console.log("code", e.code, e instanceof h.HakmemError); }
    `;
    const r = await spawnBun(["-e", script], { env: { ...process.env, HAKMEM_LIB: "/nonexistent/libhakmem.so" } });
    expect(r.stderr).toBe("");
    expect(r.stdout).toContain("imported false");
    expect(r.stdout).toContain("code LIBRARY true");
  });

  test("a call through a stub loads the library and forwards the call", async () => {
    const r = await spawnBun(["-e", `
      import { libraryLoaded, native } from "./src/ffi.ts";
      const before = libraryLoaded();
      const p = native.hak_alloc(32);
      console.log(before, libraryLoaded(), p > 0, native.hak_free(p));
    `]);
    expect(r.stdout.trim()).toBe("false true true 0");
  });
});
