//! check.zig — check mode (HAKMEM_CHECK=1 or =warn): hakmem as a heap-misuse detector.
//!
//! Every block gets a redzone before and after the program's bytes, and a freed block is
//! poisoned whole and held in a quarantine before it goes back to its page:
//!
//!   block start              user pointer (16-aligned)                         block end
//!   | gap 0xCA… | front header | requested bytes | canary 0xCA …  | trailer            |
//!               | size^s1 tag  |                 |                | size^s2 | offset  |
//!                 16 bytes                          >= 8 bytes        16 bytes
//!   (gap: only for alignments above 16; with 16 the header starts the block, and its
//!    tag is the block's key word: never free_key while the block is live)
//!
//!   freed, in the quarantine:  | 0xDF 0xDF 0xDF … the whole block … 0xDF |
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
//!   write after free   the poison changed: when the block leaves the quarantine, in a
//!               sweep, and again when a block is reused (offset from the user pointer)
//!   zero-size access   malloc(0) gets a block of 0 requested bytes: its canary starts at
//!               the pointer, so any write through it is an overflow of a 0-byte block
//!   interior and foreign pointers (as before)
//! The sweep (hak_check_heap, and at exit) checks every live block's redzones and every
//! quarantined block's poison: live blocks are in a table (under `lock`).
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

const freed_byte: u8 = 0xDF;
const freed_word: u64 = 0xDFDF_DFDF_DFDF_DFDF;
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

fn report(problem: misuse.Problem, ptr: usize, found: ?Found, offset: ?usize, detail: ?[]const u8) void {
    if (found == null and problem == .not_owned) {
        // say where the pointer points (a stack, a file's data, unmapped, maybe another heap)
        const w = @import("../base/foreign.zig").where(ptr);
        os.printStderr("hakmem: CHECK: {s} 0x{x} ({s}, thread {d})\n", .{ problem.text(), ptr, w.text(), std.os.linux.gettid() });
        return misuse.afterReport();
    }
    misuse.say("CHECK: ", problem, ptr, if (found) |f| where(f) else null, offset);
    if (detail) |d| os.printStderr("hakmem:   {s}\n", .{d});
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

/// Index of the first byte in [from, to) that differs from `expected`, or null. Eight
/// bytes at a time where it can (check mode verifies whole blocks on every reuse).
fn firstDifferent(from: usize, to: usize, expected: u8) ?usize {
    const word: u64 = @as(u64, expected) * 0x0101_0101_0101_0101;
    var a = from;
    while (a < to and a % 8 != 0) : (a += 1) if (bytes(a)[0] != expected) return a - from;
    while (a + 8 <= to) : (a += 8) {
        if (@as(*const u64, @ptrFromInt(a)).* != word) break;
    }
    while (a < to) : (a += 1) if (bytes(a)[0] != expected) return a - from;
    return null;
}

/// Index of the last byte in [from, to) that differs from `expected`, or null.
fn lastDifferent(from: usize, to: usize, expected: u8) ?usize {
    var a = to;
    while (a > from) {
        a -= 1;
        if (bytes(a)[0] != expected) return a - from;
    }
    return null;
}

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
    if (firstDifferent(f.start, ptr - front_size, canary_byte) != null) return null;
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
    if (firstDifferent(l.f.start, l.front(), canary_byte) != null) return false;
    return firstDifferent(l.user + l.requested, l.trailer(), canary_byte) == null;
}

/// Reports the damage to a live block's redzones (overflow: how far past the end;
/// underflow: how far before the start); true when there was some.
fn reportDamage(l: Layout) bool {
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
        report(.overflow, l.user, l.f, f - l.user, fmt(&buf, "overflow of {s}{d} byte{s} past a {d}-byte block (bytes changed from offset {d} to {d}{s}){s}", .{ if (to_end) "at least " else "", n, plural(n), l.requested, f - l.user, last - l.user, if (to_end) ", the block's end" else "", if (l.requested == 0) "; a zero-size block was written to" else "" }));
        damaged = true;
    }
    a = l.f.start;
    while (a < l.user and bytes(a)[0] == expectedByte(l, a)) a += 1;
    if (a < l.user) {
        const n = l.user - a;
        report(.underflow, l.user, l.f, null, fmt(&buf, "underflow of {s}{d} byte{s} before a {d}-byte block (a write below its start{s})", .{ if (a == l.f.start) "at least " else "", n, plural(n), l.requested, if (a == l.f.start) ", from the block's first byte" else "" }));
        damaged = true;
    }
    return damaged;
}

fn plural(n: usize) []const u8 {
    return if (n == 1) "" else "s";
}

// ---------------------------------------------------------------- allocation

pub fn malloc(size: usize, alignment: usize) ?*anyopaque {
    if (size > slow.size_max) return slow.outOfMemory();
    if (size == 0 and alignment <= 16) {
        if (zero.take()) |p| {
            // counted as a block of the smallest bin
            if (slow.heap()) |heap| heap.counters.direct_allocs[zero_bin] += 1; // (calloc may come first)
            return p;
        }
    }
    const a = @max(alignment, 16);
    var inner = size + overhead + (a - 16);
    // room for a large block's guard page: when the size routes to large, and for any
    // aligned request (slow.aligned may serve it with a large block whatever its size)
    if (routing.route(inner) == .large or a > 16) inner += large_extra;
    const raw = (if (a <= size_class.min_block_size) slow.malloc(inner) else slow.aligned(a, inner)) orelse return null;
    const f = findContaining(@intFromPtr(raw)).?;
    const user = std.mem.alignForward(usize, f.start + front_size, a);
    if (f.page) |page| {
        // (the key and link were checked when the block left its page's free list)
        if (readWord(f.start + 8) == block_mod.free_key) verifyFreedPattern(f);
        if (user != f.start + front_size and page.flags & page_mod.flag_aligned == 0) page.setFlags(page_mod.flag_aligned);
    }
    if (user + size + canary_min + trailer_size > f.start + f.size) {
        // (cannot happen with the room asked for above; never write past a block)
        _ = slow.free(f.start);
        return slow.outOfMemory();
    }
    arm(f, user, size);
    if (f.page == null) {
        // the guard page after the block: an overflow past its redzone faults (reported)
        installFaultReports();
        os.protect(@ptrFromInt(f.start + f.size), os.page_size);
    }
    installForkHandlers();
    lock.acquire();
    defer lock.release();
    live.insert(user);
    return @ptrFromInt(user);
}

/// A reused block must still carry the freed pattern it got when it was freed.
fn verifyFreedPattern(f: Found) void {
    if (firstDifferent(f.start + pattern_offset, f.start + f.size, freed_byte)) |offset| {
        var buf: [96]u8 = undefined;
        report(.use_after_free, f.start, f, offset + pattern_offset, fmt(&buf, "write after free at offset {d} of the block (found when it was handed out again)", .{offset + pattern_offset}));
    }
}

pub fn calloc(count: usize, size: usize) ?*anyopaque {
    const total = std.math.mul(usize, count, size) catch return slow.outOfMemory();
    const p = malloc(total, 16) orelse return null;
    @memset(bytes(@intFromPtr(p))[0..total], 0);
    return p;
}

// ---------------------------------------------------------------- free

/// `.double_free`: free already (reported, nothing changed); `.ignored`: no block start
/// (reported, nothing changed); `.not_owned`: not hakmem's (reported; the caller decides).
pub const FreeVerdict = enum { freed, double_free, ignored, not_owned };

/// Validates and frees `ptr`.
pub fn free(ptr: usize) FreeVerdict {
    if (zero.owns(ptr)) return zero.free(ptr);
    const l = switch (validate(ptr)) {
        .block => |l| l,
        .refused => |problem| return switch (problem) {
            .double_free => .double_free,
            .not_owned => .not_owned,
            else => .ignored,
        },
    };
    lock.acquire();
    defer lock.release();
    live.remove(l.user);
    quarantine(l);
    return .freed;
}

/// What validate found: the live block `ptr` is the user pointer of, or the problem it
/// reported instead.
const Validated = union(enum) { block: Layout, refused: misuse.Problem };

/// The live block `ptr` is the user pointer of, after checking its redzones (damage is
/// reported, the block still freed); `.refused` (reported) when it is no live block.
fn validate(ptr: usize) Validated {
    const f = findContaining(ptr) orelse {
        const problem: misuse.Problem = switch (slow.classify(ptr)) {
            .freed => .double_free,
            .not_owned => .not_owned,
            else => .interior_pointer,
        };
        report(problem, ptr, if (problem == .double_free) describe(ptr) else null, null, null);
        return .{ .refused = problem };
    };
    if (f.page != null and slow.classify(f.start) == .freed) return refuse(.double_free, ptr, f, null, null);
    switch (judge(f, ptr)) {
        .live => |l| {
            _ = reportDamage(l); // the canary (the header and trailer are intact)
            return .{ .block = l };
        },
        .damaged => |d| {
            _ = reportDamage(d.layout);
            if (d.layout.user != ptr) return .{ .refused = .interior_pointer };
            return .{ .block = d.layout };
        },
        .double_free => return refuse(.double_free, ptr, f, null, null),
        .interior => |off| return refuse(.interior_pointer, ptr, f, off, null),
        .unknown => return refuse(.trailer_overwritten, ptr, f, null, "both redzones of the block are overwritten (a wild write), or the pointer is not a block hakmem handed out"),
    }
}

fn refuse(problem: misuse.Problem, ptr: usize, found: ?Found, offset: ?usize, detail: ?[]const u8) Validated {
    report(problem, ptr, found, offset, detail);
    return .{ .refused = problem };
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
    if (zero.owns(ptr)) {
        if (!zero.isLive(ptr)) {
            _ = zero.free(ptr); // reports it
            return .freed;
        }
        const fresh = malloc(size, 16) orelse return .{ .ok = null };
        _ = zero.free(ptr);
        return .{ .ok = fresh };
    }
    const l = switch (validate(ptr)) {
        .block => |l| l,
        .refused => return switch (slow.classify(ptr)) {
            .not_owned => .not_owned,
            .freed => .freed,
            else => .invalid,
        },
    };
    const fresh = malloc(size, 16) orelse return .{ .ok = null };
    const n = @min(l.requested, size);
    @memcpy(bytes(@intFromPtr(fresh))[0..n], bytes(ptr)[0..n]);
    lock.acquire();
    defer lock.release();
    live.remove(l.user);
    quarantine(l);
    return .{ .ok = fresh };
}

pub fn alignedAlloc(alignment: usize, size: usize) ?*anyopaque {
    return malloc(size, alignment);
}

// ---------------------------------------------------------------- quarantine

const Held = struct { start: usize = 0, size: usize = 0, user: usize = 0, page: bool = false, bin: u8 = 0, large_usable: usize = 0 };

/// FIFO ring of freed blocks (under `lock`).
var held: [quarantine_entries]Held = [_]Held{.{}} ** quarantine_entries;
var held_first: usize = 0;
var held_count: usize = 0;
var held_bytes: usize = 0;

/// Poisons a freed block whole (a large block: its inner pages made inaccessible), then
/// holds it; the oldest blocks beyond the bounds go back to their pages.
fn quarantine(l: Layout) void {
    const f = l.f;
    poison(f);
    const h: Held = .{ .start = f.start, .size = f.size, .user = l.user, .page = f.page != null, .bin = if (f.page) |p| p.bin else 0, .large_usable = f.large_usable };
    countFree(h, 1);
    while (held_count > 0 and (held_count == quarantine_entries or held_bytes + f.size > quarantine_bytes_max)) release(takeOldest());
    if (f.size > quarantine_bytes_max) return release(h);
    held[(held_first + held_count) % quarantine_entries] = h;
    held_count += 1;
    held_bytes += f.size;
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

fn poison(f: Found) void {
    if (f.page != null) return @memset(bytes(f.start)[0..f.size], freed_byte);
    const r = protectedRange(f.start, f.size);
    @memset(bytes(f.start)[0 .. r.from - f.start], freed_byte);
    @memset(bytes(r.to)[0 .. f.start + f.size - r.to], freed_byte);
    if (r.to > r.from) {
        installFaultReports();
        os.protect(@ptrFromInt(r.from), r.to - r.from);
    }
}

/// Verifies a held block's poison (a write after free is reported), then frees it.
fn release(h: Held) void {
    _ = verifyPoison(h);
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
    const at = poisonBroken(h) orelse return true;
    var buf: [128]u8 = undefined;
    const f = findContaining(h.start) orelse return false;
    const offset: isize = @as(isize, @intCast(at)) - @as(isize, @intCast(h.user - h.start));
    report(.use_after_free, h.user, f, if (offset >= 0) @intCast(offset) else null, fmt(&buf, "write after free at offset {d} from the freed pointer 0x{x} ({d}-byte block; found in the quarantine)", .{ offset, h.user, h.size }));
    repoison(h); // (warn mode: reported once)
    return false;
}

fn repoison(h: Held) void {
    const r = if (h.page) protectedRange(h.start, 0) else protectedRange(h.start, h.size);
    if (h.page) return @memset(bytes(h.start)[0..h.size], freed_byte);
    @memset(bytes(h.start)[0 .. r.from - h.start], freed_byte);
    @memset(bytes(r.to)[0 .. h.start + h.size - r.to], freed_byte);
}

/// The offset in the block of the first byte whose poison changed (the accessible parts).
fn poisonBroken(h: Held) ?usize {
    if (h.page) return firstDifferent(h.start, h.start + h.size, freed_byte);
    const r = protectedRange(h.start, h.size);
    if (firstDifferent(h.start, r.from, freed_byte)) |at| return at;
    if (firstDifferent(r.to, h.start + h.size, freed_byte)) |at| return at + (r.to - h.start);
    return null;
}

// ---------------------------------------------------------------- live blocks and the sweep

/// The user pointers of live check-mode blocks: open addressing, linear probing, mapped
/// memory (never malloc), doubled at half load; 1 marks a removed slot. Under `lock`.
const LiveTable = struct {
    slots: ?[*]usize = null,
    capacity: usize = 0,
    used: usize = 0, // live + removed

    const removed: usize = 1;

    fn index(self: *const LiveTable, key: usize) usize {
        return @as(usize, @truncate((key >> 4) *% 0x9E37_79B9_7F4A_7C15)) & (self.capacity - 1);
    }

    fn insert(self: *LiveTable, key: usize) void {
        if ((self.used + 1) * 2 > self.capacity) self.grow() catch return;
        var i = self.index(key);
        var probes: usize = 0;
        while (probes < self.capacity) : (probes += 1) {
            const s = self.slots.?[i];
            if (s == 0 or s == removed) {
                if (s == 0) self.used += 1;
                self.slots.?[i] = key;
                return;
            }
            if (s == key) return;
            i = (i + 1) & (self.capacity - 1);
        }
    }

    fn remove(self: *LiveTable, key: usize) void {
        const slots = self.slots orelse return;
        var i = self.index(key);
        var probes: usize = 0;
        while (probes < self.capacity and slots[i] != 0) : (probes += 1) {
            if (slots[i] == key) {
                slots[i] = removed;
                return;
            }
            i = (i + 1) & (self.capacity - 1);
        }
    }

    fn grow(self: *LiveTable) error{OutOfMemory}!void {
        const new_capacity = @max(4096, self.capacity * 2);
        const mem = os.map(new_capacity * @sizeOf(usize)) orelse return error.OutOfMemory;
        const old = self.slots;
        const old_capacity = self.capacity;
        self.slots = @ptrCast(@alignCast(mem));
        self.capacity = new_capacity;
        self.used = 0;
        if (old) |o| {
            for (o[0..old_capacity]) |key| if (key > removed) self.insert(key);
            os.unmap(@ptrCast(o), old_capacity * @sizeOf(usize));
        }
    }
};

var live: LiveTable = .{};

/// Checks every live block's redzones and every quarantined block's poison; returns how
/// many problems were found (each reported). hak_check_heap, and at exit in check mode.
pub fn sweep() usize {
    if (config.check_mode == .off) return 0;
    lock.acquire();
    defer lock.release();
    var problems: usize = 0;
    if (live.slots) |slots| {
        for (slots[0..live.capacity]) |user| {
            if (user <= LiveTable.removed) continue;
            const f = findContaining(user) orelse continue;
            switch (judge(f, user)) {
                .live => |l| if (reportDamage(l)) {
                    arm(l.f, l.user, l.requested); // (warn mode: reported once)
                    problems += 1;
                },
                .damaged => |d| {
                    _ = reportDamage(d.layout);
                    if (d.layout.user == user) arm(d.layout.f, user, d.layout.requested);
                    problems += 1;
                },
                else => {
                    report(.trailer_overwritten, user, f, null, "both redzones of a live block are overwritten (found by the sweep)");
                    problems += 1;
                },
            }
        }
    }
    for (0..held_count) |k| {
        if (!verifyPoison(held[(held_first + k) % quarantine_entries])) problems += 1;
    }
    return problems;
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
    return true;
}

// fork: the check lock is taken around it (process.zig is below this file: check mode
// installs its own handlers, at its first allocation).
extern "c" fn pthread_atfork(prepare: ?*const fn () callconv(.c) void, parent: ?*const fn () callconv(.c) void, child: ?*const fn () callconv(.c) void) c_int;
var fork_handlers = std.atomic.Value(bool).init(false);

fn installForkHandlers() void {
    if (fork_handlers.load(.monotonic) or fork_handlers.swap(true, .acq_rel)) return;
    _ = pthread_atfork(lockForFork, unlockAfterFork, resetLockInChild); // may malloc: flag set first
}
fn lockForFork() callconv(.c) void {
    lock.acquire();
}
fn unlockAfterFork() callconv(.c) void {
    lock.release();
}
fn resetLockInChild() callconv(.c) void {
    lock.resetInChild();
}

test "check-mode layout constants" {
    try std.testing.expect(overhead == 40);
    try std.testing.expect(pattern_offset == @sizeOf(block_mod.Block));
    block_mod.initSecrets();
    try std.testing.expect(liveTag() != block_mod.free_key and liveTag() != block_mod.fresh_key and liveTag() != freed_word);
}

test "the live table inserts, finds room again after removals, and grows" {
    var t: LiveTable = .{};
    for (1..5000) |i| t.insert(i * 16);
    for (1..2500) |i| t.remove(i * 16);
    for (5000..7000) |i| t.insert(i * 16);
    var count: usize = 0;
    for (t.slots.?[0..t.capacity]) |k| {
        if (k > LiveTable.removed) count += 1;
    }
    try std.testing.expectEqual(@as(usize, 4500), count);
    os.unmap(@ptrCast(t.slots.?), t.capacity * @sizeOf(usize));
}
