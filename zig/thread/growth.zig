//! growth.zig — realloc's growth log: the blocks a thread's realloc grew lately, and the
//! size a block gets when realloc grows it again.
//!
//! A tiny or mid block that realloc already grew once gets 1.5 times its size (within the
//! tier its new size routes to) the next time, rounded up to the growth ladder (2^k and
//! 1.5 * 2^k, both class sizes), so a buffer growing by small steps is copied about 10
//! times on its way from 1 KiB to 64 KiB rather than at each of the ~48 size classes it
//! crosses, and buffers growing side by side share two classes per doubling instead of
//! leaving blocks in every class (bench realloc_growth: peak RSS 9.4 -> 7.1 MiB). The log is per thread (each heap holds one: heap.grown) and
//! small: a block grown long ago is forgotten, and grows by its request again.
//! (alloc.realloc: the operation; this file: its memory and its policy.)
const std = @import("std");
const config = @import("../settings/config.zig");
const routing = @import("../settings/routing.zig");

pub const Log = struct {
    const slots = 32;
    blocks: [slots]usize = [_]usize{0} ** slots,
    next: u8 = 0,

    /// True when `addr` came from a growing realloc lately; forgets it.
    pub fn take(self: *Log, addr: usize) bool {
        std.debug.assert(addr != 0); // 0 marks an empty slot
        for (&self.blocks) |*b| {
            if (b.* == addr) {
                b.* = 0;
                return true;
            }
        }
        return false;
    }

    pub fn remember(self: *Log, addr: usize) void {
        std.debug.assert(addr != 0 and self.next < slots);
        self.blocks[self.next] = addr;
        self.next = (self.next + 1) % slots;
    }
};

/// The size to allocate when realloc moves the page block at `addr` (`old_usable` bytes)
/// to hold `size`: `size`, or half as much again as it had, up to the ladder, when the log
/// says realloc grew it before (within the tier route(size) names, so the block stays where
/// route says).
pub fn sizeFor(log: *Log, addr: usize, size: usize, old_usable: usize) usize {
    if (size <= old_usable or !log.take(addr)) return size;
    std.debug.assert(old_usable > 0);
    const roomy = @min(ladderUp(old_usable + old_usable / 2), routing.tierMax(routing.route(size)));
    const grown = @max(size, roomy);
    std.debug.assert(grown >= size and routing.route(grown) == routing.route(size)); // room within the tier
    return grown;
}

/// The smallest size of the growth ladder (2^k and 1.5 * 2^k) that is at least `n` (n > 0).
fn ladderUp(n: usize) usize {
    std.debug.assert(n > 0);
    const p = std.math.floorPowerOfTwo(usize, n);
    std.debug.assert(p <= n and n < 2 * p);
    if (n == p) return p;
    if (n <= p + p / 2) return p + p / 2;
    return 2 * p;
}

test "a block grown twice gets half as much again up the ladder, within its tier" {
    var log: Log = .{};
    try std.testing.expectEqual(@as(usize, 1100), sizeFor(&log, 0x1000, 1100, 1024)); // first growth
    log.remember(0x2000);
    try std.testing.expectEqual(@as(usize, 3072), sizeFor(&log, 0x2000, 1600, 1536)); // 2304 up the ladder
    try std.testing.expectEqual(@as(usize, 1600), sizeFor(&log, 0x2000, 1600, 1536)); // forgotten
    log.remember(0x3000);
    try std.testing.expectEqual(routing.tiny_max, sizeFor(&log, 0x3000, routing.tiny_max, 1000)); // tiny stays tiny
}

test "the ladder is 2^k and 1.5 * 2^k" {
    for ([_][2]usize{ .{ 1, 1 }, .{ 3, 3 }, .{ 5, 6 }, .{ 1024, 1024 }, .{ 1025, 1536 }, .{ 1536, 1536 }, .{ 1537, 2048 }, .{ 40000, 49152 } }) |c| {
        try std.testing.expectEqual(c[1], ladderUp(c[0]));
    }
}
