//! heap.zig — a thread's heap: for every bin (tier x size class) the page that refills it
//! now (`direct`) and a queue of its pages that may have free blocks; its thread's cache
//! of free blocks. A heap holds pages, never segments: the segments are every heap's
//! (memory/arena.zig), and a page a heap gives up goes to nobody (memory/page.zig:
//! ownership) — to be taken by the next thread that frees into it or needs its size class.
//!
//!   heap.cache         per bin a stack of free blocks (thread_cache.zig): malloc pops,
//!                      free pushes; everything below is reached only when a stack runs
//!                      empty (refill: allocSlow) or full (flush: freeFull)
//!   heap.direct[bin] ──> page        the page that refills the bin (one of its queue's)
//!   heap.queues[bin]:  page <-> page <-> page        (pages this heap holds)
//!
//!   malloc's slow path: allocSlow -> findPage: the direct page, the queue (a page found
//!     full is given up: giveUpFull), an abandoned page of the bin (abandoned.take), a new
//!     page (arena.placePage) -> a refill
//!   free's slow path: freeFull (the stack is full: thread_cache.overflow, flush to pages)
//!     or freeToPage (one block: the heap's page, or another's thread_free); a page that
//!     empties goes back to its segment (the direct page waits: maintain); a free that
//!     takes an abandoned page settles it (settleClaimed)
//!   maintenance: a bin idle since the last one gives up its pages (giveUpIdle)
//!   thread exit: abandonAll — every page without live blocks back to its segment, every
//!     other one given up (listed for other heaps when it has room)
//!
//! A page given up when it is full (mimalloc 3 does the same) is taken by the first thread
//! that frees into it: this heap when its own frees come back (it takes the page back into
//! its queue), else another thread, which gives the page back to its segment if the free
//! emptied it, or lists it for any heap that needs its bin. So no heap scans full pages for
//! blocks other threads freed, and a full page of an idle or exited thread does not wait
//! for it.
//!
//! Only the owning thread touches a heap (other threads give blocks back through a page's
//! thread_free, never through the heap; they may read a cache to confirm a double free),
//! so nothing here takes a lock of its own (the arena's and the abandoned lists' are taken
//! where pages are placed, given back, listed or taken). Everything here is a slow path:
//! kept out of line, counted by `tick`, which every few calls looks at the clock and runs
//! `maintain` (idle caches, idle bins' pages given up, empty pages, purge.zig).
const std = @import("std");
const os = @import("../base/os.zig");
const config = @import("../settings/config.zig");
const stats = @import("../settings/stats.zig");
const size_class = @import("../settings/size_class.zig");
const arena = @import("../memory/arena.zig");
const abandoned = @import("../memory/abandoned.zig");
const page_mod = @import("../memory/page.zig");
const segment_mod = @import("../memory/segment.zig");
const thread_cache = @import("thread_cache.zig");
const purge = @import("purge.zig");
const growth = @import("growth.zig");
const large_local = @import("../memory/large_local.zig");
const block_mod = @import("../base/block.zig");
const budget = @import("../settings/budget.zig");
const profile = @import("../memory/profile.zig");
const misuse = @import("../settings/misuse.zig");
const Page = page_mod.Page;
const Block = page_mod.Block;
const Segment = segment_mod.Segment;
const Lock = @import("../base/lock.zig").Lock;

const bins = size_class.bin_count;
/// Empty mid pages kept as direct pages at most (retainEmpty).
const retained_max = 4;
/// Slow-path events between two looks at the clock for purging.
const ticks_per_clock_check = 32;
/// Dirty (empty, resident) bytes a thread's exit leaves at most, all segments together
/// (arena.trimDirty): the next threads reuse that much without page faults (threads made
/// in rounds: mt_churn 2 x 20, faults a block 0.20 with 8 MiB, 0.13 with 16, 0.03 with 32),
/// and a program that never calls the allocator again keeps no more resident. One that
/// calls it now and then gives the rest back along the decay curve: after an exit every
/// slow path looks at the clock until nothing retained is left (exit_leftovers).
pub const exit_keep_dirty_bytes: usize = 32 << 20;

/// Until this time (monotonic ms; 0: none) every slow path of every thread runs maintenance
/// when it is due: what a thread's exit kept (exit_keep_dirty_bytes) goes back along the
/// decay curve even in a program that takes a slow path only now and then. A thread's exit
/// sets it to two purge delays ahead (the curve has given everything back by then); the
/// maintenance that finds it passed, or nothing retained left, clears it with a CAS (a
/// later exit's deadline is never lost).
var exit_leftovers_until_ms = std.atomic.Value(u64).init(0);

fn noteExitLeftovers(now_ms: u64) void {
    const until = now_ms + 2 * config.purge_delay_ms;
    // a deadline not behind now: now itself with HAKMEM_PURGE_DELAY_MS=0 (a valid setting:
    // everything retained goes back at once, so the window closes at the next maintenance)
    std.debug.assert(until >= now_ms);
    std.debug.assert(until - now_ms == 2 * config.purge_delay_ms); // (no overflow)
    var seen = exit_leftovers_until_ms.load(.monotonic);
    while (seen < until) {
        seen = exit_leftovers_until_ms.cmpxchgWeak(seen, until, .monotonic, .monotonic) orelse return;
    }
    std.debug.assert(seen >= until); // a later exit's deadline stands
}

fn settleExitLeftovers(now_ms: u64) void {
    const until = exit_leftovers_until_ms.load(.monotonic);
    if (until == 0 or (now_ms < until and purge.retainsAny())) return;
    _ = exit_leftovers_until_ms.cmpxchgStrong(until, 0, .monotonic, .monotonic);
}

pub const PageQueue = struct {
    first: ?*Page = null,
    last: ?*Page = null,

    pub fn pushBack(self: *PageQueue, page: *Page) void {
        // in no queue now (a page is in at most one: removed, or fresh from Page.init)
        std.debug.assert(page.next == null);
        std.debug.assert(page.prev == null);
        std.debug.assert(self.first != page);
        std.debug.assert(page != &page_mod.empty_page); // the sentinel is in no queue
        std.debug.assert(page.flags & page_mod.flag_unused == 0); // a page in use
        std.debug.assert(page.slice_offset == 0); // a span's first slice (its descriptor)
        page.next = null;
        page.prev = self.last;
        if (self.last) |l| l.next = page else self.first = page;
        self.last = page;
    }

    pub fn remove(self: *PageQueue, page: *Page) void {
        // in this queue: the ends agree with its links
        std.debug.assert((page.prev == null) == (self.first == page));
        std.debug.assert((page.next == null) == (self.last == page));
        std.debug.assert(self.first != null); // not an empty queue
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
    counters: Counters,
    /// Links in the registry of live heaps (thread.zig).
    registry_next: ?*Heap,
    registry_prev: ?*Heap,
    /// Link in the list of exited threads' heaps, waiting for a new thread (exited_lock).
    exited_next: ?*Heap,
    slow_calls: u32,
    /// Check mode: no cache (every block goes to its page), pages flagged checked.
    checked: bool,
    /// Its thread is exiting: pages it takes by a free are not taken into its queues.
    exiting: bool,
    /// The last page found (findPage) was carved just now: its fresh blocks are handed out
    /// in a random order (refillAndPop).
    carved_now: bool,
    /// The state of the order of fresh blocks (xorshift64; seeded from block.order_secret
    /// and the heap's address, never 0).
    order_state: u64,
    /// The empty mid pages kept as their bins' direct pages, a ring (see retainEmpty).
    retained: [retained_max]?*Page,
    retained_next: u8,
    maintenance_due_ms: u64,
    /// allocs(bin) + frees(bin) at the last maintenance (a bin with none since is idle:
    /// giveUpIdle).
    activity_at_maintenance: [bins]u64,
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
        self.counters = .{};
        self.registry_next = null;
        self.registry_prev = null;
        self.exited_next = null;
        self.slow_calls = 0;
        self.checked = checked;
        self.exiting = false;
        self.carved_now = false;
        self.order_state = (block_mod.order_secret ^ (@intFromPtr(self) *% 0x9E37_79B9_7F4A_7C15)) | 1;
        self.retained = [_]?*Page{null} ** retained_max;
        self.retained_next = 0;
        self.maintenance_due_ms = 0;
        self.activity_at_maintenance = [_]u64{0} ** bins;
        self.grown = .{};
        self.large_local = .{};
        self.relief_seen = 0;
        @memset(&self.check_local, 0);
        std.debug.assert(self.order_state != 0); // xorshift's state: never 0 (the | 1)
        self.cache.init(if (checked) noCache else thread_cache.initialCapacity);
        std.debug.assert(!checked or self.cache.capacity(0) == 0); // check mode: no cache
    }

    /// See validateHeap (below): every invariant of the heap and its pages.
    pub const validate = validateHeap;

    fn noCache(_: usize) u32 {
        return 0;
    }

    /// True when this heap holds `page` (a block given back to it is a local free).
    pub inline fn ownsPage(self: *const Heap, page: *const Page) bool {
        return page.owner.load(.monotonic) == @as(*const anyopaque, self);
    }

    /// Blocks of `bin` handed out by this heap so far.
    pub fn allocs(self: *const Heap, bin: usize) u64 {
        std.debug.assert(bin < bins);
        return self.cache.pops(bin) + @atomicLoad(u64, &self.counters.direct_allocs[bin], .monotonic);
    }

    /// Blocks of `bin` this heap took back so far.
    pub fn frees(self: *const Heap, bin: usize) u64 {
        std.debug.assert(bin < bins);
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
    /// A stack that is not empty got here because its newest block is not keyed free
    /// (thread_cache pop): those are dropped first (popPastUnkeyed).
    pub noinline fn allocSlow(self: *Heap, bin: usize) ?*Block {
        std.debug.assert(bin < bins);
        std.debug.assert(!self.exiting); // a thread that exits allocates heapless (its TLS cleared first)
        self.tick();
        if (self.cache.count(bin) != 0) {
            if (self.popPastUnkeyed(bin)) |blk| return blk;
        }
        // Bounded: a try fails only when every block a refill took was dropped (each one
        // reported: Page.isKeyedFree), which leaves the page with fewer free blocks.
        var tries: u32 = 0;
        while (tries < refill_tries_max) : (tries += 1) {
            const page = self.findPage(bin) orelse self.findPageAfterPurge(bin) orelse break;
            std.debug.assert(page.bin == bin);
            std.debug.assert(self.direct[bin] == page); // findPage made it the direct page
            std.debug.assert(page.free_count > 0); // replenished: a block to hand out
            if (self.cache.capacity(bin) != 0) {
                if (self.refillAndPop(bin, page)) |blk| return blk;
                continue;
            }
            const blk = profile.refilled(page.popFree() orelse continue, page, 0);
            std.debug.assert(page.used > 0); // the block counts in use on its page now
            if (!self.checked) blk.key = 0; // check mode verifies the key first (check.malloc)
            self.counters.direct_allocs[bin] += 1;
            return blk;
        }
        os.setErrno(.NOMEM);
        return null;
    }

    /// allocSlow's tries at a page whose blocks were all dropped (a program's misuse).
    const refill_tries_max = 8;

    /// Pops the bin's stack past the blocks at its top that are not keyed free (a double
    /// free's second copy, whose first was handed out; or a write after free): each is
    /// reported (in libc mode that aborts), then dropped: it stays counted in use on its
    /// page. Null when none is left. Bounded by the stack's count.
    fn popPastUnkeyed(self: *Heap, bin: usize) ?*Block {
        std.debug.assert(bin < bins);
        std.debug.assert(!self.checked); // check mode's bins have no stack
        var left = self.cache.count(bin);
        while (left > 0) : (left -= 1) {
            if (self.cache.pop(bin)) |blk| return blk;
            const blk = self.cache.takeUnkeyed(bin);
            const addr = @intFromPtr(blk);
            const page = segment_mod.Segment.of(addr).pageOf(addr);
            std.debug.assert(page.bin == bin);
            page.reportUnkeyed(blk);
        }
        std.debug.assert(self.cache.count(bin) == 0);
        return null;
    }

    /// The sampled heap profile sees every refill (profile.zig: a byte countdown). Blocks
    /// of a page carved just now go on the stack in a random order (issue 21 item 4: a
    /// program's fresh blocks are not handed out next to each other in address order, so an
    /// overflow cannot count on which block follows its own); blocks that came back keep
    /// theirs. Only a refill after carving pays for it: once per 4 KiB of new blocks.
    /// Null when the page gave no block (every one it had was dropped: Page.popMany).
    inline fn refillAndPop(self: *Heap, bin: usize, page: *Page) ?*Block {
        std.debug.assert(page.bin == bin); // the bin's own page
        std.debug.assert(self.cache.capacity(bin) != 0); // a bin with a stack
        if (self.carved_now) {
            _ = self.cache.refill(bin, page, @max(1, self.cache.capacity(bin) / 2));
            self.cache.shuffle(bin, &self.order_state);
            return profile.refilled(self.cache.pop(bin) orelse return null, page, self.cache.count(bin));
        }
        const blk = self.cache.refillAndPop(bin, page) orelse return null;
        return profile.refilled(blk, page, self.cache.count(bin));
    }

    /// Out of memory (or of the budget, budget.zig): everything retained goes back at once
    /// (caches flushed, empty memory purged and unmapped), then one more try.
    noinline fn findPageAfterPurge(self: *Heap, bin: usize) ?*Page {
        self.maintain(os.nowMs(), true);
        return self.findPage(bin);
    }

    /// A page of `bin` with a free block, made the direct page. Null only when out of
    /// memory. Bounded: every page of the queue is looked at once (one found full leaves it).
    fn findPage(self: *Heap, bin: usize) ?*Page {
        std.debug.assert(bin < bins);
        self.carved_now = false;
        const current = self.direct[bin];
        std.debug.assert(current == &page_mod.empty_page or current.bin == bin);
        if (current != &page_mod.empty_page) {
            if (self.replenish(current)) return current;
            self.direct[bin] = &page_mod.empty_page;
            if (self.giveUpFull(current)) return self.makeDirect(current);
        }
        while (self.queues[bin].first) |page| {
            if (self.replenish(page)) return self.makeDirect(page);
            if (self.giveUpFull(page)) return self.makeDirect(page);
        }
        if (abandoned.take(bin)) |page| {
            std.debug.assert(page.bin == bin); // taken from the bin's list
            self.takeInto(page);
            if (self.replenish(page)) return self.makeDirect(page);
            if (self.giveUpFull(page)) return self.makeDirect(page); // (listed with room: not expected)
        }
        const page = arena.placePage(bin, self.checked, self) orelse return null;
        std.debug.assert(page.bin == bin);
        std.debug.assert(page.used == 0); // a fresh page: nothing handed out yet
        self.queues[bin].pushBack(page);
        _ = self.replenish(page);
        return self.makeDirect(page);
    }

    /// realloc of the live block of a single-block page this heap holds to a size of `bin`,
    /// another single-block bin: the page becomes a page of `bin` in place, its block the
    /// same address with its bytes where they are. No copy, no new span: pages of as many
    /// slices just change bin (say 70 KiB to 120 KiB: two slices both); a page of more
    /// slices takes the free slices right after its span (arena.resizeSpan; false when one
    /// is not free), one of fewer gives its tail back. False when it does not apply (the
    /// caller copies). Counted as a free of the old bin and a malloc of the new one.
    pub fn rebinSingleBlock(self: *Heap, page: *Page, bin: usize) bool {
        std.debug.assert(bin < bins);
        if (self.checked or bin == page.bin) return false;
        if (!size_class.isSingleBlockBin(bin) or !size_class.isSingleBlockBin(page.bin)) return false;
        if (!self.ownsPage(page) or page.flags != 0 or page.used != 1) return false;
        std.debug.assert(page.slice_offset == 0); // (this heap's page: its span's descriptor)

        std.debug.assert(page.capacity == 1); // a single-block page,
        std.debug.assert(page.reserved == 1); // its block live
        const old = page.bin;
        const old_block_size = page.block_size;
        if (size_class.binPageSlices(bin) == page.slice_count) {
            page.rebin(bin);
        } else if (!arena.resizeSpan(page, bin, os.nowMs())) return false;
        self.queues[old].remove(page);
        if (self.direct[old] == page) self.direct[old] = &page_mod.empty_page;
        self.forgetRetained(page);
        stats.pageUncarved(page.tierIndex(), old_block_size);
        stats.pageCarved(page.tierIndex(), page.block_size);
        self.queues[bin].pushBack(page);
        self.counters.direct_frees[old] += 1;
        self.counters.direct_allocs[bin] += 1;
        std.debug.assert(page.bin == bin);
        std.debug.assert(page.used == 1);
        return true;
    }

    fn makeDirect(self: *Heap, page: *Page) *Page {
        std.debug.assert(page.flags & page_mod.flag_unused == 0); // in use,
        std.debug.assert(page.free_count > 0); // a block to hand out
        std.debug.assert(self.ownsPage(page));
        self.direct[page.bin] = page;
        return page;
    }

    /// Gives `page` free blocks if it can: remote frees first, then fresh carving.
    fn replenish(self: *Heap, page: *Page) bool {
        std.debug.assert(page.flags & page_mod.flag_unused == 0); // a page in use,
        if (std.debug.runtime_safety) std.debug.assert(self.ownsPage(page)); // this heap's (it collects and carves)
        _ = page.collect();
        if (page.free_count > 0) return true;
        const carved = page.extend();
        if (carved == 0) return false;
        self.carved_now = true;
        std.debug.assert(page.free_count >= carved);
        stats.pageCarved(page.tierIndex(), carved * page.block_size);
        return true;
    }

    /// A page of the queue found full (replenish failed; not the direct page) is given up:
    /// it belongs to nobody, and the first free into it takes it (settleClaimed). True when
    /// blocks came back meanwhile: the page stays, with free blocks, at the queue's end.
    fn giveUpFull(self: *Heap, page: *Page) bool {
        std.debug.assert(page.free_count == 0); // found full
        std.debug.assert(self.direct[page.bin] != page); // off the direct slot already
        std.debug.assert(self.ownsPage(page));
        self.queues[page.bin].remove(page);
        self.forgetRetained(page);
        page.owner.store(null, .release);
        var rounds: u32 = 0;
        while (!page.tryUnown()) : (rounds += 1) {
            // blocks came back before the bit could be cleared (each round collects one at least)
            if (rounds > page.capacity) misuse.corrupted("a page's remote frees outnumber its blocks", page.start);
            _ = page.collect();
            if (page.free_count == 0) continue; // (a double free dropped them)
            page.owner.store(self, .release);
            self.queues[page.bin].pushBack(page);
            return true;
        }
        stats.incr(&stats.pages_abandoned);
        return false;
    }

    /// A page this thread took (from the abandoned lists, or by a free): its queue's now.
    fn takeInto(self: *Heap, page: *Page) void {
        std.debug.assert(page.isHeld());
        std.debug.assert(page.owner.load(.monotonic) == null);
        std.debug.assert(!page.listed); // unlisted by its taker
        std.debug.assert(page.next == null); // in no queue
        std.debug.assert(page.prev == null);
        std.debug.assert((page.flags & page_mod.flag_checked != 0) == self.checked); // one mode per process
        page.origin = self;
        page.owner.store(self, .release);
        _ = page.collect();
        self.queues[page.bin].pushBack(page);
    }

    // ---------------------------------------------------------------- free's slow paths

    /// free found the bin's stack full (or the bin has none): make room, or give the block
    /// straight to its page.
    pub noinline fn freeFull(self: *Heap, page: *Page, blk: *Block) FreeOutcome {
        std.debug.assert(page.slice_offset == 0); // slow.free found it:
        std.debug.assert(page.isBlockStart(@intFromPtr(blk))); // the page's block
        const bin = page.bin;
        if (self.checked or thread_cache.maxCapacity(bin) == 0) return self.freeToPage(page, blk);
        self.counters.remote_frees[bin] += self.cache.overflow(bin, config.adapt, self, self);
        self.tick();
        if (self.cache.push(bin, blk)) return .ok;
        return self.freeToPage(page, blk); // no room in the bin (not grown yet, or the budget)
    }

    /// Gives one block back to its page: this heap's page directly (a block already free
    /// there was freed twice), another's through thread_free (its holder checks).
    pub fn freeToPage(self: *Heap, page: *Page, blk: *Block) FreeOutcome {
        // (no assert on the page's state: a block that looked freed comes here, and if it
        // was a double free its page may be given back by its owner meanwhile)
        std.debug.assert(@intFromPtr(blk) % size_class.min_block_size == 0); // a block start
        const bin = page.bin;
        if (!self.ownsPage(page)) {
            blk.key = page.remoteKey();
            const claimed = page.pushRemoteChain(blk, blk);
            self.counters.direct_frees[bin] += 1;
            self.counters.remote_frees[bin] += 1;
            if (claimed) settleClaimed(self, page);
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
        std.debug.assert(page.slice_offset == 0);
        std.debug.assert(self.ownsPage(page));
        if (page.used == 0) self.pageEmptied(page);
    }

    /// thread_cache.flush's sink: a run of blocks took `page`, which nobody held.
    pub fn pageClaimed(self: *Heap, page: *Page) void {
        settleClaimed(self, page);
    }

    fn pageEmptied(self: *Heap, page: *Page) void {
        std.debug.assert(page.used == 0);
        std.debug.assert(page.flags & page_mod.flag_unused == 0); // not given back yet
        if (self.direct[page.bin] == page) {
            // Keep the page that serves the bin (malloc/free ping-pong stays cheap);
            // maintain() stamps it and returns it once it stayed empty for the delay.
            page.empty_since_ms = 0;
            if (!page.isTiny()) self.retainEmpty(page);
            return;
        }
        self.queues[page.bin].remove(page);
        self.releasePage(page, os.nowMs());
    }

    /// A mid page that empties while it is its bin's direct page is kept, so malloc/free
    /// of one size does not take a span each time; but only the last retained_max of them:
    /// the one kept before those goes back to its segment if it is still empty, where any
    /// bin can reuse its (still resident) slices. (Tiny pages are one slice each: they
    /// wait for the purge delay.)
    fn retainEmpty(self: *Heap, page: *Page) void {
        std.debug.assert(!page.isTiny()); // a mid page
        std.debug.assert(self.direct[page.bin] == page); // serving its bin
        for (self.retained) |r| if (r == page) return;
        std.debug.assert(self.retained_next < retained_max); // the ring's index
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

    fn forgetRetained(self: *Heap, page: *Page) void {
        for (&self.retained) |*r| if (r.* == page) {
            r.* = null;
        };
        for (self.retained) |r| std.debug.assert(r != page);
    }

    /// Returns a page (already out of every queue) to its segment (arena.zig).
    fn releasePage(self: *Heap, page: *Page, now_ms: u64) void {
        std.debug.assert(page.used == 0); // empty
        std.debug.assert(self.direct[page.bin] != page); // off the direct slot
        std.debug.assert(page.next == null); // out of every queue
        std.debug.assert(page.prev == null);
        if (std.debug.runtime_safety) std.debug.assert(self.ownsPage(page)); // this heap's to give back
        self.forgetRetained(page);
        page.owner.store(null, .monotonic); // (held still: nobody can reach the page)
        arena.releasePage(page, now_ms);
    }

    /// May this heap take a page it got by a free into its queue? Only the heap that last
    /// held it (its own frees into a page it gave up when full: the page serves it again),
    /// and not while its thread exits. A page of another thread is listed for whichever
    /// heap needs its bin next (mimalloc 3 reclaims across threads only on request).
    fn mayTake(self: *const Heap, page: *const Page) bool {
        return !self.exiting and page.origin == @as(*const anyopaque, self) and (page.flags & page_mod.flag_checked != 0) == self.checked;
    }

    // ---------------------------------------------------------------- maintenance

    /// Counts slow-path events; every few, checks the clock and purges what is due.
    /// Both malloc's refills and free's overflows tick, so a program whose steady state
    /// leaves the fast paths now and then still returns memory freed earlier.
    inline fn tick(self: *Heap) void {
        self.slow_calls +%= 1;
        if (self.slow_calls % ticks_per_clock_check == 0 or exit_leftovers_until_ms.load(.monotonic) != 0) self.maintainNow();
    }

    noinline fn maintainNow(self: *Heap) void {
        self.maintain(os.nowMs(), false);
    }

    /// The blocks of idle caches back to their pages (thread_cache.maintainBin), direct
    /// pages empty for the purge delay back to their segments, then empty memory back to
    /// the OS along the decay curve (purge.zig); everything with `force`. Runs from slow
    /// paths only; its work is bounded by the heap's bins (and the arena's segments).
    pub fn maintain(self: *Heap, now_ms: u64, force_asked: bool) void {
        const force = force_asked or budget.shouldRelieve(now_ms, &self.relief_seen); // near a memory limit: everything
        if (!force and now_ms < self.maintenance_due_ms) return;
        const delay = config.purge_delay_ms;
        self.maintenance_due_ms = now_ms + @max(1, delay / 4);
        std.debug.assert(self.maintenance_due_ms > now_ms); // the next one is later
        const adapt = config.adapt and !self.checked;
        for (0..bins) |bin| self.counters.remote_frees[bin] += self.cache.maintainBin(bin, force, adapt, self, self);
        if (!self.checked) for (0..bins) |bin| self.giveUpIdle(bin, now_ms);
        for (0..bins) |bin| {
            const page = self.direct[bin];
            if (page == &page_mod.empty_page or page.used != 0) continue;
            std.debug.assert(page.bin == bin); // the bin's own page
            if (page.empty_since_ms == 0) page.empty_since_ms = now_ms;
            if (!force and now_ms -| page.empty_since_ms < delay) continue;
            _ = page.collect();
            if (page.used != 0) continue;
            self.direct[bin] = &page_mod.empty_page;
            self.queues[bin].remove(page);
            self.releasePage(page, now_ms);
        }
        self.large_local.decay(now_ms, force);
        purge.shared(now_ms, force);
        settleExitLeftovers(now_ms);
    }

    /// A bin this thread neither allocated from nor freed into since the last maintenance
    /// gives up its pages that hold live blocks (an empty direct page waits for the purge
    /// delay, as before): listed when they have room, so another thread that needs the size
    /// class takes one instead of placing a page of its own, and a class this thread uses
    /// rarely does not keep a page per thread. (Its cached blocks went back to the pages
    /// just before: maintainBin flushes an idle bin.) Bounded by the bin's pages.
    fn giveUpIdle(self: *Heap, bin: usize, now: u64) void {
        std.debug.assert(bin < bins);
        std.debug.assert(!self.checked); // check mode gives pages up only at exit
        const activity = self.allocs(bin) + self.frees(bin);
        const idle = activity == self.activity_at_maintenance[bin];
        self.activity_at_maintenance[bin] = activity;
        if (!idle or self.cache.count(bin) != 0) return;
        var it = self.queues[bin].first;
        while (it) |page| {
            it = page.next;
            std.debug.assert(page.bin == bin); // a queue holds its bin's pages
            if (page.used == 0 and self.direct[bin] == page) continue; // released after the purge delay
            if (self.direct[bin] == page) self.direct[bin] = &page_mod.empty_page;
            self.queues[bin].remove(page);
            if (page.used == 0) {
                // (a queue page a collect emptied: isFreed's, takeInto's)
                self.releasePage(page, now);
            } else {
                self.forgetRetained(page);
                abandonPage(page, now);
            }
        }
    }

    /// Everything the heap holds for its thread goes back: every cached block to its page,
    /// every large block it held to its region (thread exit, before its counters retire).
    pub fn returnHeld(self: *Heap, now_ms: u64) void {
        std.debug.assert(!self.exiting); // once, at its thread's exit
        self.exiting = true; // pages its flush takes are not taken into its queues
        self.flushCaches();
        self.large_local.releaseAll(now_ms);
        std.debug.assert(self.large_local.bytes == 0);
    }

    /// Every cached block back to its page (thread exit: returnHeld; process exit in libc
    /// mode: process.zig, so that a double free free(3) pushed without looking
    /// (free_fast.zig) and that no malloc popped since is found by the flush —
    /// Page.isKeyedFree, the page's bits — and reported). Bounded by the bins' counts.
    pub fn flushCaches(self: *Heap) void {
        for (0..bins) |bin| self.flushCache(bin, 0); // (each asserts its stack is empty after)
    }

    /// Thread exit, after returnHeld: every page without live blocks goes back to its
    /// segment, every other one is given up — listed for other heaps when it has room — so
    /// the next thread that needs the bin, or frees into the page, takes it. Then what is
    /// dirty beyond exit_keep_dirty_bytes is purged. Bounded by the heap's pages.
    pub fn abandonAll(self: *Heap, now_ms: u64) void {
        for (0..bins) |bin| std.debug.assert(self.cache.count(bin) == 0); // returnHeld first
        std.debug.assert(self.exiting); // (set by returnHeld)
        for (0..bins) |bin| {
            self.direct[bin] = &page_mod.empty_page;
            while (self.queues[bin].first) |page| {
                std.debug.assert(page.bin == bin); // a queue holds its bin's pages
                self.queues[bin].remove(page);
                self.forgetRetained(page);
                _ = page.collect();
                if (page.used == 0) {
                    page.owner.store(null, .monotonic);
                    arena.releasePage(page, now_ms);
                } else abandonPage(page, now_ms);
            }
        }
        self.retained = [_]?*Page{null} ** retained_max;
        self.cache.retire();
        arena.trimDirty(exit_keep_dirty_bytes);
        noteExitLeftovers(now_ms);
    }
};

/// A page with live blocks, out of its heap's queues, given up: listed when it has room,
/// then let go (if every block came back meanwhile, to its segment).
fn abandonPage(page: *Page, now_ms: u64) void {
    std.debug.assert(page.used != 0); // live blocks (an empty page goes back instead)
    std.debug.assert(page.next == null); // out of its heap's queue
    std.debug.assert(page.prev == null);
    page.owner.store(null, .release);
    stats.incr(&stats.pages_abandoned);
    if (page.freeRoom() > 0) abandoned.list(page);
    letGo(page, now_ms);
}

/// The holder of a page no heap holds (owner null) lets it go: the owned bit is cleared;
/// if blocks came back first, they are collected, and a page they emptied goes back to its
/// segment instead (one with room gets listed). Bounded by the page's blocks in use: each
/// failed round collects one at least.
fn letGo(page: *Page, now_ms: u64) void {
    std.debug.assert(page.isHeld()); // the caller's,
    std.debug.assert(page.owner.load(.monotonic) == null); // no heap's
    std.debug.assert(page.next == null or page.listed); // in no heap's queue
    var rounds: u32 = 0;
    while (!page.tryUnown()) : (rounds += 1) {
        if (rounds > page.capacity) misuse.corrupted("a page's remote frees outnumber its blocks", page.start);
        _ = page.collect();
        if (page.used == 0) {
            abandoned.unlist(page);
            arena.releasePage(page, now_ms);
            return;
        }
        if (!page.isMostlyUsed()) abandoned.list(page);
    }
}

/// A thread took a page nobody held by freeing into it (pushRemoteChain said so), with
/// `h` its heap (null: a thread without one). It collects what was freed into the page,
/// then: a page now empty goes back to its segment; one `h` may take (mayTake) joins its
/// queue; else a page with room enough is listed for any heap that needs its bin, and is
/// let go.
pub fn settleClaimed(h: ?*Heap, page: *Page) void {
    // A free that took a slice given back meanwhile (a double free racing the page's
    // release: its block passed the block test before): the push landed on a reset
    // descriptor, and another heap may be placing a page there. Nothing to settle: the
    // block is dropped (contained), the descriptor is left to whoever places the slice.
    if (page.flags & page_mod.flag_unused != 0 or page.owner.load(.acquire) != null) {
        _ = misuse.contained_double_frees.fetchAdd(1, .monotonic);
        return;
    }
    std.debug.assert(page.isHeld());
    _ = page.collect();
    if (page.used == 0) {
        abandoned.unlist(page);
        arena.releasePage(page, os.nowMs());
        return;
    }
    if (h) |heap| if (heap.mayTake(page)) {
        abandoned.unlist(page);
        stats.incr(&stats.pages_reclaimed);
        heap.takeInto(page);
        return;
    };
    if (!page.isMostlyUsed()) abandoned.list(page);
    letGo(page, os.nowMs());
}

// ---------------------------------------------------------------- exited threads' heaps
//
// A heap's memory is never unmapped (a stats reader may walk it): an exited thread's heap,
// once it gave everything up (abandonAll), waits here for the next new thread.
// exited_lock guards the list and every heap's exited_next; no other lock is taken while
// it is held.

pub var exited_lock: Lock = .{};
var empty_heaps: ?*Heap = null;

/// The heap of an exited thread that gave everything up.
pub fn addEmpty(h: *Heap) void {
    std.debug.assert(h.exited_next == null); // once,
    std.debug.assert(h.exiting); // given up whole
    std.debug.assert(h.registry_next == null); // out of the registry (onThreadExit)
    std.debug.assert(h.registry_prev == null);

    exited_lock.acquire();
    defer exited_lock.release();
    h.exited_next = empty_heaps;
    empty_heaps = h;
}

/// An exited thread's heap for a new thread (to be initialised), or null.
pub fn takeEmpty() ?*Heap {
    exited_lock.acquire();
    defer exited_lock.release();
    const h = empty_heaps orelse return null;
    std.debug.assert(h.exiting); // it gave everything up
    empty_heaps = h.exited_next;
    h.exited_next = null;
    return h;
}

/// Calls `visit(context, heap, false)` for every exited thread's heap, under exited_lock
/// (the memory report measures their memory). Bounded by their number.
pub fn forEachExited(context: anytype, comptime visit: fn (@TypeOf(context), *const Heap, bool) void) void {
    exited_lock.acquire();
    defer exited_lock.release();
    var it = empty_heaps;
    while (it) |h| : (it = h.exited_next) visit(context, h, false);
}

// ---------------------------------------------------------------- validation

pub const Invalid = error{
    DirectPageWrong,
    QueueLinksBroken,
    QueueTooLong,
    PageInWrongQueue,
    PageNotOwned,
    RetainedPageWrong,
} || Page.Invalid || thread_cache.Cache.Invalid;

/// Checks a heap against its invariants (its owner's thread only; tests and debug builds):
/// every bin's direct page is in its queue; every page of a queue is of that bin, held by
/// this heap (owner and owned bit) and valid (Page.validate); every cache stack is valid
/// (Cache.validate); the retained pages are this heap's mid pages in use. Bounded by the
/// heap's bins and the pages a segment list can hold.
pub fn validateHeap(self: *Heap) Invalid!void {
    const max_pages = (arena.segmentCount() + 1) * segment_mod.slice_count;
    for (0..bins) |bin| {
        try self.cache.validate(bin);
        const direct = self.direct[bin];
        var direct_seen = direct == &page_mod.empty_page;
        var prev: ?*Page = null;
        var it = self.queues[bin].first;
        var n: usize = 0;
        while (it) |page| : (it = page.next) {
            n += 1;
            if (n > max_pages) return error.QueueTooLong;
            if (page.prev != prev) return error.QueueLinksBroken;
            if (page.bin != bin or page.listed) return error.PageInWrongQueue;
            if (!self.ownsPage(page) or !page.isHeld()) return error.PageNotOwned;
            try page.validate();
            if (page == direct) direct_seen = true;
            prev = page;
        }
        if (self.queues[bin].last != prev) return error.QueueLinksBroken;
        if (!direct_seen) return error.DirectPageWrong;
    }
    for (self.retained) |r| {
        const page = r orelse continue;
        if (page.flags & page_mod.flag_unused != 0 or page.isTiny() or !self.ownsPage(page)) return error.RetainedPageWrong;
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
    const page = pageOf(blk);
    if (h.cache.push(page.bin, blk)) return;
    try testing.expectEqual(FreeOutcome.ok, h.freeFull(page, blk));
}

fn pageOf(blk: *const Block) *Page {
    return Segment.of(@intFromPtr(blk)).pageOf(@intFromPtr(blk));
}

/// Everything a test heap holds goes back (as at thread exit), and the arena is valid.
fn finish(h: *Heap) !void {
    h.returnHeld(os.nowMs());
    h.abandonAll(os.nowMs());
    try arena.validate();
    try abandoned.validate();
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
    for (0..bins) |bin| try testing.expect(h.queues[bin].first == null); // every page went back
    try finish(h);
}

test "a full page is given up; the heap's own frees into it take it back" {
    const h = try testHeap();
    defer dropTestHeap(h);
    const bin = size_class.midBin(20_000); // a few blocks a page
    const first = try testAlloc(h, bin);
    const page = pageOf(first);
    var live: [64]*Block = undefined;
    var n: usize = 0;
    // allocate until the page is full and the heap moved on to another page
    while (n < live.len) : (n += 1) {
        live[n] = try testAlloc(h, bin);
        if (pageOf(live[n]) != page and h.direct[bin] != page) break;
    }
    for (0..bins) |b| h.flushCache(b, 0);
    // (the first page's blocks are all live or cached: it was given up when found full)
    try testing.expect(!h.ownsPage(page));
    try testing.expectEqual(@as(?*anyopaque, null), page.owner.load(.monotonic));
    try h.validate();
    const reclaimed_before = stats.pages_reclaimed.load(.monotonic);
    try testFree(h, first);
    h.flushCache(bin, 0);
    try testing.expect(h.ownsPage(page)); // taken back by its own free
    try testing.expect(stats.pages_reclaimed.load(.monotonic) > reclaimed_before);
    try h.validate();
    for (live[0..n]) |b| try testFree(h, b);
    try finish(h);
}

test "thread exit: pages without live blocks go back, the others are listed for any heap of their bin" {
    const a = try testHeap();
    defer dropTestHeap(a);
    const b = try testHeap();
    defer dropTestHeap(b);
    const bin = size_class.tinyBin(48);
    var kept: [40]*Block = undefined;
    for (&kept) |*k| k.* = try testAlloc(a, bin);
    for (0..200) |_| try testFree(a, try testAlloc(a, size_class.midBin(3000)));
    try a.validate();
    const page = pageOf(kept[0]);
    const listed_before = abandoned.count(bin);
    a.returnHeld(os.nowMs());
    a.abandonAll(os.nowMs());
    try testing.expectEqual(listed_before + 1, abandoned.count(bin));
    try testing.expectEqual(@as(?*anyopaque, null), page.owner.load(.monotonic));
    try abandoned.validate();
    // b needs a page of the bin: it takes a's, whose blocks are b's local blocks then
    const blk = try testAlloc(b, bin);
    try testing.expectEqual(page, pageOf(blk));
    try testing.expect(b.ownsPage(page));
    try b.validate();
    for (kept) |k| try testFree(b, k);
    try testFree(b, blk);
    try finish(b);
}

test "a page of an exited thread goes back to its segment when another thread's frees empty it" {
    const a = try testHeap();
    defer dropTestHeap(a);
    const b = try testHeap();
    defer dropTestHeap(b);
    const bin = size_class.midBin(100_000); // one page per block
    const blk = try testAlloc(a, bin);
    const page = pageOf(blk);
    a.returnHeld(os.nowMs());
    a.abandonAll(os.nowMs());
    try testing.expect(!page.isHeld()); // nobody's
    // b frees it: the free takes the page, finds it empty, and gives it back at once
    try testing.expectEqual(FreeOutcome.ok, b.freeToPage(page, blk));
    try testing.expect(page.flags & page_mod.flag_unused != 0);
    try arena.validate();
    try finish(b);
}

test "a producer's full pages, freed into by a consumer, serve the producer again" {
    const producer = try testHeap();
    defer dropTestHeap(producer);
    const consumer = try testHeap();
    defer dropTestHeap(consumer);
    const bin = size_class.tinyBin(256);
    var blocks: [2000]*Block = undefined;
    for (&blocks) |*b| b.* = try testAlloc(producer, bin);
    const first_page = pageOf(blocks[0]);
    try testing.expect(!producer.ownsPage(first_page)); // given up when full
    for (blocks) |b| try testFree(consumer, b);
    for (0..bins) |b| consumer.flushCache(b, 0);
    try testing.expect(!consumer.ownsPage(first_page)); // not the consumer's: listed or back in its segment
    // the producer allocates again from those pages, not from new ones
    const segments_before = arena.segmentCount();
    for (&blocks) |*b| b.* = try testAlloc(producer, bin);
    try testing.expectEqual(segments_before, arena.segmentCount());
    try producer.validate();
    for (blocks) |b| try testFree(producer, b);
    try finish(producer);
    try finish(consumer);
}

test "a bin its thread stopped using gives its partly used page up, for another heap's first block of the class" {
    const a = try testHeap();
    defer dropTestHeap(a);
    const b = try testHeap();
    defer dropTestHeap(b);
    const bin = size_class.midBin(5000);
    var live: [3]*Block = undefined;
    for (&live) |*l| l.* = try testAlloc(a, bin);
    const page = pageOf(live[0]);
    a.maintenance_due_ms = 0; // (an allocation may have run maintenance just now)
    a.maintain(os.nowMs(), false); // the bin was busy since the last look
    try testing.expect(a.ownsPage(page));
    a.maintenance_due_ms = 0;
    a.maintain(os.nowMs(), false); // idle since: its cached blocks go back, the page is given up
    try testing.expect(!a.ownsPage(page));
    try testing.expect(page.listed);
    try a.validate();
    // b's first block of the class comes from a's page, not from a page of its own
    const blk = try testAlloc(b, bin);
    try testing.expectEqual(page, pageOf(blk));
    try b.validate();
    try testFree(b, blk);
    for (live) |l| try testFree(a, l); // a's frees into a page b holds now: remote
    try finish(a);
    try finish(b);
}

test "a free that takes a page given back meanwhile (a double free racing its release) settles nothing" {
    const a = try testHeap();
    defer dropTestHeap(a);
    const bin = size_class.midBin(100_000); // one block a page
    const blk = try testAlloc(a, bin);
    const page = pageOf(blk);
    try testFree(a, blk);
    a.returnHeld(os.nowMs());
    a.abandonAll(os.nowMs()); // the page went back: its descriptor is reset
    try testing.expect(page.flags & page_mod.flag_unused != 0);
    // the second free's push lands on the reset descriptor and "takes" it (what its CAS
    // leaves: the block, the owned bit; a debug build's push asserts the block is the page's)
    blk.key = block_mod.free_key;
    page.thread_free.store(@intFromPtr(blk) | page_mod.tf_owned, .monotonic);
    const contained = misuse.contained_double_frees.load(.monotonic);
    settleClaimed(null, page); // (collected the dead descriptor before: heap corruption, abort)
    try testing.expectEqual(contained + 1, misuse.contained_double_frees.load(.monotonic));
    page.thread_free.store(0, .monotonic); // (as the slice's next placement does)
    try arena.validate();
}

test "an exiting thread's flush does not take its own given-up pages back into its queues" {
    const a = try testHeap();
    defer dropTestHeap(a);
    const bin = size_class.midBin(20_000);
    var live: [32]*Block = undefined;
    for (&live) |*l| l.* = try testAlloc(a, bin); // pages found full are given up
    for (live) |l| try testing.expect(a.cache.push(bin, l) or true);
    for (live) |l| if (!a.cache.contains(bin, l)) try testFree(a, l);
    const reclaimed = stats.pages_reclaimed.load(.monotonic);
    a.returnHeld(os.nowMs()); // its flush takes the given-up pages: released, not reclaimed
    try testing.expectEqual(reclaimed, stats.pages_reclaimed.load(.monotonic));
    a.abandonAll(os.nowMs());
    try arena.validate();
    try abandoned.validate();
}

test "exit leftovers: the slow paths look at the clock until two purge delays after the last exit" {
    exit_leftovers_until_ms.store(0, .monotonic);
    noteExitLeftovers(1000);
    const until = exit_leftovers_until_ms.load(.monotonic);
    try testing.expectEqual(1000 + 2 * config.purge_delay_ms, until);
    noteExitLeftovers(999); // an older exit's deadline does not pull it back
    try testing.expectEqual(until, exit_leftovers_until_ms.load(.monotonic));
    settleExitLeftovers(until); // the window passed: cleared whatever is retained
    // HAKMEM_PURGE_DELAY_MS=0: the deadline is the exit's own time (it asserted one ahead,
    // and every thread exit of the checked library aborted with that setting)
    const saved_delay = config.purge_delay_ms;
    defer config.purge_delay_ms = saved_delay;
    config.purge_delay_ms = 0;
    noteExitLeftovers(2000);
    try testing.expectEqual(@as(u64, 2000), exit_leftovers_until_ms.load(.monotonic));
    settleExitLeftovers(2000);
    try testing.expectEqual(@as(u64, 0), exit_leftovers_until_ms.load(.monotonic));
}

test "fresh blocks are handed out in a random order, not one after another in the page" {
    const a = try testHeap();
    defer dropTestHeap(a);
    const bin = size_class.tinyBin(400); // (a bin no other test leaves pages of)
    const bs = size_class.binBlockSize(bin);
    var blocks: [64]*Block = undefined;
    for (&blocks) |*b| b.* = try testAlloc(a, bin); // several refills of carved blocks
    var in_order: usize = 0;
    for (blocks[0 .. blocks.len - 1], blocks[1..]) |x, y| {
        if (@intFromPtr(y) == @intFromPtr(x) + bs) in_order += 1;
    }
    // in address order every step would be one block (a refill's 8 blocks: 7 steps each);
    // shuffled, few are (the chance that all are is below 1 in 10^20)
    try testing.expect(in_order < blocks.len / 2);
    for (blocks) |b| try testFree(a, b);
    try finish(a);
}

test "a block freed twice is handed out once: a copy left in the cache after the other went back to its page is refused" {
    const a = try testHeap();
    defer dropTestHeap(a);
    const bin = size_class.tinyBin(432); // (a bin no other test leaves pages of)
    const blk = try testAlloc(a, bin);
    const keep = try testAlloc(a, bin); // (the page stays in use)
    a.flushCache(bin, 0);
    try testing.expect(a.cache.push(bin, blk)); // free(3) twice: it pushes without looking
    try testing.expect(a.cache.push(bin, blk));
    _ = a.cache.flush(bin, 1, a, a); // the older copy goes back to its page (the page key)
    try testing.expect(pageOf(blk).isOnFreeList(@intFromPtr(blk)));
    try testing.expect(a.cache.pop(bin) == null); // the newer copy is refused
    const libc_mode = @atomicLoad(bool, &misuse.libc_mode, .monotonic);
    @atomicStore(bool, &misuse.libc_mode, false, .monotonic); // contained, not an abort (as from bun:ffi)
    defer @atomicStore(bool, &misuse.libc_mode, libc_mode, .monotonic);
    const contained = misuse.contained_double_frees.load(.monotonic);
    var handed: [16]*Block = undefined;
    var times: usize = 0;
    for (&handed) |*h| {
        h.* = try testAlloc(a, bin); // the copy is dropped and counted; the page hands blk out
        if (h.* == blk) times += 1;
    }
    try testing.expectEqual(contained + 1, misuse.contained_double_frees.load(.monotonic));
    try testing.expectEqual(@as(usize, 1), times); // once, from its page
    for (handed) |h| try testFree(a, h);
    try testFree(a, keep);
    try finish(a);
}
