//! large_cache.zig — how much freed large-block memory the large tier may keep resident
//! (large_mappings.zig and large_region.zig hold it; this file is the sizing policy, with no
//! locks and no OS calls).
//!
//!   live large bytes  ─┐   peak of the last two windows of decay_ms each
//!                      ├─> limit = clamp(peak, limit_min_bytes, budget)
//!   freed memory ──────┘   (kept under the limit, the oldest purged first)
//!
//! The limit follows recent demand: a program that held P bytes of large blocks live over
//! the last decay time may well ask for P again, so up to P of what it freed stays
//! resident (at most the budget): its next blocks come from memory that is already there,
//! without page faults. (Measured on bench large_blocks, four live 1..32 MiB blocks: with
//! "peak - live now" as the limit, 112k page faults and 560 blocks/s; with the peak, 64-79k
//! and 650-1100; tcmalloc, which keeps everything, 43k, 1.5k and 171 MiB peak RSS to
//! hakmem's 127-138.) A program whose large demand fell sees the peak
//! forgotten within two decay windows. What the cache holds also goes back to the OS along
//! the decay curve (decay.zig), so an idle program keeps nothing. The budget is
//! HAKMEM_LARGE_CACHE_MB; HAKMEM_ADAPT=0 pins the limit to it.
const std = @import("std");

/// The limit never goes below this (or the budget, when the budget is smaller).
pub const limit_min_bytes: usize = 4 << 20;

/// The peak of live large bytes over the last one to two windows of `window_ms`.
pub const RecentPeak = struct {
    current_max: usize = 0,
    previous_max: usize = 0,
    window_start_ms: u64 = 0,

    /// Records the live bytes now (at every large malloc and free).
    pub fn note(self: *RecentPeak, live_bytes: usize, now_ms: u64, window_ms: u64) void {
        self.roll(now_ms, window_ms);
        self.current_max = @max(self.current_max, live_bytes);
        std.debug.assert(self.current_max >= live_bytes);
    }

    pub fn peak(self: *RecentPeak, now_ms: u64, window_ms: u64) usize {
        self.roll(now_ms, window_ms);
        const bytes = @max(self.current_max, self.previous_max);
        std.debug.assert(bytes >= self.current_max); // the window now counts,
        std.debug.assert(bytes >= self.previous_max); // and the one before it
        return bytes;
    }

    fn roll(self: *RecentPeak, now_ms: u64, window_ms: u64) void {
        const age = now_ms -| self.window_start_ms;
        if (age < @max(window_ms, 1)) return;
        std.debug.assert(now_ms > self.window_start_ms); // a window of at least 1 ms passed
        // one window passed: the current one becomes the previous; two or more: both forgotten
        self.previous_max = if (age < 2 * @max(window_ms, 1)) self.current_max else 0;
        self.current_max = 0;
        self.window_start_ms = now_ms;
        std.debug.assert(self.previous_max == 0 or age < 2 * @max(window_ms, 1)); // a peak older than two windows is forgotten
    }
};

/// The retained-memory limit now: the recent peak of live large bytes, within the budget.
pub fn limit(peak_bytes: usize, budget_bytes: usize) usize {
    const floor = @min(limit_min_bytes, budget_bytes);
    const bytes = std.math.clamp(peak_bytes, floor, budget_bytes);
    std.debug.assert(bytes <= budget_bytes); // the budget bounds it (0: the cache is off)
    std.debug.assert(bytes >= floor);
    return bytes;
}

test "the limit follows recent demand: room for the recent peak, forgotten when idle" {
    const budget: usize = 256 << 20;
    var recent: RecentPeak = .{};
    // four blocks of 32 MiB live, then one freed: room for as much as was live
    recent.note(128 << 20, 0, 1000);
    recent.note(96 << 20, 10, 1000);
    try std.testing.expectEqual(@as(usize, 128 << 20), limit(recent.peak(10, 1000), budget));
    // the peak survives one window roll, is gone after two
    try std.testing.expectEqual(@as(usize, 128 << 20), recent.peak(1500, 1000));
    try std.testing.expectEqual(@as(usize, 0), recent.peak(3600, 1000));
    try std.testing.expectEqual(limit_min_bytes, limit(recent.peak(3600, 1000), budget));
    // the budget bounds it, the floor too (and a budget of 0 turns the cache off)
    try std.testing.expectEqual(@as(usize, 64 << 20), limit(1 << 30, 64 << 20));
    try std.testing.expectEqual(@as(usize, 0), limit(1 << 30, 0));
}
