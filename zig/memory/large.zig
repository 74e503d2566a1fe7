//! large.zig — the large tier's entry points (alloc, free, lookup, describe, decay, the
//! fork hooks) and where a block goes. Blocks of up to 256 MiB are runs of 64 KiB units in
//! reserved regions (large_region.zig: freed units coalesce and stay resident along the
//! decay curve, so a new block reuses what several freed ones left, without page faults);
//! larger blocks, and those aligned to more than 64 KiB, get one OS mapping each. Called by
//! slow.zig (malloc, free, their lookups and reports), check.zig, purge.zig (decay),
//! process.zig (fork) and large_local.zig (giveBack, for the blocks a thread held).
//!
//! The tier's other files, lowest first:
//!   large_header.zig    the header before every block, and its states (magic)
//!   large_recent.zig    the blocks given back lately (a second free is a double free)
//!   large_resize.zig    realloc in place: region units, or a mapping by mremap
//!   large_mappings.zig  the cache of freed mappings and its decay; the retention limit
//!                       from recent demand (large_cache.zig sizes it), which regions
//!                       and mappings both obey
//!   large_local.zig     a thread's cache of the region blocks it freed lately
//!
//! Locks: none of its own. A region's units are under large_region's lock, the mapping
//! cache and the limit under large_mappings' cache_lock; the fork hooks below take both,
//! cache_lock first.
const std = @import("std");
const os = @import("../base/os.zig");
const config = @import("../settings/config.zig");
const stats = @import("../settings/stats.zig");
const segment_map = @import("../base/segment_map.zig");
const misuse = @import("../settings/misuse.zig");
const large_region = @import("large_region.zig");
const memory_budget = @import("../settings/budget.zig");
const large_header = @import("large_header.zig");
const large_recent = @import("large_recent.zig");
const large_mappings = @import("large_mappings.zig");
const LargeHeader = large_header.LargeHeader;
const header_room = large_header.header_room;
const live_magic = large_header.live_magic;
const cached_magic = large_header.cached_magic;
const local_magic = large_header.local_magic;

const chunk_size = segment_map.chunk_size;
/// Requests above this fail at once with ENOMEM (beyond any real address space).
const size_max: usize = @import("../abi.zig").size_max;

/// `freed`: a block of a cached mapping (freed, not yet reused).
pub const Lookup = union(enum) { live: *LargeHeader, freed, foreign, invalid };

/// Where a block starts past its header's base: the header's room, or the alignment;
/// (4 MiB and more) the chunk after the header's, which the mapping's base is placed for.
fn offsetFor(alignment: usize) usize {
    std.debug.assert(std.math.isPowerOfTwo(alignment));
    if (alignment >= chunk_size) return chunk_size;
    const offset = @max(header_room, alignment);
    std.debug.assert(offset % alignment == 0); // base + offset is aligned where base is
    std.debug.assert(offset >= header_room); // the header fits before the block
    std.debug.assert(offset < chunk_size); // (a region block's offset lies in its first unit or past it)
    return offset;
}

/// A block of `size` bytes aligned to `alignment`; with `zeroed`, its first `size` bytes are 0.
pub fn alloc(size: usize, alignment: usize, zeroed: bool, now_ms: u64) ?*anyopaque {
    const offset = offsetFor(alignment);
    // @max: a zero-byte block still needs one byte inside the mapping, or its
    // address (base + offset) would be the first byte past the end.
    const total = std.math.add(usize, offset, @max(size, 1)) catch return null;
    if (total > size_max) return null;
    const mapped = std.mem.alignForward(usize, total, os.page_size);
    const claimed = std.mem.alignForward(usize, mapped, large_region.unit_size); // as if nothing were reused
    if (!memory_budget.claim(claimed)) return null;
    defer memory_budget.settle(claimed);
    // (a region block starts on a unit boundary: larger alignments need a mapping's 4 MiB)
    if (alignment <= large_region.unit_size and mapped <= large_region.block_bytes_max) {
        var resident: large_region.ResidentMask = undefined;
        if (large_region.alloc(large_header.unitsFor(mapped), if (zeroed) &resident else null, large_recent.rememberPurged)) |span| {
            if (zeroed and span.resident_units != 0) zeroResident(span, &resident, offset, size);
            const p = placeInRegion(span, mapped, offset, now_ms);
            std.debug.assert(@intFromPtr(p) % alignment == 0); // a unit boundary + offset, aligned
            return p;
        }
    }
    const base = (if (alignment < chunk_size) large_mappings.reuseCached(mapped) else null) orelse mapFresh(mapped, alignment, offset) orelse return null;
    const header: *LargeHeader = @ptrFromInt(base);
    const reused = header.magic == cached_magic;
    const mapped_size = if (reused) header.mapped_size else mapped;
    std.debug.assert(mapped_size >= mapped); // a reused mapping holds the block too
    if (reused and zeroed) @memset(@as([*]u8, @ptrFromInt(base + offset))[0..size], 0);
    header.* = .{ .magic = live_magic, .mapped_size = mapped_size, .block_offset = offset, .usable_size = mapped_size - offset };
    large_header.assertConsistent(header);
    std.debug.assert(header.usable_size >= size);
    std.debug.assert((base + offset) % alignment == 0);
    stats.incr(&stats.large.allocs);
    stats.addTo(&stats.large.live_bytes, header.usable_size);
    large_mappings.noteDemand(now_ms);
    return @ptrFromInt(base + offset);
}

/// A block on a run of region units: its header and the counts.
fn placeInRegion(span: large_region.Span, mapped: usize, offset: usize, now_ms: u64) *anyopaque {
    std.debug.assert(span.units == large_header.unitsFor(mapped)); // the run asked for
    std.debug.assert(span.resident_units <= span.units); // (the counts below never go negative)
    std.debug.assert(offset < mapped); // the block has a byte at least inside the run
    const header: *LargeHeader = @ptrFromInt(span.base);
    header.* = .{ .magic = live_magic, .mapped_size = mapped, .block_offset = offset, .usable_size = mapped - offset, .region_units = span.units };
    large_header.assertConsistent(header);
    const unit = large_region.unit_size;
    stats.incr(if (span.resident_units == span.units) &stats.large.cache_hits else &stats.large.cache_misses);
    stats.subFrom(&stats.large.cached_bytes, span.resident_units * unit);
    stats.largeMapped((span.units - span.resident_units) * unit);
    stats.incr(&stats.large.allocs);
    stats.addTo(&stats.large.live_bytes, header.usable_size);
    large_mappings.noteDemand(now_ms);
    return @ptrFromInt(span.base + offset);
}

/// calloc on reused units: clears the block's bytes in the units that may hold old data.
fn zeroResident(span: large_region.Span, resident: *const large_region.ResidentMask, offset: usize, size: usize) void {
    const unit = large_region.unit_size;
    std.debug.assert(span.resident_units > 0); // (only reused units may hold old data)
    std.debug.assert(offset + size <= span.units * unit); // the block lies in its run
    const start = span.base + offset;
    const end = start + size;
    for (0..span.units) |k| {
        if (!large_region.unitResident(resident, k)) continue;
        const lo = @max(start, span.base + k * unit);
        const hi = @min(end, span.base + (k + 1) * unit);
        if (hi > lo) @memset(@as([*]u8, @ptrFromInt(lo))[0 .. hi - lo], 0);
    }
}

/// Purges region units along the decay curve and beyond the limit (all with `force`).
fn trimRegions(now_ms: u64, force: bool) void {
    if (large_region.retainedBytes() == 0) return;
    trimTo(now_ms, large_mappings.regionLimit(now_ms), force);
}

/// free's share: purges only what the limit does not allow (the decay curve is
/// maintenance's, so a malloc/free of one large size does no purge work).
fn trimOverLimit(now_ms: u64) void {
    const limit = large_mappings.regionLimit(now_ms);
    if (large_region.retainedBytes() > limit) trimTo(now_ms, limit, false);
}

fn trimTo(now_ms: u64, limit: usize, force: bool) void {
    const purged = large_region.trim(now_ms, config.purge_delay_ms, limit, force, large_recent.rememberPurged);
    std.debug.assert(purged % large_region.unit_size == 0); // whole units
    if (purged == 0) return;
    stats.subFrom(&stats.large.cached_bytes, purged);
    stats.largePurged(purged);
}

fn mapFresh(mapped: usize, alignment: usize, offset: usize) ?usize {
    std.debug.assert(mapped % os.page_size == 0);
    std.debug.assert(offset < mapped); // the block has a byte at least in the mapping
    stats.incr(&stats.large.cache_misses);
    const base: usize = if (alignment < chunk_size) blk: {
        const memory = os.mapAligned(mapped, chunk_size) orelse return null;
        break :blk @intFromPtr(memory);
    } else blk: {
        const over = std.math.add(usize, mapped, alignment) catch return null;
        const raw = os.map(over) orelse return null;
        const raw_addr = @intFromPtr(raw);
        const b = std.mem.alignForward(usize, raw_addr + offset, alignment) - offset;
        if (b > raw_addr) os.unmap(raw, b - raw_addr);
        const tail = raw_addr + over - (b + mapped);
        if (tail > 0) os.unmap(@ptrFromInt(b + mapped), tail);
        break :blk b;
    };
    std.debug.assert(base % chunk_size == 0); // its header starts the chunk tagged large_head
    std.debug.assert((base + offset) % alignment == 0);
    segment_map.mark(base, mapped, .large_head, .large_tail);
    stats.largeMapped(mapped);
    return base;
}

/// Classifies `addr` in a chunk tagged large_head or large_tail.
pub fn lookup(addr: usize, tag: segment_map.Tag) Lookup {
    std.debug.assert(tag != .segment); // (a segment's pointers have a page)
    std.debug.assert(tag != .none); // (no chunk of hakmem's: large_recent answers)
    if (tag == .large_region) return lookupInRegion(addr);
    const base = if (tag == .large_head) addr & ~(chunk_size - 1) else segment_map.largeHeadOf(addr) orelse return .foreign;
    const header: *LargeHeader = @ptrFromInt(base);
    if (header.magic != live_magic and header.magic != cached_magic) return .foreign;
    if (addr >= base + header.mapped_size) return .foreign;
    if (addr != base + header.block_offset) return .invalid;
    if (header.magic == cached_magic) return .freed;
    return .{ .live = header };
}

/// A pointer into a region (tagged large_region): a live block's start, a freed one's (a
/// double free), or no block (an invalid free: hakmem's memory, not a block start). Inline:
/// free's large path (slow.zig) keeps the answer in registers.
pub inline fn lookupInRegion(addr: usize) Lookup {
    const base = switch (large_region.lookup(addr)) {
        .outside => return .foreign,
        .unused => return if (large_recent.recentlyFreed(addr)) .freed else .invalid,
        .live, .freed => |b| b,
    };
    const header: *LargeHeader = @ptrFromInt(base);
    const magic = @atomicLoad(u64, &header.magic, .monotonic);
    if (magic != live_magic and magic != cached_magic and magic != local_magic) return .invalid;
    if (addr != base + header.block_offset) return .invalid;
    if (magic != live_magic) return .freed;
    return .{ .live = header };
}

/// Tier and size of the large block at `addr` (live, cached or recently unmapped), for a report.
pub fn describe(addr: usize, tag: segment_map.Tag) ?misuse.Where {
    std.debug.assert(tag != .segment); // (slow.describe asks the page)
    if (tag == .none) {
        const size = large_recent.recentlyFreedSize(addr) orelse return null;
        return .{ .tier = "large", .block_size = size };
    }
    const base = switch (tag) {
        .large_head => addr & ~(chunk_size - 1),
        .large_region => switch (large_region.lookup(addr)) {
            .live, .freed => |b| b,
            .outside, .unused => {
                const size = large_recent.recentlyFreedSize(addr) orelse return null;
                return .{ .tier = "large", .block_size = size };
            },
        },
        else => segment_map.largeHeadOf(addr) orelse return null,
    };
    const header: *LargeHeader = @ptrFromInt(base);
    if (header.magic != live_magic and header.magic != cached_magic and header.magic != local_magic) return null;
    return .{ .tier = "large", .block_size = header.usable_size };
}

/// Frees a live large block. False when another thread freed it first (both found it live:
/// a double free racing itself); the block is then left to that thread.
pub fn free(header: *LargeHeader, now_ms: u64) bool {
    if (@cmpxchgStrong(u64, &header.magic, live_magic, cached_magic, .acq_rel, .monotonic) != null) return false;
    large_header.assertConsistent(header); // (ours alone now: no other free gets past the CAS)
    countFree(header);
    giveBack(header, now_ms);
    return true;
}

fn countFree(header: *const LargeHeader) void {
    std.debug.assert(header.magic == cached_magic); // counted once, by the free that won the CAS
    std.debug.assert(header.usable_size > 0); // what alloc added to live_bytes
    stats.incr(&stats.large.frees);
    stats.subFrom(&stats.large.live_bytes, header.usable_size);
}

/// A freed block's memory back to the tier: its region units, or its mapping to the cache
/// (or the OS). Also large_local.zig's, for a block a thread held.
pub fn giveBack(header: *LargeHeader, now_ms: u64) void {
    std.debug.assert(header.magic == cached_magic); // freed (free's CAS, or releaseLocal's store)
    const base = @intFromPtr(header);
    if (header.region_units != 0) {
        const units = header.region_units;
        large_region.free(base, units, now_ms);
        stats.addTo(&stats.large.cached_bytes, units * large_region.unit_size);
        stats.largeRegionFreed();
        trimOverLimit(now_ms); // (a free never raises the peak: no noteDemand)
        return;
    }
    const mapped = header.mapped_size;
    if (header.block_offset < chunk_size and large_mappings.putCached(base, mapped, now_ms)) return;
    large_mappings.unmap(base, mapped);
}

/// Purges region units and unmaps cached mappings along the decay curve (decay.zig),
/// oldest first; all with `force`.
pub fn decay(now_ms: u64, force: bool) void {
    std.debug.assert(now_ms < std.math.maxInt(u64) / 2); // a clock in ms: deadlines after it never wrap
    trimRegions(now_ms, force);
    large_mappings.decay(now_ms, force);
}

// fork (process.zig): every lock of the tier, in order: large_mappings' cache_lock, then
// large_region's lock (large_local.zig has none: a heap's is its thread's).

pub fn resetLockInChild() void {
    large_mappings.resetLockInChild();
    large_region.resetLockInChild();
}

pub fn lockForFork() void {
    large_mappings.lockForFork();
    large_region.lockForFork();
}

pub fn unlockAfterFork() void {
    large_region.unlockAfterFork();
    large_mappings.unlockAfterFork();
}
// ---------------------------------------------------------------- tests

const testing = std.testing;
const resize = @import("large_resize.zig").resize;
const large_move = @import("large_move.zig");

fn liveHeader(addr: usize) !*LargeHeader {
    return switch (lookup(addr, segment_map.lookup(addr))) {
        .live => |h| h,
        else => error.TestUnexpectedResult,
    };
}

test "a large block in a region: live, resized with its bytes, freed (a second free is seen), reused zeroed" {
    const now = os.nowMs();
    const size: usize = 5 << 20;
    const p: [*]u8 = @ptrCast(alloc(size, 16, false, now) orelse return error.OutOfMemory);
    const addr = @intFromPtr(p);
    try testing.expect(addr % 16 == 0);
    try testing.expectEqual(segment_map.Tag.large_region, segment_map.lookup(addr));
    const h = try liveHeader(addr);
    try testing.expect(h.usable_size >= size);
    try testing.expectEqual(Lookup.invalid, lookup(addr + 4096, segment_map.lookup(addr + 4096)));
    @memset(p[0..size], 0xAB);
    // shrink, then grow again onto the units it gave back: the bytes stay
    const q: [*]u8 = @ptrCast(resize(h, size / 2) orelse return error.OutOfMemory);
    try testing.expectEqual(@as(u8, 0xAB), q[size / 2 - 1]);
    const r: [*]u8 = @ptrCast(resize(try liveHeader(@intFromPtr(q)), size) orelse return error.OutOfMemory);
    try testing.expectEqual(@as(u8, 0xAB), r[0]);
    try testing.expectEqual(@as(u8, 0xAB), r[size / 2 - 1]);
    const hr = try liveHeader(@intFromPtr(r));
    try testing.expect(hr.usable_size >= size);
    try testing.expect(free(hr, now));
    try testing.expectEqual(Lookup.freed, lookup(@intFromPtr(r), segment_map.lookup(@intFromPtr(r))));
    // a zeroed block of a size near it: zero wherever it lands (reused units are cleared)
    const z: [*]u8 = @ptrCast(alloc(size / 2, 16, true, now) orelse return error.OutOfMemory);
    try testing.expectEqual(@as(u8, 0), z[0]);
    try testing.expectEqual(@as(u8, 0), z[size / 2 - 1]);
    try testing.expect(free(try liveHeader(@intFromPtr(z)), now));
    decay(now, true);
}

test "a large block aligned to 4 MiB or more starts a chunk past its header" {
    const now = os.nowMs();
    const p = alloc(100, 8 << 20, false, now) orelse return error.OutOfMemory;
    const addr = @intFromPtr(p);
    try testing.expect(addr % (8 << 20) == 0);
    const h = try liveHeader(addr);
    try testing.expectEqual(chunk_size, h.block_offset);
    try testing.expectEqual(segment_map.Tag.large_tail, segment_map.lookup(addr));
    try testing.expect(free(h, now)); // not cached (alignment >= 4 MiB): unmapped at once
    try testing.expectEqual(segment_map.Tag.none, segment_map.lookup(addr));
    try testing.expect(large_recent.recentlyFreed(addr)); // a second free is a double free, not a foreign pointer
}

test "a large block freed and allocated again at one size reuses its memory, purging nothing" {
    // Regression: the limit counted bytes, a block takes whole units, so each free purged the
    // block's last unit (page faults on every malloc of that size: 8 MiB pairs took 3.6 us).
    const now = os.nowMs();
    decay(now, true);
    for ([_]usize{ (1 << 20) + 1, 8 << 20 }) |size| {
        const first = alloc(size, 16, false, now) orelse return error.OutOfMemory;
        try testing.expect(free(try liveHeader(@intFromPtr(first)), now));
        const hits_before = stats.large.cache_hits.load(.monotonic);
        const purges_before = stats.tiers[2].purges.load(.monotonic);
        for (0..20) |_| {
            const p = alloc(size, 16, false, now) orelse return error.OutOfMemory;
            try testing.expectEqual(@intFromPtr(first), @intFromPtr(p));
            try testing.expect(free(try liveHeader(@intFromPtr(p)), now));
        }
        try testing.expectEqual(hits_before + 20, stats.large.cache_hits.load(.monotonic));
        try testing.expectEqual(purges_before, stats.tiers[2].purges.load(.monotonic));
    }
    decay(now, true);
}

/// A size whose region block takes exactly `units` units (header included).
fn sizeOfUnits(units: usize) usize {
    return units * large_region.unit_size - header_room;
}

/// A region block of `units` units, every page written (resident).
fn touchedBlock(units: usize, now_ms: u64) ![*]u8 {
    const p: [*]u8 = @ptrCast(alloc(sizeOfUnits(units), 16, false, now_ms) orelse return error.OutOfMemory);
    var at: usize = 0;
    while (at < sizeOfUnits(units)) : (at += os.page_size) p[at] = 1;
    return p;
}

test "a block larger than every freed run is made of their pages: resident before it is touched, nothing new mapped" {
    // Regression: freed resident units in runs too short for the next block stayed idle
    // while the block faulted in fresh pages (bench large_blocks: 163 MiB of fresh units for a
    // peak of 114 MiB live, page faults nearly all of its time).
    if (!large_move.available()) return error.SkipZigTest; // (a kernel before Linux 5.7)
    const now = os.nowMs();
    decay(now, true);
    var blocks: [6][*]u8 = undefined;
    for (&blocks) |*b| b.* = try touchedBlock(4, now);
    // every other one freed: runs of 4 resident units, a live block between each two
    for (blocks, 0..) |b, i| {
        if (i % 2 == 0) try testing.expect(free(try liveHeader(@intFromPtr(b)), now));
    }
    const mapped_before = stats.tiers[2].mapped_bytes.load(.monotonic);
    const hits_before = stats.large.cache_hits.load(.monotonic);
    const big: [*]u8 = @ptrCast(alloc(sizeOfUnits(12), 16, false, now) orelse return error.OutOfMemory);
    const base = @intFromPtr(big) - header_room;
    try testing.expectEqual(12 * large_region.unit_size, os.residentBytes(base, 12 * large_region.unit_size));
    try testing.expectEqual(mapped_before, stats.tiers[2].mapped_bytes.load(.monotonic));
    try testing.expectEqual(hits_before + 1, stats.large.cache_hits.load(.monotonic)); // every unit resident
    // the freed blocks whose pages moved into it are still freed blocks to a second free
    // (the one it was placed over is inside it now: no block starts there)
    for (blocks, 0..) |b, i| {
        const addr = @intFromPtr(b);
        const inside = addr >= base and addr < base + 12 * large_region.unit_size;
        const expected: Lookup = if (inside) .invalid else .freed;
        if (i % 2 == 0) try testing.expectEqual(expected, lookup(addr, segment_map.lookup(addr)));
    }
    try large_region.validate();
    try testing.expect(free(try liveHeader(@intFromPtr(big)), now));
    for (blocks, 0..) |b, i| {
        if (i % 2 == 1) try testing.expect(free(try liveHeader(@intFromPtr(b)), now));
    }
    decay(now, true);
}

test "a region block that cannot grow where it stands moves with its pages: bytes kept, old address freed" {
    if (!large_move.available()) return error.SkipZigTest; // (a kernel before Linux 5.7)
    const now = os.nowMs();
    decay(now, true);
    // the only resident run: the next blocks go to its start, side by side
    const run = try touchedBlock(30, now);
    try testing.expect(free(try liveHeader(@intFromPtr(run)), now));
    const a = try touchedBlock(8, now);
    const after = try touchedBlock(2, now); // a live block after it: no growing in place
    const old_base = @intFromPtr(a) - header_room;
    try testing.expectEqual(old_base + 8 * large_region.unit_size, @intFromPtr(after) - header_room);
    for (0..sizeOfUnits(8)) |i| a[i] = @truncate(i *% 7);
    const grown: [*]u8 = @ptrCast(resize(try liveHeader(@intFromPtr(a)), sizeOfUnits(20)) orelse return error.OutOfMemory);
    try testing.expect(grown != a);
    for (0..sizeOfUnits(8)) |i| try testing.expectEqual(@as(u8, @truncate(i *% 7)), grown[i]);
    try testing.expect((try liveHeader(@intFromPtr(grown))).usable_size >= sizeOfUnits(20));
    // moved, not copied: the old units hold no pages; a free of the old address is a double free
    try testing.expectEqual(@as(usize, 0), os.residentBytes(old_base, 8 * large_region.unit_size));
    try testing.expectEqual(Lookup.freed, lookup(@intFromPtr(a), segment_map.lookup(@intFromPtr(a))));
    try large_region.validate();
    try testing.expect(free(try liveHeader(@intFromPtr(grown)), now));
    try testing.expect(free(try liveHeader(@intFromPtr(after)), now));
    decay(now, true);
}

test "two frees racing for one large block: one frees it, the other learns it was freed" {
    // Two threads can both find a block live before either frees it (a double free racing
    // itself); the second must not free it again (its units may already hold a new block).
    const now = os.nowMs();
    const p = alloc(3 << 20, 16, false, now) orelse return error.OutOfMemory;
    const h = try liveHeader(@intFromPtr(p)); // what both threads' lookups returned
    const frees_before = stats.large.frees.load(.monotonic);
    try testing.expect(free(h, now));
    try testing.expect(!free(h, now));
    try testing.expectEqual(frees_before + 1, stats.large.frees.load(.monotonic));
    decay(now, true);
}
