//! check_pattern.zig — where check mode writes the freed pattern (0xDF) into a freed page
//! block, and which of its bytes each verification reads back.
//!
//! A block up to whole_max bytes is filled whole. A bigger one (a mid block) gets its head,
//! a window that moves on at every free, and its tail; the bytes between keep what the
//! program left there (filling and reading 4-32 KiB per free was most of check mode's time
//! on such blocks):
//!
//!   | head: 0xDF … (head_bytes, or past the user pointer) | …stale… | window 0xDF | …stale… | words | tail 0xDF |
//!                                                                                   ^ size - tail_bytes: where the
//!                                                                                     head ends and the window starts
//!
//! The two words are freed words when the block was filled whole; else both say where the
//! head ends and the window starts, each xor its own secret (a stray write to either is
//! not taken for a pattern).
//! Verified:
//!   leaving the quarantine: the first and last edge_bytes (the page writes its key over
//!     the first line; a write anywhere else is seen when the block is handed out again)
//!   handed out again, and in the sweep: every byte the pattern was written to
const std = @import("std");
const block_mod = @import("../base/block.zig");
const scan = @import("../base/scan.zig");
const size_class = @import("../settings/size_class.zig");

pub const freed_byte: u8 = 0xDF;
pub const freed_word: u64 = 0xDFDF_DFDF_DFDF_DFDF;
/// Blocks up to this size are filled and verified whole.
pub const whole_max = 4096;
pub const head_bytes = 1024;
pub const window_bytes = 256;
pub const tail_bytes = 256;
pub const edge_bytes = 64;
comptime {
    std.debug.assert(head_bytes + window_bytes + tail_bytes <= whole_max);
    std.debug.assert(tail_bytes >= edge_bytes + 16); // the words are not among the last edge bytes
    // windows start 64 apart past a 64-aligned head; an index fits check_side's 15 bits for
    // the largest block (1 MiB)
    std.debug.assert(head_bytes % 64 == 0);
    std.debug.assert((size_class.mid_size_limit - head_bytes) / 64 + 1 < 1 << 15);
}

/// Where a block's pattern is (offsets from its start). `window_at` 0: filled whole.
pub const Pattern = struct {
    size: usize,
    head_end: usize,
    window_at: usize,

    pub fn isWhole(self: Pattern) bool {
        return self.window_at == 0;
    }

    fn wordAt(self: Pattern) usize {
        std.debug.assert(!self.isWhole()); // (a block filled whole has no words of its own)
        std.debug.assert(self.window_at + window_bytes <= self.size - tail_bytes); // past the window
        return self.size - tail_bytes;
    }
};

fn secrets() [2]u64 {
    return .{ block_mod.link_secret ^ 0x7769_6e64_6f77_2121, block_mod.link_secret ^ 0x7769_6e64_6f77_3232 };
}

fn bytes(addr: usize) [*]u8 {
    return @ptrFromInt(addr);
}

fn readWord(addr: usize) u64 {
    return std.mem.readInt(u64, bytes(addr)[0..8], .little);
}

/// The pattern of a block of `size` bytes freed at `user_offset`; `seed` moves the window.
pub fn choose(size: usize, user_offset: usize, seed: u64) Pattern {
    const whole: Pattern = .{ .size = size, .head_end = size, .window_at = 0 };
    if (size <= whole_max) return whole;
    const head_end = headEnd(user_offset);
    if (head_end + window_bytes + tail_bytes > size) return whole;
    const room = (size - tail_bytes - window_bytes - head_end) / 64; // window starts, 64 apart
    const at = head_end + (seed *% 0x9E37_79B9_7F4A_7C15 >> 32) % (room + 1) * 64;
    const p: Pattern = .{ .size = size, .head_end = head_end, .window_at = at };
    // a pattern read() takes back: the window after the head, 64-aligned, before the words
    std.debug.assert(p.window_at >= p.head_end);
    std.debug.assert(p.window_at % 64 == 0);
    std.debug.assert(p.window_at + window_bytes <= size - tail_bytes);
    return p;
}

/// Where the head of a block freed at `user_offset` ends (not filled whole).
fn headEnd(user_offset: usize) usize {
    // (the head covers the user pointer's first bytes and the header before it: a read
    // after free of them sees the pattern, and the double-free test reads the header)
    const end = @max(head_bytes, std.mem.alignForward(usize, user_offset + 64, 64));
    std.debug.assert(end % 64 == 0); // where windows may start
    std.debug.assert(end > user_offset); // the header and the first bytes are in the head
    return end;
}

/// A pattern in a number small enough to keep beside the block (check_side.zig): 0 when
/// it is filled whole, else 1 + the window's step (64 bytes each) past the head.
pub fn windowIndex(p: Pattern) u16 {
    if (p.isWhole()) return 0;
    std.debug.assert(p.window_at >= p.head_end); // (choose's)
    std.debug.assert((p.window_at - p.head_end) % 64 == 0); // a window's step: the index loses nothing
    const index: u16 = @intCast((p.window_at - p.head_end) / 64 + 1);
    std.debug.assert(index < 1 << 15); // check_side's 15 bits
    return index;
}

/// The pattern `windowIndex` numbered, of a block of `size` bytes freed at `user_offset`.
pub fn fromWindow(size: usize, user_offset: usize, index: u16) Pattern {
    if (index == 0) return .{ .size = size, .head_end = size, .window_at = 0 };
    const head_end = headEnd(user_offset);
    const p: Pattern = .{ .size = size, .head_end = head_end, .window_at = head_end + (@as(usize, index) - 1) * 64 };
    std.debug.assert(size > whole_max); // (only a big block's pattern has a window)
    std.debug.assert(windowIndex(p) == index); // the pattern the index numbered
    return p;
}

const V = @Vector(32, u8);

inline fn loadV(addr: usize) V {
    return @as(*align(1) const V, @ptrFromInt(addr)).*;
}

inline fn storeV(addr: usize, v: V) void {
    @as(*align(1) V, @ptrFromInt(addr)).* = v;
}

/// Fills [from, to) with the freed byte, inline: 32-byte stores, four a step, the last one
/// overlapping the step before (no call of memset: most freed blocks are a few hundred
/// bytes, where its call and size dispatch cost as much as the stores).
pub inline fn fill(from: usize, to: usize) void {
    std.debug.assert(to - from >= 32); // (check-mode blocks are 48 bytes at least)
    const splat: V = @splat(freed_byte);
    var a = from;
    while (to - a > 256) : (a += 256) {
        inline for (0..8) |k| storeV(a + k * 32, splat);
    }
    while (to - a > 64) : (a += 64) {
        storeV(a, splat);
        storeV(a + 32, splat);
    }
    if (to - a > 32) storeV(a, splat);
    storeV(to - 32, splat); // overlaps the store before (never before `from`: 32 bytes at least)
}

/// True when every byte of [from, to) holds the freed byte, inline: 32-byte loads folded
/// into one accumulator, four a step, one test at the end (a block that fails is the rare
/// case: its report looks again, byte by byte).
pub inline fn intact(from: usize, to: usize) bool {
    std.debug.assert(to - from >= 32);
    const splat: V = @splat(freed_byte);
    var acc: V = @splat(0);
    var a = from;
    while (to - a > 256) : (a += 256) {
        inline for (0..8) |k| acc |= loadV(a + k * 32) ^ splat;
    }
    while (to - a > 64) : (a += 64) acc |= (loadV(a) ^ splat) | (loadV(a + 32) ^ splat);
    if (to - a > 32) acc |= loadV(a) ^ splat;
    acc |= loadV(to - 32) ^ splat; // overlaps the load before
    return @reduce(.Or, acc) == 0;
}

/// Writes the pattern into the block at `start`.
pub fn write(start: usize, p: Pattern) void {
    std.debug.assert(start % 16 == 0); // a block start
    std.debug.assert(p.head_end <= p.size);
    defer if (std.debug.runtime_safety) std.debug.assert(std.meta.eql(read(start, p.size), p)); // read() finds it again
    if (p.isWhole()) return if (p.size >= 32) fill(start, start + p.size) else @memset(bytes(start)[0..p.size], freed_byte);
    @memset(bytes(start)[0..p.head_end], freed_byte);
    @memset(bytes(start + p.window_at)[0..window_bytes], freed_byte);
    @memset(bytes(start + p.wordAt())[0..tail_bytes], freed_byte);
    const where = (@as(u64, p.head_end) << 32) | p.window_at;
    std.mem.writeInt(u64, bytes(start + p.wordAt())[0..8], where ^ secrets()[0], .little);
    std.mem.writeInt(u64, bytes(start + p.wordAt() + 8)[0..8], where ^ secrets()[1], .little);
}

/// The pattern a freed block of `size` bytes at `start` says it has; null when its words
/// were overwritten (a write after free at offset size - tail_bytes).
pub fn read(start: usize, size: usize) ?Pattern {
    if (size <= whole_max) return .{ .size = size, .head_end = size, .window_at = 0 };
    const first = readWord(start + size - tail_bytes);
    const second = readWord(start + size - tail_bytes + 8);
    if (first == freed_word and second == freed_word) return .{ .size = size, .head_end = size, .window_at = 0 };
    const decoded = first ^ secrets()[0];
    if (decoded != second ^ secrets()[1]) return null;
    const p: Pattern = .{ .size = size, .head_end = @intCast(decoded >> 32), .window_at = @as(u32, @truncate(decoded)) };
    if (p.head_end < head_bytes or p.window_at < p.head_end or p.window_at % 64 != 0) return null;
    if (p.window_at + window_bytes > size - tail_bytes) return null;
    std.debug.assert(!p.isWhole()); // (window_at >= head_end >= head_bytes > 0)
    std.debug.assert(p.head_end < size - tail_bytes); // the head ends before the words
    return p;
}

/// Offset (from `start`) of the first byte at or past `from` the pattern was written to and
/// that changed since; null when none did.
pub fn firstBroken(start: usize, p: Pattern, from: usize) ?usize {
    std.debug.assert(from < p.size); // (the link and key words at most: pattern_offset 16)
    std.debug.assert(p.head_end <= p.size);
    if (p.isWhole()) return spanBroken(start, from, p.size);
    if (spanBroken(start, from, p.head_end)) |at| return at;
    if (spanBroken(start, @max(from, p.window_at), p.window_at + window_bytes)) |at| return at;
    return spanBroken(start, @max(from, p.wordAt() + 16), p.size);
}

/// firstBroken of the block's first and last edge_bytes only (from offset 0).
pub fn edgesBroken(start: usize, p: Pattern) ?usize {
    if (p.size <= 2 * edge_bytes) return firstBroken(start, p, 0);
    // both edges hold the pattern whatever its window: the head's first bytes, the tail's last
    std.debug.assert(p.head_end >= edge_bytes);
    std.debug.assert(p.isWhole() or p.size - edge_bytes >= p.wordAt() + 16);
    if (spanBroken(start, 0, edge_bytes)) |at| return at;
    return spanBroken(start, p.size - edge_bytes, p.size);
}

fn spanBroken(start: usize, from: usize, to: usize) ?usize {
    if (from >= to or scan.allEqual(start + from, start + to, freed_byte)) return null;
    const at = from + scan.firstDifferent(start + from, start + to, freed_byte).?;
    std.debug.assert(at >= from); // a byte of the span
    std.debug.assert(at < to);
    return at;
}

test "a big block's pattern: written, read back, and every byte of it is verified" {
    block_mod.initSecrets();
    var buf: [16384]u8 align(64) = undefined;
    const start = @intFromPtr(&buf);
    for ([_]usize{ 0, 1, 77, 1 << 40 }) |seed| {
        @memset(&buf, 0x11);
        const p = choose(buf.len, 16, seed);
        try std.testing.expect(!p.isWhole());
        write(start, p);
        const q = read(start, buf.len).?;
        try std.testing.expectEqual(p, q);
        try std.testing.expectEqual(@as(?usize, null), firstBroken(start, q, 0));
        try std.testing.expectEqual(@as(?usize, null), edgesBroken(start, q));
        // a write to a byte of the pattern is found; one to a stale byte is not looked for
        for ([_]usize{ 16, 900, q.window_at + 7, buf.len - 1, buf.len - tail_bytes + 16 }) |at| {
            buf[at] ^= 1;
            try std.testing.expectEqual(@as(?usize, at), firstBroken(start, q, 16));
            buf[at] ^= 1;
        }
        buf[q.head_end + 1] = 0; // stale bytes between (q.head_end < q.window_at or equal)
        if (q.window_at > q.head_end + 1) try std.testing.expectEqual(@as(?usize, null), firstBroken(start, q, 0));
        for ([_]usize{ 0, 8 }) |word| {
            buf[buf.len - tail_bytes + word] ^= 0x40; // one of the words: no longer a pattern
            try std.testing.expectEqual(@as(?Pattern, null), read(start, buf.len));
            buf[buf.len - tail_bytes + word] ^= 0x40;
        }
    }
}

test "a pattern's window index gives the pattern back" {
    for ([_]usize{ 4096, 4160, 8192, 65536, 1 << 20 }) |size| {
        for ([_]usize{ 16, 48, 2048 }) |offset| {
            for ([_]u64{ 0, 1, 99, 1 << 40 }) |seed| {
                const p = choose(size, offset, seed);
                try std.testing.expectEqual(p, fromWindow(size, offset, windowIndex(p)));
            }
        }
    }
    try std.testing.expect(windowIndex(choose(1 << 20, 16, 12345)) < 1 << 15); // fits check_side's bits
}

test "fill and intact cover every byte, at every length from 32" {
    var buf: [600]u8 align(16) = undefined;
    const base = @intFromPtr(&buf);
    for (32..buf.len - 8) |len| {
        for ([_]usize{ 0, 8 }) |off| {
            @memset(&buf, 0x11);
            fill(base + off, base + off + len);
            try std.testing.expect(intact(base + off, base + off + len));
            try std.testing.expectEqual(@as(u8, 0x11), buf[off + len]); // not a byte past the range
            if (off > 0) try std.testing.expectEqual(@as(u8, 0x11), buf[off - 1]);
            for ([_]usize{ 0, len / 2, len - 1 }) |at| {
                buf[off + at] ^= 1;
                try std.testing.expect(!intact(base + off, base + off + len));
                buf[off + at] ^= 1;
            }
        }
    }
}

test "small blocks, and big ones with a head past the user pointer, are filled whole when the window does not fit" {
    try std.testing.expect(choose(4096, 16, 3).isWhole());
    try std.testing.expect(choose(8192, 8000, 3).isWhole());
    const p = choose(8192, 2048, 3);
    try std.testing.expect(!p.isWhole() and p.head_end == 2048 + 64);
}
