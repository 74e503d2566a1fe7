//! check_reuse.zig — check mode's per-thread stacks of freed page blocks that left the
//! quarantine. The thread that lets a block go (the one whose frees pushed it out of the
//! ring) keeps it here, still poisoned whole, and hands it out again at its next malloc of
//! the block's bin: no free to its page and no refill from the page per block (those two
//! were a quarter of check mode's instructions), and its poison is verified whole then
//! (the sites of its allocation and free are in its record, check_side.zig).
//!
//!   Stacks (one per heap, mapped at its first use, kept with the heap)
//!     counts[bin]   starts[bin][0 .. counts[bin]]   LIFO; bytes: all the blocks held
//!   (a start's top bits may carry a word of check.zig's: where the block's freed pattern
//!   has its window, for the prefetch; its low 4 bits are a block start's, clear)
//!
//! Bounded: a bin holds at most `depth` blocks and `bin_bytes_max` bytes of them (one block
//! at least), a thread `thread_bytes_max`; a block that does not fit goes back to its page.
const std = @import("std");
const os = @import("../base/os.zig");
const size_class = @import("../settings/size_class.zig");

pub const depth = 64;
pub const bin_bytes_max: usize = 256 << 10;
pub const thread_bytes_max: usize = 8 << 20;

/// A bin's block size, from a table (push and pop ask at every block).
pub fn blockBytes(bin: usize) usize {
    std.debug.assert(bin < size_class.bin_count); // a bin's, never no_bin
    return block_bytes[bin];
}

/// How many blocks of `bin` a stack holds at most.
pub fn capacityOf(bin: usize) usize {
    std.debug.assert(bin < size_class.bin_count);
    return capacities[bin];
}

const block_bytes: [size_class.bin_count]u32 = blk: {
    @setEvalBranchQuota(100_000);
    var table: [size_class.bin_count]u32 = undefined;
    for (&table, 0..) |*b, bin| b.* = size_class.binBlockSize(bin);
    break :blk table;
};

const capacities: [size_class.bin_count]u8 = blk: {
    @setEvalBranchQuota(100_000);
    var table: [size_class.bin_count]u8 = undefined;
    for (&table, 0..) |*c, bin| c.* = std.math.clamp(bin_bytes_max / size_class.binBlockSize(bin), 1, depth);
    break :blk table;
};

comptime {
    @setEvalBranchQuota(100_000);
    std.debug.assert(depth <= std.math.maxInt(u8)); // a count is a byte
    // the largest block fits a thread's bound alone: an empty thread's push never fails
    std.debug.assert(size_class.binBlockSize(size_class.bin_count - 1) <= thread_bytes_max);
    for (capacities, 0..) |c, bin| {
        std.debug.assert(c >= 1); // one block at least,
        std.debug.assert(c <= depth); // within a stack,
        std.debug.assert(c == 1 or c * size_class.binBlockSize(bin) <= bin_bytes_max); // and the bin's bytes
    }
}

pub const Stacks = struct {
    counts: [size_class.bin_count]u8,
    bytes: usize,
    starts: [size_class.bin_count][depth]usize,

    /// A zeroed mapping (empty stacks); null when out of memory.
    pub fn make() ?*Stacks {
        comptime std.debug.assert(@alignOf(Stacks) <= os.page_size); // a mapping's start
        const s: *Stacks = @ptrCast(@alignCast(os.map(@sizeOf(Stacks)) orelse return null));
        std.debug.assert(s.bytes == 0); // zeroed: every stack empty
        if (std.debug.runtime_safety) for (s.counts) |n| std.debug.assert(n == 0); // (a loop: not in ReleaseFast)
        return s;
    }

    /// Holds the block at `start`, of `bin`; false when the bin or the thread is full.
    pub inline fn push(self: *Stacks, bin: usize, start: usize) bool {
        std.debug.assert(start != 0);
        std.debug.assert(start % size_class.min_block_size == 0); // a block start
        const n = self.counts[bin];
        const bytes = blockBytes(bin);
        std.debug.assert(n <= capacityOf(bin)); // never filled past its capacity
        std.debug.assert(self.bytes <= thread_bytes_max);
        if (n >= capacityOf(bin) or self.bytes + bytes > thread_bytes_max) return false;
        self.starts[bin][n] = start;
        self.counts[bin] = n + 1;
        self.bytes += bytes;
        std.debug.assert(self.bytes >= bytes * self.counts[bin]); // (the bin's blocks are among them)
        return true;
    }

    /// The block of `bin` held last, taken; null when none.
    pub inline fn pop(self: *Stacks, bin: usize) ?usize {
        const n = self.counts[bin];
        std.debug.assert(n <= capacityOf(bin));
        if (n == 0) return null;
        std.debug.assert(self.bytes >= n * blockBytes(bin)); // the count of bytes never drops below zero
        self.counts[bin] = n - 1;
        self.bytes -= blockBytes(bin);
        const start = self.starts[bin][n - 1];
        std.debug.assert(start % size_class.min_block_size == 0); // what push kept
        return start;
    }

    /// The block `pop` would take next, left in place; null when none.
    pub inline fn peek(self: *const Stacks, bin: usize) ?usize {
        const n = self.counts[bin];
        std.debug.assert(n <= capacityOf(bin));
        return if (n == 0) null else self.starts[bin][n - 1];
    }

    /// Calls `visit(context, start)` for every block held (the sweep; bounded by the
    /// stacks' sizes).
    pub fn forEach(self: *const Stacks, context: anytype, comptime visit: fn (@TypeOf(context), usize) void) void {
        var bytes: usize = 0;
        for (self.counts, 0..) |n, bin| {
            std.debug.assert(n <= capacityOf(bin)); // (bounds the walk)
            for (self.starts[bin][0..n]) |start| visit(context, start);
            bytes += n * blockBytes(bin);
        }
        std.debug.assert(bytes == self.bytes); // the count of bytes is the blocks' held
    }
};

test "stacks are LIFO per bin and bounded per bin and per thread" {
    const s = Stacks.make().?;
    defer os.unmap(@ptrCast(s), @sizeOf(Stacks));
    const small = size_class.tinyBin(48);
    try std.testing.expectEqual(@as(?usize, null), s.pop(small));
    for (1..depth + 1) |k| try std.testing.expect(s.push(small, k * 64)); // (block starts: 16-aligned, not 0)
    try std.testing.expect(!s.push(small, 1 << 16)); // full at depth
    try std.testing.expectEqual(@as(?usize, depth * 64), s.peek(small));
    try std.testing.expectEqual(@as(?usize, depth * 64), s.pop(small));
    try std.testing.expectEqual(@as(usize, (depth - 1) * 48), s.bytes);
    var seen: usize = 0;
    s.forEach(&seen, struct {
        fn count(n: *usize, _: usize) void {
            n.* += 1;
        }
    }.count);
    try std.testing.expectEqual(@as(usize, depth - 1), seen);
    const big = size_class.bin_count - 1; // the largest blocks: one at a time
    try std.testing.expectEqual(@as(usize, 1), capacityOf(big));
    try std.testing.expect(s.push(big, 1 << 20));
    try std.testing.expect(!s.push(big, 2 << 20));
    while (s.pop(small)) |_| {}
    _ = s.pop(big);
    try std.testing.expectEqual(@as(usize, 0), s.bytes);
    for (0..size_class.bin_count) |bin| try std.testing.expectEqual(size_class.binBlockSize(bin), blockBytes(bin));
}
