//! page.zig — a page: one span of 1..16 slices of a segment, cut into blocks of one size.
//!
//!   page.start                                           page end
//!   | block 0 | block 1 | ... | block capacity-1 | uncarved ... |
//!
//! Blocks are carved lazily (`extend`), so a fresh page costs RSS only for what is used.
//! Three block lists: `free` (ready to allocate; the owner thread pops and pushes it
//! with plain loads and stores), `thread_free` (blocks freed by other threads, pushed
//! with one CAS, taken whole by the owner in `collect`). `used` counts blocks that are
//! neither in `free` nor uncarved. There is no per-block header: a block's page is found
//! from its address (segment.zig), its index by a multiply (div_magic).
const std = @import("std");
const size_class = @import("size_class.zig");
const config = @import("config.zig");
const os = @import("os.zig");

pub const Block = struct { next: ?*Block };

/// A nonzero `flags` sends free() down its slow path.
pub const flag_full: u8 = 1; // in the heap's full queue
pub const flag_aligned: u8 = 2; // holds blocks handed out at an inner aligned address
pub const flag_unused: u8 = 4; // not a page in use (free span, segment header, cached)
pub const flag_checked: u8 = 8; // check mode: every free goes through check.zig

/// Carve at most this many bytes of new blocks at a time (keeps RSS close to use).
const extend_bytes_max: usize = 16 * 1024;

pub const Page = extern struct {
    // First cache line: what the owner thread reads and writes on malloc and free.
    // Aligned to 128 so a descriptor is 128 bytes and finding a page by slice index is a shift.
    free: ?*Block align(128) = null,
    used: u32 = 0,
    flags: u8 = flag_unused,
    bin: u8 = 0,
    slice_count: u8 = 0,
    slice_offset: u8 = 0,
    block_size: u32 = 0,
    capacity: u32 = 0,
    div_magic: u64 = 0,
    start: usize = 0,
    reserved: u32 = 0,
    next: ?*Page = null,
    prev: ?*Page = null,
    // Second cache line: what other threads write (remote frees), kept off the owner's line.
    thread_free: std.atomic.Value(?*Block) align(64) = .init(null),
    // Milliseconds on the monotonic clock when `used` last dropped to 0.
    empty_since_ms: u64 = 0,

    comptime {
        std.debug.assert(@sizeOf(Page) == 128);
        std.debug.assert(@offsetOf(Page, "thread_free") == 64);
    }

    pub fn init(self: *Page, bin: usize, start: usize, slice_count: usize) void {
        const bs = size_class.binBlockSize(bin);
        self.* = .{
            .flags = if (config.check_mode == .off) 0 else flag_checked,
            .bin = @intCast(bin),
            .slice_count = @intCast(slice_count),
            .block_size = @intCast(bs),
            .div_magic = size_class.divMagic(bs),
            .start = start,
            .reserved = @intCast(slice_count * size_class.slice_size / bs),
        };
    }

    pub inline fn isTiny(self: *const Page) bool {
        return size_class.binIsTiny(self.bin);
    }

    /// Index of the block holding `addr` (addr inside the page).
    pub inline fn blockIndex(self: *const Page, addr: usize) usize {
        return @intCast(((addr -% self.start) * self.div_magic) >> 40);
    }

    /// True when `addr` is the first byte of a carved block of this page.
    pub inline fn isBlockStart(self: *const Page, addr: usize) bool {
        const offset = addr -% self.start;
        const index = self.blockIndex(addr);
        return index < self.capacity and index * self.block_size == offset;
    }

    /// The start of the block that contains `addr`, or null when addr is outside the carved blocks.
    pub fn blockContaining(self: *const Page, addr: usize) ?usize {
        if (addr < self.start) return null;
        const index = self.blockIndex(addr);
        if (index >= self.capacity) return null;
        return self.start + index * self.block_size;
    }

    pub inline fn pop(self: *Page) ?*Block {
        const block = self.free orelse return null;
        self.free = block.next;
        self.used += 1;
        return block;
    }

    /// Owner-thread free of a linked run of `count` blocks of this page. Returns true when
    /// the page has become empty.
    pub fn pushLocalChain(self: *Page, first: *Block, last: *Block, count: u32) bool {
        last.next = self.free;
        self.free = first;
        self.used -= count;
        return self.used == 0;
    }

    /// Any-thread free: one CAS, no lock.
    pub fn pushRemote(self: *Page, block: *Block) void {
        var head = self.thread_free.load(.monotonic);
        while (true) {
            block.next = head;
            head = self.thread_free.cmpxchgWeak(head, block, .release, .monotonic) orelse return;
        }
    }

    /// Any-thread free of a linked run of blocks of this page: one CAS for the run.
    pub fn pushRemoteChain(self: *Page, first: *Block, last: *Block) void {
        var head = self.thread_free.load(.monotonic);
        while (true) {
            last.next = head;
            head = self.thread_free.cmpxchgWeak(head, first, .release, .monotonic) orelse return;
        }
    }

    /// Owner: moves every remotely freed block to `free`. Returns how many.
    pub fn collect(self: *Page) u32 {
        if (self.thread_free.load(.monotonic) == null) return 0;
        const list = self.thread_free.swap(null, .acquire) orelse return 0;
        var count: u32 = 1;
        var tail = list;
        while (tail.next) |n| : (tail = n) {
            count += 1;
            // More blocks than the page has in use: a block was freed twice and the list
            // loops. Stop with a message rather than spin forever.
            if (count > self.used) corrupted("a block was freed twice (remote free list of a page loops)");
        }
        tail.next = self.free;
        self.free = list;
        self.used -= count;
        return count;
    }

    /// Owner: carves the next run of blocks onto `free`. Returns how many.
    pub fn extend(self: *Page) u32 {
        const left = self.reserved - self.capacity;
        if (left == 0) return 0;
        const want = @max(1, extend_bytes_max / self.block_size);
        const count: u32 = @intCast(@min(left, want));
        const first = self.start + @as(usize, self.capacity) * self.block_size;
        var i: u32 = count;
        var head = self.free;
        const checked = self.flags & flag_checked != 0;
        while (i > 0) {
            i -= 1;
            const block: *Block = @ptrFromInt(first + @as(usize, i) * self.block_size);
            block.next = head;
            // check mode: a fresh block must not look freed (stale bytes of an earlier page)
            if (checked) @as(*[2]usize, @ptrCast(block))[1] = 0;
            head = block;
        }
        self.free = head;
        self.capacity += count;
        return count;
    }

    pub fn hasFree(self: *const Page) bool {
        return self.free != null or self.capacity < self.reserved;
    }
};

/// Heap corruption the allocator cannot recover from: say so and abort.
noinline fn corrupted(what: []const u8) noreturn {
    os.writeStderr("hakmem: heap corruption: ");
    os.writeStderr(what);
    os.writeStderr("; run with HAKMEM_CHECK=1 to find the culprit\n");
    std.c.abort();
}

/// The page every bin points at before it has one: no free blocks, so the fast path
/// falls through to the slow path without a null check.
pub var empty_page: Page = .{};

test "carve, pop, push, collect" {
    var memory: [size_class.slice_size]u8 align(16) = undefined;
    var page: Page = .{};
    const bin = size_class.tinyBin(48);
    page.init(bin, @intFromPtr(&memory), 1);
    try std.testing.expectEqual(@as(u32, size_class.slice_size / 48), page.reserved);
    try std.testing.expect(page.pop() == null);
    try std.testing.expect(page.extend() > 0);
    const a = page.pop().?;
    const b = page.pop().?;
    try std.testing.expectEqual(@intFromPtr(a) + 48, @intFromPtr(b));
    try std.testing.expect(page.isBlockStart(@intFromPtr(b)));
    try std.testing.expect(!page.isBlockStart(@intFromPtr(b) + 16));
    try std.testing.expectEqual(@as(?usize, @intFromPtr(b)), page.blockContaining(@intFromPtr(b) + 47));
    try std.testing.expect(!page.pushLocalChain(a, a, 1));
    page.pushRemote(b);
    try std.testing.expectEqual(@as(u32, 1), page.used);
    try std.testing.expectEqual(@as(u32, 1), page.collect());
    try std.testing.expectEqual(@as(u32, 0), page.used);
    var n: u32 = 0;
    while (page.pop() != null) n += 1;
    try std.testing.expectEqual(page.capacity, n);
}
