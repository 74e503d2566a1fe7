//! placement.zig — where a heap's pages go in its segments, and its segments in the arena.
//!
//!   heap.segments.list:  segment <-> segment <-> segment | full <-> full
//!                        (segments with free slices first: a search stops at the first full one)
//!
//!   placePage    a new page's span: among the first segments with room (at most
//!                segments_scanned_max), the run of free slices with the most resident
//!                (dirty) slices, so reused memory costs no page faults; else a segment
//!                from the arena (cached or fresh). A segment that fills goes to the back.
//!   releasePage  a page's span back to its segment (dirty: resident until purged; beyond
//!                HAKMEM_RETAIN_MAX_MB purged at once); a segment left with no page back to
//!                the arena. A segment that had no room comes to the front again.
//!   adopt        a segment abandoned by an exited thread joins the list (full: behind the
//!                others); its empty pages are released, the others handed to the heap.
//!   trimDirty    thread exit (the heap parked whole): what dirty slices it keeps for the
//!                next thread, the rest purged.
//!   abandonAll   a parked heap nobody took: every segment (only those with live blocks are
//!                left) to the arena's abandoned list, its dirty slices purged.
//!
//! The owner thread does all of this under `lock`; the background purger takes the same
//! lock (tryAcquire) to purge dirty slices (purge.zig). Pages, queues and bins are the
//! heap's business (heap.zig): nothing here looks at them beyond a page's span.
const std = @import("std");
const config = @import("../settings/config.zig");
const stats = @import("../settings/stats.zig");
const size_class = @import("../settings/size_class.zig");
const page_mod = @import("../memory/page.zig");
const segment_mod = @import("../memory/segment.zig");
const arena = @import("../memory/arena.zig");
const os = @import("../base/os.zig");
const Lock = @import("../base/lock.zig").Lock;
const Page = page_mod.Page;
const Segment = segment_mod.Segment;
const SegmentList = segment_mod.SegmentList;

/// Segments looked at for a span with resident memory before a new page is placed.
const segments_scanned_max = 16;
/// Dirty (empty, resident) bytes an exiting thread's parked heap keeps at most for the next
/// thread (heap.park); the rest is purged at exit. Measured when exits abandoned segments (mt_churn, 2
/// threads x 20 rounds; thread_churn's RSS 300 ms after its last free, 600 threads):
/// purge all 0.8 s, 130k faults, 33 MiB peak, 14 MiB after; keep 8 MiB 0.55 s, 107k,
/// 37 MiB, 21 MiB after; keep all 0.4 s, 50k, 50 MiB, 20-45 MiB after (nobody decays it
/// while the program only takes fast paths).
pub const exit_keep_dirty_bytes: usize = 8 << 20;

pub const Segments = struct {
    list: SegmentList = .{},
    /// Held by the owner while it changes `list` or a segment's slices (page placed, page
    /// released, adoption, abandonment, purge), and by the background purger while it
    /// purges the dirty slices (purge.zig). Slow paths only.
    lock: Lock = .{},

    /// A span for a new page of `bin` (its blocks not carved yet), in a segment of
    /// `owner`'s; null only when out of memory.
    pub fn placePage(self: *Segments, owner: *anyopaque, bin: usize, checked: bool) ?*Page {
        self.lock.acquire();
        defer self.lock.release();
        const slices = size_class.binPageSlices(bin);
        var reused: usize = 0;
        const page = if (self.bestRun(slices)) |best|
            best.segment.allocPageAt(bin, slices, best.run.slice, checked, &reused)
        else blk: {
            const seg = arena.acquire(owner) orelse return null;
            if (seg.dirty_slices != 0) seg.dirty_since_ms = os.nowMs();
            self.list.push(seg);
            break :blk seg.allocPage(bin, slices, checked, &reused) orelse unreachable;
        };
        const seg = Segment.of(page.start);
        if (seg.free_slices == 0) {
            // keep full segments behind the ones with room
            self.list.remove(seg);
            self.list.pushBack(seg);
        }
        stats.pageAcquired(page.tierIndex(), @as(usize, page.slice_count) * size_class.slice_size, reused);
        return page;
    }

    /// Among the first segments with free slices (at most segments_scanned_max), the run
    /// of `slices` free slices with the most resident (dirty) slices; the first fit if none.
    fn bestRun(self: *Segments, slices: usize) ?struct { segment: *Segment, run: Segment.Run } {
        var best_segment: ?*Segment = null;
        var best_run: Segment.Run = undefined;
        var scanned: usize = 0;
        var seg_it = self.list.first;
        while (seg_it) |seg| : (seg_it = seg.next) {
            if (seg.free_slices == 0) break; // segments with free slices come first
            if (scanned == segments_scanned_max) break;
            scanned += 1;
            const run = seg.findRun(slices) orelse continue;
            if (best_segment == null or run.dirty_slices > best_run.dirty_slices) {
                best_segment = seg;
                best_run = run;
            }
            if (run.dirty_slices == slices) break;
        }
        return .{ .segment = best_segment orelse return null, .run = best_run };
    }

    /// Returns a page (out of every queue of its heap) to its segment, and the segment to
    /// the arena once it has no page left.
    pub fn releasePage(self: *Segments, page: *Page, now_ms: u64) void {
        self.lock.acquire();
        defer self.lock.release();
        const seg = Segment.of(page.start);
        self.releaseSpan(page, now_ms);
        if (seg.used_pages == 0) {
            self.list.remove(seg);
            arena.release(seg, now_ms);
        }
    }

    /// A page's span back to its segment, which stays in the list even when it has no page
    /// left (abandonAll, which follows, purges it and gives it to the arena).
    pub fn releasePageKeepSegment(self: *Segments, page: *Page, now_ms: u64) void {
        self.lock.acquire();
        defer self.lock.release();
        self.releaseSpan(page, now_ms);
    }

    /// (lock held) A page's span back to its segment, which stays in the list.
    fn releaseSpan(self: *Segments, page: *Page, now_ms: u64) void {
        const seg = Segment.of(page.start);
        const carved = @as(usize, page.capacity) * page.block_size;
        stats.pageReleased(page.tierIndex(), @as(usize, page.slice_count) * size_class.slice_size, carved);
        const was_full = seg.free_slices == 0;
        seg.freePage(page, now_ms);
        if (seg.used_pages == 0) return;
        if (was_full) {
            self.list.remove(seg);
            self.list.push(seg);
        }
        if (stats.dirty_bytes.load(.monotonic) > config.retain_max_bytes) seg.purge();
    }

    /// A segment from arena.popAbandoned joins the list (behind the segments with free
    /// slices when it has none: placePage's search stops at the first full one). Each of
    /// its pages has its remote frees collected; an empty one goes back to the segment, any
    /// other to `sink.adoptPage(page)` (the heap queues it). A segment left with no page
    /// goes back to the arena.
    pub fn adopt(self: *Segments, seg: *Segment, sink: anytype) void {
        self.lock.acquire();
        defer self.lock.release();
        if (seg.free_slices == 0) self.list.pushBack(seg) else self.list.push(seg);
        const now = os.nowMs();
        var slice: usize = 1;
        while (slice < segment_mod.slice_count) {
            const page = &seg.pages[slice];
            if (page.flags & page_mod.flag_unused != 0) {
                slice += 1;
                continue;
            }
            slice += page.slice_count;
            page.flags &= ~page_mod.flag_full;
            page.next = null;
            page.prev = null;
            _ = page.collect();
            if (page.used == 0) self.releaseSpan(page, now) else sink.adoptPage(page);
        }
        if (seg.used_pages == 0) {
            self.list.remove(seg);
            arena.release(seg, now);
        }
    }

    /// A parked heap nobody took within the purge delay, once every page without live
    /// blocks went back: its dirty slices are purged (they waited the delay already), its
    /// segments with no page left go to the arena's cache, the others to its abandoned list
    /// for any thread to adopt. (Nothing may run maintenance again: nothing is left dirty.)
    pub fn abandonAll(self: *Segments, now_ms: u64) void {
        self.lock.acquire();
        defer self.lock.release();
        while (self.list.pop()) |seg| {
            if (seg.dirty_slices != 0) seg.purge();
            if (seg.used_pages == 0) arena.release(seg, now_ms) else arena.abandon(seg);
        }
    }

    /// Thread exit, when the heap is parked whole: its segments keep up to `keep_bytes` of
    /// their dirty slices for the next thread (in list order), the rest is purged now
    /// (purging them all made threads created in rounds fault every page in again; keeping
    /// them all kept memory nobody decays until the heap is resumed or abandoned).
    /// Bounded by the list's count.
    /// Returns the dirty bytes kept.
    pub fn trimDirty(self: *Segments, keep_bytes: usize) usize {
        self.lock.acquire();
        defer self.lock.release();
        var kept: usize = 0;
        var it = self.list.first;
        while (it) |seg| : (it = seg.next) {
            if (seg.dirty_slices == 0) continue;
            if (kept + seg.dirtyBytes() > keep_bytes) seg.purge() else kept += seg.dirtyBytes();
        }
        return kept;
    }

    pub const Invalid = error{ SegmentListBroken, SegmentNotOwned, SegmentsOutOfOrder } || Segment.Invalid;

    /// Checks the list (the owner's thread; tests and debug builds): linked both ways,
    /// counted, every segment `owner`'s and valid (Segment.validate), those with free slices
    /// first. Returns the pages in use in all of them. Bounded by the list's count.
    pub fn validate(self: *const Segments, owner: *const anyopaque) Invalid!usize {
        var in_use: usize = 0;
        var seen_full = false;
        var prev: ?*Segment = null;
        var it = self.list.first;
        var n: usize = 0;
        while (it) |seg| : (it = seg.next) {
            n += 1;
            if (n > self.list.count or seg.prev != prev) return error.SegmentListBroken;
            if (seg.owner.load(.monotonic) != owner) return error.SegmentNotOwned;
            if (seg.free_slices == 0) seen_full = true else if (seen_full) return error.SegmentsOutOfOrder;
            try seg.validate();
            in_use += seg.used_pages;
            prev = seg;
        }
        if (n != self.list.count) return error.SegmentListBroken;
        return in_use;
    }
};
