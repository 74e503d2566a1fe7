// kernels.ts — the native workload kernels of zig/tools/kernels.zig, with validated arguments.
//
// Each kernel runs its whole loop in native code (libhakmem_kernels.so, calling hakmem's
// hak_alloc/hak_free through the PLT, as a peer's kernel calls its malloc/free) and returns
// the elapsed time of that loop in nanoseconds, so a measurement sees the allocator and not
// the FFI crossing. All
// are deterministic for a given seed. Shared state for cross-thread runs (a Larson block
// array, a producer/consumer queue) is a plain pointer that can be posted to other Workers.
import { kernelsNative, native } from "./ffi.ts";
import { checkCount, checkKeys, checkObject, checkPointer, checkSize, type Pointer } from "./check.ts";
import { HakmemError, HakmemRangeError, HakmemTypeError } from "./errors.ts";

const done = new BigUint64Array(1);

/**
 * The options object of kernel `fn`, or a TypeError saying which fields it needs; a key
 * that is not one of `fields` ("{ cycles, ws, seed? }") is a TypeError too (a typo such as
 * `sed` would otherwise silently use the default).
 */
function optionsOf<T>(fn: string, options: T, fields: string): T {
  const given = checkObject(`kernels.${fn}`, `an options object ${fields}`, options);
  const known = fields.replace(/[{}?\s]/g, "").split(",");
  checkKeys(`kernels.${fn}`, given, known);
  return options;
}

/** [min, max] request sizes: integers with min <= max. */
function sizeRange(fn: string, options: { min: unknown; max: unknown }): [number, number] {
  const min = checkSize(fn, "min", options.min);
  const max = checkSize(fn, "max", options.max);
  if (min > max) throw new HakmemRangeError("INVALID", `hakmem.${fn}: min ${min} is above max ${max} (sizes are drawn from [min, max])`);
  return [min, max];
}

/** A count that must be at least 1 (slots, array entries). */
function atLeastOne(fn: string, what: string, value: unknown): number {
  const n = checkSize(fn, what, value);
  if (n < 1) throw new HakmemRangeError("INVALID", `hakmem.${fn}: ${what} must be at least 1, got ${n}`);
  return n;
}

/** An empty native call: the FFI floor. */
export function noop(): void {
  kernelsNative().hak_kernel_noop();
}

export interface PairsOptions {
  /** bytes per allocation */
  size: number;
  /** number of malloc+free pairs */
  n: number;
  /** address of a C malloc-like function (see symbolAddress); default hak_alloc */
  alloc?: number;
  /** address of a C free-like function; default hak_free */
  free?: number;
}

/** `n` alloc+free pairs of `size` bytes, through other allocators' functions if given. */
export function pairs(options: PairsOptions): number {
  optionsOf("pairs", options, "{ size, n, alloc?, free? }");
  const size = checkSize("kernels.pairs", "size", options.size);
  const n = checkCount("kernels.pairs", "n", options.n);
  const allocFn = options.alloc === undefined ? null : checkPointer("kernels.pairs", options.alloc);
  const freeFn = options.free === undefined ? null : checkPointer("kernels.pairs", options.free);
  if ((allocFn === null) !== (freeFn === null)) {
    throw new HakmemTypeError("hakmem.kernels.pairs: give both alloc and free function addresses, or neither");
  }
  return kernelsNative().hak_kernel_pairs(allocFn, freeFn, size, n);
}

export interface RandomMixedOptions {
  /** number of steps */
  cycles: number;
  /** working set: number of slots */
  ws: number;
  /** smallest and largest request in bytes */
  min: number;
  max: number;
  seed?: number;
}

/**
 * Random alloc/free over `ws` slots (at least 1): each step frees a random occupied slot or
 * fills an empty one with a block of [min, max] bytes (min <= max). Returns elapsed ns.
 */
export function randomMixed(options: RandomMixedOptions): number {
  const fn = "kernels.randomMixed";
  optionsOf("randomMixed", options, "{ cycles, ws, min, max, seed? }");
  const cycles = checkCount(fn, "cycles", options.cycles);
  const ws = atLeastOne(fn, "ws", options.ws);
  const [min, max] = sizeRange(fn, options);
  const seed = checkCount(fn, "seed", options.seed ?? 1);
  return kernelsNative().hak_kernel_random_mixed(cycles, ws, seed, min, max);
}

export interface LarsonOptions {
  /** entries in the block array */
  nblocks: number;
  min: number;
  max: number;
  /** blocks replaced by one round */
  replacements: number;
  seed?: number;
}

/** A zeroed array of `nblocks` block pointers (allocated with hakmem) for the Larson kernels. */
export function newBlockArray(nblocks: number): Pointer {
  checkSize("kernels.newBlockArray", "nblocks", nblocks);
  const p = native.hak_calloc(Math.max(nblocks, 1), 8);
  if (p === null) throw new HakmemError("OUT_OF_MEMORY", `hakmem.kernels.newBlockArray: out of memory (${nblocks} entries)`);
  return p;
}

/** Frees every block in the array, then the array; returns how many blocks were freed. */
export function freeBlockArray(array: number, nblocks: number): number {
  const a = checkPointer("kernels.freeBlockArray", array);
  const freed = freeAll(a, nblocks);
  native.hak_free(a);
  return freed;
}

/** Fills every empty entry of the array with a fresh block; returns elapsed ns. */
export function larsonFill(array: number, options: Omit<LarsonOptions, "replacements">): number {
  const fn = "kernels.larsonFill";
  const a = checkPointer(fn, array);
  optionsOf("larsonFill", options, "{ nblocks, min, max, seed? }");
  const nblocks = atLeastOne(fn, "nblocks", options.nblocks);
  const [min, max] = sizeRange(fn, options);
  const seed = checkCount(fn, "seed", options.seed ?? 1);
  return kernelsNative().hak_kernel_larson_fill(a, nblocks, min, max, seed);
}

/**
 * One Larson round: `replacements` times, free a random entry's block (possibly allocated
 * by another thread) and allocate a new one in its place. Returns elapsed ns.
 */
export function larsonRound(array: number, options: LarsonOptions): number {
  const fn = "kernels.larsonRound";
  const a = checkPointer(fn, array);
  optionsOf("larsonRound", options, "{ nblocks, min, max, replacements, seed? }");
  const nblocks = atLeastOne(fn, "nblocks", options.nblocks);
  const [min, max] = sizeRange(fn, options);
  const replacements = checkCount(fn, "replacements", options.replacements);
  const seed = checkCount(fn, "seed", options.seed ?? 1);
  return kernelsNative().hak_kernel_larson_round(a, nblocks, min, max, replacements, seed);
}

/** Frees every block in the array and empties its entries; returns how many were freed. */
export function freeAll(array: number, nblocks: number): number {
  const a = checkPointer("kernels.freeAll", array);
  checkSize("kernels.freeAll", "nblocks", nblocks);
  return kernelsNative().hak_kernel_free_all(a, nblocks);
}

/** A bounded lock-free queue of block pointers (capacity rounded up to a power of two). */
export function queueNew(capacity: number): Pointer {
  const cap = checkSize("kernels.queueNew", "capacity", capacity);
  if (cap > 2 ** 32) throw new HakmemRangeError("INVALID", `hakmem.kernels.queueNew: capacity ${cap} is above 2^32`);
  const q = kernelsNative().hak_kernel_queue_new(cap);
  if (q === null) throw new HakmemError("OUT_OF_MEMORY", `hakmem.kernels.queueNew: out of memory (capacity ${cap})`);
  return q;
}

/** Frees the blocks still queued and the queue itself; returns how many blocks it freed. */
export function queueFree(queue: number): number {
  return kernelsNative().hak_kernel_queue_free(checkPointer("kernels.queueFree", queue));
}

export interface KernelRun {
  elapsedNs: number;
  /** blocks produced or consumed (less than asked only if the other side stalled 5 s) */
  done: number;
}

/** Allocates `count` blocks of [min, max] bytes and pushes them on the queue. */
export function produce(queue: number, options: { count: number; min: number; max: number; seed?: number }): KernelRun {
  const fn = "kernels.produce";
  const q = checkPointer(fn, queue);
  optionsOf("produce", options, "{ count, min, max, seed? }");
  const count = checkCount(fn, "count", options.count);
  const [min, max] = sizeRange(fn, options);
  const seed = checkCount(fn, "seed", options.seed ?? 1);
  const elapsedNs = kernelsNative().hak_kernel_produce(q, count, min, max, seed, done);
  return { elapsedNs, done: Number(done[0]) };
}

/** Pops `count` blocks from the queue and frees them (remote frees when another thread made them). */
export function consume(queue: number, options: { count: number }): KernelRun {
  const q = checkPointer("kernels.consume", queue);
  optionsOf("consume", options, "{ count }");
  const count = checkCount("kernels.consume", "count", options.count);
  const elapsedNs = kernelsNative().hak_kernel_consume(q, count, done);
  return { elapsedNs, done: Number(done[0]) };
}
