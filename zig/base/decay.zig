//! decay.zig — how fast retained empty memory goes back to the OS: along a curve, not
//! at a fixed delay (the policy only; large_mappings.zig, arena.zig and purge.zig apply it
//! to their cached mappings, cached segments and a heap's dirty slices).
//!
//!   kept fraction of what was freed `age` ms ago      1 ┤━━━━━━━╮
//!     keep(age) = 1 - smoothstep(age / decay_ms)        │        ╲
//!     smoothstep(x) = 3x² - 2x³  (0 at 0, 1 at 1)       │         ╲___
//!                                                     0 ┤             ━━━━━━━━
//!                                                       0       decay_ms/2   decay_ms
//!
//! A reserve (the items of one kind, each with its bytes and the time it was freed) may
//! keep `allowed = Σ bytes × keep(age)` bytes. Maintenance releases the oldest items while
//! what stays still covers `allowed` (retained - oldest >= allowed): a burst of frees goes
//! back gradually over decay_ms (jemalloc's dirty_decay_ms is the model), memory reused
//! within that time is reused without page faults, and one lone item is kept for (nearly) the
//! whole decay time (it is never cut in pieces). Memory left idle for decay_ms is all released.
const std = @import("std");

/// The fraction (in 1/2^16) of memory freed `age_ms` ago that a reserve may still keep.
pub fn keepFraction(age_ms: u64, decay_ms: u64) u32 {
    if (age_ms >= decay_ms) return 0;
    std.debug.assert(decay_ms > 0); // (a decay of 0 keeps nothing: returned above)
    // x in [0, 1) as 16-bit fixed point; smoothstep in fixed point.
    const x: u64 = (age_ms << 16) / decay_ms;
    const x2 = (x * x) >> 16;
    const x3 = (x2 * x) >> 16;
    std.debug.assert(x < 1 << 16); // age_ms < decay_ms
    std.debug.assert(x2 <= x); // powers of x in [0, 1) shrink
    std.debug.assert(x3 <= x2);
    const smooth = 3 * x2 - 2 * x3;
    const keep: u32 = @intCast((1 << 16) - @min(smooth, 1 << 16));
    std.debug.assert(keep <= 1 << 16);
    std.debug.assert(age_ms != 0 or keep == 1 << 16); // memory freed just now is all kept
    return keep;
}

/// Bytes of an item of `bytes` freed `age_ms` ago that count toward `allowed`.
pub fn keptBytes(bytes: usize, age_ms: u64, decay_ms: u64) usize {
    const f = keepFraction(age_ms, decay_ms);
    const kept: usize = @intCast((@as(u128, bytes) * f) >> 16);
    std.debug.assert(kept <= bytes);
    std.debug.assert(age_ms < decay_ms or kept == 0); // memory idle for decay_ms is all released
    return kept;
}

/// One reserve's tally during a maintenance pass: add every item, then ask whether the
/// oldest may go.
pub const Tally = struct {
    retained: usize = 0,
    allowed: usize = 0,

    pub fn add(self: *Tally, bytes: usize, freed_ms: u64, now_ms: u64, decay_ms: u64) void {
        std.debug.assert(self.allowed <= self.retained);
        self.retained += bytes;
        self.allowed += keptBytes(bytes, now_ms -| freed_ms, decay_ms);
        std.debug.assert(self.allowed <= self.retained); // an item keeps at most its bytes
    }

    /// True when an item of `bytes` may be released and the rest still covers `allowed`;
    /// counts it as released.
    pub fn release(self: *Tally, bytes: usize) bool {
        std.debug.assert(self.allowed <= self.retained);
        std.debug.assert(bytes > 0); // an item (a purge piece, a segment, a mapping) has bytes
        if (self.retained < bytes or self.retained - bytes < self.allowed) return false;
        const before = self.retained;
        self.retained -= bytes;
        std.debug.assert(self.allowed <= self.retained);
        std.debug.assert(self.retained < before); // counted as released
        return true;
    }
};

test "keep: all at first, half at the middle, nothing at the end, monotonic" {
    try std.testing.expectEqual(@as(u32, 1 << 16), keepFraction(0, 1000));
    try std.testing.expectEqual(@as(u32, 1 << 15), keepFraction(500, 1000));
    try std.testing.expectEqual(@as(u32, 0), keepFraction(1000, 1000));
    try std.testing.expectEqual(@as(u32, 0), keepFraction(5, 0));
    var last: u32 = 1 << 16;
    for (0..1001) |age| {
        const f = keepFraction(age, 1000);
        try std.testing.expect(f <= last);
        last = f;
    }
}

test "a burst goes back gradually; a lone item stays for the decay time" {
    const decay_ms = 1000;
    // 100 items of 1 MiB freed at 0: at 250 ms most stay, at 750 ms few, at 1000 none.
    var kept_at: [3]usize = undefined;
    for ([_]u64{ 250, 750, 1000 }, 0..) |now, k| {
        var tally: Tally = .{};
        for (0..100) |_| tally.add(1 << 20, 0, now, decay_ms);
        var released: usize = 0;
        while (released < 100 and tally.release(1 << 20)) released += 1;
        kept_at[k] = 100 - released;
    }
    try std.testing.expect(kept_at[0] >= 80 and kept_at[0] < 100);
    try std.testing.expect(kept_at[1] > 0 and kept_at[1] <= 20);
    try std.testing.expectEqual(@as(usize, 0), kept_at[2]);
    var lone: Tally = .{};
    lone.add(32 << 20, 0, 900, decay_ms);
    try std.testing.expect(!lone.release(32 << 20));
    var lone_late: Tally = .{};
    lone_late.add(32 << 20, 0, 1000, decay_ms);
    try std.testing.expect(lone_late.release(32 << 20));
}
