//! alloc.zig — the allocator as the exports (api.zig, preload.zig) call it: malloc's and
//! free's fast paths, and where every call goes when they cannot answer.
//!
//! malloc(size):  cache = the thread's cache (TLS; an empty sentinel before its first malloc,
//!                      and always in check mode and when tracing: HAKMEM_TRACE, trace.zig)
//!                bin = one table load up to 1 MiB (routing.bins_by_16/_128/_4k: the
//!                      thresholds folded in; the bin's stack offset), else large
//!                pop the bin's stack, its newest block keyed free (thread_cache.zig)
//!                                                              -> else mallocSlow
//! free(ptr):     free_fast.zig, the whole test in one file:
//!                tag = segment_map[ptr >> 22]        (is it ours? a segment?)
//!                slice = segment.pages[(ptr >> 16) & 63]   (a copy of its page's first line)
//!                ptr < carved_end and a block start (one multiply; fast_magic is 0 on a
//!                      page with a slow flag: aligned, unused, checked, sampled)
//!                push onto the bin's stack (the block's key stored, nothing of it loaded:
//!                      a double free is found when the block leaves the stack: pop, flush;
//!                      hak_free also tests block.key != free_key first)  -> any "no": freeOther
//!                (freeFast keeps no stack frame; freeOther starts over)
//! That is all free does per call: which thread owns the page (a remote free), the stats,
//! the clock and every check that needs the page's lists happen when a stack is flushed or
//! refilled (thread_cache.zig, heap.zig). Neither fast path prints, locks or calls libc.
//!
//! Everything else: check mode (HAKMEM_CHECK) goes to check.zig; otherwise the slow paths
//! (slow.zig: a page or a large block for malloc, the one general free for free, aligned
//! blocks, and classify for the queries). calloc, realloc (its growth policy: growth.zig)
//! and the queries are here, on top of both.
const std = @import("std");
const os = @import("../base/os.zig");
const config = @import("../settings/config.zig");
const routing = @import("../settings/routing.zig");
const size_class = @import("../settings/size_class.zig");
const segment_map = @import("../base/segment_map.zig");
const page_mod = @import("../memory/page.zig");
const segment_mod = @import("../memory/segment.zig");
const block_mod = @import("../base/block.zig");
const thread = @import("../thread/thread.zig");
const check = @import("check.zig");
const check_sites = @import("check_sites.zig");
const misuse = @import("../settings/misuse.zig");
const background = @import("../process/background.zig");
const slow = @import("slow.zig");
const free_fast = @import("free_fast.zig");
const growth = @import("../thread/growth.zig");
const thread_cache = @import("../thread/thread_cache.zig");
const trace = @import("../process/trace.zig");
const Page = page_mod.Page;
const Block = block_mod.Block;
const Segment = segment_mod.Segment;

pub const size_max = slow.size_max;

comptime {
    // malloc's tables end where the mid tier's largest setting does: past them (mallocLarge)
    // every request is large, and within them the largest bin holds the largest size
    std.debug.assert(routing.by_4k_max == routing.mid_max_limit);
    std.debug.assert(size_class.binBlockSize(size_class.bin_count - 1) >= routing.by_4k_max);
    std.debug.assert(routing.by_4k_max < size_max); // a large request may still be served
}
pub const FreeResult = slow.FreeResult;
pub const Kind = slow.Kind;
pub const classify = slow.classify;
pub const describe = slow.describe;
pub const outOfMemory = slow.outOfMemory;

// ------------------------------------------------------------------ malloc

pub inline fn malloc(size: usize) ?*anyopaque {
    return mallocFrom(.internal, size);
}

/// Who called malloc: the libc names mark the process as using hakmem as its malloc
/// (misuse.libc_mode) on their first slow path.
pub const Entry = enum { libc, api, internal };

pub inline fn mallocFrom(comptime entry: Entry, size: usize) ?*anyopaque {
    return routing.fastRoute(size, Pop(entry){ .cache = thread.cache(), .size = size });
}

/// What malloc does with the bin's stack routing.fastRoute found: pop it, else the slow path.
fn Pop(comptime entry: Entry) type {
    return struct {
        cache: *thread_cache.Cache,
        size: usize,

        pub const Result = ?*anyopaque;

        pub inline fn stack(self: @This(), offset: routing.StackOffset) Result {
            if (self.cache.popAt(offset)) |blk| return blk;
            if (entry == .libc) return mallocSlowLibc(self.size);
            return mallocSlow(self.size);
        }

        pub inline fn large(self: @This()) Result {
            if (entry == .libc) return mallocLargeLibc(self.size);
            return mallocLarge(self.size);
        }
    };
}

noinline fn mallocSlowLibc(size: usize) ?*anyopaque {
    std.debug.assert(size <= routing.by_4k_max); // fastRoute's stack branch: a table's size
    if (config.check_mode != .off) return @call(.always_tail, mallocCheckedLibc, .{size});
    misuse.noteLibcMode();
    if (config.trace) return traced(mallocSlow(size), size);
    return mallocSlow(size);
}

noinline fn mallocLargeLibc(size: usize) ?*anyopaque {
    std.debug.assert(size > routing.by_4k_max); // fastRoute's large branch: past every table
    if (config.check_mode != .off) return @call(.always_tail, mallocCheckedLibc, .{size});
    if (config.trace) return traced(mallocLargeBody(size), size);
    return mallocLargeBody(size);
}

/// Check mode's malloc through the libc names, reached by jumps only (from malloc, then
/// from one of the two above): its frame address names the program's call to malloc
/// (check_sites.noteEntry; preload.zig says why).
noinline fn mallocCheckedLibc(size: usize) ?*anyopaque {
    std.debug.assert(config.check_mode != .off); // (the two above jump here in check mode only)
    misuse.noteLibcMode();
    if (!config.check_stacks and !config.trace) {
        // the common case, its site passed along instead of noted and taken again
        if (thread.currentAny()) |heap| {
            if (check.mallocQuickFrom(heap, size, check_sites.callerOf(@frameAddress()))) |p| return p;
        }
    }
    check_sites.noteEntry(@frameAddress());
    const ptr = if (slow.heap()) |heap| check.mallocFor(heap, size, 16) else outOfMemory();
    std.debug.assert(ptr == null or @intFromPtr(ptr) % 16 == 0); // malloc's alignment
    if (config.trace) return traced(ptr, size);
    return ptr;
}

/// A traced process's malloc (HAKMEM_TRACE: its fast paths always fall through to here).
fn traced(ptr: ?*anyopaque, size: usize) ?*anyopaque {
    std.debug.assert(config.trace); // (a traced process only: its fast paths always fall through)
    std.debug.assert(ptr == null or @intFromPtr(ptr) % 16 == 0); // malloc's alignment
    trace.allocated(.malloc, size, ptr);
    return ptr;
}

/// The bin's stack was empty (or the size is routed by a threshold inside its table slot,
/// or this is check mode).
noinline fn mallocSlow(size: usize) ?*anyopaque {
    std.debug.assert(size <= routing.by_4k_max); // (Pop.stack: fastRoute's stack branch)
    const heap = slow.heap() orelse return outOfMemory();
    if (config.check_mode != .off) return check.mallocFor(heap, size, 16);
    const ptr = slow.mallocWith(heap, size);
    std.debug.assert(ptr == null or @intFromPtr(ptr) % 16 == 0);
    if (std.debug.runtime_safety) {
        // the block holds the request (a lookup: not in ReleaseFast)
        if (ptr) |p| std.debug.assert(usableSize(@intFromPtr(p)).? >= size);
    }
    // After the allocation (the heap is consistent again), and not among a process's very
    // first allocations (libc may still be starting up).
    if (heap.slow_calls >= background.start_after_slow_calls) background.startIfWanted();
    return ptr;
}

/// Out of line: the fast paths that reach it (hak_alloc) keep no register for it.
noinline fn mallocLarge(size: usize) ?*anyopaque {
    return mallocLargeBody(size);
}

/// Inline into the two above (the libc path makes one call fewer).
inline fn mallocLargeBody(size: usize) ?*anyopaque {
    std.debug.assert(size > routing.by_4k_max); // above every table: never a bin's
    const heap = slow.heap() orelse return outOfMemory();
    if (config.check_mode != .off) return check.mallocFor(heap, size, 16);
    std.debug.assert(routing.route(size) == .large); // mid_max <= mid_max_limit = by_4k_max
    return slow.mallocLarge(heap, size, 16, false);
}

// ------------------------------------------------------------------ free

/// hak_free and the library's own frees: a double free answered at the call
/// (free_fast.freeFastAnswered); free(3) is preload.zig's, on freeFast.
pub inline fn free(ptr: ?*anyopaque) FreeResult {
    if (free_fast.freeFastAnswered(ptr)) return .ok;
    return freeOther(@intFromPtr(ptr));
}

/// free(3)'s fast path, every test of it in free_fast.zig: true when the block went onto
/// this thread's stack; every result but `ok` is freeOther's. A double free is found when
/// the block leaves the stack (thread_cache.zig pop, flush).
pub const freeFast = free_fast.freeFast;
/// free's tests 1-3 (free_fast.zig): also realloc's fast test.
const fastSlice = free_fast.fastSlice;

/// Every free the fast path did not take, from the start: check mode's, or the general
/// free (a full stack, a block that looks freed, an aligned or foreign pointer, large).
pub noinline fn freeOther(addr: usize) FreeResult {
    if (config.check_mode != .off) return checkedFree(addr);
    const result = slow.free(addr);
    std.debug.assert(addr != 0 or result == .ok); // free(NULL) does nothing, and is no error
    return result;
}

fn checkedFree(addr: usize) FreeResult {
    std.debug.assert(config.check_mode != .off);
    const result: FreeResult = switch (check.free(addr)) { // (free(NULL) too: it takes the call's site)
        .freed => .ok,
        .double_free => .double_free,
        .ignored => .invalid,
        .not_owned => .not_owned,
    };
    std.debug.assert(addr != 0 or result == .ok); // free(NULL) does nothing, and is no error
    return result;
}

// ------------------------------------------------------------------ queries

/// Usable bytes from `addr` to the end of its block; null when addr is not a live block.
pub fn usableSize(addr: usize) ?usize {
    const usable = if (config.check_mode != .off) check.usableSize(addr) else slow.usableOf(addr, slow.classify(addr));
    std.debug.assert(addr != 0 or usable == null); // NULL is no block
    return usable;
}

pub const Ownership = enum { live, invalid, not_owned };

/// hak_owns: a live block's address (on a page of aligned blocks, any address inside one),
/// hakmem's memory that is no live block, or not hakmem's.
pub fn owns(addr: usize) Ownership {
    if (config.check_mode != .off) {
        if (check.usableSize(addr) != null) return .live;
    }
    const kind = slow.classify(addr);
    const answer: Ownership = switch (kind) {
        .page_block => |b| if (b.start == addr or b.page.flags & page_mod.flag_aligned != 0) .live else .invalid,
        .large, .guarded => .live,
        .not_owned => .not_owned,
        .invalid, .freed => .invalid,
    };
    std.debug.assert(addr != 0 or answer == .not_owned); // NULL is never hakmem's
    return answer;
}

// ------------------------------------------------------------------ calloc, realloc, aligned

pub fn calloc(count: usize, size: usize) ?*anyopaque {
    if (config.check_mode != .off) return check.calloc(count, size);
    const total = std.math.mul(usize, count, size) catch return outOfMemory();
    std.debug.assert(count == 0 or total / count == size); // (mul refused an overflow)
    if (routing.route(total) == .large) {
        // large: never-used region units or a fresh mapping are zero; large.alloc clears reused ones
        const heap = slow.heap() orelse return outOfMemory();
        if (config.check_mode != .off) return check.calloc(count, size);
        const zeroed = slow.mallocLarge(heap, total, 16, true);
        std.debug.assert(zeroed == null or @intFromPtr(zeroed) % 16 == 0);
        return zeroed;
    }
    const ptr = malloc(total) orelse return null;
    std.debug.assert(@intFromPtr(ptr) % 16 == 0);
    if (std.debug.runtime_safety) std.debug.assert(usableSize(@intFromPtr(ptr)).? >= total); // the bytes cleared are the block's (a lookup)
    @memset(@as([*]u8, @ptrCast(ptr))[0..total], 0);
    return ptr;
}

pub const ReallocResult = slow.ReallocResult;

/// realloc's fast path (no stack frame: the libc name tries it first, alloc.realloc too):
/// `ptr` itself when it is a live block of a page that holds `size` and is at most twice
/// as big (free's tests 1-3, the sizes, then its key: a freed block is not live), else
/// null and the caller goes on. The sizes first: they need no line of the block, whose
/// first line is cold when a program grows a buffer at its tail (realloc_growth).
pub inline fn reallocInPlace(ptr: ?*anyopaque, size: usize) ?*anyopaque {
    const addr = @intFromPtr(ptr);
    const slice = fastSlice(addr) orelse return null;
    if (size > slice.block_size or size < slice.block_size / 2) return null; // (size 0 too)
    if (block_mod.isMarkedFree(@ptrFromInt(addr), slice.stack_offset)) return null;
    return ptr;
}

pub fn realloc(ptr: ?*anyopaque, size: usize) ReallocResult {
    const addr = @intFromPtr(ptr orelse return .{ .ok = malloc(size) });
    if (config.check_mode != .off) return check.realloc(addr, size);
    if (reallocInPlace(ptr, size)) |same| return .{ .ok = same };
    const kind = slow.classify(addr);
    const old_usable = slow.usableOf(addr, kind) orelse return switch (kind) {
        .not_owned => .not_owned,
        .freed => .freed,
        else => .invalid,
    };
    if (size <= old_usable and size >= old_usable / 2) return .{ .ok = ptr };
    std.debug.assert(size > old_usable or size < old_usable / 2); // (the block does not fit the size)

    std.debug.assert(kind != .freed); // (usableOf answered: a live block,
    std.debug.assert(kind != .not_owned); // hakmem's)
    if (kind == .page_block and kind.page_block.start == addr) {
        if (slow.resizeInPage(kind.page_block.page, size)) return .{ .ok = ptr };
    }
    if (kind == .large and routing.route(size) == .large and size <= size_max and
        (@as(*@import("../memory/large_header.zig").LargeHeader, kind.large).block_offset < segment_map.chunk_size))
    {
        if (@import("../memory/large_resize.zig").resize(kind.large, size)) |moved| return .{ .ok = moved };
    }
    // A page block that realloc grew before gets room to spare (growth.zig); so does a
    // guarded sample (guard.zig: a page block's stand-in, which a growing realloc may
    // have handed out as any other block).
    const grows = size > old_usable and (kind == .page_block or kind == .guarded);
    const heap = if (grows) thread.current() else null;
    const new_size = if (heap) |h| growth.sizeFor(&h.grown, addr, size, old_usable) else size;
    std.debug.assert(new_size >= size); // room to spare, never less than asked
    const fresh = malloc(new_size) orelse return .{ .ok = null };
    std.debug.assert(fresh != ptr.?); // a new block while the old one is still live
    @memcpy(@as([*]u8, @ptrCast(fresh))[0..@min(size, old_usable)], @as([*]const u8, @ptrCast(ptr.?))[0..@min(size, old_usable)]);
    if (!slow.freeMovedFrom(kind)) _ = free(ptr);
    if (heap) |h| h.grown.remember(@intFromPtr(fresh));
    std.debug.assert(@intFromPtr(fresh) % 16 == 0); // malloc's alignment
    return .{ .ok = fresh };
}

/// Memory aligned to `alignment` (a power of two). Null with ENOMEM when out of memory.
pub fn alignedAlloc(alignment: usize, size: usize) ?*anyopaque {
    std.debug.assert(std.math.isPowerOfTwo(alignment));
    if (alignment <= size_class.min_block_size) return malloc(size); // (16-aligned: enough)
    _ = slow.heap() orelse return outOfMemory();
    const ptr = if (config.check_mode != .off) check.alignedAlloc(alignment, size) else slow.aligned(alignment, size);
    std.debug.assert(ptr == null or @intFromPtr(ptr) % alignment == 0); // the alignment asked
    return ptr;
}

/// Purges empty memory now (hak_collect, malloc_trim): the calling thread's heap (its idle
/// caches, empty pages and dirty slices), the segment cache, the large cache; with `force`
/// all of it, else what the decay curve says is due. (Page.collect is another thing: it
/// takes a page's remote frees.)
pub fn purge(force: bool) void {
    const now = os.nowMs();
    std.debug.assert(now < std.math.maxInt(u64) / 2); // a clock in ms: deadlines after it never wrap
    if (thread.currentAny()) |heap| return heap.maintain(now, force);
    @import("../thread/purge.zig").shared(now, force);
}

// ------------------------------------------------------------------ tests

const testing = std.testing;

/// Every invariant of the calling thread's heap (heap.zig: validate), after a test's steps.
fn expectValidHeap() !void {
    if (thread.currentAny()) |heap| try heap.validate();
}

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
    try expectValidHeap();
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
    try expectValidHeap();
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
    q.key = block_mod.cacheKey(routing.stackOffset(bin));
    try testing.expectEqual(FreeResult.ok, free(q));
    const r = malloc(48).?;
    const s = malloc(48).?;
    try testing.expect(r != s);
    _ = free(r);
    _ = free(s);
    try expectValidHeap();
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
    try expectValidHeap();
}

test "realloc's fast path answers only for a live block that holds the size, at most twice over" {
    const p = malloc(100).?; // a 112-byte block
    try testing.expectEqual(@as(?*anyopaque, p), reallocInPlace(p, 112));
    try testing.expectEqual(@as(?*anyopaque, p), reallocInPlace(p, 56));
    try testing.expect(reallocInPlace(p, 113) == null); // grows out of it
    try testing.expect(reallocInPlace(p, 55) == null); // would waste more than half
    try testing.expect(reallocInPlace(p, 0) == null); // realloc(p, 0) frees
    var none: ?*anyopaque = null;
    std.mem.doNotOptimizeAway(&none); // (a runtime null, as the libc name gets it)
    try testing.expect(reallocInPlace(none, 16) == null);
    try testing.expectEqual(FreeResult.ok, free(p));
    try testing.expect(reallocInPlace(p, 100) == null); // freed: no live block
    try testing.expectEqual(ReallocResult.freed, realloc(p, 100)); // the slow path names it
    try expectValidHeap();
}

test "realloc grows a block of a page of its own in place while its span holds the new size" {
    const h = thread.current().?;
    const p = malloc(40_000).?; // a page of one 64 KiB slice
    @memset(@as([*]u8, @ptrCast(p))[0..40_000], 0x5A);
    const bin_before = size_class.midBin(40_000);
    const allocs_before = h.allocs(size_class.midBin(60_000));
    const q = realloc(p, 60_000).ok.?; // the same slice: in place
    try testing.expectEqual(p, q);
    try testing.expectEqual(size_class.binBlockSize(size_class.midBin(60_000)), usableSize(@intFromPtr(q)).?);
    for (@as([*]const u8, @ptrCast(q))[0..40_000]) |b| try testing.expectEqual(@as(u8, 0x5A), b);
    try testing.expectEqual(allocs_before + 1, h.allocs(size_class.midBin(60_000))); // counted as the new bin's
    try testing.expect(h.frees(bin_before) > 0);
    try expectValidHeap();
    // two slices: in place when the slice after it is free (segment.zig's test), else moved
    const r = realloc(q, 100_000).ok.?;
    for (@as([*]const u8, @ptrCast(r))[0..40_000]) |b| try testing.expectEqual(@as(u8, 0x5A), b);
    try testing.expectEqual(size_class.binBlockSize(size_class.midBin(100_000)), usableSize(@intFromPtr(r)).?);
    try expectValidHeap();
    const t = realloc(r, 40_000).ok.?; // back to one slice: in place, the tail given back
    try testing.expectEqual(r, t);
    for (@as([*]const u8, @ptrCast(t))[0..40_000]) |b| try testing.expectEqual(@as(u8, 0x5A), b);
    try testing.expectEqual(FreeResult.ok, free(t));
    try expectValidHeap();
}

test "a block with a page of its own that realloc moves away from goes back to its page, not to the thread's cache" {
    const h = thread.current().?;
    const old_bin = size_class.midBin(40_000);
    for (0..4) |_| { // (a bin only freed into would grow its cache from the first overflow)
        const p = malloc(40_000).?;
        @memset(@as([*]u8, @ptrCast(p))[0..40_000], 0x77);
        const q = realloc(p, 10_000).ok.?; // below half: moved to a 10 KiB block
        try testing.expect(q != p);
        for (@as([*]const u8, @ptrCast(q))[0..10_000]) |b| try testing.expectEqual(@as(u8, 0x77), b);
        try testing.expectEqual(@as(u32, 0), h.cache.count(old_bin));
        try testing.expectEqual(FreeResult.ok, free(q));
    }
    try expectValidHeap();
}

test "a guarded sample a growing realloc handed out grows with room to spare, as a page block does" {
    const guard = @import("../memory/guard.zig");
    const saved = config.guard_sample_mb;
    defer config.guard_sample_mb = saved;
    config.guard_sample_mb = 1;
    const h = thread.current().?;
    const sample = guard.take(2000, size_class.midBin(2000)) orelse return error.SkipZigTest;
    @memset(@as([*]u8, @ptrCast(sample))[0..2000], 0x33);
    h.grown.remember(@intFromPtr(sample)); // as realloc does with the block it moved to
    const grown = realloc(sample, 2100).ok.?;
    try testing.expect(usableSize(@intFromPtr(grown)).? >= 3000); // 1.5x, not the 2304-byte class of 2100
    for (@as([*]const u8, @ptrCast(grown))[0..2000]) |b| try testing.expectEqual(@as(u8, 0x33), b);
    try testing.expectEqual(FreeResult.ok, free(grown));
    try expectValidHeap();
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
    try expectValidHeap();
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
    try expectValidHeap();
}

test "thresholds change while blocks are live" {
    const old_tiny = routing.tiny_max;
    const old_mid = routing.mid_max;
    defer _ = routing.setThresholds(old_tiny, old_mid);
    const a = malloc(900).?; // tiny under the defaults
    try testing.expect(routing.setThresholds(256, routing.mid_max_min));
    const b = malloc(900).?; // mid now
    const c = malloc(routing.mid_max_min + 1).?; // large now
    try testing.expect(Segment.of(@intFromPtr(a)).pageOf(@intFromPtr(a)).isTiny());
    try testing.expect(!Segment.of(@intFromPtr(b)).pageOf(@intFromPtr(b)).isTiny());
    try testing.expectEqual(segment_map.Tag.large_region, segment_map.lookup(@intFromPtr(c))); // the large tier
    try testing.expectEqual(FreeResult.ok, free(a));
    try testing.expectEqual(FreeResult.ok, free(b));
    try testing.expectEqual(FreeResult.ok, free(c));
    try expectValidHeap();
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
    purge(true);
    try expectValidHeap();
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
    try expectValidHeap();
}

test "a thread that only frees gets a heap: its frees go to its cache, not one by one to the pages" {
    const Consumer = struct {
        fn run(blocks: []*anyopaque, had_heap: *bool, got_heap: *bool, cached: *u32) void {
            had_heap.* = thread.currentAny() != null;
            for (blocks) |b| _ = free(b);
            const heap = thread.currentAny() orelse return;
            got_heap.* = true;
            const bin = size_class.tinyBin(64);
            cached.* = heap.cache.count(bin);
        }
    };
    var blocks: [8]*anyopaque = undefined;
    for (&blocks) |*b| b.* = malloc(64) orelse return error.OutOfMemory;
    var had_heap = true;
    var got_heap = false;
    var cached: u32 = 0;
    const t = try std.Thread.spawn(.{}, Consumer.run, .{ &blocks, &had_heap, &got_heap, &cached });
    t.join();
    try testing.expect(!had_heap);
    try testing.expect(got_heap);
    try testing.expectEqual(@as(u32, blocks.len), cached); // all in its cache until its exit flushed them
    try expectValidHeap();
}
