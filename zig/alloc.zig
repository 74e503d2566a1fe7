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
const Page = page_mod.Page;
const Block = page_mod.Block;
const Segment = segment_mod.Segment;
const Heap = @import("heap.zig").Heap;

/// Requests above this fail at once with ENOMEM (beyond any real address space).
pub const size_max: usize = 1 << 46;

// ------------------------------------------------------------------ malloc

pub inline fn malloc(size: usize) ?*anyopaque {
    if (thread.current()) |heap| {
        if (size <= config.tiny_max) return heap.allocBin(size_class.tinyBin(size));
        if (size <= config.mid_max) return heap.allocBin(size_class.midBin(size));
    }
    return mallocSlow(size);
}

noinline fn mallocSlow(size: usize) ?*anyopaque {
    const heap = thread.currentOrCreate() orelse return outOfMemory();
    const block = switch (config.route(size)) {
        .tiny => heap.allocBin(size_class.tinyBin(size)),
        .mid => heap.allocBin(size_class.midBin(size)),
        .large => allocLarge(heap, size, 16),
    };
    return block orelse outOfMemory();
}

fn allocLarge(heap: *Heap, size: usize, alignment: usize) ?*anyopaque {
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

pub inline fn free(ptr: ?*anyopaque) FreeResult {
    const addr = @intFromPtr(ptr orelse return .ok);
    const tag = segment_map.lookup(addr);
    if (tag != .segment) return freeNotSmall(addr, tag);
    const seg = Segment.of(addr);
    const page = seg.pageOf(addr);
    const block: *Block = @ptrFromInt(addr);
    if (page.flags != 0 or !page.isBlockStart(addr) or page.free == block) return freeSpecial(seg, page, addr);
    if (thread.current()) |heap| {
        if (seg.owner.load(.monotonic) == @as(*anyopaque, heap)) {
            heap.freeLocal(page, block);
            return .ok;
        }
    }
    freeRemote(page, block);
    return .ok;
}

/// Pages with flags (full, aligned blocks, unused) and anything that failed the block check.
noinline fn freeSpecial(seg: *Segment, page: *Page, addr: usize) FreeResult {
    if (page.flags & page_mod.flag_unused != 0) return .invalid;
    const start = if (page.flags & page_mod.flag_aligned != 0)
        page.blockContaining(addr) orelse return .invalid
    else if (page.isBlockStart(addr)) addr else return .invalid;
    const block: *Block = @ptrFromInt(start);
    if (page.free == block) return .invalid; // the block just freed: a double free
    if (thread.current()) |heap| {
        if (seg.owner.load(.monotonic) == @as(*anyopaque, heap)) {
            heap.freeLocalFlagged(page, block);
            return .ok;
        }
    }
    freeRemote(page, block);
    return .ok;
}

noinline fn freeRemote(page: *Page, block: *Block) void {
    const bin = page.bin;
    page.pushRemote(block);
    if (thread.current()) |heap| {
        heap.counters.frees[bin] += 1;
        heap.counters.remote_frees[bin] += 1;
    } else {
        stats.incr(&stats.heapless_frees[bin]);
    }
}

noinline fn freeNotSmall(addr: usize, tag: segment_map.Tag) FreeResult {
    if (tag == .none) return .not_owned;
    switch (large.lookup(addr, tag)) {
        .foreign => return .not_owned,
        .invalid => return .invalid,
        .live => |header| {
            const now = os.nowMs();
            large.free(header, now);
            if (thread.current()) |heap| heap.maintain(now, false);
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
    return .{ .small = .{ .page = page, .start = start } };
}

/// Usable bytes from `addr` to the end of its block; null when addr is not a live block.
pub fn usableSize(addr: usize) ?usize {
    return switch (classify(addr)) {
        .small => |s| s.page.block_size - (addr - s.start),
        .large => |h| h.usable_size,
        .not_owned, .invalid => null,
    };
}

// ------------------------------------------------------------------ calloc, realloc, aligned

pub fn calloc(count: usize, size: usize) ?*anyopaque {
    const total = std.math.mul(usize, count, size) catch return outOfMemory();
    if (total > config.mid_max) {
        // large: a fresh mapping is already zero; large.alloc clears a reused one
        const heap = thread.currentOrCreate() orelse return outOfMemory();
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
    const fresh = malloc(size) orelse return .{ .ok = null };
    @memcpy(@as([*]u8, @ptrCast(fresh))[0..@min(size, old_usable)], @as([*]const u8, @ptrCast(ptr.?))[0..@min(size, old_usable)]);
    _ = free(ptr);
    return .{ .ok = fresh };
}

/// Memory aligned to `alignment` (a power of two). Null with ENOMEM when out of memory.
pub fn alignedAlloc(alignment: usize, size: usize) ?*anyopaque {
    std.debug.assert(std.math.isPowerOfTwo(alignment));
    if (alignment <= size_class.min_block_size) return malloc(size);
    if (size > size_max) return outOfMemory();
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
    if (thread.current()) |heap| return heap.maintain(now, force);
    @import("arena.zig").decay(now, force);
    large.decay(now, force);
}
