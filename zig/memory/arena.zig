//! arena.zig — every segment, shared by every heap: where a page's span is placed, where it
//! goes back, and when empty memory goes back to the OS. A segment belongs to no thread:
//! its pages do (page.zig: ownership), so what one thread frees serves any other, and a
//! thread that exits leaves no segment behind waiting for one adopter.
//!
//!   lock      one spin lock (slow paths only): the list, and every segment's slice state
//!   segments  seg <-> seg <-> seg | full <-> full        (those with room first: a search
//!             stops at the first full one; a segment that fills goes to the back, one
//!             that gets room back to the front)
//!
//!   placePage     a span for a new page: among the first segments with room (scan_max),
//!                 the run with the most resident (dirty) slices — reused memory costs no
//!                 page fault — a segment with pages before an empty one on ties; else a
//!                 new mapping (made with the lock released)
//!   releasePage   a page's span back to its segment, dirty (resident until purged; beyond
//!                 HAKMEM_RETAIN_MAX_MB purged at once)
//!   decay         dirty slices along the decay curve (decay.zig), the segment dirty longest
//!                 first, and empty segments unmapped along the same curve (at once beyond
//!                 HAKMEM_RETAIN_MAX_MB of them); every maintenance tick of any thread may
//!                 call it, one pass runs every quarter of the purge delay
//!   trimDirty     at a thread's exit: the dirty slices beyond a bound purged now (nothing
//!                 may call the allocator again for a long time)
//!
//! A purge takes its slices out of the free set under the lock (Segment.beginPurge), makes
//! the madvise calls with the lock released, and gives them back clean (endPurge): no thread
//! waits on a system call to place a page. Mappings are made and unmapped unlocked too.
const std = @import("std");
const os = @import("../base/os.zig");
const config = @import("../settings/config.zig");
const stats = @import("../settings/stats.zig");
const size_class = @import("../settings/size_class.zig");
const segment_map = @import("../base/segment_map.zig");
const segment_mod = @import("segment.zig");
const page_mod = @import("page.zig");
const Lock = @import("../base/lock.zig").Lock;
const decay_mod = @import("../base/decay.zig");
const budget = @import("../settings/budget.zig");
const Segment = segment_mod.Segment;
const SegmentList = segment_mod.SegmentList;
const Page = page_mod.Page;
const segment_size = segment_mod.segment_size;

pub var lock: Lock = .{};
var segments: SegmentList = .{};
/// Segments with no page in use (isEmpty), among `segments`.
var empty_count: usize = 0;
/// The next time a decay pass is due (monotonic ms; atomic: every heap's tick reads it).
var decay_due_ms: u64 = 0;

/// Segments with room looked at for the best run before a new segment is mapped.
const scan_max = 32;
/// Segments purged or unmapped per decay step at most (each step is one pass under the
/// lock, then the system calls without it).
const batch_max = 16;

// ---------------------------------------------------------------- placing pages

/// A span for a new page of `bin` held by `owner` (a heap), its blocks not carved yet.
/// Null only when out of memory (or of the memory budget).
pub fn placePage(bin: usize, checked: bool, owner: *anyopaque) ?*Page {
    std.debug.assert(bin < size_class.bin_count);
    const slices = size_class.binPageSlices(bin);
    std.debug.assert(slices >= 1);
    std.debug.assert(slices < segment_mod.slice_count); // a span fits a segment beside its header
    lock.acquire();
    if (bestRun(slices)) |best| {
        const page = placeAt(best.segment, best.run.slice, bin, slices, checked, owner);
        lock.release();
        return page;
    }
    lock.release();
    // No room: a new segment, mapped unlocked, and the span taken in it before the lock is
    // let go (so no other thread can take its room first).
    const seg = mapSegment() orelse return null;
    lock.acquire();
    defer lock.release();
    segments.push(seg);
    empty_count += 1;
    const run = seg.findRun(slices).?; // a fresh segment has room for any page
    return placeAt(seg, run.slice, bin, slices, checked, owner);
}

/// (lock held) Takes the span at `slice` of `seg` for the page.
fn placeAt(seg: *Segment, slice: usize, bin: usize, slices: usize, checked: bool, owner: *anyopaque) *Page {
    std.debug.assert(lock.isHeld());
    std.debug.assert(slice >= 1); // not the header
    std.debug.assert(slice + slices <= segment_mod.slice_count); // within the segment
    const was_empty = seg.used_pages == 0;
    if (was_empty) {
        std.debug.assert(empty_count > 0);
        empty_count -= 1;
    }
    var reused: usize = 0;
    const was_full = seg.isFull();
    const page = seg.allocPageAt(bin, slices, slice, checked, owner, &reused);
    keepOrder(seg, was_full);
    stats.pageAcquired(page.tierIndex(), slices * size_class.slice_size, reused);
    std.debug.assert(page.owner.load(.monotonic) == owner); // held by the heap it was placed for
    std.debug.assert(page.isHeld());
    std.debug.assert(page.bin == bin); // the span asked for
    std.debug.assert(page.slice_count == slices);
    std.debug.assert(!seg.isEmpty()); // a page in use now
    return page;
}

const Best = struct { segment: *Segment, run: Segment.Run };

/// (lock held) Among the first scan_max segments with room, the run of `slices` free
/// slices with the most resident slices; on a tie, one in a segment with pages in use
/// (an empty segment may then be unmapped).
fn bestRun(slices: usize) ?Best {
    std.debug.assert(lock.isHeld());
    std.debug.assert(slices >= 1);
    var best: ?Best = null;
    var scanned: usize = 0;
    var it = segments.first;
    while (it) |seg| : (it = seg.next) {
        std.debug.assert(scanned <= segments.count);
        if (seg.isFull() or scanned == scan_max) break; // those with room come first
        scanned += 1;
        const run = seg.findRun(slices) orelse continue;
        if (best) |b| {
            const better_dirty = run.dirty_slices > b.run.dirty_slices;
            const same_dirty = run.dirty_slices == b.run.dirty_slices;
            if (!better_dirty and !(same_dirty and b.segment.used_pages == 0 and seg.used_pages != 0)) continue;
        }
        best = .{ .segment = seg, .run = run };
        if (run.dirty_slices == slices and seg.used_pages != 0) break; // cannot do better
    }
    if (best) |b| {
        std.debug.assert(b.run.slice >= 1); // not the header
        std.debug.assert(b.run.slice + slices <= segment_mod.slice_count);
        std.debug.assert(b.run.dirty_slices <= slices);
    }
    return best;
}

/// A page's span back to its segment. The caller holds the page (page.zig) and it has no
/// block in use: no thread can reach it any more.
pub fn releasePage(page: *Page, now_ms: u64) void {
    std.debug.assert(page.used == 0); // no block in use
    std.debug.assert(page.isHeld()); // by the caller
    std.debug.assert(page.next == null); // in no queue
    std.debug.assert(page.prev == null);
    std.debug.assert(!page.listed); // or list
    std.debug.assert(page.slice_offset == 0); // the span's descriptor
    std.debug.assert(page.flags & page_mod.flag_unused == 0); // in use until now: released once
    const seg = Segment.of(page.start);
    const carved = @as(usize, page.capacity) * page.block_size;
    const span_bytes = @as(usize, page.slice_count) * size_class.slice_size;
    lock.acquire();
    stats.pageReleased(page.tierIndex(), span_bytes, carved);
    const was_full = seg.isFull();
    seg.freePage(page, now_ms);
    keepOrder(seg, was_full);
    if (seg.used_pages == 0) empty_count += 1;
    std.debug.assert(empty_count <= segments.count);
    const over_retain = stats.dirty_bytes.load(.monotonic) > config.retain_max_bytes;
    const taken: ?Segment.Taken = if (over_retain) seg.beginPurge() else null;
    const evicted = if (empty_count * segment_size > config.retain_max_bytes) takeOldestEmpty() else null;
    lock.release();
    if (taken) |t| finishPurges(&.{seg}, &.{t});
    if (evicted) |e| unmapSegment(e);
}

/// (lock held) After `seg`'s slices were taken or given back: the segments with room stay
/// ahead of the full ones (bestRun stops at the first full one), so a segment that filled
/// up goes to the back, and one that had been full comes back to the front.
fn keepOrder(seg: *Segment, was_full: bool) void {
    std.debug.assert(lock.isHeld());
    const full = seg.isFull();
    if (full == was_full) return;
    segments.remove(seg);
    if (full) segments.pushBack(seg) else segments.push(seg);
}

/// realloc in place of the block of a single-block page (heap.rebinSingleBlock): the page
/// becomes a page of `bin`, whose pages take another number of slices, its span grown
/// into the free slices right after it or shrunk (the tail back to the segment, dirty).
/// False when growing and a slice after it is not free: nothing changed. The caller holds
/// the page and its one block is live.
pub fn resizeSpan(page: *Page, bin: usize, now_ms: u64) bool {
    std.debug.assert(bin < size_class.bin_count);
    std.debug.assert(page.used == 1); // its one block live
    std.debug.assert(page.slice_offset == 0); // the span's descriptor
    if (std.debug.runtime_safety) std.debug.assert(page.isHeld()); // by the caller
    const slices = size_class.binPageSlices(bin);
    const old: usize = page.slice_count;
    std.debug.assert(slices != old); // (same count: Page.rebin alone)
    const seg = Segment.of(page.start);
    const span_bytes_delta = (@max(slices, old) - @min(slices, old)) * size_class.slice_size;
    lock.acquire();
    defer lock.release();
    const was_full = seg.isFull();
    if (slices > old) {
        const reused = seg.growSpan(page, slices) orelse return false;
        stats.spanGrown(page.tierIndex(), span_bytes_delta, reused);
    } else {
        seg.shrinkSpan(page, slices, now_ms);
        stats.spanShrunk(page.tierIndex(), span_bytes_delta);
    }
    keepOrder(seg, was_full);
    page.rebin(bin);
    std.debug.assert(page.slice_count == slices);
    return true;
}

// ---------------------------------------------------------------- mappings

fn mapSegment() ?*Segment {
    if (!budget.claim(segment_size)) return null;
    defer budget.settle(segment_size);
    const memory = os.mapAligned(segment_size, segment_size) orelse return null;
    std.debug.assert(@intFromPtr(memory) % segment_size == 0);
    const seg: *Segment = @ptrCast(@alignCast(memory));
    seg.initHeader();
    seg.empty_since_ms = os.nowMs();
    std.debug.assert(seg.dirty_slices == 0); // fresh memory: nothing resident yet,
    std.debug.assert(seg.isEmpty()); // no page in use
    segment_map.mark(@intFromPtr(seg), segment_size, .segment, .segment);
    stats.incr(&stats.segments_mapped);
    stats.addTo(&stats.os_mapped_bytes, segment_size);
    return seg;
}

/// A segment out of the list (takeOldestEmpty), no page in use, nothing being purged.
fn unmapSegment(seg: *Segment) void {
    std.debug.assert(seg.isEmpty()); // no page in use,
    std.debug.assert(seg.next == null); // out of the list
    std.debug.assert(seg.prev == null);

    std.debug.assert(seg.dirty_mid_slices & ~seg.dirty_slices == 0); // mid's dirty slices are among them
    const purged = seg.dirtyBytes();
    const mid_bytes = @as(usize, @popCount(seg.dirty_mid_slices)) * size_class.slice_size;
    stats.purged(0, purged - mid_bytes);
    stats.purged(1, mid_bytes);
    segment_map.clear(@intFromPtr(seg), segment_size);
    os.unmap(@ptrCast(seg), segment_size);
    stats.decr(&stats.segments_mapped);
    stats.subFrom(&stats.os_mapped_bytes, segment_size);
}

/// (lock held) The segment empty for longest, out of the list; null when none is empty.
/// Bounded by the list's count.
fn takeOldestEmpty() ?*Segment {
    std.debug.assert(lock.isHeld());
    const seg = oldestOf(isEmptySegment, emptySince) orelse return null;
    std.debug.assert(empty_count > 0); // counted empty,
    std.debug.assert(seg.isEmpty()); // and it is
    segments.remove(seg);
    empty_count -= 1;
    return seg;
}

// ---------------------------------------------------------------- purging

/// (lock released) The system calls of purges begun under the lock, then their slices
/// given back clean under it.
fn finishPurges(segs: []const *Segment, taken: []const Segment.Taken) void {
    std.debug.assert(segs.len == taken.len); // one record per segment
    std.debug.assert(segs.len >= 1);
    std.debug.assert(segs.len <= batch_max);
    for (segs, taken) |seg, t| seg.purgeRuns(t.slices, os.purge);
    lock.acquire();
    for (segs, taken) |seg, t| seg.endPurge(t.slices);
    lock.release();
    for (taken) |t| {
        stats.purged(0, t.purged.tiny_bytes);
        stats.purged(1, t.purged.mid_bytes);
    }
}

/// Empty segments unmapped and dirty slices purged along the decay curve (everything with
/// `force`). At most one pass every quarter of the purge delay, whichever thread asks.
/// Bounded: each step handles batch_max segments, and a pass takes at most as many steps
/// as there are segments.
pub fn decay(now_ms: u64, force: bool) void {
    const due = @atomicLoad(u64, &decay_due_ms, .monotonic);
    if (!force and now_ms < due) return;
    if (!force and @cmpxchgStrong(u64, &decay_due_ms, due, now_ms + @max(1, config.purge_delay_ms / 4), .monotonic, .monotonic) != null) return; // another thread runs this pass
    const steps = @atomicLoad(usize, &segments.count, .monotonic) / batch_max + 1;
    for (0..steps) |_| if (!unmapEmptyStep(now_ms, force)) break;
    const rule: PurgeRule = if (force) .{ .keep_bytes = 0 } else .{ .curve_at_ms = now_ms };
    for (0..steps) |_| if (!purgeDirtyStep(rule)) break;
}

/// What purgeDirtyStep lets stay dirty: what the decay curve keeps at a time, or a number
/// of bytes (all segments together).
const PurgeRule = union(enum) { curve_at_ms: u64, keep_bytes: usize };

/// One step of decay: up to batch_max empty segments the curve lets go, unmapped. False
/// when the curve keeps the rest (or none is empty).
fn unmapEmptyStep(now_ms: u64, force: bool) bool {
    var doomed: [batch_max]*Segment = undefined;
    var count: usize = 0;
    lock.acquire();
    var tally: decay_mod.Tally = .{};
    var it = segments.first;
    var seen: usize = 0;
    while (it) |seg| : (it = seg.next) {
        seen += 1;
        std.debug.assert(seen <= segments.count);
        if (seg.isEmpty()) tally.add(segment_size, seg.empty_since_ms, now_ms, config.purge_delay_ms);
    }
    while (count < doomed.len) {
        if (empty_count == 0 or !(force or tally.release(segment_size))) break;
        doomed[count] = takeOldestEmpty() orelse break; // (one being purged waits)
        std.debug.assert(doomed[count].isEmpty()); // no page in use: nothing to lose
        count += 1;
    }
    lock.release();
    for (doomed[0..count]) |seg| unmapSegment(seg);
    return count == doomed.len;
}

/// One step: the dirty slices of up to batch_max segments (the one dirty longest first)
/// purged while what stays dirty is more than `rule` keeps. False when nothing more is to go.
fn purgeDirtyStep(rule: PurgeRule) bool {
    var segs: [batch_max]*Segment = undefined;
    var taken: [batch_max]Segment.Taken = undefined;
    var count: usize = 0;
    lock.acquire();
    var tally: decay_mod.Tally = .{};
    var dirty_total: usize = 0;
    var it = segments.first;
    var seen: usize = 0;
    while (it) |seg| : (it = seg.next) {
        seen += 1;
        std.debug.assert(seen <= segments.count);
        if (seg.dirty_slices == 0) continue;
        if (rule == .curve_at_ms) tally.add(seg.dirtyBytes(), seg.dirty_since_ms, rule.curve_at_ms, config.purge_delay_ms);
        dirty_total += seg.dirtyBytes();
    }
    while (count < segs.len) {
        const seg = oldestDirty() orelse break;
        const bytes = seg.dirtyBytes();
        const go = switch (rule) {
            .curve_at_ms => tally.release(bytes),
            .keep_bytes => |keep| dirty_total > keep,
        };
        if (!go) break;
        std.debug.assert(bytes > 0); // one of the segments summed,
        std.debug.assert(bytes <= dirty_total); // picked once
        dirty_total -= bytes;
        segs[count] = seg;
        taken[count] = seg.beginPurge();
        count += 1;
    }
    lock.release();
    if (count > 0) finishPurges(segs[0..count], taken[0..count]);
    return count == segs.len;
}

/// (lock held) The segment whose dirty slices are oldest; bounded by the list's count.
fn oldestDirty() ?*Segment {
    std.debug.assert(lock.isHeld());
    return oldestOf(hasDirty, dirtySince);
}

/// (lock held) Of the segments `has` picks, the one whose time `since` is earliest (null
/// when it picks none). Bounded by the list's count.
fn oldestOf(comptime has: fn (*const Segment) bool, comptime since: fn (*const Segment) u64) ?*Segment {
    std.debug.assert(lock.isHeld()); // the list and its segments' states
    var oldest: ?*Segment = null;
    var it = segments.first;

    var seen: usize = 0;
    while (it) |seg| : (it = seg.next) {
        seen += 1;
        std.debug.assert(seen <= segments.count);
        if (!has(seg)) continue;
        if (oldest == null or since(seg) < since(oldest.?)) oldest = seg;
    }
    if (oldest) |o| std.debug.assert(has(o)); // (what it returns is one it picks)
    return oldest;
}

fn isEmptySegment(seg: *const Segment) bool {
    return seg.isEmpty();
}
fn emptySince(seg: *const Segment) u64 {
    return seg.empty_since_ms;
}
fn hasDirty(seg: *const Segment) bool {
    return seg.dirty_slices != 0;
}
fn dirtySince(seg: *const Segment) u64 {
    return seg.dirty_since_ms;
}

/// At a thread's exit: dirty slices beyond `keep_bytes` (all segments together) purged
/// now, oldest first — the next threads find that much resident, and nothing is left
/// dirty beyond it if the program never calls the allocator again. Bounded as decay.
pub fn trimDirty(keep_bytes: usize) void {
    if (stats.dirty_bytes.load(.monotonic) <= keep_bytes) return;
    const steps = @atomicLoad(usize, &segments.count, .monotonic) / batch_max + 1;
    for (0..steps) |_| if (!purgeDirtyStep(.{ .keep_bytes = keep_bytes })) break;
}

/// True while a dirty slice or an empty segment is kept (decay has work left).
pub fn retainsAny() bool {
    return stats.dirty_bytes.load(.monotonic) != 0 or emptyCount() != 0;
}

/// Segments with no page in use (the memory report's cached segments).
pub fn emptyCount() usize {
    return @atomicLoad(usize, &empty_count, .monotonic);
}

/// Every segment mapped now.
pub fn segmentCount() usize {
    return @atomicLoad(usize, &segments.count, .monotonic);
}

/// In a forked child (its lock reset first): purges another thread of the parent had
/// begun are never finished there, so their slices go back to the free set, dirty (the
/// statistics still count them so). Bounded by the list's count.
pub fn afterForkInChild() void {
    lock.resetInChild();
    var it = segments.first;
    var seen: usize = 0;
    while (it) |seg| : (it = seg.next) {
        seen += 1;
        std.debug.assert(seen <= segments.count);
        if (seg.purging_slices == 0) continue;
        seg.free_slices |= seg.purging_slices;
        seg.markDirty(seg.purging_slices, os.nowMs());
        seg.purging_slices = 0;
    }
}

// ---------------------------------------------------------------- validation

pub const Invalid = error{ ListLinksBroken, ListCountWrong, SegmentsOutOfOrder, EmptyCountWrong, SegmentNotMapped } || Segment.Invalid;

/// Checks the list under the lock: links (prev of each is the one before), count, those
/// with room before the full ones, every segment 4 MiB aligned, tagged a segment in
/// segment_map and valid (Segment.validate: its masks and spans), and empty_count.
/// Bounded by the list's count.
pub fn validate() Invalid!void {
    lock.acquire();
    defer lock.release();
    var prev: ?*Segment = null;
    var it = segments.first;
    var n: usize = 0;
    var empty: usize = 0;
    var seen_full = false;
    while (it) |seg| : (it = seg.next) {
        n += 1;
        if (n > segments.count) return error.ListCountWrong;
        if (seg.prev != prev) return error.ListLinksBroken;
        if (@intFromPtr(seg) % segment_size != 0 or segment_map.lookup(@intFromPtr(seg)) != .segment) return error.SegmentNotMapped;
        if (seg.isFull()) seen_full = true else if (seen_full) return error.SegmentsOutOfOrder;
        try seg.validate();
        if (seg.used_pages == 0) empty += 1;
        prev = seg;
    }
    if (n != segments.count or segments.last != prev) return error.ListCountWrong;
    if (empty != empty_count) return error.EmptyCountWrong;
}

// ---------------------------------------------------------------- tests

const testing = std.testing;

test "a page placed in a shared segment, released dirty, placed again on the resident slices, unmapped by decay" {
    const saved_retain = config.retain_max_bytes;
    config.retain_max_bytes = 1 << 30;
    defer config.retain_max_bytes = saved_retain;
    decay(os.nowMs(), true); // other tests' empty segments
    var heap_a: u8 = 0;
    var heap_b: u8 = 0;
    const bin = size_class.tinyBin(64);
    const page = placePage(bin, false, &heap_a) orelse return error.OutOfMemory;
    try testing.expectEqual(@as(?*anyopaque, &heap_a), page.owner.load(.monotonic));
    try testing.expectEqual(segment_map.Tag.segment, segment_map.lookup(page.start));
    try validate();
    _ = page.extend();
    const start = page.start;
    page.owner.store(null, .monotonic);
    releasePage(page, os.nowMs());
    try validate();
    // another heap's page of another bin takes the same (resident) slice
    const again = placePage(size_class.tinyBin(128), false, &heap_b) orelse return error.OutOfMemory;
    try testing.expectEqual(start, again.start);
    try testing.expectEqual(@as(?*anyopaque, &heap_b), again.owner.load(.monotonic));
    again.owner.store(null, .monotonic);
    releasePage(again, os.nowMs());
    const seg = Segment.of(start);
    const was_empty = seg.used_pages == 0; // (other tests' pages may share the segment)
    decay(os.nowMs(), true);
    try validate();
    try testing.expectEqual(@as(usize, 0), emptyCount());
    try testing.expectEqual(@as(u64, 0), stats.dirty_bytes.load(.monotonic));
    if (was_empty) try testing.expectEqual(segment_map.Tag.none, segment_map.lookup(start));
}

test "trimDirty purges what is dirty beyond its bound, oldest first" {
    const saved_retain = config.retain_max_bytes;
    config.retain_max_bytes = 1 << 30;
    defer config.retain_max_bytes = saved_retain;
    decay(os.nowMs(), true);
    var heap_a: u8 = 0;
    var pages: [8]*Page = undefined;
    const bin = size_class.midBin(64 * 1024); // a span of its own per block
    for (&pages) |*p| p.* = placePage(bin, false, &heap_a) orelse return error.OutOfMemory;
    for (pages) |p| {
        p.owner.store(null, .monotonic);
        releasePage(p, os.nowMs());
    }
    try testing.expect(stats.dirty_bytes.load(.monotonic) >= 8 * size_class.slice_size);
    trimDirty(0);
    try testing.expectEqual(@as(u64, 0), stats.dirty_bytes.load(.monotonic));
    try validate();
    decay(os.nowMs(), true);
    try testing.expectEqual(@as(usize, 0), emptyCount());
}

test "a forked child gives back the slices a parent thread was purging (they stay free, dirty)" {
    const saved_retain = config.retain_max_bytes;
    config.retain_max_bytes = 1 << 30;
    defer config.retain_max_bytes = saved_retain;
    var heap_a: u8 = 0;
    const page = placePage(size_class.tinyBin(64), false, &heap_a) orelse return error.OutOfMemory;
    const seg = Segment.of(page.start);
    page.owner.store(null, .monotonic);
    releasePage(page, os.nowMs());
    lock.acquire();
    const taken = seg.beginPurge(); // a parent thread, between its purge's two halves
    lock.release();
    try testing.expect(taken.slices != 0 and seg.purging_slices == taken.slices);
    afterForkInChild();
    try testing.expectEqual(@as(u64, 0), seg.purging_slices);
    try testing.expect(seg.free_slices & taken.slices == taken.slices and seg.dirty_slices & taken.slices == taken.slices);
    try validate();
    decay(os.nowMs(), true);
    try validate();
}
