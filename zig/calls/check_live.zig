//! check_live.zig — check mode's table of live large blocks: their user pointers (what the
//! sweep, hak_check_heap and the one at exit, walks) and, beside each, where it was
//! allocated (a call site, check_sites.zig). (Page blocks have a record beside them
//! instead: check_side.zig.)
//!
//! 64 shards by the pointer's hash, each an open-addressing table with its own lock: a
//! malloc and a free take one shard's lock (one thread's calls rarely meet another's there;
//! a single lock for the whole table was taken by every call of every thread).
//! Tables are mapped memory (never malloc), doubled at half load.
const std = @import("std");
const os = @import("../base/os.zig");
const Lock = @import("../base/lock.zig").Lock;

pub const shard_count = 64;
const shard_bits = 6;
comptime {
    std.debug.assert(@as(usize, 1) << shard_bits == shard_count);
}
const initial_capacity = 64;

const Slot = struct { key: usize, site: u64 };
const empty: usize = 0;

fn hashOf(key: usize) u64 {
    return (key >> 4) *% 0x9E37_79B9_7F4A_7C15;
}

/// Linear probing; a removal shifts the entries after it back (Knuth's algorithm R), so
/// there are no tombstones: a table that only churns never grows (with tombstones one
/// kept doubling, or rebuilt itself with a syscall every few calls).
const Table = struct {
    slots: ?[*]Slot = null,
    capacity: usize = 0,
    live: usize = 0,

    fn home(self: *const Table, key: usize) usize {
        std.debug.assert(std.math.isPowerOfTwo(self.capacity)); // the mask is capacity - 1
        // (the top bits chose the shard: the table indexes by the bits below them)
        return @as(usize, @truncate(hashOf(key) >> (64 - shard_bits - 32))) & (self.capacity - 1);
    }

    /// False when the table could not grow (out of memory): `key` is not in it.
    fn insert(self: *Table, key: usize, site: u64) bool {
        std.debug.assert(key != empty);
        if ((self.live + 1) * 2 > self.capacity) self.grow() catch return false;
        const slots = self.slots.?;
        var i = self.home(key);
        var probes: usize = 0;
        while (probes < self.capacity) : (probes += 1) {
            if (slots[i].key == empty) {
                self.live += 1;
                slots[i] = .{ .key = key, .site = site };
                std.debug.assert(self.live * 2 <= self.capacity); // at most half full
                return true;
            }
            if (slots[i].key == key) {
                slots[i].site = site;
                return true;
            }
            i = (i + 1) & (self.capacity - 1);
        }
        unreachable; // below half load there is an empty slot
    }

    fn indexOf(self: *const Table, key: usize) ?usize {
        std.debug.assert(key != empty); // (empty marks a free slot)
        std.debug.assert(self.live * 2 <= self.capacity); // at most half full: a probe ends at an empty slot
        const slots = self.slots orelse return null;
        var i = self.home(key);
        var probes: usize = 0;
        while (probes < self.capacity and slots[i].key != empty) : (probes += 1) {
            if (slots[i].key == key) return i;
            i = (i + 1) & (self.capacity - 1);
        }
        return null;
    }

    /// Removes `key`; its site (null when it was not in the table).
    fn remove(self: *Table, key: usize) ?u64 {
        var hole = self.indexOf(key) orelse return null;
        const slots = self.slots.?;
        std.debug.assert(slots[hole].key == key);
        std.debug.assert(self.live > 0); // (it holds this key)
        const site = slots[hole].site;
        const mask = self.capacity - 1;
        var j = hole;
        var probes: usize = 0;
        while (probes < self.capacity) : (probes += 1) {
            j = (j + 1) & mask;
            if (slots[j].key == empty) break;
            // an entry may fill the hole when its home is not cyclically in (hole, j]
            const h = self.home(slots[j].key);
            if ((j -% h) & mask >= (j -% hole) & mask) {
                slots[hole] = slots[j];
                hole = j;
            }
        }
        slots[hole] = .{ .key = empty, .site = 0 };
        self.live -= 1;
        // gone, and every other key still found from its home (a probe: not in ReleaseFast)
        if (std.debug.runtime_safety) std.debug.assert(self.indexOf(key) == null);
        return site;
    }

    fn find(self: *const Table, key: usize) ?u64 {
        const i = self.indexOf(key) orelse return null;
        std.debug.assert(i < self.capacity);
        return self.slots.?[i].site;
    }

    fn grow(self: *Table) error{OutOfMemory}!void {
        const old_live = self.live;
        const new_capacity = @max(initial_capacity, self.capacity * 2);
        std.debug.assert(std.math.isPowerOfTwo(new_capacity));
        std.debug.assert((old_live + 1) * 2 <= new_capacity); // room for the insert that asked
        const mem = os.map(new_capacity * @sizeOf(Slot)) orelse return error.OutOfMemory;
        const old = self.slots;
        const old_capacity = self.capacity;
        self.slots = @ptrCast(@alignCast(mem));
        self.capacity = new_capacity;
        self.live = 0;
        if (old) |o| {
            for (o[0..old_capacity]) |s| {
                if (s.key == empty) continue;
                const fits = self.insert(s.key, s.site); // room for all: no growth
                std.debug.assert(fits);
            }
            os.unmap(@ptrCast(o), old_capacity * @sizeOf(Slot));
        }
        std.debug.assert(self.live == old_live); // every key moved, none lost or doubled
    }
};

const Shard = struct {
    lock: Lock = .{},
    table: Table = .{},
};

var shards: [shard_count]Shard align(64) = [_]Shard{.{}} ** shard_count;

fn shardOf(key: usize) *Shard {
    std.debug.assert(key != empty);
    return &shards[@intCast(hashOf(key) >> (64 - shard_bits))];
}

/// A block handed out at `user`, allocated at `site`. False: out of memory, not recorded.
pub fn insert(user: usize, site: u64) bool {
    std.debug.assert(user % 16 == 0); // a user pointer check.zig handed out (malloc's alignment)
    const s = shardOf(user);
    s.lock.acquire();
    defer s.lock.release();
    return s.table.insert(user, site);
}

/// The block at `user` is freed; where it was allocated (null: it was not in the table).
pub fn remove(user: usize) ?u64 {
    const s = shardOf(user);
    s.lock.acquire();
    defer s.lock.release();
    return s.table.remove(user);
}

/// Where the live block at `user` was allocated; null when it is no live block.
pub fn siteOf(user: usize) ?u64 {
    const s = shardOf(user);
    s.lock.acquire();
    defer s.lock.release();
    return s.table.find(user);
}

/// siteOf without waiting (the fault handler: the shard's holder may be the faulting
/// thread); null when the shard's lock is held too.
pub fn trySiteOf(user: usize) ?u64 {
    const s = shardOf(user);
    if (!s.lock.tryAcquire()) return null;
    defer s.lock.release();
    return s.table.find(user);
}

/// Calls `visit(context, user, site)` for every live block, one shard at a time under its
/// lock (a block allocated or freed meanwhile in another shard may or may not be seen).
/// Bounded by the tables' capacities.
pub fn forEach(context: anytype, comptime visit: fn (@TypeOf(context), usize, u64) void) void {
    for (&shards) |*s| {
        s.lock.acquire();
        defer s.lock.release();
        const slots = s.table.slots orelse continue;
        var seen: usize = 0;
        for (slots[0..s.table.capacity]) |slot| {
            if (slot.key == empty) continue;
            visit(context, slot.key, slot.site);
            seen += 1;
        }
        std.debug.assert(seen == s.table.live); // the count is the keys held (under its lock)
    }
}

/// fork: every shard's lock is held across it (check.zig's handlers), and reset in the child.
pub fn lockAll() void {
    for (&shards) |*s| s.lock.acquire();
    std.debug.assert(shards[shard_count - 1].lock.isHeld()); // every one, the last included
}
pub fn unlockAll() void {
    for (&shards) |*s| s.lock.release();
}
pub fn resetLocksInChild() void {
    for (&shards) |*s| s.lock.resetInChild();
    std.debug.assert(!shards[0].lock.isHeld()); // the child's own, free
}

test "a table inserts, finds room again after removals, grows, and keeps the sites" {
    var t: Table = .{};
    for (1..5000) |i| try std.testing.expect(t.insert(i * 16, i));
    for (1..2500) |i| try std.testing.expectEqual(@as(?u64, i), t.remove(i * 16));
    for (5000..7000) |i| try std.testing.expect(t.insert(i * 16, i));
    var count: usize = 0;
    for (t.slots.?[0..t.capacity]) |s| {
        if (s.key != empty) {
            count += 1;
            try std.testing.expectEqual(@as(u64, s.key / 16), s.site);
        }
    }
    try std.testing.expectEqual(@as(usize, 4500), count);
    try std.testing.expectEqual(@as(usize, 4500), t.live);
    try std.testing.expectEqual(@as(?u64, null), t.find(16));
    try std.testing.expectEqual(@as(?u64, 3000), t.find(3000 * 16));
    try std.testing.expectEqual(@as(?u64, null), t.remove(16));
    os.unmap(@ptrCast(t.slots.?), t.capacity * @sizeOf(Slot));
}

test "a table that only churns keeps its size" {
    var t: Table = .{};
    for (0..200_000) |i| {
        try std.testing.expect(t.insert((i + 2) * 16, i));
        if (i >= 100) try std.testing.expectEqual(@as(?u64, i - 100), t.remove((i - 100 + 2) * 16));
    }
    try std.testing.expectEqual(@as(usize, 100), t.live);
    try std.testing.expectEqual(@as(usize, 256), t.capacity); // 101 live at most: never grown past twice that
    os.unmap(@ptrCast(t.slots.?), t.capacity * @sizeOf(Slot));
}

test "random inserts and removals: every key still in the table is found, no other" {
    var t: Table = .{};
    var present = [_]bool{false} ** 3000;
    var rng = std.Random.DefaultPrng.init(21);
    for (0..100_000) |_| {
        const k = rng.random().uintLessThan(usize, present.len);
        const key = (k + 1) * 32;
        if (present[k]) {
            try std.testing.expectEqual(@as(?u64, k), t.remove(key));
        } else {
            try std.testing.expect(t.insert(key, k));
        }
        present[k] = !present[k];
    }
    var live: usize = 0;
    for (present, 0..) |p, k| {
        try std.testing.expectEqual(if (p) @as(?u64, k) else null, t.find((k + 1) * 32));
        if (p) live += 1;
    }
    try std.testing.expectEqual(live, t.live);
    os.unmap(@ptrCast(t.slots.?), t.capacity * @sizeOf(Slot));
}

test "the shards spread neighbouring blocks" {
    var seen = [_]bool{false} ** shard_count;
    for (0..4096) |i| seen[@intCast(hashOf(0x7f00_0000_0000 + i * 48) >> (64 - shard_bits))] = true;
    for (seen) |s| try std.testing.expect(s);
}
