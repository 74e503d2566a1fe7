//! alloc.zig — malloc and free: the fast paths, and the dispatch to the tiers.
//!
//! malloc(size):  heap = tls_heap; bin = class of size (tiny or mid by threshold);
//!                pop direct[bin].free                              -> 1 branch, no lock
//! free(ptr):     tag = segment_map[ptr >> 22]  (is it ours? what kind?)
//!                page = segment.pages[slice of ptr]; check ptr is a block start;
//!                owner thread: push page.free   else: CAS push page.thread_free
//! Everything else (refill, new page, large blocks, aligned and foreign pointers) is
//! out of line. Neither path prints, locks or calls libc.
const std = @import("std");
const os = @import("os.zig");
const config = @import("config.zig");
const stats = @import("stats.zig");
const size_class = @import("size_class.zig");
const segment_map = @import("segment_map.zig");
const page_mod = @import("page.zig");
const segment_mod = @import("segment.zig");
const thread = @import("thread.zig");
const large = @import("large.zig");
const check = @import("check.zig");
const Page = page_mod.Page;
const Block = page_mod.Block;
const Segment = segment_mod.Segment;
const Heap = @import("heap.zig").Heap;

/// Requests above this fail at once with ENOMEM (beyond any real address space).
pub const size_max: usize = @import("abi.zig").size_max;
/// Larger alignments fail with ENOMEM (they would reserve absurd address space).
pub const alignment_max: usize = @import("abi.zig").alignment_max;

// ------------------------------------------------------------------ malloc

pub fn malloc(size: usize) ?*anyopaque {
    if (thread.current()) |heap| {
        if (size <= config.tiny_max) return heap.allocBin(size_class.tinyBin(size));
        if (size <= config.mid_max) return heap.allocBin(size_class.midBin(size));
        return allocLarge(heap, size, 16) orelse outOfMemory();
    }
    return mallocSlow(size);
}

noinline fn mallocSlow(size: usize) ?*anyopaque {
    const heap = thread.currentOrCreate() orelse return outOfMemory();
    if (config.check_mode != .off) return check.malloc(size, 16);
    return mallocWith(heap, size);
}

/// malloc without check mode's trailer (check.zig builds its blocks on it).
pub fn mallocUnchecked(size: usize) ?*anyopaque {
    const heap = thread.currentOrCreate() orelse return outOfMemory();
    return mallocWith(heap, size);
}

fn mallocWith(heap: *Heap, size: usize) ?*anyopaque {
    const block = switch (config.route(size)) {
        .tiny => heap.allocBin(size_class.tinyBin(size)),
        .mid => heap.allocBin(size_class.midBin(size)),
        .large => allocLarge(heap, size, 16),
    };
    return block orelse outOfMemory();
}

noinline fn allocLarge(heap: *Heap, size: usize, alignment: usize) ?*anyopaque {
    if (size > size_max) return null;
    heap.maintain(os.nowMs(), false);
    return large.alloc(size, alignment, false);
}

pub fn outOfMemory() ?*anyopaque {
    os.setErrno(.NOMEM);
    return null;
}

// ------------------------------------------------------------------ free

pub const FreeResult = enum { ok, not_owned, invalid };

pub fn free(ptr: ?*anyopaque) FreeResult {
    const addr = @intFromPtr(ptr orelse return .ok);
    const tag = segment_map.lookup(addr);
    if (tag != .segment) return freeNotSmall(addr, tag);
    const seg = Segment.of(addr);
    const page = seg.pageOf(addr);
    const block: *Block = @ptrFromInt(addr);
    if (page.flags & special_flags != 0 or !page.isBlockStart(addr) or page.free == block) return freeSpecial(seg, page, addr);
    const heap = thread.current() orelse return freeHeapless(page, block);
    const cached = &heap.cache[page.bin];
    if (cached.head == block) return .invalid; // the block just freed: a double free
    if (cached.capacity == 0) return freeUncached(heap, seg, page, block);
    heap.cacheFree(page.bin, block, !heap.ownsSegment(seg));
    return .ok;
}

/// A bin without a thread cache (big blocks): the block goes straight back to its page,
/// so a second free must be looked for on the page's lists.
noinline fn freeUncached(heap: *Heap, seg: *Segment, page: *Page, block: *Block) FreeResult {
    if (justFreed(page, block, null)) return .invalid;
    heap.cacheFree(page.bin, block, !heap.ownsSegment(seg));
    return .ok;
}

/// Page flags that send free() to its slow path (a full page does not matter to free:
/// blocks go to the thread cache, and back to pages in batches).
const special_flags = page_mod.flag_aligned | page_mod.flag_unused | page_mod.flag_checked;

/// Pages with flags (full, aligned blocks, unused, checked) and anything that failed the
/// block check.
noinline fn freeSpecial(seg: *Segment, page: *Page, addr: usize) FreeResult {
    if (page.flags & page_mod.flag_checked != 0 and config.check_mode != .off) return checkedFree(addr);
    return freeInPage(seg, page, addr);
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
    const seg = Segment.of(addr);
    return freeInPage(seg, seg.pageOf(addr), addr);
}

fn freeInPage(seg: *Segment, page: *Page, addr: usize) FreeResult {
    if (page.flags & page_mod.flag_unused != 0) return .invalid;
    const start = if (page.flags & page_mod.flag_aligned != 0)
        page.blockContaining(addr) orelse return .invalid
    else if (page.isBlockStart(addr)) addr else return .invalid;
    const block: *Block = @ptrFromInt(start);
    const heap = thread.currentAny();
    if (justFreed(page, block, heap)) return .invalid;
    const h = heap orelse return freeHeapless(page, block);
    h.cacheFree(page.bin, block, !h.ownsSegment(seg));
    return .ok;
}

/// True when `block` is the head of one of its page's free lists or of `heap`'s cache of
/// its bin: freed a moment ago, so this free is a double free (caught where cheap, not
/// everywhere: see check mode).
fn justFreed(page: *Page, block: *Block, heap: ?*Heap) bool {
    if (page.free == block or page.thread_free.load(.monotonic) == block) return true;
    const h = heap orelse return false;
    return h.cache[page.bin].head == block;
}

/// A thread that never allocated (so has no heap and no cache) frees straight to the page.
noinline fn freeHeapless(page: *Page, block: *Block) FreeResult {
    const bin = page.bin;
    // A second push of the list's head would make thread_free a loop.
    if (page.thread_free.load(.monotonic) == block) return .invalid;
    page.pushRemote(block);
    if (thread.currentAny()) |heap| {
        heap.counters.frees[bin] += 1;
        heap.counters.remote_frees[bin] += 1;
    } else {
        stats.incr(&stats.heapless_frees[bin]);
    }
    return .ok;
}

noinline fn freeNotSmall(addr: usize, tag: segment_map.Tag) FreeResult {
    if (config.check_mode != .off) return checkedFree(addr);
    return freeLarge(addr, tag);
}

fn freeLarge(addr: usize, tag: segment_map.Tag) FreeResult {
    if (tag == .none) return .not_owned;
    switch (large.lookup(addr, tag)) {
        .foreign => return .not_owned,
        .invalid => return .invalid,
        .live => |header| {
            const now = os.nowMs();
            large.free(header, now);
            if (thread.currentAny()) |heap| heap.maintain(now, false);
            return .ok;
        },
    }
}

// ------------------------------------------------------------------ queries

/// What `addr` is: a live block (its usable size from addr on and its tier), or not.
pub const Kind = union(enum) { small: struct { page: *Page, start: usize }, large: *large.LargeHeader, not_owned, invalid };

pub fn classify(addr: usize) Kind {
    const tag = segment_map.lookup(addr);
    if (tag == .none) return .not_owned;
    if (tag != .segment) return switch (large.lookup(addr, tag)) {
        .foreign => .not_owned,
        .invalid => .invalid,
        .live => |h| .{ .large = h },
    };
    const page = Segment.of(addr).pageOf(addr);
    if (page.flags & page_mod.flag_unused != 0) return .invalid;
    const start = if (page.flags & page_mod.flag_aligned != 0)
        page.blockContaining(addr) orelse return .invalid
    else if (page.isBlockStart(addr)) addr else return .invalid;
    if (justFreed(page, @ptrFromInt(start), thread.currentAny())) return .invalid;
    return .{ .small = .{ .page = page, .start = start } };
}

/// Usable bytes from `addr` to the end of its block; null when addr is not a live block.
pub fn usableSize(addr: usize) ?usize {
    if (config.check_mode != .off) return check.usableSize(addr);
    return switch (classify(addr)) {
        .small => |s| s.page.block_size - (addr - s.start),
        .large => |h| h.usable_size,
        .not_owned, .invalid => null,
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
        heap.maintain(os.nowMs(), false);
        return large.alloc(total, 16, true) orelse outOfMemory();
    }
    const ptr = malloc(total) orelse return null;
    @memset(@as([*]u8, @ptrCast(ptr))[0..total], 0);
    return ptr;
}

pub const ReallocResult = union(enum) { ok: ?*anyopaque, not_owned, invalid };

pub fn realloc(ptr: ?*anyopaque, size: usize) ReallocResult {
    const addr = @intFromPtr(ptr orelse return .{ .ok = malloc(size) });
    if (config.check_mode != .off) return check.realloc(addr, size);
    const kind = classify(addr);
    const old_usable: usize = switch (kind) {
        .not_owned => return .not_owned,
        .invalid => return .invalid,
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
            if (aligned != @intFromPtr(raw)) Segment.of(aligned).pageOf(aligned).flags |= page_mod.flag_aligned;
            return @ptrFromInt(aligned);
        }
    }
    heap.maintain(os.nowMs(), false);
    return large.alloc(size, alignment, false) orelse outOfMemory();
}

fn allocRouted(heap: *Heap, size: usize) ?*anyopaque {
    if (size <= config.tiny_max) return heap.allocBin(size_class.tinyBin(size));
    return heap.allocBin(size_class.midBin(size));
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

test "free recognises pointers it does not own and interior pointers" {
    var local: u64 = 0;
    try testing.expectEqual(FreeResult.not_owned, free(&local));
    const p: [*]u8 = @ptrCast(malloc(100).?);
    try testing.expectEqual(FreeResult.invalid, free(p + 16));
    try testing.expectEqual(FreeResult.ok, free(p));
    try testing.expectEqual(FreeResult.invalid, free(p)); // the block just freed
    const big: [*]u8 = @ptrCast(malloc(3 << 20).?);
    try testing.expectEqual(FreeResult.invalid, free(big + 4096));
    try testing.expectEqual(FreeResult.ok, free(big));
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
    try testing.expectEqual(segment_map.Tag.large_head, segment_map.lookup(@intFromPtr(c)));
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
        heap.cache[bin].capacity = 1;
        heap.slow_calls = 31; // the next tick looks at the clock
        heap.maintenance_due_ms = 0;
        try testing.expectEqual(FreeResult.ok, free(p));
        try testing.expectEqual(FreeResult.ok, free(q)); // overflow: both go back, the page empties
    }
    const r = malloc(48) orelse return error.OutOfMemory;
    try testing.expectEqual(FreeResult.ok, free(r));
}
