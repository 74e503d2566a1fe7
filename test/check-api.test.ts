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
