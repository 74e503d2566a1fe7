//! block.zig — what hakmem writes into a free block: two words, and nothing else.
//!
//!   a free block (any size >= 16 bytes)
//!   +----------------------+----------------------+------------------------------+
//!   | word 0: link         | word 1: key          | (the program's old bytes)    |
//!   +----------------------+----------------------+------------------------------+
//!
//!   link  the next block of a page's remote-free list (page.thread_free), encoded:
//!         next ^ (address of this word >> 12) ^ secret   (glibc's safe-linking, keyed).
//!         A program that writes to a freed block's first word turns the link into noise
//!         that fails decoding (not inside the page, not a free block) instead of a pointer
//!         the allocator would follow. Blocks in a thread cache have no link (the cache is
//!         an array of pointers): their word 0 is not read.
//!   key   `free_key`, a per-process random odd value, while the block is free (in a thread
//!         cache, a page list, or carved and never handed out); 0 once malloc hands it out.
//!         free() compares it (one load and compare): equal means "this block looks free
//!         already", and only then does the slow path look for the block where it could be
//!         (slow.freeBlock) to tell a double free from a program's data that equals the key.
//!
//! Both values come from the kernel's AT_RANDOM bytes, set once before the first heap exists.
const std = @import("std");

pub const Block = extern struct {
    link: usize,
    key: usize,
};

/// The key word of a free block. Odd, so it never equals an aligned pointer a program stored.
pub var free_key: usize = 0;
/// Check mode only: the key of a block carved and never handed out (check.zig verifies
/// the freed pattern of a reused block, which a fresh one does not have).
pub var fresh_key: usize = 0;
/// The secret of encoded links.
pub var link_secret: usize = 0;

extern "c" fn getauxval(kind: c_ulong) c_ulong;
const AT_RANDOM: c_ulong = 25;

/// Sets the key and the link secret, once (later calls, e.g. from unit tests, keep them:
/// blocks already freed carry the first values).
pub fn initSecrets() void {
    if (free_key != 0) return;
    var seed: [2]u64 = .{ 0x9E37_79B9_7F4A_7C15, 0xD1B5_4A32_D192_ED03 };
    const random_bytes = getauxval(AT_RANDOM);
    if (random_bytes != 0) {
        const words: *align(1) const [2]u64 = @ptrFromInt(random_bytes);
        seed[0] ^= words[0];
        seed[1] ^= words[1];
    }
    // Mix in an address and the clock: AT_RANDOM is absent only where auxv is unusual.
    seed[0] ^= @intFromPtr(&seed) *% 0x2545_F491_4F6C_DD1D;
    var ts: std.c.timespec = undefined;
    if (std.c.clock_gettime(.MONOTONIC, &ts) == 0) seed[1] ^= @as(u64, @bitCast(@as(i64, ts.nsec)));
    free_key = mix(seed[0]) | 1;
    fresh_key = free_key ^ 2;
    link_secret = mix(seed[1] ^ free_key);
}

fn mix(x: u64) u64 {
    var z = x +% 0x9E37_79B9_7F4A_7C15;
    z = (z ^ (z >> 30)) *% 0xBF58_476D_1CE4_E5B9;
    z = (z ^ (z >> 27)) *% 0x94D0_49BB_1331_11EB;
    return z ^ (z >> 31);
}

pub inline fn encode(at: *const Block, next: ?*Block) usize {
    return @intFromPtr(next) ^ (@intFromPtr(at) >> 12) ^ link_secret;
}

/// The address `at.link` names (0 for the end of a list); not yet validated.
pub inline fn decode(at: *const Block) usize {
    return at.link ^ (@intFromPtr(at) >> 12) ^ link_secret;
}

pub inline fn isMarkedFree(block: *const Block) bool {
    return block.key == free_key;
}

test "links round-trip and a stray write decodes to noise" {
    initSecrets();
    try std.testing.expect(free_key & 1 == 1);
    var blocks: [2]Block align(16) = undefined;
    blocks[0].link = encode(&blocks[0], &blocks[1]);
    try std.testing.expectEqual(@intFromPtr(&blocks[1]), decode(&blocks[0]));
    blocks[1].link = encode(&blocks[1], null);
    try std.testing.expectEqual(@as(usize, 0), decode(&blocks[1]));
    blocks[0].link = 0x4141_4141_4141_4141;
    const noise = decode(&blocks[0]);
    try std.testing.expect(noise != @intFromPtr(&blocks[1]) and noise != 0);
}
