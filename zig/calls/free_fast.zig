//! free_fast.zig — free's fast path, whole: every test a pointer passes before it goes onto
//! the calling thread's stack, in the order free makes them, each an inline fn here. Any
//! "no" returns false and the caller starts over in alloc.freeOther (check mode, or the one
//! general free: slow.zig), which finds out what the pointer is; nothing here has a side
//! effect before the push.
//!
//!   ptr:  63        47 46              22 21     16 15               0
//!         ├── zero ───┼── chunk (4 MiB) ──┼─ slice ─┼── in the slice ──┤
//!
//!   1 inSegment         tags[ptr >> 22] == segment             segment_map.zig: one byte per
//!                       (ptr >> 47 != 0: not ours; NULL:          4 MiB chunk, atomic loads
//!                       chunk 0 is never ours)
//!   2 sliceOf           slice = segment + @offsetOf(pages)     no load: a shift and a mask;
//!                               + ((ptr >> 16) & 63) * 128     any slice of a span holds a
//!                                                              copy of its page's first line
//!   3 isFastBlockStart  ptr < slice.carved_end                 carved (0 for a slice not in use)
//!                       and ((ptr - start) * div_magic) << 24   a block start (page.zig:
//!                           < slice.fast_magic                   blockStartIndex's proof), and
//!                                                              no slow flag (fast_magic 0)
//!   4 looksFreed        blk.key == block.free_key              hak_free only (freeFastAnswered):
//!                                                              free(3) loads nothing of the
//!                                                              block; its pop checks the key
//!   5 push              cache = thread.cache() (TLS)           thread_cache.zig pushKeyed:
//!                       entry = cache + slice.stack_offset      top != limit (else full: the
//!                       blk.key = key; *top = blk; top += 8;    slow path flushes), no atomic
//!                       frees += 1                              read-modify-write, no lock
//!
//! Who keeps these fields true for any thread that reads them (plain loads): the owner
//! writes start, div_magic, fast_magic, carved_end, bin and flags of a page's first slice
//! (page.zig init, extend, setFlags, clearFlags) and copies them into the span's other
//! slices (Page.syncSpan); fast_magic is div_magic << 24 while no slow flag (aligned,
//! unused, checked, sampled) is set, else 0, so test 3 fails for every address of such a
//! page. A block was carved before it was handed out, so its freer sees carved_end past it.
//! What free does not do here (the page's owner, a remote free, stats, the clock, a double
//! free's search) happens in batches when a stack is flushed or refilled.
//!
//! The code generated for free is what it was when these tests lived in alloc.zig,
//! segment.zig and page.zig (callgrind: instructions per malloc+free pair unchanged).
const std = @import("std");
const size_class = @import("../settings/size_class.zig");
const segment_map = @import("../base/segment_map.zig");
const block_mod = @import("../base/block.zig");
const page_mod = @import("../memory/page.zig");
const segment_mod = @import("../memory/segment.zig");
const thread = @import("../thread/thread.zig");
const Page = page_mod.Page;
const Block = block_mod.Block;
const Segment = segment_mod.Segment;

/// free(3)'s fast path: true when the block went onto this thread's stack. It keeps no
/// stack frame: everything else, and every result but `ok`, is in alloc.freeOther. It
/// reads nothing of the block, only stores its key (so it never waits for a line another
/// thread wrote: larson, producer/consumer): a double free is found where the block
/// leaves the stack (thread_cache pop, flush; Page.isKeyedFree), before it is handed out
/// twice, and aborts there with the same line.
pub inline fn freeFast(ptr: ?*anyopaque) bool {
    const addr = @intFromPtr(ptr);
    const slice = fastSlice(addr) orelse return false; // NULL too: chunk 0 is never ours
    return thread.cache().pushKeyed(slice.stack_offset, @ptrFromInt(addr), block_mod.cacheKey(slice.stack_offset));
}

/// hak_free's fast path (and the library's own frees): freeFast plus test 4, so that a
/// double free is answered at the call, with an error code the caller acts on.
pub inline fn freeFastAnswered(ptr: ?*anyopaque) bool {
    const addr = @intFromPtr(ptr);
    const slice = fastSlice(addr) orelse return false;
    const blk: *Block = @ptrFromInt(addr);
    if (block_mod.isMarkedFree(blk, slice.stack_offset)) return false;
    return thread.cache().pushKeyed(slice.stack_offset, blk, block_mod.cacheKey(slice.stack_offset));
}

/// Tests 1 to 3: the slice (a copy of its page's first line) when `addr` is in a segment
/// and a carved block start of a page without slow flags. Also realloc's fast test.
pub inline fn fastSlice(addr: usize) ?*const Page {
    if (!inSegment(addr)) return null;
    const slice = sliceOf(addr);
    return if (isFastBlockStart(slice, addr)) slice else null;
}

/// Test 1: `addr`'s 4 MiB chunk is a segment of hakmem's (one byte of segment_map).
inline fn inSegment(addr: usize) bool {
    return segment_map.lookup(addr) == .segment;
}

/// Step 2: the descriptor of the slice holding `addr` (for a later slice of a span, a copy
/// of the page's first line: page.zig syncSpan). A shift and a mask; no load.
pub inline fn sliceOf(addr: usize) *Page {
    const seg = addr & ~(segment_mod.segment_size - 1);
    const offset = (addr >> (size_class.slice_shift - page_shift)) & ((segment_mod.slice_count - 1) << page_shift);
    return @ptrFromInt(seg + @offsetOf(Segment, "pages") + offset);
}

/// log2 of a page descriptor's size: slice k's descriptor is at pages + k << page_shift.
const page_shift = std.math.log2_int(usize, @sizeOf(Page));

/// Test 3, on any slice's copy of the first line: `addr` is a carved block start of a page
/// without a slow flag. The multiply is page.zig blockStartIndex's (its comment proves it
/// exact); fast_magic is 0 for a page of aligned blocks, a checked or sampled page, or a
/// slice not in use.
inline fn isFastBlockStart(slice: *const Page, addr: usize) bool {
    const product = (addr -% slice.start) *% slice.div_magic;
    return addr < slice.carved_end and (product << (64 - page_mod.magic_shift)) < slice.fast_magic;
}

comptime {
    std.debug.assert(@sizeOf(Page) == 1 << page_shift);
    std.debug.assert(segment_mod.slice_count << size_class.slice_shift == segment_map.chunk_size);
    // sliceOf: a segment is one chunk of segment_map (test 1 found it), its slices' count a
    // power of two (the mask), the shift a right shift (a slice is larger than a descriptor)
    std.debug.assert(segment_mod.segment_size == segment_map.chunk_size);
    std.debug.assert(std.math.isPowerOfTwo(segment_mod.slice_count));
    std.debug.assert(size_class.slice_shift > page_shift);
    // every field free reads lies in the first line of a slice's descriptor (what syncSpan copies)
    for ([_][]const u8{ "start", "div_magic", "fast_magic", "carved_end", "stack_offset" }) |field| {
        std.debug.assert(@offsetOf(Page, field) + @sizeOf(@FieldType(Page, field)) <= 64);
    }
    // test 3's shift keeps the low magic_shift bits of the product; test 4's key fits the
    // smallest block (free writes it there)
    std.debug.assert(page_mod.magic_shift > 0);
    std.debug.assert(page_mod.magic_shift < 64);
    std.debug.assert(@offsetOf(Block, "key") + @sizeOf(usize) <= size_class.min_block_size);
}

// ------------------------------------------------------------------ tests

test "sliceOf finds a page's first slice and the copies in a span's later slices" {
    const memory = try std.testing.allocator.alignedAlloc(u8, .fromByteUnits(segment_mod.segment_size), segment_mod.segment_size);
    defer std.testing.allocator.free(memory);
    const seg: *Segment = @ptrCast(memory.ptr);
    seg.initHeader();
    const mid_bin = size_class.midBin(100_000);
    const slices = size_class.binPageSlices(mid_bin);
    var reused: usize = 0;
    var owner: u8 = 0;
    const p1 = seg.allocPage(size_class.tinyBin(16), 1, false, &owner, &reused).?;
    const p2 = seg.allocPage(mid_bin, slices, false, &owner, &reused).?;
    try std.testing.expectEqual(p1, sliceOf(p1.start + 100));
    const last_slice = sliceOf(p2.start + (slices - 1) * size_class.slice_size + 5);
    try std.testing.expectEqual(p2.start, last_slice.start);
    try std.testing.expectEqual(p2.fast_magic, last_slice.fast_magic);
    try std.testing.expectEqual(p2.carved_end, last_slice.carved_end);
}

test "isFastBlockStart is the page's block-start test, and false on a page with a slow flag" {
    const memory = try std.testing.allocator.alignedAlloc(u8, .fromByteUnits(segment_mod.segment_size), segment_mod.segment_size);
    defer std.testing.allocator.free(memory);
    const seg: *Segment = @ptrCast(memory.ptr);
    seg.initHeader();
    var reused: usize = 0;
    var owner: u8 = 0;
    const bins = [_]usize{ size_class.tinyBin(48), size_class.tinyBin(1000), size_class.midBin(3000), size_class.midBin(100_000) };
    for (bins) |bin| {
        const page = seg.allocPage(bin, size_class.binPageSlices(bin), false, &owner, &reused) orelse return error.NoRoom;
        page.carved_end = page.start + @as(usize, page.reserved) * page.block_size; // all carved
        page.syncSpan();
        const end = page.start + @as(usize, page.slice_count) * size_class.slice_size;
        var starts: usize = 0;
        var addr = page.start;
        while (addr < end) : (addr += 16) { // bounded: the page's 16-byte steps
            const fast = isFastBlockStart(sliceOf(addr), addr);
            try std.testing.expectEqual(page.isBlockStart(addr), fast);
            if (fast) starts += 1;
        }
        try std.testing.expectEqual(@as(usize, page.reserved), starts);
        page.setFlags(page_mod.flag_aligned); // a slow flag: every free of the page goes slow
        addr = page.start;
        while (addr < end) : (addr += 16) try std.testing.expect(!isFastBlockStart(sliceOf(addr), addr));
        page.clearFlags(page_mod.flag_aligned);
        try std.testing.expect(isFastBlockStart(sliceOf(page.start), page.start));
    }
}
