//! check_redzone.zig — check mode's redzones: how a live block is laid out around the
//! program's bytes (check.zig draws it), how arm() writes the redzones when the block is
//! handed out, and how they are read back: liveIntact (the common case: every redzone byte
//! as written), judge (what else: damaged on one side, an interior pointer, a freed block).
//! Nothing here reports: check.zig says what the redzones tell.
//!
//!   | gap 0xDF… | front header: size^s1, tag | requested bytes | canary 0xDF… | trailer: size^s2, offset |
//!   (0xDF: the freed pattern's byte, check_pattern.zig: a block handed out again from its
//!   verified whole pattern has its gap and canary already)
const std = @import("std");
const page_mod = @import("../memory/page.zig");
const block_mod = @import("../base/block.zig");
const scan = @import("../base/scan.zig");
const pattern = @import("check_pattern.zig");
const freed_word = pattern.freed_word;

/// The freed pattern's byte: a block handed out again whole from its verified pattern has
/// its canary already (armHeader writes only its header and trailer).
pub const canary_byte: u8 = pattern.freed_byte;
pub const front_size = 16;
pub const trailer_size = 16;
pub const canary_min = 8;
/// Bytes a check-mode block needs beyond the request (alignment 16).
pub const overhead = front_size + canary_min + trailer_size;
comptime {
    // the header and the trailer are two words each, 16-aligned after a 16-aligned pointer
    std.debug.assert(front_size == 2 * @sizeOf(u64));
    std.debug.assert(trailer_size == 2 * @sizeOf(u64));
    std.debug.assert(canary_min >= 1); // a byte past the request is always a canary's
}

/// A block as check mode sees it: where it starts, how big it is, which page holds it
/// (null: a large block, `large_usable` its usable bytes).
pub const Found = struct { start: usize, size: usize, page: ?*page_mod.Page, large_usable: usize = 0 };

pub fn pageFound(page: *page_mod.Page, start: usize) Found {
    std.debug.assert(page.flags & page_mod.flag_unused == 0); // a page in use,
    std.debug.assert(page.isBlockStart(start)); // and one of its carved blocks
    return .{ .start = start, .size = page.block_size, .page = page };
}

pub fn bytes(addr: usize) [*]u8 {
    return @ptrFromInt(addr);
}

pub fn readWord(addr: usize) u64 {
    return std.mem.readInt(u64, bytes(addr)[0..8], .little);
}

pub fn writeWord(addr: usize, value: u64) void {
    std.mem.writeInt(u64, bytes(addr)[0..8], value, .little);
}

/// The front header's tag of a live block; the secrets hide the sizes (a stray write
/// of a plausible size is not taken for one). Its top byte, the one just before the user
/// pointer, is canary_byte, not secret: a one-byte underflow writing the very value a
/// secret byte held went unseen (1 process in 256 for any given value).
pub fn liveTag() u64 {
    const secret = (block_mod.free_key ^ 0x6C69_7665_2062_6C6B) & ~@as(u64, 1); // even: never free_key
    const tag = secret & ((1 << 56) - 1) | @as(u64, canary_byte) << 56;
    std.debug.assert(tag != block_mod.free_key); // a live block's key word never says "free"
    std.debug.assert(tag >> 56 == canary_byte); // the byte before the user pointer
    return tag;
}
pub fn frontSecret() u64 {
    return block_mod.link_secret ^ 0x6672_6F6E_7421_2121;
}
pub fn trailerSecret() u64 {
    return block_mod.link_secret ^ 0x7472_6169_6C65_7221;
}


/// A live block's layout, from its block and user pointer.
pub const Layout = struct {
    f: Found,
    user: usize,
    requested: usize,

    pub fn trailer(self: Layout) usize {
        const t = self.f.start + self.f.size - trailer_size;
        std.debug.assert(self.user + self.requested + canary_min <= t); // a canary byte at least before it
        return t;
    }
    pub fn front(self: Layout) usize {
        std.debug.assert(self.user >= self.f.start + front_size); // the header lies in the block
        return self.user - front_size;
    }
};

/// Writes the redzones of a block handed out at `user` for `requested` bytes.
pub fn arm(f: Found, user: usize, requested: usize) void {
    std.debug.assert(user % 16 == 0); // malloc's alignment at least
    std.debug.assert((f.start + f.size) % 16 == 0); // so the trailer's words are aligned
    std.debug.assert(user + requested + canary_min + trailer_size <= f.start + f.size); // the block holds it
    const l: Layout = .{ .f = f, .user = user, .requested = requested };
    defer if (std.debug.runtime_safety) std.debug.assert(intact(l)); // (scans: not in ReleaseFast)
    fill(f.start, l.front(), canary_byte);
    writeWord(l.front(), requested ^ frontSecret());
    writeWord(l.front() + 8, liveTag());
    fill(user + requested, l.trailer(), canary_byte);
    writeWord(l.trailer(), requested ^ trailerSecret());
    writeWord(l.trailer() + 8, user - f.start);
}

/// arm() for a block whose bytes all hold the freed pattern (verified just now: canary_byte
/// is its byte): only the front header and the trailer are written.
pub inline fn armHeader(f: Found, user: usize, requested: usize) void {
    std.debug.assert(user == f.start + front_size); // no gap (the pattern covers any)
    std.debug.assert(user + requested + canary_min + trailer_size <= f.start + f.size); // the block holds it
    const l: Layout = .{ .f = f, .user = user, .requested = requested };
    defer if (std.debug.runtime_safety) std.debug.assert(intact(l)); // (scans: not in ReleaseFast)
    writeWord(l.front(), requested ^ frontSecret());
    writeWord(l.front() + 8, liveTag());
    writeWord(l.trailer(), requested ^ trailerSecret());
    writeWord(l.trailer() + 8, user - f.start);
}

/// True when every byte of [from, to) is `byte` (fill's test: the short ranges in a few
/// loads, the rest by scan.zig).
pub inline fn filled(from: usize, to: usize, byte: u8) bool {
    std.debug.assert(from <= to);
    const n = to - from;
    const word = @as(u64, byte) * 0x0101_0101_0101_0101;
    if (n >= 8 and n <= 16) return readWord(from) == word and readWord(to - 8) == word;
    if (n > 16 and n <= 32) {
        const pair = @Vector(2, u64){ word, word };
        const a = @as(*align(1) const @Vector(2, u64), @ptrFromInt(from)).*;
        const b = @as(*align(1) const @Vector(2, u64), @ptrFromInt(to - 16)).*;
        return @reduce(.And, (a == pair) & (b == pair));
    }
    if (n == 0) return true;
    return scan.allEqual(from, to, byte);
}

/// Sets [from, to) to `byte`: a redzone's canary is mostly 8 to 32 bytes, written with two
/// overlapping stores instead of a call of memset.
pub inline fn fill(from: usize, to: usize, byte: u8) void {
    std.debug.assert(from <= to);
    const n = to - from;
    const word = @as(u64, byte) * 0x0101_0101_0101_0101;
    if (n >= 8 and n <= 16) {
        writeWord(from, word);
        writeWord(to - 8, word);
    } else if (n > 16 and n <= 32) {
        const pair = @Vector(2, u64){ word, word };
        @as(*align(1) @Vector(2, u64), @ptrFromInt(from)).* = pair;
        @as(*align(1) @Vector(2, u64), @ptrFromInt(to - 16)).* = pair;
    } else if (n != 0) {
        @memset(bytes(from)[0..n], byte);
    }
}

/// What the redzones of a block say about `ptr`, a pointer into it.
pub const Verdict = union(enum) {
    live: Layout,
    /// redzones damaged: the layout from the intact side, and what broke
    damaged: struct { layout: Layout },
    double_free,
    interior: usize, // offset from the block's user pointer
    unknown, // both redzones gone: a wild write, or no check-mode block
};

pub fn frontIntact(f: Found, ptr: usize) ?usize {
    if (ptr < f.start + front_size) return null;
    if (readWord(ptr - 8) != liveTag()) return null;
    const requested = readWord(ptr - 16) ^ frontSecret();
    // (the size first, as liveIntact: a damaged size word can hold any value, and the sum
    // below overflowed for one near 2^64)
    if (requested > f.size) return null;
    if (ptr + requested + canary_min + trailer_size > f.start + f.size) return null;
    if (!scan.allEqual(f.start, ptr - front_size, canary_byte)) return null;
    std.debug.assert(ptr >= f.start + front_size); // a layout judge can use: the header in the block,
    std.debug.assert(requested + overhead <= f.size); // the request and the redzones too
    return requested;
}

pub const TrailerView = struct { user: usize, requested: usize };

pub fn trailerIntact(f: Found) ?TrailerView {
    const t = f.start + f.size - trailer_size;
    const requested = readWord(t) ^ trailerSecret();
    const offset = readWord(t + 8);
    if (offset < front_size or offset > f.size or requested > f.size) return null;
    const user = f.start + offset;
    if (user % 16 != 0 or user + requested + canary_min > t) return null;
    std.debug.assert(user >= f.start + front_size); // a header's room before it
    std.debug.assert(user + requested + canary_min <= t);
    return .{ .user = user, .requested = requested };
}

pub fn looksFreed(f: Found, ptr: usize) bool {
    std.debug.assert(f.size >= trailer_size); // a block holds a trailer's room
    std.debug.assert(ptr >= f.start); // (a pointer into the block: findContaining's answer)
    const t = f.start + f.size - trailer_size;
    if (readWord(t) != freed_word or readWord(t + 8) != freed_word) return false;
    if (ptr < f.start + front_size) return readWord(f.start + 8) == block_mod.free_key;
    const tag = readWord(ptr - 8);
    return tag == freed_word or tag == block_mod.free_key;
}

/// The fast verdict for the common case: `ptr` is the user pointer of a live block whose
/// redzones are all as arm() wrote them (a few words and the canary bytes, read once).
/// Null for anything else (judge then says what).
pub fn liveIntact(f: Found, ptr: usize) ?Layout {
    if (ptr < f.start + front_size or readWord(ptr - 8) != liveTag()) return null;
    const requested = readWord(ptr - 16) ^ frontSecret();
    if (requested > f.size or ptr + requested + canary_min + trailer_size > f.start + f.size) return null;
    const l: Layout = .{ .f = f, .user = ptr, .requested = requested };
    if (readWord(l.trailer()) != requested ^ trailerSecret() or readWord(l.trailer() + 8) != ptr - f.start) return null;
    if (!filled(f.start, l.front(), canary_byte)) return null;
    if (!filled(ptr + requested, l.trailer(), canary_byte)) return null;
    std.debug.assert(l.user == ptr); // live at the pointer freed, not inside a block
    std.debug.assert(l.requested + overhead <= f.size);
    return l;
}

pub fn judge(f: Found, ptr: usize) Verdict {
    std.debug.assert(ptr >= f.start); // a pointer into the block (findContaining's answer; a
    std.debug.assert(ptr < f.start + @max(f.size, f.large_usable)); // large one's guard page too)
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
pub fn expectedByte(l: Layout, addr: usize) u8 {
    std.debug.assert(addr >= l.f.start); // a byte of the block,
    std.debug.assert(addr < l.f.start + l.f.size);
    std.debug.assert(addr < l.user or addr >= l.user + l.requested); // not one of the program's
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
pub fn intact(l: Layout) bool {
    // (l.front() and l.trailer() assert the layout lies within its block)
    if (readWord(l.front()) != l.requested ^ frontSecret() or readWord(l.front() + 8) != liveTag()) return false;
    if (readWord(l.trailer()) != l.requested ^ trailerSecret() or readWord(l.trailer() + 8) != l.user - l.f.start) return false;
    if (!scan.allEqual(l.f.start, l.front(), canary_byte)) return false;
    return scan.allEqual(l.user + l.requested, l.trailer(), canary_byte);
}

test "the byte before the user pointer is the canary whatever the secrets; the tag is never a free key" {
    const saved = .{ block_mod.free_key, block_mod.fresh_key };
    defer {
        block_mod.free_key = saved[0];
        block_mod.fresh_key = saved[1];
    }
    var rng = std.Random.DefaultPrng.init(21);
    for (0..1000) |_| {
        block_mod.free_key = rng.random().int(u64) | 1;
        block_mod.fresh_key = block_mod.free_key ^ 2;
        const tag = liveTag();
        try std.testing.expectEqual(canary_byte, @as(u8, @truncate(tag >> 56)));
        try std.testing.expect(tag != block_mod.free_key and tag != block_mod.fresh_key and tag != freed_word);
    }
}

test "a block armed is intact and judged live; a byte past the request is not" {
    block_mod.initSecrets();
    var buf: [128]u8 align(16) = undefined;
    const f: Found = .{ .start = @intFromPtr(&buf), .size = buf.len, .page = null };
    const user = f.start + front_size;
    arm(f, user, 40);
    const l = liveIntact(f, user).?;
    try std.testing.expectEqual(@as(usize, 40), l.requested);
    try std.testing.expect(intact(l));
    try std.testing.expect(judge(f, user) == .live);
    buf[front_size + 40] ^= 1; // one byte past the 40 requested: the canary
    try std.testing.expect(liveIntact(f, user) == null);
    try std.testing.expect(!intact(l));
    try std.testing.expect(judge(f, user) == .live); // (the header and trailer still agree)
    try std.testing.expectEqual(canary_byte, expectedByte(l, user + 40));
    try std.testing.expect(judge(f, user + 8) == .interior);
}

test "a front header whose size word was overwritten with a huge value is damaged, not a size" {
    block_mod.initSecrets();
    var buf: [128]u8 align(16) = undefined;
    const f: Found = .{ .start = @intFromPtr(&buf), .size = buf.len, .page = null };
    const user = f.start + front_size;
    arm(f, user, 40);
    // the tag intact, the size word now reads as the largest size (ptr + size overflowed)
    writeWord(user - 16, std.math.maxInt(u64) ^ frontSecret());
    try std.testing.expectEqual(@as(?usize, null), frontIntact(f, user));
    try std.testing.expect(liveIntact(f, user) == null);
    const verdict = judge(f, user);
    try std.testing.expect(verdict == .damaged); // the trailer's layout: 40 bytes at user
    try std.testing.expectEqual(@as(usize, 40), verdict.damaged.layout.requested);
}
