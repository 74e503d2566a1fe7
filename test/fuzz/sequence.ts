// sequence.ts — one thread's random operation sequence: a seeded generator of steps
// (alloc, calloc, realloc across tiers, alignedAlloc 16 B..1 MiB, free, a deliberate double
// free, usableSize, live routing changes, collect, handoffs to another thread) run through
// the TypeScript API over the thread's model (model.ts), each step checked as it runs
// (test/fuzz/README.md lists the invariants).
import * as hak from "../../src/index.ts";
import type { Stats, Tier } from "../../src/index.ts";
import { HAK_SINGLE_BLOCK_MIN, HAK_TIER_LARGE, HAK_TIER_MID, HAK_TIER_TINY, TIERS } from "../../src/abi.ts";
import { Rng } from "./rng.ts";
import { fillBlock, findCorruption, firstNonZero } from "./contents.ts";
import { describeBlock, LiveSet, type Block } from "./model.ts";
import { compareStats } from "./compare.ts";
import { check } from "./failure.ts";
import type { FuzzOptions, OpCounts } from "./options.ts";

const RANK: Record<Tier, number> = { tiny: HAK_TIER_TINY, mid: HAK_TIER_MID, large: HAK_TIER_LARGE };

export type Op =
  | "alloc" | "calloc" | "realloc" | "aligned" | "free" | "free-twice" | "usable"
  | "routing" | "routing-back" | "collect" | "handoff" | "end";

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
        // ones that share pages: once freed, another thread's block may be reused by its
        // owner at once (a remote free hands it back), a freed large mapping by any thread
        // (the mapping cache is shared), and a mid block above HAK_SINGLE_BLOCK_MIN too (its
        // page's span goes back to the segments every thread places pages in, and a page
        // placed there hands out a block at the same address); a second free would then
        // free that thread's new block, which no allocator can tell from a valid free.
        const block = this.live.random(this.rng);
        const sharesPage = block.tier === "tiny" || (block.tier === "mid" && block.usable <= HAK_SINGLE_BLOCK_MIN);
        const unshared = this.tagStride === 1 || sharesPage;
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
