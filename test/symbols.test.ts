// The dynamic symbol table of libhakmem.so: it exports only the hak_* API and the libc
// allocation names, nothing else (no memcpy/memset, no compiler-rt helpers, no test code).
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { hakmemLib, REPO } from "./helpers/c.ts";

const LIBC_NAMES = [
  "malloc",
  "free",
  "calloc",
  "realloc",
  "reallocarray",
  "posix_memalign",
  "aligned_alloc",
  "memalign",
  "valloc",
  "pvalloc",
  "malloc_usable_size",
  "cfree",
  "malloc_trim",
  "mallinfo2",
];

// Linker-defined names some toolchains export from any shared object.
const LINKER_NAMES = ["_init", "_fini", "_edata", "_end", "__bss_start"];

/** Defined dynamic symbols (version suffixes stripped), from `nm -D --defined-only`. */
function exportedSymbols(lib: string): string[] {
  const nm = Bun.spawnSync(["nm", "-D", "--defined-only", lib], { stdout: "pipe", stderr: "pipe" });
  if (nm.exitCode !== 0) throw new Error(`nm -D ${lib} failed: ${nm.stderr.toString()}`);
  return nm.stdout
    .toString()
    .split("\n")
    .map((line) => line.trim().split(/\s+/))
    .filter((fields) => fields.length >= 3)
    .map((fields) => fields[2]!.replace(/@.*$/, ""));
}

/** Every function declared in zig/hakmem.h. */
function headerFunctions(): string[] {
  const header = readFileSync(join(REPO, "zig/hakmem.h"), "utf8");
  return [...new Set([...header.matchAll(/\b(hak_\w+)\s*\(/g)].map((m) => m[1]!))];
}

describe("libhakmem.so exports", () => {
  const symbols = exportedSymbols(hakmemLib());

  test("always: hak_version and hak_build_id", () => {
    expect(symbols).toContain("hak_version");
    expect(symbols).toContain("hak_build_id");
  });

  test("only hak_* and the libc allocation names", () => {
    const allowed = new Set([...LIBC_NAMES, ...LINKER_NAMES]);
    const unexpected = symbols.filter((s) => !s.startsWith("hak_") && !allowed.has(s));
    expect(unexpected).toEqual([]);
  });

  test("once malloc is exported: every libc name and every hak_* function of hakmem.h", () => {
    if (!symbols.includes("malloc")) {
      console.log("libhakmem.so does not export malloc yet (allocator core not built): checked hak_version/hak_build_id only");
      return;
    }
    const missingLibc = LIBC_NAMES.filter((s) => !symbols.includes(s));
    expect(missingLibc).toEqual([]);
    const missingApi = headerFunctions().filter((s) => !symbols.includes(s));
    expect(missingApi).toEqual([]);
  });
});
