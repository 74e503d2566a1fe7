//! check.zig — check mode (HAKMEM_CHECK=1 or =warn): hakmem as a heap-misuse detector.
//!
//! Every block gets a redzone before and after the program's bytes, and a freed block is
//! poisoned (whole up to 4 KiB; check_pattern.zig) and held in a quarantine before it is
//! handed out again:
//!
//!   block start              user pointer (16-aligned)                         block end
//!   | gap 0xDF… | front header | requested bytes | canary 0xDF …  | trailer            |
//!               | size^s1 tag  |                 |                | size^s2 | offset  |
//!                 16 bytes                          >= 8 bytes        16 bytes
//!   (gap: only for alignments above 16; with 16 the header starts the block, and its
//!    tag is the block's key word: never free_key while the block is live)
//!
//!   freed, in the quarantine:  | 0xDF 0xDF 0xDF … the whole block … 0xDF |  (a mid block above
//!                              4 KiB: its head, a window and its tail: check_pattern.zig)
//!   large blocks (own pages): the first and last page poisoned, the pages between made
//!   inaccessible (a read or write faults and is reported: guard.zig's handler)
//!   out of the quarantine: on the stacks of the thread that let it go (check_reuse.zig),
//!   still poisoned whole, until that thread's next malloc of its bin; or (no room there,
//!   thread exit) back on its page: | link | key (block.zig) | 0xDF …                  |
//!
//! A page block's record beside it (check_side.zig) says whether it is live or freed, and
//! where it was allocated and freed; the quarantine, the batches and the stacks hold only
//! its address. A large block's is in check_live.zig's table (and its Held in the ring).
//!
//! Detected, each with a line naming the problem, the pointer, its tier, class and size,
//! and the thread (misuse.zig), then a line saying what happened (how many bytes past the
//! end or before the start, at which offset), then abort (HAKMEM_CHECK=1) or carry on
//! (=warn):
//!   overflow    a byte of the canary or the trailer changed (at free, realloc, sweep):
//!               "overflow of N bytes past a B-byte block" (memcpy or a loop: same bytes)
//!   underflow   the front header or the gap changed: "underflow of N bytes before ..."
//!   double free the block is poisoned (in the quarantine, on a stack) or keyed free on its
//!               page; its record names the first free
//!   write after free   the poison changed: when the block leaves the quarantine (its first
//!               and last 64 bytes: a block never handed out again is verified too), in a
//!               sweep, and when the block is handed out again (all of its pattern; offset
//!               from the user pointer)
//!   zero-size access   malloc(0) gets a block of 0 requested bytes: its canary starts at
//!               the pointer, so any write through it is an overflow of a 0-byte block
//!   interior and foreign pointers (as before)
//! The sweep (hak_check_heap, and at exit) checks every live block's redzones and every
//! quarantined block's poison (and the calling thread's stacks').
//!
//! What it costs: malloc and free take their common case in a few loads each (mallocQuick,
//! freeQuick, reached straight from the libc entry points with the call's return address:
//! a block off the thread's stacks, verified, its header and trailer written (its canary is
//! the pattern already), recorded; a live block's redzones read, taken with one
//! compare-and-swap on its header's tag (a line just read), its record one store, poisoned,
//! batched), no lock per call; the quarantine fed per thread in batches (one lock per batch,
//! 8-byte entries, only the ring's bookkeeping under it); the pattern written and compared
//! inline, 256 bytes a step (check_pattern.zig), the canary by scan.zig; the next block of a
//! bin's stack prefetched (it was freed long ago: cold), a big block's window too (its
//! entry says where). What is left is the poison, written at free and read back at reuse,
//! and the cache misses of a quarantine's worth of blocks: a 1..32 KiB block's head, window,
//! tail and canary are several KiB of cold lines per malloc and free.
//!
//! Normal mode pays nothing for this: in check mode the thread's cache pointer stays at the
//! empty sentinel so every malloc takes the slow path, heaps have no cache, and every page
//! carries flag_checked so every free takes the slow path to here (alloc.zig).
const std = @import("std");
const os = @import("../base/os.zig");
const config = @import("../settings/config.zig");
const routing = @import("../settings/routing.zig");
const size_class = @import("../settings/size_class.zig");
const segment_map = @import("../base/segment_map.zig");
const page_mod = @import("../memory/page.zig");
const segment_mod = @import("../memory/segment.zig");
const large = @import("../memory/large.zig");
const LargeHeader = @import("../memory/large_header.zig").LargeHeader;
const large_region = @import("../memory/large_region.zig");
const slow = @import("slow.zig");
const block_mod = @import("../base/block.zig");
const misuse = @import("../settings/misuse.zig");
const guard = @import("../memory/guard.zig");
const stats = @import("../settings/stats.zig");
const thread = @import("../thread/thread.zig");
const Lock = @import("../base/lock.zig").Lock;
const scan = @import("../base/scan.zig");
const check_live = @import("check_live.zig");
const check_sites = @import("check_sites.zig");
const check_side = @import("check_side.zig");
const check_reuse = @import("check_reuse.zig");
const Site = check_sites.Site;
const heap_mod = @import("../thread/heap.zig");

const pattern = @import("check_pattern.zig");
const redzone = @import("check_redzone.zig");
const freed_byte = pattern.freed_byte;
const freed_word = pattern.freed_word;
/// Where the freed pattern is verified on reuse (a block on its page has a link and a key).
const pattern_offset = 16;
const front_size = redzone.front_size;
const trailer_size = redzone.trailer_size;
const overhead = redzone.overhead;
/// The quarantine: freed blocks wait here, FIFO, up to this many bytes and entries.
const quarantine_bytes_max: usize = 64 << 20;
const quarantine_entries = 8192;

var lock: Lock = .{};

const Found = redzone.Found;
const pageFound = redzone.pageFound;

/// A large block as check mode lays it out: its last whole page is a guard page (made
/// inaccessible while the block is live), so the block check mode uses ends before it.
fn largeFound(h: *LargeHeader) Found {
    const start = @intFromPtr(h) + h.block_offset;
    std.debug.assert(start % 16 == 0); // a unit or a chunk, plus an offset of 64 or the alignment
    const f: Found = .{ .start = start, .size = guardPage(start, h.usable_size) - start, .page = null, .large_usable = h.usable_size };
    // the block ends at its mapping's end (page-aligned): the guard page is its last page
    std.debug.assert(f.size + os.page_size == h.usable_size);
    return f;
}

fn guardPage(start: usize, usable: usize) usize {
    std.debug.assert(usable >= os.page_size); // (every check-mode large request adds large_extra)
    const guard_at = std.mem.alignBackward(usize, start + usable, os.page_size) - os.page_size;
    std.debug.assert(guard_at % os.page_size == 0); // a whole page to protect
    std.debug.assert(guard_at + os.page_size <= start + usable); // inside the block's bytes
    return guard_at;
}

/// Bytes a large request needs beyond `overhead`: the guard page and the page rounding.
const large_extra = 2 * os.page_size;

/// The block (page block or live large block) that contains `addr`, or null.
fn findContaining(addr: usize) ?Found {
    const tag = segment_map.lookup(addr);
    switch (tag) {
        .segment => {
            const page = segment_mod.Segment.of(addr).pageOf(addr);
            if (page.flags & page_mod.flag_unused != 0) return null;
            const start = page.blockContaining(addr) orelse return null;
            std.debug.assert(start <= addr); // the block that holds addr
            std.debug.assert(addr - start < page.block_size);
            return pageFound(page, start);
        },
        .none => return null,
        .large_region => {
            const base = switch (large_region.lookup(addr)) {
                .live => |b| b,
                else => return null,
            };
            return largeAt(base, addr);
        },
        .large_head, .large_tail => {
            const base = if (tag == .large_head) addr & ~(segment_map.chunk_size - 1) else segment_map.largeHeadOf(addr) orelse return null;
            return largeAt(base, addr);
        },
    }
}

fn largeAt(base: usize, addr: usize) ?Found {
    const start = base + @as(*LargeHeader, @ptrFromInt(base)).block_offset;
    return switch (large.lookup(start, segment_map.lookup(start))) {
        .live => |h| blk: {
            const f = largeFound(h);
            break :blk if (addr >= f.start and addr < f.start + h.usable_size) f else null;
        },
        else => null,
    };
}

fn where(f: Found) misuse.Where {
    if (f.page) |page| return page.where();
    return .{ .tier = "large", .class = null, .block_size = f.size };
}

/// The call sites a report names (check_sites.zig; 0: not known): where the block was
/// allocated, where it was freed, and the call that found the problem.
const Sites = struct {
    alloc: Site = 0,
    freed: Site = 0,
    call: Site = 0,
    call_label: []const u8 = "called",

    fn print(self: Sites) void {
        check_sites.print("allocated", self.alloc);
        check_sites.print("freed", self.freed);
        check_sites.print(self.call_label, self.call);
    }
};

fn report(problem: misuse.Problem, ptr: usize, found: ?Found, offset: ?usize, detail: ?[]const u8) void {
    reportAt(problem, ptr, found, offset, detail, .{});
}

fn reportAt(problem: misuse.Problem, ptr: usize, found: ?Found, offset: ?usize, detail: ?[]const u8, sites: Sites) void {
    reportWhere(problem, ptr, if (found) |f| where(f) else null, offset, detail, sites);
}

/// reportAt of a block described by `block` (null: none; then a foreign pointer says where
/// it points).
fn reportWhere(problem: misuse.Problem, ptr: usize, block: ?misuse.Where, offset: ?usize, detail: ?[]const u8, sites: Sites) void {
    if (block == null and problem == .not_owned) {
        // say where the pointer points (a stack, a file's data, unmapped, maybe another heap)
        const w = @import("../base/foreign.zig").where(ptr);
        os.printStderr("hakmem: CHECK: {s} 0x{x} ({s}, thread {d})\n", .{ problem.text(), ptr, w.text(), std.os.linux.gettid() });
        sites.print();
        return misuse.afterReport();
    }
    misuse.say("CHECK: ", problem, ptr, block, offset);
    if (detail) |d| os.printStderr("hakmem:   {s}\n", .{d});
    sites.print();
    misuse.afterReport();
}

const bytes = redzone.bytes;
const readWord = redzone.readWord;
const firstDifferent = scan.firstDifferent;

fn fmt(buf: []u8, comptime f: []const u8, args: anytype) []const u8 {
    return std.fmt.bufPrint(buf, f, args) catch buf[0..0];
}

// ---------------------------------------------------------------- a live block's redzones (check_redzone.zig)

const Layout = redzone.Layout;

/// Reports the damage to a live block's redzones (overflow: how far past the end;
/// underflow: how far before the start); true when there was some.
fn reportDamage(l: Layout, sites: Sites) bool {
    if (redzone.intact(l)) return false;
    var buf: [160]u8 = undefined;
    var damaged = false;
    const end = l.user + l.requested;
    const zone_end = l.f.start + l.f.size;
    std.debug.assert(end + redzone.canary_min + trailer_size <= zone_end); // (a layout's: l.trailer())
    var first: ?usize = null;
    var last: usize = 0;
    var a = end; // bounded: the block's bytes after the request
    while (a < zone_end) : (a += 1) {
        if (bytes(a)[0] != redzone.expectedByte(l, a)) {
            if (first == null) first = a;
            last = a;
        }
    }
    if (first) |f| {
        std.debug.assert(f >= end); // the first changed byte past the request,
        std.debug.assert(last >= f); // the last one at or after it
        const n = last + 1 - end;
        const to_end = last + 1 == zone_end;
        reportAt(.overflow, l.user, l.f, f - l.user, fmt(&buf, "overflow of {s}{d} byte{s} past a {d}-byte block (bytes changed from offset {d} to {d}{s}){s}", .{ if (to_end) "at least " else "", n, plural(n), l.requested, f - l.user, last - l.user, if (to_end) ", the block's end" else "", if (l.requested == 0) "; a zero-size block was written to" else "" }), sites);
        damaged = true;
    }
    a = l.f.start;
    while (a < l.user and bytes(a)[0] == redzone.expectedByte(l, a)) a += 1;
    if (a < l.user) {
        const n = l.user - a;
        reportAt(.underflow, l.user, l.f, null, fmt(&buf, "underflow of {s}{d} byte{s} before a {d}-byte block (a write below its start{s})", .{ if (a == l.f.start) "at least " else "", n, plural(n), l.requested, if (a == l.f.start) ", from the block's first byte" else "" }), sites);
        damaged = true;
    }
    return damaged;
}

fn plural(n: usize) []const u8 {
    return if (n == 1) "" else "s";
}

// ---------------------------------------------------------------- allocation

pub fn malloc(size: usize, alignment: usize) ?*anyopaque {
    return mallocFor(thread.currentAny(), size, alignment);
}

/// malloc for the calling thread, whose heap is `heap` (null: none yet).
pub fn mallocFor(heap: ?*heap_mod.Heap, size: usize, alignment: usize) ?*anyopaque {
    std.debug.assert(std.math.isPowerOfTwo(alignment));
    std.debug.assert(heap == null or heap.?.checked); // check mode's heaps have no cache
    const site = takeSiteOf(heap);
    if (alignment <= 16) {
        if (heap) |h| {
            if (mallocQuick(h, size, site)) |p| return p;
        }
    }
    const p = mallocAt(size, alignment, site);
    std.debug.assert(p == null or @intFromPtr(p) % @max(alignment, 16) == 0);
    return p;
}

/// mallocQuick for an entry point that passes its call's site along (alloc.zig's
/// mallocCheckedLibc, without HAKMEM_CHECK_STACKS or HAKMEM_TRACE): the block, or null
/// (the entry point then notes its site and goes the whole way, mallocFor).
pub inline fn mallocQuickFrom(heap: *heap_mod.Heap, size: usize, site: Site) ?*anyopaque {
    std.debug.assert(heap.checked); // check mode's heaps have no cache
    return mallocQuick(heap, size, site);
}

/// freeQuick for an entry point that passes its call's site along (preload.zig's
/// freeChecked, as mallocQuickFrom): true when the block went into the quarantine; false:
/// the entry point goes the whole way (free), which finds what else it is.
pub inline fn freeQuickFrom(ptr: usize, site: Site) bool {
    const heap = thread.currentAny() orelse return false;
    return freeQuick(heap, ptr, site);
}

/// malloc's common case: a block of the request's bin on this thread's stacks (let go from
/// the quarantine), its poison verified whole, armed and recorded. Null when there is none
/// (or the request is not a bin's: zero bytes, large): mallocAt then does the rest.
inline fn mallocQuick(heap: *heap_mod.Heap, size: usize, site: Site) ?*anyopaque {
    if (size == 0 or size > routing.by_128_max) return null;
    const bin = routing.fastRoute(size + overhead, BinOrNone{});
    if (bin == size_class.no_bin) return null; // (large, or the slot a threshold is in)
    std.debug.assert(bin < size_class.bin_count);
    const f = popHeld(heap, bin, site) orelse return null;
    std.debug.assert(f.size == size_class.binBlockSize(bin)); // a block of the bin asked for
    const user = f.start + front_size;
    std.debug.assert(user + size + redzone.canary_min + trailer_size <= f.start + f.size); // the bin holds size + overhead
    // a block up to whole_max was verified whole: its canary is the pattern already
    if (f.size <= pattern.whole_max) redzone.armHeader(f, user, size) else redzone.arm(f, user, size);
    if (!check_side.markLive(f.page.?, f.start, user, site)) live_incomplete.store(true, .monotonic);
    return @ptrFromInt(user);
}

/// routing.fastRoute's answer as a plain number (an optional bin went through memory, and
/// its two halves' stores stalled the load that read them back): the bin, or no_bin.
const BinOrNone = struct {
    pub const Result = usize;
    pub inline fn stack(_: BinOrNone, offset: routing.StackOffset) usize {
        std.debug.assert(offset % (1 << routing.stack_shift) == 0); // a stack's offset: no bits lost
        return offset >> routing.stack_shift;
    }
    pub inline fn large(_: BinOrNone) usize {
        return size_class.no_bin;
    }
};

/// The block of `bin` this thread let go of last from the quarantine (check_reuse.zig),
/// its poison verified whole; null when it holds none.
inline fn popHeld(heap: *heap_mod.Heap, bin: usize, site: Site) ?Found {
    const stacks = localOf(heap).reuse orelse return null;
    const word = stacks.pop(bin) orelse return null;
    const start = wordStart(word);
    // A big block's lines, asked for again now: those the last pop of its bin asked for
    // were mostly gone again by now (its next malloc comes dozens of blocks later).
    if (check_reuse.blockBytes(bin) > pattern.whole_max) prefetchBlock(start, check_reuse.blockBytes(bin), wordHint(word));
    heap.counters.direct_allocs[bin] += 1; // (the page counted it when it first left)
    if (stacks.peek(bin)) |next| prefetchBlock(wordStart(next), check_reuse.blockBytes(bin), wordHint(next)); // cold: freed long ago
    const page = segment_mod.Segment.of(start).pageOf(start);
    std.debug.assert(page.bin == bin); // pushed onto its own bin's stack (evict: entryBin)
    std.debug.assert(page.flags & page_mod.flag_checked != 0); // a check-mode page
    verifyHeld(start, page.block_size, site);
    return pageFound(page, start);
}

/// The site of the call being served (check_sites.zig), taken once per call.
fn takeSite() Site {
    return takeSiteOf(thread.currentAny());
}

/// takeSite for the calling thread's `heap` (null: it has none yet).
inline fn takeSiteOf(heap: ?*heap_mod.Heap) Site {
    var none: check_sites.StackBounds = .{}; // a thread without a heap (yet): found again
    return check_sites.take(if (heap) |h| &localOf(h).stack else &none);
}

fn mallocAt(size: usize, alignment: usize, site: Site) ?*anyopaque {
    std.debug.assert(std.math.isPowerOfTwo(alignment));
    if (size > slow.size_max) return slow.outOfMemory();
    if (size == 0 and alignment <= 16) {
        if (zero.take()) |p| {
            // counted as a block of the smallest bin
            if (slow.heap()) |heap| heap.counters.direct_allocs[zero_bin] += 1; // (calloc may come first)
            return p;
        }
    }
    const a = @max(alignment, 16);
    const inner = size + overhead + (a - 16);
    std.debug.assert(inner >= size + overhead); // room for the request, the redzones and the gap
    // room for a large block's guard page: when the size routes to large, and for any
    // aligned request (slow.aligned may serve it with a large block whatever its size)
    const guard_room = routing.route(inner) == .large or a > 16;
    const first = rawBlock(if (guard_room) inner + large_extra else inner, a, site) orelse return null;
    const f = fitting(first, size, a) orelse blk: {
        // Another thread moved the thresholds between the route above and the allocation:
        // a large block without the guard page's room. Once more with it (a large block
        // then, or a page block with room to spare: either fits).
        std.debug.assert(!guard_room);
        _ = slow.free(first.start);
        const again = rawBlock(inner + large_extra, a, site) orelse return null;
        break :blk fitting(again, size, a) orelse {
            _ = slow.free(again.start); // (cannot happen; never write past a block)
            return slow.outOfMemory();
        };
    };
    const user = std.mem.alignForward(usize, f.start + front_size, a);
    std.debug.assert(user % a == 0); // the alignment asked
    std.debug.assert(user + size + redzone.canary_min + trailer_size <= f.start + f.size); // (fitting's)
    if (f.page) |page| {
        if (user != f.start + front_size and page.flags & page_mod.flag_aligned == 0) page.setFlags(page_mod.flag_aligned);
        // an inner user pointer only on a page whose frees find the block containing it
        std.debug.assert(user == f.start + front_size or page.flags & page_mod.flag_aligned != 0);
    }
    redzone.arm(f, user, size);
    if (f.page == null) {
        // the guard page after the block: an overflow past its redzone faults (reported)
        installFaultReports();
        os.protect(@ptrFromInt(f.start + f.size), os.page_size);
    }
    installOnce();
    if (!liveInsert(f, user, site)) live_incomplete.store(true, .monotonic);
    return @ptrFromInt(user);
}

/// A block of `inner` bytes aligned to `a` for mallocAt, found (findContaining).
fn rawBlock(inner: usize, a: usize, site: Site) ?Found {
    std.debug.assert(std.math.isPowerOfTwo(a));
    const f = (if (a <= size_class.min_block_size) takeBlock(inner, site) else fromSlow(slow.aligned(a, inner), site)) orelse return null;
    std.debug.assert(f.page == null or f.size >= inner); // a page block of a bin that holds inner
    return f;
}

/// `f` when it holds `size` bytes aligned to `a` with the redzones around them.
fn fitting(f: Found, size: usize, a: usize) ?Found {
    std.debug.assert(std.math.isPowerOfTwo(a));
    const user = std.mem.alignForward(usize, f.start + front_size, a);
    std.debug.assert(user >= f.start + front_size); // the front header before the user pointer
    return if (user + size + redzone.canary_min + trailer_size > f.start + f.size) null else f;
}

/// A block of `inner` bytes for check.malloc: of a bin, the block this thread let go of last
/// from the quarantine (check_reuse.zig; its poison verified whole), else one from its page;
/// large (or no heap): straight from slow.zig.
fn takeBlock(inner: usize, site: Site) ?Found {
    const bin = routing.bin(inner) orelse return fromSlow(slow.malloc(inner), site);
    std.debug.assert(size_class.binBlockSize(bin) >= inner); // the bin holds the block asked for
    const heap = slow.heap() orelse return fromSlow(slow.outOfMemory(), site);
    if (popHeld(heap, bin, site)) |f| return f;
    return fromSlow(slow.mallocWith(heap, inner), site);
}

/// The block slow.zig handed out at `ptr` (null: out of memory); a page's block that went
/// back to it (keyed free) must still carry its freed pattern.
fn fromSlow(ptr: ?*anyopaque, site: Site) ?Found {
    const f = findContaining(@intFromPtr(ptr orelse return null)).?;
    std.debug.assert(@intFromPtr(ptr) >= f.start); // the block slow.zig handed out holds the pointer
    std.debug.assert(f.page != null or @intFromPtr(ptr) == f.start); // a large block from its start
    // (the key and link were checked when the block left its page's free list)
    if (f.page != null and readWord(f.start + 8) == block_mod.free_key) verifyFreedPattern(f, site);
    return f;
}

/// Asks for the lines verifyHeld will read (the first KiB, the window at `hint` (windowHint)
/// and the tail).
inline fn prefetchBlock(start: usize, size: usize, hint: u16) void {
    std.debug.assert(size >= size_class.min_block_size); // (a bin's block)
    const head = @min(size, 1024);
    // (the first 512 bytes without a loop: most blocks; past a small block's end is harmless)
    inline for (0..8) |line| @prefetch(@as(*const u8, @ptrFromInt(start + line * 64)), .{ .rw = .write });
    var at: usize = 512;
    while (at < head) : (at += 64) @prefetch(@as(*const u8, @ptrFromInt(start + at)), .{ .rw = .write });
    if (size > head) {
        at = size - pattern.tail_bytes;
        while (at < size) : (at += 64) @prefetch(@as(*const u8, @ptrFromInt(start + at)), .{ .rw = .write });
        if (hint != 0) {
            std.debug.assert(@as(usize, hint) * 64 + pattern.window_bytes <= size - pattern.tail_bytes); // the window lies in the block
            inline for (0..pattern.window_bytes / 64) |line| @prefetch(@as(*const u8, @ptrFromInt(start + @as(usize, hint) * 64 + line * 64)), .{ .rw = .write });
        }
    }
}

/// A block back from its page must still carry the freed pattern it got when it was freed
/// (check_pattern.zig says which bytes; its first 16 are the page's link and key now).
fn verifyFreedPattern(f: Found, site: Site) void {
    std.debug.assert(f.page != null); // a page block (its page keeps it keyed free)
    std.debug.assert(f.size > pattern_offset); // the pattern past its link and key
    var buf: [96]u8 = undefined;
    const sites: Sites = .{ .call = site, .call_label = "found by the allocation" };
    // (the common case in a few loads a line: a block up to whole_max was filled whole)
    if (f.size <= pattern.whole_max and pattern.intact(f.start + pattern_offset, f.start + f.size)) return;
    const p = pattern.read(f.start, f.size) orelse {
        const at = f.size - pattern.tail_bytes;
        return reportAt(.use_after_free, f.start, f, at, fmt(&buf, "write after free at offset {d} of the block (found when it was handed out again)", .{at}), sites);
    };
    const at = pattern.firstBroken(f.start, p, pattern_offset) orelse return;
    reportAt(.use_after_free, f.start, f, at, fmt(&buf, "write after free at offset {d} of the block (found when it was handed out again)", .{at}), sites);
}

/// A block from this thread's stacks carries its whole freed pattern (it never went back to
/// its page): verified whole, a write after free reported with where it was allocated and
/// freed.
fn verifyHeld(start: usize, size: usize, site: Site) void {
    std.debug.assert(start % size_class.min_block_size == 0); // a block start,
    std.debug.assert(size >= size_class.min_block_size); // of a bin's size
    if (size <= pattern.whole_max and pattern.intact(start, start + size)) return; // filled whole, intact
    if (size > pattern.whole_max and partialIntact(start, size)) return;
    const h = heldOf(start);
    const at = poisonBroken(h) orelse return;
    reportBrokenPoisonAt(h, at, "found when it was handed out again", site);
}

/// True when a freed block above 4 KiB still holds its pattern, read from the pattern's
/// words in its tail (as its record says them: no read of the record; out of line, so the
/// common case of small blocks stays short).
noinline fn partialIntact(start: usize, size: usize) bool {
    std.debug.assert(size > pattern.whole_max); // (smaller blocks are filled whole)
    const p = pattern.read(start, size) orelse return false;
    std.debug.assert(p.size == size);
    return pattern.firstBroken(start, p, 0) == null;
}

pub fn calloc(count: usize, size: usize) ?*anyopaque {
    const total = std.math.mul(usize, count, size) catch return slow.outOfMemory();
    const p = malloc(total, 16) orelse return null;
    std.debug.assert(@intFromPtr(p) % 16 == 0);
    @memset(bytes(@intFromPtr(p))[0..total], 0);
    if (std.debug.runtime_safety) std.debug.assert(usableSize(@intFromPtr(p)) == total); // the request exactly (a lookup)
    return p;
}

// ---------------------------------------------------------------- free

pub const FreeVerdict = enum { freed, double_free, ignored, not_owned };

/// Validates and frees `ptr`. `.not_owned`: not hakmem's (reported; the caller decides).
pub fn free(ptr: usize) FreeVerdict {
    const heap = thread.currentAny();
    const site = takeSiteOf(heap);
    if (heap) |h| {
        if (freeQuick(h, ptr, site)) return .freed;
    }
    if (ptr == 0) return .freed;
    if (zero.owns(ptr)) return zero.free(ptr);
    const l = switch (validate(ptr, site, "freed")) {
        .block => |l| l,
        .refused => |problem| return switch (problem) {
            .double_free => .double_free,
            .not_owned => .not_owned,
            else => .ignored,
        },
    };
    return if (retire(heap, l, site)) .freed else .double_free;
}

/// free's common case, the general path's tests in a few loads: `ptr` is the user pointer
/// (16 bytes past the start) of a live page block, its redzones intact, recorded live; then
/// it goes into the quarantine. False for anything else (the general path finds what, and
/// reports it).
inline fn freeQuick(heap: *heap_mod.Heap, ptr: usize, site: Site) bool {
    if (segment_map.lookup(ptr) != .segment) return false;
    const page = segment_mod.Segment.of(ptr).pageOf(ptr);
    const start = ptr -% front_size;
    if (page.flags & page_mod.flag_unused != 0 or !page.isBlockStart(start)) return false;
    // liveIntact, for a block whose front header starts it (no gap)
    if (readWord(start + 8) != redzone.liveTag()) return false;
    const requested = readWord(start) ^ redzone.frontSecret();
    const size: usize = page.block_size;
    std.debug.assert(size >= overhead); // a check-mode block: a bin of size + overhead
    if (requested > size - overhead) return false;
    const trailer = start + size - trailer_size;
    std.debug.assert(ptr + requested + redzone.canary_min <= trailer); // the canary between them
    if (readWord(trailer) != requested ^ redzone.trailerSecret() or readWord(trailer + 8) != front_size) return false;
    if (!redzone.filled(ptr + requested, trailer, redzone.canary_byte)) return false;
    return retireWith(heap, .{ .f = pageFound(page, start), .user = ptr, .requested = requested }, site, true);
}

/// Records a block handed out at `user` live (a page's block: check_side.zig; a large one:
/// check_live.zig); false when it could not be (out of memory).
fn liveInsert(f: Found, user: usize, site: Site) bool {
    std.debug.assert(user >= f.start + front_size); // (mallocAt's layout)
    std.debug.assert(user % 16 == 0);
    if (f.page) |page| {
        if (check_side.fits(user - f.start)) return check_side.markLive(page, f.start, user, site);
        return false;
    }
    return check_live.insert(user, site);
}

/// Where the live block at `user` was allocated; null when it is not recorded live.
fn liveSite(f: Found, user: usize) ?Site {
    if (f.page) |page| return check_side.siteOf(page, f.start);
    return check_live.siteOf(user);
}

/// What validate found: the live block `ptr` is the user pointer of, or the problem it
/// reported instead.
const Validated = union(enum) { block: Layout, refused: misuse.Problem };

/// The live block `ptr` is the user pointer of, after checking its redzones (damage is
/// reported, the block still freed); `.refused` (reported) when it is no live block.
/// `site`: the call (a free or a realloc, `label`), named in the reports.
fn validate(ptr: usize, site: Site, label: []const u8) Validated {
    const call: Sites = .{ .call = site, .call_label = label };
    const f = findContaining(ptr) orelse return switch (slow.classify(ptr)) {
        .freed => {
            reportWhere(.double_free, ptr, describe(ptr), null, null, freedSites(ptr, site));
            return .{ .refused = .double_free };
        },
        .not_owned => refuse(.not_owned, ptr, null, null, null, call),
        else => refuse(.interior_pointer, ptr, null, null, null, call),
    };
    std.debug.assert(ptr >= f.start); // (findContaining's answer holds ptr)
    if (redzone.liveIntact(f, ptr)) |l| return .{ .block = l };
    if (f.page != null and slow.classify(f.start) == .freed) return refuse(.double_free, ptr, f, null, null, freedSites(f.start, site));
    const damaged: Sites = .{ .alloc = liveSite(f, ptr) orelse 0, .call = site, .call_label = label };
    switch (redzone.judge(f, ptr)) {
        .live => |l| {
            std.debug.assert(l.user == ptr); // the block freed is the one asked about
            _ = reportDamage(l, damaged); // the canary (the header and trailer are intact)
            return .{ .block = l };
        },
        .damaged => |d| {
            _ = reportDamage(d.layout, .{ .alloc = liveSite(f, d.layout.user) orelse 0, .call = site, .call_label = label });
            if (d.layout.user != ptr) return .{ .refused = .interior_pointer };
            return .{ .block = d.layout };
        },
        .double_free => return refuse(.double_free, ptr, f, null, null, freedSites(f.start, site)),
        .interior => |off| return refuse(.interior_pointer, ptr, f, off, null, call),
        .unknown => return refuse(.trailer_overwritten, ptr, f, null, "both redzones of the block are overwritten (a wild write), or the pointer is not a block hakmem handed out", call),
    }
}

/// Reports `problem` and refuses the pointer (validate's "no live block").
fn refuse(problem: misuse.Problem, ptr: usize, found: ?Found, offset: ?usize, detail: ?[]const u8, sites: Sites) Validated {
    reportAt(problem, ptr, found, offset, detail, sites);
    return .{ .refused = problem };
}

/// A double free's sites: the first free's and the allocation's while the block waits in
/// the quarantine (the ring, or this thread's batch), and the second free.
fn freedSites(start: usize, site: Site) Sites {
    const h = freedSitesOf(start) orelse return .{ .call = site, .call_label = "freed again" };
    return .{ .alloc = h.alloc, .freed = h.freed, .call = site, .call_label = "freed again" };
}

/// The block `ptr` names, freed or not, for a report.
fn describe(ptr: usize) ?misuse.Where {
    if (findContaining(ptr)) |c| return where(c);
    return slow.describe(ptr);
}

pub fn usableSize(ptr: usize) ?usize {
    if (zero.owns(ptr)) return if (zero.isLive(ptr)) 0 else null;
    const f = findContaining(ptr) orelse return null;
    return switch (redzone.judge(f, ptr)) {
        .live => |l| blk: {
            std.debug.assert(l.requested + overhead <= f.size); // the bytes asked for, not the block's
            break :blk l.requested;
        },
        else => null,
    };
}

pub fn realloc(ptr: usize, size: usize) slow.ReallocResult {
    const site = takeSite();
    if (zero.owns(ptr)) {
        if (!zero.isLive(ptr)) {
            _ = zero.free(ptr); // reports it
            return .freed;
        }
        const fresh = mallocAt(size, 16, site) orelse return .{ .ok = null };
        _ = zero.free(ptr);
        return .{ .ok = fresh };
    }
    const l = switch (validate(ptr, site, "reallocated")) {
        .block => |l| l,
        .refused => return switch (slow.classify(ptr)) {
            .not_owned => .not_owned,
            .freed => .freed,
            else => .invalid,
        },
    };
    const fresh = mallocAt(size, 16, site) orelse return .{ .ok = null };
    std.debug.assert(@intFromPtr(fresh) != ptr); // a new block while the old one is still live
    std.debug.assert(l.user == ptr);
    const n = @min(l.requested, size);
    @memcpy(bytes(@intFromPtr(fresh))[0..n], bytes(ptr)[0..n]);
    _ = retire(thread.currentAny(), l, site);
    return .{ .ok = fresh };
}

pub fn alignedAlloc(alignment: usize, size: usize) ?*anyopaque {
    return malloc(size, alignment);
}

// ---------------------------------------------------------------- quarantine

/// A freed block as the checks and reports see it: a large block's, kept beside its ring
/// slot (large_held); a page block's, rebuilt from its record (heldOf).
const Held = struct {
    start: usize = 0,
    size: usize = 0,
    user: usize = 0,
    page: bool = false,
    bin: u8 = 0,
    /// a page block's pattern (check_pattern.zig)
    shape: pattern.Pattern = .{ .size = 0, .head_end = 0, .window_at = 0 },
    large_usable: usize = 0,
    /// where it was allocated and freed (check_sites.zig)
    alloc_site: Site = 0,
    free_site: Site = 0,

    fn freedPattern(self: Held) pattern.Pattern {
        std.debug.assert(self.page); // (a large block's poison is its pages: poisonLarge)
        std.debug.assert(self.shape.size == self.size); // the pattern of this block
        return self.shape;
    }
};

/// The freed page block at `start` (in the quarantine or on a thread's stacks), from its
/// page and its record (check_side.zig). Without a record (out of memory when it was
/// handed out) the pattern is read from the block.
fn heldOf(start: usize) Held {
    const page = segment_mod.Segment.of(start).pageOf(start);
    const size: usize = page.block_size;
    const base: Held = .{ .start = start, .size = size, .user = start + front_size, .page = true, .bin = page.bin };
    const v = check_side.read(page, start) orelse return unrecorded(base);
    if (v.live) return unrecorded(base);
    var h = base;
    h.user = start + v.user_offset;
    h.shape = pattern.fromWindow(size, v.user_offset, v.window);
    h.alloc_site = v.alloc_site;
    h.free_site = v.free_site;
    std.debug.assert(h.user + redzone.canary_min + trailer_size <= start + size); // the user pointer in the block
    std.debug.assert(h.shape.size == size);
    return h;
}

fn unrecorded(base: Held) Held {
    std.debug.assert(base.page); // (a large block's Held is kept in the ring)
    var h = base;
    h.shape = pattern.read(base.start, base.size) orelse .{ .size = base.size, .head_end = base.size, .window_at = 0 };
    std.debug.assert(h.shape.size == base.size);
    return h;
}

/// An entry of the quarantine's ring or a thread's batch: a page block's start (in 16-byte
/// units, bits 0..42), its bin (bits 43..50) and where its freed pattern's window is (a
/// hint, bits 51..62: windowHint); in the ring also a large block's start with bit 63 set,
/// its Held in large_held at the same slot. (8 bytes: a block's record is in check_side.zig.)
const Entry = u64;
const large_entry: Entry = 1 << 63;
const entry_start_bits = segment_map.address_bits - 4;
const entry_bin_shift = entry_start_bits;
const entry_hint_shift = entry_bin_shift + 8;
const hint_max = (1 << 12) - 1;
comptime {
    std.debug.assert(entry_hint_shift + 12 == 63); // the fields fill the word below the large flag
    std.debug.assert(size_class.min_block_size == 16); // (a start in 16-byte units)
}

fn pageEntry(start: usize, bin: usize, hint: u16) Entry {
    std.debug.assert(start >> segment_map.address_bits == 0); // a user-space address, below bit 47,
    std.debug.assert(bin < size_class.bin_count); // a bin,
    std.debug.assert(hint <= hint_max); // and a hint
    const e = start >> 4 | @as(Entry, bin) << entry_bin_shift | @as(Entry, hint) << entry_hint_shift;
    std.debug.assert(entryStart(e) == start); // each reads back
    std.debug.assert(entryBin(e) == bin);
    std.debug.assert(entryHint(e) == hint);
    return e;
}
fn largeEntry(start: usize) Entry {
    std.debug.assert(start >> segment_map.address_bits == 0);
    return large_entry | start >> 4;
}
fn entryStart(e: Entry) usize {
    const start = (e & ((1 << entry_start_bits) - 1)) << 4;
    std.debug.assert(start % size_class.min_block_size == 0); // a block start (page or large)
    return start;
}
fn entryBin(e: Entry) usize {
    std.debug.assert(e & large_entry == 0); // a page block's (a large one has no bin)
    const bin: usize = @intCast((e >> entry_bin_shift) & 0xff);
    std.debug.assert(bin < size_class.bin_count);
    return bin;
}
fn entryHint(e: Entry) u16 {
    return @intCast((e >> entry_hint_shift) & hint_max);
}

/// Where a freed block's pattern has its window, for the prefetch that asks for its lines
/// before it is handed out again (it is verified then): the window's offset in 64-byte
/// units; 0 for a block filled whole (or a window beyond the hint's reach: not prefetched).
fn windowHint(p: pattern.Pattern) u16 {
    if (p.isWhole() or p.window_at / 64 > hint_max) return 0;
    return @intCast(p.window_at / 64);
}

/// A word of a thread's stacks (check_reuse.zig): a block start, its window hint in bits
/// 48..59 (a start's low bits stay clear).
fn stackWord(start: usize, hint: u16) usize {
    std.debug.assert(start >> segment_map.address_bits == 0);
    return start | @as(usize, hint) << 48;
}
fn wordStart(word: usize) usize {
    return word & ((1 << segment_map.address_bits) - 1);
}
fn wordHint(word: usize) u16 {
    return @intCast(word >> 48);
}

/// The quarantine: one FIFO ring of freed blocks for the process (under `ring_lock`), fed
/// by a batch per thread (in its heap, no lock) of up to batch_len blocks or batch_bytes_max
/// bytes; a full batch goes into the ring under one lock acquisition, and the blocks it
/// pushes out of the ring's bounds go onto the thread's stacks (check_reuse.zig), or back
/// to their pages (verified, after the lock is let go).
/// Large blocks skip the batch (the fault handler finds their protected pages in the ring).
var ring_lock: Lock = .{};
var ring: [quarantine_entries]Entry = [_]Entry{0} ** quarantine_entries;
var large_held: [quarantine_entries]Held = undefined;
var held_first: usize = 0;
var held_count: usize = 0;
var held_bytes: usize = 0;
comptime {
    std.debug.assert(std.math.isPowerOfTwo(quarantine_entries)); // slots wrap with a mask
    // an entry's fields: the start's 16-byte units below the bin's 8 bits, the hint's 12
    // bits above them, the large flag at 63
    std.debug.assert(segment_map.address_bits - 4 <= entry_bin_shift);
    std.debug.assert(size_class.bin_count <= 0x100);
    std.debug.assert(entry_bin_shift + 8 <= entry_hint_shift);
    // a single block above the quarantine's bytes skips it (put: "never fits"): only a large one
    std.debug.assert(size_class.binBlockSize(size_class.bin_count - 1) <= quarantine_bytes_max);
}

const batch_len = 32;
const batch_bytes_max: usize = 1 << 20;
/// Blocks a flush lets go of to their pages after the lock; any beyond are released under
/// it (a rare big block that pushes many out).
const flush_out_max = 64;

const Batch = struct {
    count: u32,
    /// blocks this thread freed (freeCount)
    frees: u32,
    bytes: usize,
    entries: [batch_len]Entry,
};
/// What check mode keeps per thread, in its heap's check_local bytes (zero, a fresh
/// mapping's, is empty): its quarantine batch, and its stacks of blocks let go from the
/// quarantine, handed out again by its next mallocs (check_reuse.zig; mapped at the first).
const Local = struct {
    batch: Batch,
    reuse: ?*Stacks,
    /// the thread's stack mapping, for HAKMEM_CHECK_STACKS's walks
    stack: check_sites.StackBounds,
};
const Stacks = check_reuse.Stacks;
comptime {
    std.debug.assert(@sizeOf(Local) <= heap_mod.check_local_bytes);
    std.debug.assert(@alignOf(Local) <= 16);
}

fn localOf(heap: *heap_mod.Heap) *Local {
    std.debug.assert(heap.checked); // check mode's heaps keep it (their caches are empty)
    const local: *Local = @ptrCast(&heap.check_local);
    std.debug.assert(local.batch.count <= batch_len); // (zero for a fresh heap: empty)
    return local;
}

/// The calling thread's Local; null without a heap.
fn ownLocal() ?*Local {
    return localOf(thread.currentAny() orelse return null);
}

fn reuseOf(local: *Local) ?*Stacks {
    if (local.reuse == null) local.reuse = Stacks.make();
    std.debug.assert(local.reuse == null or local.reuse.?.bytes <= check_reuse.thread_bytes_max);
    return local.reuse;
}

/// Takes a validated block out of the live record, poisons it (a large block: its inner
/// pages made inaccessible) and holds it; the oldest blocks beyond the quarantine's bounds
/// are let go. False (reported) when another thread's free took the block first (both saw
/// it live). `heap`: the calling thread's (null: none); `site`: the free's (or realloc's).
fn retire(heap: ?*heap_mod.Heap, l: Layout, site: Site) bool {
    return retireWith(heap, l, site, false);
}

/// retire; `intact`: freeQuick found the block's redzones as arm() wrote them (its tag is
/// the live tag), so the tag taken by this free alone says the block is this free's: its
/// record is then updated with plain stores (a compare-and-swap on the cold record, on
/// every free, cost a sixth of check mode's time).
inline fn retireWith(heap: ?*heap_mod.Heap, l: Layout, site: Site, comptime intact: bool) bool {
    std.debug.assert(l.user >= l.f.start + front_size); // a validated layout: user pointer in the block
    std.debug.assert(l.requested + overhead <= l.f.size);
    const local = if (heap) |hp| localOf(hp) else null;
    const page = l.f.page orelse return retireLarge(heap, l, site);
    // Of two frees of one block at once (both found it live), exactly one takes its tag.
    const tag: *u64 = @ptrFromInt(l.front() + 8);
    const seen = if (intact) redzone.liveTag() else @atomicLoad(u64, tag, .monotonic);
    if (seen == freed_word or @cmpxchgStrong(u64, tag, seen, freed_word, .acq_rel, .monotonic) != null) return raced(l, site);
    const p = pattern.choose(l.f.size, l.user - l.f.start, freeCount(local) ^ l.f.start);
    if (intact) {
        check_side.markFreedTaken(page, l.f.start, site, pattern.windowIndex(p));
    } else switch (check_side.markFreed(page, l.f.start, site, pattern.windowIndex(p))) {
        .taken, .unrecorded => {},
        .not_live => return raced(l, site),
    }
    pattern.write(l.f.start, p);
    countBinFreeBy(heap, page.bin, 1);
    const e = pageEntry(l.f.start, page.bin, windowHint(p));
    const lc = local orelse {
        flushEntries(&[1]Entry{e}, l.f.size, null);
        return true;
    };
    const batch = &lc.batch;
    std.debug.assert(batch.count < batch_len); // (a full batch was flushed at once)
    batch.entries[batch.count] = e;
    batch.count += 1;
    batch.bytes += l.f.size;
    if (batch.count == batch_len or batch.bytes >= batch_bytes_max) flushBatch(lc);
    std.debug.assert(batch.count < batch_len); // room for the next free
    std.debug.assert(batch.bytes < batch_bytes_max);
    return true;
}

noinline fn retireLarge(heap: ?*heap_mod.Heap, l: Layout, site: Site) bool {
    std.debug.assert(l.f.page == null);
    const alloc_site = check_live.remove(l.user) orelse if (live_incomplete.load(.monotonic)) 0 else return raced(l, site);
    std.debug.assert(l.f.size >= os.page_size); // (its guard page's page: largeFound)
    poisonLarge(l.f);
    const h: Held = .{ .start = l.f.start, .size = l.f.size, .user = l.user, .large_usable = l.f.large_usable, .alloc_site = alloc_site, .free_site = site };
    countFreeBy(heap, h, 1);
    flushLarge(h, if (heap) |hp| localOf(hp) else null);
    return true;
}

/// Two frees of one block at once: the second to take it out of the live record reports.
noinline fn raced(l: Layout, site: Site) bool {
    reportAt(.double_free, l.user, l.f, null, "freed by two threads at once", .{ .call = site, .call_label = "freed again" });
    return false;
}

/// The calling thread's count of frees (moves the window of a big block's pattern).
fn freeCount(local: ?*Local) u64 {
    const b = &(local orelse return 0).batch;
    b.frees +%= 1;
    std.debug.assert(b.count < batch_len); // (retire's: before the free joins the batch)
    return b.frees;
}

noinline fn flushBatch(local: *Local) void {
    const batch = &local.batch;
    const n = batch.count;
    std.debug.assert(n <= batch_len);
    std.debug.assert(n > 0 or batch.bytes == 0); // an empty batch holds no bytes
    const bytes_in = batch.bytes;
    batch.count = 0;
    batch.bytes = 0;
    flushEntries(batch.entries[0..n], bytes_in, local);
}

/// Where a flush puts the blocks it lets go of to their pages (released after the lock).
/// And the blocks it put onto the thread's stacks, whose edges it verifies after the lock.
const Out = struct {
    held: [flush_out_max]Held,
    count: usize,
    /// page blocks that left the ring: onto the calling thread's stacks after the lock
    /// (owner-only data: no lock needed), or back to their pages; their edges verified
    gone: [flush_out_max]Entry,
    gone_count: usize,
    stacks: ?*Stacks,

    /// (not `.{}`: an array default is filled in, 6 KiB per flush)
    fn init(self: *Out, stacks: ?*Stacks) void {
        self.count = 0;
        self.gone_count = 0;
        self.stacks = stacks;
    }

    /// Under ring_lock: keeps `h` for after the lock (else, when full, releases it now).
    fn stage(self: *Out, h: Held) void {
        std.debug.assert(ring_lock.isHeld()); // (a flush's, under the ring's lock)
        std.debug.assert(self.count <= self.held.len);
        if (self.count == self.held.len) return releaseToPage(h);
        self.held[self.count] = h;
        self.count += 1;
    }

    /// Under ring_lock: the page block of entry `e` left the ring; settled after the lock
    /// (else, when full, now).
    inline fn leave(self: *Out, e: Entry) void {
        std.debug.assert(self.gone_count <= self.gone.len);
        if (self.gone_count == self.gone.len) return self.settle(e);
        self.gone[self.gone_count] = e;
        self.gone_count += 1;
    }

    /// A page block that left the ring: onto the stacks (room for it), its edges verified;
    /// else back to its page (releaseEntry).
    inline fn settle(self: *const Out, e: Entry) void {
        const start = entryStart(e);
        const bin = entryBin(e);
        if (self.stacks) |st| {
            if (st.push(bin, stackWord(start, entryHint(e)))) return verifyEdgesAt(start, bin); // (the common case)
        }
        releaseEntry(e);
    }

    fn releaseAll(self: *const Out) void {
        std.debug.assert(self.count <= self.held.len);
        std.debug.assert(self.gone_count <= self.gone.len);
        const gone = self.gone[0..self.gone_count];
        // The blocks leaving are the oldest, long cold: their edges asked for at once, so
        // that the misses overlap instead of coming one after another.
        for (gone) |e| {
            @prefetch(@as(*const u8, @ptrFromInt(entryStart(e))), .{});
            @prefetch(@as(*const u8, @ptrFromInt(entryStart(e) + check_reuse.blockBytes(entryBin(e)) - 1)), .{});
        }
        for (gone) |e| self.settle(e);
        for (self.held[0..self.count]) |h| releaseToPage(h);
    }
};

/// A page block leaving the quarantine with no room on the stacks: its edges verified, then
/// back to its page (its Held from the entry: nothing of its record is needed to free it).
fn releaseEntry(e: Entry) void {
    const start = entryStart(e);
    const bin = entryBin(e);
    verifyEdgesAt(start, bin);
    giveBack(.{ .start = start, .size = check_reuse.blockBytes(bin), .user = start + front_size, .page = true, .bin = @intCast(bin) });
}

/// A block leaving the quarantine: the first and last edge bytes of its poison verified
/// (a write after free there is reported even when the block is never handed out again).
inline fn verifyEdgesAt(start: usize, bin: usize) void {
    std.debug.assert(start % size_class.min_block_size == 0); // a block start
    const size = check_reuse.blockBytes(bin);
    const poisoned = if (size >= pattern.edge_bytes) isPoisonLine(start) and isPoisonLine(start + size - pattern.edge_bytes) else scan.allEqual(start, start + size, freed_byte);
    if (!poisoned) _ = verifyPoisonEdges(heldOf(start)); // (says where, and reports it)
}

/// True when the 64 bytes at `addr` are all freed_byte (two vector loads).
inline fn isPoisonLine(addr: usize) bool {
    comptime std.debug.assert(pattern.edge_bytes == 64);
    const V = @Vector(32, u8);
    const splat: V = @splat(freed_byte);
    const a = @as(*align(1) const V, @ptrFromInt(addr)).*;
    const b = @as(*align(1) const V, @ptrFromInt(addr + 32)).*;
    return @reduce(.Or, (a ^ splat) | (b ^ splat)) == 0;
}

/// Puts page blocks' `entries` (`bytes_in` bytes of blocks) into the ring, FIFO; what leaves
/// the ring's bounds is let go (onto the stacks of the calling thread, whose Local is
/// `local`; null: it has no heap).
fn flushEntries(entries: []const Entry, bytes_in: usize, local: ?*Local) void {
    std.debug.assert(entries.len <= batch_len); // a batch, or one block of a heapless thread
    std.debug.assert(local != null or entries.len <= 1);
    if (std.debug.runtime_safety) {
        var sum: usize = 0;
        for (entries) |e| sum += check_reuse.blockBytes(entryBin(e));
        std.debug.assert(sum == bytes_in); // the batch's count of bytes is its blocks'
    }
    const stacks = if (local) |lc| reuseOf(lc) else null;
    var out: Out = undefined;
    out.init(stacks);
    ring_lock.acquire();
    var ring_now = Cursor.load();
    ring_now.putBatch(entries, bytes_in, &out);
    ring_now.store();
    ring_lock.release();
    out.releaseAll();
}

/// Puts a large block into the ring.
fn flushLarge(h: Held, local: ?*Local) void {
    std.debug.assert(!h.page); // (a large block's Held: into the ring beside its entry)
    std.debug.assert(h.start % 16 == 0);
    const stacks = if (local) |lc| reuseOf(lc) else null;
    var out: Out = undefined;
    out.init(stacks);
    ring_lock.acquire();
    var ring_now = Cursor.load();
    ring_now.put(largeEntry(h.start), h.size, h, &out);
    ring_now.store();
    ring_lock.release();
    out.releaseAll();
}

/// The ring's bounds, in locals for the length of a flush (under ring_lock; a flush's
/// loop kept reloading them from memory around every call it made).
const Cursor = struct {
    first: usize,
    count: usize,
    bytes: usize,

    fn load() Cursor {
        std.debug.assert(ring_lock.isHeld());
        const c: Cursor = .{ .first = held_first, .count = held_count, .bytes = held_bytes };
        c.assertBounds();
        return c;
    }

    fn store(self: Cursor) void {
        std.debug.assert(ring_lock.isHeld());
        self.assertBounds();
        held_first = self.first;
        held_count = self.count;
        held_bytes = self.bytes;
    }

    /// The ring within its bounds: its first slot a slot, at most its entries and bytes, and
    /// no bytes without a block (every block's size is above zero).
    fn assertBounds(self: Cursor) void {
        std.debug.assert(self.first < quarantine_entries);
        std.debug.assert(self.count <= quarantine_entries);
        std.debug.assert(self.bytes <= quarantine_bytes_max);
        std.debug.assert((self.count == 0) == (self.bytes == 0));
    }

    /// `e` (`size` bytes; a large block's Held `large_h`) at the ring's tail, after
    /// letting go of the oldest blocks it pushes out of the bounds.
    inline fn put(self: *Cursor, e: Entry, size: usize, large_h: ?Held, out: *Out) void {
        std.debug.assert(size > 0);
        std.debug.assert((e & large_entry != 0) == (large_h != null)); // a large entry has its Held
        // (bounded: each turn takes a block out)
        while (self.count > 0 and (self.count == quarantine_entries or self.bytes + size > quarantine_bytes_max)) self.evict(out);
        if (size > quarantine_bytes_max) return out.stage(large_h orelse heldOf(entryStart(e))); // never fits
        std.debug.assert(self.count < quarantine_entries); // (the loop made room)
        std.debug.assert(self.bytes + size <= quarantine_bytes_max);
        const slot = (self.first + self.count) % quarantine_entries;
        ring[slot] = e;
        if (large_h) |h| large_held[slot] = h;
        self.count += 1;
        self.bytes += size;
    }

    /// Page blocks' `entries` (`bytes_in` bytes) at the ring's tail, after letting go of the
    /// oldest blocks they push out of the bounds: the same blocks `put` of each in turn lets
    /// go (the bounds only tighten as entries join, and a batch alone fits them), in one pass.
    inline fn putBatch(self: *Cursor, entries: []const Entry, bytes_in: usize, out: *Out) void {
        std.debug.assert(entries.len <= batch_len); // a batch alone fits the ring's bounds:
        comptime std.debug.assert(batch_len <= quarantine_entries);
        comptime std.debug.assert(batch_bytes_max + size_class.mid_size_limit <= quarantine_bytes_max); // (batch.bytes < max before its last block)
        std.debug.assert(bytes_in <= batch_bytes_max + size_class.mid_size_limit);
        // (bounded: each turn takes a block out)
        while (self.count > 0 and (self.count + entries.len > quarantine_entries or self.bytes + bytes_in > quarantine_bytes_max)) self.evict(out);
        std.debug.assert(self.count + entries.len <= quarantine_entries); // (the loop made room)
        std.debug.assert(self.bytes + bytes_in <= quarantine_bytes_max);
        // in at most two runs: the ring wraps
        const tail = (self.first + self.count) % quarantine_entries;
        const run = @min(entries.len, quarantine_entries - tail);
        @memcpy(ring[tail..][0..run], entries[0..run]);
        @memcpy(ring[0 .. entries.len - run], entries[run..]);
        self.count += entries.len;
        self.bytes += bytes_in;
    }

    /// Lets go of the oldest block: a page block to `out`'s blocks that left (onto the
    /// stacks after the lock), a large one to its staged Helds.
    inline fn evict(self: *Cursor, out: *Out) void {
        std.debug.assert(self.count > 0);
        const slot = self.first;
        const e = ring[slot];
        self.first = (slot + 1) % quarantine_entries;
        self.count -= 1;
        if (e & large_entry == 0) {
            const bin = entryBin(e);
            std.debug.assert(self.bytes >= check_reuse.blockBytes(bin)); // the count of bytes never drops below zero
            self.bytes -= check_reuse.blockBytes(bin);
            return out.leave(e); // (the common case)
        }
        std.debug.assert(large_held[slot].start == entryStart(e)); // the Held beside its entry
        std.debug.assert(self.bytes >= large_held[slot].size);
        self.bytes -= large_held[slot].size;
        stageHeld(large_held[slot], out);
    }
};

/// out.stage, out of line (the rare case of a flush: a large block, or no room on the stacks).
noinline fn stageHeld(h: Held, out: *Out) void {
    out.stage(h);
}

/// The Held of ring slot `slot` (under ring_lock).
fn heldAt(slot: usize) Held {
    std.debug.assert(ring_lock.isHeld());
    std.debug.assert(slot < quarantine_entries);
    const e = ring[slot];
    return if (e & large_entry != 0) large_held[slot] else heldOf(entryStart(e));
}

/// Thread exit (thread.zig's hook): the thread's batch goes into the ring, the blocks on
/// its stacks back to their pages.
fn flushAtExit(heap: *heap_mod.Heap) void {
    const local = localOf(heap);
    local.stack = .{}; // (the heap's next thread has its own stack)
    flushBatch(local);
    std.debug.assert(local.batch.count == 0); // the batch in the ring
    std.debug.assert(local.batch.bytes == 0);
    const stacks = local.reuse orelse return;
    for (0..size_class.bin_count) |bin| {
        // (whole: these blocks were never handed out again; bounded by the stack's depth)
        while (stacks.pop(bin)) |word| {
            const h = heldOf(wordStart(word));
            _ = verifyPoison(h);
            giveBack(h);
        }
    }
    std.debug.assert(stacks.bytes == 0); // every stack empty: its count of bytes with them
}

/// The sites of a freed block that starts at `start`: a page block's from its record (the
/// last free of it), a large one's from the ring (a report's path: bounded by its size).
fn freedSitesOf(start: usize) ?struct { alloc: Site, freed: Site } {
    if (segment_map.lookup(start) == .segment) {
        const page = segment_mod.Segment.of(start).pageOf(start);
        if (page.flags & page_mod.flag_unused != 0 or !page.isBlockStart(start)) return null;
        const v = check_side.read(page, start) orelse return null;
        if (v.live) return null;
        return .{ .alloc = v.alloc_site, .freed = v.free_site };
    }
    ring_lock.acquire();
    defer ring_lock.release();
    var k = held_count;
    while (k > 0) {
        k -= 1;
        const slot = (held_first + k) % quarantine_entries;
        if (ring[slot] == largeEntry(start)) return .{ .alloc = large_held[slot].alloc_site, .freed = large_held[slot].free_site };
    }
    return null;
}

fn protectedRange(start: usize, size: usize) struct { from: usize, to: usize } {
    std.debug.assert(size >= trailer_size);
    const from = std.mem.alignForward(usize, start + os.page_size, os.page_size);
    const to = std.mem.alignBackward(usize, start + size - trailer_size, os.page_size);
    // whole pages, after the block's first page (its header and head stay readable), before its trailer
    std.debug.assert(from >= start + os.page_size);
    std.debug.assert(from % os.page_size == 0);
    std.debug.assert(to % os.page_size == 0);
    return if (to > from) .{ .from = from, .to = to } else .{ .from = from, .to = from };
}

/// A freed large block: its first page and its tail poisoned, the pages between made
/// inaccessible.
fn poisonLarge(f: Found) void {
    std.debug.assert(f.page == null); // a large block (its own pages)
    const r = protectedRange(f.start, f.size);
    std.debug.assert(f.size >= os.page_size); // (largeFound's block: its mapping less the guard page)
    std.debug.assert(r.from <= f.start + f.size); // the first page's poison ends inside the block
    @memset(bytes(f.start)[0 .. r.from - f.start], freed_byte);
    @memset(bytes(r.to)[0 .. f.start + f.size - r.to], freed_byte);
    if (r.to > r.from) {
        installFaultReports();
        os.protect(@ptrFromInt(r.from), r.to - r.from);
    }
}

/// Verifies a held block's poison (its edges: see verifyFreedPattern; a write after free is
/// reported), then frees it.
fn releaseToPage(h: Held) void {
    _ = verifyPoisonEdges(h);
    giveBack(h);
}

/// Frees a block the quarantine let go of (verified) to its page or the large tier.
fn giveBack(h: Held) void {
    std.debug.assert(h.start % size_class.min_block_size == 0); // the block's start: what slow.free takes
    std.debug.assert(h.size > 0);
    if (!h.page) {
        const r = protectedRange(h.start, h.size);
        if (r.to > r.from) _ = os.commit(@ptrFromInt(r.from), r.to - r.from);
        _ = os.commit(@ptrFromInt(h.start + h.size), os.page_size); // its guard page
    }
    _ = slow.free(h.start);
    countFree(h, -1); // slow.free counted it again: the program's free was counted already
}

/// The statistics count a block freed when the program frees it (it then waits in the
/// quarantine, still in use from its page's view); `by` = -1 takes back the count
/// slow.free adds when the quarantine lets it go (on the same thread, so no counter
/// drops below zero).
fn countFree(h: Held, by: i2) void {
    countFreeBy(thread.currentAny(), h, by);
}

/// countFree for the calling thread's `heap` (null: it has none).
fn countFreeBy(heap: ?*heap_mod.Heap, h: Held, by: i2) void {
    std.debug.assert(by == 1 or by == -1); // one free counted, or taken back
    if (!h.page) {
        if (by > 0) {
            stats.incr(&stats.large.frees);
            stats.subFrom(&stats.large.live_bytes, h.large_usable);
        } else {
            stats.subFrom(&stats.large.frees, 1);
            stats.addTo(&stats.large.live_bytes, h.large_usable);
        }
        return;
    }
    countBinFreeBy(heap, h.bin, by);
}

fn countBinFree(bin: usize, by: i2) void {
    countBinFreeBy(thread.currentAny(), bin, by);
}

fn countBinFreeBy(heap_or_null: ?*heap_mod.Heap, bin: usize, by: i2) void {
    std.debug.assert(bin < size_class.bin_count);
    std.debug.assert(by == 1 or by == -1);
    if (heap_or_null) |heap| {
        const c = &heap.counters.direct_frees[bin];
        // taken back only after slow.free counted it on this thread: never below zero
        std.debug.assert(by > 0 or c.* > 0);
        c.* = if (by > 0) c.* + 1 else c.* - 1;
    } else if (by > 0) {
        stats.incr(&stats.heapless_frees[bin]);
    } else {
        if (std.debug.runtime_safety) std.debug.assert(stats.heapless_frees[bin].load(.monotonic) > 0); // (an atomic load)
        stats.subFrom(&stats.heapless_frees[bin], 1);
    }
}

/// True when a held block's poison is intact; else the write after free is reported.
fn verifyPoison(h: Held) bool {
    return reportBrokenPoison(h, poisonBroken(h) orelse return true);
}

/// verifyPoison of the first and last edge bytes of a page's block (check_pattern.zig; a
/// large block: all that is accessible of it, its first page and its tail).
fn verifyPoisonEdges(h: Held) bool {
    if (!h.page) return verifyPoison(h);
    return reportBrokenPoison(h, pattern.edgesBroken(h.start, h.freedPattern()) orelse return true);
}

/// Reports a write after free at offset `at` of held block `h`; false.
fn reportBrokenPoison(h: Held, at: usize) bool {
    reportBrokenPoisonAt(h, at, "found in the quarantine", 0);
    return false;
}

/// Reports a write after free at offset `at` of held block `h`, found `how` (by the call at
/// `site`, 0: none), and poisons the block again (warn mode: reported once).
fn reportBrokenPoisonAt(h: Held, at: usize, how: []const u8, site: Site) void {
    std.debug.assert(at < h.size); // a byte of the block (poisonBroken's offset)
    std.debug.assert(h.user >= h.start);
    var buf: [160]u8 = undefined;
    const f = findContaining(h.start) orelse return;
    const offset: isize = @as(isize, @intCast(at)) - @as(isize, @intCast(h.user - h.start));
    reportAt(.use_after_free, h.user, f, if (offset >= 0) @intCast(offset) else null, fmt(&buf, "write after free at offset {d} from the freed pointer 0x{x} ({d}-byte block; {s})", .{ offset, h.user, h.size, how }), .{ .alloc = h.alloc_site, .freed = h.free_site, .call = site, .call_label = "found by the allocation" });
    repoison(h);
}

fn repoison(h: Held) void {
    defer if (std.debug.runtime_safety) std.debug.assert(poisonBroken(h) == null); // whole again (scans)
    if (h.page) return pattern.write(h.start, h.freedPattern());
    const r = protectedRange(h.start, h.size);
    @memset(bytes(h.start)[0 .. r.from - h.start], freed_byte);
    @memset(bytes(r.to)[0 .. h.start + h.size - r.to], freed_byte);
}

/// The offset in the block of the first byte whose poison changed (the accessible parts).
fn poisonBroken(h: Held) ?usize {
    if (h.page) return pattern.firstBroken(h.start, h.freedPattern(), 0);
    const r = protectedRange(h.start, h.size);
    if (firstDifferent(h.start, r.from, freed_byte)) |at| return at;
    if (firstDifferent(r.to, h.start + h.size, freed_byte)) |at| {
        std.debug.assert(r.to - h.start + at < h.size); // an offset in the block's tail
        return at + (r.to - h.start);
    }
    return null;
}

// ---------------------------------------------------------------- live blocks and the sweep

/// Set when the live table could not grow (out of memory): a block missing from it may
/// then be live, so a free that finds none there is not taken for a double free.
var live_incomplete = std.atomic.Value(bool).init(false);

/// Checks every live block's redzones and every quarantined block's poison (the ring's,
/// and the calling thread's batch; other threads' batches, at most batch_len recent blocks
/// each, are checked when they reach the ring); returns how many problems were found
/// (each reported). hak_check_heap, and at exit in check mode.
pub fn sweep() usize {
    if (config.check_mode == .off) return 0;
    var problems: usize = 0;
    check_side.forEach(&problems, sweepLive);
    check_live.forEach(&problems, sweepLive);
    {
        ring_lock.acquire();
        defer ring_lock.release();
        Cursor.load().assertBounds(); // (bounds the walk)
        for (0..held_count) |k| {
            if (!verifyPoison(heldAt((held_first + k) % quarantine_entries))) problems += 1;
        }
    }
    if (ownLocal()) |local| {
        for (local.batch.entries[0..local.batch.count]) |e| verifyInSweep(&problems, entryStart(e));
        if (local.reuse) |stacks| stacks.forEach(&problems, verifyWordInSweep);
    }
    return problems;
}

/// A freed page block of this thread's batch or stacks, in a sweep: its poison verified.
fn verifyInSweep(problems: *usize, start: usize) void {
    if (!verifyPoison(heldOf(start))) problems.* += 1;
}

fn verifyWordInSweep(problems: *usize, word: usize) void {
    verifyInSweep(problems, wordStart(word));
}

fn sweepLive(problems: *usize, user: usize, site: Site) void {
    std.debug.assert(user % 16 == 0); // a user pointer as recorded (live records: 16-byte units)
    const f = findContaining(user) orelse return;
    if (redzone.liveIntact(f, user) != null) return;
    // A page block's record is read without a lock: one freed (and poisoned) meanwhile by
    // another thread is no longer recorded live, and is not reported.
    if (f.page) |page| if (check_side.siteOf(page, f.start) != site) return;
    const sites: Sites = .{ .alloc = site };
    switch (redzone.judge(f, user)) {
        .live => |l| if (reportDamage(l, sites)) {
            redzone.arm(l.f, l.user, l.requested); // (warn mode: reported once)
            problems.* += 1;
        },
        .damaged => |d| {
            _ = reportDamage(d.layout, sites);
            if (d.layout.user == user) redzone.arm(d.layout.f, user, d.layout.requested);
            problems.* += 1;
        },
        else => {
            reportAt(.trailer_overwritten, user, f, null, "both redzones of a live block are overwritten (found by the sweep)", sites);
            problems.* += 1;
        },
    }
}

fn atExit() callconv(.c) void {
    if (config.check_mode != .off) _ = sweep();
}

const fini_entry: *const fn () callconv(.c) void = &atExit;
comptime {
    @export(&fini_entry, .{ .name = "hakmem_check_fini_entry", .section = ".fini_array", .visibility = .hidden });
}

// ---------------------------------------------------------------- zero-size blocks

/// malloc(0)'s blocks: distinct addresses 16 bytes apart in a reserved region that is never
/// accessible, so any read or write through one faults and is reported (onFault). A
/// bitmap says which are live (under `lock`); handed out round robin (a freed address is
/// reused as late as possible). When all are live, malloc(0) gets a checked block of 0
/// requested bytes instead (its canary catches writes).
const zero_bin: usize = 0;
const zero = struct {
    const count = 1 << 16;
    const bytes_reserved = count * 16;
    var base = std.atomic.Value(usize).init(0);
    var live_bits: [count / 64]u64 = [_]u64{0} ** (count / 64);
    var cursor: usize = 0;
    var failed = false;

    fn owns(addr: usize) bool {
        const b = base.load(.acquire);
        return b != 0 and addr >= b and addr < b + bytes_reserved;
    }

    fn take() ?*anyopaque {
        installFaultReports();
        lock.acquire();
        defer lock.release();
        var b = base.load(.monotonic);
        if (b == 0) {
            if (failed) return null;
            const mem = os.reserveAligned(bytes_reserved, os.page_size) orelse {
                failed = true;
                return null;
            };
            b = @intFromPtr(mem);
            base.store(b, .release);
        }
        std.debug.assert(b % os.page_size == 0); // the reservation's start
        std.debug.assert(cursor < count);
        var k: usize = 0;
        while (k < count) : (k += 1) {
            const i = (cursor + k) % count;
            const mask = @as(u64, 1) << @intCast(i % 64);
            if (live_bits[i / 64] & mask != 0) continue;
            live_bits[i / 64] |= mask;
            cursor = (i + 1) % count;
            const p = b + i * 16;
            std.debug.assert(p + 16 <= b + bytes_reserved); // a distinct 16 bytes of the reservation
            return @ptrFromInt(p);
        }
        return null;
    }

    fn isLive(addr: usize) bool {
        if (std.debug.runtime_safety) std.debug.assert(owns(addr)); // (an atomic load)
        if ((addr - base.load(.monotonic)) % 16 != 0) return false;
        const i = (addr - base.load(.monotonic)) / 16;
        std.debug.assert(i < count);
        return @atomicLoad(u64, &live_bits[i / 64], .monotonic) & (@as(u64, 1) << @intCast(i % 64)) != 0;
    }

    fn free(addr: usize) FreeVerdict {
        if (std.debug.runtime_safety) std.debug.assert(owns(addr)); // (an atomic load)
        lock.acquire();
        const i = (addr - base.load(.monotonic)) / 16;
        std.debug.assert(i < count);
        const mask = @as(u64, 1) << @intCast(i % 64);
        const live_now = (addr - base.load(.monotonic)) % 16 == 0 and live_bits[i / 64] & mask != 0;
        if (live_now) live_bits[i / 64] &= ~mask;
        lock.release();
        if (live_now) {
            countBinFree(zero_bin, 1);
            return .freed;
        }
        const problem: misuse.Problem = if ((addr - base.load(.monotonic)) % 16 == 0) .double_free else .interior_pointer;
        os.printStderr("hakmem: CHECK: {s} 0x{x} (a zero-size block, malloc(0), thread {d})\n", .{ problem.text(), addr, std.os.linux.gettid() });
        misuse.afterReport();
        return if (problem == .double_free) .double_free else .ignored;
    }
};

// ---------------------------------------------------------------- faults

fn installFaultReports() void {
    guard.fault_hook = &onFault;
    guard.installHandler();
    std.debug.assert(guard.fault_hook == &onFault); // the handler asks check mode first
}

/// guard.zig's handler asks: is `addr` a quarantined large block's protected page, or a
/// live large block's guard page? Then one line (no lock: the process is going down).
fn onFault(addr: usize) bool {
    const tid = std.os.linux.gettid();
    if (zero.owns(addr)) {
        const b = zero.base.load(.monotonic);
        const block = b + (addr - b) / 16 * 16;
        os.printStderr("hakmem: CHECK: access to a zero-size block 0x{x} (malloc(0): no byte of it may be read or written; offset {d}, thread {d}{s})\n", .{ block, addr - block, tid, if (zero.isLive(block)) "" else "; the block is freed" });
        return true;
    }
    for (0..@min(held_count, quarantine_entries)) |k| {
        const slot = (held_first + k) % quarantine_entries;
        std.debug.assert(slot < quarantine_entries);
        if (ring[slot] & large_entry == 0) continue;
        const h = large_held[slot];
        std.debug.assert(!h.page);
        if (addr < h.start or addr >= h.start + h.size) continue;
        os.printStderr("hakmem: CHECK: access to a freed block 0x{x} (large tier, {d}-byte block, offset {d} from the freed pointer, thread {d}): a use after free (the block waits in check mode's quarantine, its pages inaccessible)\n", .{ h.user, h.size, @as(isize, @intCast(addr)) - @as(isize, @intCast(h.user)), tid });
        (Sites{ .alloc = h.alloc_site, .freed = h.free_site }).print();
        return true;
    }
    const f = findContaining(addr) orelse return false;
    if (f.page != null or addr < f.start + f.size or addr >= f.start + f.size + os.page_size) return false;
    const t = redzone.trailerIntact(f);
    const user = if (t) |v| v.user else f.start + front_size;
    const requested: ?usize = if (t) |v| v.requested else if (redzone.frontIntact(f, user)) |r| r else null;
    if (requested) |r| {
        os.printStderr("hakmem: CHECK: write past the requested size of 0x{x} (large tier, {d}-byte block, thread {d}): an access at offset {d}, {d} bytes past the end of the {d}-byte block, in the guard page after it\n", .{ user, f.size, tid, addr - user, addr - (user + r), r });
    } else {
        os.printStderr("hakmem: CHECK: write past the requested size of 0x{x} (large tier, {d}-byte block, thread {d}): an access at offset {d}, in the guard page after the block (its trailer is overwritten too)\n", .{ user, f.size, tid, addr - user });
    }
    (Sites{ .alloc = check_live.trySiteOf(user) orelse 0 }).print();
    return true;
}

// fork: check mode's locks are taken around it (process.zig is below this file: check
// mode installs its own handlers, at its first allocation), and so is the thread-exit hook.
extern "c" fn pthread_atfork(prepare: ?*const fn () callconv(.c) void, parent: ?*const fn () callconv(.c) void, child: ?*const fn () callconv(.c) void) c_int;
var installed = std.atomic.Value(bool).init(false);

fn installOnce() void {
    if (installed.load(.monotonic) or installed.swap(true, .acq_rel)) return;
    std.debug.assert(config.check_mode != .off); // (check mode's handlers, installed by its first malloc)
    thread.check_exit_hook = &flushAtExit;
    _ = pthread_atfork(lockForFork, unlockAfterFork, resetLockInChild); // may malloc: flag set first
}
fn lockForFork() callconv(.c) void {
    lock.acquire();
    ring_lock.acquire();
    check_live.lockAll();
    check_side.lock.acquire();
    std.debug.assert(ring_lock.isHeld()); // no quarantine mid-update across the fork
}
fn unlockAfterFork() callconv(.c) void {
    std.debug.assert(lock.isHeld()); // (lockForFork's, released in reverse order)
    check_side.lock.release();
    check_live.unlockAll();
    ring_lock.release();
    lock.release();
}
fn resetLockInChild() callconv(.c) void {
    std.debug.assert(ring_lock.isHeld()); // held across the fork by lockForFork
    check_side.lock.resetInChild();
    check_live.resetLocksInChild();
    ring_lock.resetInChild();
    lock.resetInChild();
    std.debug.assert(!ring_lock.isHeld()); // the child's own, free
}

test "check-mode layout constants" {
    try std.testing.expect(overhead == 40);
    try std.testing.expect(pattern_offset == @sizeOf(block_mod.Block));
    block_mod.initSecrets();
    try std.testing.expect(redzone.liveTag() != block_mod.free_key and redzone.liveTag() != block_mod.fresh_key and redzone.liveTag() != freed_word);
}
