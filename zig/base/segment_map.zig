//! segment_map.zig — which 4 MiB chunks of the address space hakmem mapped.
//!
//! One byte per 4 MiB chunk of the 47-bit user address space (2^25 bytes, a zeroed .bss
//! array: only the pages that describe chunks we use ever become resident). free() reads
//! one byte to learn whether a pointer is ours and what kind of memory it is in: no hash,
//! no lock, no search. A pointer whose chunk is not marked was not mapped by hakmem.
const std = @import("std");

pub const chunk_shift = 22;
pub const chunk_size: usize = 1 << chunk_shift; // 4 MiB: the segment size and alignment
pub const address_bits = 47;
const chunk_count: usize = 1 << (address_bits - chunk_shift);

pub const Tag = enum(u8) {
    none = 0,
    /// A segment (tiny and mid pages); its header is at the chunk start.
    segment = 1,
    /// The first chunk of a large mapping; its header is at the chunk start.
    large_head = 2,
    /// A later chunk of a large mapping; walk back to the large_head chunk.
    large_tail = 3,
    /// A chunk of a region of large blocks (large_region.zig knows which block is where).
    large_region = 4,
};

/// One byte more than the chunks, never marked: `lookup`'s bound is then not a power of two,
/// which the compiler would test as `addr >> 47 != 0` and then shift `addr` again (one
/// instruction more on free's fast path) instead of comparing the index it computed.
var tags: [chunk_count + 1]u8 = [_]u8{0} ** (chunk_count + 1);

pub inline fn lookup(addr: usize) Tag {
    const index = addr >> chunk_shift;
    if (index > chunk_count) return .none; // (tags[chunk_count] is always none)
    return @enumFromInt(@atomicLoad(u8, &tags[index], .monotonic));
}

pub fn mark(start: usize, len: usize, first: Tag, rest: Tag) void {
    std.debug.assert(start % chunk_size == 0);
    // a large mapping is one head, then tails; every other kind is the same tag throughout
    std.debug.assert(rest == if (first == .large_head) Tag.large_tail else first);
    const first_index = start >> chunk_shift;
    const end_index = (start + len + chunk_size - 1) >> chunk_shift;
    std.debug.assert(end_index <= chunk_count);
    for (first_index..end_index) |i| {
        @atomicStore(u8, &tags[i], @intFromEnum(if (i == first_index) first else rest), .release);
    }
    std.debug.assert(len == 0 or lookup(start) == first);
    // and the last chunk: the head's tag when it is the only one, else the rest's
    std.debug.assert(len == 0 or lookup(start + len - 1) == if (end_index - first_index == 1) first else rest);
}

pub fn clear(start: usize, len: usize) void {
    mark(start, len, .none, .none);
}

/// For a chunk tagged large_tail, the start of the large mapping it belongs to.
/// Bounded by the mapping's length in chunks.
pub fn largeHeadOf(addr: usize) ?usize {
    var index = addr >> chunk_shift;
    std.debug.assert(index < chunk_count); // callers found addr's chunk tagged
    while (index > 0) {
        index -= 1;
        switch (@as(Tag, @enumFromInt(@atomicLoad(u8, &tags[index], .monotonic)))) {
            .large_head => {
                const head = index << chunk_shift;
                std.debug.assert(head < addr); // a tail's head is before it
                return head;
            },
            .large_tail => continue,
            else => return null,
        }
    }
    return null;
}

/// Calls `visit(context, chunk_start, tag)` for every chunk tagged other than none (the
/// memory report). Only the map's pages that hold a tag are read (mincore first: the
/// untouched parts of the 32 MiB array stay untouched). Bounded by the map's size.
pub fn forEachTagged(context: anytype, comptime visit: fn (@TypeOf(context), usize, Tag) void) void {
    var it: UsedPages = .{};
    while (it.next()) |range| {
        std.debug.assert(range[0] < range[1]);
        std.debug.assert(range[1] <= chunk_count);
        for (range[0]..range[1]) |i| {
            const tag: Tag = @enumFromInt(@atomicLoad(u8, &tags[i], .monotonic));
            if (tag != .none) visit(context, i << chunk_shift, tag);
        }
    }
}

/// Resident bytes of the map itself (metadata): its pages that hold a tag. (mincore also
/// reports pages only ever read, which map the kernel's shared zero page: no RSS.)
pub fn residentBytes() usize {
    var it: UsedPages = .{};
    var resident: usize = 0;
    while (it.next()) |range| {
        std.debug.assert(range[1] - range[0] <= page_bytes); // one page of tags at a time
        resident += page_bytes;
    }
    std.debug.assert(resident <= @sizeOf(@TypeOf(tags)) + page_bytes); // (one page more: tags may not start a page)
    return resident;
}

const page_bytes = 4096;

/// The map's pages that are resident and hold a tag: one
/// mincore over the whole map, then only resident pages are read.
const UsedPages = struct {
    at: usize = 0,
    vec: [chunk_count / page_bytes + 1]u8 = undefined,
    measured: bool = false,

    /// The next such page, as the range of tag indices it holds.
    fn next(self: *UsedPages) ?[2]usize {
        const os = @import("os.zig");
        const base = std.mem.alignBackward(usize, @intFromPtr(&tags), page_bytes);
        const skew = @intFromPtr(&tags) - base;
        const pages = (skew + chunk_count + page_bytes - 1) / page_bytes;
        std.debug.assert(skew < page_bytes);
        std.debug.assert(pages <= self.vec.len); // vec has a byte for every page the map touches
        if (!self.measured) {
            self.measured = true;
            if (!os.residentPages(base, pages * page_bytes, self.vec[0..pages])) @memset(self.vec[0..pages], 1);
        }
        while (self.at < pages) {
            const k = self.at;
            self.at += 1;
            if (self.vec[k] & 1 == 0) continue;
            const first = (k * page_bytes) -| skew;
            const end = @min((k + 1) * page_bytes - skew, chunk_count);
            if (first < end and std.mem.indexOfNone(u8, tags[first..end], &.{0}) != null) return .{ first, end };
        }
        return null;
    }
};

test "mark, lookup, walk back, clear" {
    const base: usize = 0x5000_0000_0000 & ~(chunk_size - 1);
    try std.testing.expectEqual(Tag.none, lookup(base));
    mark(base, 3 * chunk_size - 100, .large_head, .large_tail);
    try std.testing.expectEqual(Tag.large_head, lookup(base + 5));
    try std.testing.expectEqual(Tag.large_tail, lookup(base + 2 * chunk_size + 7));
    try std.testing.expectEqual(Tag.none, lookup(base + 3 * chunk_size));
    try std.testing.expectEqual(@as(?usize, base), largeHeadOf(base + 2 * chunk_size + 7));
    clear(base, 3 * chunk_size);
    try std.testing.expectEqual(Tag.none, lookup(base + chunk_size));
    try std.testing.expectEqual(Tag.none, lookup(1 << 50));
}

test "addresses past the 47-bit user space are never ours (the extra byte included)" {
    const top = chunk_count * chunk_size; // the end of the 47-bit user address space
    mark(top - chunk_size, chunk_size, .segment, .segment); // the last chunk there is
    defer clear(top - chunk_size, chunk_size);
    try std.testing.expectEqual(Tag.segment, lookup(top - 1));
    for ([_]usize{ top, top + chunk_size - 1, top + chunk_size, std.math.maxInt(usize) }) |addr| {
        try std.testing.expectEqual(Tag.none, lookup(addr));
    }
}
