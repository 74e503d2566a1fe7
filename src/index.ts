// index.ts — hakmem as a scriptable library (the package entry).
//
// Allocation, live tiny/mid/large routing, size classes and statistics over bun:ffi.
// Pointers are plain numbers. Bad input (non-integer, negative or absurd sizes, bad
// alignments, pointers hakmem does not own or already freed, null pointers) throws a
// TypeError or RangeError before anything reaches native code; every error thrown is a
// HakmemError with a `code` (src/errors.ts). Multi-thread runs live in src/threads.ts;
// native workload kernels in src/kernels.ts (also `kernels` here). The library is opened
// at the first call that needs it, not when this module is imported (src/ffi.ts).
import { toArrayBuffer } from "bun:ffi";
import { native } from "./ffi.ts";
import { HAK_ERR_DOUBLE_FREE, HAK_ERR_INVALID, HAK_ERR_NOT_OWNED, HAK_OK, CHECK_MODES, TIERS, type CheckMode, type Tier } from "./abi.ts";
import { checkAlignment, checkKeys, checkObject, checkPointer, checkSize, describe, hex, MAX_SIZE, type Pointer } from "./check.ts";
import { HakmemError, HakmemRangeError, HakmemTypeError } from "./errors.ts";
import { readStats, type Stats } from "./stats.ts";
import { readMemory, type MemoryReport } from "./memory.ts";

export { libraryPath, loadLibrary, symbolAddress } from "./ffi.ts";
export { HakmemError, HakmemRangeError, HakmemTypeError, type HakmemErrorCode } from "./errors.ts";
export { statsDelta, totalOf, type Stats, type TierStats, type GlobalStats } from "./stats.ts";
export { formatMemory, type MemoryReport } from "./memory.ts";
export * as kernels from "./kernels.ts";
export { MAX_SIZE };
export type { CheckMode, Pointer, Tier };

function outOfMemory(fn: string, bytes: number | string): never {
  throw new HakmemError("OUT_OF_MEMORY", `hakmem.${fn}: out of memory (could not allocate ${bytes} bytes)`);
}

/** Throws unless `ptr` is the start of a live hakmem block. */
function checkLive(fn: string, ptr: unknown): Pointer {
  const p = checkPointer(fn, ptr);
  const rc = native.hak_owns(p);
  if (rc !== HAK_OK) throw notLive(fn, p, rc);
  return p;
}

function notLive(fn: string, ptr: number, rc: number): HakmemRangeError {
  if (rc === HAK_ERR_NOT_OWNED) return new HakmemRangeError("NOT_OWNED", `hakmem.${fn}: ${hex(ptr)} is not memory owned by hakmem`);
  if (rc === HAK_ERR_DOUBLE_FREE) {
    return new HakmemRangeError("DOUBLE_FREE", `hakmem.${fn}: ${hex(ptr)} is not a live block (already freed: a double free)`);
  }
  if (rc === HAK_ERR_INVALID) {
    return new HakmemRangeError("INVALID", `hakmem.${fn}: ${hex(ptr)} is not a live block (already freed, or inside a block)`);
  }
  return new HakmemRangeError("INVALID", `hakmem.${fn}: ${hex(ptr)} was rejected (error ${rc})`);
}

// ---------------------------------------------------------------------------------------
// Allocation

/** Allocates `size` bytes; returns the block's address. */
export function alloc(size: number): Pointer {
  checkSize("alloc", "size", size);
  return native.hak_alloc(size) ?? outOfMemory("alloc", size);
}

/** Allocates `count * size` zeroed bytes. */
export function calloc(count: number, size: number): Pointer {
  checkSize("calloc", "count", count);
  checkSize("calloc", "size", size);
  if (count * size > MAX_SIZE) {
    throw new HakmemRangeError("INVALID", `hakmem.calloc: ${count} × ${size} bytes is absurdly large (limit 2^${Math.log2(MAX_SIZE)} = ${MAX_SIZE})`);
  }
  return native.hak_calloc(count, size) ?? outOfMemory("calloc", `${count} × ${size}`);
}

/**
 * Resizes a live block (possibly moving it); on failure the old block stays valid.
 * `realloc(p, 0)` returns a valid minimum-size block, like `alloc(0)` (the rule of the
 * hak_* API, zig/hakmem.h; a program's preloaded C `realloc(p, 0)` frees p and returns NULL
 * as glibc does).
 */
export function realloc(ptr: number, size: number): Pointer {
  checkSize("realloc", "size", size);
  const p = checkLive("realloc", ptr);
  return native.hak_realloc(p, size) ?? outOfMemory("realloc", size);
}

/** Allocates `size` bytes at an address that is a multiple of `alignment` (a power of two). */
export function alignedAlloc(alignment: number, size: number): Pointer {
  checkAlignment("alignedAlloc", alignment);
  checkSize("alignedAlloc", "size", size);
  const p = native.hak_aligned_alloc(alignment, size);
  if (p === null) {
    throw new HakmemError("OUT_OF_MEMORY", `hakmem.alignedAlloc: out of memory (could not allocate ${size} bytes aligned to ${alignment}`);
  }
  return p;
}

/**
 * Frees a live block. Throws a HakmemRangeError (a RangeError) for a pointer that is no
 * live block: code DOUBLE_FREE when it is free already, NOT_OWNED when hakmem did not map
 * it, INVALID otherwise (inside a block, or freed so long ago that its memory went back).
 */
export function free(ptr: number): void {
  const p = checkPointer("free", ptr);
  const rc = native.hak_free(p);
  if (rc !== HAK_OK) throw notLive("free", p, rc);
}

/** The usable size of a live block (at least the size requested). */
export function usableSize(ptr: number): number {
  const p = checkLive("usableSize", ptr);
  return native.hak_usable_size(p);
}

/** True when `ptr` is the start of a live hakmem block. */
export function owns(ptr: number): boolean {
  const p = checkPointer("owns", ptr);
  return native.hak_owns(p) === HAK_OK;
}

/**
 * A Uint8Array over the first `length` bytes of a live block (default: its usable size),
 * aliasing the block's memory: writes go straight into the block.
 *
 * The view does not keep the block alive. After the block is freed or moved by realloc,
 * the view points at memory hakmem may reuse or return to the OS: reading or writing it
 * then gives another block's bytes or crashes the process (Bun reports it as "a bug in
 * Bun"; it is a use after free). Use a view only while the block is live, or take a copy
 * with `read` and write with `write`, which check the block each time.
 */
export function view(ptr: number, length?: number): Uint8Array {
  const p = checkLive("view", ptr);
  const len = checkLength("view", p, length);
  if (len === 0) return new Uint8Array(0);
  return new Uint8Array(toArrayBuffer(p, 0, len));
}

/** The length to use for the block at p: `length`, else its usable size; never beyond it. */
function checkLength(fn: string, p: Pointer, length: number | undefined, offset = 0): number {
  const usable = native.hak_usable_size(p);
  const len = length === undefined ? usable - offset : checkSize(fn, "length", length);
  if (offset + len > usable) {
    throw new HakmemRangeError("INVALID", `hakmem.${fn}: ${offset ? `offset ${offset} + ` : ""}length ${len} exceeds the block's usable size ${usable}`);
  }
  return len;
}

/**
 * A copy of `length` bytes of a live block from `offset` (default: the rest of the block):
 * safe to keep after the block is freed. Throws for a block that is not live.
 */
export function read(ptr: number, length?: number, offset = 0): Uint8Array {
  const p = checkLive("read", ptr);
  const off = checkSize("read", "offset", offset);
  const len = checkLength("read", p, length, off);
  if (len === 0) return new Uint8Array(0);
  return new Uint8Array(toArrayBuffer(p, off, len)).slice();
}

/** Copies `bytes` into a live block at `offset` (default 0); throws if they do not fit. */
export function write(ptr: number, bytes: ArrayLike<number> | ArrayBufferView, offset = 0): void {
  const p = checkLive("write", ptr);
  const off = checkSize("write", "offset", offset);
  const source = ArrayBuffer.isView(bytes) ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) : bytes;
  if (typeof source !== "object" || source === null || typeof source.length !== "number") {
    throw new HakmemTypeError(`hakmem.write: expected bytes (a Uint8Array, a typed array or an array of numbers), got ${describe(bytes)}`);
  }
  const len = checkLength("write", p, source.length, off);
  if (len === 0) return;
  new Uint8Array(toArrayBuffer(p, off, len)).set(source);
}

// ---------------------------------------------------------------------------------------
// Routing and size classes

/** The tier a request of `size` bytes goes to under the current thresholds. */
export function route(size: number): Tier {
  checkSize("route", "size", size);
  return TIERS[native.hak_route(size)];
}

export interface SizeClass {
  /** class index */
  class: number;
  /** block size of the class in bytes */
  size: number;
  /** the tier a request of exactly `size` bytes routes to under the current thresholds */
  tier: Tier;
}

export interface Routing {
  tinyMax: number;
  midMax: number;
  /** largest tinyMax (0 turns the tiny tier off) */
  tinyMaxLimit: number;
  /** smallest midMax: smaller requests never go to the large tier */
  midMaxMin: number;
  /** largest midMax */
  midMaxLimit: number;
  classes: SizeClass[];
}

/** The thresholds, their limits and the whole size-class table with each class's tier now. */
export function routing(): Routing {
  const classes: SizeClass[] = [];
  const count = native.hak_class_count();
  for (let c = 0; c < count; c++) {
    const size = native.hak_class_size(c);
    classes.push({ class: c, size, tier: TIERS[native.hak_route(size)] });
  }
  return {
    tinyMax: native.hak_tiny_max(),
    midMax: native.hak_mid_max(),
    tinyMaxLimit: native.hak_tiny_max_limit(),
    midMaxMin: native.hak_mid_max_min(),
    midMaxLimit: native.hak_mid_max_limit(),
    classes,
  };
}

/** The size class of a request (-1 above the mid limit: the large tier has no classes). */
export function classOf(size: number): number {
  checkSize("classOf", "size", size);
  return native.hak_class_of(size);
}

const ROUTING_KEYS = ["tinyMax", "midMax"] as const;

/**
 * Changes the thresholds live: sizes ≤ tinyMax go to tiny, ≤ midMax to mid, the rest to
 * large. Omitted (or undefined) fields keep their value; an unknown key or a value that is
 * not an integer throws a TypeError, a value out of its range a RangeError:
 * tinyMax in [0, tinyMaxLimit] (0 turns the tiny tier off), midMax in [midMaxMin,
 * midMaxLimit] (see routing()). Blocks already allocated stay valid.
 */
export function setRouting(thresholds: { tinyMax?: number; midMax?: number }): void {
  const given = checkObject("setRouting", "an object { tinyMax?, midMax? }", thresholds);
  checkKeys("setRouting", given, ROUTING_KEYS);
  const tinyMax = given.tinyMax === undefined ? native.hak_tiny_max() : checkSize("setRouting", "tinyMax", given.tinyMax);
  const midMax = given.midMax === undefined ? native.hak_mid_max() : checkSize("setRouting", "midMax", given.midMax);
  const tinyLimit = native.hak_tiny_max_limit();
  const midMin = native.hak_mid_max_min();
  const midLimit = native.hak_mid_max_limit();
  if (tinyMax > tinyLimit) throw new HakmemRangeError("INVALID", `hakmem.setRouting: tinyMax ${tinyMax} is above its limit ${tinyLimit}`);
  if (midMax > midLimit) throw new HakmemRangeError("INVALID", `hakmem.setRouting: midMax ${midMax} is above its limit ${midLimit}`);
  if (midMax < midMin) {
    throw new HakmemRangeError("INVALID", 
      `hakmem.setRouting: midMax ${midMax} is below its lowest value ${midMin} (smaller requests would each get a mapping of their own from the large tier)`,
    );
  }
  if (tinyMax > midMax) throw new HakmemRangeError("INVALID", `hakmem.setRouting: tinyMax ${tinyMax} is above midMax ${midMax}`);
  const rc = native.hak_set_thresholds(tinyMax, midMax);
  if (rc !== HAK_OK) throw new HakmemRangeError("INVALID", `hakmem.setRouting: thresholds ${tinyMax}/${midMax} rejected (error ${rc})`);
}

// ---------------------------------------------------------------------------------------
// Statistics, memory return, identity

/** Per-tier and global counters, summed over all threads (live and exited). */
export function stats(): Stats {
  return readStats();
}

/**
 * Where the memory goes: the allocator's resident memory split into live bytes, rounding
 * waste, thread caches, free blocks in pages, empty dirty pages, retained large memory and
 * metadata, with the kernel's RSS beside it (zig/process/memory_report.zig; fields: src/abi.ts
 * MemoryReport).
 */
export function memory(): MemoryReport {
  return readMemory();
}

/**
 * Writes the sampled heap profile (HAKMEM_PROFILE) now, in the pprof format, to `path`
 * (default: the HAKMEM_PROFILE path). Throws when profiling is off or the file cannot be written.
 */
export function dumpProfile(path?: string): void {
  const rc = native.hak_profile_dump(path === undefined ? null : Buffer.from(`${path}\0`));
  if (rc !== HAK_OK) throw new Error(`hakmem.dumpProfile: ${rc === HAK_ERR_INVALID ? "profiling is off (set HAKMEM_PROFILE)" : `cannot write ${path ?? "the profile"}`}`);
}

/** Zeroes the event counters (allocs, frees, remote frees, purges, cache hits/misses). */
export function resetStats(): void {
  native.hak_stats_reset();
}

/** Prints the HAKMEM_STATS=1 summary to stderr. */
export function printStats(): void {
  native.hak_stats_print();
}

/** Returns empty memory to the OS now (all of it, ignoring the decay, when `force`). */
export function collect(force: boolean = false): void {
  if (typeof force !== "boolean") throw new HakmemTypeError(`hakmem.collect: force must be true or false, got ${describe(force)}`);
  native.hak_collect(force ? 1 : 0);
}


/**
 * Check mode (as HAKMEM_CHECK): canaries, trailers and freed-block patterns make double
 * frees, interior/foreign frees, overflows and writes to freed blocks report on stderr
 * (then abort, or continue with "warn"). Only before the process's first allocation.
 */
export function setCheckMode(mode: CheckMode): void {
  const code = CHECK_MODES.indexOf(mode as CheckMode);
  if (code < 0) throw new HakmemTypeError(`hakmem.setCheckMode: check mode must be one of ${CHECK_MODES.join(", ")}, got ${String(mode)}`);
  if (native.hak_set_check_mode(code) !== HAK_OK) {
    throw new HakmemRangeError("INVALID", "hakmem.setCheckMode: check mode can only be set before the first allocation (set HAKMEM_CHECK in the environment instead)");
  }
}

export function checkMode(): CheckMode {
  return CHECK_MODES[native.hak_check_mode()] ?? "off";
}

/**
 * Check mode: checks every live block's redzones and every freed block's poison now (each
 * problem is reported on stderr); returns how many it found. 0 outside check mode.
 */
export function checkHeap(): number {
  return Number(native.hak_check_heap());
}

/** True when `ptr` is a live guarded sample (HAKMEM_GUARD_SAMPLE_MB; on by default). */
export function sampled(ptr: number): boolean {
  return native.hak_sampled(checkPointer("sampled", ptr) as Pointer) === 1;
}

export function version(): string {
  return String(native.hak_version());
}

/** A hash of the Zig sources the library was built from. */
export function buildId(): string {
  return String(native.hak_build_id());
}
