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

/// (the list's lock held) Purges the aging slices of `list`'s segments (segment.zig: the
/// dirty ones no page took since they started aging), the segment aging for longest
/// first, while the curve allows; with `force`, every dirty slice. Bounded by the list's
/// count (twice over it).
fn decayLocked(list: *SegmentList, now_ms: u64, force: bool) void {
    var tally: decay_mod.Tally = .{};
    var dirty_count: usize = 0;
    var seen: usize = 0;
    var it = list.first;
    while (it) |seg| : (it = seg.next) {
        seen += 1;
        std.debug.assert(seen <= list.count); // the list is as long as it says
        if (seg.dirty_slices == 0) continue;
        // the aging slices were freed by dirty_since_ms; the younger ones count as freed now
        tally.add(seg.agingBytes(), seg.dirty_since_ms, now_ms, config.purge_delay_ms);
        tally.add(seg.dirtyBytes() - seg.agingBytes(), now_ms, now_ms, config.purge_delay_ms);
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
        if (force) {
            seg.purge();
            std.debug.assert(seg.dirty_slices == 0); // purged: the next pass finds another
            continue;
        }
        if (seg.dirty_since_ms == now_ms or !tally.release(seg.agingBytes())) return; // (only young ones left)
        seg.purgeAged(now_ms);
        std.debug.assert(seg.aging_slices == seg.dirty_slices and seg.dirty_since_ms == now_ms);
    }
}

/// What no heap owns: cached and abandoned segments, cached large mappings.
pub fn shared(now_ms: u64, force: bool) void {
    arena.decay(now_ms, force);
    large.decay(now_ms, force);
}

test "decay purges the slices that aged, not one freed a moment ago in the same segment" {
    const size_class = @import("../settings/size_class.zig");
    const memory = try std.testing.allocator.alignedAlloc(u8, .fromByteUnits(segment_mod.segment_size), segment_mod.segment_size);
    defer std.testing.allocator.free(memory);
    const seg: *Segment = @ptrCast(memory.ptr);
    seg.initHeader(0);
    var segments: placement.Segments = .{};
    segments.list.push(seg);
    const bin = size_class.tinyBin(16);
    var reused: usize = 0;
    const old = seg.allocPage(bin, 1, false, &reused).?;
    const young = seg.allocPage(bin, 1, false, &reused).?;
    const delay = config.purge_delay_ms;
    seg.freePage(old, 1000);
    seg.freePage(young, 1000 + delay - 1);
    try seg.validate();
    heapSlices(&segments, 1000 + delay + 1, false);
    try seg.validate();
    // the young slice stays resident (dirty) and starts aging now; the old one went back
    try std.testing.expectEqual(@as(usize, size_class.slice_size), seg.dirtyBytes());
    try std.testing.expectEqual(seg.dirty_slices, seg.aging_slices);
    try std.testing.expectEqual(1000 + delay + 1, seg.dirty_since_ms);
    // once it aged too, it goes
    heapSlices(&segments, 1000 + 3 * delay, false);
    try std.testing.expectEqual(@as(usize, 0), seg.dirtyBytes());
    // reused slices leave the aging set; the younger dirty ones take its place
    const a = seg.allocPage(bin, 1, false, &reused).?;
    const b = seg.allocPage(bin, 1, false, &reused).?;
    seg.freePage(a, 5000);
    seg.freePage(b, 5001);
    try std.testing.expectEqual(@as(u32, 1), @popCount(seg.aging_slices));
    _ = seg.allocPage(bin, 1, false, &reused).?; // takes a dirty slice (the aging one first or not)
    try seg.validate();
    segments.list.remove(seg);
}
