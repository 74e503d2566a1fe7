//! heap.zig — a thread's heap: for every bin (tier x size class) the page that serves
//! it now (`direct`), a queue of its other pages that may have free blocks, and a queue
//! of pages found full; plus the segments the heap owns and its event counters.
//!
//!   heap.cache[bin]:   block ─> block ─> null       (freed blocks, thread_cache.zig)
//!   heap.direct[bin] ──> page ──free──> block ─> block ─> null
//!   heap.queues[bin]:  page <-> page <-> page        (may have free blocks)
//!   heap.full[bin]:    page <-> page                 (full when last looked at)
//!   heap.segments:     segment <-> segment           (with free slices first)
//!
//! Only the owning thread touches a heap (other threads free into a page's thread_free,
//! never into the heap), so nothing here takes a lock except when segments move between
//! heaps through arena.zig. malloc's fast path is `allocBin` (a pop from direct[bin]);
//! everything else here is its slow path, kept out of line.
const std = @import("std");
const os = @import("os.zig");
const config = @import("config.zig");
const stats = @import("stats.zig");
const size_class = @import("size_class.zig");
const arena = @import("arena.zig");
const large = @import("large.zig");
const page_mod = @import("page.zig");
const segment_mod = @import("segment.zig");
const thread_cache = @import("thread_cache.zig");
const Page = page_mod.Page;
const Block = page_mod.Block;
const Segment = segment_mod.Segment;
const SegmentList = segment_mod.SegmentList;

const bins = size_class.bin_count;
/// Full pages re-examined per slow path before a new page is taken (bounded work).
const full_scan_max = 8;
const no_bin: usize = bins;
/// Empty mid pages kept as direct pages at most (retainEmpty).
const retained_max = 4;
/// Segments looked at for a span with resident memory before a new page is placed.
const segments_scanned_max = 16;
/// Abandoned segments adopted per slow path at most.
const adopt_max = 4;
/// Slow-path events between two looks at the clock for purging.
const ticks_per_clock_check = 32;
/// Frees of one bin between two looks at the clock from the free fast path.
const frees_per_clock_check = 256;

pub const PageQueue = struct {
    first: ?*Page = null,
    last: ?*Page = null,

    pub fn pushBack(self: *PageQueue, page: *Page) void {
        page.next = null;
        page.prev = self.last;
        if (self.last) |l| l.next = page else self.first = page;
        self.last = page;
    }

    pub fn remove(self: *PageQueue, page: *Page) void {
        if (page.prev) |p| p.next = page.next else self.first = page.next;
        if (page.next) |n| n.prev = page.prev else self.last = page.prev;
        page.next = null;
        page.prev = null;
    }
};

/// The last few blocks realloc grew, so that a block grown again is recognised: a buffer
/// that keeps growing by small steps then gets room to spare (alloc.realloc), instead of
/// a copy at every size class it crosses.
pub const GrowthLog = struct {
    const slots = 32;
    blocks: [slots]usize = [_]usize{0} ** slots,
    next: u8 = 0,

    /// True when `addr` came from a growing realloc lately; forgets it.
    pub fn take(self: *GrowthLog, addr: usize) bool {
        for (&self.blocks) |*b| {
            if (b.* == addr) {
                b.* = 0;
                return true;
            }
        }
        return false;
    }

    pub fn remember(self: *GrowthLog, addr: usize) void {
        self.blocks[self.next] = addr;
        self.next = (self.next + 1) % slots;
    }
};

pub const Heap = struct {
    cache: [bins]thread_cache.Bin,
    direct: [bins]*Page,
    queues: [bins]PageQueue,
    full: [bins]PageQueue,
    segments: SegmentList,
    counters: stats.BinCounters,
    /// Links in the registry of live heaps (thread.zig).
    registry_next: ?*Heap,
    registry_prev: ?*Heap,
    slow_calls: u32,
    /// The bin whose free is running the slow path (cacheSlow), else no_bin.
    freeing_bin: usize,
    /// The empty mid pages kept as their bins' direct pages, a ring (see retainEmpty).
    retained: [retained_max]?*Page,
    retained_next: u8,
    maintenance_due_ms: u64,
    /// counters.allocs[bin] at the bin's last cache overflow and at the last maintenance.
    allocs_at_overflow: [bins]u64,
    allocs_at_maintenance: [bins]u64,
    /// Blocks this thread's realloc grew lately (see alloc.realloc).
    grown: GrowthLog,

    pub fn init(self: *Heap) void {
        self.* = .{
            .cache = undefined,
            .allocs_at_overflow = [_]u64{0} ** bins,
            .allocs_at_maintenance = [_]u64{0} ** bins,
            .grown = .{},
            .direct = [_]*Page{&page_mod.empty_page} ** bins,
            .queues = [_]PageQueue{.{}} ** bins,
            .full = [_]PageQueue{.{}} ** bins,
            .segments = .{},
            .counters = .{},
            .registry_next = null,
            .registry_prev = null,
            .slow_calls = 0,
            .retained = [_]?*Page{null} ** retained_max,
            .retained_next = 0,
            .freeing_bin = no_bin,
            .maintenance_due_ms = 0,
        };
        for (&self.cache, 0..) |*c, bin| c.* = .{ .capacity = thread_cache.initialCapacity(bin) };
    }

    // ---------------------------------------------------------------- fast paths

    /// True when `seg`'s pages are this heap's (a free into them is local, not remote).
    pub inline fn ownsSegment(self: *const Heap, seg: *const Segment) bool {
        return seg.owner.load(.monotonic) == @as(*const anyopaque, self);
    }

    pub inline fn allocBin(self: *Heap, bin: usize) ?*anyopaque {
        const cached = &self.cache[bin];
        if (cached.head) |block| {
            cached.head = block.next;
            cached.count -= 1;
            self.counters.allocs[bin] += 1;
            return block;
        }
        if (self.direct[bin].pop()) |block| {
            self.counters.allocs[bin] += 1;
            return block;
        }
        return self.allocSlow(bin);
    }

    /// Any thread's block of `bin` goes to this thread's cache. `remote`: another heap owns it.
    pub inline fn cacheFree(self: *Heap, bin: usize, block: *Block, remote: bool) void {
        const frees = self.counters.frees[bin] + 1;
        self.counters.frees[bin] = frees;
        self.counters.remote_frees[bin] += @intFromBool(remote);
        const cached = &self.cache[bin];
        block.next = cached.head;
        cached.head = block;
        cached.count += 1;
        // Every few hundred frees of a bin also look at the clock: a program whose steady
        // state never leaves the fast path still gets memory freed earlier purged.
        if (cached.count > cached.capacity or frees % frees_per_clock_check == 0) self.cacheSlow(bin);
    }

    // ---------------------------------------------------------------- slow paths

    pub noinline fn allocSlow(self: *Heap, bin: usize) ?*anyopaque {
        self.tick();
        const page = self.findPage(bin) orelse {
            os.setErrno(.NOMEM);
            return null;
        };
        const block = page.pop().?;
        self.counters.allocs[bin] += 1;
        return block;
    }

    /// A page of `bin` with a free block, made the direct page. Null only when out of memory.
    fn findPage(self: *Heap, bin: usize) ?*Page {
        const current = self.direct[bin];
        if (current != &page_mod.empty_page) {
            if (self.refill(current)) return current;
            self.moveToFull(current);
        }
        self.direct[bin] = &page_mod.empty_page;
        while (self.queues[bin].first) |page| {
            if (self.refill(page)) return self.makeDirect(page);
            self.moveToFull(page);
        }
        if (self.reclaimFull(bin)) |page| return self.makeDirect(page);
        if (self.adoptAbandoned(bin)) |page| return self.makeDirect(page);
        const page = self.newPage(bin) orelse return null;
        _ = self.refill(page);
        return self.makeDirect(page);
    }

    fn makeDirect(self: *Heap, page: *Page) *Page {
        self.direct[page.bin] = page;
        return page;
    }

    /// Gives `page` free blocks if it can: remote frees first, then fresh carving.
    fn refill(self: *Heap, page: *Page) bool {
        _ = self;
        _ = page.collect();
        if (page.free != null) return true;
        const carved = page.extend();
        if (carved == 0) return false;
        stats.pageCarved(tierOf(page), carved * page.block_size);
        return true;
    }

    fn moveToFull(self: *Heap, page: *Page) void {
        self.queues[page.bin].remove(page);
        page.flags |= page_mod.flag_full;
        self.full[page.bin].pushBack(page);
    }

    fn moveToQueue(self: *Heap, page: *Page) void {
        self.full[page.bin].remove(page);
        page.flags &= ~page_mod.flag_full;
        self.queues[page.bin].pushBack(page);
    }

    /// Looks at up to full_scan_max full pages, oldest first, for blocks freed by other
    /// threads; those looked at and still full go to the back.
    fn reclaimFull(self: *Heap, bin: usize) ?*Page {
        var looked: usize = 0;
        while (looked < full_scan_max) : (looked += 1) {
            const page = self.full[bin].first orelse return null;
            if (page.collect() > 0) {
                self.moveToQueue(page);
                return page;
            }
            self.full[bin].remove(page);
            self.full[bin].pushBack(page);
        }
        return null;
    }

    /// Adopts segments left by exited threads; returns a page of `bin` if one appeared.
    fn adoptAbandoned(self: *Heap, bin: usize) ?*Page {
        var adopted: usize = 0;
        while (adopted < adopt_max) : (adopted += 1) {
            const seg = arena.popAbandoned(self) orelse return null;
            self.adopt(seg);
            while (self.queues[bin].first) |page| {
                if (self.refill(page)) return page;
                self.moveToFull(page);
            }
        }
        return null;
    }

    fn adopt(self: *Heap, seg: *Segment) void {
        self.segments.push(seg);
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
            if (page.used == 0) {
                self.releasePageKeepSegment(page, now);
            } else {
                self.queues[page.bin].pushBack(page);
            }
        }
        if (seg.used_pages == 0) {
            self.segments.remove(seg);
            arena.release(seg, now);
        }
    }

    fn newPage(self: *Heap, bin: usize) ?*Page {
        const slices = size_class.binPageSlices(bin);
        var reused: usize = 0;
        if (self.bestRun(slices)) |best| {
            const page = best.segment.allocPageAt(bin, slices, best.run.slice, &reused);
            return self.pageTaken(page, reused);
        }
        const seg = arena.acquire(self) orelse return null;
        if (seg.dirty_slices != 0) seg.dirty_since_ms = os.nowMs();
        self.segments.push(seg);
        const page = seg.allocPage(bin, slices, &reused) orelse unreachable;
        return self.pageTaken(page, reused);
    }

    /// Among the first segments with free slices (at most segments_scanned_max), the run
    /// of `slices` free slices with the most resident (dirty) slices; the first fit if none.
    fn bestRun(self: *Heap, slices: usize) ?struct { segment: *Segment, run: Segment.Run } {
        var best_segment: ?*Segment = null;
        var best_run: Segment.Run = undefined;
        var scanned: usize = 0;
        var seg_it = self.segments.first;
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

    fn pageTaken(self: *Heap, page: *Page, reused_dirty_bytes: usize) *Page {
        const seg = Segment.of(page.start);
        if (seg.free_slices == 0) {
            // keep full segments behind the ones with room
            self.segments.remove(seg);
            self.pushSegmentBack(seg);
        }
        stats.pageAcquired(tierOf(page), @as(usize, page.slice_count) * size_class.slice_size, reused_dirty_bytes);
        self.queues[page.bin].pushBack(page);
        return page;
    }

    fn pushSegmentBack(self: *Heap, seg: *Segment) void {
        const last = self.segments.last() orelse {
            self.segments.push(seg);
            return;
        };
        seg.prev = last;
        seg.next = null;
        last.next = seg;
        self.segments.count += 1;
    }

    /// From free: the bin's newest block is the one just freed; it stays in the cache
    /// (where a second free of it is seen) through whatever this flushes.
    noinline fn cacheSlow(self: *Heap, bin: usize) void {
        self.freeing_bin = bin;
        defer self.freeing_bin = no_bin;
        if (self.cache[bin].count > self.cache[bin].capacity) return self.cacheOverflow(bin);
        self.maintain(os.nowMs(), false);
    }

    fn cacheOverflow(self: *Heap, bin: usize) void {
        const cached = &self.cache[bin];
        const allocs = self.counters.allocs[bin];
        if (config.adapt) {
            const grown = thread_cache.capacityAfterOverflow(bin, cached.capacity, allocs - self.allocs_at_overflow[bin]);
            if (grown != cached.capacity) stats.incr(&stats.thread_cache_grows);
            cached.capacity = grown;
        }
        self.allocs_at_overflow[bin] = allocs;
        if (cached.count > cached.capacity) self.flushCache(bin, if (cached.capacity == 0) 0 else @max(1, cached.capacity / 2));
        self.tick();
    }

    /// Returns all but the `keep` most recently freed blocks of a bin's cache to their pages.
    pub fn flushCache(self: *Heap, bin: usize, keep: u32) void {
        const cached = &self.cache[bin];
        if (cached.count <= keep) return;
        var list: ?*Block = undefined;
        if (keep == 0) {
            list = cached.head;
            cached.head = null;
        } else {
            var node = cached.head.?;
            for (1..keep) |_| node = node.next.?;
            list = node.next;
            node.next = null;
        }
        cached.count = keep;
        self.returnBlocks(list);
    }

    /// Gives blocks back to their pages: this heap's pages directly, other heaps' pages
    /// through thread_free, one CAS per run of blocks of the same page. The run of the
    /// newest block goes last, so that block tops its page's list and a second free of it
    /// is still seen (alloc.justFreed).
    fn returnBlocks(self: *Heap, list: ?*Block) void {
        const newest = list orelse return;
        const newest_run = Run.from(newest);
        var it = newest_run.last.next;
        while (it) |first| {
            const run = Run.from(first);
            it = run.last.next;
            self.returnRun(run);
        }
        self.returnRun(newest_run);
    }

    /// Blocks of one page, linked first..last.
    const Run = struct {
        page: *Page,
        first: *Block,
        last: *Block,
        count: u32,

        /// The longest run of blocks of `first`'s page starting at `first`.
        fn from(first: *Block) Run {
            const page = Segment.of(@intFromPtr(first)).pageOf(@intFromPtr(first));
            const page_end = page.start + @as(usize, page.slice_count) * size_class.slice_size;
            var run: Run = .{ .page = page, .first = first, .last = first, .count = 1 };
            while (run.last.next) |next| {
                const addr = @intFromPtr(next);
                if (addr < page.start or addr >= page_end) break;
                run.last = next;
                run.count += 1;
            }
            return run;
        }
    };

    fn returnRun(self: *Heap, run: Run) void {
        const page = run.page;
        if (!self.ownsSegment(Segment.of(page.start))) {
            page.pushRemoteChain(run.first, run.last);
            return;
        }
        if (page.pushLocalChain(run.first, run.last, run.count)) {
            self.pageEmptied(page);
        } else if (page.flags & page_mod.flag_full != 0) {
            self.moveToQueue(page);
        }
    }

    /// Counts slow-path events; every few, checks the clock and purges what is due.
    /// Both malloc's refills and free's overflows and empty pages tick, so a program whose
    /// steady state never leaves the fast path still returns memory freed earlier.
    inline fn tick(self: *Heap) void {
        self.slow_calls +%= 1;
        if (self.slow_calls % ticks_per_clock_check == 0) self.maintainNow();
    }

    noinline fn maintainNow(self: *Heap) void {
        self.maintain(os.nowMs(), false);
    }

    fn pageEmptied(self: *Heap, page: *Page) void {
        if (self.direct[page.bin] == page) {
            // Keep the page that serves the bin (malloc/free ping-pong stays cheap);
            // maintain() stamps it and returns it once it stayed empty for the delay.
            page.empty_since_ms = 0;
            if (!page.isTiny()) self.retainEmpty(page);
            return;
        }
        if (page.flags & page_mod.flag_full != 0) {
            self.full[page.bin].remove(page);
        } else {
            self.queues[page.bin].remove(page);
        }
        self.releasePage(page, os.nowMs());
    }

    /// A mid page that empties while it is its bin's direct page is kept, so malloc/free
    /// of one size does not take a span each time; but only the last retained_max of them:
    /// the one kept before those goes back to its segment if it is still empty, where any
    /// bin can reuse its (still resident) slices. (Tiny pages are one slice each: they
    /// wait for the purge delay.)
    fn retainEmpty(self: *Heap, page: *Page) void {
        for (self.retained) |r| if (r == page) return;
        const slot = &self.retained[self.retained_next];
        self.retained_next = (self.retained_next + 1) % retained_max;
        const previous = slot.*;
        slot.* = page;
        const p = previous orelse return;
        if (self.direct[p.bin] != p or p.used != 0) return;
        self.direct[p.bin] = &page_mod.empty_page;
        self.queues[p.bin].remove(p);
        self.releasePage(p, os.nowMs());
    }

    /// Returns a page (already out of every queue) to its segment, and the segment to
    /// the arena once it has no page left.
    fn releasePage(self: *Heap, page: *Page, now_ms: u64) void {
        const seg = Segment.of(page.start);
        self.releasePageKeepSegment(page, now_ms);
        if (seg.used_pages == 0) {
            self.segments.remove(seg);
            arena.release(seg, now_ms);
        }
    }

    fn releasePageKeepSegment(self: *Heap, page: *Page, now_ms: u64) void {
        for (&self.retained) |*r| if (r.* == page) {
            r.* = null;
        };
        const seg = Segment.of(page.start);
        const carved = @as(usize, page.capacity) * page.block_size;
        stats.pageReleased(tierOf(page), @as(usize, page.slice_count) * size_class.slice_size, carved);
        const was_full = seg.free_slices == 0;
        seg.freePage(page, now_ms);
        if (seg.used_pages == 0) return;
        if (was_full) {
            self.segments.remove(seg);
            self.segments.push(seg);
        }
        if (stats.dirty_bytes.load(.monotonic) > config.retain_max_bytes) purgeSegment(seg);
    }

    /// Returns empty memory older than the purge delay to the OS (everything with `force`).
    /// Runs from slow paths only; its work is bounded by the heap's bins and segments.
    pub fn maintain(self: *Heap, now_ms: u64, force: bool) void {
        if (!force and now_ms < self.maintenance_due_ms) return;
        const delay = config.purge_delay_ms;
        self.maintenance_due_ms = now_ms + @max(1, delay / 4);
        for (0..bins) |bin| {
            const allocs = self.counters.allocs[bin];
            const idle = allocs == self.allocs_at_maintenance[bin];
            self.allocs_at_maintenance[bin] = allocs;
            const cached = &self.cache[bin];
            if (cached.count == 0 or !(idle or force)) continue;
            self.flushCache(bin, @intFromBool(bin == self.freeing_bin and cached.capacity > 0 and !force));
            if (config.adapt and idle) {
                const shrunk = thread_cache.capacityWhenIdle(bin, cached.capacity);
                if (shrunk != cached.capacity) stats.incr(&stats.thread_cache_shrinks);
                cached.capacity = shrunk;
            }
        }
        for (0..bins) |bin| {
            const page = self.direct[bin];
            if (page == &page_mod.empty_page or page.used != 0) continue;
            if (page.empty_since_ms == 0) page.empty_since_ms = now_ms;
            if (!force and now_ms -| page.empty_since_ms < delay) continue;
            _ = page.collect();
            if (page.used != 0) continue;
            self.direct[bin] = &page_mod.empty_page;
            self.queues[bin].remove(page);
            self.releasePage(page, now_ms);
        }
        var seg_it = self.segments.first;
        while (seg_it) |seg| : (seg_it = seg.next) {
            if (seg.dirty_slices == 0) continue;
            if (force or now_ms -| seg.dirty_since_ms >= delay) purgeSegment(seg);
        }
        arena.decay(now_ms, force);
        large.decay(now_ms, force);
    }

    /// Thread exit: every page without live blocks goes back; segments that still hold
    /// live blocks are abandoned for another thread to adopt.
    pub fn abandonAll(self: *Heap) void {
        for (0..bins) |bin| self.flushCache(bin, 0);
        const now = os.nowMs();
        for (0..bins) |bin| {
            self.direct[bin] = &page_mod.empty_page;
            inline for (.{ &self.queues[bin], &self.full[bin] }) |queue| {
                while (queue.first) |page| {
                    queue.remove(page);
                    page.flags &= ~page_mod.flag_full;
                    _ = page.collect();
                    if (page.used == 0) self.releasePage(page, now);
                }
            }
        }
        self.retained = [_]?*Page{null} ** retained_max;
        while (self.segments.pop()) |seg| {
            if (seg.dirty_slices != 0) purgeSegment(seg);
            arena.abandon(seg);
        }
    }
};

pub fn tierOf(page: *const Page) usize {
    return if (page.isTiny()) 0 else 1;
}

fn purgeSegment(seg: *Segment) void {
    const result = seg.purgeDirty(os.purge);
    stats.purged(0, result.tiny_bytes);
    stats.purged(1, result.mid_bytes);
}
