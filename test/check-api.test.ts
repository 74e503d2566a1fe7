// setCheckMode from TypeScript: allowed before the first allocation, refused after it,
// and a check-mode run reports misuse through the API's own checks or the library's.
import { expect, test } from "bun:test";
import { spawnBun } from "./helpers/spawn.ts";

async function script(source: string) {
  const r = await spawnBun(["-e", source], { env: { ...process.env, HAKMEM_CHECK: "" } });
  return { code: r.code, out: r.stdout, err: r.stderr };
}

test("setCheckMode before the first allocation turns check mode on", async () => {
  const r = await script(`
    import * as h from "./src/index.ts";
    import { toArrayBuffer } from "bun:ffi";
    h.setCheckMode("warn");
    const p = h.alloc(40);
    new Uint8Array(toArrayBuffer(p, 0, 41))[40] = 1;   // one byte past the request (view() refuses)
    console.log(h.checkMode(), h.usableSize(p));
    h.free(p);
  `);
  expect(r.out.trim()).toBe("warn 40");
  expect(r.err).toMatch(/hakmem: CHECK: write past the requested size of 0x[0-9a-f]+ \(tiny tier/);
  expect(r.code).toBe(0);
});

test("setCheckMode after an allocation is refused with a clear error", async () => {
  const r = await script(`
    import * as h from "./src/index.ts";
    h.free(h.alloc(8));
    try { h.setCheckMode("abort"); } catch (e) { console.log(e instanceof RangeError, e.name, e.code, e.message); }
    try { h.setCheckMode("loud"); } catch (e) { console.log(e instanceof TypeError, e.name, e.code); }
  `);
  expect(r.out).toContain("true RangeError INVALID hakmem.setCheckMode: check mode can only be set before the first allocation");
  expect(r.out).toContain("true TypeError INVALID");
  expect(r.code).toBe(0);
});

test("check mode (=warn) reports a double free and hak_free returns HAK_ERR_DOUBLE_FREE; free throws DOUBLE_FREE", async () => {
  const r = await script(`
    import * as h from "./src/index.ts";
    import { native } from "./src/ffi.ts";
    h.setCheckMode("warn");
    const p = h.alloc(40);
    h.free(p);
    console.log("rc", native.hak_free(p));
    try { h.free(p); } catch (e) { console.log(e instanceof RangeError, e.code); }
    const q = h.alloc(40);
    console.log("interior", native.hak_free(q + 8));
    h.free(q);
  `);
  expect(r.out).toContain("rc -4");
  expect(r.out).toContain("true DOUBLE_FREE");
  expect(r.out).toContain("interior -2");
  expect(r.err).toMatch(/hakmem: CHECK: double free of 0x[0-9a-f]+/);
  expect(r.code).toBe(0);
});
