//! scan.zig — whether a range of bytes all hold one value, 128 bytes per step (check mode
//! verifies the redzones of every block it frees and the freed pattern of every block it
//! hands out again: a byte loop made those checks most of check mode's time).
//!
//! allEqual is the fast test (vector loads, one branch per 256 bytes, the last step
//! overlapping the one before so no byte loop is left); firstDifferent says where, for a
//! report, and starts with it.
const std = @import("std");

const V = @Vector(32, u8);

inline fn loadVector(addr: usize) V {
    return @as(*align(1) const V, @ptrFromInt(addr)).*;
}

inline fn loadWord(addr: usize) u64 {
    return @as(*align(1) const u64, @ptrFromInt(addr)).*;
}

/// True when every byte in [from, to) is `expected` (an empty range too).
pub fn allEqual(from: usize, to: usize, expected: u8) bool {
    std.debug.assert(from <= to);
    const n = to - from;
    if (n < 8) {
        var a = from;
        while (a < to) : (a += 1) if (@as(*const u8, @ptrFromInt(a)).* != expected) return false;
        std.debug.assert(a == to); // every byte read, none past the range
        return true;
    }
    if (n < 32) {
        const word = @as(u64, expected) * 0x0101_0101_0101_0101;
        var a = from;
        while (to - a > 8) : (a += 8) if (loadWord(a) != word) return false;
        std.debug.assert(to - a <= 8); // the last word covers what is left: [a, to)
        std.debug.assert(to - 8 >= from); // the last word overlaps, never reads before the range
        return loadWord(to - 8) == word; // overlaps the word before
    }
    const splat: V = @splat(expected);
    var a = from;
    // (256 bytes a step while they last: one branch and one test per 8 loads)
    while (to - a > 256) : (a += 256) {
        const x = (loadVector(a) ^ splat) | (loadVector(a + 32) ^ splat) | (loadVector(a + 64) ^ splat) | (loadVector(a + 96) ^ splat);
        const y = (loadVector(a + 128) ^ splat) | (loadVector(a + 160) ^ splat) | (loadVector(a + 192) ^ splat) | (loadVector(a + 224) ^ splat);
        if (@reduce(.Or, x | y) != 0) return false;
    }
    while (to - a > 128) : (a += 128) {
        const x = (loadVector(a) ^ splat) | (loadVector(a + 32) ^ splat) | (loadVector(a + 64) ^ splat) | (loadVector(a + 96) ^ splat);
        if (@reduce(.Or, x) != 0) return false;
    }
    while (to - a > 32) : (a += 32) {
        if (@reduce(.Or, loadVector(a) ^ splat) != 0) return false;
    }
    std.debug.assert(to - a <= 32); // the last vector covers what is left: [a, to)
    std.debug.assert(to > a); // (each step left more than it read)
    std.debug.assert(to - 32 >= from); // the last vector overlaps, never reads before the range
    return @reduce(.Or, loadVector(to - 32) ^ splat) == 0; // overlaps the step before
}

/// Index (from `from`) of the first byte in [from, to) that is not `expected`, or null.
pub fn firstDifferent(from: usize, to: usize, expected: u8) ?usize {
    std.debug.assert(from <= to);
    if (allEqual(from, to, expected)) return null;
    std.debug.assert(from < to); // an empty range holds one value
    var a = from; // bounded by the range; only on a report's path
    while (a < to) : (a += 1) if (@as(*const u8, @ptrFromInt(a)).* != expected) return a - from;
    return null; // (a racing writer put the value back)
}

/// Index (from `from`) of the last byte in [from, to) that is not `expected`, or null.
pub fn lastDifferent(from: usize, to: usize, expected: u8) ?usize {
    std.debug.assert(from <= to);
    var a = to;
    while (a > from) {
        a -= 1;
        if (@as(*const u8, @ptrFromInt(a)).* != expected) return a - from;
    }
    std.debug.assert(a == from); // every byte read
    return null;
}

test "allEqual and firstDifferent find every single changed byte, at every length and alignment" {
    var buf: [640]u8 align(32) = undefined;
    for (0..9) |start| {
        for ([_]usize{ 0, 1, 7, 8, 9, 15, 31, 32, 33, 63, 64, 127, 128, 129, 200, 255, 256, 257, 390, 513, 600 }) |len| {
            if (start + len > buf.len) continue;
            const from = @intFromPtr(&buf) + start;
            @memset(&buf, 0xDF);
            try std.testing.expect(allEqual(from, from + len, 0xDF));
            try std.testing.expectEqual(@as(?usize, null), firstDifferent(from, from + len, 0xDF));
            for (0..len) |at| {
                buf[start + at] = 0x11;
                try std.testing.expect(!allEqual(from, from + len, 0xDF));
                try std.testing.expectEqual(@as(?usize, at), firstDifferent(from, from + len, 0xDF));
                try std.testing.expectEqual(@as(?usize, at), lastDifferent(from, from + len, 0xDF));
                buf[start + at] = 0xDF;
            }
            // bytes just outside the range do not count
            if (start > 0) buf[start - 1] = 0;
            if (start + len < buf.len) buf[start + len] = 0;
            try std.testing.expect(allEqual(from, from + len, 0xDF));
        }
    }
}
