//! routing.zig — which tier and bin a request goes to: the thresholds (tiny_max, mid_max)
//! and malloc's routing tables, read on malloc's fast path; hak_set_thresholds changes
//! them at run time, which is safe because a block's own page says its tier (free,
//! realloc and usable_size never route). The HAKMEM_TINY_MAX/HAKMEM_MID_MAX variables are
//! read by config.zig, which sets the thresholds here once, at initialisation.
//!
//!   size ─┬─ <= by_16_max (1 KiB)    bins_by_16[(size + 15) >> 4]      one load  ─┐ a bin's stack
//!         ├─ <= by_128_max (32 KiB)  bins_by_128[(size + 127) >> 7]    one load  ─┤ (bin << stack_shift),
//!         ├─ <= by_4k_max (1 MiB)    bins_by_4k[(size + 4095) >> 12]   one load  ─┘ or no_bin's (the
//!         └─ else                    large                                          slow path routes)
//!
//! Who writes what: tiny_max, mid_max and the tables are written by setThresholds only
//! (atomic release stores; at init by config.loadFromEnvironment through it) and read with
//! plain loads on malloc's fast path.
const std = @import("std");
const abi = @import("../abi.zig");
const size_class = @import("size_class.zig");

pub const Tier = abi.Tier;

pub const tiny_max_default: usize = abi.tiny_max_default;
pub const mid_max_default: usize = abi.mid_max_default;
pub const tiny_max_limit: usize = abi.tiny_max_limit;
pub const mid_max_min: usize = abi.mid_max_min;
pub const mid_max_limit: usize = abi.mid_max_limit;

/// Requests up to tiny_max go to the tiny tier, up to mid_max to mid, the rest to large.
/// Read on every malloc (plain loads; written rarely, with release stores).
pub var tiny_max: usize = tiny_max_default;
pub var mid_max: usize = mid_max_default;

/// malloc's routing in one table load, for sizes up to 1 MiB: bins_by_16[(size + 15) / 16]
/// up to 1 KiB, bins_by_128[(size + 127) / 128] up to 32 KiB (every class boundary above
/// 1 KiB is a multiple of 128), bins_by_4k[(size + 4095) / 4096] above (every one above
/// 32 KiB is a multiple of 4096; a load where midBin's bit operations took 8 instructions).
/// An entry is the bin under the thresholds now, or size_class.no_bin for large sizes and
/// for the one slot a threshold falls inside (that cache entry is always empty, so malloc
/// falls to its slow path, which routes by route()), shifted left by stack_shift: the
/// offset of the bin's stack in a thread cache, which malloc adds to the cache's address
/// as it is (no shift on its path). Sizes above 32 KiB are never tiny (tiny_max_limit is
/// 8 KiB); above 1 MiB (mid_max_limit) always large.
pub const by_16_max: usize = 1024;
pub const by_128_max: usize = 32 * 1024;
pub const by_4k_max: usize = mid_max_limit;
pub var bins_by_16: [by_16_max / 16 + 1]StackOffset = routingTable(16, by_16_max, tiny_max_default, mid_max_default);
pub var bins_by_128: [by_128_max / 128 + 1]StackOffset = routingTable(128, by_128_max, tiny_max_default, mid_max_default);
pub var bins_by_4k: [by_4k_max / 4096 + 1]StackOffset = routingTable(4096, by_4k_max, tiny_max_default, mid_max_default);

/// log2 of the size of a bin's stack entry in a thread cache (thread_cache.Entry asserts
/// it): bin << stack_shift is where the bin's stack is, the offset malloc (these tables)
/// and free (page.zig stack_offset) add to the cache's address as it is.
pub const stack_shift = 5;
/// A bin's stack offset: bin << stack_shift (no_bin's too).
pub const StackOffset = u16;

/// The stack offset of bin `b` (or no_bin).
pub inline fn stackOffset(b: usize) StackOffset {
    std.debug.assert(b <= size_class.no_bin);
    return @intCast(b << stack_shift);
}

comptime {
    std.debug.assert(tiny_max_limit <= by_128_max);
    std.debug.assert(size_class.classSize(size_class.classOf(by_128_max + 1)) % 4096 == 0); // boundaries above are 4 KiB steps
}

/// malloc's routing (alloc.mallocFrom): one table load up to by_4k_max, else large.
/// `to.stack(offset)` or `to.large()` is called in the branch that found it (inlined into
/// each: malloc's fast path keeps one short branch per range); offset is a bin's stack
/// offset, no_bin's where the slow path must route (large sizes, and the one slot a
/// threshold falls inside): that cache entry is always empty.
pub inline fn fastRoute(size: usize, to: anytype) @TypeOf(to).Result {
    if (size <= by_16_max) return to.stack(bins_by_16[(size + 15) >> 4]);
    if (size <= by_128_max) return to.stack(bins_by_128[(size + 127) >> 7]);
    if (size <= by_4k_max) return to.stack(bins_by_4k[(size + 4095) >> 12]);
    return to.large();
}

/// fastRoute's answer as a value (tests): the bin, or null for large.
pub fn fastBin(size: usize) ?size_class.Bin {
    const Answer = struct {
        pub const Result = ?size_class.Bin;
        pub inline fn stack(_: @This(), offset: StackOffset) Result {
            return @intCast(offset >> stack_shift);
        }
        pub inline fn large(_: @This()) Result {
            return null;
        }
    };
    const b = fastRoute(size, Answer{});
    std.debug.assert(b == null or b.? <= size_class.no_bin); // a bin, or no_bin's (the slow path routes)
    std.debug.assert(b != null or size > by_4k_max); // only past the tables is it large at once
    return b;
}

fn routingTable(comptime step: usize, comptime max: usize, tiny: usize, mid: usize) [max / step + 1]StackOffset {
    @setEvalBranchQuota(20_000);
    comptime std.debug.assert(std.math.isPowerOfTwo(step)); // the slot is (size + step - 1) >> log2(step)
    comptime std.debug.assert(max % step == 0); // the last slot ends at max
    std.debug.assert(tiny <= mid); // a consistent pair (setThresholds refuses others)
    var table: [max / step + 1]StackOffset = undefined;
    for (&table, 0..) |*entry, i| {
        const size = i * step; // the slot serves sizes size-step+1 .. size (and 0)
        const smallest = if (i == 0) 0 else size - step + 1;
        const b = if (routeBy(size, tiny, mid) != routeBy(smallest, tiny, mid)) size_class.no_bin // a threshold inside the slot
            else binBy(size, tiny, mid) orelse size_class.no_bin;
        std.debug.assert(b == size_class.no_bin or b < size_class.bin_count);
        // a bin's blocks hold the slot's largest size (malloc hands them out for any in it)
        std.debug.assert(b == size_class.no_bin or size_class.binBlockSize(b) >= size);
        entry.* = stackOffset(b);
    }
    return table;
}

/// After tiny_max or mid_max changed. A malloc racing with it may route one request
/// by the old thresholds: every tier serves every size up to its limit, and free finds
/// the tier from the block, so that is harmless.
fn routingChanged() void {
    std.debug.assert(tiny_max <= mid_max);
    std.debug.assert(tiny_max <= tiny_max_limit);
    std.debug.assert(mid_max >= mid_max_min);
    std.debug.assert(mid_max <= mid_max_limit);
    const by_16 = routingTable(16, by_16_max, tiny_max, mid_max);
    for (&bins_by_16, by_16) |*entry, new| @atomicStore(StackOffset, entry, new, .release);
    const by_128 = routingTable(128, by_128_max, tiny_max, mid_max);
    for (&bins_by_128, by_128) |*entry, new| @atomicStore(StackOffset, entry, new, .release);
    const by_4k = routingTable(4096, by_4k_max, tiny_max, mid_max);
    for (&bins_by_4k, by_4k) |*entry, new| @atomicStore(StackOffset, entry, new, .release);
    if (std.debug.runtime_safety) {
        // malloc's tables now agree with route() at both thresholds and just above them
        for ([_]usize{ tiny_max, tiny_max + 1, mid_max, mid_max + 1 }) |size| {
            const fast = fastBin(size) orelse continue;
            std.debug.assert(fast == size_class.no_bin or fast == bin(size).?);
        }
    }
}

/// Valid: tiny_max in [0, tiny_max_limit] (0 turns tiny off), mid_max in [mid_max_min,
/// mid_max_limit], tiny_max <= mid_max (always true given those ranges).
pub fn setThresholds(new_tiny_max: usize, new_mid_max: usize) bool {
    if (new_tiny_max > tiny_max_limit or new_mid_max > mid_max_limit or new_mid_max < mid_max_min) return false;
    if (new_tiny_max > new_mid_max) return false;
    std.debug.assert(new_mid_max >= mid_max_min); // (refused above, with the limits)
    @atomicStore(usize, &tiny_max, new_tiny_max, .release);
    @atomicStore(usize, &mid_max, new_mid_max, .release);
    routingChanged();
    std.debug.assert(tiny_max == new_tiny_max); // stored, and the tables rebuilt for them
    std.debug.assert(mid_max == new_mid_max);
    return true;
}

pub fn route(size: usize) Tier {
    const tier = routeBy(size, tiny_max, mid_max);
    std.debug.assert(tier == .large or size <= mid_max_limit); // every tier serves sizes up to its limit
    return tier;
}

/// The largest request `tier` takes under the thresholds now.
pub fn tierMax(tier: Tier) usize {
    const max = switch (tier) {
        .tiny => tiny_max,
        .mid => mid_max,
        .large => abi.size_max,
    };
    std.debug.assert(tier == .tiny or max >= mid_max_min); // only tiny may be off (0)
    std.debug.assert(tier == .large or max <= mid_max_limit); // above it every size is large
    return max;
}

/// The bin a request of `size` bytes is served from under the thresholds now; null for
/// the large tier. malloc's fast path uses fastBin, the same routing in table form; a unit
/// test checks the two agree for every size under several thresholds.
pub fn bin(size: usize) ?size_class.Bin {
    return binBy(size, tiny_max, mid_max);
}

fn binBy(size: usize, tiny: usize, mid: usize) ?size_class.Bin {
    const tier = routeBy(size, tiny, mid);
    const b: size_class.Bin = switch (tier) {
        .tiny => size_class.tinyBin(size),
        .mid => size_class.midBin(size),
        .large => return null,
    };
    std.debug.assert(size_class.binIsTiny(b) == (tier == .tiny)); // the bin is of the tier routed to
    std.debug.assert(size_class.binBlockSize(b) >= size); // its blocks hold the request
    return b;
}

fn routeBy(size: usize, tiny: usize, mid: usize) Tier {
    // any tiny_max is at most any mid_max (tiny_max_limit == mid_max_min), so even the two
    // read apart while hak_set_thresholds stores a new pair are a consistent pair
    std.debug.assert(tiny <= mid);
    std.debug.assert(mid <= mid_max_limit);
    if (size <= tiny) return .tiny;
    if (size <= mid) return .mid;
    return .large;
}

// ---------------------------------------------------------------- tests

test "thresholds are validated" {
    const old_tiny = tiny_max;
    const old_mid = mid_max;
    defer _ = setThresholds(old_tiny, old_mid);
    try std.testing.expect(setThresholds(512, 16384));
    try std.testing.expectEqual(Tier.tiny, route(512));
    try std.testing.expectEqual(Tier.mid, route(513));
    try std.testing.expectEqual(Tier.large, route(16385));
    try std.testing.expect(!setThresholds(tiny_max_limit + 1, mid_max_limit));
    try std.testing.expect(!setThresholds(0, mid_max_limit + 1));
    // the lowest sensible limits: tiny may be off, but small requests never go to large
    try std.testing.expect(setThresholds(0, mid_max_min));
    try std.testing.expectEqual(Tier.mid, route(1));
    try std.testing.expect(!setThresholds(0, 0));
    try std.testing.expect(!setThresholds(0, mid_max_min - 1));
    try std.testing.expectEqual(mid_max_min, mid_max);
}

test "malloc's routing (fastBin) agrees with bin() for every size, under any thresholds" {
    const saved_tiny = tiny_max;
    const saved_mid = mid_max;
    defer _ = setThresholds(saved_tiny, saved_mid);
    for ([_][2]usize{ .{ 1024, 1 << 20 }, .{ 0, 8192 }, .{ 100, 8192 }, .{ 8192, 8192 }, .{ 4000, 20000 }, .{ 1500, 1 << 20 }, .{ 1024, 40000 } }) |t| {
        try std.testing.expect(setThresholds(t[0], t[1]));
        var size: usize = 0;
        while (size <= mid_max_limit + 1) : (size += if (size < 2 * by_128_max) 1 else 61) {
            const want = bin(size);
            const fast = fastBin(size);
            if (fast == null) {
                try std.testing.expect(want == null and size > by_4k_max);
                continue;
            }
            if (fast.? == size_class.no_bin) {
                // the slow path routes: a large size, or a threshold inside the table slot
                const step: usize = if (size <= by_16_max) 16 else if (size <= by_128_max) 128 else 4096;
                const slot_top = (size + step - 1) / step * step;
                try std.testing.expect(want == null or route(slot_top) != route(slot_top -| (step - 1)));
                continue;
            }
            try std.testing.expectEqual(want, fast);
        }
    }
}
