//! thread_cache.zig — the per-thread cache of freed blocks, one LIFO list per bin.
//!
//!   heap.cache[bin]: head ─> block ─> block ─> … (count <= capacity)
//!
//! free() pushes any block of the bin here — whichever thread's page it came from — and
//! malloc() pops from here first, so a block freed by one thread and reused by the same
//! thread never touches its page or an atomic (tcmalloc's insight; it is what makes
//! Larson-style traffic cheap). When a list grows past its capacity, the older half goes
//! back to its pages (heap.flushCache): to the page's free list when this heap owns it,
//! else to its thread_free with one CAS per run of blocks of the same page.
//!
//! Capacity adapts per bin, within bounds (policy below, unit-tested): it doubles when a
//! bin overflows while being allocated from (a refill would follow), and halves — with the
//! list returned to its pages — when a maintenance tick finds the bin idle. HAKMEM_ADAPT=0
//! freezes every capacity at its initial value for reproducible runs.
const std = @import("std");
const size_class = @import("size_class.zig");
const Block = @import("page.zig").Block;

/// Bytes a bin may hold at most, and the block-count bounds. Bins of blocks larger than
/// max_cached_block have no cache (capacity 0): a cached 512 KiB block would hold more
/// memory than it saves time, so their frees go straight back to the page.
pub const max_bytes_per_bin: usize = 256 * 1024;
pub const max_cached_block: usize = 64 * 1024;
pub const max_blocks: u32 = 256;
pub const min_blocks: u32 = 1;
pub const initial_blocks: u32 = 16;

pub const Bin = struct {
    head: ?*Block = null,
    count: u32 = 0,
    capacity: u32 = 0,
};

/// Largest capacity of a bin: max_bytes_per_bin worth of blocks, at most max_blocks (0 above
/// max_cached_block).
pub fn maxCapacity(bin: usize) u32 {
    if (size_class.binBlockSize(bin) > max_cached_block) return 0;
    const by_bytes = max_bytes_per_bin / size_class.binBlockSize(bin);
    return @intCast(@min(by_bytes, max_blocks));
}

/// Smallest capacity an idle bin shrinks to (0 for bins without a cache).
pub fn minCapacity(bin: usize) u32 {
    return @min(min_blocks, maxCapacity(bin));
}

pub fn initialCapacity(bin: usize) u32 {
    return @min(initial_blocks, maxCapacity(bin));
}

/// After an overflow: grow when the bin was allocated from at least `capacity` times since
/// the previous overflow (the cache cycles: more room saves refills and flushes).
pub fn capacityAfterOverflow(bin: usize, capacity: u32, allocs_since_last: u64) u32 {
    if (allocs_since_last < capacity) return capacity;
    return @min(capacity * 2, maxCapacity(bin));
}

/// At a maintenance tick: an idle bin halves its capacity (its blocks go back to pages).
pub fn capacityWhenIdle(bin: usize, capacity: u32) u32 {
    return @max(minCapacity(bin), capacity / 2);
}

test "capacity stays within bounds and reverses" {
    for (0..size_class.bin_count) |bin| {
        var cap = initialCapacity(bin);
        try std.testing.expect(cap >= minCapacity(bin) and cap <= maxCapacity(bin));
        try std.testing.expect(@as(usize, maxCapacity(bin)) * size_class.binBlockSize(bin) <= max_bytes_per_bin);
        if (size_class.binBlockSize(bin) > max_cached_block) try std.testing.expectEqual(@as(u32, 0), maxCapacity(bin));
        for (0..20) |_| cap = capacityAfterOverflow(bin, cap, 1 << 30);
        try std.testing.expectEqual(maxCapacity(bin), cap);
        try std.testing.expectEqual(cap, capacityAfterOverflow(bin, cap, 0)); // no activity: no growth
        for (0..20) |_| cap = capacityWhenIdle(bin, cap);
        try std.testing.expectEqual(minCapacity(bin), cap);
        cap = capacityAfterOverflow(bin, cap, 1 << 30);
        try std.testing.expect(cap == @min(2 * minCapacity(bin), maxCapacity(bin)));
    }
}
