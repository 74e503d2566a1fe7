// fuzz.ts — randomized API testing of hakmem: a seeded generator of long operation sequences
// (alloc, calloc, realloc across tiers, alignedAlloc 16 B..1 MiB, free, usableSize, live
// routing changes, collect) run through the TypeScript API, with a model of every live block
// that checks the invariants after every step. A failure is a FuzzFailure whose message is
//   FAIL seed=<seed> [threads=<T> phase=<p> thread=<t>] step=<n> op=<op> call=<API call>: <what went wrong>
// and `bun src/fuzz-cli.ts --seed <seed> [--ops N] [--threads T]` replays it. In a threaded
// run, thread t draws from stream t of the seed; the interleaving of threads is not replayed.
//
// Invariants checked
//  * after every step, on the block(s) the step touched: alignment (16 B, and the requested
//    alignment), usableSize >= requested size and stable while the block lives, no overlap of
//    [ptr, ptr + usable) with its neighbours among all live blocks, calloc memory zero;
//  * contents: every block holds a tag-derived pattern over its whole requested size, checked
//    in full before free and realloc (realloc: the preserved prefix), on handoff to another
//    thread, and on a random sample of live blocks every few steps (all of them now and then);
//  * statistics, single thread (runFuzz): after every step, per tier, stats().liveBlocks and
//    liveBytes minus the baseline taken at the start equal the model's count and byte sum.
//    liveBytes counts a block's usable bytes. A plain block (alloc/calloc/realloc) belongs to
//    the tier route(size) gave when it was allocated, for its usable size (a realloc that
//    returns the same pointer with the same usable size keeps the block's tier). An aligned
//    block may be served from a rounded-up or padded request, so its tier and accounted
//    bytes are learned from the stats change of its allocation and checked for plausibility:
//    exactly one tier grew by one block, that tier is route(size)'s or a higher one, and the
//    bytes are in [usable, usable + alignment - 1] (usable counts from the aligned pointer);
//  * statistics, threads (runFuzzThreads): workers run their own seeded sequences at the same
//    time, so per-step global stats mean nothing; at every barrier between phases (all
//    workers idle) the main thread compares the stats with the union of the per-thread
//    models: plain blocks exactly per tier, aligned blocks as totals within the bounds above
//    (each tier's surplus non-negative, the aligned count per tier consistent with their
//    lowest possible tiers), plus no overlap among all threads' live blocks. The main thread
//    changes the thresholds between phases, and every third phase also while the workers
//    run (every millisecond): blocks allocated then have an unknown tier (their bytes are
//    still exact for plain blocks);
//  * a block freed twice in a row is rejected (RangeError) the second time;
//  * in check mode (set before the first allocation, e.g. fuzz-cli --check): the same, with
//    stats bytes as lower bounds (usable sizes are then the requested sizes) and no
//    deliberate double free; any check-mode report aborts the process (a false positive);
//  * at the end, everything freed: live blocks and bytes per tier are back at the baseline.
import { fileURLToPath } from "node:url";
import * as hak from "./index.ts";
import type { Stats, Tier } from "./index.ts";
import { HAK_TIER_LARGE, HAK_TIER_MID, HAK_TIER_TINY, TIERS } from "./abi.ts";
import { ThreadPool } from "./threads.ts";

const RANK: Record<Tier, number> = { tiny: HAK_TIER_TINY, mid: HAK_TIER_MID, large: HAK_TIER_LARGE };

// ---------------------------------------------------------------------------------------
// Seeded PRNG (xoshiro128**, seeded through splitmix32)

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  /** `stream` gives independent sequences for one seed (e.g. one per thread). */
  constructor(seed: number, stream = 0) {
    let x = (seed >>> 0) ^ Math.imul(Math.floor(seed / 2 ** 32) >>> 0, 0x9e3779b9) ^ Math.imul(stream, 0x27d4eb2f);
    const next = () => {
      x = (x + 0x9e3779b9) | 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next() | 1;
  }

  /** A uniform 32-bit unsigned integer. */
  next(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return result;
  }

  float(): number {
    return this.next() / 2 ** 32;
  }

  /** An integer in [0, n). */
  below(n: number): number {
    return Math.floor(this.float() * n);
  }

  /** An integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.below(hi - lo + 1);
  }

  /** An integer in [lo, hi], log-uniformly distributed (small values as likely as big ones). */
  logRange(lo: number, hi: number): number {
    if (hi <= lo) return lo;
    const l = Math.log(lo + 1);
    const h = Math.log(hi + 1);
    return Math.min(hi, Math.max(lo, Math.floor(Math.exp(l + this.float() * (h - l)) - 1)));
  }

  chance(p: number): boolean {
    return this.float() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)];
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

// ---------------------------------------------------------------------------------------
// Block contents: a 4-byte tag, then a tag-dependent window of a fixed random table

const PERIOD = 65536;
const TABLE = (() => {
  const rng = new Rng(0x5eed);
  const table = new Uint8Array(2 * PERIOD);
  for (let i = 0; i < table.length; i += 4) new DataView(table.buffer).setUint32(i, rng.next(), true);
  return table;
})();

function windowOf(tag: number): number {
  return Math.imul(tag, 0x9e3779b1) >>> 16;
}

/** Writes the pattern of `tag` over the first `length` bytes of the block at `ptr`. */
export function fillBlock(ptr: number, length: number, tag: number): void {
  if (length === 0) return;
  const bytes = hak.view(ptr, length);
  const start = windowOf(tag);
  for (let at = 0; at < length; at += PERIOD) {
    const n = Math.min(PERIOD, length - at);
    bytes.set(TABLE.subarray(start, start + n), at);
  }
  const head = Math.min(4, length);
  for (let i = 0; i < head; i++) bytes[i] = (tag >>> (8 * i)) & 0xff;
}

/** The first byte of the block's first `length` bytes that differs from tag's pattern, or -1. */
export function findCorruption(ptr: number, length: number, tag: number): number {
  if (length === 0) return -1;
  const bytes = hak.view(ptr, length);
  const head = Math.min(4, length);
  for (let i = 0; i < head; i++) if (bytes[i] !== ((tag >>> (8 * i)) & 0xff)) return i;
  const start = windowOf(tag);
  for (let at = 0; at < length; at += PERIOD) {
    const n = Math.min(PERIOD, length - at);
    const actual = Buffer.from(bytes.buffer, bytes.byteOffset + at, n);
    if (actual.equals(Buffer.from(TABLE.buffer, start, n))) continue;
    for (let i = Math.max(head - at, 0); i < n; i++) if (bytes[at + i] !== TABLE[start + i]) return at + i;
  }
  return -1;
}

function firstNonZero(ptr: number, length: number): number {
  if (length === 0) return -1;
  const bytes = hak.view(ptr, length);
  for (let i = 0; i < length; i++) if (bytes[i] !== 0) return i;
  return -1;
}

// ---------------------------------------------------------------------------------------
// The model: live blocks, their totals per tier, and an address-sorted index for overlaps

export interface Block {
  ptr: number;
  /** bytes requested */
  size: number;
  /** alignment requested (16 for plain blocks) */
  align: number;
  tag: number;
  /** usableSize(ptr) when allocated */
  usable: number;
  /** "plain": tier and accounted bytes known; "aligned": learned (single thread) or bounded */
  kind: "plain" | "aligned";
  /** the tier that counts the block, null while unknown (aligned, threads) */
  tier: Tier | null;
  /** liveBytes the block adds to its tier (usable for plain blocks); -1 while unknown */
  accounted: number;
  /** lowest tier the block can be in: route(size) when allocated (tiny while thresholds change) */
  minTier: Tier;
}

interface Slot extends Block {
  index: number;
}

/** Per-tier totals of known blocks, and the bounds of the blocks whose tier is unknown. */
export interface Totals {
  blocks: Record<Tier, number>;
  bytes: Record<Tier, number>;
  unknownBlocks: number;
  unknownMinBytes: number;
  unknownMaxBytes: number;
  /** unknown blocks whose lowest possible tier is this one */
  unknownByMinTier: Record<Tier, number>;
}

export function emptyTotals(): Totals {
  return {
    blocks: { tiny: 0, mid: 0, large: 0 },
    bytes: { tiny: 0, mid: 0, large: 0 },
    unknownBlocks: 0,
    unknownMinBytes: 0,
    unknownMaxBytes: 0,
    unknownByMinTier: { tiny: 0, mid: 0, large: 0 },
  };
}

function account(totals: Totals, b: Block, sign: 1 | -1): void {
  if (b.tier !== null) {
    totals.blocks[b.tier] += sign;
    totals.bytes[b.tier] += sign * b.accounted;
  } else {
    totals.unknownBlocks += sign;
    totals.unknownMinBytes += sign * b.usable;
    totals.unknownMaxBytes += sign * (b.usable + (b.kind === "aligned" ? b.align - 1 : 0));
    totals.unknownByMinTier[b.minTier] += sign;
  }
}

export function addTotals(into: Totals, other: Totals): void {
  for (const t of TIERS) {
    into.blocks[t] += other.blocks[t];
    into.bytes[t] += other.bytes[t];
    into.unknownByMinTier[t] += other.unknownByMinTier[t];
  }
  into.unknownBlocks += other.unknownBlocks;
  into.unknownMinBytes += other.unknownMinBytes;
  into.unknownMaxBytes += other.unknownMaxBytes;
}

/** The first index in sorted `xs` whose value is >= x. */
function lowerBound(xs: number[], x: number): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (xs[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function describeBlock(b: Block): string {
  return `0x${b.ptr.toString(16)} size=${b.size} align=${b.align} usable=${b.usable} tag=${b.tag} tier=${b.tier ?? "?"}`;
}

/** The live blocks of one thread. */
export class LiveSet {
  private readonly byPtr = new Map<number, Slot>();
  private readonly list: Slot[] = [];
  private readonly starts: number[] = [];
  readonly totals = emptyTotals();

  get size(): number {
    return this.list.length;
  }

  blocks(): readonly Block[] {
    return this.list;
  }

  /** Adds a block; returns why it cannot be live (duplicate pointer or overlap), or null. */
  add(block: Block): string | null {
    const clash = this.overlapOf(block);
    if (clash) return clash;
    const slot: Slot = { ...block, index: this.list.length };
    this.byPtr.set(slot.ptr, slot);
    this.list.push(slot);
    this.starts.splice(lowerBound(this.starts, slot.ptr), 0, slot.ptr);
    account(this.totals, slot, 1);
    return null;
  }

  remove(block: Block): void {
    const slot = this.byPtr.get(block.ptr);
    if (!slot) throw new Error(`fuzz model: removing a block that is not live (${describeBlock(block)})`);
    this.byPtr.delete(slot.ptr);
    const last = this.list.pop()!;
    if (last !== slot) {
      last.index = slot.index;
      this.list[slot.index] = last;
    }
    this.starts.splice(lowerBound(this.starts, slot.ptr), 1);
    account(this.totals, slot, -1);
  }

  /** Sets the tier and accounted bytes of a block whose tier was unknown. */
  learn(block: Block, tier: Tier, accounted: number): void {
    const slot = this.byPtr.get(block.ptr)!;
    account(this.totals, slot, -1);
    slot.tier = tier;
    slot.accounted = accounted;
    account(this.totals, slot, 1);
  }

  random(rng: Rng): Block {
    return this.list[rng.below(this.list.length)];
  }

  private overlapOf(b: Block): string | null {
    if (this.byPtr.has(b.ptr)) return `pointer returned twice: ${describeBlock(b)} is already live as ${describeBlock(this.byPtr.get(b.ptr)!)}`;
    const at = lowerBound(this.starts, b.ptr);
    const end = b.ptr + Math.max(b.usable, 1);
    if (at > 0) {
      const prev = this.byPtr.get(this.starts[at - 1])!;
      if (prev.ptr + prev.usable > b.ptr) return `new block ${describeBlock(b)} overlaps live block ${describeBlock(prev)}`;
    }
    if (at < this.starts.length) {
      const next = this.byPtr.get(this.starts[at])!;
      if (end > next.ptr) return `new block ${describeBlock(b)} overlaps live block ${describeBlock(next)}`;
    }
    return null;
  }
}

/** Why a set of blocks (e.g. every thread's) overlaps, or null. */
export function findOverlap(blocks: readonly Block[]): string | null {
  const sorted = [...blocks].sort((x, y) => x.ptr - y.ptr);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1];
    if (prev.ptr + Math.max(prev.usable, 1) > sorted[i].ptr) {
      return `live blocks overlap: ${describeBlock(prev)} and ${describeBlock(sorted[i])}`;
    }
  }
  return null;
}

/**
 * Compares live stats (minus `baseline`) with the model totals; returns the discrepancy or
 * null. Known blocks must match exactly per tier; the surplus per tier must be explained by
 * the blocks of unknown tier (count per tier consistent with their lowest tiers, bytes
 * within their bounds). In check mode (`checking`) usable sizes are the requested sizes
 * while the stats count whole blocks, so a block's usable size is only a lower bound of
 * its bytes: counts are compared as above, bytes must be at least the model's.
 */
export function compareStats(now: Stats, baseline: Stats, totals: Totals, checking = false): string | null {
  const liveBlocks: Record<Tier, number> = { tiny: 0, mid: 0, large: 0 };
  const liveBytes: Record<Tier, number> = { tiny: 0, mid: 0, large: 0 };
  const surplusBlocks: Record<Tier, number> = { tiny: 0, mid: 0, large: 0 };
  const surplusBytes: Record<Tier, number> = { tiny: 0, mid: 0, large: 0 };
  for (const t of TIERS) {
    liveBlocks[t] = now[t].liveBlocks - baseline[t].liveBlocks;
    liveBytes[t] = now[t].liveBytes - baseline[t].liveBytes;
    surplusBlocks[t] = liveBlocks[t] - totals.blocks[t];
    surplusBytes[t] = liveBytes[t] - totals.bytes[t];
  }
  const report = () =>
    TIERS.map((t) => `${t}: stats live ${liveBlocks[t]} blocks/${liveBytes[t]} B, model ${totals.blocks[t]}/${totals.bytes[t]} B`).join("; ") +
    (totals.unknownBlocks ? `; aligned of unknown tier: ${totals.unknownBlocks} blocks, ${totals.unknownMinBytes}..${totals.unknownMaxBytes} B` : "") +
    (checking ? " (check mode: bytes are lower bounds)" : "");
  const differ = () => `stats differ from the model: ${report()}`;
  if (totals.unknownBlocks === 0 && !checking) {
    for (const t of TIERS) if (surplusBlocks[t] !== 0 || surplusBytes[t] !== 0) return differ();
    return null;
  }
  let cumulativeStats = 0;
  let cumulativeModel = 0;
  for (const t of TIERS) {
    if (surplusBlocks[t] < 0 || surplusBytes[t] < 0) return differ();
    if (checking ? liveBlocks[t] === 0 && liveBytes[t] !== 0 : (surplusBlocks[t] === 0) !== (surplusBytes[t] === 0)) return differ();
    cumulativeStats += surplusBlocks[t];
    cumulativeModel += totals.unknownByMinTier[t];
    if (cumulativeStats > cumulativeModel) return `aligned blocks counted in a tier below their request's: ${report()}`;
  }
  if (cumulativeStats !== totals.unknownBlocks) return differ();
  const bytes = surplusBytes.tiny + surplusBytes.mid + surplusBytes.large;
  if (!checking && (bytes < totals.unknownMinBytes || bytes > totals.unknownMaxBytes)) return differ();
  return null;
}

// ---------------------------------------------------------------------------------------
// The generator

export interface FuzzOptions {
  seed: number;
  /** steps to run */
  ops: number;
  /** most blocks live at once (default 600) */
  maxLive?: number;
  /** largest request of the large tier (default 4 MiB) */
  largeMax?: number;
  /** most blocks above 256 KiB live at once (default 8) */
  maxBig?: number;
  /** change the routing thresholds now and then (default true; the threaded run does it between phases) */
  routing?: boolean;
  /** called every `progressEvery` steps */
  onProgress?: (step: number, live: number) => void;
  progressEvery?: number;
  /** print every step to stderr before running it (to locate a crash) */
  trace?: boolean;
}

/** A broken invariant: the message is the replayable FAIL line. */
export class FuzzFailure extends Error {
  constructor(
    readonly seed: number,
    readonly where: string,
    readonly step: number,
    readonly op: string,
    readonly detail: string,
  ) {
    super(`FAIL seed=${seed}${where ? ` ${where}` : ""} step=${step} op=${op} ${detail}`);
    this.name = "FuzzFailure";
  }
}

/** An invariant broken inside a step (wrapped into a FuzzFailure by the runner). */
class Broken extends Error {}

function check(ok: boolean, detail: () => string): void {
  if (!ok) throw new Broken(detail());
}

export type Op =
  | "alloc" | "calloc" | "realloc" | "aligned" | "free" | "free-twice" | "usable"
  | "routing" | "routing-back" | "collect" | "handoff";

export interface OpCounts {
  [op: string]: number;
}

const BIG = 256 * 1024;

/** One thread's sequence: a seeded generator over a LiveSet. */
export class Sequence {
  readonly rng: Rng;
  readonly live = new LiveSet();
  readonly counts: OpCounts = {};
  /** blocks handed to another thread (threaded runs) */
  readonly outbox: Block[] = [];
  private nextTag: number;
  private readonly tagStride: number;
  private big = 0;
  private target: number;
  private tinyMax: number;
  private midMax: number;
  private readonly limits: { tinyMax: number; midMax: number; midMin: number };
  readonly initialRouting: { tinyMax: number; midMax: number };
  /**
   * Check mode is on (set by the caller before the first allocation): a report of misuse
   * aborts the process, so the deliberate double free is left out, and usable sizes are
   * the requested sizes (stats bytes are compared as lower bounds).
   */
  readonly checking = hak.checkMode() !== "off";
  /** another thread changes the thresholds during this phase (threaded runs) */
  routingChurn = false;
  op: Op = "alloc";
  /** the API call of the current step, for the FAIL line */
  call = "";
  step = 0;

  constructor(
    readonly options: Required<Pick<FuzzOptions, "seed" | "maxLive" | "largeMax" | "maxBig" | "routing">> & {
      thread: number;
      threads: number;
      /** learn aligned blocks' tiers from the stats (only valid when no other thread allocates) */
      learn: boolean;
      handoff: boolean;
    },
  ) {
    this.rng = new Rng(options.seed, options.thread);
    this.nextTag = options.thread + 1;
    this.tagStride = options.threads;
    const r = hak.routing();
    this.tinyMax = r.tinyMax;
    this.midMax = r.midMax;
    this.limits = { tinyMax: r.tinyMaxLimit, midMax: r.midMaxLimit, midMin: r.midMaxMin };
    this.initialRouting = { tinyMax: r.tinyMax, midMax: r.midMax };
    this.target = this.rng.range(1, options.maxLive);
  }

  /** Runs one random step (with its invariant checks). */
  runStep(): void {
    if (this.step % 2048 === 0) this.target = this.rng.range(1, this.options.maxLive);
    this.op = this.chooseOp();
    this.call = "";
    this.counts[this.op] = (this.counts[this.op] ?? 0) + 1;
    this.perform(this.op);
    if (this.step % 16 === 0) this.checkSample(this.step % 4096 === 0 ? this.live.size : 3);
    this.step++;
  }

  private chooseOp(): Op {
    const n = this.live.size;
    const full = n >= this.options.maxLive;
    const pressure = n / Math.max(this.target, 1);
    const weights: [Op, number][] = [
      ["alloc", full ? 0 : 22],
      ["calloc", full ? 0 : 6],
      ["aligned", full ? 0 : 8],
      ["realloc", n ? 14 : 0],
      ["free", n ? 10 + 24 * pressure : 0],
      ["free-twice", n && !this.checking ? 1 : 0],
      ["usable", n ? 5 : 0],
      ["routing", this.options.routing ? 0.4 : 0],
      ["routing-back", this.options.routing ? 0.2 : 0],
      ["collect", 0.2],
      ["handoff", this.options.handoff && n ? 4 : 0],
    ];
    let total = 0;
    for (const [, w] of weights) total += w;
    let x = this.rng.float() * total;
    for (const [op, w] of weights) {
      x -= w;
      if (x < 0) return op;
    }
    return "alloc";
  }

  private perform(op: Op): void {
    switch (op) {
      case "alloc": return this.doAlloc();
      case "calloc": return this.doCalloc();
      case "aligned": return this.doAligned();
      case "realloc": return this.doRealloc();
      case "free": return this.doFree(this.live.random(this.rng), false);
      case "free-twice": {
        // Only blocks this thread allocated, and with other threads running only tiny/mid
        // ones: once freed, another thread's block may be reused by its owner at once (a
        // remote free hands it back), and a freed large mapping by any thread (the mapping
        // cache is shared); a second free would then free that thread's new block, which no
        // allocator can tell from a valid free.
        const block = this.live.random(this.rng);
        const unshared = this.tagStride === 1 || block.tier === "tiny" || block.tier === "mid";
        return this.doFree(block, this.isOwn(block) && unshared);
      }
      case "usable": return this.doUsable();
      case "routing": return this.setRouting(this.randomRouting());
      case "routing-back": return this.setRouting(this.initialRouting);
      case "collect": return this.doCollect(this.rng.chance(0.3));
      case "handoff": return this.doHandoff();
    }
  }

  /** Allocated by this thread (tags are thread + 1 + k * threads). */
  private isOwn(block: Block): boolean {
    return (block.tag - this.nextTag) % this.tagStride === 0;
  }

  // ---- sizes

  /** A request size from a random tier under the current thresholds (or an edge value). */
  randomSize(): number {
    const { tinyMax, midMax } = this;
    const bigAllowed = this.big < this.options.maxBig;
    const largeMax = Math.max(midMax + 1, this.options.largeMax);
    const x = this.rng.float();
    let size: number;
    if (x < 0.5) size = this.rng.logRange(0, tinyMax);
    else if (x < 0.85) size = this.rng.logRange(Math.min(tinyMax + 1, midMax), midMax);
    else if (x < 0.95) size = this.rng.logRange(midMax + 1, largeMax);
    else size = this.edgeSize();
    return size > BIG && !bigAllowed ? this.rng.logRange(0, Math.min(BIG, midMax)) : size;
  }

  private edgeSize(): number {
    const { tinyMax, midMax } = this;
    const edges = [0, 1, 15, 16, 17, tinyMax, tinyMax + 1, midMax, midMax + 1, 128, 129, 1024, 1025, 4096, 8192, 8193];
    return Math.max(0, this.rng.pick(edges) + this.rng.range(-1, 1));
  }

  private randomAlignment(): number {
    return 2 ** (this.rng.chance(0.7) ? this.rng.range(4, 12) : this.rng.range(13, 20));
  }

  private randomRouting(): { tinyMax: number; midMax: number } {
    const tl = this.limits.tinyMax;
    const ml = this.limits.midMax;
    const tinyMax = this.rng.chance(0.6) ? this.rng.pick([0, 16, 64, 256, 1024, 4096, tl]) : this.rng.range(0, tl);
    const midChoices = [tinyMax, 2048, 32768, 262144, ml].filter((v) => v >= tinyMax && v <= ml);
    const midMax = this.rng.chance(0.6) ? this.rng.pick(midChoices) : this.rng.range(tinyMax, ml);
    return { tinyMax, midMax: Math.max(midMax, this.limits.midMin) }; // (the same draws as before midMaxMin)
  }

  /** Applies thresholds and checks route() agrees with them. */
  setRouting(r: { tinyMax: number; midMax: number }): void {
    this.call = `setRouting({ tinyMax: ${r.tinyMax}, midMax: ${r.midMax} })`;
    hak.setRouting(r);
    this.tinyMax = r.tinyMax;
    this.midMax = r.midMax;
    for (const size of [r.tinyMax, r.tinyMax + 1, r.midMax, r.midMax + 1]) {
      const expected: Tier = size <= r.tinyMax ? "tiny" : size <= r.midMax ? "mid" : "large";
      const got = hak.route(size);
      check(got === expected, () => `after setRouting(${r.tinyMax}, ${r.midMax}) route(${size}) = ${got}, expected ${expected}`);
    }
  }

  /** Tracks thresholds set by another thread (threaded runs: the main thread, between phases). */
  syncRouting(): void {
    const r = hak.routing();
    this.tinyMax = r.tinyMax;
    this.midMax = r.midMax;
  }

  private tag(): number {
    const t = this.nextTag;
    this.nextTag += this.tagStride;
    return t >>> 0;
  }

  // ---- operations

  private doAlloc(): void {
    const size = this.randomSize();
    const tier = hak.route(size);
    this.call = `alloc(${size})`;
    const ptr = hak.alloc(size);
    this.adopt(this.fresh(ptr, size, 16, "plain", tier));
  }

  private doCalloc(): void {
    const total = this.randomSize();
    const count = total === 0 ? this.rng.range(0, 3) : this.rng.range(1, 16);
    const size = count === 0 ? this.rng.range(0, 64) : Math.floor(total / count);
    const bytes = count * size;
    const tier = hak.route(bytes);
    this.call = `calloc(${count}, ${size})`;
    const ptr = hak.calloc(count, size);
    const block = this.fresh(ptr, bytes, 16, "plain", tier);
    const dirty = firstNonZero(ptr, bytes);
    check(dirty < 0, () => `calloc(${count}, ${size}) byte ${dirty} is not zero (${describeBlock(block)})`);
    this.adopt(block);
  }

  private doAligned(): void {
    const align = this.randomAlignment();
    const size = this.randomSize();
    const minTier = hak.route(size);
    this.call = `alignedAlloc(${align}, ${size})`;
    const ptr = hak.alignedAlloc(align, size);
    const block = this.fresh(ptr, size, align, "aligned", minTier);
    this.adopt(block);
  }

  private doRealloc(): void {
    const old = this.live.random(this.rng);
    this.verify(old, "before realloc");
    const size = this.reallocSize(old);
    this.call = `realloc(${describeBlock(old)}, ${size})`;
    const ptr = hak.realloc(old.ptr, size);
    this.live.remove(old);
    if (old.size > BIG) this.big--;
    const usable = hak.usableSize(ptr);
    const inPlace = ptr === old.ptr && usable === old.usable;
    const block: Block = inPlace
      ? { ...old, size, tag: this.tag() }
      : this.fresh(ptr, size, 16, "plain", hak.route(size));
    check(usable >= size, () => `realloc to ${size}: usable ${usable} < size`);
    check(ptr % 16 === 0, () => `realloc to ${size}: 0x${ptr.toString(16)} not 16-aligned`);
    const keep = Math.min(old.size, size);
    const bad = findCorruption(ptr, keep, old.tag);
    check(bad < 0, () => `realloc ${describeBlock(old)} -> ${size} at 0x${ptr.toString(16)}: preserved byte ${bad} of ${keep} differs`);
    this.adopt(block);
  }

  private reallocSize(old: Block): number {
    const x = this.rng.float();
    if (x < 0.3) return Math.min(Math.ceil(old.size * (1 + this.rng.float() * 3)) + 1, this.capBig(old.size * 4 + 16));
    if (x < 0.55) return Math.floor(old.size * this.rng.float());
    if (x < 0.7) return this.rng.range(Math.ceil(old.usable / 2), old.usable); // fits in place
    return this.randomSize(); // any tier
  }

  private capBig(size: number): number {
    return size > BIG && this.big >= this.options.maxBig ? BIG : Math.min(size, Math.max(this.options.largeMax, this.midMax + 1));
  }

  private doFree(block: Block, twice: boolean): void {
    this.call = `free(${describeBlock(block)})`;
    this.verify(block, "before free");
    hak.free(block.ptr);
    this.live.remove(block);
    if (block.size > BIG) this.big--;
    if (!twice) return;
    let threw: unknown = null;
    try {
      hak.free(block.ptr);
    } catch (e) {
      threw = e;
    }
    check(threw instanceof RangeError, () => `second free of ${describeBlock(block)} was ${threw ? `rejected with ${threw}` : "accepted"}, expected a RangeError`);
  }

  private doUsable(): void {
    const block = this.live.random(this.rng);
    this.call = `usableSize(${describeBlock(block)})`;
    const usable = hak.usableSize(block.ptr);
    check(usable === block.usable, () => `usableSize changed while live: ${usable}, was ${describeBlock(block)}`);
    check(hak.owns(block.ptr), () => `owns() is false for live ${describeBlock(block)}`);
  }

  private doCollect(force: boolean): void {
    this.call = `collect(${force})`;
    hak.collect(force);
  }

  private doHandoff(): void {
    const block = this.live.random(this.rng);
    this.verify(block, "before handoff");
    this.live.remove(block);
    if (block.size > BIG) this.big--;
    this.outbox.push(block);
  }

  /** Takes a block handed over by another thread: verifies it, then frees or keeps it. */
  receive(block: Block): void {
    this.op = "handoff";
    this.call = `received ${describeBlock(block)}`;
    this.verify(block, "received from another thread");
    if (this.rng.chance(0.6)) {
      hak.free(block.ptr);
      return;
    }
    const clash = this.live.add(block);
    check(clash === null, () => clash!);
    if (block.size > BIG) this.big++;
  }

  // ---- checks

  /** A new block's checks: alignment, usable size; returns its model entry. */
  private fresh(ptr: number, size: number, align: number, kind: Block["kind"], tier: Tier): Block {
    const usable = hak.usableSize(ptr);
    // check mode adds bytes to every request, which can move a block up a tier
    // and while another thread changes the thresholds, route() before the call may be stale
    const known = kind === "plain" && !this.checking && !this.routingChurn;
    const block: Block = {
      ptr, size, align, tag: this.tag(), usable, kind,
      tier: known ? tier : null,
      accounted: known ? usable : -1,
      minTier: this.routingChurn ? "tiny" : tier,
    };
    check(ptr % 16 === 0 && ptr % align === 0, () => `misaligned: ${describeBlock(block)}`);
    check(usable >= size, () => `usable size below the request: ${describeBlock(block)}`);
    return block;
  }

  private adopt(block: Block): void {
    const clash = this.live.add(block);
    check(clash === null, () => clash!);
    if (block.size > BIG) this.big++;
    fillBlock(block.ptr, block.size, block.tag);
    if (block.tier === null && this.options.learn) this.learnTier(block);
  }

  /** Learns a block's tier and accounted bytes from the stats change (single thread): aligned blocks, all blocks in check mode. */
  private learnTier(block: Block): void {
    const now = hak.stats();
    const base = this.baseline!;
    const grown = TIERS.filter((t) => now[t].liveBlocks - base[t].liveBlocks !== this.live.totals.blocks[t]);
    check(grown.length === 1, () => `${this.call}: live blocks changed in ${grown.length} tiers (${grown.join(", ")}), expected one`);
    const tier = grown[0];
    const blocks = now[tier].liveBlocks - base[tier].liveBlocks - this.live.totals.blocks[tier];
    const bytes = now[tier].liveBytes - base[tier].liveBytes - this.live.totals.bytes[tier];
    check(blocks === 1, () => `${describeBlock(block)}: ${tier} live blocks grew by ${blocks}`);
    check(RANK[tier] >= RANK[block.minTier], () => `${describeBlock(block)}: counted in ${tier}, below route(size) = ${block.minTier}`);
    check(bytes >= block.usable && (this.checking || bytes <= block.usable + block.align - 1),
      () => `${describeBlock(block)}: ${tier} live bytes grew by ${bytes}, expected ${block.usable}..${this.checking ? "" : block.usable + block.align - 1}`);
    this.live.learn(block, tier, bytes);
  }

  /** Stats at the start of the run (single thread: compared after every step). */
  baseline: Stats | null = null;

  checkStats(): void {
    const problem = compareStats(hak.stats(), this.baseline!, this.live.totals, this.checking);
    check(problem === null, () => problem!);
  }

  verify(block: Block, when: string): void {
    const usable = hak.usableSize(block.ptr);
    check(usable === block.usable, () => `${when}: usableSize ${usable}, was ${describeBlock(block)}`);
    const bad = findCorruption(block.ptr, block.size, block.tag);
    check(bad < 0, () => `${when}: byte ${bad} of ${describeBlock(block)} was overwritten`);
  }

  private checkSample(count: number): void {
    const n = Math.min(count, this.live.size);
    if (n === this.live.size) for (const b of this.live.blocks()) this.verify(b, "sample");
    else for (let i = 0; i < n; i++) this.verify(this.live.random(this.rng), "sample");
  }

  /** Frees every live block (checking each) and restores the thresholds. */
  freeAll(): void {
    this.op = "free";
    while (this.live.size) this.doFree(this.live.blocks()[this.live.size - 1], false);
    this.big = 0;
  }
}

function defaults(options: FuzzOptions) {
  return {
    seed: options.seed,
    maxLive: options.maxLive ?? 600,
    largeMax: options.largeMax ?? 4 * 1024 * 1024,
    maxBig: options.maxBig ?? 8,
    routing: options.routing ?? true,
  };
}

export interface FuzzReport {
  seed: number;
  threads: number;
  steps: number;
  counts: OpCounts;
  ms: number;
}

/** Wraps anything thrown inside a step into a replayable FuzzFailure. */
function failure(seed: number, where: string, seq: Sequence, error: unknown): FuzzFailure {
  if (error instanceof FuzzFailure) return error;
  const call = seq.call ? `call=${seq.call}: ` : "";
  let detail: string;
  if (error instanceof Broken) detail = error.message;
  else if (error instanceof RangeError || error instanceof TypeError) detail = `the API threw ${error}`;
  else detail = `threw ${(error as Error)?.stack ?? error}`;
  return new FuzzFailure(seed, where, seq.step, seq.op, call + detail);
}

function addCounts(into: OpCounts, from: OpCounts): void {
  for (const [op, n] of Object.entries(from)) into[op] = (into[op] ?? 0) + n;
}

// ---------------------------------------------------------------------------------------
// Single thread: every invariant, stats included, after every step

/** Runs one seeded sequence on the calling thread; throws a FuzzFailure on the first broken invariant. */
export function runFuzz(options: FuzzOptions): FuzzReport {
  const started = performance.now();
  const seq = new Sequence({ ...defaults(options), thread: 0, threads: 1, learn: true, handoff: false });
  seq.baseline = hak.stats();
  const every = options.progressEvery ?? 10_000;
  try {
    for (let i = 0; i < options.ops; i++) {
      if (options.trace) console.error(`step=${seq.step} live=${seq.live.size}`);
      seq.runStep();
      seq.checkStats();
      if (options.onProgress && seq.step % every === 0) options.onProgress(seq.step, seq.live.size);
    }
    seq.freeAll();
    seq.setRouting(seq.initialRouting);
    seq.op = "end";
    seq.checkStats();
  } catch (error) {
    try {
      hak.setRouting(seq.initialRouting);
    } catch {}
    throw failure(options.seed, "", seq, error);
  }
  return { seed: options.seed, threads: 1, steps: seq.step, counts: seq.counts, ms: performance.now() - started };
}

// ---------------------------------------------------------------------------------------
// Threads: each worker runs its own sequence; blocks are handed to the next worker

export interface ThreadFuzzOptions extends FuzzOptions {
  threads: number;
  /** barriers at which the main thread checks global stats (default 8) */
  phases?: number;
  /** a phase that takes longer is reported as a hang (default 120 s) */
  hangMs?: number;
}

interface PhaseArgs {
  /** the main thread changes the thresholds while this phase runs */
  churn: boolean;
  run: string;
  seed: number;
  options: ReturnType<typeof defaults>;
  ops: number;
  inbox: Block[];
  final: boolean;
}

interface PhaseResult {
  failure?: { step: number; op: string; detail: string };
  blocks: Block[];
  outbox: Block[];
  totals: Totals;
  counts: OpCounts;
  steps: number;
}

const sequences = new Map<string, Sequence>();

/** Worker side of runFuzzThreads: one phase of this thread's sequence (a threads.ts module task). */
export function fuzzPhase(_api: unknown, args: PhaseArgs, ctx: { thread: number; threads: number }): { ops: number; value: PhaseResult } {
  let seq = sequences.get(args.run);
  if (!seq) {
    seq = new Sequence({ ...args.options, thread: ctx.thread, threads: ctx.threads, learn: false, handoff: true, routing: false });
    sequences.set(args.run, seq);
  }
  const before = seq.step;
  const counts: OpCounts = {};
  let problem: PhaseResult["failure"];
  try {
    seq.syncRouting();
    seq.routingChurn = args.churn;
    const inbox = [...args.inbox];
    for (let i = 0; i < args.ops; i++) {
      if (inbox.length && seq.rng.chance(0.25)) seq.receive(inbox.pop()!);
      seq.runStep();
    }
    while (inbox.length) seq.receive(inbox.pop()!);
    if (args.final) seq.freeAll();
  } catch (error) {
    const f = failure(args.seed, "", seq, error);
    problem = { step: f.step, op: f.op, detail: f.detail };
  }
  addCounts(counts, seq.counts);
  const outbox = seq.outbox.splice(0);
  const totals = emptyTotals();
  addTotals(totals, seq.live.totals);
  for (const b of outbox) account(totals, b, 1);
  const result: PhaseResult = { failure: problem, blocks: [...seq.live.blocks()].map(plain), outbox: outbox.map(plain), totals, counts, steps: seq.step };
  if (args.final || problem) sequences.delete(args.run);
  return { ops: seq.step - before, value: result };
}

function plain(b: Block): Block {
  const { ptr, size, align, tag, usable, kind, tier, accounted, minTier } = b;
  return { ptr, size, align, tag, usable, kind, tier, accounted, minTier };
}

const SELF = fileURLToPath(import.meta.url);
let runCounter = 0;

/**
 * Runs `threads` workers, each its own seeded sequence, in `phases` rounds; between rounds
 * the main thread changes the thresholds, checks global stats against all models and hands
 * each worker's outbox to the next worker. Throws a FuzzFailure on the first broken invariant;
 * the workers are then left running (see below): exit the process after a failure.
 */
export async function runFuzzThreads(options: ThreadFuzzOptions): Promise<FuzzReport> {
  const started = performance.now();
  const threads = options.threads;
  const phases = Math.max(1, options.phases ?? 8);
  const opsPerPhase = Math.max(1, Math.ceil(options.ops / threads / phases));
  const rng = new Rng(options.seed ^ 0x7f4a7c15);
  const routing = hak.routing();
  const initial = { tinyMax: routing.tinyMax, midMax: routing.midMax };
  const run = `${process.pid}-${++runCounter}-${options.seed}`;
  const counts: OpCounts = {};
  let steps = 0;
  const hangMs = options.hangMs ?? 120_000;
  const pool = await ThreadPool.start(threads);
  try {
    const baseline = hak.stats();
    let inboxes: Block[][] = Array.from({ length: threads }, () => []);
    for (let phase = 0; phase <= phases; phase++) {
      const final = phase === phases;
      const where = `threads=${threads} phase=${phase}`;
      const changeRouting = options.routing !== false && !final;
      if (changeRouting && rng.chance(0.5)) setRandomRouting(rng, routing, initial);
      if (final) hak.setRouting(initial);
      // every third phase, the thresholds also change while the workers allocate
      const churn = changeRouting && phase % 3 === 2;
      const phaseRun = pool.runAll(inboxes.map((inbox) => ({
        kind: "module" as const,
        path: SELF,
        exportName: "fuzzPhase",
        args: { run, seed: options.seed, options: { ...defaults(options), maxLive: Math.ceil((options.maxLive ?? 600) / threads) }, ops: final ? 0 : opsPerPhase, inbox, final, churn } satisfies PhaseArgs,
      })));
      const churner = churn ? setInterval(() => setRandomRouting(rng, routing, initial), 1) : undefined;
      const results = await withDeadline(phaseRun, hangMs, () =>
        new FuzzFailure(options.seed, where, -1, "hang", `the workers did not finish the phase within ${hangMs / 1000} s: an allocator call hangs`))
        .finally(() => clearInterval(churner));
      const values = results.map((r) => r.value as PhaseResult);
      const failed = values.findIndex((v) => v.failure);
      if (failed >= 0) {
        const f = values[failed].failure!;
        throw new FuzzFailure(options.seed, `${where} thread=${failed}`, f.step, f.op, f.detail);
      }
      checkBarrier(options.seed, where, baseline, values);
      inboxes = values.map((_, i) => values[(i + threads - 1) % threads].outbox);
      options.onProgress?.(phase, values.reduce((n, v) => n + v.blocks.length, 0));
      if (final) for (const v of values) {
        addCounts(counts, v.counts);
        steps += v.steps;
      }
    }
  } catch (error) {
    // The allocator may be corrupted: terminating the workers runs its thread-exit code,
    // which could hang. They are left to the process exit (fuzz-cli exits at once).
    hak.setRouting(initial);
    throw error;
  }
  hak.setRouting(initial);
  await pool.close();
  return { seed: options.seed, threads, steps, counts, ms: performance.now() - started };
}

/** `promise`, or a rejection with `timeout()` when it has not settled after `ms`. */
function withDeadline<T>(promise: Promise<T>, ms: number, timeout: () => Error): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(timeout()), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

function setRandomRouting(rng: Rng, limits: hak.Routing, initial: { tinyMax: number; midMax: number }): void {
  if (rng.chance(0.3)) return hak.setRouting(initial);
  const tinyMax = rng.chance(0.5) ? rng.pick([0, 64, 256, 1024, limits.tinyMaxLimit]) : rng.range(0, limits.tinyMaxLimit);
  const midMax = rng.chance(0.5) ? rng.range(tinyMax, limits.midMaxLimit) : Math.max(tinyMax, rng.pick([4096, 65536, limits.midMaxLimit]));
  hak.setRouting({ tinyMax, midMax: Math.max(midMax, limits.midMaxMin) });
}

/** Main thread, all workers idle: global stats vs every model, no overlap across threads. */
function checkBarrier(seed: number, where: string, baseline: Stats, values: PhaseResult[]): void {
  const totals = emptyTotals();
  for (const v of values) addTotals(totals, v.totals);
  const problem = compareStats(hak.stats(), baseline, totals, hak.checkMode() !== "off") ?? findOverlap(values.flatMap((v) => [...v.blocks, ...v.outbox]));
  if (problem) throw new FuzzFailure(seed, where, -1, "barrier", problem);
}
