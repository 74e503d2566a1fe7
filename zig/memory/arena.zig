//! arena.zig — where segments come from and where they wait: fresh mappings from the OS,
//! the cache of empty segments (kept dirty for quick reuse, unmapped along the decay curve
//! or beyond the retention bound), and the list of segments abandoned by exited threads
//! (adopted by the next thread that needs pages). Each list has its own lock; only slow
//! paths come here.
const std = @import("std");
const os = @import("../base/os.zig");
const config = @import("../settings/config.zig");
const stats = @import("../settings/stats.zig");
const segment_map = @import("../base/segment_map.zig");
const segment_mod = @import("segment.zig");
const Lock = @import("../base/lock.zig").Lock;
const decay_mod = @import("../base/decay.zig");
const budget = @import("../settings/budget.zig");
const Segment = segment_mod.Segment;
const SegmentList = segment_mod.SegmentList;
const segment_size = segment_mod.segment_size;

pub var cache_lock: Lock = .{};
var cache: SegmentList = .{};
pub var abandoned_lock: Lock = .{};
var abandoned: SegmentList = .{};

/// An empty segment for a new owner: the most recently cached one, or a new mapping.
pub fn acquire(owner: *anyopaque) ?*Segment {
    cache_lock.acquire();
    const cached = cache.pop();
    cache_lock.release();
    const seg = cached orelse mapSegment() orelse return null;
    std.debug.assert(seg.owner.load(.monotonic) == null); // a cached or new segment is nobody's
    std.debug.assert(seg.used_pages == 0 and seg.free_slices == segment_mod.usable_slices);
    seg.owner.store(owner, .release);
    return seg;
}

fn mapSegment() ?*Segment {
    if (!budget.claim(segment_size)) return null;
    defer budget.settle(segment_size);
    const memory = os.mapAligned(segment_size, segment_size) orelse return null;
    std.debug.assert(@intFromPtr(memory) % segment_size == 0);
    const seg: *Segment = @ptrCast(@alignCast(memory));
    seg.initHeader(0);
    std.debug.assert(seg.dirty_slices == 0); // fresh memory: nothing resident yet
    segment_map.mark(@intFromPtr(seg), segment_size, .segment, .segment);
    stats.incr(&stats.segments_mapped);
    stats.addTo(&stats.os_mapped_bytes, segment_size);
    return seg;
}

fn unmapSegment(seg: *Segment) void {
    std.debug.assert(seg.used_pages == 0 and seg.owner.load(.monotonic) == null);
    std.debug.assert(seg.dirty_mid_slices & ~seg.dirty_slices == 0); // mid's dirty slices are among them
    const purged = seg.dirtyBytes();
    const mid_bytes = @as(usize, @popCount(seg.dirty_mid_slices)) * (segment_size / segment_mod.slice_count);
    stats.purged(0, purged - mid_bytes);
    stats.purged(1, mid_bytes);
    segment_map.clear(@intFromPtr(seg), segment_size);
    os.unmap(@ptrCast(seg), segment_size);
    stats.decr(&stats.segments_mapped);
    stats.subFrom(&stats.os_mapped_bytes, segment_size);
}

/// An owner gives back a segment with no page in use.
pub fn release(seg: *Segment, now_ms: u64) void {
    std.debug.assert(seg.used_pages == 0);
    std.debug.assert(seg.owner.load(.monotonic) != null); // an owner gives it back, once
    std.debug.assert(segment_map.lookup(@intFromPtr(seg)) == .segment);
    seg.owner.store(null, .release);
    const keep = seg.dirty_slices;
    seg.initHeader(keep);
    seg.dirty_mid_slices = 0;
    seg.cached_since_ms = now_ms;
    var evicted: ?*Segment = null;
    cache_lock.acquire();
    cache.push(seg);
    if (cache.count * segment_size > config.retain_max_bytes) {
        evicted = cache.last();
        if (evicted) |e| cache.remove(e);
    }
    cache_lock.release();
    if (evicted) |e| unmapSegment(e);
}

/// Unmaps cached segments along the decay curve (decay.zig), oldest first; all with
/// `force`. Bounded: at most the cache's length, twice.
pub fn decay(now_ms: u64, force: bool) void {
    decayAbandoned(now_ms, force);
    if (@atomicLoad(usize, &cache.count, .monotonic) == 0) return;
    var tally: decay_mod.Tally = .{};
    cache_lock.acquire();
    var it = cache.first;
    var seen: usize = 0;
    while (it) |seg| : (it = seg.next) {
        seen += 1;
        std.debug.assert(seen <= cache.count);
        tally.add(segment_size, seg.cached_since_ms, now_ms, config.purge_delay_ms);
    }
    std.debug.assert(seen == cache.count); // the walk saw the whole list
    cache_lock.release();
    for (0..seen) |_| {
        cache_lock.acquire();
        const oldest = cache.last();
        const expired = if (oldest != null) force or tally.release(segment_size) else false;
        if (expired) cache.remove(oldest.?);
        cache_lock.release();
        if (!expired) return;
        unmapSegment(oldest.?);
    }
}

/// Cached segments purged at most per trimCachedDirty call.
const trim_cached_max = 16;

/// Purges the dirty slices of the cached segments beyond the first (newest) `keep_bytes`
/// of them: at a thread's exit, what the next threads find resident stays bounded even if
/// no maintenance runs again (heap.park). A purged segment waits behind the others (the
/// resident ones are taken first). Bounded by the cache's length and trim_cached_max.
pub fn trimCachedDirty(keep_bytes: usize) void {
    if (@atomicLoad(usize, &cache.count, .monotonic) == 0) return;
    var taken: [trim_cached_max]*Segment = undefined;
    var count: usize = 0;
    var kept: usize = 0;
    cache_lock.acquire();
    var it = cache.first;
    var seen: usize = 0;
    while (it) |seg| : (it = seg.next) {
        seen += 1;
        std.debug.assert(seen <= cache.count);
        if (seg.dirty_slices == 0) continue;
        if (kept + seg.dirtyBytes() <= keep_bytes) {
            kept += seg.dirtyBytes();
        } else if (count < taken.len) {
            taken[count] = seg;
            count += 1;
        }
    }
    std.debug.assert(seen == cache.count and count <= trim_cached_max);
    for (taken[0..count]) |seg| cache.remove(seg);
    cache_lock.release();
    for (taken[0..count]) |seg| {
        std.debug.assert(seg.owner.load(.monotonic) == null and seg.used_pages == 0);
        seg.purge(); // no longer in the cache: nobody can take it
    }
    cache_lock.acquire();
    for (taken[0..count]) |seg| cache.pushBack(seg);
    cache_lock.release();
}

/// Abandoned segments keep their dirty (empty, resident) slices, so the thread that adopts
/// one soon reuses them without page faults; nobody else purges them, so this does, once
/// they have been dirty for the decay time (everything with `force`). Bounded by the
/// list's length; the list lock keeps adopters out meanwhile.
fn decayAbandoned(now_ms: u64, force: bool) void {
    if (@atomicLoad(?*Segment, &abandoned.first, .monotonic) == null) return;
    abandoned_lock.acquire();
    defer abandoned_lock.release();
    var it = abandoned.first;
    var seen: usize = 0;
    while (it) |seg| : (it = seg.next) {
        seen += 1;
        std.debug.assert(seen <= abandoned.count);
        std.debug.assert(seg.owner.load(.monotonic) == null); // the list lock keeps adopters out
        if (seg.dirty_slices == 0) continue;
        if (!force and now_ms -| seg.dirty_since_ms < config.purge_delay_ms) continue;
        seg.purge();
    }
    std.debug.assert(seen == abandoned.count);
}

/// A heap whose thread exits leaves a segment that still has blocks in use (with what dirty
/// slices its exit kept for the next owner: placement.abandonAll, decayAbandoned).
pub fn abandon(seg: *Segment) void {
    std.debug.assert(seg.used_pages != 0); // an empty one goes to the cache (release)
    std.debug.assert(seg.owner.load(.monotonic) != null);
    seg.owner.store(null, .release);
    abandoned_lock.acquire();
    abandoned.push(seg);
    abandoned_lock.release();
    stats.incr(&stats.segments_abandoned);
}

pub fn popAbandoned(owner: *anyopaque) ?*Segment {
    if (@atomicLoad(?*Segment, &abandoned.first, .monotonic) == null) return null;
    abandoned_lock.acquire();
    const seg = abandoned.pop();
    abandoned_lock.release();
    const s = seg orelse return null;
    std.debug.assert(s.owner.load(.monotonic) == null);
    std.debug.assert(s.used_pages != 0); // abandoned with blocks in use
    s.owner.store(owner, .release);
    stats.incr(&stats.segments_adopted);
    return s;
}

pub fn cachedCount() usize {
    cache_lock.acquire();
    defer cache_lock.release();
    return cache.count;
}

pub fn resetLocksInChild() void {
    cache_lock.resetInChild();
    abandoned_lock.resetInChild();
}

// ---------------------------------------------------------------- tests

const testing = std.testing;

test "a segment: acquired, cached, reused first, unmapped by decay" {
    const saved_retain = config.retain_max_bytes;
    config.retain_max_bytes = 1 << 30;
    defer config.retain_max_bytes = saved_retain;
    var owner_a: u8 = 0;
    var owner_b: u8 = 0;
    const seg = acquire(&owner_a) orelse return error.OutOfMemory;
    try testing.expectEqual(@as(?*anyopaque, &owner_a), seg.owner.load(.monotonic));
    try testing.expectEqual(segment_map.Tag.segment, segment_map.lookup(@intFromPtr(seg) + 12345));
    try seg.validate();
    const cached = cachedCount();
    release(seg, os.nowMs());
    try testing.expectEqual(@as(?*anyopaque, null), seg.owner.load(.monotonic));
    try testing.expectEqual(cached + 1, cachedCount());
    const again = acquire(&owner_b) orelse return error.OutOfMemory;
    try testing.expectEqual(seg, again); // the most recently cached comes back first
    try testing.expectEqual(@as(?*anyopaque, &owner_b), again.owner.load(.monotonic));
    release(again, os.nowMs());
    decay(os.nowMs(), true);
    try testing.expectEqual(@as(usize, 0), cachedCount());
    try testing.expectEqual(segment_map.Tag.none, segment_map.lookup(@intFromPtr(seg)));
}

test "an abandoned segment is adopted by the next owner" {
    var owner_a: u8 = 0;
    var owner_b: u8 = 0;
    const seg = acquire(&owner_a) orelse return error.OutOfMemory;
    var reused: usize = 0;
    const page = seg.allocPage(@import("../settings/size_class.zig").tinyBin(64), 1, false, &reused).?; // abandoned: blocks in use
    const adopted_before = stats.segments_adopted.load(.monotonic);
    abandon(seg);
    try testing.expectEqual(@as(?*anyopaque, null), seg.owner.load(.monotonic));
    try testing.expectEqual(seg, popAbandoned(&owner_b).?);
    try testing.expectEqual(@as(?*anyopaque, &owner_b), seg.owner.load(.monotonic));
    try testing.expectEqual(adopted_before + 1, stats.segments_adopted.load(.monotonic));
    seg.freePage(page, os.nowMs());
    release(seg, os.nowMs());
    decay(os.nowMs(), true);
}

// ---------------------------------------------------------------- validation

pub const Invalid = error{ ListLinksBroken, ListCountWrong, CachedSegmentOwned, CachedSegmentInUse, AbandonedSegmentOwned, AbandonedSegmentEmpty, SegmentNotMapped } || Segment.Invalid;

/// Checks the arena's two lists, each under its lock: links (prev of each is the one
/// before), counts, every segment 4 MiB aligned and tagged a segment in segment_map, and
/// owned by nobody; a cached segment has no page in use (and a valid header:
/// Segment.validate), an abandoned one has some (its pages are not looked at: their
/// blocks may be freed by any thread meanwhile). Bounded by each list's count.
pub fn validate() Invalid!void {
    cache_lock.acquire();
    const cached = validateList(&cache, true);
    cache_lock.release();
    try cached;
    abandoned_lock.acquire();
    const left = validateList(&abandoned, false);
    abandoned_lock.release();
    try left;
}

fn validateList(list: *const SegmentList, is_cache: bool) Invalid!void {
    var prev: ?*Segment = null;
    var it = list.first;
    var n: usize = 0;
    while (it) |seg| : (it = seg.next) {
        n += 1;
        if (n > list.count) return error.ListCountWrong;
        if (seg.prev != prev) return error.ListLinksBroken;
        if (@intFromPtr(seg) % segment_size != 0 or segment_map.lookup(@intFromPtr(seg)) != .segment) return error.SegmentNotMapped;
        if (seg.owner.load(.monotonic) != null) return if (is_cache) error.CachedSegmentOwned else error.AbandonedSegmentOwned;
        if (is_cache) {
            if (seg.used_pages != 0) return error.CachedSegmentInUse;
            try seg.validate();
        } else if (seg.used_pages == 0) return error.AbandonedSegmentEmpty;
        prev = seg;
    }
    if (n != list.count) return error.ListCountWrong;
}

test "validate: the lists as the arena keeps them, and a broken count is caught" {
    var owner: u8 = 0;
    try validate();
    const seg = acquire(&owner) orelse return error.OutOfMemory;
    release(seg, os.nowMs());
    try validate();
    cache_lock.acquire();
    cache.count += 1;
    const broken = validateList(&cache, true);
    cache.count -= 1;
    cache_lock.release();
    try testing.expectError(error.ListCountWrong, broken);
    decay(os.nowMs(), true);
    try validate();
}
