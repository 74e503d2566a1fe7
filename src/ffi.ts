// ffi.ts — the one place where libhakmem.so (and libhakmem_kernels.so) is opened and every
// FFI symbol is declared.
//
// The library path is $HAKMEM_LIB, else <repo>/zig-out/lib/libhakmem.so (`npm run build`).
// The workload kernels (zig/tools/kernels.zig) are a library of their own, libhakmem_kernels.so,
// so that libhakmem.so exports only the libc names and hak_*: it is opened on the first
// kernel call, after libhakmem.so, from beside $HAKMEM_LIB or else from <repo>/zig-out/lib.
// Its hak_alloc/hak_free calls bind to the libhakmem.so loaded already (the loader matches
// its DT_NEEDED by soname), so the kernels and every hak_* call here share one allocator.
// Hot calls take and return plain numbers (`ptr`, `u64_fast`, `u32`, `i32`), never BigInt.
// Everything here is raw: src/index.ts validates arguments before they cross into C.
//
// Nothing is opened when this module is imported: `native` starts as one stub per symbol;
// the first call of any of them opens the library (`loadLibrary`), puts the real functions
// in the stubs' place on `native` and forwards the call. After that a call is a plain
// property load, as before; a missing library is an error at that first call (code
// LIBRARY, src/errors.ts), so importing hakmem never fails and costs no dlopen.
//
// Raw addresses of other allocators (for hak_kernel_pairs). A symbol loaded with bun:ffi
// `dlopen` carries its native address in `.ptr` (a number), so e.g.
//
//   const libc = dlopen("libc.so.6", { malloc: { args: ["u64"], returns: "ptr" },
//                                      free: { args: ["ptr"], returns: "void" } });
//   libc.symbols.malloc.ptr   // the address of glibc's malloc, a number
//
// `symbolAddress(library, name)` below does exactly that (and keeps the library open so
// the address stays valid); pass the results to `kernels.pairs({ alloc, free, ... })`.
import { dlopen, FFIType } from "bun:ffi";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { HakmemError } from "./errors.ts";
import { HAK_MID_MAX_LIMIT, HAK_MID_MAX_MIN, HAK_STAT_NAMES, HAK_TINY_MAX_LIMIT, STAT_FIELD_NAMES, STAT_GLOBAL_NAMES } from "./abi.ts";

const { ptr, u64_fast, u32, i32, cstring } = FFIType;
const none = FFIType.void;

/** Where the library is loaded from: $HAKMEM_LIB or the build output of `npm run build`. */
export const libraryPath: string =
  process.env.HAKMEM_LIB || resolve(import.meta.dir, "..", "zig-out", "lib", "libhakmem.so");

const symbols = {
  // allocation
  hak_alloc: { args: [u64_fast], returns: ptr },
  hak_calloc: { args: [u64_fast, u64_fast], returns: ptr },
  hak_realloc: { args: [ptr, u64_fast], returns: ptr },
  hak_aligned_alloc: { args: [u64_fast, u64_fast], returns: ptr },
  hak_free: { args: [ptr], returns: i32 },
  hak_usable_size: { args: [ptr], returns: u64_fast },
  hak_owns: { args: [ptr], returns: i32 },
  // routing
  hak_route: { args: [u64_fast], returns: i32 },
  hak_tiny_max: { args: [], returns: u64_fast },
  hak_mid_max: { args: [], returns: u64_fast },
  hak_tiny_max_limit: { args: [], returns: u64_fast },
  hak_mid_max_limit: { args: [], returns: u64_fast },
  hak_mid_max_min: { args: [], returns: u64_fast },
  hak_set_thresholds: { args: [u64_fast, u64_fast], returns: i32 },
  // size classes
  hak_class_count: { args: [], returns: u32 },
  hak_class_size: { args: [u32], returns: u64_fast },
  hak_class_of: { args: [u64_fast], returns: i32 },
  // statistics and memory return
  hak_stats_read: { args: [ptr, u64_fast], returns: u64_fast },
  hak_stat_name: { args: [u32], returns: cstring },
  hak_stats_reset: { args: [], returns: none },
  hak_stats_print: { args: [], returns: none },
  hak_collect: { args: [i32], returns: none },
  hak_memory_report: { args: [ptr, u64_fast], returns: u64_fast },
  hak_memory_part_name: { args: [u32], returns: cstring },
  hak_profile_dump: { args: [cstring], returns: i32 },
  hak_set_check_mode: { args: [i32], returns: i32 },
  hak_check_mode: { args: [], returns: i32 },
  hak_check_heap: { args: [], returns: u64_fast },
  hak_sampled: { args: [ptr], returns: i32 },
  hak_validate: { args: [], returns: i32 },
  // identity
  hak_version: { args: [], returns: cstring },
  hak_build_id: { args: [], returns: cstring },
} as const;

/** The workload kernels of libhakmem_kernels.so (zig/tools/kernels.zig); most return elapsed ns. */
const kernelSymbols = {
  hak_kernel_noop: { args: [], returns: none },
  hak_kernel_pairs: { args: [ptr, ptr, u64_fast, u64_fast], returns: u64_fast },
  hak_kernel_random_mixed: { args: [u64_fast, u64_fast, u64_fast, u64_fast, u64_fast], returns: u64_fast },
  hak_kernel_larson_round: { args: [ptr, u64_fast, u64_fast, u64_fast, u64_fast, u64_fast], returns: u64_fast },
  hak_kernel_larson_fill: { args: [ptr, u64_fast, u64_fast, u64_fast, u64_fast], returns: u64_fast },
  hak_kernel_free_all: { args: [ptr, u64_fast], returns: u64_fast },
  hak_kernel_queue_new: { args: [u64_fast], returns: ptr },
  hak_kernel_queue_free: { args: [ptr], returns: u64_fast },
  hak_kernel_produce: { args: [ptr, u64_fast, u64_fast, u64_fast, u64_fast, ptr], returns: u64_fast },
  hak_kernel_consume: { args: [ptr, u64_fast, ptr], returns: u64_fast },
  // tags, ids, args, sizes, n, slots, live sizes, slot count, out[3] (src/trace.ts)
  hak_kernel_replay: { args: [ptr, ptr, ptr, ptr, u64_fast, ptr, ptr, u64_fast, ptr], returns: u64_fast },
} as const;

function openLibrary() {
  if (!existsSync(libraryPath)) {
    throw new HakmemError(
      "LIBRARY",
      `hakmem: native library not found at ${libraryPath}. ` +
        "Run `npm run build` to build it (or set HAKMEM_LIB to the path of libhakmem.so).",
    );
  }
  let lib;
  try {
    lib = dlopen(libraryPath, symbols);
  } catch (cause) {
    throw new HakmemError(
      "LIBRARY",
      `hakmem: cannot load ${libraryPath} (${(cause as Error).message}). ` +
        "Run `npm run build` to rebuild it.",
      { cause },
    );
  }
  const mismatches = abiMismatches(lib.symbols as unknown as AbiProbe);
  if (mismatches.length > 0) {
    lib.close();
    throw new HakmemError(
      "LIBRARY",
      `hakmem: ${libraryPath} does not match src/abi.ts (${mismatches.slice(0, 3).join("; ")}). ` +
        "Run `npm run build` to rebuild it (or `npm run abi` if zig/abi.zig changed).",
    );
  }
  return lib;
}

/** The functions through which the library states its ABI (cheap, pure, callable at load). */
export interface AbiProbe {
  hak_tiny_max_limit(): number;
  hak_mid_max_min(): number;
  hak_mid_max_limit(): number;
  hak_stat_name(index: number): string | null;
}

/**
 * Where the loaded library disagrees with src/abi.ts (generated from zig/abi.zig): its
 * routing limits and its statistics layout, name by name. Empty when they agree. A library
 * built from other sources would otherwise hand out counters under the wrong names.
 */
export function abiMismatches(lib: AbiProbe): string[] {
  const out: string[] = [];
  const limits: [string, number, number][] = [
    ["tiny_max limit", lib.hak_tiny_max_limit(), HAK_TINY_MAX_LIMIT],
    ["mid_max lowest value", lib.hak_mid_max_min(), HAK_MID_MAX_MIN],
    ["mid_max limit", lib.hak_mid_max_limit(), HAK_MID_MAX_LIMIT],
  ];
  for (const [what, got, want] of limits) if (got !== want) out.push(`${what}: library ${got}, src/abi.ts ${want}`);
  const names: readonly string[] = [...STAT_FIELD_NAMES, ...STAT_GLOBAL_NAMES];
  for (let i = 0; i <= HAK_STAT_NAMES; i++) {
    const got = lib.hak_stat_name(i) ?? null;
    const want = i < HAK_STAT_NAMES ? names[i] : null;
    if (got !== want) out.push(`statistic ${i}: library ${JSON.stringify(got)}, src/abi.ts ${JSON.stringify(want)}`);
  }
  return out;
}

type Symbols = ReturnType<typeof openLibrary>["symbols"];
/** bun:ffi types 64-bit returns as `number | bigint`; sizes (< 2^53) and pointers (< 2^47) are numbers. */
type NumberReturns<F> = F extends (...args: infer A) => infer R ? (...args: A) => Exclude<R, bigint> : never;

type Native = { [K in keyof Symbols]: NumberReturns<Symbols[K]> };
let loaded: Native | null = null;

/** Opens libhakmem.so now (once; later calls return the same functions). Throws a HakmemError (LIBRARY) if it cannot. */
export function loadLibrary(): Native {
  if (loaded === null) {
    loaded = openLibrary().symbols as Native;
    Object.assign(native, loaded);
  }
  return loaded;
}

/** True once libhakmem.so has been opened (by `loadLibrary` or the first call through `native`). */
export function libraryLoaded(): boolean {
  return loaded !== null;
}

/** A stub for symbol `name`: opens the library, then calls the real function. */
function stub(name: keyof Native) {
  return (...args: unknown[]) => (loadLibrary()[name] as (...a: unknown[]) => unknown)(...args);
}

/** The raw hak_* functions (opened at the first call). Prefer the validated API in src/index.ts. */
export const native = Object.fromEntries(Object.keys(symbols).map((name) => [name, stub(name as keyof Native)])) as unknown as Native;

/**
 * Where the kernels library is loaded from: beside the allocator library when it is there
 * (a build's zig-out/lib), else the repository build's (its hak_* calls still reach the
 * allocator loaded from `libraryPath`: see the header).
 */
export function kernelsLibraryPath(): string {
  const beside = join(dirname(libraryPath), "libhakmem_kernels.so");
  if (existsSync(beside)) return beside;
  return resolve(import.meta.dir, "..", "zig-out", "lib", "libhakmem_kernels.so");
}

// Opens libhakmem.so first: the order that makes the kernels bind to that copy.
function openKernels() {
  loadLibrary();
  const path = kernelsLibraryPath();
  if (!existsSync(path)) {
    throw new HakmemError("LIBRARY", `hakmem: kernels library not found at ${path}. Run \`npm run build\` to build it.`);
  }
  try {
    return dlopen(path, kernelSymbols);
  } catch (cause) {
    throw new HakmemError("LIBRARY", `hakmem: cannot load ${path} (${(cause as Error).message}). Run \`npm run build\` to rebuild it.`, { cause });
  }
}

type KernelSymbols = ReturnType<typeof openKernels>["symbols"];
let kernelsLoaded: { [K in keyof KernelSymbols]: NumberReturns<KernelSymbols[K]> } | null = null;

/** The raw hak_kernel_* functions, loaded on first use. Prefer src/kernels.ts. */
export function kernelsNative() {
  kernelsLoaded ??= openKernels().symbols as { [K in keyof KernelSymbols]: NumberReturns<KernelSymbols[K]> };
  return kernelsLoaded;
}

const foreignLibraries: unknown[] = [];

/**
 * The native address of `name` in `library` (a path or soname such as "libc.so.6"), as a
 * number, for passing C function pointers (e.g. another allocator's malloc/free) to the
 * kernels. The library stays loaded for the life of the process.
 */
export function symbolAddress(library: string, name: string): number {
  const lib = dlopen(library, { [name]: { args: [], returns: none } });
  foreignLibraries.push(lib);
  const address = (lib.symbols[name] as unknown as { ptr: number }).ptr;
  if (!address) throw new Error(`hakmem: symbol ${name} not found in ${library}`);
  return address;
}
