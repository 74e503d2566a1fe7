// model.ts — the fuzzer's model of one thread's live blocks: each block's request, tag,
// usable size and tier, their totals per tier (with bounds for blocks whose tier is not
// known), and an address-sorted index that finds a new block overlapping a live one.
import type { Tier } from "../../src/index.ts";
import { TIERS } from "../../src/abi.ts";
import type { Rng } from "./rng.ts";

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

export function account(totals: Totals, b: Block, sign: 1 | -1): void {
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

export function describeBlock(b: Block): string {
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
