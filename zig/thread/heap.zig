//! heap.zig — a thread's heap: for every bin (tier x size class) the page that refills
//! it now (`direct`), a queue of its other pages that may have free blocks, and a queue of
//! pages found full; its thread's cache of free blocks; the segments it owns.
//!
//!   heap.cache         per bin a stack of free blocks (thread_cache.zig): malloc pops,
//!                      free pushes; everything below is reached only when a stack runs
//!                      empty (refill: allocSlow) or full (flush: freeFull)
//!   heap.direct[bin] ──> page        the page that refills the bin (one of its queue's)
//!   heap.queues[bin]:  page <-> page <-> page        (may have free blocks)
//!   heap.full[bin]:    page <-> page                 (full when last looked at)
//!   heap.segments      where pages are placed and released (placement.zig)
//!
//!   malloc's slow path: allocSlow -> findPage: the direct page, the queue, a few full
//!     pages (blocks freed by other threads), an abandoned segment, a new page -> a refill
//!   free's slow path: freeFull (the stack is full: thread_cache.overflow, flush to pages)
//!     or freeToPage (one block: the heap's page, or another heap's thread_free); a page
//!     that empties goes back to its segment (the direct page waits: maintain)
//!
//! Only the owning thread touches a heap (other threads give blocks back through a page's
//! thread_free, never through the heap; they may read a cache to confirm a double free),
//! so nothing here takes a lock except around the segments (placement.zig). Everything
//! here is a slow path: kept out of line, counted by `tick`, which every few calls looks
//! at the clock and runs `maintain` (idle caches, empty pages, purge.zig).
const std = @import("std");
const os = @import("../base/os.zig");
const config = @import("../settings/config.zig");
const stats = @import("../settings/stats.zig");
const size_class = @import("../settings/size_class.zig");
const arena = @import("../memory/arena.zig");
const page_mod = @import("../memory/page.zig");
const segment_mod = @import("../memory/segment.zig");
const thread_cache = @import("thread_cache.zig");
const placement = @import("placement.zig");
const purge = @import("purge.zig");
const growth = @import("growth.zig");
const large_local = @import("../memory/large_local.zig");
const block_mod = @import("../base/block.zig");
const budget = @import("../settings/budget.zig");
const profile = @import("../memory/profile.zig");
const Page = page_mod.Page;
const Block = page_mod.Block;
const Segment = segment_mod.Segment;
const Lock = @import("../base/lock.zig").Lock;

const bins = size_class.bin_count;
/// Full pages re-examined per slow path before a new page is taken (bounded work).
const full_scan_max = 8;
/// Empty mid pages kept as direct pages at most (retainEmpty).
const retained_max = 4;
/// Abandoned segments adopted per slow path at most.
const adopt_max = 4;
/// Parked heaps abandoned per maintenance pass at most (without `force`).
const parked_decay_max = 8;
/// Dirty (empty, resident) bytes all parked heaps keep together for the next threads at
/// most; a heap that parks keeps what is left of it, the rest of its dirty slices is purged.
const parked_keep_dirty_bytes: usize = 8 << 20;
/// A parked heap that no new thread took within this time is not one of threads created in
/// rounds: the next park or maintenance anywhere purges the dirty slices it kept
/// (trimStaleParked), while its pages wait for a thread or for decayParked.
const park_reuse_window_ms: u64 = 5;
/// Slow-path events between two looks at the clock for purging.
const ticks_per_clock_check = 32;

pub const PageQueue = struct {
    first: ?*Page = null,
    last: ?*Page = null,

    pub fn pushBack(self: *PageQueue, page: *Page) void {
        // in no queue now (a page is in at most one: removed, or fresh from Page.init)
        std.debug.assert(page.next == null and page.prev == null);
        std.debug.assert(self.first != page and page != &page_mod.empty_page);
        page.next = null;
        page.prev = self.last;
        if (self.last) |l| l.next = page else self.first = page;
        self.last = page;
    }

    pub fn remove(self: *PageQueue, page: *Page) void {
        // in this queue: the ends agree with its links
        std.debug.assert((page.prev == null) == (self.first == page));
        std.debug.assert((page.next == null) == (self.last == page));
        if (page.prev) |p| p.next = page.next else self.first = page.next;
        if (page.next) |n| n.prev = page.prev else self.last = page.prev;
        page.next = null;
        page.prev = null;
    }
};

/// Events the cache does not count itself, per bin (owner-written, read by stats readers).
pub const Counters = struct {
    /// Blocks handed out or taken back without the cache (bins without one, check mode,
    /// frees that went to the page: a suspected double free that was not one).
    direct_allocs: [bins]u64 = [_]u64{0} ** bins,
    direct_frees: [bins]u64 = [_]u64{0} ** bins,
    /// Blocks given back to a page another heap owns (at flush, or directly).
    remote_frees: [bins]u64 = [_]u64{0} ** bins,
};

/// What became of a block free gave to a heap's slow path.
pub const FreeOutcome = enum { ok, double_free };

/// Bytes of a heap kept for check mode's per-thread state (check.zig: its quarantine
/// batch, and a block per bin fetched ahead).
pub const check_local_bytes = 4096;

pub const Heap = struct {
    cache: thread_cache.Cache,
    direct: [bins]*Page,
    queues: [bins]PageQueue,
    full: [bins]PageQueue,
    segments: placement.Segments,
    counters: Counters,
    /// Links in the registry of live heaps (thread.zig).
    registry_next: ?*Heap,
    registry_prev: ?*Heap,
    /// Links in the list of exited threads' heaps (parked or empty), under exited_lock.
    exited_next: ?*Heap,
    exited_prev: ?*Heap,
    /// When its thread exited (parked heaps: maintenance abandons it after the purge delay).
    parked_since_ms: u64,
    /// The dirty bytes it kept when it parked (its share of parked_keep_dirty_bytes).
    parked_dirty_bytes: usize,
    slow_calls: u32,
    /// Check mode: no cache (every block goes to its page), pages flagged checked.
    checked: bool,
    /// The empty mid pages kept as their bins' direct pages, a ring (see retainEmpty).
    retained: [retained_max]?*Page,
    retained_next: u8,
    maintenance_due_ms: u64,
    /// Blocks this thread's realloc grew lately (growth.zig, alloc.realloc).
    grown: growth.Log,
    /// Large region blocks this thread freed lately (large_local.zig; slow.zig uses it).
    large_local: large_local.LocalLarge,
    /// The last memory-pressure epoch this heap purged for (budget.zig).
    relief_seen: u32,
    /// Check mode's state of the heap's thread (check.zig owns these bytes; all zero is
    /// empty; thread exit gives back what it holds).
    check_local: [check_local_bytes]u8 align(16),

    pub fn init(self: *Heap, checked: bool) void {
        self.direct = [_]*Page{&page_mod.empty_page} ** bins;
        self.queues = [_]PageQueue{.{}} ** bins;
        self.full = [_]PageQueue{.{}} ** bins;
        self.segments = .{};
        self.counters = .{};
        self.registry_next = null;
        self.registry_prev = null;
        self.exited_next = null;
        self.exited_prev = null;
        self.parked_since_ms = 0;
        self.parked_dirty_bytes = 0;
        self.slow_calls = 0;
        self.checked = checked;
        self.retained = [_]?*Page{null} ** retained_max;
        self.retained_next = 0;
        self.maintenance_due_ms = 0;
        self.grown = .{};
        self.large_local = .{};
        self.relief_seen = 0;
        @memset(&self.check_local, 0);
        self.cache.init(if (checked) noCache else thread_cache.initialCapacity);
        std.debug.assert(!checked or self.cache.capacity(0) == 0); // check mode: no cache
    }

    /// See validateHeap (below): every invariant of the heap, its pages and its segments.
    pub const validate = validateHeap;

    fn noCache(_: usize) u32 {
        return 0;
    }

    /// True when `seg`'s pages are this heap's (a block given back to them is local).
    pub inline fn ownsSegment(self: *const Heap, seg: *const Segment) bool {
        return seg.owner.load(.monotonic) == @as(*const anyopaque, self);
    }

    /// Blocks of `bin` handed out by this heap so far.
    pub fn allocs(self: *const Heap, bin: usize) u64 {
        return self.cache.pops(bin) + @atomicLoad(u64, &self.counters.direct_allocs[bin], .monotonic);
    }

    /// Blocks of `bin` this heap took back so far.
    pub fn frees(self: *const Heap, bin: usize) u64 {
        return @atomicLoad(u64, &self.cache.entries[bin].frees, .monotonic) + @atomicLoad(u64, &self.counters.direct_frees[bin], .monotonic);
    }

    pub fn addCountersInto(self: *const Heap, total: *stats.BinCounters) void {
        for (0..bins) |bin| {
            total.allocs[bin] += self.allocs(bin);
            total.frees[bin] += self.frees(bin);
            total.remote_frees[bin] += @atomicLoad(u64, &self.counters.remote_frees[bin], .monotonic);
        }
        self.large_local.addCountersInto(total);
    }

    /// Bytes of free blocks held in this heap's cache (a stats estimate).
    pub fn cachedBytes(self: *const Heap) u64 {
        var sum: u64 = 0;
        for (0..bins) |bin| sum += @as(u64, self.cache.count(bin)) * size_class.binBlockSize(bin);
        return sum;
    }

    // ---------------------------------------------------------------- malloc's slow path

    /// A block of `bin` when the cache has none: a refill from a page, or (bins without a
    /// cache) a block straight from a page. Null only when out of memory (errno ENOMEM).
    pub noinline fn allocSlow(self: *Heap, bin: usize) ?*Block {
        self.tick();
        const page = self.findPage(bin) orelse self.findPageAfterPurge(bin) orelse {
            os.setErrno(.NOMEM);
            return null;
        };
        std.debug.assert(page.bin == bin and self.direct[bin] == page);
        std.debug.assert(page.free_count > 0); // replenished: a block to hand out
        if (self.cache.capacity(bin) != 0) return self.refillAndPop(bin, page);
        const blk = profile.refilled(page.popFree().?, page, 0);
        if (!self.checked) blk.key = 0; // check mode verifies the key first (check.malloc)
        self.counters.direct_allocs[bin] += 1;
        return blk;
    }

    /// The sampled heap profile sees every refill (profile.zig: a byte countdown).
    inline fn refillAndPop(self: *Heap, bin: usize, page: *Page) *Block {
        const blk = self.cache.refillAndPop(bin, page);
        return profile.refilled(blk, page, self.cache.count(bin));
    }

    /// Out of memory (or of the budget, budget.zig): everything retained goes back at once
    /// (caches flushed, empty memory purged and unmapped), then one more try.
    noinline fn findPageAfterPurge(self: *Heap, bin: usize) ?*Page {
        self.maintain(os.nowMs(), true);
        return self.findPage(bin);
    }

    /// A page of `bin` with a free block, made the direct page. Null only when out of memory.
    fn findPage(self: *Heap, bin: usize) ?*Page {
        const current = self.direct[bin];
        if (current != &page_mod.empty_page) {
            if (replenish(current)) return current;
            self.moveToFull(current);
        }
        self.direct[bin] = &page_mod.empty_page;
        while (self.queues[bin].first) |page| {
            if (replenish(page)) return self.makeDirect(page);
            self.moveToFull(page);
        }
        if (self.reclaimFull(bin)) |page| return self.makeDirect(page);
        if (self.adoptAbandoned(bin)) |page| return self.makeDirect(page);
        const page = self.segments.placePage(self, bin, self.checked) orelse return null;
        self.queues[bin].pushBack(page);
        _ = replenish(page);
        return self.makeDirect(page);
    }

    fn makeDirect(self: *Heap, page: *Page) *Page {
        std.debug.assert(page.flags & (page_mod.flag_full | page_mod.flag_unused) == 0); // in its queue, in use
        std.debug.assert(self.ownsSegment(Segment.of(page.start)));
        self.direct[page.bin] = page;
        return page;
    }

    /// Gives `page` free blocks if it can: remote frees first, then fresh carving.
    fn replenish(page: *Page) bool {
        _ = page.collect();
        if (page.free_count > 0) return true;
        const carved = page.extend();
        if (carved == 0) return false;
        std.debug.assert(page.free_count >= carved);
        stats.pageCarved(page.tierIndex(), carved * page.block_size);
        return true;
    }

    fn moveToFull(self: *Heap, page: *Page) void {
        std.debug.assert(page.flags & page_mod.flag_full == 0);
        std.debug.assert(page.free_count == 0); // replenish found nothing
        self.queues[page.bin].remove(page);
        page.flags |= page_mod.flag_full;
        self.full[page.bin].pushBack(page);
    }

    fn moveToQueue(self: *Heap, page: *Page) void {
        std.debug.assert(page.flags & page_mod.flag_full != 0);
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
            std.debug.assert(page.bin == bin and page.flags & page_mod.flag_full != 0);
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
            std.debug.assert(self.ownsSegment(seg));
            self.segments.adopt(seg, self);
            while (self.queues[bin].first) |page| {
                if (replenish(page)) return page;
                self.moveToFull(page);
            }
        }
        return null;
    }

    /// placement.adopt's sink: a page with live blocks of an adopted segment.
    pub fn adoptPage(self: *Heap, page: *Page) void {
        std.debug.assert(page.used != 0 and page.flags & (page_mod.flag_full | page_mod.flag_unused) == 0);
        self.queues[page.bin].pushBack(page);
    }

    // ---------------------------------------------------------------- free's slow paths

    /// free found the bin's stack full (or the bin has none): make room, or give the block
    /// straight to its page.
    pub noinline fn freeFull(self: *Heap, page: *Page, blk: *Block) FreeOutcome {
        std.debug.assert(page.slice_offset == 0 and page.isBlockStart(@intFromPtr(blk))); // slow.free found it
        const bin = page.bin;
        if (self.checked or thread_cache.maxCapacity(bin) == 0) return self.freeToPage(page, blk);
        self.counters.remote_frees[bin] += self.cache.overflow(bin, config.adapt, self, self);
        self.tick();
        if (self.cache.push(bin, blk)) return .ok;
        return self.freeToPage(page, blk); // no room in the bin (not grown yet, or the budget)
    }

    /// Gives one block back to its page: this heap's page directly (a block already free
    /// there was freed twice), another heap's through thread_free (its owner checks).
    pub fn freeToPage(self: *Heap, page: *Page, blk: *Block) FreeOutcome {
        // (no assert on the page's state: a block that looked freed comes here, and if it
        // was a double free its page may be given back by its owner meanwhile)
        const bin = page.bin;
        if (!self.ownsSegment(Segment.of(page.start))) {
            blk.key = block_mod.free_key;
            page.pushRemoteChain(blk, blk);
            self.counters.direct_frees[bin] += 1;
            self.counters.remote_frees[bin] += 1;
            return .ok;
        }
        switch (page.pushFree(blk)) {
            .double_free => return .double_free,
            .ok, .emptied => {},
        }
        self.counters.direct_frees[bin] += 1;
        self.pageGotBlocks(page);
        self.tick();
        return .ok;
    }

    /// Returns all but the `keep` most recently freed blocks of a bin's cache to their pages.
    pub fn flushCache(self: *Heap, bin: usize, keep: u32) void {
        std.debug.assert(bin < bins);
        self.counters.remote_frees[bin] += self.cache.flushKeep(bin, keep, self, self);
        std.debug.assert(self.cache.count(bin) <= keep);
    }

    /// thread_cache.flush's sink: blocks came back to `page` (this heap's).
    pub fn pageGotBlocks(self: *Heap, page: *Page) void {
        if (page.flags & page_mod.flag_unused != 0) return; // released by an earlier run
        std.debug.assert(page.slice_offset == 0 and self.ownsSegment(Segment.of(page.start)));
        if (page.used == 0) {
            self.pageEmptied(page);
        } else if (page.flags & page_mod.flag_full != 0) {
            self.moveToQueue(page);
        }
    }

    fn pageEmptied(self: *Heap, page: *Page) void {
        std.debug.assert(page.used == 0 and page.flags & page_mod.flag_unused == 0);
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
        std.debug.assert(!page.isTiny() and self.direct[page.bin] == page);
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

    /// Returns a page (already out of every queue) to its segment (placement.zig).
    fn releasePage(self: *Heap, page: *Page, now_ms: u64) void {
        std.debug.assert(page.used == 0 and self.direct[page.bin] != page);
        std.debug.assert(page.next == null and page.prev == null); // out of every queue
        for (&self.retained) |*r| if (r.* == page) {
            r.* = null;
        };
        self.segments.releasePage(page, now_ms);
    }

    // ---------------------------------------------------------------- maintenance

    /// Counts slow-path events; every few, checks the clock and purges what is due.
    /// Both malloc's refills and free's overflows tick, so a program whose steady state
    /// leaves the fast paths now and then still returns memory freed earlier.
    inline fn tick(self: *Heap) void {
        self.slow_calls +%= 1;
        // Parked heaps wait for some thread's maintenance to give them up: look every time.
        if (self.slow_calls % ticks_per_clock_check == 0 or parkedCount() != 0) self.maintainNow();
    }

    noinline fn maintainNow(self: *Heap) void {
        self.maintain(os.nowMs(), false);
    }

    /// The blocks of idle caches back to their pages (thread_cache.maintainBin), direct
    /// pages empty for the purge delay back to their segments, then empty memory back to
    /// the OS along the decay curve (purge.zig); everything with `force`. Runs from slow
    /// paths only; its work is bounded by the heap's bins and segments.
    pub fn maintain(self: *Heap, now_ms: u64, force_asked: bool) void {
        const force = force_asked or budget.shouldRelieve(now_ms, &self.relief_seen); // near a memory limit: everything
        if (!force and now_ms < self.maintenance_due_ms) return;
        const delay = config.purge_delay_ms;
        self.maintenance_due_ms = now_ms + @max(1, delay / 4);
        std.debug.assert(self.maintenance_due_ms > now_ms); // the next one is later
        const adapt = config.adapt and !self.checked;
        for (0..bins) |bin| self.counters.remote_frees[bin] += self.cache.maintainBin(bin, force, adapt, self, self);
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
        self.large_local.decay(now_ms, force);
        purge.heapSlices(&self.segments, now_ms, force);
        trimStaleParked(now_ms);
        decayParked(now_ms, force);
        purge.shared(now_ms, force);
    }

    /// Thread exit, after returnHeld: the heap is parked whole for the next thread (see
    /// "exited threads' heaps" below; its cache is empty: another heap's blocks must not wait
    /// in a cache nobody pops); the pages,
    /// their queues and the segments stay as they are, empty slices resident, so the next
    /// thread allocates from them with no page fault, no adoption and no purge.
    /// Everything the heap holds for its thread goes back: every cached block to its page,
    /// every large block it held to its region (thread exit, before its counters retire;
    /// giving a parked heap up).
    pub fn returnHeld(self: *Heap, now_ms: u64) void {
        for (0..bins) |bin| self.flushCache(bin, 0); // (each asserts its stack is empty after)
        self.large_local.releaseAll(now_ms);
        std.debug.assert(self.large_local.bytes == 0);
    }

    pub fn park(self: *Heap, now_ms: u64) void {
        for (0..bins) |bin| std.debug.assert(self.cache.count(bin) == 0); // returnHeld first
        std.debug.assert(self.large_local.bytes == 0);
        // What dirty memory it keeps comes out of what all parked heaps may keep together
        // (reserved first, so two threads exiting at once do not both take the same room).
        exited_lock.acquire();
        const room = parked_keep_dirty_bytes -| parked_dirty_bytes;
        parked_dirty_bytes += room;
        exited_lock.release();
        const kept = self.segments.trimDirty(room);
        std.debug.assert(kept <= room);
        self.parked_since_ms = now_ms;
        self.parked_dirty_bytes = kept;
        exited_lock.acquire();
        parked_dirty_bytes -= room - kept;
        const arena_room = parked_keep_dirty_bytes -| parked_dirty_bytes;
        parked.pushFront(self);
        exited_lock.release();
        // Empty segments cached in the arena (this exit may have emptied some) share the
        // same bound: nothing may run maintenance again after the last thread exits.
        arena.trimCachedDirty(arena_room);
        trimStaleParked(now_ms);
    }

    /// A new thread takes a parked heap: its pages and segments are kept; what belonged to
    /// the old thread goes (the cache, empty after park; counters, added to the retired
    /// ones at exit; the growth log).
    pub fn resumeParked(self: *Heap) void {
        std.debug.assert(self.segments.list.count != 0);
        for (0..bins) |bin| std.debug.assert(self.cache.count(bin) == 0);
        self.cache.init(if (self.checked) noCache else thread_cache.initialCapacity);
        self.counters = .{};
        self.large_local = .{}; // empty since park: its counters retired with the thread
        self.registry_next = null;
        self.registry_prev = null;
        self.exited_next = null;
        self.exited_prev = null;
        self.parked_since_ms = 0;
        self.grown = .{};
        self.collectEveryPage(os.nowMs());
    }

    /// Every page of the heap takes the blocks other threads gave back to it (while it was
    /// parked, say): a page left empty goes back to its segment (its slices stay resident
    /// for the next page placed there), a full one that got some joins its bin's queue.
    /// Bounded by the heap's pages.
    fn collectEveryPage(self: *Heap, now_ms: u64) void {
        for (0..bins) |bin| {
            inline for (.{ &self.full[bin], &self.queues[bin] }, .{ true, false }) |queue, is_full| {
                var it = queue.first;
                while (it) |page| {
                    it = page.next;
                    std.debug.assert(page.bin == bin and (page.flags & page_mod.flag_full != 0) == is_full);
                    if (page.collect() == 0 and page.used != 0) continue;
                    if (page.used == 0 and self.direct[bin] != page) {
                        queue.remove(page);
                        page.flags &= ~page_mod.flag_full;
                        self.releasePage(page, now_ms);
                    } else if (is_full) {
                        self.moveToQueue(page);
                    }
                }
            }
        }
    }

    /// A parked heap given up (decayParked; tests): every cached block goes back to its
    /// page, every page without live blocks goes back, every dirty slice is purged; segments
    /// that still hold live blocks are abandoned for another thread to adopt, the others
    /// cached in the arena (placement.abandonAll).
    pub fn abandonAll(self: *Heap) void {
        const now = os.nowMs();
        self.returnHeld(now);
        for (0..bins) |bin| {
            self.direct[bin] = &page_mod.empty_page;
            inline for (.{ &self.queues[bin], &self.full[bin] }) |queue| {
                while (queue.first) |page| {
                    queue.remove(page);
                    page.flags &= ~page_mod.flag_full;
                    _ = page.collect();
                    if (page.used == 0) self.segments.releasePageKeepSegment(page, now);
                }
            }
            std.debug.assert(self.queues[bin].first == null and self.full[bin].first == null);
        }
        self.retained = [_]?*Page{null} ** retained_max;
        self.segments.abandonAll(now);
    }
};

// ---------------------------------------------------------------- exited threads' heaps
//
//   parked:      heap <-> heap <-> heap    newest first: heaps of exited threads that keep
//                                          their pages, queues and segments for the next thread
//   empty_heaps: heap -> heap              heaps with nothing left (memory given up)
//
// A new thread takes the newest parked heap whole (takeExited: threads created in rounds
// reuse the last round's pages, with no page fault and no adoption), else an empty one,
// else thread.zig maps a new one. Blocks freed into a parked heap's pages meanwhile wait
// on their pages' thread_free. A parked heap nobody took within the purge delay is
// abandoned by any thread's maintenance or the background purger (decayParked): its empty
// pages go back, its segments with live blocks go to the arena for any thread to adopt
// (placement.abandonAll: what it keeps dirty for the adopter, arena.decayAbandoned purges),
// and it joins empty_heaps. Heap memory is never unmapped (a stats reader may walk it).
// exited_lock guards both lists and every heap's exited_next/prev; no other lock is taken
// while it is held.

pub var exited_lock: Lock = .{};

const ParkedList = struct {
    first: ?*Heap = null,
    last: ?*Heap = null,
    count: usize = 0,

    fn pushFront(self: *ParkedList, h: *Heap) void {
        std.debug.assert(self.first != h and h.exited_next == null and h.exited_prev == null);
        h.exited_prev = null;
        h.exited_next = self.first;
        if (self.first) |f| f.exited_prev = h else self.last = h;
        self.first = h;
        @atomicStore(usize, &self.count, self.count + 1, .monotonic);
    }

    fn remove(self: *ParkedList, h: *Heap) void {
        std.debug.assert((h.exited_prev == null) == (self.first == h));
        std.debug.assert((h.exited_next == null) == (self.last == h));
        std.debug.assert(h.parked_dirty_bytes <= parked_dirty_bytes);
        parked_dirty_bytes -= h.parked_dirty_bytes;
        h.parked_dirty_bytes = 0;
        if (h.exited_prev) |p| p.exited_next = h.exited_next else self.first = h.exited_next;
        if (h.exited_next) |n| n.exited_prev = h.exited_prev else self.last = h.exited_prev;
        h.exited_next = null;
        h.exited_prev = null;
        std.debug.assert(self.count > 0);
        @atomicStore(usize, &self.count, self.count - 1, .monotonic);
    }
};

var parked: ParkedList = .{};
var empty_heaps: ?*Heap = null;
/// The sum of the parked heaps' parked_dirty_bytes (and room being reserved by a park).
var parked_dirty_bytes: usize = 0;

/// What a new thread gets from the exited heaps: the newest parked heap (`whole`: resume
/// it, Heap.resumeParked), else an empty one (initialise it), else null.
pub const Exited = struct { heap: *Heap, whole: bool };

pub fn takeExited() ?Exited {
    exited_lock.acquire();
    defer exited_lock.release();
    if (parked.first) |h| {
        parked.remove(h);
        return .{ .heap = h, .whole = h.segments.list.count != 0 };
    }
    const h = empty_heaps orelse return null;
    empty_heaps = h.exited_next;
    h.exited_next = null;
    return .{ .heap = h, .whole = false };
}

/// In a forked child (process.zig, after exited_lock is reset): another thread of the parent
/// may have held a parked heap's segments lock at the fork (trimStaleParked, decayParked);
/// in the child no thread holds one, and a child thread that takes that heap would wait on
/// it forever. Bounded by the parked heaps.
pub fn afterForkInChild() void {
    var it = parked.first;
    var n: usize = 0;
    while (it) |h| : (it = h.exited_next) {
        n += 1;
        std.debug.assert(n <= parked.count);
        h.segments.lock.resetInChild();
    }
}

/// Calls `visit(context, heap, false)` for every exited thread's heap, parked or empty,
/// under exited_lock (the memory report measures their memory). Bounded by their number.
pub fn forEachExited(context: anytype, comptime visit: fn (@TypeOf(context), *const Heap, bool) void) void {
    exited_lock.acquire();
    defer exited_lock.release();
    var it = parked.first;
    var n: usize = 0;
    while (it) |h| : (it = h.exited_next) {
        n += 1;
        std.debug.assert(n <= parked.count);
        visit(context, h, false);
    }
    var empty_it = empty_heaps;
    while (empty_it) |h| : (empty_it = h.exited_next) visit(context, h, false);
}

/// Parked heaps (at rest: no thread's) waiting for a new thread.
pub fn parkedCount() usize {
    return @atomicLoad(usize, &parked.count, .monotonic);
}

/// Purges the dirty slices kept by parked heaps that waited longer than
/// park_reuse_window_ms (oldest first, at most parked_decay_max a call). Nothing else
/// decays a parked heap until some thread's maintenance abandons it, and a program whose
/// threads exited may take only fast paths from then on. A heap may be resumed meanwhile:
/// its segments' lock orders the purge with its new owner (as the background purger's).
pub fn trimStaleParked(now_ms: u64) void {
    if (parkedCount() == 0) return;
    var stale: [parked_decay_max]*Heap = undefined;
    var count: usize = 0;
    exited_lock.acquire();
    var it = parked.last;
    while (it) |h| : (it = h.exited_prev) {
        if (count == stale.len or now_ms -| h.parked_since_ms < park_reuse_window_ms) break;
        if (h.parked_dirty_bytes == 0) continue;
        std.debug.assert(h.parked_dirty_bytes <= parked_dirty_bytes);
        parked_dirty_bytes -= h.parked_dirty_bytes;
        h.parked_dirty_bytes = 0;
        stale[count] = h;
        count += 1;
    }
    exited_lock.release();
    for (stale[0..count]) |h| _ = h.segments.trimDirty(0);
}

/// Abandons the parked heaps that waited for the purge delay (all with `force`), oldest
/// first, at most parked_decay_max a call without `force`; each then joins empty_heaps.
/// Bounded: with `force`, by the parked heaps there were when it started.
pub fn decayParked(now_ms: u64, force: bool) void {

    if (parkedCount() == 0) return;
    const limit = if (force) parkedCount() else parked_decay_max;
    for (0..limit) |_| {
        exited_lock.acquire();
        const oldest = parked.last;
        const due = if (oldest) |h| force or now_ms -| h.parked_since_ms >= config.purge_delay_ms else false;
        if (due) parked.remove(oldest.?);
        exited_lock.release();
        if (!due) return;
        const h = oldest.?;
        h.abandonAll(); // no thread's: this caller has it alone now
        exited_lock.acquire();
        h.exited_next = empty_heaps;
        empty_heaps = h;
        exited_lock.release();
    }
}

/// The heap of an exited thread that needs no more work (its memory already given up).
pub fn addEmpty(h: *Heap) void {
    exited_lock.acquire();
    defer exited_lock.release();
    h.exited_next = empty_heaps;
    empty_heaps = h;
}

// ---------------------------------------------------------------- validation

pub const Invalid = error{
    DirectPageWrong,
    QueueLinksBroken,
    QueueTooLong,
    PageInWrongQueue,
    PageNotOwned,
    PagesNotQueued,
    RetainedPageWrong,
} || placement.Segments.Invalid || thread_cache.Cache.Invalid;

/// Checks a heap against its invariants (its owner's thread only; tests and debug builds):
/// every bin's direct page is in its queue; every page of a queue is of that bin, owned,
/// flagged full exactly in `full`, and valid (Page.validate); every page in use of the
/// heap's segments is in exactly one queue; the segment list is valid (placement.zig:
/// linked, owned, those with free slices first, each segment valid); every cache stack is
/// valid (Cache.validate); the retained pages are mid pages in use. Bounded by the heap's
/// segments and bins.
pub fn validateHeap(self: *Heap) Invalid!void {
    const max_pages = self.segments.list.count * segment_mod.slice_count + 1;
    var queued: usize = 0;
    for (0..bins) |bin| {
        try self.cache.validate(bin);
        const direct = self.direct[bin];
        var direct_seen = direct == &page_mod.empty_page;
        inline for (.{ &self.queues[bin], &self.full[bin] }, .{ false, true }) |queue, is_full| {
            var prev: ?*Page = null;
            var it = queue.first;
            var n: usize = 0;
            while (it) |page| : (it = page.next) {
                n += 1;
                if (n > max_pages) return error.QueueTooLong;
                if (page.prev != prev) return error.QueueLinksBroken;
                if (page.bin != bin or (page.flags & page_mod.flag_full != 0) != is_full) return error.PageInWrongQueue;
                if (!self.ownsSegment(Segment.of(page.start))) return error.PageNotOwned;
                try page.validate();
                if (page == direct and !is_full) direct_seen = true;
                prev = page;
            }
            if (queue.last != prev) return error.QueueLinksBroken;
            queued += n;
        }
        if (!direct_seen) return error.DirectPageWrong;
    }
    if (try self.segments.validate(self) != queued) return error.PagesNotQueued;
    for (self.retained) |r| {
        const page = r orelse continue;
        if (page.flags & page_mod.flag_unused != 0 or page.isTiny() or !self.ownsSegment(Segment.of(page.start))) return error.RetainedPageWrong;
    }
}

// ---------------------------------------------------------------- tests

const testing = std.testing;

/// A heap of the test's own (no thread's, not in the registry), as thread.zig maps one.
fn testHeap() !*Heap {
    block_mod.initSecrets();
    const memory = os.map(std.mem.alignForward(usize, @sizeOf(Heap), os.page_size)) orelse return error.OutOfMemory;
    const h: *Heap = @ptrCast(@alignCast(memory));
    h.init(false);
    return h;
}

fn dropTestHeap(h: *Heap) void {
    os.unmap(@ptrCast(h), std.mem.alignForward(usize, @sizeOf(Heap), os.page_size));
}

fn testAlloc(h: *Heap, bin: usize) !*Block {
    return h.cache.pop(bin) orelse h.allocSlow(bin) orelse error.OutOfMemory;
}

/// What slow.freeBlock does for a live block of a heap's own thread.
fn testFree(h: *Heap, blk: *Block) !void {
    const page = Segment.of(@intFromPtr(blk)).pageOf(@intFromPtr(blk));
    if (h.cache.push(page.bin, blk)) return;
    try testing.expectEqual(FreeOutcome.ok, h.freeFull(page, blk));
}

test "a heap serves blocks from its pages and takes them back, valid at every step" {
    const h = try testHeap();
    defer dropTestHeap(h);
    const test_bins = [_]usize{ size_class.tinyBin(16), size_class.tinyBin(1000), size_class.midBin(5000), size_class.midBin(100_000), size_class.midBin(300_000) };
    var blocks: [600]*Block = undefined;
    for (&blocks, 0..) |*b, i| {
        const bin = test_bins[(i * 7) % test_bins.len];
        b.* = try testAlloc(h, bin);
        @memset(@as([*]u8, @ptrCast(b.*))[0..size_class.binBlockSize(bin)], @truncate(i));
        if (i % 50 == 0) try h.validate();
    }
    try h.validate();
    for (blocks, 0..) |b, i| {
        const bin = test_bins[(i * 7) % test_bins.len];
        try testing.expectEqual(@as(u8, @truncate(i)), @as([*]u8, @ptrCast(b))[size_class.binBlockSize(bin) - 1]);
        try testFree(h, b);
        if (i % 50 == 0) try h.validate();
    }
    for (0..bins) |bin| h.flushCache(bin, 0);
    try h.validate();
    h.maintain(os.nowMs(), true);
    try h.validate();
    try testing.expectEqual(@as(usize, 0), h.segments.list.count);
}

test "a full segment adopted from an exited thread goes behind the segments with room" {
    // Regression: adopt() put every adopted segment first, full or not; bestRun stops at
    // the first full segment, so the heap mapped new segments while its own had room.
    const a = try testHeap();
    defer dropTestHeap(a);
    const b = try testHeap();
    defer dropTestHeap(b);
    const tiny = try testAlloc(b, size_class.tinyBin(64)); // b has a segment with room
    // a: one segment filled by four spans of 16, 16, 16 and 15 slices, a block live in each
    const seg = arena.acquire(a) orelse return error.OutOfMemory;
    a.segments.list.push(seg);
    const big_bin = size_class.midBin(1 << 20);
    const last_bin = size_class.midBin(960 * 1024);
    var live: [4]*Block = undefined;
    for (&live, [_]usize{ big_bin, big_bin, big_bin, last_bin }, [_]usize{ 1, 17, 33, 49 }) |*blk, bin, slice| {
        var reused: usize = 0;
        const page = seg.allocPageAt(bin, size_class.binPageSlices(bin), slice, false, &reused);
        stats.pageAcquired(page.tierIndex(), @as(usize, page.slice_count) * size_class.slice_size, reused);
        a.queues[bin].pushBack(page);
        _ = Heap.replenish(page);
        blk.* = page.popFree().?;
        blk.*.key = 0;
    }
    try testing.expectEqual(@as(u64, 0), seg.free_slices);
    try a.validate();
    a.abandonAll();
    const adopted = arena.popAbandoned(b).?;
    try testing.expectEqual(seg, adopted);
    b.segments.adopt(adopted, b);
    try b.validate();
    for (live) |blk| try testFree(b, blk); // local frees now
    try testFree(b, tiny);
    for (0..bins) |bin| b.flushCache(bin, 0);
    b.maintain(os.nowMs(), true);
    try b.validate();
    try testing.expectEqual(@as(usize, 0), b.segments.list.count);
}

test "thread exit: pages without live blocks go back, the rest is abandoned and adopted whole" {
    const a = try testHeap();
    defer dropTestHeap(a);
    const b = try testHeap();
    defer dropTestHeap(b);
    const bin = size_class.tinyBin(48);
    var kept: [40]*Block = undefined;
    for (&kept) |*k| k.* = try testAlloc(a, bin);
    for (0..200) |_| try testFree(a, try testAlloc(a, size_class.midBin(3000)));
    try a.validate();
    const abandoned_before = stats.segments_abandoned.load(.monotonic);
    a.abandonAll();
    try testing.expectEqual(@as(usize, 0), a.segments.list.count);
    try testing.expect(stats.segments_abandoned.load(.monotonic) > abandoned_before);
    // b adopts while it looks for a page of the bin; a's blocks are then b's local blocks
    var adopted = false;
    for (0..8) |_| {
        if (b.adoptAbandoned(bin)) |page| {
            if (Segment.of(page.start) == Segment.of(@intFromPtr(kept[0]))) adopted = true;
            _ = b.makeDirect(page);
        }
        if (adopted) break;
    }
    try testing.expect(adopted);
    try b.validate();
    for (kept) |k| try testFree(b, k);
    for (0..bins) |i| b.flushCache(i, 0);
    b.maintain(os.nowMs(), true);
    try b.validate();
    try testing.expectEqual(@as(usize, 0), b.segments.list.count);
}

test "a parked heap is taken whole by the next thread: its pages serve it again, what others freed meanwhile included" {
    const a = try testHeap();
    defer dropTestHeap(a);
    const other = try testHeap();
    defer dropTestHeap(other);
    const bin = size_class.tinyBin(64);
    var live: [100]*Block = undefined;
    for (&live) |*b| b.* = try testAlloc(a, bin);
    const segments_before = a.segments.list.count;
    const parked_before = parkedCount();
    a.returnHeld(os.nowMs());
    a.park(os.nowMs());
    try testing.expectEqual(parked_before + 1, parkedCount());
    // another thread frees the parked heap's blocks: they wait on their page's thread_free
    for (live) |b| try testing.expectEqual(FreeOutcome.ok, other.freeToPage(Segment.of(@intFromPtr(b)).pageOf(@intFromPtr(b)), b));
    const taken = takeExited().?;
    try testing.expectEqual(a, taken.heap);
    try testing.expect(taken.whole);
    try testing.expectEqual(parked_before, parkedCount());
    a.resumeParked();
    try a.validate();
    try testing.expectEqual(segments_before, a.segments.list.count); // nothing abandoned or mapped
    // the blocks come back from the same page, no new page is placed
    const page = Segment.of(@intFromPtr(live[0])).pageOf(@intFromPtr(live[0]));
    try testing.expectEqual(@as(u32, 0), page.used);
    for (0..100) |_| {
        const b = try testAlloc(a, bin);
        try testing.expectEqual(page, Segment.of(@intFromPtr(b)).pageOf(@intFromPtr(b)));
        try testFree(a, b);
    }
    try a.validate();
    for (0..bins) |i| a.flushCache(i, 0);
    a.maintain(os.nowMs(), true);
    try testing.expectEqual(@as(usize, 0), a.segments.list.count);
}

test "a parked heap nobody takes is given up after the purge delay (all at once with force)" {
    const a = try testHeap();
    defer dropTestHeap(a);
    const b = try testHeap();
    defer dropTestHeap(b);
    decayParked(os.nowMs(), true); // other tests' exited threads
    const kept = try testAlloc(a, size_class.midBin(3000));
    a.returnHeld(os.nowMs());
    a.park(os.nowMs());
    const parked_after = parkedCount();
    a.parked_since_ms = std.math.maxInt(u64) / 2; // not due for a long time
    decayParked(os.nowMs(), false);
    try testing.expectEqual(parked_after, parkedCount());
    const abandoned_before = stats.segments_abandoned.load(.monotonic);
    decayParked(os.nowMs(), true);
    try testing.expectEqual(@as(usize, 0), parkedCount());
    try testing.expect(stats.segments_abandoned.load(.monotonic) > abandoned_before);
    try testing.expectEqual(@as(usize, 0), a.segments.list.count);
    // the empty heap comes back initialised; its live block's segment is adopted by b
    const taken = takeExited().?;
    try testing.expectEqual(a, taken.heap);
    try testing.expect(!taken.whole);
    taken.heap.init(false);
    var adopted = false;
    for (0..8) |_| {
        if (b.adoptAbandoned(size_class.midBin(3000))) |page| {
            _ = b.makeDirect(page);
            if (Segment.of(page.start) == Segment.of(@intFromPtr(kept))) adopted = true;
        }
        if (adopted) break;
    }
    try testing.expect(adopted);
    try testFree(b, kept);
    for (0..bins) |i| b.flushCache(i, 0);
    b.maintain(os.nowMs(), true);
    try b.validate();
}

test "a forked child can take a parked heap whose segments lock a parent thread held at the fork" {
    const a = try testHeap();
    defer dropTestHeap(a);
    _ = try testAlloc(a, size_class.tinyBin(32));
    a.returnHeld(os.nowMs());
    a.park(os.nowMs());
    a.segments.lock.acquire(); // a parent thread trimming it when the process forked
    afterForkInChild();
    try testing.expect(a.segments.lock.tryAcquire()); // free in the child
    a.segments.lock.release();
    decayParked(os.nowMs(), true);
    try testing.expectEqual(a, takeExited().?.heap); // out of the exited lists before it is unmapped
}
