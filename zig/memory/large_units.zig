//! large_units.zig — the maps of a large region's 64 KiB units (large_region.zig draws them):
//! which units are in a block, writable, resident, whose they are, when each was freed, and
//! where moved pages left a mapping edge (large_move.zig); bit ranges and runs over them.
//! No state of its own, no lock and no system call: large_region.zig's lock covers every
//! map (lookup reads an owner without it).
const std = @import("std");
const segment_map = @import("../base/segment_map.zig");

pub const unit_shift = 16;
pub const unit_size: usize = 1 << unit_shift; // 64 KiB
pub const region_units = 16384;
pub const region_size: usize = region_units * unit_size; // 1 GiB
pub const words = region_units / 64;

pub const Bits = [words]u64;

/// owner[i]: 0 for no block, else (first unit of the block + 1), with freed_flag when the
/// block was freed (its units free, its header still readable). Zero is "none" so the
/// regions start out as zeroed memory (.bss: no page resident until a region is used).
pub const no_owner: u16 = 0;
pub const freed_flag: u16 = 0x8000;

comptime {
    std.debug.assert(region_units < freed_flag); // a unit index + 1 fits beside the flag
    std.debug.assert(region_size % segment_map.chunk_size == 0);
}

/// All zero when unused (a zeroed .bss array).
pub const Region = struct {
    base: usize = 0,
    /// Set: the unit is in a block.
    taken: Bits = [_]u64{0} ** words,
    writable: Bits = [_]u64{0} ** words,
    resident: Bits = [_]u64{0} ** words,
    /// Set: a mapping edge may lie at the unit's start (pages moved there or from there
    /// made a mapping of their own: large_move.zig).
    edges: Bits = [_]u64{0} ** words,
    owner: [region_units]u16 = [_]u16{no_owner} ** region_units,
    /// When each free resident unit was freed (monotonic ms).
    freed_ms: [region_units]u64 = [_]u64{0} ** region_units,
    /// The units the last free gave back: a block of that size is placed there first,
    /// without a search (malloc/free of one size stays cheap).
    hint_first: usize = 0,
    hint_units: usize = 0,
};

/// Called for each freed block whose first unit is about to lose its pages (large.zig
/// remembers its address, large_recent.zig: a second free is still a double free).
pub const BeforePurge = *const fn (block_base: usize) void;

pub fn bit(bits: *const Bits, i: usize) bool {
    std.debug.assert(i < region_units);
    return bits[i / 64] & (@as(u64, 1) << @intCast(i % 64)) != 0;
}

/// The part of [i, end) in i's word: the word, its mask, and how many units.
fn wordPart(i: usize, end: usize) struct { word: usize, mask: u64, units: usize } {
    std.debug.assert(i < end); // callers loop while i < end: never an empty part
    std.debug.assert(end <= region_units);
    const lo: u6 = @intCast(i % 64);
    const n = @min(end - i, 64 - @as(usize, lo));
    const ones = if (n == 64) ~@as(u64, 0) else (@as(u64, 1) << @intCast(n)) - 1;
    std.debug.assert(n >= 1);
    std.debug.assert(@popCount(ones << lo) == n); // the mask lost no unit to the shift
    return .{ .word = i / 64, .mask = ones << lo, .units = n };
}

pub fn setRange(bits: *Bits, start: usize, len: usize, value: bool) void {
    std.debug.assert(start + len <= region_units);
    var i = start;
    while (i < start + len) {
        const part = wordPart(i, start + len);
        if (value) bits[part.word] |= part.mask else bits[part.word] &= ~part.mask;
        i += part.units;
    }
    // (a loop over the range again: only where assertions are checked, never in ReleaseFast)
    if (std.debug.runtime_safety) std.debug.assert(countRange(bits, start, len) == if (value) len else 0);
}

pub fn countRange(bits: *const Bits, start: usize, len: usize) usize {
    std.debug.assert(start + len <= region_units);
    var i = start;
    var count: usize = 0;
    while (i < start + len) {
        const part = wordPart(i, start + len);
        count += @popCount(bits[part.word] & part.mask);
        i += part.units;
    }
    std.debug.assert(count <= len);
    return count;
}

pub const Kind = enum { free, retained, empty, resident, writable, edge };

/// Word `w` of the units of a kind: free (not taken), retained (free and resident), empty
/// (free, no pages), resident, writable, at an edge.
fn wordOf(region: *const Region, kind: Kind, w: usize) u64 {
    std.debug.assert(w < words);
    return switch (kind) {
        .free => ~region.taken[w],
        .retained => ~region.taken[w] & region.resident[w],
        .empty => ~region.taken[w] & ~region.resident[w],
        .resident => region.resident[w],
        .writable => region.writable[w],
        .edge => region.edges[w],
    };
}

/// The first unit >= from that is (`value` true) or is not (false) of `kind`; region_units
/// when there is none. At most `words` steps.
pub fn nextWith(region: *const Region, kind: Kind, from: usize, value: bool) usize {
    std.debug.assert(from <= region_units);
    var i = from;
    while (i < region_units) {
        var word = wordOf(region, kind, i / 64);
        if (!value) word = ~word;
        word &= ~@as(u64, 0) << @intCast(i % 64);
        if (word != 0) {
            const found = (i / 64) * 64 + @ctz(word);
            std.debug.assert(found >= from);
            std.debug.assert(found < region_units);
            return found;
        }
        i = (i / 64 + 1) * 64;
    }
    return region_units;
}

/// The maximal runs of units of a kind, in address order. At most `words` steps per run.
pub const Runs = struct {
    region: *const Region,
    kind: Kind,
    pos: usize = 0,

    pub fn next(self: *Runs) ?struct { start: usize, end: usize } {
        if (self.pos >= region_units) return null;
        const start = nextWith(self.region, self.kind, self.pos, true);
        if (start == region_units) {
            self.pos = region_units;
            return null;
        }
        const end = nextWith(self.region, self.kind, start, false);
        std.debug.assert(start < end); // the unit at start is of the kind: a run of one at least
        std.debug.assert(start >= self.pos); // runs come in address order, none twice
        self.pos = end;
        return .{ .start = start, .end = end };
    }
};

/// Free resident units are about to lose their pages (purged, or moved away): `before_purge`
/// names each freed block whose header is there, while it can still be read.
pub fn announceDrop(region: *const Region, first: usize, units: usize, before_purge: BeforePurge) void {
    std.debug.assert(units >= 1);
    std.debug.assert(first + units <= region_units);
    if (std.debug.runtime_safety) std.debug.assert(countRange(&region.taken, first, units) == 0); // free units only
    for (first..first + units) |i| {
        const owner = region.owner[i];
        if (owner != no_owner and owner & ~freed_flag == i + 1) before_purge(region.base + i * unit_size);
    }
}

/// Free resident units lost their pages (announceDrop first): no block is there any more,
/// not resident.
pub fn dropPages(region: *Region, first: usize, units: usize) void {
    std.debug.assert(units >= 1);
    std.debug.assert(first + units <= region_units);
    if (std.debug.runtime_safety) { // (loops: not in ReleaseFast)
        std.debug.assert(countRange(&region.taken, first, units) == 0); // no block's page may go
        std.debug.assert(countRange(&region.resident, first, units) == units);
    }
    for (first..first + units) |i| @atomicStore(u16, &region.owner[i], no_owner, .monotonic);
    setRange(&region.resident, first, units, false);
}

test "bit ranges: set, count, next" {
    var region: Region = .{};
    setRange(&region.taken, 60, 10, true);
    try std.testing.expectEqual(@as(usize, 10), countRange(&region.taken, 0, region_units));
    try std.testing.expectEqual(@as(usize, 0), nextWith(&region, .free, 0, true));
    try std.testing.expectEqual(@as(usize, 60), nextWith(&region, .free, 0, false));
    try std.testing.expectEqual(@as(usize, 70), nextWith(&region, .free, 60, true));
    setRange(&region.taken, 62, 3, false);
    try std.testing.expectEqual(@as(usize, 7), countRange(&region.taken, 0, 200));
    setRange(&region.resident, 0, 100, true);
    try std.testing.expectEqual(@as(usize, 62), nextWith(&region, .retained, 60, true));
    try std.testing.expectEqual(@as(usize, 65), nextWith(&region, .retained, 62, false));
    try std.testing.expectEqual(@as(usize, 100), nextWith(&region, .resident, 0, false));
    setRange(&region.taken, 0, region_units, true);
    try std.testing.expectEqual(@as(usize, region_units), countRange(&region.taken, 0, region_units));
    try std.testing.expectEqual(@as(usize, region_units), nextWith(&region, .free, 0, true));
}
