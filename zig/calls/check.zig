//! check.zig — check mode (HAKMEM_CHECK=1 or =warn): hakmem as a heap-misuse detector.
//!
//! Every block gets a redzone before and after the program's bytes, and a freed block is
//! poisoned (whole up to 4 KiB; check_pattern.zig) and held in a quarantine before it goes
//! back to its page:
//!
//!   block start              user pointer (16-aligned)                         block end
//!   | gap 0xCA… | front header | requested bytes | canary 0xCA …  | trailer            |
//!               | size^s1 tag  |                 |                | size^s2 | offset  |
//!                 16 bytes                          >= 8 bytes        16 bytes
//!   (gap: only for alignments above 16; with 16 the header starts the block, and its
//!    tag is the block's key word: never free_key while the block is live)
//!
//!   freed, in the quarantine:  | 0xDF 0xDF 0xDF … the whole block … 0xDF |  (a mid block above
//!                              4 KiB: its head, a window and its tail: check_pattern.zig)
//!   large blocks (own pages): the first and last page poisoned, the pages between made
//!   inaccessible (a read or write faults and is reported: guard.zig's handler)
//!   back on its page:          | link | key (block.zig) | 0xDF …                        |
//!
//! Detected, each with a line naming the problem, the pointer, its tier, class and size,
//! and the thread (misuse.zig), then a line saying what happened (how many bytes past the
//! end or before the start, at which offset), then abort (HAKMEM_CHECK=1) or carry on
//! (=warn):
//!   overflow    a byte of the canary or the trailer changed (at free, realloc, sweep):
//!               "overflow of N bytes past a B-byte block" (memcpy or a loop: same bytes)
//!   underflow   the front header or the gap changed: "underflow of N bytes before ..."
//!   double free the block is poisoned (in the quarantine) or keyed free on its page
//!   write after free   the poison changed: when the block leaves the quarantine (its
//!               first and last 64 bytes), in a sweep, and when the block is handed out
//!               again (all of its pattern; offset from the user pointer)
//!   zero-size access   malloc(0) gets a block of 0 requested bytes: its canary starts at
//!               the pointer, so any write through it is an overflow of a 0-byte block
//!   interior and foreign pointers (as before)
//! The sweep (hak_check_heap, and at exit) checks every live block's redzones and every
//! quarantined block's poison: live blocks are in a table (check_live.zig).
//!
//! What it costs (a malloc+free pair of check mode is a few cold cache lines: the quarantine
//! hands back blocks freed long ago): no lock per call but a shard of the live table's;
//! the quarantine fed per thread in batches (one lock per batch); the redzones and the
//! pattern compared 128 bytes a step (scan.zig); the blocks leaving the quarantine
//! prefetched together; each bin's next block fetched one malloc ahead and prefetched.
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
const Site = check_sites.Site;
const heap_mod = @import("../thread/heap.zig");

const pattern = @import("check_pattern.zig");
const freed_byte = pattern.freed_byte;
const freed_word = pattern.freed_word;
/// Where the freed pattern is verified on reuse (a block on its page has a link and a key).
const pattern_offset = 16;
const canary_byte: u8 = 0xCA;
const front_size = 16;
const trailer_size = 16;
const canary_min = 8;
/// Bytes a check-mode block needs beyond the request (alignment 16).
const overhead = front_size + canary_min + trailer_size;
/// The quarantine: freed blocks wait here, FIFO, up to this many bytes and entries.
const quarantine_bytes_max: usize = 64 << 20;
const quarantine_entries = 8192;

/// The front header's tag of a live block; the secrets hide the sizes (a stray write
/// of a plausible size is not taken for one).
fn liveTag() u64 {
    return (block_mod.free_key ^ 0x6C69_7665_2062_6C6B) & ~@as(u64, 1); // even: never free_key
}
fn frontSecret() u64 {
    return block_mod.link_secret ^ 0x6672_6F6E_7421_2121;
}
fn trailerSecret() u64 {
    return block_mod.link_secret ^ 0x7472_6169_6C65_7221;
}

var lock: Lock = .{};

/// A block as check mode sees it: where it starts, how big it is, which page holds it.
const Found = struct { start: usize, size: usize, tier: []const u8, class: ?usize, page: ?*page_mod.Page, large_usable: usize = 0 };

fn pageFound(page: *page_mod.Page, start: usize) Found {
    return .{ .start = start, .size = page.block_size, .tier = if (page.isTiny()) "tiny" else "mid", .class = size_class.binClass(page.bin), .page = page };
}

/// A large block as check mode lays it out: its last whole page is a guard page (made
/// inaccessible while the block is live), so the block check mode uses ends before it.
fn largeFound(h: *LargeHeader) Found {
    const start = @intFromPtr(h) + h.block_offset;
    return .{ .start = start, .size = guardPage(start, h.usable_size) - start, .tier = "large", .class = null, .page = null, .large_usable = h.usable_size };
}

fn guardPage(start: usize, usable: usize) usize {
    return std.mem.alignBackward(usize, start + usable, os.page_size) - os.page_size;
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
    return .{ .tier = f.tier, .class = f.class, .block_size = f.size };
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
    if (found == null and problem == .not_owned) {
        // say where the pointer points (a stack, a file's data, unmapped, maybe another heap)
        const w = @import("../base/foreign.zig").where(ptr);
        os.printStderr("hakmem: CHECK: {s} 0x{x} ({s}, thread {d})\n", .{ problem.text(), ptr, w.text(), std.os.linux.gettid() });
        sites.print();
        return misuse.afterReport();
    }
    misuse.say("CHECK: ", problem, ptr, if (found) |f| where(f) else null, offset);
    if (detail) |d| os.printStderr("hakmem:   {s}\n", .{d});
    sites.print();
    misuse.afterReport();
}

fn bytes(addr: usize) [*]u8 {
    return @ptrFromInt(addr);
}

fn readWord(addr: usize) u64 {
    return std.mem.readInt(u64, bytes(addr)[0..8], .little);
}

fn writeWord(addr: usize, value: u64) void {
    std.mem.writeInt(u64, bytes(addr)[0..8], value, .little);
}

const firstDifferent = scan.firstDifferent;

fn fmt(buf: []u8, comptime f: []const u8, args: anytype) []const u8 {
    return std.fmt.bufPrint(buf, f, args) catch buf[0..0];
}

// ---------------------------------------------------------------- the layout of a live block

/// A live block's layout, from its block and user pointer.
const Layout = struct {
    f: Found,
    user: usize,
    requested: usize,

    fn trailer(self: Layout) usize {
        return self.f.start + self.f.size - trailer_size;
    }
    fn front(self: Layout) usize {
        return self.user - front_size;
    }
};

/// Writes the redzones of a block handed out at `user` for `requested` bytes.
fn arm(f: Found, user: usize, requested: usize) void {
    const l: Layout = .{ .f = f, .user = user, .requested = requested };
    @memset(bytes(f.start)[0 .. l.front() - f.start], canary_byte);
    writeWord(l.front(), requested ^ frontSecret());
    writeWord(l.front() + 8, liveTag());
    @memset(bytes(user + requested)[0 .. l.trailer() - (user + requested)], canary_byte);
    writeWord(l.trailer(), requested ^ trailerSecret());
    writeWord(l.trailer() + 8, user - f.start);
}

/// What the redzones of a block say about `ptr`, a pointer into it.
const Verdict = union(enum) {
    live: Layout,
    /// redzones damaged: the layout from the intact side, and what broke
    damaged: struct { layout: Layout },
    double_free,
    interior: usize, // offset from the block's user pointer
    unknown, // both redzones gone: a wild write, or no check-mode block
};

fn frontIntact(f: Found, ptr: usize) ?usize {
    if (ptr < f.start + front_size) return null;
    if (readWord(ptr - 8) != liveTag()) return null;
    const requested = readWord(ptr - 16) ^ frontSecret();
    if (ptr + requested + canary_min + trailer_size > f.start + f.size) return null;
    if (!scan.allEqual(f.start, ptr - front_size, canary_byte)) return null;
    return requested;
}

const TrailerView = struct { user: usize, requested: usize };

fn trailerIntact(f: Found) ?TrailerView {
    const t = f.start + f.size - trailer_size;
    const requested = readWord(t) ^ trailerSecret();
    const offset = readWord(t + 8);
    if (offset < front_size or offset > f.size or requested > f.size) return null;
    const user = f.start + offset;
    if (user % 16 != 0 or user + requested + canary_min > t) return null;
    return .{ .user = user, .requested = requested };
}

fn looksFreed(f: Found, ptr: usize) bool {
    const t = f.start + f.size - trailer_size;
    if (readWord(t) != freed_word or readWord(t + 8) != freed_word) return false;
    if (ptr < f.start + front_size) return readWord(f.start + 8) == block_mod.free_key;
    const tag = readWord(ptr - 8);
    return tag == freed_word or tag == block_mod.free_key;
}

/// The fast verdict for the common case: `ptr` is the user pointer of a live block whose
/// redzones are all as arm() wrote them (a few words and the canary bytes, read once).
/// Null for anything else (judge then says what).
fn liveIntact(f: Found, ptr: usize) ?Layout {
    if (ptr < f.start + front_size or readWord(ptr - 8) != liveTag()) return null;
    const requested = readWord(ptr - 16) ^ frontSecret();
    if (requested > f.size or ptr + requested + canary_min + trailer_size > f.start + f.size) return null;
    const l: Layout = .{ .f = f, .user = ptr, .requested = requested };
    if (readWord(l.trailer()) != requested ^ trailerSecret() or readWord(l.trailer() + 8) != ptr - f.start) return null;
    if (!scan.allEqual(f.start, l.front(), canary_byte)) return null;
    if (!scan.allEqual(ptr + requested, l.trailer(), canary_byte)) return null;
    return l;
}

fn judge(f: Found, ptr: usize) Verdict {
    const front = frontIntact(f, ptr);
    const back = trailerIntact(f);
    if (front) |requested| {
        const l: Layout = .{ .f = f, .user = ptr, .requested = requested };
        if (back) |b| {
            if (b.user == ptr and b.requested == requested) return .{ .live = l };
        }
        return .{ .damaged = .{ .layout = l } };
    }
    if (back) |b| {
        if (b.user != ptr) return .{ .interior = ptr -% b.user };
        return .{ .damaged = .{ .layout = .{ .f = f, .user = b.user, .requested = b.requested } } };
    }
    if (looksFreed(f, ptr)) return .double_free;
    return .unknown;
}

/// The byte a live block's redzones hold at `addr` (outside the requested bytes).
fn expectedByte(l: Layout, addr: usize) u8 {
    const t = l.trailer();
    if (addr >= t) {
        var w: [trailer_size]u8 = undefined;
        std.mem.writeInt(u64, w[0..8], l.requested ^ trailerSecret(), .little);
        std.mem.writeInt(u64, w[8..16], l.user - l.f.start, .little);
        return w[addr - t];
    }
    if (addr >= l.front() and addr < l.user) {
        var w: [front_size]u8 = undefined;
        std.mem.writeInt(u64, w[0..8], l.requested ^ frontSecret(), .little);
        std.mem.writeInt(u64, w[8..16], liveTag(), .little);
        return w[addr - l.front()];
    }
    return canary_byte;
}

/// The fast test: every redzone byte as arm() wrote it.
fn intact(l: Layout) bool {
    if (readWord(l.front()) != l.requested ^ frontSecret() or readWord(l.front() + 8) != liveTag()) return false;
    if (readWord(l.trailer()) != l.requested ^ trailerSecret() or readWord(l.trailer() + 8) != l.user - l.f.start) return false;
    if (!scan.allEqual(l.f.start, l.front(), canary_byte)) return false;
    return scan.allEqual(l.user + l.requested, l.trailer(), canary_byte);
}

/// Reports the damage to a live block's redzones (overflow: how far past the end;
/// underflow: how far before the start); true when there was some.
fn reportDamage(l: Layout, sites: Sites) bool {
    if (intact(l)) return false;
    var buf: [160]u8 = undefined;
    var damaged = false;
    const end = l.user + l.requested;
    const zone_end = l.f.start + l.f.size;
    var first: ?usize = null;
    var last: usize = 0;
    var a = end; // bounded: the block's bytes after the request
    while (a < zone_end) : (a += 1) {
        if (bytes(a)[0] != expectedByte(l, a)) {
            if (first == null) first = a;
            last = a;
        }
    }
    if (first) |f| {
        const n = last + 1 - end;
        const to_end = last + 1 == zone_end;
        reportAt(.overflow, l.user, l.f, f - l.user, fmt(&buf, "overflow of {s}{d} byte{s} past a {d}-byte block (bytes changed from offset {d} to {d}{s}){s}", .{ if (to_end) "at least " else "", n, plural(n), l.requested, f - l.user, last - l.user, if (to_end) ", the block's end" else "", if (l.requested == 0) "; a zero-size block was written to" else "" }), sites);
        damaged = true;
    }
    a = l.f.start;
    while (a < l.user and bytes(a)[0] == expectedByte(l, a)) a += 1;
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
    return mallocAt(size, alignment, takeSite());
}

/// The site of the call being served (check_sites.zig), taken once per call.
fn takeSite() Site {
    var none: check_sites.StackBounds = .{}; // a thread without a heap (yet): found again
    const bounds = if (thread.currentAny()) |heap| &localOf(heap).stack else &none;
    return check_sites.take(bounds);
}

fn mallocAt(size: usize, alignment: usize, site: Site) ?*anyopaque {
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
    // room for a large block's guard page: when the size routes to large, and for any
    // aligned request (slow.aligned may serve it with a large block whatever its size)
    const guard_room = routing.route(inner) == .large or a > 16;
    const first = rawBlock(if (guard_room) inner + large_extra else inner, a) orelse return null;
    const f = fitting(first, size, a) orelse blk: {
        // Another thread moved the thresholds between the route above and the allocation:
        // a large block without the guard page's room. Once more with it (a large block
        // then, or a page block with room to spare: either fits).
        std.debug.assert(!guard_room);
        _ = slow.free(first.start);
        const again = rawBlock(inner + large_extra, a) orelse return null;
        break :blk fitting(again, size, a) orelse {
            _ = slow.free(again.start); // (cannot happen; never write past a block)
            return slow.outOfMemory();
        };
    };
    const user = std.mem.alignForward(usize, f.start + front_size, a);
    if (f.page) |page| {
        // (the key and link were checked when the block left its page's free list)
        if (readWord(f.start + 8) == block_mod.free_key) verifyFreedPattern(f, site);
        if (user != f.start + front_size and page.flags & page_mod.flag_aligned == 0) page.setFlags(page_mod.flag_aligned);
    }
    arm(f, user, size);
    if (f.page == null) {
        // the guard page after the block: an overflow past its redzone faults (reported)
        installFaultReports();
        os.protect(@ptrFromInt(f.start + f.size), os.page_size);
    }
    installOnce();
    if (!check_live.insert(user, site)) live_incomplete.store(true, .monotonic);
    return @ptrFromInt(user);
}

/// A block of `inner` bytes aligned to `a` for mallocAt, found (findContaining).
fn rawBlock(inner: usize, a: usize) ?Found {
    const raw = (if (a <= size_class.min_block_size) takeBlock(inner) else slow.aligned(a, inner)) orelse return null;
    return findContaining(@intFromPtr(raw)).?;
}

/// `f` when it holds `size` bytes aligned to `a` with the redzones around them.
fn fitting(f: Found, size: usize, a: usize) ?Found {
    const user = std.mem.alignForward(usize, f.start + front_size, a);
    return if (user + size + canary_min + trailer_size > f.start + f.size) null else f;
}

/// A block of `inner` bytes for check.malloc: of a bin, the one fetched at the bin's
/// previous malloc (Local.next), a new one fetched in its place; else (large, no heap)
/// straight from slow.zig.
fn takeBlock(inner: usize) ?*anyopaque {
    if (routing.bin(inner) == null) return slow.malloc(inner);
    const heap = slow.heap() orelse return slow.outOfMemory();
    const fetched = @intFromPtr(slow.mallocWith(heap, inner) orelse return null);
    // (its own bin: another thread may have moved the thresholds since config.bin above)
    if (segment_map.lookup(fetched) != .segment) return @ptrFromInt(fetched);
    const bin = segment_mod.Segment.of(fetched).pageOf(fetched).bin;
    prefetchBlock(fetched, size_class.binBlockSize(bin));
    // The statistics count a block allocated when the program gets it.
    heap.counters.direct_allocs[bin] -= 1;
    const next = &localOf(heap).next[bin];
    const taken = next.*; // a block of the same bin: it fits `inner` as the fetched one does
    next.* = fetched;
    if (taken == 0) return slow.mallocWith(heap, inner); // the bin's first malloc on this thread
    heap.counters.direct_allocs[bin] += 1;
    return @ptrFromInt(taken);
}

/// Asks for the lines verifyFreedPattern will read (the first 2 KiB and the tail).
fn prefetchBlock(start: usize, size: usize) void {
    const head = @min(size, 2048);
    var at: usize = 0;
    while (at < head) : (at += 64) @prefetch(@as(*const u8, @ptrFromInt(start + at)), .{ .rw = .write });
    if (size > head) {
        at = size - pattern.tail_bytes;
        while (at < size) : (at += 64) @prefetch(@as(*const u8, @ptrFromInt(start + at)), .{ .rw = .write });
    }
}

/// A reused block must still carry the freed pattern it got when it was freed
/// (check_pattern.zig says which bytes; its first 16 are the page's link and key now).
fn verifyFreedPattern(f: Found, site: Site) void {
    var buf: [96]u8 = undefined;
    const sites: Sites = .{ .call = site, .call_label = "found by the allocation" };
    const p = pattern.read(f.start, f.size) orelse {
        const at = f.size - pattern.tail_bytes;
        return reportAt(.use_after_free, f.start, f, at, fmt(&buf, "write after free at offset {d} of the block (found when it was handed out again)", .{at}), sites);
    };
    const at = pattern.firstBroken(f.start, p, pattern_offset) orelse return;
    reportAt(.use_after_free, f.start, f, at, fmt(&buf, "write after free at offset {d} of the block (found when it was handed out again)", .{at}), sites);
}

pub fn calloc(count: usize, size: usize) ?*anyopaque {
    const total = std.math.mul(usize, count, size) catch return slow.outOfMemory();
    const p = malloc(total, 16) orelse return null;
    @memset(bytes(@intFromPtr(p))[0..total], 0);
    return p;
}

// ---------------------------------------------------------------- free

pub const FreeVerdict = enum { freed, double_free, ignored, not_owned };

/// Validates and frees `ptr`. `.not_owned`: not hakmem's (reported; the caller decides).
pub fn free(ptr: usize) FreeVerdict {
    const site = takeSite();
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
    const alloc_site = leaveLive(l, site) orelse return .double_free; // (another thread's free took it first)
    quarantine(l, alloc_site, site);
    return .freed;
}

/// Takes a validated block out of the live table: where it was allocated; null (reported)
/// when another thread's free of the same block took it out first (both saw it live).
fn leaveLive(l: Layout, site: Site) ?Site {
    if (check_live.remove(l.user)) |alloc_site| return alloc_site;
    if (live_incomplete.load(.monotonic)) return 0;
    reportAt(.double_free, l.user, l.f, null, "freed by two threads at once", .{ .call = site, .call_label = "freed again" });
    return null;
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
        .freed => refuse(.double_free, ptr, describe(ptr), null, null, freedSites(ptr, site)),
        .not_owned => refuse(.not_owned, ptr, null, null, null, call),
        else => refuse(.interior_pointer, ptr, null, null, null, call),
    };
    if (liveIntact(f, ptr)) |l| return .{ .block = l };
    if (f.page != null and slow.classify(f.start) == .freed) return refuse(.double_free, ptr, f, null, null, freedSites(f.start, site));
    const damaged: Sites = .{ .alloc = check_live.siteOf(ptr) orelse 0, .call = site, .call_label = label };
    switch (judge(f, ptr)) {
        .live => |l| {
            _ = reportDamage(l, damaged); // the canary (the header and trailer are intact)
            return .{ .block = l };
        },
        .damaged => |d| {
            _ = reportDamage(d.layout, .{ .alloc = check_live.siteOf(d.layout.user) orelse 0, .call = site, .call_label = label });
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
    const h = findHeld(start) orelse return .{ .call = site, .call_label = "freed again" };
    return .{ .alloc = h.alloc_site, .freed = h.free_site, .call = site, .call_label = "freed again" };
}

/// The block `ptr` names, freed or not, for a report.
fn describe(ptr: usize) ?Found {
    if (findContaining(ptr)) |c| return c;
    const w = slow.describe(ptr) orelse return null;
    return .{ .start = ptr, .size = w.block_size, .tier = w.tier, .class = w.class, .page = null };
}

pub fn usableSize(ptr: usize) ?usize {
    if (zero.owns(ptr)) return if (zero.isLive(ptr)) 0 else null;
    const f = findContaining(ptr) orelse return null;
    return switch (judge(f, ptr)) {
        .live => |l| l.requested,
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
    const n = @min(l.requested, size);
    @memcpy(bytes(@intFromPtr(fresh))[0..n], bytes(ptr)[0..n]);
    if (leaveLive(l, site)) |alloc_site| quarantine(l, alloc_site, site);
    return .{ .ok = fresh };
}

pub fn alignedAlloc(alignment: usize, size: usize) ?*anyopaque {
    return malloc(size, alignment);
}

// ---------------------------------------------------------------- quarantine

const Held = struct {
    start: usize = 0,
    size: usize = 0,
    user: usize = 0,
    page: bool = false,
    bin: u8 = 0,
    /// a page block's pattern (check_pattern.zig): where its head ends, its window starts
    head_end: u32 = 0,
    window_at: u32 = 0,
    large_usable: usize = 0,
    /// where it was allocated and freed (check_sites.zig)
    alloc_site: Site = 0,
    free_site: Site = 0,

    fn freedPattern(self: Held) pattern.Pattern {
        return .{ .size = self.size, .head_end = self.head_end, .window_at = self.window_at };
    }
};

/// The quarantine: one FIFO ring of freed blocks for the process (under `ring_lock`), fed
/// by a batch per thread (in its heap, no lock) of up to batch_len blocks or batch_bytes_max
/// bytes; a full batch goes into the ring under one lock acquisition, and the blocks it
/// pushes out of the ring's bounds are verified and freed after the lock is let go.
/// Large blocks skip the batch (the fault handler finds their protected pages in the ring).
var ring_lock: Lock = .{};
var held: [quarantine_entries]Held = [_]Held{.{}} ** quarantine_entries;
var held_first: usize = 0;
var held_count: usize = 0;
var held_bytes: usize = 0;

const batch_len = 32;
const batch_bytes_max: usize = 1 << 20;
/// Blocks a flush lets go of after the lock; any beyond are released under it (a rare big
/// block that pushes many out).
const flush_out_max = 64;

const Batch = struct {
    count: u32,
    /// blocks this thread freed (freeCount)
    frees: u32,
    bytes: usize,
    entries: [batch_len]Held,
};
/// What check mode keeps per thread, in its heap's check_local bytes (zero, a fresh
/// mapping's, is empty): its quarantine batch, and per bin the block its next malloc of the
/// bin hands out (fetched from the page one malloc ahead, and its lines prefetched then:
/// it is verified when handed out, and a block from the quarantine is cold).
const Local = struct {
    batch: Batch,
    next: [size_class.bin_count]usize,
    /// the thread's stack mapping, for HAKMEM_CHECK_STACKS's walks
    stack: check_sites.StackBounds,
};
comptime {
    std.debug.assert(@sizeOf(Local) <= heap_mod.check_local_bytes);
    std.debug.assert(@alignOf(Local) <= 16);
}

fn localOf(heap: *heap_mod.Heap) *Local {
    return @ptrCast(&heap.check_local);
}

/// The calling thread's batch; null without a heap.
fn ownBatch() ?*Batch {
    const heap = thread.currentAny() orelse return null;
    return &localOf(heap).batch;
}

/// Poisons a freed block whole (a large block: its inner pages made inaccessible), then
/// holds it; the oldest blocks beyond the bounds go back to their pages.
fn quarantine(l: Layout, alloc_site: Site, free_site: Site) void {
    const f = l.f;
    const batch = ownBatch();
    const p = if (f.page != null) pattern.choose(f.size, l.user - f.start, freeCount(batch) ^ f.start) else pattern.Pattern{ .size = f.size, .head_end = 0, .window_at = 0 };
    poison(f, p);
    const h: Held = .{ .start = f.start, .size = f.size, .user = l.user, .page = f.page != null, .bin = if (f.page) |pg| pg.bin else 0, .head_end = @intCast(p.head_end), .window_at = @intCast(p.window_at), .large_usable = f.large_usable, .alloc_site = alloc_site, .free_site = free_site };
    countFree(h, 1);
    if (!h.page or batch == null) return flushHeld(&[1]Held{h});
    batch.?.entries[batch.?.count] = h;
    batch.?.count += 1;
    batch.?.bytes += h.size;
    if (batch.?.count == batch_len or batch.?.bytes >= batch_bytes_max) flushBatch(batch.?);
}

/// The calling thread's count of frees (moves the window of a big block's pattern).
fn freeCount(batch: ?*Batch) u64 {
    const b = batch orelse return 0;
    b.frees +%= 1;
    return b.frees;
}

fn flushBatch(batch: *Batch) void {
    const n = batch.count;
    batch.count = 0;
    batch.bytes = 0;
    flushHeld(batch.entries[0..n]);
}

/// Puts `blocks` into the ring, FIFO; what leaves the ring's bounds is released.
fn flushHeld(blocks: []const Held) void {
    var out: [flush_out_max]Held = undefined;
    var n: usize = 0;
    ring_lock.acquire();
    for (blocks) |h| {
        while (held_count > 0 and (held_count == quarantine_entries or held_bytes + h.size > quarantine_bytes_max)) {
            const old = takeOldest();
            if (n < out.len) {
                out[n] = old;
                n += 1;
            } else release(old);
        }
        if (h.size <= quarantine_bytes_max) {
            held[(held_first + held_count) % quarantine_entries] = h;
            held_count += 1;
            held_bytes += h.size;
        } else if (n < out.len) {
            out[n] = h;
            n += 1;
        } else release(h);
    }
    ring_lock.release();
    // The blocks leaving are the oldest, long cold: ask for their edges at once, so that
    // their misses overlap instead of coming one release after another.
    for (out[0..n]) |h| {
        @prefetch(@as(*const u8, @ptrFromInt(h.start)), .{ .rw = .write });
        @prefetch(@as(*const u8, @ptrFromInt(h.start + h.size - 1)), .{});
    }
    for (out[0..n]) |h| release(h);
}

/// Thread exit (thread.zig's hook): the thread's batch goes into the ring, the blocks it
/// fetched ahead back to their pages.
fn flushAtExit(heap: *heap_mod.Heap) void {
    const local = localOf(heap);
    local.stack = .{}; // (the heap's next thread has its own stack)
    flushBatch(&local.batch);
    for (&local.next, 0..) |*next, bin| {
        if (next.* == 0) continue;
        heap.counters.direct_allocs[bin] += 1; // (taken back when it was fetched)
        // Back on its page it is keyed free, so its next reuse verifies its pattern: a
        // block fetched fresh from its page has none yet. (A freed one is verified first.)
        if (findContaining(next.*)) |f| {
            if (readWord(f.start + 8) == block_mod.free_key) verifyFreedPattern(f, 0);
            pattern.write(f.start, pattern.choose(f.size, front_size, 0));
        }
        _ = slow.free(next.*);
        next.* = 0;
    }
}

/// The quarantined block that starts at `start`, newest first: this thread's batch, then
/// the ring (a report's path: bounded by their sizes).
fn findHeld(start: usize) ?Held {
    if (ownBatch()) |batch| {
        var k = batch.count;
        while (k > 0) {
            k -= 1;
            if (batch.entries[k].start == start) return batch.entries[k];
        }
    }
    ring_lock.acquire();
    defer ring_lock.release();
    var k = held_count;
    while (k > 0) {
        k -= 1;
        const h = held[(held_first + k) % quarantine_entries];
        if (h.start == start) return h;
    }
    return null;
}

fn takeOldest() Held {
    const h = held[held_first];
    held_first = (held_first + 1) % quarantine_entries;
    held_count -= 1;
    held_bytes -= h.size;
    return h;
}

fn protectedRange(start: usize, size: usize) struct { from: usize, to: usize } {
    const from = std.mem.alignForward(usize, start + os.page_size, os.page_size);
    const to = std.mem.alignBackward(usize, start + size - trailer_size, os.page_size);
    return if (to > from) .{ .from = from, .to = to } else .{ .from = from, .to = from };
}

fn poison(f: Found, p: pattern.Pattern) void {
    if (f.page != null) return pattern.write(f.start, p);
    const r = protectedRange(f.start, f.size);
    @memset(bytes(f.start)[0 .. r.from - f.start], freed_byte);
    @memset(bytes(r.to)[0 .. f.start + f.size - r.to], freed_byte);
    if (r.to > r.from) {
        installFaultReports();
        os.protect(@ptrFromInt(r.from), r.to - r.from);
    }
}

/// Verifies a held block's poison (its edges: see verifyFreedPattern; a write after free is
/// reported), then frees it.
fn release(h: Held) void {
    _ = verifyPoisonEdges(h);
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
    countBinFree(h.bin, by);
}

fn countBinFree(bin: usize, by: i2) void {
    if (thread.currentAny()) |heap| {
        const c = &heap.counters.direct_frees[bin];
        c.* = if (by > 0) c.* + 1 else c.* - 1;
    } else if (by > 0) {
        stats.incr(&stats.heapless_frees[bin]);
    } else {
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
    var buf: [128]u8 = undefined;
    const f = findContaining(h.start) orelse return false;
    const offset: isize = @as(isize, @intCast(at)) - @as(isize, @intCast(h.user - h.start));
    reportAt(.use_after_free, h.user, f, if (offset >= 0) @intCast(offset) else null, fmt(&buf, "write after free at offset {d} from the freed pointer 0x{x} ({d}-byte block; found in the quarantine)", .{ offset, h.user, h.size }), .{ .alloc = h.alloc_site, .freed = h.free_site });
    repoison(h); // (warn mode: reported once)
    return false;
}

fn repoison(h: Held) void {
    const r = if (h.page) protectedRange(h.start, 0) else protectedRange(h.start, h.size);
    if (h.page) return pattern.write(h.start, h.freedPattern());
    @memset(bytes(h.start)[0 .. r.from - h.start], freed_byte);
    @memset(bytes(r.to)[0 .. h.start + h.size - r.to], freed_byte);
}

/// The offset in the block of the first byte whose poison changed (the accessible parts).
fn poisonBroken(h: Held) ?usize {
    if (h.page) return pattern.firstBroken(h.start, h.freedPattern(), 0);
    const r = protectedRange(h.start, h.size);
    if (firstDifferent(h.start, r.from, freed_byte)) |at| return at;
    if (firstDifferent(r.to, h.start + h.size, freed_byte)) |at| return at + (r.to - h.start);
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
    check_live.forEach(&problems, sweepLive);
    {
        ring_lock.acquire();
        defer ring_lock.release();
        for (0..held_count) |k| {
            if (!verifyPoison(held[(held_first + k) % quarantine_entries])) problems += 1;
        }
    }
    if (ownBatch()) |batch| {
        for (batch.entries[0..batch.count]) |h| {
            if (!verifyPoison(h)) problems += 1;
        }
    }
    return problems;
}

fn sweepLive(problems: *usize, user: usize, site: Site) void {
    const f = findContaining(user) orelse return;
    if (liveIntact(f, user) != null) return;
    const sites: Sites = .{ .alloc = site };
    switch (judge(f, user)) {
        .live => |l| if (reportDamage(l, sites)) {
            arm(l.f, l.user, l.requested); // (warn mode: reported once)
            problems.* += 1;
        },
        .damaged => |d| {
            _ = reportDamage(d.layout, sites);
            if (d.layout.user == user) arm(d.layout.f, user, d.layout.requested);
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
        var k: usize = 0;
        while (k < count) : (k += 1) {
            const i = (cursor + k) % count;
            const mask = @as(u64, 1) << @intCast(i % 64);
            if (live_bits[i / 64] & mask != 0) continue;
            live_bits[i / 64] |= mask;
            cursor = (i + 1) % count;
            return @ptrFromInt(b + i * 16);
        }
        return null;
    }

    fn isLive(addr: usize) bool {
        if ((addr - base.load(.monotonic)) % 16 != 0) return false;
        const i = (addr - base.load(.monotonic)) / 16;
        return @atomicLoad(u64, &live_bits[i / 64], .monotonic) & (@as(u64, 1) << @intCast(i % 64)) != 0;
    }

    fn free(addr: usize) FreeVerdict {
        lock.acquire();
        const i = (addr - base.load(.monotonic)) / 16;
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
        const h = held[(held_first + k) % quarantine_entries];
        if (h.page or addr < h.start or addr >= h.start + h.size) continue;
        os.printStderr("hakmem: CHECK: access to a freed block 0x{x} (large tier, {d}-byte block, offset {d} from the freed pointer, thread {d}): a use after free (the block waits in check mode's quarantine, its pages inaccessible)\n", .{ h.user, h.size, @as(isize, @intCast(addr)) - @as(isize, @intCast(h.user)), tid });
        (Sites{ .alloc = h.alloc_site, .freed = h.free_site }).print();
        return true;
    }
    const f = findContaining(addr) orelse return false;
    if (f.page != null or addr < f.start + f.size or addr >= f.start + f.size + os.page_size) return false;
    const t = trailerIntact(f);
    const user = if (t) |v| v.user else f.start + front_size;
    const requested: ?usize = if (t) |v| v.requested else if (frontIntact(f, user)) |r| r else null;
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
    thread.check_exit_hook = &flushAtExit;
    _ = pthread_atfork(lockForFork, unlockAfterFork, resetLockInChild); // may malloc: flag set first
}
fn lockForFork() callconv(.c) void {
    lock.acquire();
    ring_lock.acquire();
    check_live.lockAll();
}
fn unlockAfterFork() callconv(.c) void {
    check_live.unlockAll();
    ring_lock.release();
    lock.release();
}
fn resetLockInChild() callconv(.c) void {
    check_live.resetLocksInChild();
    ring_lock.resetInChild();
    lock.resetInChild();
}

test "check-mode layout constants" {
    try std.testing.expect(overhead == 40);
    try std.testing.expect(pattern_offset == @sizeOf(block_mod.Block));
    block_mod.initSecrets();
    try std.testing.expect(liveTag() != block_mod.free_key and liveTag() != block_mod.fresh_key and liveTag() != freed_word);
}
