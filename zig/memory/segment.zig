//! segment.zig — a segment: 4 MiB of address space, 4 MiB aligned, shared by every heap:
//! its slices are placed as pages of any heap, under the arena's lock (arena.zig).
//!
//!   segment (4 MiB aligned)
//!   +-----------------+---------+---------+-------------------+-----+
//!   | slice 0: header | slice 1 | slice 2 | slices 3..6       | ... |   64 slices of 64 KiB:
//!   | Segment + 64    | tiny    | tiny    | one mid page      |     |   slice 0 the header,
//!   | page descriptors| page    | page    | (4 slices)        |     |   63 for pages
//!   +-----------------+---------+---------+-------------------+-----+
//!
//! `ptr & ~(4 MiB - 1)` is the segment; `(ptr - segment) >> 16` the slice; the slice's
//! descriptor (or, for a later slice of a span, the one `slice_offset` before it) is the
//! page; every slice's descriptor also carries a copy of what free() needs (page.zig), so
//! free() reads `pages[(ptr >> 16) & 63]` directly (calls/free_fast.zig sliceOf). Free
//! slices are a bitmap; `dirty_slices` marks free slices whose memory may still be resident. After the header
//! and the descriptors, slice 0 holds each slice's block bitmap (page.bits: 4096 bits, one
//! per 16-byte block; a page of k slices uses the k bitmaps from its first slice on).
const std = @import("std");
const size_class = @import("../settings/size_class.zig");
const segment_map = @import("../base/segment_map.zig");
const page_mod = @import("page.zig");
const os = @import("../base/os.zig");
const stats = @import("../settings/stats.zig");
const Page = page_mod.Page;

pub const segment_size = segment_map.chunk_size;
pub const slice_count = segment_size / size_class.slice_size; // 64
/// Bitmap bytes per slice: a bit per smallest block.
const bits_bytes_per_slice = size_class.slice_size / size_class.min_block_size / 8;
const bits_offset = std.mem.alignForward(usize, @sizeOf(Segment), 64);
const all_slices: u64 = ~@as(u64, 0);
pub const usable_slices: u64 = all_slices << 1; // slice 0 holds this header

/// Every field but `pages` is the arena's, under its lock (arena.zig); a page's descriptor
/// is its holder's once placed (page.zig), the arena's while its slices are free.
pub const Segment = struct {
    /// Links in the arena's list of segments.
    next: ?*Segment = null,
    prev: ?*Segment = null,
    free_slices: u64 = usable_slices,
    dirty_slices: u64 = 0,
    /// The subset of dirty_slices last used by mid pages (to count purges per tier).
    dirty_mid_slices: u64 = 0,
    /// Slices taken out of free_slices while the arena purges them without its lock held
    /// (beginPurge, then arena.zig finishPurges): neither free nor in a page meanwhile.
    purging_slices: u64 = 0,
    used_pages: u32 = 0,
    /// When the dirty slices were freed, on average (monotonic ms): a span freed now moves
    /// it toward now by its share of the dirty slices (markDirty), so a segment that is
    /// freed into all the time does not look as old as its oldest dirty slice, and the decay
    /// curve does not purge what was freed a moment ago (bench mt_churn: 0.042 page faults
    /// a block with the time the first dirty slice was freed, 0.030 with the mean).
    dirty_since_ms: u64 = 0,
    /// When used_pages last dropped to 0 (monotonic ms).
    empty_since_ms: u64 = 0,
    pages: [slice_count]Page = [_]Page{.{}} ** slice_count,

    comptime {
        std.debug.assert(bits_offset + slice_count * bits_bytes_per_slice <= size_class.slice_size);
        std.debug.assert(slice_count == 64); // free_slices and dirty_slices are u64 masks
    }

    pub inline fn of(addr: usize) *Segment {
        return @ptrFromInt(addr & ~(segment_size - 1));
    }

    /// The block bitmap of the page whose first slice is `slice`.
    pub fn bitsOf(self: *Segment, slice: usize) [*]u64 {
        std.debug.assert(slice >= 1); // a page's first slice (slice 0 is the header)
        std.debug.assert(slice < slice_count); // (so the bitmaps stay inside slice 0: comptime above)
        return @ptrFromInt(@intFromPtr(self) + bits_offset + slice * bits_bytes_per_slice);
    }

    pub inline fn pageOf(self: *Segment, addr: usize) *Page {
        const slice = (addr - @intFromPtr(self)) >> size_class.slice_shift;
        const first = slice - self.pages[slice].slice_offset;
        return &self.pages[first];
    }

    pub fn sliceAddress(self: *Segment, slice: usize) usize {
        std.debug.assert(slice < slice_count); // inside the segment
        return @intFromPtr(self) + slice * size_class.slice_size;
    }

    pub fn sliceIndex(self: *Segment, page: *Page) usize {
        const index = (@intFromPtr(page) - @intFromPtr(&self.pages[0])) / @sizeOf(Page);
        std.debug.assert(index < slice_count); // a descriptor of this segment,
        std.debug.assert(&self.pages[index] == page); // never a pointer inside one
        return index;
    }

    /// A fresh mapping's header: every slice free, none resident.
    pub fn initHeader(self: *Segment) void {
        self.* = .{};
        std.debug.assert(self.isEmpty());
        std.debug.assert(self.dirty_slices == 0); // none resident
    }

    /// No page in use, and every slice free (none being purged).
    pub fn isEmpty(self: *const Segment) bool {
        const empty = self.used_pages == 0 and self.free_slices == usable_slices;
        std.debug.assert(!empty or self.purging_slices == 0); // a slice being purged is not free
        return empty;
    }

    /// Every slice is in a page (none free, none being purged).
    pub fn isFull(self: *const Segment) bool {
        return self.free_slices | self.purging_slices == 0;
    }

    fn runMask(count: usize) u64 {
        std.debug.assert(count >= 1); // a span is a slice at least
        return if (count >= 64) all_slices else (@as(u64, 1) << @intCast(count)) - 1;
    }

    pub fn hasRoomFor(self: *const Segment, count: usize) bool {
        std.debug.assert(count >= 1);
        std.debug.assert(count < slice_count); // slice 0 is the header
        return @popCount(self.free_slices) >= count and self.findRun(count) != null;
    }

    pub const Run = struct { slice: usize, dirty_slices: usize };

    /// The run of `count` free slices that overlaps the most dirty (still resident) slices,
    /// first one on ties: reusing resident memory keeps RSS down and saves page faults.
    pub fn findRun(self: *const Segment, count: usize) ?Run {
        std.debug.assert(count >= 1);
        std.debug.assert(count < slice_count);
        // Bit s of `starts`: slices s..s+count-1 are all free (a shift brings in zeros, so
        // no run passes the last slice; slice 0, the header, is never free).
        var starts = self.free_slices;
        var all_dirty = self.dirty_slices;
        for (1..count) |k| {
            starts &= self.free_slices >> @intCast(k);
            all_dirty &= self.dirty_slices >> @intCast(k);
        }
        if (starts == 0) return null;
        const perfect = starts & all_dirty;
        if (perfect != 0) return .{ .slice = @ctz(perfect), .dirty_slices = count };
        // No run is wholly resident: the first with the most resident slices. At most one
        // pass per candidate start (64).
        const mask = runMask(count);
        var best: ?Run = null;
        var rest = starts;
        while (rest != 0) : (rest &= rest - 1) {
            const slice: usize = @ctz(rest);
            const dirty: usize = @popCount(self.dirty_slices & (mask << @intCast(slice)));
            if (best == null or dirty > best.?.dirty_slices) best = .{ .slice = slice, .dirty_slices = dirty };
        }
        std.debug.assert(best != null); // starts != 0: a run exists
        std.debug.assert(best.?.slice >= 1); // never the header
        std.debug.assert(best.?.dirty_slices < count); // (else `perfect` found it)
        return best;
    }

    /// Takes a span of `count` slices for a page of `bin` held by `owner` (the best run).
    /// Returns the page.
    pub fn allocPage(self: *Segment, bin: usize, count: usize, checked: bool, owner: *anyopaque, reused_dirty_bytes: *usize) ?*Page {
        const run = self.findRun(count) orelse return null;
        return self.allocPageAt(bin, count, run.slice, checked, owner, reused_dirty_bytes);
    }

    /// Takes the span of `count` free slices at `slice` for a page of `bin` held by `owner`.
    pub fn allocPageAt(self: *Segment, bin: usize, count: usize, slice: usize, checked: bool, owner: *anyopaque, reused_dirty_bytes: *usize) *Page {
        const run = runMask(count) << @intCast(slice);
        std.debug.assert(self.free_slices & run == run);
        std.debug.assert(slice >= 1); // not the header
        std.debug.assert(slice + count <= slice_count); // within the segment
        reused_dirty_bytes.* = self.takeSlices(slice, 0, count);
        const page = &self.pages[slice];
        page.init(bin, self.sliceAddress(slice), count, self.bitsOf(slice), checked, owner);
        self.used_pages += 1;
        std.debug.assert(self.free_slices & run == 0); // taken: neither free nor dirty
        std.debug.assert(self.dirty_slices & run == 0);
        std.debug.assert(page.slice_count == count); // the span's descriptor
        return page;
    }

    /// Returns a page's span; its memory stays resident (dirty) until purged.
    pub fn freePage(self: *Segment, page: *Page, now_ms: u64) void {
        const slice = self.sliceIndex(page);
        const count: usize = page.slice_count;
        std.debug.assert(page.flags & page_mod.flag_unused == 0);
        std.debug.assert(page.slice_offset == 0); // a span's first slice
        const run = runMask(count) << @intCast(slice);
        std.debug.assert(self.free_slices & run == 0); // not returned twice
        std.debug.assert(self.purging_slices & run == 0);
        self.giveSlices(slice, 0, count, !page.isTiny(), now_ms);
        std.debug.assert(self.used_pages > 0);
        self.used_pages -= 1;
        if (self.used_pages == 0) self.empty_since_ms = now_ms;
        std.debug.assert(self.pages[slice].flags & page_mod.flag_unused != 0); // a free slice's descriptor
    }

    /// (the arena's lock held) `page`'s span takes the slices after it up to `count` slices
    /// if they are all free (realloc in place: arena.resizeSpan). Returns the dirty bytes it
    /// took (resident already), or null when one is not free or past the segment. The new
    /// slices' descriptors get their offsets; the caller copies the first line into them.
    pub fn growSpan(self: *Segment, page: *Page, count: usize) ?usize {
        const slice = self.sliceIndex(page);
        const old: usize = page.slice_count;
        std.debug.assert(count > old); // grown
        std.debug.assert(count <= size_class.max_page_slices);
        std.debug.assert(page.slice_offset == 0); // a span's first slice,
        std.debug.assert(page.flags & page_mod.flag_unused == 0); // a page in use
        if (slice + count > slice_count) return null;
        const run = runMask(count - old) << @intCast(slice + old);
        if (self.free_slices & run != run) return null; // (purging ones are not free)
        const reused = self.takeSlices(slice, old, count);
        page.slice_count = @intCast(count);
        return reused;
    }

    /// (the arena's lock held) `page`'s span gives back its slices past `count`, dirty
    /// (realloc in place to a smaller single-block size: arena.resizeSpan).
    pub fn shrinkSpan(self: *Segment, page: *Page, count: usize, now_ms: u64) void {
        const slice = self.sliceIndex(page);
        const old: usize = page.slice_count;
        std.debug.assert(count >= 1); // a span still
        std.debug.assert(count < old); // shrunk
        std.debug.assert(page.slice_offset == 0); // a span's first slice,
        std.debug.assert(!page.isTiny()); // of a mid page
        const run = runMask(old - count) << @intCast(slice + count);
        std.debug.assert(self.free_slices & run == 0); // the page's own slices:
        std.debug.assert(self.purging_slices & run == 0); // neither free nor being purged
        self.giveSlices(slice, count, old, true, now_ms);
        page.slice_count = @intCast(count);
        std.debug.assert(self.pages[slice + count].flags & page_mod.flag_unused != 0); // a free slice's descriptor
    }

    /// Takes the free slices `from..to` of the span whose first slice is `slice` (a page's
    /// whole span, or what realloc grows it by): their descriptors point back to the first.
    /// Returns the bytes of them that were dirty (resident already).
    fn takeSlices(self: *Segment, slice: usize, from: usize, to: usize) usize {
        const run = runMask(to - from) << @intCast(slice + from);
        std.debug.assert(self.free_slices & run == run); // all free
        const reused = @as(usize, @popCount(self.dirty_slices & run)) * size_class.slice_size;
        self.free_slices &= ~run;
        self.dirty_slices &= ~run;
        self.dirty_mid_slices &= ~run;
        for (from..to) |k| self.pages[slice + k] = .{ .slice_offset = @intCast(k) };
        std.debug.assert(self.free_slices & run == 0); // taken: neither free
        std.debug.assert(self.dirty_slices & run == 0); // nor dirty
        return reused;
    }

    /// Gives back the slices `from..to` of the span whose first slice is `slice` (a page's
    /// whole span, or the tail realloc cuts off), dirty since `now_ms`; `mid`: last used by
    /// a mid page (purges are counted per tier).
    fn giveSlices(self: *Segment, slice: usize, from: usize, to: usize, mid: bool, now_ms: u64) void {
        const run = runMask(to - from) << @intCast(slice + from);
        std.debug.assert(self.free_slices & run == 0); // the span's own
        for (from..to) |k| self.pages[slice + k] = .{};
        self.free_slices |= run;
        self.markDirty(run, now_ms);
        if (mid) self.dirty_mid_slices |= run;
    }

    /// Adds `run` (free slices, not dirty yet) to the dirty ones, freed at `now_ms`: the
    /// dirty slices' time becomes the mean of theirs and now, weighted by slices.
    pub fn markDirty(self: *Segment, run: u64, now_ms: u64) void {
        std.debug.assert(self.dirty_slices & run == 0); // each slice becomes dirty once
        std.debug.assert(self.free_slices & run == run); // dirty slices are free ones
        const before: u64 = @popCount(self.dirty_slices);
        const added: u64 = @popCount(run);
        const since = @min(self.dirty_since_ms, now_ms); // (a clock read before the lock)
        self.dirty_since_ms = if (before == 0) now_ms else since + (now_ms - since) * added / (before + added);
        self.dirty_slices |= run;
        std.debug.assert(self.dirty_since_ms <= now_ms);
    }

    pub fn dirtyBytes(self: *const Segment) usize {
        return @as(usize, @popCount(self.dirty_slices)) * size_class.slice_size;
    }

    pub const Invalid = error{ HeaderSliceFree, DirtySliceNotFree, UsedPagesDisagree, FreeSlicesDisagree, SpanBroken, PurgingSliceFree };

    /// Checks a segment's slices against its masks and counts (the arena's lock held; the
    /// pages' own state is their holders' business: heap.validateHeap): the header slice
    /// is never free, dirty slices are free, a slice being purged is neither free nor in a
    /// page, a free slice is an unused descriptor, a span's later slices point back to its
    /// first, and used_pages counts the spans. Bounded by the 64 slices.
    pub fn validate(self: *const Segment) Invalid!void {
        if (self.free_slices & 1 != 0) return error.HeaderSliceFree;
        if (self.dirty_slices & ~self.free_slices != 0 or self.dirty_mid_slices & ~self.dirty_slices != 0) return error.DirtySliceNotFree;
        if (self.purging_slices & self.free_slices != 0) return error.PurgingSliceFree;
        var pages: u32 = 0;
        var slice: usize = 1;
        while (slice < slice_count) {
            const page = &self.pages[slice];
            const bit = @as(u64, 1) << @intCast(slice);
            const free = (self.free_slices | self.purging_slices) & bit != 0;
            if (page.flags & page_mod.flag_unused != 0) {
                if (!free) return error.FreeSlicesDisagree;
                slice += 1;
                continue;
            }
            if (free or page.slice_offset != 0 or page.slice_count == 0 or slice + page.slice_count > slice_count) return error.SpanBroken;
            if ((self.free_slices | self.purging_slices) & (runMask(page.slice_count) << @intCast(slice)) != 0) return error.FreeSlicesDisagree;
            pages += 1;
            slice += page.slice_count;
        }
        if (pages != self.used_pages) return error.UsedPagesDisagree;
    }

    pub const Purged = struct { tiny_bytes: usize = 0, mid_bytes: usize = 0 };
    /// What beginPurge took: the slices, and their bytes per tier.
    pub const Taken = struct { slices: u64, purged: Purged };

    /// (the arena's lock held) Takes every dirty free slice out of free_slices for a purge
    /// made without the lock (purgeRuns, then endPurge); counted per tier.
    pub fn beginPurge(self: *Segment) Taken {
        const taken = self.dirty_slices;
        std.debug.assert(taken & ~self.free_slices == 0); // dirty slices are free
        std.debug.assert(self.purging_slices & taken == 0); // and not being purged already
        std.debug.assert(self.dirty_mid_slices & ~taken == 0); // mid's are dirty: tiny_bytes >= 0
        const mid_bytes = @as(usize, @popCount(self.dirty_mid_slices)) * size_class.slice_size;
        const purged: Purged = .{ .tiny_bytes = self.dirtyBytes() - mid_bytes, .mid_bytes = mid_bytes };
        self.free_slices &= ~taken;
        self.purging_slices |= taken;
        self.dirty_slices = 0;
        self.dirty_mid_slices = 0;
        return .{ .slices = taken, .purged = purged };
    }

    /// (the arena's lock held) The slices of beginPurge are free again, clean.
    pub fn endPurge(self: *Segment, slices: u64) void {
        std.debug.assert(self.purging_slices & slices == slices);
        std.debug.assert(self.free_slices & slices == 0); // out of free_slices while purged
        std.debug.assert(self.dirty_slices & slices == 0); // no page freed them meanwhile: clean
        self.purging_slices &= ~slices;
        self.free_slices |= slices;
    }

    /// Gives the slices of `mask` back to the OS (`purge_fn` once per contiguous run). No
    /// lock needed: the slices are taken (beginPurge).
    pub fn purgeRuns(self: *Segment, mask: u64, purge_fn: *const fn ([*]u8, usize) void) void {
        std.debug.assert(mask & 1 == 0); // never the header slice
        var slice: usize = 1;
        while (slice < slice_count) {
            if (mask & (@as(u64, 1) << @intCast(slice)) == 0) {
                slice += 1;
                continue;
            }
            var end = slice + 1;
            while (end < slice_count and mask & (@as(u64, 1) << @intCast(end)) != 0) end += 1;
            purge_fn(@ptrFromInt(self.sliceAddress(slice)), (end - slice) * size_class.slice_size);
            slice = end;
        }
    }

    /// (the arena's lock held, or a segment nobody else can reach) Every dirty free slice
    /// back to the OS now, counted in the statistics.
    pub fn purge(self: *Segment) void {
        const taken = self.beginPurge();
        self.purgeRuns(taken.slices, os.purge);
        self.endPurge(taken.slices);
        stats.purged(0, taken.purged.tiny_bytes);
        stats.purged(1, taken.purged.mid_bytes);
    }
};

/// A doubly linked list of segments (the arena's), with both ends.
pub const SegmentList = struct {
    first: ?*Segment = null,
    last: ?*Segment = null,
    count: usize = 0,

    pub fn push(self: *SegmentList, seg: *Segment) void {
        std.debug.assert(seg.next == null); // in no list
        std.debug.assert(seg.prev == null);
        std.debug.assert(self.first != seg);
        seg.next = self.first;
        if (self.first) |f| f.prev = seg else self.last = seg;
        self.first = seg;
        self.count += 1;
    }

    pub fn pushBack(self: *SegmentList, seg: *Segment) void {
        std.debug.assert(seg.next == null); // in no list
        std.debug.assert(seg.prev == null);
        std.debug.assert(self.last != seg);
        seg.prev = self.last;
        if (self.last) |l| l.next = seg else self.first = seg;
        self.last = seg;
        self.count += 1;
    }

    pub fn remove(self: *SegmentList, seg: *Segment) void {
        // in this list: the ends agree with its links
        std.debug.assert((seg.prev == null) == (self.first == seg));
        std.debug.assert((seg.next == null) == (self.last == seg));
        if (seg.prev) |p| p.next = seg.next else self.first = seg.next;
        if (seg.next) |n| n.prev = seg.prev else self.last = seg.prev;
        seg.next = null;
        seg.prev = null;
        std.debug.assert(self.count > 0);
        self.count -= 1;
    }
};

fn noPurge(_: [*]u8, _: usize) void {}

/// A segment of a test's own (allocator memory, 4 MiB aligned, its header initialised).
fn testSegment() !*Segment {
    const memory = try std.testing.allocator.alignedAlloc(u8, .fromByteUnits(segment_size), segment_size);
    const seg: *Segment = @ptrCast(memory.ptr);
    seg.initHeader();
    return seg;
}

fn freeTestSegment(seg: *Segment) void {
    const memory: [*]align(segment_size) u8 = @ptrCast(@alignCast(seg));
    std.testing.allocator.free(memory[0..segment_size]);
}

test "spans: allocate, find, free, purge accounting" {
    const memory = try std.testing.allocator.alignedAlloc(u8, .fromByteUnits(segment_size), segment_size);
    defer std.testing.allocator.free(memory);
    const seg: *Segment = @ptrCast(memory.ptr);
    seg.initHeader();
    const mid_bin = size_class.midBin(100_000);
    const slices = size_class.binPageSlices(mid_bin);
    var reused: usize = 0;
    var owner: u8 = 0;
    const p1 = seg.allocPage(size_class.tinyBin(16), 1, false, &owner, &reused).?;
    const p2 = seg.allocPage(mid_bin, slices, false, &owner, &reused).?;
    // (free's sliceOf, the copies in a span's later slices: calls/free_fast.zig's tests)
    try std.testing.expectEqual(p1, &seg.pages[seg.sliceIndex(p1)]);
    try std.testing.expectEqual(@as(usize, 1), seg.sliceIndex(p1));
    try std.testing.expectEqual(@as(usize, 2), seg.sliceIndex(p2));
    const inside = p2.start + (slices - 1) * size_class.slice_size + 5;
    try std.testing.expectEqual(p2, seg.pageOf(inside));
    try std.testing.expectEqual(@as(u32, 2), seg.used_pages);
    try seg.validate();
    seg.freePage(p1, 10);
    try seg.validate();
    try std.testing.expectEqual(@as(usize, size_class.slice_size), seg.dirtyBytes());
    try std.testing.expect(seg.pages[1].flags & page_mod.flag_unused != 0);
    const taken = seg.beginPurge();
    try std.testing.expectEqual(@as(usize, size_class.slice_size), taken.purged.tiny_bytes);
    try std.testing.expect(!seg.hasRoomFor(slice_count - 1 - slices)); // slice 1 is being purged
    try seg.validate();
    seg.purgeRuns(taken.slices, noPurge);
    seg.endPurge(taken.slices);
    try seg.validate();
    try std.testing.expectEqual(@as(usize, 0), seg.dirtyBytes());
    try std.testing.expect(seg.hasRoomFor(slice_count - 2 - slices));
    try std.testing.expect(!seg.hasRoomFor(slice_count - 1 - slices));
}

test "the dirty slices' time is their mean free time: a segment freed into all along is not as old as its first dirty slice" {
    const seg = try testSegment();
    defer freeTestSegment(seg);
    var reused: usize = 0;
    var owner: u8 = 0;
    var pages: [4]*Page = undefined;
    for (&pages) |*p| p.* = seg.allocPage(size_class.tinyBin(16), 1, false, &owner, &reused).?;
    seg.freePage(pages[0], 1000);
    try std.testing.expectEqual(@as(u64, 1000), seg.dirty_since_ms);
    seg.freePage(pages[1], 1100); // half of the dirty slices freed at 1100
    try std.testing.expectEqual(@as(u64, 1050), seg.dirty_since_ms);
    seg.freePage(pages[2], 1150);
    seg.freePage(pages[3], 1150);
    // (1000 + 1100 + 2 x 1150) / 4, less what each step's integer division drops
    try std.testing.expect(seg.dirty_since_ms >= 1098 and seg.dirty_since_ms <= 1100);
    try seg.validate();
    const taken = seg.beginPurge(); // clean again: the next dirty slice starts the clock anew
    seg.purgeRuns(taken.slices, noPurge);
    seg.endPurge(taken.slices);
    const again = seg.allocPage(size_class.tinyBin(16), 1, false, &owner, &reused).?;
    seg.freePage(again, 5000);
    try std.testing.expectEqual(@as(u64, 5000), seg.dirty_since_ms);
}

test "a span grows into the free slices after it and shrinks back, dirty" {
    const seg = try testSegment();
    defer freeTestSegment(seg);
    var reused: usize = 0;
    var owner: u8 = 0;
    const one = size_class.midBin(40_000); // one slice
    const two = size_class.midBin(100_000); // two slices
    const page = seg.allocPage(one, 1, false, &owner, &reused).?;
    try std.testing.expectEqual(@as(usize, 1), seg.sliceIndex(page));
    try std.testing.expectEqual(@as(u32, 1), page.extend());
    _ = page.popFree() orelse return error.NoBlock; // its block, live
    try std.testing.expectEqual(@as(?usize, 0), seg.growSpan(page, 2)); // slice 2 was free, clean
    page.rebin(two);
    try seg.validate();
    try std.testing.expectEqual(@as(u8, 2), page.slice_count);
    try std.testing.expectEqual(page.start, seg.pages[2].start); // the first line copied
    const next = seg.allocPage(one, 1, false, &owner, &reused).?; // slice 3 now
    try std.testing.expectEqual(@as(usize, 3), seg.sliceIndex(next));
    try std.testing.expect(seg.growSpan(page, 3) == null); // slice 3 in use: nothing changes
    try std.testing.expectEqual(@as(u8, 2), page.slice_count);
    try seg.validate();
    seg.shrinkSpan(page, 1, 700);
    page.rebin(one);
    try seg.validate();
    try std.testing.expectEqual(@as(usize, size_class.slice_size), seg.dirtyBytes()); // slice 2, dirty
    try std.testing.expectEqual(@as(u64, 700), seg.dirty_since_ms);
    try std.testing.expectEqual(@as(?usize, size_class.slice_size), seg.growSpan(page, 2)); // resident again
    page.rebin(two);
    try seg.validate();
    try std.testing.expectEqual(@as(usize, 0), seg.dirtyBytes());
}

test "findRun matches a slice-by-slice scan on random free and dirty masks" {
    var prng = std.Random.DefaultPrng.init(42);
    const random = prng.random();
    for (0..20_000) |_| {
        var seg: Segment = undefined;
        // sparse and dense free masks; dirty slices are always free ones
        const free = (random.int(u64) | if (random.boolean()) random.int(u64) else 0) & usable_slices;
        seg.free_slices = free;
        seg.dirty_slices = free & random.int(u64);
        const count = random.intRangeAtMost(usize, 1, 20);
        // reference: every start in order, the first with the most dirty slices
        var want: ?Segment.Run = null;
        var slice: usize = 1;
        while (slice + count <= slice_count) : (slice += 1) {
            const run = Segment.runMask(count) << @intCast(slice);
            if (seg.free_slices & run != run) continue;
            const dirty: usize = @popCount(seg.dirty_slices & run);
            if (want == null or dirty > want.?.dirty_slices) want = .{ .slice = slice, .dirty_slices = dirty };
        }
        const got = seg.findRun(count);
        try std.testing.expectEqual(want == null, got == null);
        if (want) |w| {
            try std.testing.expectEqual(w.slice, got.?.slice);
            try std.testing.expectEqual(w.dirty_slices, got.?.dirty_slices);
        }
    }
}
