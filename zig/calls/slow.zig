//! slow.zig — the allocator below its fast paths, without check mode: what alloc.zig calls
//! when a thread cache cannot answer, and what check.zig builds its checked blocks on.
//!
//!   heap()            the calling thread's heap, made on its first use (process initialised)
//!   malloc(size)      routing.bin(size): a bin (its cache, else heap.allocSlow: a page) or large
//!   aligned(a, size)  a class whose blocks are multiples of `a`, else a padded block (its
//!                     page flagged aligned), else a large block
//!   free(addr)        any address, any page, any thread, any tier: the one general free
//!     segment:  page.blockOf(addr) -> freeBlock: key set? (looks freed) -> isFreed: a double
//!               free, else to its page (which catches a second copy); no heap -> the page's
//!               thread_free; else this thread's cache, or the heap's slow path when full
//!     other:    a large block's header (segment_map tag: a region or a mapping), else not ours
//!   classify(addr)    what an address is: a live block (page block or large), freed, not a
//!                     block start (invalid), not ours
//! Nothing here looks at config.check_mode: alloc.zig sends check mode to check.zig first.
const std = @import("std");
const os = @import("../base/os.zig");
const config = @import("../settings/config.zig");
const routing = @import("../settings/routing.zig");
const stats = @import("../settings/stats.zig");
const size_class = @import("../settings/size_class.zig");
const segment_map = @import("../base/segment_map.zig");
const page_mod = @import("../memory/page.zig");
const segment_mod = @import("../memory/segment.zig");
const block_mod = @import("../base/block.zig");
const thread = @import("../thread/thread.zig");
const process = @import("../process/process.zig");
const large = @import("../memory/large.zig");
const large_recent = @import("../memory/large_recent.zig");
const LargeHeader = @import("../memory/large_header.zig").LargeHeader;
const LocalLarge = @import("../memory/large_local.zig").LocalLarge;
const misuse = @import("../settings/misuse.zig");
const profile = @import("../memory/profile.zig");
const guard = @import("../memory/guard.zig");
const abi = @import("../abi.zig");
const validate = @import("../thread/validate.zig");
const Page = page_mod.Page;
const Block = block_mod.Block;
const Segment = segment_mod.Segment;
const heap_mod = @import("../thread/heap.zig");
const Heap = heap_mod.Heap;

/// Requests above this fail at once with ENOMEM (beyond any real address space).
pub const size_max: usize = abi.size_max;
/// Larger alignments fail with ENOMEM (they would reserve absurd address space).
pub const alignment_max: usize = abi.alignment_max;

pub fn outOfMemory() ?*anyopaque {
    os.setErrno(.NOMEM);
    return null;
}

/// The calling thread's heap, made on its first use. Null only when out of memory.
pub inline fn heap() ?*Heap {
    return thread.currentAny() orelse createHeap();
}

noinline fn createHeap() ?*Heap {
    process.ensureInit();
    const h = thread.create() orelse return null;
    std.debug.assert(thread.currentAny() == h); // the thread's heap from now on
    return h;
}

// ------------------------------------------------------------------ malloc

/// A block of `size` bytes (16-byte aligned) from the tier the thresholds route it to.
/// Null with ENOMEM when out of memory.
pub fn malloc(size: usize) ?*anyopaque {
    const h = heap() orelse return outOfMemory();
    return mallocWith(h, size);
}

pub fn mallocWith(h: *Heap, size: usize) ?*anyopaque {
    std.debug.assert(h == thread.currentAny()); // the calling thread's heap: its fields are the thread's own
    const bin = routing.bin(size) orelse return mallocLarge(h, size, 16, false);
    std.debug.assert(size <= size_class.binBlockSize(bin)); // the bin's blocks hold the request
    // Only bins a slot can hold are sampled and charged: a program's big blocks do not make
    // its small ones sampled more often (each sampleable byte has the same chance), nor cost
    // it a pair of mprotect calls (and their TLB shootdowns) per HAKMEM_GUARD_SAMPLE_MB MiB.
    if (!guard.enabled() or size_class.binBlockSize(bin) > guard.max_size) return allocBin(h, bin) orelse outOfMemory();
    // Guarded sampling, decided here per batch (guard.zig): the bytes this call brings
    // into play (a refill's blocks) are charged; when the countdown has run out, this
    // call's block is a sample.
    if (guard.due(size_class.binBlockSize(bin))) {
        // (the whole block size: a sample's usable size and statistics are its bin's)
        if (guard.take(size_class.binBlockSize(bin), bin)) |sample| {
            h.counters.direct_allocs[bin] += 1; // counted as its bin's (stats stay exact)
            return alignedTo(sample, abi.min_alignment);
        }
    }
    const cached = h.cache.count(bin);
    const blk = allocBin(h, bin) orelse return outOfMemory();
    const brought = if (cached > 0) 1 else h.cache.count(bin) + 1;
    guard.charge(@as(usize, brought) * size_class.binBlockSize(bin));
    return blk;
}

fn allocBin(h: *Heap, bin: usize) ?*anyopaque {
    std.debug.assert(bin < size_class.bin_count);
    std.debug.assert(h == thread.currentAny()); // (owner-only: its cache and page queues)
    if (h.cache.pop(bin)) |blk| return alignedTo(ofBin(blk, bin), abi.min_alignment);
    validate.atSlowPath(h);
    return alignedTo(if (h.allocSlow(bin)) |blk| ofBin(blk, bin) else null, abi.min_alignment);
}

/// `blk`, asserted (safe builds: a lookup) to be a block start of a page of `bin`.
inline fn ofBin(blk: *Block, bin: usize) *Block {
    if (std.debug.runtime_safety) {
        const addr = @intFromPtr(blk);
        const page = Segment.of(addr).pageOf(addr);
        std.debug.assert(page.bin == bin); // the bin's stack holds the bin's blocks only
        std.debug.assert(page.blockOf(addr) == addr); // a block start, never an interior
    }
    return blk;
}

/// `ptr`, asserted to be aligned to `alignment` (a postcondition of every allocation).
inline fn alignedTo(ptr: ?*anyopaque, alignment: usize) ?*anyopaque {
    std.debug.assert(std.math.isPowerOfTwo(alignment)); // an alignment: what `%` below tests
    if (ptr) |p| std.debug.assert(@intFromPtr(p) % alignment == 0);
    return ptr;
}

/// A large block (a run of a region, or a mapping of its own above 256 MiB); `zeroed`: its
/// first `size` bytes are 0. (align(64), as free's large path: a large pair's speed moved
/// by 10% with where the linker put them.)
pub fn mallocLarge(h: *Heap, size: usize, alignment: usize, zeroed: bool) align(64) ?*anyopaque {
    std.debug.assert(std.math.isPowerOfTwo(alignment));
    std.debug.assert(alignment >= abi.min_alignment); // (smaller ones are malloc's 16)
    std.debug.assert(h == thread.currentAny()); // its local cache is the thread's own
    if (size > size_max) return outOfMemory();
    // (a hit reads no clock: the free that held the block did maintenance's share)
    if (h.large_local.take(size, alignment, zeroed)) |ptr| return alignedTo(if (profile.enabled) profiledLarge(ptr, size) else ptr, alignment);
    const now = os.nowMs();
    validate.atSlowPath(h);
    h.large_local.releaseAll(now); // what it held coalesces in the regions for this block
    const p = large.alloc(size, alignment, zeroed, now) orelse retry: {
        h.maintain(now, true); // out of memory or of the budget: purge everything retained, once more
        break :retry large.alloc(size, alignment, zeroed, now) orelse return outOfMemory();
    };
    // After the block took what it reuses: maintenance first would purge, along the decay
    // curve, memory this very block was about to take (and fault it back in).
    maintainIfDue(h, now);
    if (profile.enabled) profile.sampleLarge(p, size);
    return alignedTo(p, alignment);
}

noinline fn profiledLarge(ptr: *anyopaque, size: usize) *anyopaque {
    std.debug.assert(profile.enabled); // (asked only when profiling)
    profile.sampleLarge(ptr, size);
    return ptr;
}

/// heap.maintain when it is due (its own first test, made here: a large malloc+free pair
/// does not pay maintain's call).
inline fn maintainIfDue(h: *Heap, now_ms: u64) void {
    if (now_ms >= h.maintenance_due_ms) h.maintain(now_ms, false);
}

/// Memory aligned to `alignment` (a power of two). Null with ENOMEM when out of memory.
pub fn aligned(alignment: usize, size: usize) ?*anyopaque {
    std.debug.assert(std.math.isPowerOfTwo(alignment));
    if (alignment <= size_class.min_block_size) return malloc(size);
    if (size > size_max or alignment > alignment_max) return outOfMemory();
    const h = heap() orelse return outOfMemory();
    if (alignment <= size_class.slice_size) {
        // A class whose block size is a multiple of the alignment gives aligned blocks
        // (pages start on 64 KiB boundaries).
        if (routing.bin(std.mem.alignForward(usize, @max(size, 1), alignment))) |bin| {
            if (size_class.binBlockSize(bin) % alignment == 0) return alignedTo(allocBin(h, bin), alignment) orelse outOfMemory();
        }
        if (routing.bin(size + alignment - 1)) |bin| {
            std.debug.assert(size_class.binBlockSize(bin) >= size + alignment - 1); // room for the padding
            const raw = allocBin(h, bin) orelse return outOfMemory();
            const at = std.mem.alignForward(usize, @intFromPtr(raw), alignment);
            std.debug.assert(at + size <= @intFromPtr(raw) + size_class.binBlockSize(bin)); // the padding holds it
            std.debug.assert(at - @intFromPtr(raw) < alignment); // less than one alignment skipped
            if (at != @intFromPtr(raw)) {
                const page = Segment.of(at).pageOf(at);
                if (page.flags & page_mod.flag_aligned == 0) page.setFlags(page_mod.flag_aligned);
                std.debug.assert(page.fast_magic == 0); // its frees take the slow path, which finds the block
            }
            return alignedTo(@ptrFromInt(at), alignment);
        }
    }
    return mallocLarge(h, size, alignment, false);
}

// ------------------------------------------------------------------ free

/// `double_free`: the block is free already (found in a cache or on its page's list);
/// nothing was changed. `invalid`: hakmem's memory, but not a block it handed out.
pub const FreeResult = enum { ok, not_owned, invalid, double_free };

/// The general free of `addr`: any tier, any page, any thread.
pub fn free(addr: usize) FreeResult {
    const tag = segment_map.lookup(addr);
    if (tag != .segment) return freeLarge(addr, tag);
    const page = Segment.of(addr).pageOf(addr);
    const start = page.blockOf(addr) orelse return .invalid;
    std.debug.assert(start <= addr); // the block at addr, or (aligned pages) the one holding it
    std.debug.assert(addr - start < page.block_size);
    if (page.flags & page_mod.flag_sampled != 0) profile.freed(start);
    return freeBlock(page, @ptrFromInt(start));
}

/// Frees `blk`, a block of `page` (page.blockOf said so; free_fast.zig's test says so too).
pub fn freeBlock(page: *Page, blk: *Block) FreeResult {
    std.debug.assert(page.bin < size_class.bin_count); // a page in use (blockOf answered)
    std.debug.assert(@intFromPtr(blk) % abi.min_alignment == 0); // a block start
    const h = thread.currentAny();
    if (page.looksFree(blk)) {
        // The key says it is free already: a double free if it is found where a free block
        // can be; else (a program's data that equals the key, or a copy in flight) it goes
        // to its page, where a second copy is caught (page.zig: the bitmap).
        if (isFreed(h, page, @intFromPtr(blk))) return .double_free;
        return freeToPage(h, page, blk);
    }
    const owner = h orelse heapForFree() orelse return freeHeapless(page, blk);
    if (owner.cache.push(page.bin, blk)) return .ok;
    validate.atSlowPath(owner);
    return result(owner.freeFull(page, blk));
}

/// A thread that frees before it ever allocated (a consumer) gets a heap as well: its
/// cache then takes the frees on the fast path and gives them back in runs, one CAS per
/// run of a page, instead of one CAS and a slow path per block. Not while it exits (its
/// heap was given up already: one made now would never be). Null: no heap.
noinline fn heapForFree() ?*Heap {
    if (thread.exiting()) return null;
    const h = createHeap();
    std.debug.assert(h == null or thread.currentAny() == h); // its frees go to this heap's cache from now on
    return h;
}

fn result(outcome: heap_mod.FreeOutcome) FreeResult {
    return switch (outcome) {
        .ok => .ok,
        .double_free => .double_free,
    };
}

/// True when the free block at `addr` (a block start of `page`) is found: in this
/// thread's cache, free on its page (after collecting the page's remote frees when
/// this heap owns it), at the head of its remote list, or in another thread's cache.
fn isFreed(h: ?*Heap, page: *Page, addr: usize) bool {
    std.debug.assert(h == thread.currentAny()); // this thread's heap (or none): its cache is searched first
    std.debug.assert(addr % abi.min_alignment == 0); // a block start
    const blk: *Block = @ptrFromInt(addr);
    if (h) |owner| {
        if (owner.cache.contains(page.bin, blk)) return true;
        if (owner.ownsPage(page)) _ = page.collect();
    }
    if (page.isOnFreeList(addr) or page.remoteHead() == blk) return true;
    return thread.otherCacheHolds(page.bin, blk, h);
}

fn freeToPage(h: ?*Heap, page: *Page, blk: *Block) FreeResult {
    std.debug.assert(h == thread.currentAny()); // this thread's heap, or none
    std.debug.assert(page.blockOf(@intFromPtr(blk)) == @intFromPtr(blk)); // a block start of the page
    const owner = h orelse return freeHeapless(page, blk);
    return result(owner.freeToPage(page, blk));
}

/// A thread without a heap (one that is exiting, or out of memory) gives the block back
/// through its page's thread_free (the holder checks it when it collects; a page nobody
/// held is this thread's to settle then: heap.settleClaimed).
noinline fn freeHeapless(page: *Page, blk: *Block) FreeResult {
    std.debug.assert(thread.currentAny() == null); // exiting, or no heap could be made

    if (page.remoteHead() == blk) return .double_free;
    const bin = page.bin; // (read first: once the block is pushed its page may be given back)
    std.debug.assert(bin < size_class.bin_count);
    blk.key = page.remoteKey();
    const claimed = page.pushRemoteChain(blk, blk);
    stats.incr(&stats.heapless_frees[bin]);
    if (claimed) heap_mod.settleClaimed(null, page);
    return .ok;
}

/// A guarded sample's free, counted as a free of its bin (remote when another thread
/// allocated it), as if it had been a block of that bin.
noinline fn freeSample(addr: usize) FreeResult {
    if (std.debug.runtime_safety) std.debug.assert(guard.owns(addr)); // in the pool (an atomic load: not in ReleaseFast)
    const freed = switch (guard.free(addr)) {
        .ok => |f| f,
        .double_free => return .double_free,
        .invalid => return .invalid,
    };
    std.debug.assert(freed.bin < size_class.bin_count);
    const h = thread.currentAny() orelse {
        stats.incr(&stats.heapless_frees[freed.bin]);
        return .ok;
    };
    h.counters.direct_frees[freed.bin] += 1;
    if (freed.remote) h.counters.remote_frees[freed.bin] += 1;
    return .ok;
}

/// An address outside every segment: NULL, a large block, or not ours.
noinline fn freeLarge(addr: usize, tag: segment_map.Tag) align(64) FreeResult {
    std.debug.assert(tag != .segment); // (a segment's pointers have a page: free finds it)
    // (a region first, on a path of its own: reserved whole, 4 MiB aligned, it shares no
    // chunk with the guard pool, and its lookup's answer stays in registers)
    if (tag == .large_region) return freeLookedUp(addr, large.lookupInRegion(addr));
    if (addr == 0) return .ok;
    // (the pool may share a 4 MiB chunk, and so its tag, with a large mapping)
    if (guard.owns(addr)) return freeSample(addr);
    if (tag == .none) return if (large_recent.recentlyFreed(addr)) .double_free else .not_owned;
    return freeLookedUp(addr, large.lookup(addr, tag));
}

/// free of a large block, by what its lookup found.
inline fn freeLookedUp(addr: usize, found: large.Lookup) FreeResult {
    switch (found) {
        .foreign => return .not_owned,
        .invalid => return .invalid,
        .freed => return .double_free,
        .live => |header| {
            std.debug.assert(@intFromPtr(header) < addr); // the header is before the block
            if (profile.enabled) profile.freed(addr);
            const h = thread.currentAny();
            if (h) |heap_| switch (heap_.large_local.put(header)) {
                .freed_already => return .double_free,
                // (the clock is read every few holds: LocalLarge.tick)
                .held => {
                    if (heap_.large_local.tick()) |now| maintainIfDue(heap_, now);
                    return .ok;
                },
                .not_held => {},
            };
            return freeToTier(header, h);
        },
    }
}

/// A live large block back to its region or the mapping cache (not held by this thread).
noinline fn freeToTier(header: *LargeHeader, h: ?*Heap) FreeResult {
    std.debug.assert(h == thread.currentAny()); // maintenance is this thread's heap's, if any
    const now = os.nowMs();
    if (!large.free(header, now)) return .double_free;
    if (h) |heap_| maintainIfDue(heap_, now);
    return .ok;
}

/// realloc's answer (alloc.zig, check.zig): the block (null: out of memory, the old one
/// intact), or why `ptr` is no block to resize.
pub const ReallocResult = union(enum) { ok: ?*anyopaque, not_owned, invalid, freed };

// ------------------------------------------------------------------ queries

/// What `addr` is: a live block (of a page: its start; or a large block's header), a
/// block that is free already, or not a block.
pub const Kind = union(enum) {
    page_block: struct { page: *Page, start: usize },
    large: *LargeHeader,
    /// a live guarded sample (guard.zig): its usable bytes
    guarded: usize,
    freed,
    not_owned,
    invalid,
};

/// realloc of the block of a single-block page to `size` in place, when a block of that
/// size has a page of its own of as many slices (heap.rebinSingleBlock). False: copy.
pub fn resizeInPage(page: *Page, size: usize) bool {
    const bin = routing.bin(size) orelse return false; // (large: its own tier)
    const h = thread.currentAny() orelse return false;
    const rebinned = h.rebinSingleBlock(page, bin);
    std.debug.assert(!rebinned or page.block_size >= size); // its one block holds the new size,
    std.debug.assert(!rebinned or page.bin == bin); // as a block of the bin the size routes to
    return rebinned;
}

/// The block realloc moved away from, when it has a page of its own: back to its page at
/// once, not onto the thread's cache, where it would wait in a bin of a size the program
/// grew past (a growing buffer's old blocks, bench realloc_growth: 0.4-0.6 MiB of 64 and
/// 72 KiB blocks at the peak) and where a malloc that pops it gets another thread's page,
/// which realloc cannot resize in place. False: not such a block (the caller frees it).
pub fn freeMovedFrom(kind: Kind) bool {
    if (kind != .page_block) return false;
    const page = kind.page_block.page;
    if (!size_class.isSingleBlockBin(page.bin) or page.flags != 0) return false; // (sampled: free's path)
    const h = thread.currentAny() orelse return false;
    if (h.checked) return false;
    std.debug.assert(kind.page_block.start == page.start); // one block: at the span's start
    _ = h.freeToPage(page, @ptrFromInt(kind.page_block.start)); // (as realloc ignores free's result)
    return true;
}

pub fn classify(addr: usize) Kind {
    const tag = segment_map.lookup(addr);
    // (the guard pool first: it may share a 4 MiB chunk, and so its tag, with a large mapping)
    if (tag != .segment and guard.owns(addr)) return if (guard.usableSize(addr)) |n| .{ .guarded = n } else .invalid;
    if (tag == .none) {
        return if (addr != 0 and large_recent.recentlyFreed(addr)) .freed else .not_owned;
    }
    if (tag != .segment) return switch (large.lookup(addr, tag)) {
        .foreign => .not_owned,
        .invalid => .invalid,
        .freed => .freed,
        .live => |h| .{ .large = h },
    };
    const page = Segment.of(addr).pageOf(addr);
    const start = page.blockOf(addr) orelse return .invalid;
    std.debug.assert(start <= addr); // the block that starts at addr, or (aligned pages) contains it
    std.debug.assert(addr - start < page.block_size);
    if (page.looksFree(@ptrFromInt(start)) and isFreed(thread.currentAny(), page, start)) return .freed;
    return .{ .page_block = .{ .page = page, .start = start } };
}

/// Usable bytes from `addr` to the end of its block (`kind` = classify(addr)); null when
/// it is not a live block.
pub fn usableOf(addr: usize, kind: Kind) ?usize {
    return switch (kind) {
        .page_block => |b| blk: {
            std.debug.assert(addr >= b.start); // classify's answer: the block holds addr
            std.debug.assert(addr - b.start < b.page.block_size);
            break :blk b.page.block_size - (addr - b.start);
        },
        .large => |h| blk: {
            std.debug.assert(h.usable_size > 0); // a live block holds a byte at least
            break :blk h.usable_size;
        },
        .guarded => |n| blk: {
            std.debug.assert(n > 0);
            break :blk n;
        },
        .freed, .not_owned, .invalid => null,
    };
}

/// Tier, class and block size of the block at `addr`, for a report.
pub fn describe(addr: usize) ?misuse.Where {
    const tag = segment_map.lookup(addr);
    if (tag == .segment) {
        const page = Segment.of(addr).pageOf(addr);
        if (page.flags & page_mod.flag_unused != 0) return null;
        return page.where();
    }
    return large.describe(addr, tag);
}

// ---------------------------------------------------------------- tests

const testing = std.testing;
const large_region = @import("../memory/large_region.zig");
const header_room = @import("../memory/large_header.zig").header_room;

/// A region block of `units` units, every page written.
fn touchedLarge(units: usize) ![*]u8 {
    const size = units * large_region.unit_size - header_room;
    const p: [*]u8 = @ptrCast(large.alloc(size, 16, false, os.nowMs()) orelse return error.OutOfMemory);
    var at: usize = 0;
    while (at < size) : (at += os.page_size) p[at] = 1;
    return p;
}

fn freeAt(p: [*]u8, now_ms: u64) !void {
    const header = switch (large.lookup(@intFromPtr(p), segment_map.lookup(@intFromPtr(p)))) {
        .live => |hd| hd,
        else => return error.TestUnexpectedResult,
    };
    try testing.expect(large.free(header, now_ms));
}

test "a large malloc when maintenance is due reuses what is retained before maintenance purges along the decay curve" {
    // Regression: mallocLarge ran maintenance first, whose decay purged freed units still
    // inside the decay time (the older of several pieces), which the block then faulted in.
    if (!@import("../memory/large_move.zig").available()) return error.SkipZigTest; // (Linux < 5.7)
    const h = heap() orelse return error.OutOfMemory;
    const now = os.nowMs();
    h.large_local.releaseAll(now);
    large.decay(now, true);
    // one resident run, so the next three blocks go side by side: x1, a live block, x2
    const run = try touchedLarge(10);
    try freeAt(run, now);
    const x1 = try touchedLarge(4);
    const live = try touchedLarge(1);
    const x2 = try touchedLarge(4);
    const freed_ms = now -| (config.purge_delay_ms * 4 / 5); // within the decay time
    try freeAt(x1, freed_ms);
    try freeAt(x2, freed_ms);
    h.maintenance_due_ms = 0; // due now
    const units = 8;
    const p: [*]u8 = @ptrCast(mallocLarge(h, units * large_region.unit_size - header_room, 16, false) orelse return error.OutOfMemory);
    const bytes = units * large_region.unit_size;
    try testing.expectEqual(bytes, os.residentBytes(@intFromPtr(p) - header_room, bytes));
    try testing.expectEqual(FreeResult.ok, free(@intFromPtr(p)));
    try freeAt(live, now);
    h.large_local.releaseAll(now);
    large.decay(now, true);
}
