//! check.zig — check mode (HAKMEM_CHECK=1 or =warn): hakmem as a heap-misuse detector.
//!
//! Every block gets a trailer and a canary, and freed blocks a pattern:
//!
//!   block start                 user pointer                                 block end
//!   | (alignment gap: offset) | requested bytes | canary 0xCA … | requested u64 | offset u64 |
//!
//!   freed:  | next ptr (free list) | freed_magic u64 | 0xDF 0xDF 0xDF …                   |
//!
//! Detected, with one line on stderr naming the problem, the pointer, its tier and size
//! class and the calling thread: a double free; free/realloc of an interior pointer or of a
//! pointer hakmem does not own; a write past the requested size (canary, at free); a write
//! to a freed block (pattern, when the block is reused). Then abort() (HAKMEM_CHECK=1) or
//! carry on (=warn; the bad free is ignored, a foreign pointer goes to the next allocator).
//!
//! Normal mode pays nothing for this: in check mode the fast-path TLS heap stays null so
//! every malloc takes the slow path, and every page carries flag_checked so every free
//! does (alloc.zig hands both here).
const std = @import("std");
const os = @import("os.zig");
const config = @import("config.zig");
const size_class = @import("size_class.zig");
const page_mod = @import("page.zig");
const segment_mod = @import("segment.zig");
const alloc = @import("alloc.zig");
const Heap = @import("heap.zig").Heap;

const freed_magic: u64 = 0xDEAD_F4EE_DEAD_F4EE;
const freed_byte: u8 = 0xDF;
const canary_byte: u8 = 0xCA;
const trailer_size = 16;
const canary_min = 8;
/// Bytes a check-mode block needs beyond the request.
const overhead = canary_min + trailer_size;

pub const Problem = enum {
    double_free,
    interior_pointer,
    not_owned,
    overflow,
    trailer_overwritten,
    use_after_free,

    fn text(self: Problem) []const u8 {
        return switch (self) {
            .double_free => "double free of",
            .interior_pointer => "free of an interior pointer (not the start of a block)",
            .not_owned => "free of a pointer hakmem does not own",
            .overflow => "write past the requested size of",
            .trailer_overwritten => "write past the requested size (block trailer overwritten) of",
            .use_after_free => "write to a freed block, found when reusing",
        };
    }
};

/// A block as check mode sees it: where it starts, how big it is, which page holds it.
const Found = struct { start: usize, size: usize, tier: []const u8, class: ?usize, page: ?*page_mod.Page };

fn find(addr: usize) ?Found {
    return switch (alloc.classify(addr)) {
        .small => |s| .{ .start = s.start, .size = s.page.block_size, .tier = if (s.page.isTiny()) "tiny" else "mid", .class = size_class.binClass(s.page.bin), .page = s.page },
        .large => |h| .{ .start = @intFromPtr(h) + h.block_offset, .size = h.usable_size, .tier = "large", .class = null, .page = null },
        .not_owned, .invalid => null,
    };
}

/// The block of a small page that contains `addr`, even when classify calls it invalid.
fn findContaining(addr: usize) ?Found {
    if (@import("segment_map.zig").lookup(addr) != .segment) return null;
    const page = segment_mod.Segment.of(addr).pageOf(addr);
    if (page.flags & page_mod.flag_unused != 0) return null;
    const start = page.blockContaining(addr) orelse return null;
    return .{ .start = start, .size = page.block_size, .tier = if (page.isTiny()) "tiny" else "mid", .class = size_class.binClass(page.bin), .page = page };
}

pub fn report(problem: Problem, ptr: usize, found: ?Found, detail: usize) void {
    const tid = std.os.linux.gettid();
    if (found) |f| {
        if (f.class) |c| {
            os.printStderr("hakmem: CHECK: {s} 0x{x} ({s} tier, class {d}, {d}-byte blocks, offset {d}, thread {d})\n", .{ problem.text(), ptr, f.tier, c, f.size, detail, tid });
        } else {
            os.printStderr("hakmem: CHECK: {s} 0x{x} ({s} tier, {d}-byte mapping, offset {d}, thread {d})\n", .{ problem.text(), ptr, f.tier, f.size, detail, tid });
        }
    } else if (problem == .not_owned) {
        const where = @import("foreign.zig").where(ptr);
        os.printStderr("hakmem: CHECK: {s} 0x{x} ({s}, thread {d})\n", .{ problem.text(), ptr, where.text(), tid });
    } else {
        os.printStderr("hakmem: CHECK: {s} 0x{x} (thread {d})\n", .{ problem.text(), ptr, tid });
    }
    if (config.check_mode == .abort) {
        os.writeStderr("hakmem: CHECK: aborting (set HAKMEM_CHECK=warn to continue instead)\n");
        std.c.abort();
    }
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

/// Index of the first byte in [from, to) that differs from `expected`, or null.
fn firstDifferent(from: usize, to: usize, expected: u8) ?usize {
    var a = from;
    while (a < to) : (a += 1) if (bytes(a)[0] != expected) return a - from;
    return null;
}

// ---------------------------------------------------------------- allocation

pub fn malloc(size: usize, alignment: usize) ?*anyopaque {
    if (size > alloc.size_max) return alloc.outOfMemory();
    const inner = size + overhead;
    const user = (if (alignment <= size_class.min_block_size) alloc.mallocUnchecked(inner) else alloc.alignedUnchecked(alignment, inner)) orelse return null;
    const addr = @intFromPtr(user);
    const f = find(addr) orelse unreachable;
    if (f.page != null) verifyFreedPattern(f);
    const trailer = f.start + f.size - trailer_size;
    @memset(bytes(addr + size)[0 .. trailer - (addr + size)], canary_byte);
    writeWord(trailer, size);
    writeWord(trailer + 8, addr - f.start);
    return user;
}

/// A reused block must still carry the freed pattern it got when it was freed.
fn verifyFreedPattern(f: Found) void {
    if (f.size < 16 or readWord(f.start + 8) != freed_magic) return;
    if (firstDifferent(f.start + 16, f.start + f.size, freed_byte)) |offset| {
        report(.use_after_free, f.start, f, offset + 16);
    }
}

pub fn calloc(count: usize, size: usize) ?*anyopaque {
    const total = std.math.mul(usize, count, size) catch return alloc.outOfMemory();
    const p = malloc(total, 16) orelse return null;
    @memset(bytes(@intFromPtr(p))[0..total], 0);
    return p;
}

// ---------------------------------------------------------------- free

pub const Verdict = enum { freed, ignored, not_owned };

/// Validates and frees `ptr`. `.not_owned`: not hakmem's (reported; the caller decides).
pub fn free(ptr: usize) Verdict {
    const f = validate(ptr) orelse return if (alloc.classify(ptr) == .not_owned) .not_owned else .ignored;
    if (f.page != null) {
        // Poison the block (its first word becomes the free-list link).
        @memset(bytes(f.start + 8)[0 .. f.size - 8], freed_byte);
        writeWord(f.start + 8, freed_magic);
    }
    _ = alloc.freeUnchecked(f.start);
    return .freed;
}

/// The live block `ptr` starts, after checking its canary; null (reported) otherwise.
fn validate(ptr: usize) ?Found {
    const f = find(ptr) orelse {
        if (findContaining(ptr)) |c| {
            const freed = c.size >= 16 and readWord(c.start + 8) == freed_magic;
            report(if (freed and c.start == ptr) .double_free else if (freed) .double_free else .interior_pointer, ptr, c, ptr - c.start);
        } else switch (alloc.classify(ptr)) {
            .not_owned => report(.not_owned, ptr, null, 0),
            else => report(.interior_pointer, ptr, null, 0),
        }
        return null;
    };
    if (f.page != null and f.size >= 16 and readWord(f.start + 8) == freed_magic and
        firstDifferent(f.start + 16, f.start + f.size, freed_byte) == null)
    {
        report(.double_free, ptr, f, 0);
        return null;
    }
    const trailer = f.start + f.size - trailer_size;
    const requested = readWord(trailer);
    const offset = readWord(trailer + 8);
    if (offset > f.size or requested > f.size or f.start + offset + requested + canary_min > trailer) {
        report(.trailer_overwritten, ptr, f, 0);
        return null;
    }
    if (f.start + offset != ptr) {
        report(.interior_pointer, ptr, f, ptr - f.start);
        return null;
    }
    if (firstDifferent(ptr + requested, trailer, canary_byte)) |at| {
        report(.overflow, ptr, f, requested + at);
        return f; // still freed: the overflow is reported, the block goes back
    }
    return f;
}

pub fn usableSize(ptr: usize) ?usize {
    const f = find(ptr) orelse return null;
    const trailer = f.start + f.size - trailer_size;
    const requested = readWord(trailer);
    return if (requested <= f.size) requested else null;
}

pub fn realloc(ptr: usize, size: usize) alloc.ReallocResult {
    const f = validate(ptr) orelse return if (alloc.classify(ptr) == .not_owned) .not_owned else .invalid;
    const old = readWord(f.start + f.size - trailer_size);
    const fresh = malloc(size, 16) orelse return .{ .ok = null };
    @memcpy(bytes(@intFromPtr(fresh))[0..@min(old, size)], bytes(ptr)[0..@min(old, size)]);
    _ = free(ptr);
    return .{ .ok = fresh };
}

pub fn alignedAlloc(alignment: usize, size: usize) ?*anyopaque {
    return malloc(size, alignment);
}

test "check-mode layout constants" {
    try std.testing.expect(overhead == 24);
    _ = Heap;
}
