//! thread_cache.zig — the per-thread cache of free blocks: one stack of block pointers per bin.
//!
//!   heap.cache.entries[bin] (32 bytes, two bins per cache line)
//!   +--------+--------+--------+---------+
//!   | top    | bottom | limit  | frees   |        slots of the bin (in the heap, after the entries)
//!   +--------+--------+--------+---------+        +-----+-----+-----+-----+ - - - - - +
//!       |        |        |                       | old | ... | new |     |  (room)   |
//!       |        |        +--------------------------------------------------------> limit = bottom + capacity
//!       |        +-------------------------------> bottom
//!       +------------------------------------------------------------> top (next free slot)
//!
//! free() pushes a block of any thread's page here (after free_fast.zig checked it is a block
//! start; free(3) loads nothing of the block, so a block freed twice may be here twice),
//! malloc() pops the newest if it is keyed free (a second copy is not: its first was handed
//! out and cleared the key; heap.allocSlow drops and reports it); neither touches a page, a
//! lock or an atomic, and neither writes a link into the block: a block in a cache has no
//! link a stray write could corrupt. Everything per block beyond that happens in batches:
//!   flush   (a push finds the stack full, maintenance, thread exit): the oldest blocks go
//!           back to their pages, a run of blocks of one page at a time: to the page's
//!           `free` when this heap holds it (each checked against the page's bitmap: a
//!           block already there was freed twice), else onto its `thread_free` with one CAS
//!           per run (its holder checks them when it collects; a run that finds the page
//!           held by nobody takes it: the heap settles it after the flush, heap.zig
//!           settleClaimed). Remote frees are counted here.
//!   refill  (a pop finds the stack empty): blocks taken off one page's `free` (each
//!           checked: bit set, keyed free).
//! Both check every block's key word: a free block nobody may write to that is no longer
//! keyed free was written after its free, or by an overflow of the block before it (one
//! compare per block per batch; free and malloc themselves check nothing more).
//! `frees` counts pushes; with the blocks moved in and out by refill and flush it gives the
//! exact number of pops (allocs) without counting on malloc's path (see `pops`).
//!
//! Capacity adapts per bin, within bounds (policy below, unit-tested): it doubles when a
//! bin overflows while being allocated from (a refill would follow: `overflow`), and halves
//! — with the stack returned to its pages — when a maintenance tick finds the bin idle
//! (`maintainBin`). The heap (heap.zig) calls these from its slow paths and is the `sink`
//! that hears which of its pages got blocks back (it may release an emptied page).
//! HAKMEM_ADAPT=0 freezes every capacity at its initial value for reproducible runs.
const std = @import("std");
const size_class = @import("../settings/size_class.zig");
const routing = @import("../settings/routing.zig");
const block_mod = @import("../base/block.zig");
const misuse = @import("../settings/misuse.zig");
const stats = @import("../settings/stats.zig");
const page_mod = @import("../memory/page.zig");
const Segment = @import("../memory/segment.zig").Segment;
const Block = block_mod.Block;
const Page = page_mod.Page;

const bins = size_class.bin_count;

// ---------------------------------------------------------------- policy

/// Bytes a bin may hold at most, and the block-count bounds. Bins of blocks larger than
/// max_cached_block have no cache (capacity 0): their frees go straight back to the page.
/// Blocks above 64 KiB are cached (1 to 3 of a class) since each has a page of its own
/// (size_class.single_block_min): a cached one pins only itself, where it pinned a page of
/// 8 (up to 1 MiB) before (fork_load's peak RSS then went from 58 to 72 MiB; now 55-57
/// either way). A 256 KiB malloc+free: 33.5 -> 7.8 ns.
pub const max_bytes_per_bin: usize = 256 * 1024;
/// A big bin (isBigBin: blocks above 8 KiB that share pages, up to 32 KiB) may hold twice
/// that, within a budget of its own: such a bin moves 8 to 32 blocks a flush or refill at
/// 256 KiB, and each batch pays a page lookup per run, a CAS per remote run and a page
/// search at refill, every few frees. Every other bin keeps the room it had (small_budget_bytes).
pub const big_block_min: usize = 8 * 1024;
pub const max_bytes_per_big_bin: usize = 512 * 1024;

/// Blocks above big_block_min that share pages (up to size_class.single_block_min).
pub fn isBigBin(bin: usize) bool {
    std.debug.assert(bin < bins);
    const block_size = size_class.binBlockSize(bin);
    return block_size > big_block_min and block_size <= size_class.single_block_min;
}

fn maxBytesOfBin(bin: usize) usize {
    const bytes = if (isBigBin(bin)) max_bytes_per_big_bin else max_bytes_per_bin;
    std.debug.assert(bytes >= max_bytes_per_bin); // a big bin has more room, never less
    return bytes;
}
pub const max_cached_block: usize = 256 * 1024;
pub const max_blocks: u32 = 256;
pub const min_blocks: u32 = 1;
pub const initial_blocks: u32 = 16;
/// What a bin may hold before it has shown it is used: initial_blocks, but no more than
/// these bytes (a bin of blocks above them starts, and shrinks back, to no room at all: a
/// thread that frees a few big blocks of many classes keeps none of them).
pub const initial_bytes_per_bin: usize = 32 * 1024;
/// Bytes all of a thread's bins may hold together (the sum of capacity x block size):
/// a bin grows only within it; idle bins shrink at maintenance and make room for others.
/// (tcmalloc bounds each thread's cache in bytes the same way.)
pub const budget_bytes: usize = 8 << 20;
/// What the bins that are not big may take of it: 4 MiB less the big bins' initial room
/// (which they counted against before big bins had a budget of their own), so their room,
/// and what an idle thread pool keeps in them, is what it was (pool_bursts peak RSS 20.0 MB
/// either way, medians of 8; without the correction 21.8 MB).
pub const small_budget_bytes: usize = (4 << 20) - big_initial_bytes;
/// Room all live threads' caches may hold together (tcmalloc bounds its thread caches'
/// total the same way, 32 MiB by default): a bin grows only within what is left of it, so
/// a process of many threads does not hold budget_bytes in each. Every thread starts with
/// its initial room whatever is left (about 2 MiB); an exiting thread gives its room back
/// (Cache.retire), and idle bins shrink at maintenance.
pub const all_threads_budget_bytes: usize = 64 << 20;
/// The sum of every live cache's capacity_bytes (atomic: caches of all threads add to it).
var all_threads_capacity_bytes = std.atomic.Value(usize).init(0);
const big_initial_bytes: usize = blk: {
    @setEvalBranchQuota(100_000);
    var total: usize = 0;
    for (0..bins) |bin| {
        if (isBigBin(bin)) total += @as(usize, initialCapacity(bin)) * size_class.binBlockSize(bin);
    }
    break :blk total;
};

/// Largest capacity of a bin: max_bytes_per_bin worth of blocks, at most max_blocks (0 above
/// max_cached_block).
pub fn maxCapacity(bin: usize) u32 {
    std.debug.assert(bin < bins);
    if (size_class.binBlockSize(bin) > max_cached_block) return 0;
    const by_bytes = maxBytesOfBin(bin) / size_class.binBlockSize(bin);
    const most: u32 = @intCast(@min(by_bytes, max_blocks));
    std.debug.assert(@as(usize, most) * size_class.binBlockSize(bin) <= maxBytesOfBin(bin)); // within the bin's bytes
    return most;
}

/// Smallest capacity an idle bin shrinks to (0 for bins without a cache, and for bins of
/// blocks above initial_bytes_per_bin).
pub fn minCapacity(bin: usize) u32 {
    if (size_class.binBlockSize(bin) > initial_bytes_per_bin) return 0;
    const least = @min(min_blocks, maxCapacity(bin));
    std.debug.assert(least <= maxCapacity(bin));
    return least;
}

pub fn initialCapacity(bin: usize) u32 {
    const by_bytes = initial_bytes_per_bin / size_class.binBlockSize(bin);
    const initial: u32 = @intCast(@min(@min(initial_blocks, by_bytes), maxCapacity(bin)));
    std.debug.assert(@as(usize, initial) * size_class.binBlockSize(bin) <= initial_bytes_per_bin); // the initial room's bound
    std.debug.assert(initial <= maxCapacity(bin));
    return initial;
}

/// After an overflow: grow when the bin was allocated from at least `capacity` times since
/// the previous overflow (the cache cycles: more room saves refills and flushes); a bin
/// with no room gets one block's once it was allocated from.
pub fn capacityAfterOverflow(bin: usize, capacity: u32, allocs_since_last: u64) u32 {
    std.debug.assert(capacity <= maxCapacity(bin));
    if (allocs_since_last < @max(capacity, 1)) return capacity;
    const grown = @min(@max(capacity * 2, 1), maxCapacity(bin));
    std.debug.assert(grown >= capacity); // never shrinks here,
    std.debug.assert(grown <= maxCapacity(bin)); // nor grows past the bin's bound
    return grown;
}

/// Blocks a bin that is only freed into (a consumer's: its thread does not allocate from
/// it) may hold at most: a larger batch at its overflows means fewer compare-and-swaps on
/// the owners' pages, each a cache line taken from the owner's core.
pub const free_only_blocks_max: u32 = 64;

/// After an overflow with no allocation from the bin since the previous one: the batch
/// doubles up to free_only_blocks_max (never past maxCapacity).
pub fn capacityWhenOnlyFreed(bin: usize, capacity: u32) u32 {
    std.debug.assert(capacity <= maxCapacity(bin));
    const batch = @max(capacity, @min(@max(capacity * 2, 1), @min(free_only_blocks_max, maxCapacity(bin))));
    std.debug.assert(batch >= capacity); // never shrinks here,
    std.debug.assert(batch <= maxCapacity(bin)); // nor grows past the bin's bound
    return batch;
}

/// At a maintenance tick: an idle bin halves its capacity (its blocks go back to pages).
pub fn capacityWhenIdle(bin: usize, capacity: u32) u32 {
    std.debug.assert(capacity <= maxCapacity(bin));
    const shrunk = @max(minCapacity(bin), capacity / 2);
    std.debug.assert(shrunk >= minCapacity(bin));
    std.debug.assert(capacity < minCapacity(bin) or shrunk <= capacity); // never grows an idle bin
    return shrunk;
}

/// Where each bin's slots start in `Cache.slots`, and how many there are in all. Each bin's
/// region is followed by `stagger_slots` unused ones: with 256 slots (2 KiB) a bin, the
/// tops of every bin's stack at the same depth fell into 2 of the L1 cache's 64 sets (its
/// index is address bits 6-11), and a program that uses many size classes evicted its own
/// stack tops (larson 1 thread, 64 blocks: 5% faster staggered; 1024 blocks: 2-3%).
const slot_layout = blk: {
    @setEvalBranchQuota(100_000);
    var first: [bins]u32 = undefined;
    var total: u32 = 0;
    for (0..bins) |bin| {
        first[bin] = total;
        total += maxCapacity(bin) + stagger_slots;
    }
    break :blk .{ .first = first, .total = total };
};
/// One cache line of slots between two bins' regions: a tiny bin's region is then 33
/// lines long, and the regions of 64 bins in a row start in 64 different L1 sets.
const stagger_slots = 64 / @sizeOf(usize);

test "the bins' stacks start in different L1 sets (no power-of-two stride)" {
    const line = 64;
    const sets = 64; // a 32 KiB 8-way L1 data cache, 64-byte lines
    var seen = [_]bool{false} ** sets;
    var checked: usize = 0;
    for (0..sets) |bin| { // the bins of max_blocks slots come first: a regular stride
        if (maxCapacity(bin) != max_blocks) break;
        checked += 1;
        const set = (slot_layout.first[bin] * @sizeOf(usize) / line) % sets;
        try std.testing.expect(!seen[set]);
        seen[set] = true;
    }
    try std.testing.expect(checked >= size_class.tinyBin(max_bytes_per_bin / max_blocks) + 1); // every bin of blocks up to 1 KiB
}

// ---------------------------------------------------------------- mechanism

/// A bin's stack. Addresses, not pointers: a zeroed Entry (top == bottom == limit == 0) is
/// an empty stack with no room, which is what the heapless sentinel heap is made of.
pub const Entry = extern struct {
    top: usize = 0,
    bottom: usize = 0,
    limit: usize = 0,
    /// Blocks pushed by free (never decreases; read by stats readers on other threads).
    frees: u64 = 0,

    comptime {
        std.debug.assert(@sizeOf(Entry) == 32);
        std.debug.assert(@sizeOf(Entry) == 1 << routing.stack_shift); // (routing's stack offsets)
    }
};

/// Every store to a stack's top, bottom, limit or slots: another thread may read them (a
/// double-free search, `contains`; the stats, `count`), so they are atomic (monotonic: on
/// x86-64 the same plain mov, no fence). Only the owner writes.
inline fn storeWord(at: *usize, value: usize) void {
    @atomicStore(usize, at, value, .monotonic);
}

pub const Cache = extern struct {
    /// One per bin, and one for size_class.no_bin: always zero (empty and full).
    entries: [bins + 1]Entry align(64),
    /// Blocks moved into the cache by refill, and out of it by flush, per bin.
    moved_in: [bins]u64,
    moved_out: [bins]u64,
    /// pops(bin) at the bin's last overflow and at the last maintenance (the policy's clock).
    pops_at_overflow: [bins]u64,
    pops_at_maintenance: [bins]u64,
    /// frees(bin) (the entry's push count) at the last maintenance.
    frees_at_maintenance: [bins]u64,
    /// The sum of every bin's capacity x block size (at most budget_bytes once a bin grew).
    capacity_bytes: usize,
    /// The part of capacity_bytes of the bins that are not big (isBigBin): at most small_budget_bytes.
    small_capacity_bytes: usize,
    slots: [slot_layout.total]*Block,

    pub fn init(self: *Cache, capacity_of: *const fn (usize) u32) void {
        self.entries[bins] = .{};
        for (self.entries[0..bins], 0..) |*e, bin| {
            const bottom = @intFromPtr(&self.slots) + @as(usize, slot_layout.first[bin]) * @sizeOf(usize);
            storeWord(&e.bottom, bottom);
            storeWord(&e.top, bottom);
            storeWord(&e.limit, bottom + @as(usize, capacity_of(bin)) * @sizeOf(usize));
            // A heap taken over by a new thread (an exited thread's: heap.takeEmpty) starts its counts again:
            // the old thread's retired with it (stats counted them twice, more each round).
            @atomicStore(u64, &e.frees, 0, .monotonic);
        }
        self.moved_in = [_]u64{0} ** bins;
        self.moved_out = [_]u64{0} ** bins;
        self.pops_at_overflow = [_]u64{0} ** bins;
        self.pops_at_maintenance = [_]u64{0} ** bins;
        self.frees_at_maintenance = [_]u64{0} ** bins;
        self.capacity_bytes = 0;
        self.small_capacity_bytes = 0;
        for (0..bins) |bin| {
            const bytes = @as(usize, self.capacity(bin)) * size_class.binBlockSize(bin);
            self.capacity_bytes += bytes;
            if (!isBigBin(bin)) self.small_capacity_bytes += bytes;
        }
        std.debug.assert(self.small_capacity_bytes <= self.capacity_bytes);
        std.debug.assert(self.capacity_bytes <= budget_bytes); // the initial room is within the thread's budget
        std.debug.assert(self.entries[bins].limit == 0); // size_class.no_bin's stack: empty and full at once
        _ = all_threads_capacity_bytes.fetchAdd(self.capacity_bytes, .monotonic);
    }

    /// Its thread exits (its stacks are empty): the room it held goes back to what every
    /// thread's cache may hold together (init takes it again for the next thread).
    pub fn retire(self: *Cache) void {
        for (0..bins) |bin| std.debug.assert(self.count(bin) == 0); // flushed first
        std.debug.assert(self.small_capacity_bytes <= self.capacity_bytes); // a part of it
        _ = all_threads_capacity_bytes.fetchSub(self.capacity_bytes, .monotonic);
        self.capacity_bytes = 0;
        self.small_capacity_bytes = 0;
    }

    /// malloc: the newest block of the bin, handed out (its key cleared), or null: the
    /// stack is empty, or its newest block is not keyed free (heap.allocSlow drops it:
    /// `takeUnkeyed`).
    pub inline fn pop(self: *Cache, bin: usize) ?*Block {
        return self.popAt(routing.stackOffset(bin));
    }

    /// pop, by the bin's stack offset (routing.stackOffset: what malloc's routing tables
    /// hold, so that its path has no shift).
    pub inline fn popAt(self: *Cache, offset: usize) ?*Block {
        const e = self.entryAt(offset);
        const top = e.top;
        if (top == e.bottom) return null;
        const blk = @as(*const *Block, @ptrFromInt(top - @sizeOf(usize))).*;
        // The double-free check of free(3), made where the block is handed out (free only
        // stores the key, so it never waits for a block's line another thread wrote): a
        // block pushed twice comes off the stack keyed once; the second time its key is 0
        // (cleared below) or the program's data. The block's line is this thread's
        // already: its free wrote the key.
        if (blk.key != block_mod.cacheKey(offset)) return null;
        storeWord(&e.top, top - @sizeOf(usize));
        // (No prefetch of the next block: since refills read the page's bitmap, not freed
        // blocks, fetching it one malloc ahead gained nothing and cost larson 1 thread 3-5%.)
        blk.key = 0;
        return blk;
    }

    /// The newest block of a bin whose key is not free (pop refused it: a double free's
    /// second copy, or a write after free), off the stack and out of the cache's counts,
    /// for the caller to report (Page.isKeyedFree) and drop.
    pub fn takeUnkeyed(self: *Cache, bin: usize) *Block {
        const e = &self.entries[bin];
        std.debug.assert(e.top > e.bottom); // (pop refused a block: the stack holds one)
        const blk = @as(*const *Block, @ptrFromInt(e.top - @sizeOf(usize))).*;
        std.debug.assert(blk.key != block_mod.cacheKey(routing.stackOffset(bin)));
        storeWord(&e.top, e.top - @sizeOf(usize));
        @atomicStore(u64, &self.moved_out[bin], self.moved_out[bin] + 1, .monotonic); // (not a pop)
        return blk;
    }

    /// free: pushes a block (a checked block start, not marked free). False when full.
    pub inline fn push(self: *Cache, bin: usize, blk: *Block) bool {
        return self.pushKeyed(routing.stackOffset(bin), blk, block_mod.cacheKey(routing.stackOffset(bin)));
    }

    /// push, with the key the caller has loaded already (block.free_key), by the bin's
    /// stack offset (free has it from the block's page: page.zig stack_offset).
    pub inline fn pushKeyed(self: *Cache, offset: usize, blk: *Block, key: usize) bool {
        const e = self.entryAt(offset);
        const top = e.top;
        if (top == e.limit) return false;
        blk.key = key;
        storeWord(@ptrFromInt(top), @intFromPtr(blk));
        storeWord(&e.top, top + @sizeOf(usize));
        e.frees += 1;
        return true;
    }

    /// The stack at `offset` (bin << routing.stack_shift) in `entries`.
    inline fn entryAt(self: *Cache, offset: usize) *Entry {
        std.debug.assert(offset % @sizeOf(Entry) == 0 and offset <= bins * @sizeOf(Entry));
        return @ptrFromInt(@intFromPtr(&self.entries) + offset);
    }

    pub fn count(self: *const Cache, bin: usize) u32 {
        const e = &self.entries[bin];
        return @intCast((@atomicLoad(usize, &e.top, .monotonic) - @atomicLoad(usize, &e.bottom, .monotonic)) / @sizeOf(usize));
    }

    pub fn capacity(self: *const Cache, bin: usize) u32 {
        const e = &self.entries[bin];
        return @intCast((@atomicLoad(usize, &e.limit, .monotonic) - @atomicLoad(usize, &e.bottom, .monotonic)) / @sizeOf(usize));
    }

    /// Blocks malloc took from the bin so far: every block that entered (refill, free) and
    /// is neither gone (flush) nor still here was popped.
    pub fn pops(self: *const Cache, bin: usize) u64 {
        const e = &self.entries[bin];
        const frees = @atomicLoad(u64, &e.frees, .monotonic);
        return @atomicLoad(u64, &self.moved_in[bin], .monotonic) + frees -
            @atomicLoad(u64, &self.moved_out[bin], .monotonic) - self.count(bin);
    }

    /// The bin's blocks, oldest first.
    fn held(self: *Cache, bin: usize) []*Block {
        const e = &self.entries[bin];
        std.debug.assert(e.top >= e.bottom); // (its owner's thread: plain reads)
        std.debug.assert(e.top <= e.limit);
        std.debug.assert((e.top - e.bottom) % @sizeOf(usize) == 0);
        const first: [*]*Block = @ptrFromInt(e.bottom);
        return first[0..self.count(bin)];
    }

    /// True when `blk` is in the bin. Bounded by the bin's capacity. Another thread may
    /// ask too (a double-free check): it may read stale slots, never unmapped memory.
    pub fn contains(self: *const Cache, bin: usize, blk: *const Block) bool {
        const e = &self.entries[bin];
        const top = @atomicLoad(usize, &e.top, .monotonic);
        const bottom = @atomicLoad(usize, &e.bottom, .monotonic);
        if (top < bottom or top > @atomicLoad(usize, &e.limit, .monotonic)) return false;
        var at = bottom;
        while (at < top) : (at += @sizeOf(usize)) {
            if (@atomicLoad(*Block, @as(**Block, @ptrFromInt(at)), .monotonic) == blk) return true;
        }
        return false;
    }

    /// Sets a bin's capacity (its blocks must fit: flush first).
    pub fn setCapacity(self: *Cache, bin: usize, new_capacity: u32) void {
        std.debug.assert(new_capacity <= maxCapacity(bin));
        std.debug.assert(self.count(bin) <= new_capacity);
        // (unchanged, as after most overflows: no read-modify-write of the count every
        // thread shares)
        if (new_capacity == self.capacity(bin)) return;
        const e = &self.entries[bin];
        const block_size = size_class.binBlockSize(bin);
        const old_bytes = @as(usize, self.capacity(bin)) * block_size;
        const new_bytes = @as(usize, new_capacity) * block_size;
        std.debug.assert(self.capacity_bytes >= old_bytes);
        self.capacity_bytes = self.capacity_bytes - old_bytes + new_bytes;
        if (new_bytes > old_bytes) {
            _ = all_threads_capacity_bytes.fetchAdd(new_bytes - old_bytes, .monotonic);
        } else {
            _ = all_threads_capacity_bytes.fetchSub(old_bytes - new_bytes, .monotonic);
        }
        if (!isBigBin(bin)) {
            std.debug.assert(self.small_capacity_bytes >= old_bytes);
            self.small_capacity_bytes = self.small_capacity_bytes - old_bytes + new_bytes;
        }
        std.debug.assert(self.small_capacity_bytes <= self.capacity_bytes);
        storeWord(&e.limit, e.bottom + @as(usize, new_capacity) * @sizeOf(usize));
    }

    /// The capacity a bin may grow to within the thread's budget (budget_bytes) and what
    /// every thread's cache may hold together (all_threads_budget_bytes): `wanted`, or what
    /// is left of the budgets, never less than `current`.
    pub fn withinBudget(self: *const Cache, bin: usize, current: u32, wanted: u32) u32 {
        if (wanted <= current) return wanted;
        const block_size = size_class.binBlockSize(bin);
        var room = @min(budget_bytes -| self.capacity_bytes, all_threads_budget_bytes -| all_threads_capacity_bytes.load(.monotonic));
        if (!isBigBin(bin)) room = @min(room, small_budget_bytes -| self.small_capacity_bytes);
        const more: u32 = @intCast(@min(wanted - current, room / block_size));
        std.debug.assert(current + more <= wanted); // never more than asked
        std.debug.assert(@as(usize, more) * block_size <= room); // within what is left of the budgets
        return current + more;
    }

    /// Returns the `n` oldest blocks of a bin to their pages (see the file header), then
    /// moves the rest down. `owner` is the heap of this cache: pages it holds are local.
    /// Once every run is given back, `sink.pageGotBlocks(page)` is called once per local
    /// page that got blocks, and `sink.pageClaimed(page)` once per page nobody held that a
    /// run took (page.zig: ownership); either may release the page, so no block of the
    /// flush is looked at after that. Returns the blocks given to pages this heap does not
    /// hold (remote frees).
    pub fn flush(self: *Cache, bin: usize, n: u32, owner: *const anyopaque, sink: anytype) u32 {
        const all = self.held(bin);
        std.debug.assert(n <= all.len); // the oldest n of the bin's blocks
        std.debug.assert(n <= max_blocks);
        const out = all[0..n];
        var touched: [max_blocks]*Page = undefined;
        var touched_count: usize = 0;
        var claimed: [max_blocks]*Page = undefined;
        var claimed_count: usize = 0;
        var remote: u32 = 0;
        var i: usize = 0;
        while (i < out.len) {
            const page = Segment.of(@intFromPtr(out[i])).pageOf(@intFromPtr(out[i]));
            const span_end = page.start + @as(usize, page.slice_count) * size_class.slice_size;
            var end = i + 1;
            while (end < out.len and @intFromPtr(out[end]) >= page.start and @intFromPtr(out[end]) < span_end) end += 1;
            const run = out[i..end];
            if (page.owner.load(.monotonic) == owner) {
                returnLocal(page, run);
                if (!page.flushing) {
                    page.flushing = true;
                    touched[touched_count] = page;
                    touched_count += 1;
                }
            } else {
                if (returnRemote(page, run)) {
                    claimed[claimed_count] = page;
                    claimed_count += 1;
                }
                remote += @intCast(run.len);
            }
            i = end;
        }
        const rest = all[n..];
        for (all[0..rest.len], rest) |*to, from| storeWord(@ptrCast(to), @intFromPtr(from));
        storeWord(&self.entries[bin].top, self.entries[bin].top - @as(usize, n) * @sizeOf(usize));
        @atomicStore(u64, &self.moved_out[bin], self.moved_out[bin] + n, .monotonic);
        std.debug.assert(touched_count <= n); // a page per run at most
        std.debug.assert(claimed_count <= n);
        for (touched[0..touched_count]) |page| page.flushing = false;
        for (touched[0..touched_count]) |page| sink.pageGotBlocks(page);
        for (claimed[0..claimed_count]) |page| sink.pageClaimed(page);
        return remote;
    }

    /// Returns all but the `keep` most recently freed blocks of a bin to their pages (flush).
    /// Returns the blocks given to other heaps' pages.
    pub fn flushKeep(self: *Cache, bin: usize, keep: u32, owner: *const anyopaque, sink: anytype) u32 {
        std.debug.assert(keep <= max_blocks);
        const n = self.count(bin);
        if (n <= keep) return 0;
        const remote = self.flush(bin, n - keep, owner, sink);
        std.debug.assert(self.count(bin) == keep); // the newest `keep` stay
        std.debug.assert(remote <= n - keep);
        return remote;
    }

    /// free found the bin's stack full: with `adapt`, the capacity grows when the bin was
    /// allocated from at least `capacity` times since its last overflow (capacityAfterOverflow);
    /// then the older half goes back to the pages. Returns the blocks given to other heaps'
    /// pages. There is room for one block afterwards unless the capacity is 0.
    pub fn overflow(self: *Cache, bin: usize, adapt: bool, owner: *const anyopaque, sink: anytype) u32 {
        const pops_now = self.pops(bin);
        const allocs_since_last = pops_now - self.pops_at_overflow[bin];
        var cap = self.capacity(bin);
        if (adapt) {
            const wanted = if (allocs_since_last == 0) capacityWhenOnlyFreed(bin, cap) else capacityAfterOverflow(bin, cap, allocs_since_last);
            const grown = self.withinBudget(bin, cap, wanted);
            if (grown != cap) stats.incr(&stats.thread_cache_grows);
            cap = grown;
        }
        std.debug.assert(cap <= maxCapacity(bin)); // (the policy's bound)
        self.pops_at_overflow[bin] = pops_now;
        const remote = if (self.count(bin) >= cap) self.flushKeep(bin, cap / 2, owner, sink) else 0;
        self.setCapacity(bin, cap);
        std.debug.assert(cap == 0 or self.count(bin) < cap); // room for the block that overflowed
        return remote;
    }

    /// At a maintenance tick: a bin neither allocated from nor freed into since the last
    /// one (every bin with `force`) returns its blocks to their pages; with `adapt`, an
    /// idle one halves its capacity (capacityWhenIdle). Returns the blocks given to other heaps' pages.
    pub fn maintainBin(self: *Cache, bin: usize, force: bool, adapt: bool, owner: *const anyopaque, sink: anytype) u32 {
        const pops_now = self.pops(bin);
        const frees_now = self.entries[bin].frees;
        // Idle: neither allocated from nor freed into (a consumer's bins are busy too).
        const idle = pops_now == self.pops_at_maintenance[bin] and frees_now == self.frees_at_maintenance[bin];
        self.pops_at_maintenance[bin] = pops_now;
        self.frees_at_maintenance[bin] = frees_now;
        if (self.count(bin) == 0 or !(idle or force)) return 0;
        const remote = self.flushKeep(bin, 0, owner, sink);
        if (adapt and idle) {
            const cap = self.capacity(bin);
            const shrunk = capacityWhenIdle(bin, cap);
            if (shrunk != cap) stats.incr(&stats.thread_cache_shrinks);
            self.setCapacity(bin, shrunk);
        }
        return remote;
    }

    /// (Every block is checked still keyed free, as push left it: a second copy of a
    /// block handed out since (malloc cleared its key), or a stray write after the free or
    /// by an overflow of the block before it, is reported here (Page.isKeyedFree), once
    /// per flush, not on free's path, and the block is dropped. A block already free on
    /// its page is a double free too.)
    fn returnLocal(page: *Page, run: []*Block) void {
        std.debug.assert(run.len >= 1); // a run of one flush
        std.debug.assert(run.len <= max_blocks);
        std.debug.assert(page.slice_offset == 0); // a page's first slice
        for (run) |blk| {
            if (!page.isKeyedFree(blk)) continue;
            if (page.pushFree(blk) == .double_free) misuse.doubleFreeFound(@intFromPtr(blk), page.where());
        }
    }

    /// True when the run took the page (nobody held it: page.pushRemoteChain). Blocks not
    /// keyed free are reported and left out (as returnLocal's); the run's slots are the
    /// flushed part of the stack, so the kept ones are packed in place.
    fn returnRemote(page: *Page, run: []*Block) bool {
        std.debug.assert(run.len >= 1); // a run of one flush
        std.debug.assert(run.len <= max_blocks);
        std.debug.assert(page.slice_offset == 0); // a page's first slice
        var kept: usize = 0;
        for (run) |blk| {
            if (!page.isKeyedFree(blk)) continue;
            storeWord(@ptrCast(&run[kept]), @intFromPtr(blk));
            kept += 1;
        }
        if (kept == 0) return false;
        std.debug.assert(kept <= run.len);
        const chain = run[0..kept];
        for (chain[0 .. chain.len - 1], chain[1..]) |blk, next| blk.link = block_mod.encode(blk, next);
        return page.pushRemoteChain(chain[0], chain[chain.len - 1]);
    }

    pub const Invalid = error{ CacheOverCapacity, CachedBlockNotFree, CachedBlockNotABlock, CachedBlockFreeOnPage, CachedTwice };

    /// Checks a bin's stack (its owner's thread; tests and debug builds): at most its
    /// capacity, within its bin's maximum; every block keyed free, a carved block start of
    /// a page of this bin, not free on its page, and there once. Bounded by the capacity
    /// (squared: at most 256 blocks).
    pub fn validate(self: *Cache, bin: usize) Invalid!void {
        const e = &self.entries[bin];
        if (e.top < e.bottom or e.top > e.limit or self.capacity(bin) > maxCapacity(bin)) return error.CacheOverCapacity;
        const blocks = self.held(bin);
        // Once free(3) pushes without looking (misuse.libc_mode), a program's double free
        // may sit here as a second copy until a pop or a flush finds it: not a broken invariant.
        const once_each = !@atomicLoad(bool, &misuse.libc_mode, .monotonic);
        for (blocks, 0..) |blk, i| {
            const addr = @intFromPtr(blk);
            if (@import("../base/segment_map.zig").lookup(addr) != .segment) return error.CachedBlockNotABlock;
            const page = Segment.of(addr).pageOf(addr);
            if (page.bin != bin or page.blockOf(addr) != addr) return error.CachedBlockNotABlock;
            if (!once_each) continue;
            if (blk.key != block_mod.cacheKey(routing.stackOffset(bin))) return error.CachedBlockNotFree;
            if (page.isOnFreeList(addr)) return error.CachedBlockFreeOnPage;
            for (blocks[0..i]) |earlier| if (earlier == blk) return error.CachedTwice;
        }
    }

    /// malloc found the bin empty and its heap found `page` with free blocks: the stack is
    /// refilled with up to half its capacity from the page, and the first block handed out
    /// (null when the page gave none: every block it took was dropped, Page.popMany).
    pub fn refillAndPop(self: *Cache, bin: usize, page: *Page) ?*Block {
        std.debug.assert(page.bin == bin);
        std.debug.assert(self.capacity(bin) != 0); // a bin with a stack (else the heap takes a block off the page)
        _ = self.refill(bin, page, @max(1, self.capacity(bin) / 2));
        return self.pop(bin);
    }

    /// Puts the bin's blocks in a random order (Fisher-Yates; `state` an xorshift64 state,
    /// never 0). Bounded by the bin's count.
    pub fn shuffle(self: *Cache, bin: usize, state: *u64) void {
        std.debug.assert(state.* != 0);
        const blocks = self.held(bin);
        std.debug.assert(blocks.len <= max_blocks);
        var i = blocks.len;
        while (i > 1) : (i -= 1) {
            var x = state.*;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            state.* = x;
            const j: usize = @intCast(((x >> 32) * i) >> 32); // in [0, i): a multiply, no division
            std.debug.assert(j < i);
            const a = blocks[i - 1];
            storeWord(@ptrCast(&blocks[i - 1]), @intFromPtr(blocks[j]));
            storeWord(@ptrCast(&blocks[j]), @intFromPtr(a));
        }
    }

    /// Fills an empty bin with up to `want` blocks free on `page` (its owner's bitmap).
    /// Returns how many; the lowest address ends on top (handed out first).
    pub fn refill(self: *Cache, bin: usize, page: *Page, want: u32) u32 {
        std.debug.assert(self.count(bin) == 0);
        std.debug.assert(page.bin == bin); // its blocks are of the bin's size
        std.debug.assert(want >= 1);

        const e = &self.entries[bin];
        const room = @min(want, self.capacity(bin));
        const slots: [*]usize = @ptrFromInt(e.bottom);
        var taken: [max_blocks]*Block = undefined;
        const got = page.popMany(taken[0..@min(room, max_blocks)]);
        for (taken[0..got], 0..) |blk, i| storeWord(&slots[got - 1 - i], @intFromPtr(blk));
        storeWord(&e.top, e.bottom + @as(usize, got) * @sizeOf(usize));
        @atomicStore(u64, &self.moved_in[bin], self.moved_in[bin] + got, .monotonic);
        std.debug.assert(got <= room); // no more than it had room for
        std.debug.assert(self.count(bin) == got);
        return got;
    }
};

test "capacity stays within bounds and reverses" {
    for (0..size_class.bin_count) |bin| {
        var cap = initialCapacity(bin);
        try std.testing.expect(cap >= minCapacity(bin) and cap <= maxCapacity(bin));
        try std.testing.expect(@as(usize, maxCapacity(bin)) * size_class.binBlockSize(bin) <= maxBytesOfBin(bin));
        if (size_class.binBlockSize(bin) > max_cached_block) try std.testing.expectEqual(@as(u32, 0), maxCapacity(bin));
        for (0..20) |_| cap = capacityAfterOverflow(bin, cap, 1 << 30);
        try std.testing.expectEqual(maxCapacity(bin), cap);
        try std.testing.expectEqual(cap, capacityAfterOverflow(bin, cap, 0)); // no activity: no growth
        for (0..20) |_| cap = capacityWhenIdle(bin, cap);
        try std.testing.expectEqual(minCapacity(bin), cap);
        cap = capacityAfterOverflow(bin, cap, 1 << 30);
        try std.testing.expect(cap == @min(@max(2 * minCapacity(bin), 1), maxCapacity(bin)));
    }
}

test "a zeroed entry is empty and full at once (the heapless sentinel)" {
    const cache: *Cache = @ptrCast(@alignCast(try std.testing.allocator.alignedAlloc(u8, .fromByteUnits(64), @sizeOf(Cache))));
    defer std.testing.allocator.free(@as([*]align(64) u8, @ptrCast(cache))[0..@sizeOf(Cache)]);
    cache.entries = [_]Entry{.{}} ** (bins + 1);
    var blk: Block = .{ .link = 0, .key = 0 };
    try std.testing.expect(cache.pop(3) == null);
    try std.testing.expect(!cache.push(3, &blk));
    cache.init(initialCapacity);
    try std.testing.expect(cache.push(3, &blk));
    try std.testing.expect(block_mod.isMarkedFree(&blk, routing.stackOffset(3)));
    try std.testing.expect(cache.contains(3, &blk));
    try std.testing.expectEqual(@as(u64, 0), cache.pops(3));
    try std.testing.expectEqual(&blk, cache.pop(3).?);
    try std.testing.expectEqual(@as(usize, 0), blk.key);
    try std.testing.expectEqual(@as(u64, 1), cache.pops(3));
}

test "pop hands a block pushed twice out once: the second copy is refused (its key was cleared) and takeUnkeyed drops it" {
    const cache: *Cache = @ptrCast(@alignCast(try std.testing.allocator.alignedAlloc(u8, .fromByteUnits(64), @sizeOf(Cache))));
    defer std.testing.allocator.free(@as([*]align(64) u8, @ptrCast(cache))[0..@sizeOf(Cache)]);
    block_mod.initSecrets();
    cache.init(initialCapacity);
    var blk: Block = .{ .link = 0, .key = 0 };
    var other: Block = .{ .link = 0, .key = 0 };
    try std.testing.expect(cache.push(3, &blk));
    try std.testing.expect(cache.push(3, &other));
    try std.testing.expect(cache.push(3, &blk)); // free(3) does not look: a double free
    try std.testing.expectEqual(&blk, cache.pop(3).?);
    try std.testing.expectEqual(&other, cache.pop(3).?);
    try std.testing.expect(cache.pop(3) == null); // keyed 0 by the first pop: refused
    try std.testing.expectEqual(@as(u32, 1), cache.count(3));
    try std.testing.expectEqual(&blk, cache.takeUnkeyed(3));
    try std.testing.expectEqual(@as(u32, 0), cache.count(3));
    try std.testing.expectEqual(@as(u64, 2), cache.pops(3)); // handed out twice in all, blk once
    other.key = 0x4141_4141; // a write after free is refused too
    try std.testing.expect(cache.push(3, &other));
    other.key = 0x4141_4141;
    try std.testing.expect(cache.pop(3) == null);
}

test "init starts a reused cache's counts from zero (an exited thread's heap taken by a new thread)" {
    const cache: *Cache = @ptrCast(@alignCast(try std.testing.allocator.alignedAlloc(u8, .fromByteUnits(64), @sizeOf(Cache))));
    defer std.testing.allocator.free(@as([*]align(64) u8, @ptrCast(cache))[0..@sizeOf(Cache)]);
    cache.init(initialCapacity);
    var blocks: [3]Block = undefined;
    for (&blocks) |*b| try std.testing.expect(cache.push(3, b));
    for (0..3) |_| _ = cache.pop(3).?;
    try std.testing.expectEqual(@as(u64, 3), cache.pops(3));
    cache.init(initialCapacity);
    try std.testing.expectEqual(@as(u64, 0), cache.pops(3));
    try std.testing.expectEqual(@as(u64, 0), cache.entries[3].frees);
}

test "bins of 8-32 KiB blocks grow to 512 KiB on a budget of their own; the other bins keep the room they had" {
    const cache: *Cache = @ptrCast(@alignCast(try std.testing.allocator.alignedAlloc(u8, .fromByteUnits(64), @sizeOf(Cache))));
    defer std.testing.allocator.free(@as([*]align(64) u8, @ptrCast(cache))[0..@sizeOf(Cache)]);
    cache.init(initialCapacity);
    var big: ?usize = null;
    var small: ?usize = null;
    for (0..bins) |bin| {
        const bs = size_class.binBlockSize(bin);
        if (big == null and bs == 16 * 1024) big = bin;
        if (small == null and bs == 4096) small = bin;
    }
    const b = big.?;
    const s = small.?;
    try std.testing.expect(isBigBin(b) and !isBigBin(s));
    try std.testing.expectEqual(@as(u32, 32), maxCapacity(b)); // 512 KiB of 16 KiB
    try std.testing.expectEqual(@as(u32, 64), maxCapacity(s)); // 256 KiB of 4 KiB
    // the other bins take their whole share: then a small bin cannot grow, a big one still can
    var filled: usize = 0;
    for (0..bins) |bin| {
        if (isBigBin(bin) or maxCapacity(bin) == 0 or bin == s) continue;
        const cap = cache.withinBudget(bin, cache.capacity(bin), maxCapacity(bin));
        cache.setCapacity(bin, cap);
        filled += 1;
    }
    try std.testing.expect(filled > 8);
    try std.testing.expect(cache.small_capacity_bytes + size_class.binBlockSize(s) > small_budget_bytes);
    try std.testing.expectEqual(cache.capacity(s), cache.withinBudget(s, cache.capacity(s), maxCapacity(s)));
    try std.testing.expectEqual(maxCapacity(b), cache.withinBudget(b, cache.capacity(b), maxCapacity(b)));
    try std.testing.expect(cache.capacity_bytes <= budget_bytes);
}

test "a bin grows only within what every thread's cache may hold together; an exiting thread gives its room back" {
    const cache: *Cache = @ptrCast(@alignCast(try std.testing.allocator.alignedAlloc(u8, .fromByteUnits(64), @sizeOf(Cache))));
    defer std.testing.allocator.free(@as([*]align(64) u8, @ptrCast(cache))[0..@sizeOf(Cache)]);
    const before = all_threads_capacity_bytes.load(.monotonic);
    cache.init(initialCapacity);
    try std.testing.expectEqual(before + cache.capacity_bytes, all_threads_capacity_bytes.load(.monotonic));
    var bin: usize = 0;
    while (size_class.binBlockSize(bin) < 256 or maxCapacity(bin) <= initialCapacity(bin)) bin += 1;
    const cap = cache.capacity(bin);
    try std.testing.expect(cache.withinBudget(bin, cap, cap * 2) > cap); // room: it grows
    // other threads' caches hold all but one block's room of the total
    const others = all_threads_budget_bytes - all_threads_capacity_bytes.load(.monotonic) - size_class.binBlockSize(bin);
    _ = all_threads_capacity_bytes.fetchAdd(others, .monotonic);
    try std.testing.expectEqual(cap + 1, cache.withinBudget(bin, cap, cap * 2));
    _ = all_threads_capacity_bytes.fetchSub(others, .monotonic);
    cache.setCapacity(bin, cap * 2);
    try std.testing.expectEqual(before + cache.capacity_bytes, all_threads_capacity_bytes.load(.monotonic));
    cache.retire();
    try std.testing.expectEqual(before, all_threads_capacity_bytes.load(.monotonic));
}

test "another thread may search a stack while its owner pushes and pops (no data race)" {
    // (The owner's stores are atomic: see the next test. Zig 0.15.1's -fsanitize-thread
    // did not report even a plain-store race here, so the rule is checked in the source.)
    const cache: *Cache = @ptrCast(@alignCast(try std.testing.allocator.alignedAlloc(u8, .fromByteUnits(64), @sizeOf(Cache))));
    defer std.testing.allocator.free(@as([*]align(64) u8, @ptrCast(cache))[0..@sizeOf(Cache)]);
    cache.init(initialCapacity);
    var blocks: [8]Block = undefined;
    var done = std.atomic.Value(bool).init(false);
    const Searcher = struct {
        fn run(c: *Cache, b: *[8]Block, stop: *std.atomic.Value(bool)) void {
            var seen: usize = 0;
            while (!stop.load(.acquire)) {
                if (c.contains(3, &b[0])) seen += 1;
                std.mem.doNotOptimizeAway(c.count(3));
            }
            std.mem.doNotOptimizeAway(seen);
        }
    };
    const t = try std.Thread.spawn(.{}, Searcher.run, .{ cache, &blocks, &done });
    for (0..20_000) |_| {
        for (&blocks) |*b| _ = cache.push(3, b);
        for (blocks) |_| _ = cache.pop(3);
    }
    done.store(true, .release);
    t.join();
    try std.testing.expectEqual(@as(u32, 0), cache.count(3));
}

test "every store to a stack's top, bottom, limit or slots is atomic (storeWord)" {
    // Regression: the owner wrote top/limit and the slots with plain stores while other
    // threads read them (contains, count): a data race in the language's memory model.
    const text = @embedFile("thread_cache.zig");
    const plain = [_][]const u8{ ".top = ", ".top -= ", ".top += ", ".limit = ", ".bottom = ", ".* = blk", "e.* = .{", "std.mem.reverse(*Block", "std.mem.copyForwards(*Block" };
    var lines = std.mem.splitScalar(u8, text, '\n');
    while (lines.next()) |line| {
        const code = std.mem.trim(u8, line, " ");
        if (std.mem.startsWith(u8, code, "//") or std.mem.indexOf(u8, code, "const plain") != null) continue;
        for (plain) |p| if (std.mem.indexOf(u8, code, p) != null) {
            std.debug.print("thread_cache.zig: a plain store another thread may read: {s}\n", .{code});
            return error.PlainStore;
        };
    }
}
