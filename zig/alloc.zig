//! alloc.zig — malloc and free: the fast paths, and the dispatch to the tiers.
//!
//! malloc(size):  cache = the thread's cache (TLS; an empty sentinel before its first malloc)
//!                bin = one table load up to 32 KiB (config.bins_by_16/_128: the thresholds
//!                      folded in), else the mid class of size, or large
//!                pop the bin's stack (thread_cache.zig)                 -> else allocSlow
//! free(ptr):     tag = segment_map[ptr >> 22]        (is it ours? a segment?) -> else freeNotSegment
//!                slice = segment.pages[(ptr >> 16) & 63]   (a copy of its page's first line)
//!                ptr < carved_end and a block start (one multiply)        -> else freeSlow
//!                block.key == free_key?  (looks freed already)            -> freeSuspect
//!                push onto the bin's stack                                -> else freeFull
//!                (freeFast keeps no stack frame; freeOther starts over for the rest)
//! That is all free does per call: which thread owns the page (a remote free), the stats,
//! the clock and every check that needs the page's lists happen when a stack is flushed or
//! refilled (thread_cache.zig, heap.zig). Everything else (refill, new pages, large
//! blocks, aligned and foreign pointers, double frees) is out of line. Neither fast path
//! prints, locks or calls libc.
const std = @import("std");
const os = @import("os.zig");
const config = @import("config.zig");
const stats = @import("stats.zig");
const size_class = @import("size_class.zig");
const segment_map = @import("segment_map.zig");
const page_mod = @import("page.zig");
const segment_mod = @import("segment.zig");
const block_mod = @import("block.zig");
const thread = @import("thread.zig");
const large = @import("large.zig");
const check = @import("check.zig");
const misuse = @import("misuse.zig");
const thread_cache = @import("thread_cache.zig");
const background = @import("background.zig");
const Page = page_mod.Page;
const Block = block_mod.Block;
const Segment = segment_mod.Segment;
const Heap = @import("heap.zig").Heap;
const Cache = thread_cache.Cache;

/// Requests above this fail at once with ENOMEM (beyond any real address space).
pub const size_max: usize = @import("abi.zig").size_max;
/// Larger alignments fail with ENOMEM (they would reserve absurd address space).
pub const alignment_max: usize = @import("abi.zig").alignment_max;

// ------------------------------------------------------------------ malloc

pub inline fn malloc(size: usize) ?*anyopaque {
    return mallocFrom(.internal, size);
}

/// Who called malloc: the libc names mark the process as using hakmem as its malloc
/// (misuse.libc_mode) on their first slow path.
pub const Entry = enum { libc, api, internal };

pub inline fn mallocFrom(comptime entry: Entry, size: usize) ?*anyopaque {
    const cache = thread.cache();
    if (size <= config.by_16_max) {
        if (cache.pop(config.bins_by_16[(size + 15) >> 4])) |blk| return blk;
    } else if (size <= config.by_128_max) {
        if (cache.pop(config.bins_by_128[(size + 127) >> 7])) |blk| return blk;
    } else if (size <= config.mid_max) {
        if (cache.pop(size_class.midBin(size))) |blk| return blk;
    } else return mallocLarge(size);
    if (entry == .libc) return mallocSlowLibc(size);
    return mallocSlow(size);
}

noinline fn mallocSlowLibc(size: usize) ?*anyopaque {
    misuse.noteLibcMode();
    return mallocSlow(size);
}

noinline fn mallocSlow(size: usize) ?*anyopaque {
    const heap = thread.currentOrCreate() orelse return outOfMemory();
    if (config.check_mode != .off) return check.malloc(size, 16);
    const ptr = mallocWith(heap, size);
    // After the allocation (the heap is consistent again), and not among a process's very
    // first allocations (libc may still be starting up).
    if (heap.slow_calls >= background.start_after_slow_calls) background.startIfWanted();
    return ptr;
}

noinline fn mallocLarge(size: usize) ?*anyopaque {
    const heap = thread.currentOrCreate() orelse return outOfMemory();
    if (config.check_mode != .off) return check.malloc(size, 16);
    return allocLarge(heap, size, 16) orelse outOfMemory();
}

/// malloc without check mode's trailer (check.zig builds its blocks on it).
pub fn mallocUnchecked(size: usize) ?*anyopaque {
    const heap = thread.currentOrCreate() orelse return outOfMemory();
    return mallocWith(heap, size);
}

fn mallocWith(heap: *Heap, size: usize) ?*anyopaque {
    const blk = switch (config.route(size)) {
        .tiny => allocBin(heap, size_class.tinyBin(size)),
        .mid => allocBin(heap, size_class.midBin(size)),
        .large => allocLarge(heap, size, 16),
    };
    return blk orelse outOfMemory();
}

fn allocBin(heap: *Heap, bin: usize) ?*anyopaque {
    if (heap.cache.pop(bin)) |blk| return blk;
    return heap.allocSlow(bin);
}

fn allocLarge(heap: *Heap, size: usize, alignment: usize) ?*anyopaque {
    if (size > size_max) return null;
    const now = os.nowMs();
    heap.maintain(now, false);
    return large.alloc(size, alignment, false, now);
}

pub fn outOfMemory() ?*anyopaque {
    os.setErrno(.NOMEM);
    return null;
}

// ------------------------------------------------------------------ free

/// `double_free`: the block is free already (found in a cache or on its page's list);
/// nothing was changed. `invalid`: hakmem's memory, but not a block start.
pub const FreeResult = enum { ok, not_owned, invalid, double_free };

pub inline fn free(ptr: ?*anyopaque) FreeResult {
    if (freeFast(ptr)) return .ok;
    return freeOther(@intFromPtr(ptr));
}

/// free's fast path: true when the block went onto this thread's stack. It keeps no
/// stack frame: everything else, and every result but `ok`, is in freeOther.
pub inline fn freeFast(ptr: ?*anyopaque) bool {
    const addr = @intFromPtr(ptr);
    const slice = fastSlice(addr) orelse return false; // NULL too: chunk 0 is never ours
    const blk: *Block = @ptrFromInt(addr);
    const key = block_mod.free_key; // loaded once: compared, then written
    if (blk.key == key) return false;
    return thread.cache().pushKeyed(slice.bin, blk, key);
}

/// The block size of a live tiny/mid block starting at `addr`, by free's fast-path checks
/// (segment tag, carved block start of a page without flags, key not set); null when
/// those checks do not settle it (the caller then classifies).
inline fn liveBlockSize(addr: usize) ?usize {
    const slice = fastSlice(addr) orelse return null;
    if (block_mod.isMarkedFree(@ptrFromInt(addr))) return null;
    return slice.block_size;
}

/// The slice (a copy of its page's first line) when `addr` is in a segment and a carved
/// block start of a page without flags: free's and realloc's fast test.
inline fn fastSlice(addr: usize) ?*const Page {
    if (segment_map.lookup(addr) != .segment) return null;
    const slice = Segment.sliceOf(addr);
    return if (slice.isFastBlockStart(addr)) slice else null;
}

/// Every free the fast path did not take, from the start.
pub noinline fn freeOther(addr: usize) FreeResult {
    if (segment_map.lookup(addr) != .segment) return freeNotSegment(addr);
    if (!Segment.sliceOf(addr).isFastBlockStart(addr)) return freeSlow(addr);
    const cache = thread.cache();
    if (block_mod.isMarkedFree(@ptrFromInt(addr))) return freeSuspect(cache, addr);
    return freeFull(cache, addr);
}

/// The bin's stack is full, has no room at all (a bin without a cache), or is the
/// heapless sentinel's.
noinline fn freeFull(cache: *Cache, addr: usize) FreeResult {
    const page = Segment.of(addr).pageOf(addr);
    const heap = thread.heapOf(cache) orelse return freeHeapless(page, @ptrFromInt(addr));
    return switch (heap.freeFull(page, @ptrFromInt(addr))) {
        .ok => .ok,
        .double_free => .double_free,
    };
}

/// The block's key says it is free already. A double free if it is found where a free
/// block can be; else (a program's data that equals the key, or a copy in flight) it goes
/// to its page, where a second copy is caught (page.zig: the bitmap).
noinline fn freeSuspect(cache: *Cache, addr: usize) FreeResult {
    const page = Segment.of(addr).pageOf(addr);
    const heap = thread.heapOf(cache);
    if (isFreed(heap, page, addr)) return .double_free;
    return freeToPage(heap, page, @ptrFromInt(addr));
}

/// True when the free block at `addr` (a block start of `page`) is found: in this
/// thread's cache, free on its page (after collecting the page's remote frees when
/// this heap owns it), at the head of its remote list, or in another thread's cache.
fn isFreed(heap: ?*Heap, page: *Page, addr: usize) bool {
    const blk: *Block = @ptrFromInt(addr);
    if (heap) |h| {
        if (h.cache.contains(page.bin, blk)) return true;
        if (h.ownsSegment(Segment.of(addr))) _ = page.collect();
    }
    if (page.isOnFreeList(addr) or page.remoteHead() == blk) return true;
    return thread.otherCacheHolds(page.bin, blk, heap);
}

fn freeToPage(heap: ?*Heap, page: *Page, blk: *Block) FreeResult {
    const h = heap orelse return freeHeapless(page, blk);
    return switch (h.freeToPage(page, blk)) {
        .ok => .ok,
        .double_free => .double_free,
    };
}

/// A thread that never allocated (so has no heap and no cache) gives the block back
/// through its page's thread_free (the owner checks it when it collects).
noinline fn freeHeapless(page: *Page, blk: *Block) FreeResult {
    if (page.remoteHead() == blk) return .double_free;
    blk.key = block_mod.free_key;
    page.pushRemoteChain(blk, blk);
    stats.incr(&stats.heapless_frees[page.bin]);
    return .ok;
}

/// Pages with flags (aligned blocks, unused, checked) and anything that failed the
/// block-start test.
noinline fn freeSlow(addr: usize) FreeResult {
    const page = Segment.of(addr).pageOf(addr);
    if (page.flags & page_mod.flag_checked != 0 and config.check_mode != .off) return checkedFree(addr);
    return freeInPage(page, addr);
}

fn checkedFree(addr: usize) FreeResult {
    return switch (check.free(addr)) {
        .freed => .ok,
        .ignored => .invalid,
        .not_owned => .not_owned,
    };
}

/// free without check mode (check.zig calls it once it has validated the block).
pub fn freeUnchecked(addr: usize) FreeResult {
    const tag = segment_map.lookup(addr);
    if (tag != .segment) return freeLarge(addr, tag);
    return freeInPage(Segment.of(addr).pageOf(addr), addr);
}

/// The general free of an address in a segment: any page, any thread, any mode.
fn freeInPage(page: *Page, addr: usize) FreeResult {
    if (page.flags & page_mod.flag_unused != 0) return .invalid;
    const start = if (page.flags & page_mod.flag_aligned != 0)
        page.blockContaining(addr) orelse return .invalid
    else if (page.isBlockStart(addr)) addr else return .invalid;
    const blk: *Block = @ptrFromInt(start);
    const heap = thread.currentAny();
    if (block_mod.isMarkedFree(blk) and isFreed(heap, page, start)) return .double_free;
    const h = heap orelse return freeHeapless(page, blk);
    if (block_mod.isMarkedFree(blk)) return freeToPage(h, page, blk);
    if (h.cache.push(page.bin, blk)) return .ok;
    return switch (h.freeFull(page, blk)) {
        .ok => .ok,
        .double_free => .double_free,
    };
}

noinline fn freeNotSegment(addr: usize) FreeResult {
    if (addr == 0) return .ok;
    if (config.check_mode != .off) return checkedFree(addr);
    return freeLarge(addr, segment_map.lookup(addr));
}

fn freeLarge(addr: usize, tag: segment_map.Tag) FreeResult {
    if (tag == .none) return if (large.recentlyFreed(addr)) .double_free else .not_owned;
    switch (large.lookup(addr, tag)) {
        .foreign => return .not_owned,
        .invalid => return .invalid,
        .freed => return .double_free,
        .live => |header| {
            const now = os.nowMs();
            large.free(header, now);
            if (thread.currentAny()) |heap| heap.maintain(now, false);
            return .ok;
        },
    }
}

// ------------------------------------------------------------------ queries

/// What `addr` is: a live block (its usable size from addr on and its tier), a block
/// that is free already, or not a block.
pub const Kind = union(enum) {
    small: struct { page: *Page, start: usize },
    large: *large.LargeHeader,
    freed,
    not_owned,
    invalid,
};

pub fn classify(addr: usize) Kind {
    const tag = segment_map.lookup(addr);
    if (tag == .none) return if (addr != 0 and large.recentlyFreed(addr)) .freed else .not_owned;
    if (tag != .segment) return switch (large.lookup(addr, tag)) {
        .foreign => .not_owned,
        .invalid => .invalid,
        .freed => .freed,
        .live => |h| .{ .large = h },
    };
    const page = Segment.of(addr).pageOf(addr);
    if (page.flags & page_mod.flag_unused != 0) return .invalid;
    const start = if (page.flags & page_mod.flag_aligned != 0)
        page.blockContaining(addr) orelse return .invalid
    else if (page.isBlockStart(addr)) addr else return .invalid;
    if (block_mod.isMarkedFree(@ptrFromInt(start)) and isFreed(thread.currentAny(), page, start)) return .freed;
    return .{ .small = .{ .page = page, .start = start } };
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

/// Usable bytes from `addr` to the end of its block; null when addr is not a live block.
pub fn usableSize(addr: usize) ?usize {
    if (config.check_mode != .off) return check.usableSize(addr);
    return switch (classify(addr)) {
        .small => |s| s.page.block_size - (addr - s.start),
        .large => |h| h.usable_size,
        .freed, .not_owned, .invalid => null,
    };
}

// ------------------------------------------------------------------ calloc, realloc, aligned

pub fn calloc(count: usize, size: usize) ?*anyopaque {
    if (config.check_mode != .off) return check.calloc(count, size);
    const total = std.math.mul(usize, count, size) catch return outOfMemory();
    if (total > config.mid_max) {
        // large: a fresh mapping is already zero; large.alloc clears a reused one
        const heap = thread.currentOrCreate() orelse return outOfMemory();
        if (config.check_mode != .off) return check.calloc(count, size);
        if (total > size_max) return outOfMemory();
        const now = os.nowMs();
        heap.maintain(now, false);
        return large.alloc(total, 16, true, now) orelse outOfMemory();
    }
    const ptr = malloc(total) orelse return null;
    @memset(@as([*]u8, @ptrCast(ptr))[0..total], 0);
    return ptr;
}

pub const ReallocResult = union(enum) { ok: ?*anyopaque, not_owned, invalid, freed };

pub fn realloc(ptr: ?*anyopaque, size: usize) ReallocResult {
    const addr = @intFromPtr(ptr orelse return .{ .ok = malloc(size) });
    if (config.check_mode != .off) return check.realloc(addr, size);
    if (liveBlockSize(addr)) |usable| {
        // a live tiny/mid block that still fits (free's fast checks; no page lookup)
        if (size <= usable and size >= usable / 2) return .{ .ok = ptr };
    }
    const kind = classify(addr);
    const old_usable: usize = switch (kind) {
        .not_owned => return .not_owned,
        .invalid => return .invalid,
        .freed => return .freed,
        .small => |s| s.page.block_size - (addr - s.start),
        .large => |h| h.usable_size,
    };
    if (size <= old_usable and size >= old_usable / 2) return .{ .ok = ptr };
    if (kind == .large and size > config.mid_max and size <= size_max and
        (@as(*large.LargeHeader, kind.large).block_offset < segment_map.chunk_size))
    {
        if (large.resize(kind.large, size)) |moved| return .{ .ok = moved };
    }
    const fresh = malloc(grownSize(kind, addr, size, old_usable)) orelse return .{ .ok = null };
    @memcpy(@as([*]u8, @ptrCast(fresh))[0..@min(size, old_usable)], @as([*]const u8, @ptrCast(ptr.?))[0..@min(size, old_usable)]);
    _ = free(ptr);
    if (size > old_usable and kind == .small) {
        if (thread.current()) |heap| heap.grown.remember(@intFromPtr(fresh));
    }
    return .{ .ok = fresh };
}

/// The size to allocate when realloc moves a block: `size`, or, for a tiny/mid block
/// that an earlier realloc already grew, half as much again as it had (within its tier),
/// so a buffer growing by small steps is copied about 10 times on its way from 1 KiB to
/// 64 KiB rather than at each of the ~48 size classes it crosses.
fn grownSize(kind: Kind, addr: usize, size: usize, old_usable: usize) usize {
    if (kind != .small or size <= old_usable) return size;
    const heap = thread.current() orelse return size;
    if (!heap.grown.take(addr)) return size;
    // Room within the tier `size` routes to: the block stays where route(size) says.
    const tier_max = if (size <= config.tiny_max) config.tiny_max else config.mid_max;
    const roomy = @min(old_usable + old_usable / 2, tier_max);
    return @max(size, roomy);
}

/// Memory aligned to `alignment` (a power of two). Null with ENOMEM when out of memory.
pub fn alignedAlloc(alignment: usize, size: usize) ?*anyopaque {
    std.debug.assert(std.math.isPowerOfTwo(alignment));
    if (alignment <= size_class.min_block_size) return malloc(size);
    _ = thread.currentOrCreate() orelse return outOfMemory();
    if (config.check_mode != .off) return check.alignedAlloc(alignment, size);
    return alignedUnchecked(alignment, size);
}

pub fn alignedUnchecked(alignment: usize, size: usize) ?*anyopaque {
    if (alignment <= size_class.min_block_size) return mallocUnchecked(size);
    if (size > size_max or alignment > alignment_max) return outOfMemory();
    const heap = thread.currentOrCreate() orelse return outOfMemory();
    if (alignment <= size_class.slice_size) {
        // A class whose block size is a multiple of the alignment gives aligned blocks
        // (pages start on 64 KiB boundaries).
        const rounded = std.mem.alignForward(usize, @max(size, 1), alignment);
        if (rounded <= config.mid_max and size_class.classSize(size_class.classOf(rounded)) % alignment == 0) {
            return allocRouted(heap, rounded) orelse outOfMemory();
        }
        const padded = size + alignment - 1;
        if (padded <= config.mid_max) {
            const raw = allocRouted(heap, padded) orelse return outOfMemory();
            const aligned = std.mem.alignForward(usize, @intFromPtr(raw), alignment);
            if (aligned != @intFromPtr(raw)) {
                const page = Segment.of(aligned).pageOf(aligned);
                if (page.flags & page_mod.flag_aligned == 0) page.setFlags(page_mod.flag_aligned);
            }
            return @ptrFromInt(aligned);
        }
    }
    const now = os.nowMs();
    heap.maintain(now, false);
    return large.alloc(size, alignment, false, now) orelse outOfMemory();
}

fn allocRouted(heap: *Heap, size: usize) ?*anyopaque {
    if (size <= config.tiny_max) return allocBin(heap, size_class.tinyBin(size));
    return allocBin(heap, size_class.midBin(size));
}

/// Purges empty memory now: the calling thread's heap, the segment cache, the large cache.
pub fn collect(force: bool) void {
    const now = os.nowMs();
    if (thread.currentAny()) |heap| return heap.maintain(now, force);
    @import("arena.zig").decay(now, force);
    large.decay(now, force);
}

// ------------------------------------------------------------------ tests

const testing = std.testing;

test "malloc/free across tiers, usable size, content" {
    const sizes = [_]usize{ 0, 1, 15, 16, 17, 64, 127, 128, 129, 1000, 1024, 1025, 8192, 40000, 1 << 20, (1 << 20) + 1, 5 << 20 };
    for (sizes) |size| {
        const p = malloc(size) orelse return error.OutOfMemory;
        try testing.expect(@intFromPtr(p) % 16 == 0);
        const usable = usableSize(@intFromPtr(p)).?;
        try testing.expect(usable >= size);
        @memset(@as([*]u8, @ptrCast(p))[0..usable], 0xA5);
        try testing.expectEqual(FreeResult.ok, free(p));
    }
}

test "free recognises pointers it does not own, interior pointers and double frees" {
    var local: u64 = 0;
    try testing.expectEqual(FreeResult.not_owned, free(&local));
    const p: [*]u8 = @ptrCast(malloc(100).?);
    const q = malloc(100).?;
    try testing.expectEqual(FreeResult.invalid, free(p + 16));
    try testing.expectEqual(FreeResult.ok, free(p));
    try testing.expectEqual(FreeResult.double_free, free(p)); // in the cache
    try testing.expectEqual(FreeResult.ok, free(q));
    try testing.expectEqual(FreeResult.double_free, free(p)); // not the newest any more
    const big: [*]u8 = @ptrCast(malloc(3 << 20).?);
    try testing.expectEqual(FreeResult.invalid, free(big + 4096));
    try testing.expectEqual(FreeResult.ok, free(big));
    try testing.expectEqual(FreeResult.double_free, free(big));
}

test "a double free of a block that went back to its page is caught there" {
    const bin = size_class.tinyBin(48);
    const p = malloc(48).?;
    try testing.expectEqual(FreeResult.ok, free(p));
    const heap = thread.currentAny().?;
    heap.flushCache(bin, 0);
    try testing.expectEqual(FreeResult.double_free, free(p));
    // and a block whose first words merely look freed is accepted
    const q: *Block = @ptrCast(@alignCast(malloc(48).?));
    q.key = block_mod.free_key;
    try testing.expectEqual(FreeResult.ok, free(q));
    const r = malloc(48).?;
    const s = malloc(48).?;
    try testing.expect(r != s);
    _ = free(r);
    _ = free(s);
}

test "realloc keeps content across tiers in both directions" {
    var p: ?*anyopaque = malloc(16);
    for (0..16) |i| @as([*]u8, @ptrCast(p.?))[i] = @intCast(i);
    const steps = [_]usize{ 100_000, 8 << 20, 24 << 20, 3 << 20, 2000, 16 };
    for (steps) |size| {
        p = realloc(p, size).ok;
        for (0..16) |i| try testing.expectEqual(@as(u8, @intCast(i)), @as([*]u8, @ptrCast(p.?))[i]);
    }
    try testing.expectEqual(FreeResult.ok, free(p));
}

test "aligned allocations from every tier" {
    // A live large block first, so the next large blocks do not start where a region does
    // (regression: an alignment above the region unit came back misaligned).
    const spacer = malloc((1 << 20) + 1).?;
    defer _ = free(spacer);
    var alignment: usize = 32;
    while (alignment <= 8 << 20) : (alignment *= 2) {
        for ([_]usize{ 1, 100, 5000, 300_000, 2 << 20 }) |size| {
            const p = alignedAlloc(alignment, size) orelse return error.OutOfMemory;
            try testing.expect(@intFromPtr(p) % alignment == 0);
            try testing.expect(usableSize(@intFromPtr(p)).? >= size);
            @memset(@as([*]u8, @ptrCast(p))[0..size], 1);
            try testing.expectEqual(FreeResult.ok, free(p));
        }
    }
}

test "calloc is zero after a dirty block is reused, and checks overflow" {
    for ([_]usize{ 48, 3000, 200_000, 6 << 20 }) |size| {
        const dirty = malloc(size).?;
        @memset(@as([*]u8, @ptrCast(dirty))[0..size], 0xFF);
        _ = free(dirty);
        const clean: [*]u8 = @ptrCast(calloc(1, size).?);
        for (0..size) |i| try testing.expectEqual(@as(u8, 0), clean[i]);
        _ = free(clean);
    }
    try testing.expect(calloc(std.math.maxInt(usize) / 2, 3) == null);
    try testing.expect(malloc(std.math.maxInt(usize)) == null);
}

test "thresholds change while blocks are live" {
    const old_tiny = config.tiny_max;
    const old_mid = config.mid_max;
    defer _ = config.setThresholds(old_tiny, old_mid);
    const a = malloc(900).?; // tiny under the defaults
    try testing.expect(config.setThresholds(256, config.mid_max_min));
    const b = malloc(900).?; // mid now
    const c = malloc(config.mid_max_min + 1).?; // large now
    try testing.expect(Segment.of(@intFromPtr(a)).pageOf(@intFromPtr(a)).isTiny());
    try testing.expect(!Segment.of(@intFromPtr(b)).pageOf(@intFromPtr(b)).isTiny());
    try testing.expectEqual(segment_map.Tag.large_region, segment_map.lookup(@intFromPtr(c))); // the large tier
    try testing.expectEqual(FreeResult.ok, free(a));
    try testing.expectEqual(FreeResult.ok, free(b));
    try testing.expectEqual(FreeResult.ok, free(c));
}

test "many blocks, then everything back" {
    const count = 20_000;
    const blocks = try testing.allocator.alloc(?*anyopaque, count);
    defer testing.allocator.free(blocks);
    for (blocks, 0..) |*b, i| {
        b.* = malloc(16 + (i * 7919) % 3000);
        @as([*]u8, @ptrCast(b.*.?))[0] = @truncate(i);
    }
    for (blocks, 0..) |b, i| {
        try testing.expectEqual(@as(u8, @truncate(i)), @as([*]u8, @ptrCast(b.?))[0]);
        try testing.expectEqual(FreeResult.ok, free(b));
    }
    collect(true);
}

test "a direct page that empties when maintenance is due is kept consistent" {
    // Regression: maintenance ran inside pageBecameEmpty before the page was handled,
    // released the (empty, direct) page, and the caller then released it again. Pages now
    // empty when a thread-cache overflow returns blocks; maintenance may follow at once.
    const saved_delay = config.purge_delay_ms;
    const saved_adapt = config.adapt;
    config.purge_delay_ms = 0;
    config.adapt = false;
    defer {
        config.purge_delay_ms = saved_delay;
        config.adapt = saved_adapt;
    }
    const bin = size_class.tinyBin(48);
    for (0..64) |_| {
        const p = malloc(48) orelse return error.OutOfMemory;
        const q = malloc(48) orelse return error.OutOfMemory;
        const heap = thread.currentAny().?;
        heap.flushCache(bin, 0);
        heap.cache.setCapacity(bin, 1);
        heap.slow_calls = 31; // the next tick looks at the clock
        heap.maintenance_due_ms = 0;
        try testing.expectEqual(FreeResult.ok, free(p));
        try testing.expectEqual(FreeResult.ok, free(q)); // overflow: both go back, the page empties
    }
    const r = malloc(48) orelse return error.OutOfMemory;
    try testing.expectEqual(FreeResult.ok, free(r));
}
