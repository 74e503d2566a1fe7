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
//! Both values come from the kernel's getrandom, set once before the first heap exists
//! (never from AT_RANDOM, which seeds glibc's stack canary: see initSecrets).
const std = @import("std");

pub const Block = extern struct {
    link: usize,
    key: usize,

    comptime {
        // the two words fit the smallest block (16 bytes), link first, key right after
        std.debug.assert(@sizeOf(Block) == 16); // size_class.min_block_size (a layer above)
        std.debug.assert(@offsetOf(Block, "link") == 0);
        std.debug.assert(@offsetOf(Block, "key") == @sizeOf(usize));
    }
};

/// The key word of a free block. Odd, so it never equals an aligned pointer a program stored.
pub var free_key: usize = 0;
/// Check mode only: the key of a block carved and never handed out (check.zig verifies
/// the freed pattern of a reused block, which a fresh one does not have).
pub var fresh_key: usize = 0;
/// The key of a block free on its page (carved, or given back by a flush or a collect),
/// outside check mode. A block in a thread cache or on a remote-free list has its bin's
/// cache key instead (cacheKey): malloc's pop takes only that, so a second copy of a block
/// that went back to its page, or that another bin's stack holds, is never handed out.
pub var page_key: usize = 0;
/// The secret of encoded links.
pub var link_secret: usize = 0;
/// The seed of the order in which fresh blocks are handed out (heap.zig: each heap mixes
/// its address in). A word of its own: what a program can learn of the order tells it
/// nothing of the other secrets.
pub var order_secret: usize = 0;

const linux = std.os.linux;
const GRND_NONBLOCK: u32 = 1;

/// Sets the key and the link secret, once (later calls, e.g. from unit tests, keep them:
/// blocks already freed carry the first values). Both come straight from the kernel's
/// random bytes (the getrandom system call), never from the auxiliary vector's AT_RANDOM:
/// glibc makes the stack-protector canary and the pointer guard of those, and free_key is
/// written into every freed block, so a program that reads a freed block must learn
/// nothing else of the process. Two independent words: neither secret tells the other.
pub fn initSecrets() void {
    if (free_key != 0) return;
    std.debug.assert(page_key == 0); // the first call: nothing set yet
    std.debug.assert(link_secret == 0);
    var words: [3]u64 = undefined;
    randomWords(&words);
    free_key = words[0] | 1;
    fresh_key = free_key ^ 2;
    page_key = free_key ^ 4;
    link_secret = words[1];
    order_secret = words[2];
    std.debug.assert(free_key & 1 == 1); // never an aligned pointer a program stored
    std.debug.assert(fresh_key & 1 == 1); // (nor the fresh key)
    std.debug.assert(fresh_key != free_key); // check mode tells a fresh block from a reused one
    std.debug.assert(page_key != free_key); // bit 2: no cache key either (cacheKey)
    std.debug.assert(page_key != fresh_key);
    std.debug.assert(free_key != 0); // set: later calls keep it
}

/// Fills `out` with random bytes: getrandom (retried on EINTR; GRND_NONBLOCK, so a process
/// that starts before the kernel's pool is ready does not hang), else /dev/urandom, else
/// (no getrandom, no /dev: a bare chroot on a pre-3.17 kernel) the clock and a few
/// addresses run through a mixer — keys that only make a stray write unlikely to pass for
/// a free block, not secrets; the only case where they are not random.
fn randomWords(out: *[3]u64) void {
    const buf: [*]u8 = @ptrCast(out);
    comptime std.debug.assert(@sizeOf(@TypeOf(out.*)) == 24); // the three words, every byte
    if (fromGetrandom(buf[0..24]) or fromUrandom(buf[0..24])) return;
    var ts: linux.timespec = undefined;
    _ = linux.clock_gettime(.MONOTONIC, &ts);
    out[0] = mix(@as(u64, @bitCast(@as(i64, ts.nsec))) ^ (@intFromPtr(out) *% 0x2545_F491_4F6C_DD1D));
    out[1] = mix(out[0] ^ @as(u64, @bitCast(@as(i64, ts.sec))) ^ @intFromPtr(&free_key));
    out[2] = mix(out[1] ^ @intFromPtr(&link_secret));
}

fn fromGetrandom(buf: []u8) bool {
    std.debug.assert(buf.len > 0); // a read of 0 bytes would pass for one that filled it
    var done: usize = 0;
    var attempts: u32 = 0;
    while (done < buf.len and attempts < 64) : (attempts += 1) {
        const rc = linux.getrandom(buf[done..].ptr, buf.len - done, GRND_NONBLOCK);
        switch (linux.E.init(rc)) {
            .SUCCESS => done += rc,
            .INTR => {},
            else => return false, // ENOSYS (no such call), EAGAIN (pool not ready), …
        }
        std.debug.assert(done <= buf.len); // the kernel writes at most what was asked
    }
    std.debug.assert(done == buf.len or attempts == 64); // filled, or out of attempts
    return done == buf.len;
}

fn fromUrandom(buf: []u8) bool {
    std.debug.assert(buf.len > 0); // (n == 0 means the end of the file below)
    const rc = linux.open("/dev/urandom", .{ .CLOEXEC = true }, 0);
    if (linux.E.init(rc) != .SUCCESS) return false;
    const fd: i32 = @intCast(rc);
    defer _ = linux.close(fd);
    var done: usize = 0;
    var attempts: u32 = 0;
    while (done < buf.len and attempts < 64) : (attempts += 1) {
        const n = linux.read(fd, buf[done..].ptr, buf.len - done);
        switch (linux.E.init(n)) {
            .SUCCESS => if (n == 0) return false else {
                done += n;
            },
            .INTR => {},
            else => return false,
        }
        std.debug.assert(done <= buf.len);
    }
    std.debug.assert(done == buf.len or attempts == 64); // filled, or out of attempts
    return done == buf.len;
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

/// The key of a block in a thread cache (or on its way back to its page) of the bin whose
/// stack offset is `stack_offset` (bin << 5: bits 5 and up, so never page_key's or
/// fresh_key's, and odd: never an aligned pointer).
pub inline fn cacheKey(stack_offset: usize) usize {
    return free_key ^ stack_offset;
}

/// The block says it is free: in a cache of its bin (stack offset `stack_offset`), or on its page.
pub inline fn isMarkedFree(block: *const Block, stack_offset: usize) bool {
    return block.key == cacheKey(stack_offset) or block.key == page_key;
}

test "secrets are random words, not the auxiliary vector's AT_RANDOM" {
    initSecrets();
    const at_random: *align(1) const [2]u64 = @ptrFromInt(std.c.getauxval(std.elf.AT_RANDOM));
    for ([_]usize{ free_key, link_secret, order_secret, free_key & ~@as(usize, 1) }) |secret| {
        for (at_random) |w| try std.testing.expect(secret != w and secret != (w | 1));
    }
    try std.testing.expect(order_secret != link_secret and order_secret != free_key);
    var again: [3]u64 = undefined;
    randomWords(&again);
    try std.testing.expect(again[0] != again[1] and again[0] != free_key and again[2] != again[1]);
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
