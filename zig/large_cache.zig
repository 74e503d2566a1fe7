//! large_cache.zig — how big the cache of freed large mappings may be (large.zig holds
//! the cache itself; this file is the sizing policy, with no locks and no OS calls).
//!
//!   freed mapping ──put──> cache (≤ limit_bytes) ──evicted for room──> ghosts (sizes only)
//!   large malloc ──take──> hit | miss: a ghost of a fitting size? ──> ghost hit
//!
//! A ghost hit is a miss that a bigger cache would have served. Every `window_lookups`
//! large allocations the limit moves, within [limit_min_bytes, HAKMEM_LARGE_CACHE_MB]:
//!   * doubles when at least 1 lookup in 8 was a ghost hit (room would have paid off);
//!   * halves when fewer than 1 in 8 were hits and none was a ghost hit (the cache holds
//!     resident memory that is not reused at this size);
//!   * otherwise stays.
//! Mappings also leave the cache after HAKMEM_PURGE_DELAY_MS whatever the limit, so the
//! limit bounds what an active phase keeps, not what an idle program keeps (nothing).
//! HAKMEM_ADAPT=0 pins the limit to HAKMEM_LARGE_CACHE_MB (the fixed cache of before).
const std = @import("std");

/// The limit never goes below this (or the budget, when the budget is smaller).
pub const limit_min_bytes: usize = 4 << 20;
/// Large allocations per adaptation step.
pub const window_lookups: u32 = 32;
/// Sizes of recently evicted mappings remembered (a ring).
pub const ghost_slots = 16;

/// The starting limit: a quarter of the budget, within bounds.
pub fn initialLimit(budget_bytes: usize) usize {
    return std.math.clamp(budget_bytes / 4, @min(limit_min_bytes, budget_bytes), budget_bytes);
}

pub const Window = struct {
    lookups: u32 = 0,
    hits: u32 = 0,
    ghost_hits: u32 = 0,
};

/// The limit after a window of lookups (see the rules above). Bounded, and reversible:
/// a doubling and a halving cancel.
pub fn nextLimit(limit_bytes: usize, window: Window, budget_bytes: usize) usize {
    const floor = @min(limit_min_bytes, budget_bytes);
    const limit = std.math.clamp(limit_bytes, floor, budget_bytes);
    if (window.ghost_hits > 0 and window.ghost_hits * 8 >= window.lookups) return @min(budget_bytes, limit * 2);
    if (window.ghost_hits == 0 and window.hits * 8 < window.lookups) return @max(floor, limit / 2);
    return limit;
}

/// Mapped sizes of mappings the cache dropped for lack of room.
pub const Ghosts = struct {
    sizes: [ghost_slots]usize = [_]usize{0} ** ghost_slots,
    next: usize = 0,

    pub fn remember(self: *Ghosts, mapped_bytes: usize) void {
        self.sizes[self.next] = mapped_bytes;
        self.next = (self.next + 1) % ghost_slots;
    }

    /// True (and forgets it) when a dropped mapping would have served a request of
    /// `mapped_bytes`: the cache's own fit rule, at least the size and at most 1/4 more.
    pub fn take(self: *Ghosts, mapped_bytes: usize) bool {
        for (&self.sizes) |*size| {
            if (size.* >= mapped_bytes and size.* <= mapped_bytes + mapped_bytes / 4) {
                size.* = 0;
                return true;
            }
        }
        return false;
    }
};

test "limit stays within bounds, grows on ghost hits, shrinks when unused, reverses" {
    const budget: usize = 64 << 20;
    var limit = initialLimit(budget);
    try std.testing.expectEqual(@as(usize, 16 << 20), limit);
    const wasted: Window = .{ .lookups = window_lookups, .hits = 1 };
    const cramped: Window = .{ .lookups = window_lookups, .hits = 2, .ghost_hits = 4 };
    const useful: Window = .{ .lookups = window_lookups, .hits = 20 };
    for (0..20) |_| limit = nextLimit(limit, cramped, budget);
    try std.testing.expectEqual(budget, limit);
    try std.testing.expectEqual(budget, nextLimit(limit, useful, budget));
    for (0..20) |_| limit = nextLimit(limit, wasted, budget);
    try std.testing.expectEqual(limit_min_bytes, limit);
    try std.testing.expectEqual(2 * limit_min_bytes, nextLimit(limit, cramped, budget));
    // a small budget bounds everything, the floor included
    try std.testing.expectEqual(@as(usize, 1 << 20), nextLimit(1 << 20, cramped, 1 << 20));
    try std.testing.expectEqual(@as(usize, 1 << 20), nextLimit(1 << 20, wasted, 1 << 20));
    try std.testing.expectEqual(@as(usize, 0), initialLimit(0));
    try std.testing.expectEqual(@as(usize, 0), nextLimit(0, cramped, 0));
}

test "ghosts: a dropped mapping of a fitting size counts once" {
    var ghosts: Ghosts = .{};
    ghosts.remember(8 << 20);
    try std.testing.expect(!ghosts.take(16 << 20)); // too small to serve it
    try std.testing.expect(!ghosts.take(4 << 20)); // more than 1/4 too big
    try std.testing.expect(ghosts.take(7 << 20));
    try std.testing.expect(!ghosts.take(7 << 20)); // forgotten
    for (0..ghost_slots + 1) |i| ghosts.remember((i + 1) << 20);
    try std.testing.expect(!ghosts.take(1 << 20)); // overwritten by the ring
    try std.testing.expect(ghosts.take(2 << 20));
}
