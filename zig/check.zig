//! check.zig — check mode (HAKMEM_CHECK=1 or =warn): hakmem as a heap-misuse detector.
//!
//! Every block gets a trailer and a canary, and freed blocks a pattern:
//!
//!   block start                 user pointer                                 block end
//!   | (alignment gap: offset) | requested bytes | canary 0xCA … | requested u64 | offset u64 |
//!
//!   freed:  | link (encoded) | key (block.zig) | 0xDF 0xDF 0xDF …                           |
//!
//! Detected, with one line on stderr naming the problem, the pointer, its tier and size
//! class and the calling thread (misuse.zig): a double free (of a tiny, mid or large
//! block); free/realloc of an interior pointer or of a pointer hakmem does not own; a write
//! past the requested size (canary, at free); a write to a freed block, at any offset:
//! bytes 0–7 (the link: it no longer decodes into its page) and 8–15 (the key) when the
//! block leaves its page's free list, 16 on (the pattern) when it is reused. Then abort()
//! (HAKMEM_CHECK=1) or carry on (=warn; the bad free is ignored, a foreign pointer goes to
//! the next allocator).
//!
//! Normal mode pays nothing for this: in check mode the thread's cache pointer stays at the
//! empty sentinel so every malloc takes the slow path, heaps have no cache (every block
//! goes back to its page, where its link and key are checked), and every page carries
//! flag_checked so every free takes the slow path to here (alloc.zig). Built on the
//! allocator without check mode (slow.zig).
const std = @import("std");
const os = @import("os.zig");
const config = @import("config.zig");
const size_class = @import("size_class.zig");
const page_mod = @import("page.zig");
const segment_mod = @import("segment.zig");
const slow = @import("slow.zig");
const block_mod = @import("block.zig");
const misuse = @import("misuse.zig");

const freed_byte: u8 = 0xDF;
/// Where the freed pattern starts (after the link and the key).
const pattern_offset = 16;
const canary_byte: u8 = 0xCA;
const trailer_size = 16;
const canary_min = 8;
/// Bytes a check-mode block needs beyond the request.
const overhead = canary_min + trailer_size;

/// A block as check mode sees it: where it starts, how big it is, which page holds it.
const Found = struct { start: usize, size: usize, tier: []const u8, class: ?usize, page: ?*page_mod.Page };

fn find(addr: usize) ?Found {
    return switch (slow.classify(addr)) {
        .page_block => |s| .{ .start = s.start, .size = s.page.block_size, .tier = if (s.page.isTiny()) "tiny" else "mid", .class = size_class.binClass(s.page.bin), .page = s.page },
        .large => |h| .{ .start = @intFromPtr(h) + h.block_offset, .size = h.usable_size, .tier = "large", .class = null, .page = null },
        .freed, .not_owned, .invalid => null,
    };
}

/// The block of a page that contains `addr`, even when classify calls it invalid.
fn findContaining(addr: usize) ?Found {
    if (@import("segment_map.zig").lookup(addr) != .segment) return null;
    const page = segment_mod.Segment.of(addr).pageOf(addr);
    if (page.flags & page_mod.flag_unused != 0) return null;
    const start = page.blockContaining(addr) orelse return null;
    return .{ .start = start, .size = page.block_size, .tier = if (page.isTiny()) "tiny" else "mid", .class = size_class.binClass(page.bin), .page = page };
}

fn report(problem: misuse.Problem, ptr: usize, found: ?Found, offset: usize) void {
    if (found == null and problem == .not_owned) {
        // say where the pointer points (a stack, a file's data, unmapped, maybe another heap)
        const where = @import("foreign.zig").where(ptr);
        os.printStderr("hakmem: CHECK: {s} 0x{x} ({s}, thread {d})\n", .{ problem.text(), ptr, where.text(), std.os.linux.gettid() });
        if (config.check_mode == .abort) {
            os.writeStderr("hakmem: CHECK: aborting (set HAKMEM_CHECK=warn to continue instead)\n");
            std.c.abort();
        }
        return;
    }
    const f = found orelse return misuse.report(problem, ptr, null, null);
    misuse.report(problem, ptr, .{ .tier = f.tier, .class = f.class, .block_size = f.size }, offset);
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
    if (size > slow.size_max) return slow.outOfMemory();
    const inner = size + overhead;
    const user = (if (alignment <= size_class.min_block_size) slow.malloc(inner) else slow.aligned(alignment, inner)) orelse return null;
    const addr = @intFromPtr(user);
    const f = findContaining(addr) orelse find(addr) orelse unreachable;
    if (f.page != null) {
        // (the key and link were checked when the block left its page's free list)
        if (readWord(f.start + 8) == block_mod.free_key) verifyFreedPattern(f);
        writeWord(f.start + 8, 0);
    }
    const trailer = f.start + f.size - trailer_size;
    @memset(bytes(addr + size)[0 .. trailer - (addr + size)], canary_byte);
    writeWord(trailer, size);
    writeWord(trailer + 8, addr - f.start);
    return user;
}

/// A reused block must still carry the freed pattern it got when it was freed.
fn verifyFreedPattern(f: Found) void {
    if (firstDifferent(f.start + pattern_offset, f.start + f.size, freed_byte)) |offset| {
        report(.use_after_free, f.start, f, offset + pattern_offset);
    }
}

pub fn calloc(count: usize, size: usize) ?*anyopaque {
    const total = std.math.mul(usize, count, size) catch return slow.outOfMemory();
    const p = malloc(total, 16) orelse return null;
    @memset(bytes(@intFromPtr(p))[0..total], 0);
    return p;
}

// ---------------------------------------------------------------- free

pub const Verdict = enum { freed, ignored, not_owned };

/// Validates and frees `ptr`. `.not_owned`: not hakmem's (reported; the caller decides).
pub fn free(ptr: usize) Verdict {
    const f = validate(ptr) orelse return if (slow.classify(ptr) == .not_owned) .not_owned else .ignored;
    // Poison the block (its first two words become the link and the key).
    if (f.page != null) @memset(bytes(f.start + pattern_offset)[0 .. f.size - pattern_offset], freed_byte);
    _ = slow.free(f.start);
    return .freed;
}

/// The live block `ptr` starts, after checking its canary; null (reported) otherwise.
fn validate(ptr: usize) ?Found {
    const f = switch (slow.classify(ptr)) {
        .freed => {
            report(.double_free, ptr, describe(ptr), 0);
            return null;
        },
        .not_owned => {
            report(.not_owned, ptr, null, 0);
            return null;
        },
        .invalid => {
            const c = findContaining(ptr);
            report(.interior_pointer, ptr, c, if (c) |x| ptr - x.start else 0);
            return null;
        },
        .page_block, .large => find(ptr).?,
    };
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

/// The block `ptr` names, freed or not, for a report.
fn describe(ptr: usize) ?Found {
    if (findContaining(ptr)) |c| return c;
    const w = slow.describe(ptr) orelse return null;
    return .{ .start = ptr, .size = w.block_size, .tier = w.tier, .class = w.class, .page = null };
}

pub fn usableSize(ptr: usize) ?usize {
    const f = find(ptr) orelse return null;
    const trailer = f.start + f.size - trailer_size;
    const requested = readWord(trailer);
    return if (requested <= f.size) requested else null;
}

pub fn realloc(ptr: usize, size: usize) slow.ReallocResult {
    const f = validate(ptr) orelse return switch (slow.classify(ptr)) {
        .not_owned => .not_owned,
        .freed => .freed,
        else => .invalid,
    };
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
    try std.testing.expect(pattern_offset == @sizeOf(block_mod.Block));
}
