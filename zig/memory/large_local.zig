//! large_local.zig — a thread's cache of the region blocks it freed lately (large.zig): a
//! malloc of the same number of 64 KiB units takes one back with no lock, no unit-map write
//! and no page fault (its pages never left). One per heap (heap.zig), touched only by its
//! thread; called by slow.zig (mallocLarge, free) and heap.zig (maintenance, thread exit).
//! The hand-over of a block between the tier and this cache (its header's magic) is at the
//! end of this file.
//!
//!   LocalLarge (in the thread's Heap)
//!   +-----------------------------------------------+----------------+
//!   | entries[4]: header address, units, freed_ms   | bytes (held)   |
//!   +-----------------------------------------------+----------------+
//!        |
//!        v   a held block: header magic "held locally" (a second free of it is a double
//!            free, reported as for any freed block), its region units still taken
//!
//!   free(block of <= bytes_max, a plain region block)  -> held (the oldest entry goes back to
//!                                                         its region when full)
//!   malloc(same units)                                  -> the held block, live again
//!   malloc(other units)  -> every entry goes back to its region first (slow.mallocLarge:
//!                           there they coalesce, and the region serves the new block)
//!   maintenance (heap.maintain): entries held for purge_delay_ms go back; thread exit
//!   (heap.abandonAll): all go back. Held bytes are bounded per thread (bytes_max).
//!
//! Stats: the cache counts what it takes back (large allocs, cache hits) and holds (large
//! frees) in plain counters of its own, which stats readers add up with every heap's
//! (thread.sumCounters); a held block's bytes stay in large.live_bytes (the limit of
//! large_cache.zig sees them as demand) and readers subtract the held bytes. So a malloc+free
//! pair served here does one atomic operation: free's CAS of the header's magic.
const std = @import("std");
const config = @import("../settings/config.zig");
const large = @import("large.zig");
const large_header = @import("large_header.zig");
const large_mappings = @import("large_mappings.zig");
const large_region = @import("large_region.zig");
const LargeHeader = large_header.LargeHeader;
const header_room = large_header.header_room;
const live_magic = large_header.live_magic;
const cached_magic = large_header.cached_magic;
const local_magic = large_header.local_magic;
const stats = @import("../settings/stats.zig");
const os = @import("../base/os.zig");

pub const slots = 4;
/// A hold reads the clock once in this many (the stamps are that much older at most).
const clock_every = 16;
/// Held bytes per thread at most (and no block larger is held).
pub const bytes_max: usize = 48 << 20;

const Entry = struct { header: ?*LargeHeader = null, units: usize = 0, freed_ms: u64 = 0 };

pub const LocalLarge = struct {
    entries: [slots]Entry = [_]Entry{.{}} ** slots,
    /// Bytes of the held blocks' units.
    bytes: usize = 0,
    /// The clock as last read (monotonic ms): a hold stamps its entry with it, and reads
    /// the clock itself every clock_every holds (tick), so a free held here seldom reads it.
    clock_ms: u64 = 0,
    holds_since_clock: u32 = 0,
    /// Stats (owner-written, read by stats readers with monotonic loads: thread.sumCounters):
    /// blocks taken back, blocks held when freed, usable bytes held now.
    allocs: u64 = 0,
    frees: u64 = 0,
    held_usable_bytes: u64 = 0,

    /// The most this thread may hold now: nothing when the large tier keeps nothing
    /// (HAKMEM_LARGE_CACHE_MB=0 or a purge delay of 0).
    fn limit() usize {
        if (config.purge_delay_ms == 0) return 0;
        const max = @min(bytes_max, config.large_cache_max_bytes);
        std.debug.assert(max <= bytes_max); // (localUnits and localUnitsOf rely on it)
        return max;
    }

    /// malloc: a held block of the units `size` takes, live again; null when there is none
    /// (the caller then sends every held block back to its region: releaseAll).
    pub fn take(self: *LocalLarge, size: usize, alignment: usize, zeroed: bool) ?*anyopaque {
        std.debug.assert(self.bytes <= bytes_max);
        if (self.bytes == 0) return null;
        const units = localUnits(size, alignment, bytes_max) orelse return null;
        for (&self.entries) |*entry| {
            if (entry.units != units) continue;
            const header = entry.header.?; // (units != 0: an empty entry has none)
            std.debug.assert(header.region_units == units);
            self.remove(entry);
            @atomicStore(u64, &self.allocs, self.allocs + 1, .monotonic);
            return reviveLocal(header, size, zeroed);
        }
        return null;
    }

    pub const PutResult = enum { held, not_held, freed_already };

    /// free of a live large block: held here when it may be (`not_held`: the caller frees it
    /// to the tier); `freed_already` when another thread freed it first.
    pub inline fn put(self: *LocalLarge, header: *LargeHeader) PutResult {
        const max = limit();
        const units = localUnitsOf(header, max) orelse return .not_held;
        const bytes = units * large_region.unit_size;
        if (!holdLocal(header)) return .freed_already;
        if (self.clock_ms == 0) self.clock_ms = os.nowMs(); // (a new heap's first hold)
        const slot = self.roomFor(bytes, max);
        std.debug.assert(slot.header == null); // an empty slot
        std.debug.assert(self.bytes + bytes <= max); // with room for the block
        slot.* = .{ .header = header, .units = units, .freed_ms = self.clock_ms };
        self.bytes += bytes;
        std.debug.assert(self.bytes <= max); // held bytes stay under the thread's bound
        @atomicStore(u64, &self.frees, self.frees + 1, .monotonic);
        @atomicStore(u64, &self.held_usable_bytes, self.held_usable_bytes + header.usable_size, .monotonic);
        return .held;
    }

    /// An empty slot with room for `bytes` more (at most `max` held): the oldest entries go
    /// back to their regions until there is one. Bounded: slots + 1 turns.
    inline fn roomFor(self: *LocalLarge, bytes: usize, max: usize) *Entry {
        std.debug.assert(bytes <= max);
        var rounds: usize = 0;
        while (rounds <= slots) : (rounds += 1) {
            if (self.bytes + bytes <= max) {
                if (self.emptySlot()) |slot| return slot;
            }
            const old = self.oldest().?; // (bytes <= max: an entry holds what is in the way)
            const old_header = old.header.?;
            self.remove(old);
            releaseLocal(old_header, self.clock_ms);
        }
        unreachable; // every entry gone after `slots` turns: then both hold
    }

    /// After a hold: every clock_every holds, the clock read now (for maintenance), else null.
    pub inline fn tick(self: *LocalLarge) ?u64 {
        std.debug.assert(self.holds_since_clock < clock_every); // (reset when it got there)
        self.holds_since_clock += 1;
        if (self.holds_since_clock < clock_every) return null;
        return self.readClock();
    }

    noinline fn readClock(self: *LocalLarge) u64 {
        self.holds_since_clock = 0;
        self.clock_ms = os.nowMs();
        return self.clock_ms;
    }

    /// Maintenance: entries held for the purge delay go back to their regions (all with `force`).
    pub fn decay(self: *LocalLarge, now_ms: u64, force: bool) void {
        std.debug.assert(self.bytes <= bytes_max);
        self.clock_ms = @max(self.clock_ms, now_ms);
        if (self.bytes == 0) return;
        for (&self.entries) |*entry| {
            const header = entry.header orelse continue;
            if (!force and now_ms -| entry.freed_ms < config.purge_delay_ms) continue;
            self.remove(entry);
            releaseLocal(header, now_ms);
        }
        std.debug.assert(!force or self.bytes == 0); // forced: every entry went back
    }

    /// Every held block back to its region (a miss, thread exit).
    pub fn releaseAll(self: *LocalLarge, now_ms: u64) void {
        self.clock_ms = @max(self.clock_ms, now_ms);
        for (&self.entries) |*entry| {
            const header = entry.header orelse continue;
            self.remove(entry);
            releaseLocal(header, now_ms);
        }
        std.debug.assert(self.bytes == 0);
    }

    fn remove(self: *LocalLarge, entry: *Entry) void {
        std.debug.assert(entry.units >= 1); // a held entry (an empty one holds 0 units)
        std.debug.assert(entry.header != null);
        std.debug.assert(entry.units * large_region.unit_size <= self.bytes);
        self.bytes -= entry.units * large_region.unit_size;
        @atomicStore(u64, &self.held_usable_bytes, self.held_usable_bytes - entry.header.?.usable_size, .monotonic);
        entry.* = .{};
    }

    /// Its counts into a stats sum (heap.addCountersInto).
    pub fn addCountersInto(self: *const LocalLarge, total: *stats.BinCounters) void {
        total.large_local_allocs += @atomicLoad(u64, &self.allocs, .monotonic);
        total.large_local_frees += @atomicLoad(u64, &self.frees, .monotonic);
        total.large_local_held_bytes += @atomicLoad(u64, &self.held_usable_bytes, .monotonic);
    }

    inline fn emptySlot(self: *LocalLarge) ?*Entry {
        for (&self.entries) |*entry| {
            if (entry.header != null) continue;
            std.debug.assert(entry.units == 0); // (take matches by units: an empty entry never)
            return entry;
        }
        return null;
    }

    fn oldest(self: *LocalLarge) ?*Entry {
        var found: ?*Entry = null;
        for (&self.entries) |*entry| {
            if (entry.header == null) continue;
            if (found == null or entry.freed_ms < found.?.freed_ms) found = entry;
        }
        std.debug.assert((found == null) == (self.bytes == 0)); // an entry held, when bytes are
        return found;
    }
};

// ---- a block handed between the tier and a local cache: its header's magic moves
// live -> local (held) -> live (taken back) or cached (back to its region: large.giveBack)

/// The units a region block of `size` bytes aligned to `alignment` takes when a local cache
/// may serve it (header room as the block offset, at most `limit_bytes`), else null.
fn localUnits(size: usize, alignment: usize, limit_bytes: usize) ?usize {
    if (alignment > header_room or size > limit_bytes) return null;
    std.debug.assert(limit_bytes <= bytes_max); // (so a region block's units, whatever the size)
    const units = large_header.unitsFor(std.mem.alignForward(usize, header_room + @max(size, 1), os.page_size));
    std.debug.assert(units * large_region.unit_size <= bytes_max + large_region.unit_size); // (size <= limit: a unit's rounding more at most)
    return units;
}

/// Units of a live block a local cache may hold, or null (a mapping of its own, an aligned
/// block, or more than `limit_bytes`).
fn localUnitsOf(header: *const LargeHeader, limit_bytes: usize) ?usize {
    std.debug.assert(limit_bytes <= bytes_max);
    if (header.region_units == 0 or header.block_offset != header_room) return null;
    if (header.region_units * large_region.unit_size > limit_bytes) return null;
    std.debug.assert(header.region_units >= 1); // a region block (0: a mapping of its own)
    return header.region_units;
}

/// free into a local cache: the block is freed (a second free finds it freed) but keeps its
/// units and header. False when another thread freed it first. Not counted here: the local
/// cache counts the free, and the block's bytes stay in large.live_bytes while it is held
/// (the limit sees them as demand; stats readers subtract the held bytes).
fn holdLocal(header: *LargeHeader) bool {
    std.debug.assert(header.region_units != 0); // a region block (localUnitsOf): its units stay taken
    const held = @cmpxchgStrong(u64, &header.magic, live_magic, local_magic, .acq_rel, .monotonic) == null;
    std.debug.assert(!held or header.magic == local_magic); // ours: a racing second free's CAS fails
    return held;
}

/// malloc from a local cache: a held block of the same units, live again for `size` bytes
/// (counted by the local cache; live_bytes moves only by a change of its usable size).
fn reviveLocal(header: *LargeHeader, size: usize, zeroed: bool) *anyopaque {
    std.debug.assert(header.magic == local_magic); // held here: no other thread writes it
    std.debug.assert(header.block_offset == header_room);
    const mapped = std.mem.alignForward(usize, header_room + @max(size, 1), os.page_size);
    std.debug.assert(large_header.unitsFor(mapped) == header.region_units);
    const base = @intFromPtr(header);
    if (zeroed) @memset(@as([*]u8, @ptrFromInt(base + header_room))[0..size], 0);
    const old_usable = header.usable_size;
    header.mapped_size = mapped;
    header.usable_size = mapped - header_room;
    @atomicStore(u64, &header.magic, live_magic, .release);
    large_header.assertConsistent(header);
    std.debug.assert(header.usable_size >= size);
    if (header.usable_size > old_usable) {
        stats.addTo(&stats.large.live_bytes, header.usable_size - old_usable);
        large_mappings.noteDemand(os.nowMs());
    } else stats.subFrom(&stats.large.live_bytes, old_usable - header.usable_size);
    return @ptrFromInt(base + header_room);
}

/// A held block goes back to its region (its units free, coalescing; purged along the
/// curve); its bytes leave large.live_bytes now (its free was counted when it was held).
fn releaseLocal(header: *LargeHeader, now_ms: u64) void {
    std.debug.assert(header.magic == local_magic);
    std.debug.assert(header.region_units != 0); // held blocks are region blocks
    @atomicStore(u64, &header.magic, cached_magic, .release);
    stats.subFrom(&stats.large.live_bytes, header.usable_size);
    large.giveBack(header, now_ms);
}


// ---------------------------------------------------------------- tests

const testing = std.testing;
const segment_map = @import("../base/segment_map.zig");

fn liveHeader(addr: usize) !*LargeHeader {
    return switch (large.lookup(addr, segment_map.lookup(addr))) {
        .live => |h| h,
        else => error.TestUnexpectedResult,
    };
}

test "a held block: freed (a second free is seen), taken back by the same units, released on a miss" {
    const now = os.nowMs();
    var local: LocalLarge = .{};
    const size: usize = (2 << 20) + 4096; // 33 units; so is size - 100
    const p = large.alloc(size, 16, false, now) orelse return error.OutOfMemory;
    const addr = @intFromPtr(p);
    try testing.expectEqual(PutResultT.held, local.put(try liveHeader(addr)));
    try testing.expectEqual(large.Lookup.freed, large.lookup(addr, segment_map.lookup(addr)));
    // the same units: the same block, live again, zeroed when asked
    @as([*]u8, @ptrCast(p))[100] = 7;
    const q = local.take(size - 100, 16, true) orelse return error.TestUnexpectedResult;
    try testing.expectEqual(addr, @intFromPtr(q));
    try testing.expectEqual(@as(u8, 0), @as([*]u8, @ptrCast(q))[100]);
    try testing.expectEqual(@as(usize, 0), local.bytes);
    // held again; a miss (other units) sends it back to its region
    try testing.expectEqual(PutResultT.held, local.put(try liveHeader(addr)));
    try testing.expectEqual(PutResultT.freed_already, local.put(@ptrFromInt(addr - 64)));
    try testing.expectEqual(@as(?*anyopaque, null), local.take(3 << 20, 16, false));
    local.releaseAll(now);
    try testing.expectEqual(@as(usize, 0), local.bytes);
    try testing.expectEqual(large.Lookup.freed, large.lookup(addr, segment_map.lookup(addr)));
    large.decay(now, true);
}

test "held bytes stay under the bound: the oldest goes back; decay and release empty it" {
    const now = os.nowMs();
    var local: LocalLarge = .{};
    var blocks: [slots + 2]usize = undefined;
    for (&blocks) |*b| b.* = @intFromPtr(large.alloc(20 << 20, 16, false, now) orelse return error.OutOfMemory);
    for (blocks, 0..) |b, i| {
        local.clock_ms = now + i;
        try testing.expectEqual(PutResultT.held, local.put(try liveHeader(b)));
        try testing.expect(local.bytes <= bytes_max);
    }
    // the first ones went back to their regions: still freed to a lookup
    for (blocks) |b| try testing.expectEqual(large.Lookup.freed, large.lookup(b, segment_map.lookup(b)));
    local.decay(now + blocks.len, false); // not old yet
    try testing.expect(local.bytes != 0);
    local.decay(now + blocks.len + config.purge_delay_ms, false);
    try testing.expectEqual(@as(usize, 0), local.bytes);
    // a block too large to hold, and an aligned one, are not held
    const big = large.alloc(bytes_max + 1, 16, false, now) orelse return error.OutOfMemory;
    try testing.expectEqual(PutResultT.not_held, local.put(try liveHeader(@intFromPtr(big))));
    try testing.expect(large.free(try liveHeader(@intFromPtr(big)), now));
    const aligned = large.alloc(1 << 20, 1 << 20, false, now) orelse return error.OutOfMemory;
    try testing.expectEqual(PutResultT.not_held, local.put(try liveHeader(@intFromPtr(aligned))));
    try testing.expect(large.free(try liveHeader(@intFromPtr(aligned)), now));
    local.releaseAll(now);
    large.decay(now, true);
}

const PutResultT = LocalLarge.PutResult;

test "stats stay exact through held and taken blocks: allocs, frees, live bytes" {
    const now = os.nowMs();
    large.decay(now, true);
    var local: LocalLarge = .{};
    const abi = @import("../abi.zig");
    const l = @intFromEnum(abi.Tier.large) * stats.field_count;
    const F = abi.StatField;
    var before: [stats.value_count]u64 = undefined;
    var sum: stats.BinCounters = .{};
    stats.snapshot(&sum, &before);
    const size: usize = 3 << 20;
    var p = large.alloc(size, 16, false, now) orelse return error.OutOfMemory;
    for (0..10) |_| {
        try testing.expectEqual(PutResultT.held, local.put(try liveHeader(@intFromPtr(p))));
        p = local.take(size, 16, false) orelse return error.TestUnexpectedResult;
    }
    try testing.expectEqual(PutResultT.held, local.put(try liveHeader(@intFromPtr(p))));
    var after: [stats.value_count]u64 = undefined;
    sum = .{};
    local.addCountersInto(&sum);
    stats.snapshot(&sum, &after);
    try testing.expectEqual(before[l + F.allocs.index()] + 11, after[l + F.allocs.index()]);
    try testing.expectEqual(before[l + F.frees.index()] + 11, after[l + F.frees.index()]);
    try testing.expectEqual(before[l + F.live_bytes.index()], after[l + F.live_bytes.index()]);
    // back in its region: the same totals
    local.releaseAll(now);
    sum = .{};
    local.addCountersInto(&sum);
    stats.snapshot(&sum, &after);
    try testing.expectEqual(before[l + F.frees.index()] + 11, after[l + F.frees.index()]);
    try testing.expectEqual(before[l + F.live_bytes.index()], after[l + F.live_bytes.index()]);
    large.decay(now, true);
}
