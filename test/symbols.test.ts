// The dynamic symbol table of libhakmem.so: it exports only the hak_* API and the libc
// allocation names, nothing else (no memcpy/memset, no compiler-rt helpers, no test code,
// no workload kernels: those are libhakmem_kernels.so's, which exports hak_kernel_* only
// and takes its allocator from libhakmem.so).
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
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

/** Undefined dynamic symbols (version suffixes stripped), from `nm -D --undefined-only`. */
function importedSymbols(lib: string): string[] {
  const nm = Bun.spawnSync(["nm", "-D", "--undefined-only", lib], { stdout: "pipe", stderr: "pipe" });
  if (nm.exitCode !== 0) throw new Error(`nm -D ${lib} failed: ${nm.stderr.toString()}`);
  return nm.stdout
    .toString()
    .split("\n")
    .map((line) => line.trim().split(/\s+/))
    .filter((fields) => fields.length >= 2)
    .map((fields) => fields[fields.length - 1]!.replace(/@.*$/, ""));
}

/** The DT_NEEDED entries of a shared object, from `readelf -d`. */
function neededLibraries(lib: string): string[] {
  const r = Bun.spawnSync(["readelf", "-d", lib], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`readelf -d ${lib} failed: ${r.stderr.toString()}`);
  return [...r.stdout.toString().matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]!);
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

  test("needs libc and the dynamic loader only: no libm (320 KiB of RSS in every preloaded process)", () => {
    const needed = neededLibraries(hakmemLib()).filter((name) => !/^(libc\.so|ld-linux)/.test(name));
    expect(needed).toEqual([]);
  });

  test("no workload kernel (hak_kernel_*): a preloaded process sees the allocator only", () => {
    expect(symbols.filter((s) => s.startsWith("hak_kernel_"))).toEqual([]);
  });

  test("every libc name and every hak_* function of hakmem.h", () => {
    const missingLibc = LIBC_NAMES.filter((s) => !symbols.includes(s));
    expect(missingLibc).toEqual([]);
    const missingApi = headerFunctions().filter((s) => !symbols.includes(s));
    expect(missingApi).toEqual([]);
  });
});

describe("libhakmem_kernels.so", () => {
  const lib = join(dirname(hakmemLib()), "libhakmem_kernels.so");

  test.skipIf(!existsSync(lib))("exports hak_kernel_* only, and allocates through libhakmem.so", () => {
    const symbols = exportedSymbols(lib);
    const allowed = new Set(LINKER_NAMES);
    expect(symbols.filter((s) => !s.startsWith("hak_kernel_") && !allowed.has(s))).toEqual([]);
    expect(symbols).toContain("hak_kernel_pairs");
    // its allocator is libhakmem.so's (one per process), reached through dynamic linking
    expect(neededLibraries(lib)).toContain("libhakmem.so");
    const imported = importedSymbols(lib);
    expect(imported).toContain("hak_alloc");
    expect(imported).toContain("hak_free");
    expect(imported.filter((s) => ["malloc", "free", "calloc", "realloc"].includes(s))).toEqual([]);
  });
});
