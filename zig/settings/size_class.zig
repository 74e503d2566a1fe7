//! size_class.zig — sizes to classes, classes to bins, bins to page geometry.
//!
//! Classes: 16..128 in steps of 16 (classes 0..7), then 8 classes per power of two
//! (144, 160, …, 256, 288, …), so a block wastes at most 1/8 of its size above 128 B.
//! Every size 0..mid_size_limit maps to one class with a table load (<= 1 KiB) or a
//! few bit operations. A bin is (tier, class): tiny bins are classes 0..tiny_classes-1,
//! mid bins follow. Tiny pages are one 64 KiB slice; mid pages span 2..16 slices.
const std = @import("std");

pub const min_block_size: usize = 16;
pub const slice_shift = 16;
pub const slice_size: usize = 1 << slice_shift; // 64 KiB
pub const max_page_slices = 16; // a mid page is at most 1 MiB

// The largest tiny and mid classes: the limits of tiny_max and mid_max (zig/abi.zig).
pub const tiny_size_limit: usize = @import("../abi.zig").tiny_max_limit;
pub const mid_size_limit: usize = @import("../abi.zig").mid_max_limit;

pub const class_count: usize = classOfComptime(mid_size_limit) + 1; // 112
pub const tiny_classes: usize = classOfComptime(tiny_size_limit) + 1; // 56
pub const bin_count: usize = tiny_classes + class_count; // 168
/// The bin index malloc's routing tables (routing.zig) give a size its slow path must route
/// (large, or split by a threshold): one past the last bin, whose thread-cache entry is
/// always empty (thread_cache.Cache.entries).
pub const no_bin: u8 = bin_count;

/// A bin's index (bins are indices, not structures: a thread cache's stack, a heap's page
/// queues and the routing tables are arrays indexed by bin).
pub const Bin = u8;

comptime {
    // Every bin, and no_bin past them, fits a Bin (the routing tables are bytes).
    std.debug.assert(no_bin <= std.math.maxInt(Bin));
    // The tiers' limits are class sizes: the last class of each holds its largest request.
    std.debug.assert(classSize(tiny_classes - 1) == tiny_size_limit);
    std.debug.assert(classSize(class_count - 1) == mid_size_limit);
    std.debug.assert(tiny_classes <= class_count); // tiny bins are a prefix of the classes
    // The magic division (divMagic) is exact over a whole page of every bin: with
    // m = floor(2^40 / bs) + 1, offset * m >> 40 = offset / bs while offset < 2^40 / bs
    // (page.zig: blockStartIndex); a page is at most max_page_slices slices.
    @setEvalBranchQuota(10_000);
    for (0..bin_count) |bin| {
        const bs = classSize(binClass(bin));
        std.debug.assert(page_slices_table[bin] * slice_size * bs <= 1 << 40);
        const last = page_slices_table[bin] * slice_size - 1;
        std.debug.assert((last * divMagic(bs)) >> 40 == last / bs);
    }
}

fn classOfComptime(size: usize) usize {
    if (size <= 128) return if (size == 0) 0 else (size - 1) >> 4;
    const s = size - 1;
    const b: usize = std.math.log2_int(usize, s);
    const sub = (s >> @intCast(b - 3)) & 7;
    return 8 + (b - 7) * 8 + sub;
}

/// Block size of a class.
pub fn classSize(cls: usize) usize {
    std.debug.assert(cls < class_count);
    if (cls < 8) return (cls + 1) * 16;
    const b: u6 = @intCast(7 + (cls - 8) / 8);
    const sub = (cls - 8) % 8;
    const size = (@as(usize, 1) << b) + (sub + 1) * (@as(usize, 1) << (b - 3));
    std.debug.assert(size % min_block_size == 0); // every block keeps malloc's alignment
    std.debug.assert(size <= mid_size_limit);
    std.debug.assert(size > 128); // (classes 0..7 are the steps of 16 up to 128)
    return size;
}

const small_table: [65]u8 = blk: {
    var t: [65]u8 = undefined;
    for (&t, 0..) |*e, i| e.* = @intCast(classOfComptime(i * 16));
    break :blk t;
};

/// Class of a size <= mid_size_limit.
pub fn classOf(size: usize) usize {
    std.debug.assert(size <= mid_size_limit); // larger sizes have no class (large tier)
    const cls = if (size <= 1024) small_table[(size + 15) >> 4] else blk: {
        const s = size - 1;
        const b: usize = 63 - @clz(s);
        const sub = (s >> @intCast(b - 3)) & 7;
        break :blk 8 + (b - 7) * 8 + sub;
    };
    std.debug.assert(cls < class_count);
    std.debug.assert(classSize(cls) >= size); // the class holds the size,
    std.debug.assert(cls == 0 or classSize(cls - 1) < size); // and is the smallest that does
    return cls;
}

pub fn tinyBin(size: usize) Bin {
    std.debug.assert(size <= tiny_size_limit); // routing sends no larger size to tiny
    const bin = classOf(size);
    std.debug.assert(bin < tiny_classes);
    return @intCast(bin);
}

pub fn midBin(size: usize) Bin {
    std.debug.assert(size <= mid_size_limit);
    const bin = tiny_classes + classOf(size);
    std.debug.assert(bin >= tiny_classes); // a mid bin, after the tiny ones
    std.debug.assert(bin < bin_count);
    return @intCast(bin);
}

pub fn binClass(bin: usize) usize {
    std.debug.assert(bin < bin_count);
    const cls = if (bin < tiny_classes) bin else bin - tiny_classes;
    std.debug.assert(cls < class_count); // (mid bins span every class)
    return cls;
}

pub fn binIsTiny(bin: usize) bool {
    return bin < tiny_classes;
}

pub fn binBlockSize(bin: usize) usize {
    const size = classSize(binClass(bin));
    std.debug.assert(size >= min_block_size); // a free block's two words fit (block.zig)
    std.debug.assert(!binIsTiny(bin) or size <= tiny_size_limit); // a tiny bin's blocks are tiny
    return size;
}

/// Mid blocks larger than this get a page of their own (as mimalloc's large pages): a
/// page of 8 such blocks would stay resident, whole, while any one of them lives.
/// (Measured on bench mt_churn, 1 B..128 KiB over 2 threads, one round: peak RSS 55 MiB
/// with 128 KiB here, 38 MiB with 32 KiB; 16 and 8 KiB gave no more: a span of one 64 KiB
/// slice reused by a smaller block keeps the bigger block's pages resident.)
pub const single_block_min: usize = @import("../abi.zig").single_block_min;

/// Does `bin` have pages of one block each (blocks above single_block_min)?
pub fn isSingleBlockBin(bin: usize) bool {
    std.debug.assert(bin < bin_count);
    const single = binBlockSize(bin) > single_block_min;
    std.debug.assert(!single or !binIsTiny(bin)); // a tiny page holds many blocks
    return single;
}

/// Slices of a page for a bin: 1 for tiny; for mid up to single_block_min enough for about
/// 8 blocks, at least 2 and at most 16, choosing the count that leaves the smallest unused
/// tail; above it, one block's worth.
pub fn binPageSlices(bin: usize) usize {
    std.debug.assert(bin < bin_count);
    const slices = page_slices_table[bin];
    std.debug.assert(slices >= 1);
    std.debug.assert(slices <= max_page_slices);
    std.debug.assert(slices * slice_size >= binBlockSize(bin)); // a page holds a block
    return slices;
}

const page_slices_table: [bin_count]u8 = blk: {
    @setEvalBranchQuota(100000);
    var t: [bin_count]u8 = undefined;
    for (&t, 0..) |*e, bin| {
        if (bin < tiny_classes) {
            e.* = 1;
            continue;
        }
        const bs = classSize(bin - tiny_classes);
        if (bs > single_block_min) {
            // One block per page, in as few slices as hold it: freeing the block frees its
            // span at once, for any bin to reuse (the untouched tail costs no RSS).
            e.* = (bs + slice_size - 1) / slice_size;
            continue;
        }
        const want: usize = @min(max_page_slices, @max(2, (8 * bs + slice_size - 1) / slice_size));
        var best: usize = want;
        var best_waste: usize = (want * slice_size) % bs;
        var n: usize = want + 1;
        while (n <= @min(max_page_slices, want + 4)) : (n += 1) {
            const waste = (n * slice_size) % bs;
            if (waste * best * slice_size < best_waste * n * slice_size) {
                best = n;
                best_waste = waste;
            }
        }
        e.* = best;
    }
    break :blk t;
};

/// Multiplier such that (offset * m) >> 40 == offset / block_size for any offset in a page.
pub fn divMagic(block_size: usize) u64 {
    std.debug.assert(block_size > 0);
    std.debug.assert(block_size <= 1 << 40);
    const m = (@as(u64, 1) << 40) / block_size + 1;
    std.debug.assert(m > 1); // (a block of 2^40 bytes would need no magic)
    // exact at the first block boundary: block_size * m >> 40 is block 1, not 0
    std.debug.assert(block_size > mid_size_limit or (block_size * m) >> 40 == 1);
    return m;
}

test "every size maps to a class that fits it with bounded waste" {
    var size: usize = 0;
    while (size <= mid_size_limit) : (size += if (size < 70000) 1 else 97) {
        const cls = classOf(size);
        try std.testing.expectEqual(classOfComptime(size), cls);
        const bs = classSize(cls);
        try std.testing.expect(bs >= size);
        try std.testing.expect(bs % 16 == 0);
        if (cls > 0) try std.testing.expect(classSize(cls - 1) < size or size == 0);
        if (size > 128) try std.testing.expect((bs - size) * 8 <= bs);
    }
    try std.testing.expectEqual(@as(usize, 112), class_count);
    try std.testing.expectEqual(@as(usize, 56), tiny_classes);
    try std.testing.expectEqual(mid_size_limit, classSize(class_count - 1));
    try std.testing.expectEqual(tiny_size_limit, classSize(tiny_classes - 1));
}

test "class boundaries" {
    for (0..class_count) |cls| {
        const bs = classSize(cls);
        try std.testing.expectEqual(cls, classOf(bs));
        if (cls + 1 < class_count) try std.testing.expectEqual(cls + 1, classOf(bs + 1));
    }
}

test "page geometry holds at least one block and magic division is exact" {
    for (0..bin_count) |bin| {
        const slices = binPageSlices(bin);
        const bs = binBlockSize(bin);
        try std.testing.expect(slices >= 1 and slices <= max_page_slices);
        try std.testing.expect(slices * slice_size >= bs);
        const m = divMagic(bs);
        var off: usize = 0;
        while (off < slices * slice_size) : (off += 4099) {
            try std.testing.expectEqual(off / bs, @as(usize, @intCast((off * m) >> 40)));
        }
        const last = slices * slice_size - 1;
        try std.testing.expectEqual(last / bs, @as(usize, @intCast((last * m) >> 40)));
    }
}
