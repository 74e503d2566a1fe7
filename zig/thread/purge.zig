//! purge.zig — empty memory back to the OS along the decay curve (decay.zig): what a
//! heap's maintenance (heap.zig), the background purger (background.zig) and alloc.purge
//! (hak_collect, malloc_trim: `force`, everything at once) call.
//!
//!   heapSlices       a heap's dirty slices (empty spans, still resident): the segment
//!                    dirty for longest first, while what stays is more than the curve keeps
//!   heapSlicesFromBackground   the same from the background thread, unless the owner holds
//!                    its segments' lock right now (it is then doing it itself)
//!   shared           what no heap owns: the arena's cached and abandoned segments, the
//!                    large tier's cached mappings (arena.decay, large.decay)
//!
//! Immediate purges are not here: a page released beyond HAKMEM_RETAIN_MAX_MB
//! (placement.zig) and the arena's and large tier's evictions beyond their bounds.
const std = @import("std");
const config = @import("../settings/config.zig");
const decay_mod = @import("../base/decay.zig");
const arena = @import("../memory/arena.zig");
const large = @import("../memory/large.zig");
const segment_mod = @import("../memory/segment.zig");
const placement = @import("placement.zig");
const Segment = segment_mod.Segment;
const SegmentList = segment_mod.SegmentList;

/// A heap's dirty slices along the decay curve; all of them with `force`.
pub fn heapSlices(segments: *placement.Segments, now_ms: u64, force: bool) void {
    segments.lock.acquire();
    defer segments.lock.release();
    decayLocked(&segments.list, now_ms, force);
}

/// The background purger's share of a heap's maintenance (another thread than the owner).
pub fn heapSlicesFromBackground(segments: *placement.Segments, now_ms: u64) void {
    if (!segments.lock.tryAcquire()) return;
    defer segments.lock.release();
    decayLocked(&segments.list, now_ms, false);
}

/// (the list's lock held) Purges the dirty slices of `list`'s segments, the segment dirty
/// for longest first, while the curve allows. Bounded by the list's count (twice over it).
fn decayLocked(list: *SegmentList, now_ms: u64, force: bool) void {
    var tally: decay_mod.Tally = .{};
    var dirty_count: usize = 0;
    var seen: usize = 0;
    var it = list.first;
    while (it) |seg| : (it = seg.next) {
        seen += 1;
        std.debug.assert(seen <= list.count); // the list is as long as it says
        if (seg.dirty_slices == 0) continue;
        tally.add(seg.dirtyBytes(), seg.dirty_since_ms, now_ms, config.purge_delay_ms);
        dirty_count += 1;
    }
    std.debug.assert(dirty_count <= list.count);
    for (0..dirty_count) |_| {
        var oldest: ?*Segment = null;
        it = list.first;
        while (it) |seg| : (it = seg.next) {
            if (seg.dirty_slices == 0) continue;
            if (oldest == null or seg.dirty_since_ms < oldest.?.dirty_since_ms) oldest = seg;
        }
        const seg = oldest orelse return;
        if (!force and !tally.release(seg.dirtyBytes())) return;
        seg.purge();
        std.debug.assert(seg.dirty_slices == 0); // purged: the next pass finds another
    }
}

/// What no heap owns: cached and abandoned segments, cached large mappings.
pub fn shared(now_ms: u64, force: bool) void {
    arena.decay(now_ms, force);
    large.decay(now_ms, force);
}
