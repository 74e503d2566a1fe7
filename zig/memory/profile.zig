//! profile.zig — the sampled heap profiler (HAKMEM_PROFILE=path): which call stacks hold
//! the live bytes, and which allocated the most, written in the pprof format (profile.proto,
//! hand-encoded, not compressed) at exit and on hak_profile_dump().
//!
//!   sampling: one byte countdown for the process, charged at batch points only —
//!     a thread cache refill (heap.allocSlow: the blocks the refill moved; the block it
//!     returns, for the malloc that caused it, is the sampled one), a block taken straight
//!     off a page (bins without a cache), a large allocation (its size). The countdown is
//!     reset with exponential gaps of mean HAKMEM_PROFILE_SAMPLE_KB (512 KiB), so each
//!     crossing stands for the mean in bytes: the estimate is unbiased over the bytes the
//!     batch points see. (Blocks a thread frees and allocates again from its cache without a
//!     refill are not charged again: "allocated" counts memory taken from pages and mappings.)
//!   the stack: glibc's backtrace() (the unwinder, .eh_frame: works without frame pointers),
//!     at most depth_max frames, a few microseconds a sample (~1 per 512 KiB allocated).
//!     It may call malloc itself (its first call loads libgcc_s): a sample taken while
//!     another is unwinding gets no stack ("unknown"), so nothing recurses.
//!   a sampled block's free: its page gets flag_sampled, a slow flag (page.zig), so every
//!     free of that page takes the slow path, which asks here (slow.free); large frees ask
//!     always (when profiling). Malloc's and free's fast paths are unchanged.
//!
//!   stacks[]: hash-consed call stacks ─ alloc_bytes, alloc_count, live_bytes, live_count
//!   live{}:   open addressing by block address ─> (stack, bytes, count) of a live sample
//!   both mapped at start (os.map), guarded by `lock` (never held across backtrace()).
const std = @import("std");
const os = @import("../base/os.zig");
const config = @import("../settings/config.zig");
const Lock = @import("../base/lock.zig").Lock;
const page_mod = @import("page.zig");
const Page = page_mod.Page;
const Block = page_mod.Block;

pub const depth_max = 32;
const stacks_max = 4096;
const live_max = 1 << 16;
const empty: usize = 0;
const tombstone: usize = 1;

const Stack = struct {
    hash: u64,
    depth: u32,
    frames: [depth_max]usize,
    alloc_bytes: u64,
    alloc_count: u64,
    live_bytes: u64,
    live_count: u64,
};

const Live = struct { addr: usize, stack: u32, bytes: u64, count: u64, page: usize };
/// Pages with live sampled blocks: how many (open addressing by the page's descriptor).
const PageCount = struct { page: usize, count: u64 };
const pages_max = 1 << 14;

comptime {
    // the tables probe with a mask of their size; slotOf hashes into live_max
    std.debug.assert(std.math.isPowerOfTwo(live_max));
    std.debug.assert(std.math.isPowerOfTwo(pages_max));
    std.debug.assert(stacks_max <= std.math.maxInt(u32)); // Live.stack is a u32
}

/// HAKMEM_PROFILE is set: written once, at init.
pub var enabled: bool = false;
var mean_gap_bytes: u64 = 512 << 10;
var countdown: std.atomic.Value(i64) = .init(0);
var lock: Lock = .{};
var unwinding: std.atomic.Value(bool) = .init(false);
var rng_state: u64 = 0x9E3779B97F4A7C15;
var stacks: []Stack = &.{};
var stack_count: usize = 1; // stacks[0]: "unknown" (no stack could be taken)
var live: []Live = &.{};
var live_used: usize = 0; // entries not empty (live or tombstones)
var pages: []PageCount = &.{};
/// Samples dropped because a table was full.
pub var dropped: u64 = 0;

extern "c" fn backtrace(buffer: [*]?*anyopaque, size: c_int) c_int;

/// Process init, after the settings: maps the tables when HAKMEM_PROFILE is set.
pub fn init() void {
    if (config.profilePath() == null) return;
    const stack_bytes = std.mem.alignForward(usize, stacks_max * @sizeOf(Stack), os.page_size);
    const live_bytes = std.mem.alignForward(usize, live_max * @sizeOf(Live), os.page_size);
    const page_bytes = std.mem.alignForward(usize, pages_max * @sizeOf(PageCount), os.page_size);
    const s = os.map(stack_bytes) orelse return;
    const l = os.map(live_bytes) orelse return os.unmap(s, stack_bytes);
    const pc = os.map(page_bytes) orelse {
        os.unmap(s, stack_bytes);
        return os.unmap(l, live_bytes);
    };
    pages = @as([*]PageCount, @ptrCast(@alignCast(pc)))[0..pages_max];
    stacks = @as([*]Stack, @ptrCast(@alignCast(s)))[0..stacks_max];
    live = @as([*]Live, @ptrCast(@alignCast(l)))[0..live_max];
    mean_gap_bytes = config.profile_sample_bytes;
    rng_state ^= os.nowMs() *% 0x2545F4914F6CDD1D;
    countdown.store(@intCast(nextGap()), .monotonic);
    enabled = true;
    std.debug.assert(stacks.len == stacks_max); // profiling on: every table mapped
    std.debug.assert(live.len == live_max); // (find, freeSlot and slotOf hash into live_max)
}

/// An exponential gap of mean mean_gap_bytes (at least 1). Under `lock` or at init.
fn nextGap() u64 {
    std.debug.assert(mean_gap_bytes > 0); // HAKMEM_PROFILE_SAMPLE_KB is 1 or more
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    const r = rng_state *% 0x2545F4914F6CDD1D;
    const u = (@as(f64, @floatFromInt(r >> 11)) + 0.5) / 9007199254740992.0; // (0, 1)
    std.debug.assert(u > 0); // (the half keeps it off 0 and 1: ln is finite, the gap positive)
    std.debug.assert(u < 1);
    const gap = -ln(u) * @as(f64, @floatFromInt(mean_gap_bytes));
    return @max(1, @as(u64, @intFromFloat(@min(gap, 1e15))));
}

/// The natural logarithm of a normal, positive `x`, to about 1e-9 (plenty for a sampling
/// gap). Not @log: that is libm's `log`, and libm (320 KiB of RSS in every process that
/// preloads hakmem, for this one call) then becomes a dependency of the library.
fn ln(x: f64) f64 {
    std.debug.assert(x > 0);
    std.debug.assert(std.math.isNormal(x)); // (a subnormal's exponent bits say nothing)
    const bits: u64 = @bitCast(x);
    const exponent: i64 = @as(i64, @intCast(bits >> 52)) - 1023;
    const mantissa: f64 = @bitCast((bits & ((1 << 52) - 1)) | (1023 << 52)); // [1, 2)
    // ln m = 2 atanh(s), s = (m - 1) / (m + 1) in [0, 1/3): an odd series in s²
    const s = (mantissa - 1) / (mantissa + 1);
    const s2 = s * s;
    var term = s;
    var sum: f64 = 0;
    var k: f64 = 1;
    while (k < 24) : (k += 2) {
        sum += term / k;
        term *= s2;
    }
    const result = @as(f64, @floatFromInt(exponent)) * std.math.ln2 + 2 * sum;
    // the sign of a logarithm (the series falls short of ln m < ln 2, never past it)
    std.debug.assert(x < 1 or result >= 0);
    std.debug.assert(x >= 1 or result < 0);
    return result;
}

test "ln agrees with the libm logarithm over (0, 1]" {
    var u: f64 = 1e-300;
    while (u <= 1) : (u *= 1.37) {
        try std.testing.expectApproxEqRel(@log(u), ln(u), 1e-9);
    }
    try std.testing.expectApproxEqAbs(@as(f64, 0), ln(1), 1e-15);
}

/// `bytes` were allocated at a batch point: how many bytes the sample stands for (0: none).
fn charge(bytes: u64) u64 {
    const b: i64 = @intCast(@min(bytes, 1 << 50));
    const before = countdown.fetchSub(b, .monotonic);
    if (before <= 0 or before - b > 0) return 0; // not crossed (or another thread is resetting)
    lock.acquire();
    defer lock.release();
    var add: i64 = 0;
    var crossings: u64 = 0;
    while (before - b + add <= 0) : (crossings += 1) add += @intCast(nextGap());
    std.debug.assert(crossings >= 1); // before > 0 >= before - b: crossed once at least
    std.debug.assert(before - b + add > 0); // the countdown is positive again after this charge
    _ = countdown.fetchAdd(add, .monotonic);
    return crossings * mean_gap_bytes;
}

// ---------------------------------------------------------------- the hooks

/// heap.allocSlow, after a thread cache refill: `blk` (handed out now) and `cached` more
/// blocks of `page` were taken off it. Returns `blk`.
pub inline fn refilled(blk: *Block, page: *Page, cached: u32) *Block {
    if (enabled) sampleRefill(blk, page, cached);
    return blk;
}

/// (the page's owner) A page whose sampled blocks were all freed loses its slow flag here,
/// at a refill from it (only the owner writes a page's flags).
noinline fn sampleRefill(blk: *Block, page: *Page, cached: u32) void {
    std.debug.assert(enabled);
    std.debug.assert(page.block_size > 0);
    if (page.flags & page_mod.flag_sampled != 0 and !pageHasSamples(page)) page.clearFlags(page_mod.flag_sampled);
    const weight = charge((@as(u64, cached) + 1) * page.block_size);
    if (weight == 0) return;
    if (page.flags & page_mod.flag_sampled == 0) page.setFlags(page_mod.flag_sampled);
    record(@intFromPtr(blk), page, page.block_size, weight);
}

fn pageHasSamples(page: *const Page) bool {
    std.debug.assert(enabled); // (a page gets flag_sampled only when profiling)
    std.debug.assert(pages.len == pages_max);
    lock.acquire();
    defer lock.release();
    return pageSlot(@intFromPtr(page), false) != null;
}

/// (lock held) The slot counting `page`'s live samples; with `add`, made if missing.
/// Deleted entries are tombstones (page 1). Bounded by the table's size.
fn pageSlot(page: usize, add: bool) ?*PageCount {
    std.debug.assert(lock.isHeld());
    std.debug.assert(page != empty); // a page's address: never a marker
    std.debug.assert(page != tombstone);
    std.debug.assert(std.math.isPowerOfTwo(pages.len)); // probed with a mask
    var i = slotOf(page) & (pages.len - 1);
    var free_slot: ?*PageCount = null;
    for (0..pages.len) |_| {
        const e = &pages[i];
        if (e.page == page) return e;
        if (e.page == tombstone and free_slot == null) free_slot = e;
        if (e.page == empty) {
            if (!add) return null;
            const slot = free_slot orelse e;
            slot.* = .{ .page = page, .count = 0 };
            return slot;
        }
        i = (i + 1) & (pages.len - 1);
    }
    if (!add) return null;
    const slot = free_slot orelse return null;
    slot.* = .{ .page = page, .count = 0 };
    return slot;
}

/// slow.mallocLarge: a large block of `size` bytes at `ptr`.
pub noinline fn sampleLarge(ptr: *anyopaque, size: usize) void {
    std.debug.assert(enabled); // (slow.zig asks only when profiling)
    const weight = charge(size);
    if (weight != 0) record(@intFromPtr(ptr), null, @max(size, 1), weight);
}

/// slow.free: a block of a page with flag_sampled, or a large block, is being freed.
pub noinline fn freed(addr: usize) void {
    if (!enabled) return;
    std.debug.assert(addr != empty); // a block's address: never a marker
    std.debug.assert(addr != tombstone);
    lock.acquire();
    defer lock.release();
    const slot = find(addr) orelse return;
    std.debug.assert(live[slot].addr == addr);
    forget(&live[slot]);
}

/// (lock held) A live sample is gone: its stack's and its page's counts drop.
fn forget(e: *Live) void {
    std.debug.assert(lock.isHeld());
    std.debug.assert(e.addr != empty); // a live sample's entry
    std.debug.assert(e.addr != tombstone);
    std.debug.assert(e.stack < stack_count);
    const s = &stacks[e.stack];
    s.live_bytes -|= e.bytes;
    s.live_count -|= e.count;
    if (e.page != 0) {
        if (pageSlot(e.page, false)) |pc| {
            pc.count -|= 1;
            if (pc.count == 0) pc.page = tombstone;
        }
    }
    e.addr = tombstone;
}

fn record(addr: usize, page: ?*Page, block_bytes: u64, weight: u64) void {
    std.debug.assert(block_bytes > 0); // the weight is counted in blocks of it
    std.debug.assert(weight > 0); // (charge crossed: a sample stands for a gap's bytes)
    var frames: [depth_max + 4]?*anyopaque = undefined;
    var depth: usize = 0;
    if (!unwinding.swap(true, .acquire)) {
        depth = @intCast(@max(0, backtrace(&frames, frames.len)));
        unwinding.store(false, .release);
    }
    const count = @max(1, weight / block_bytes);
    lock.acquire();
    defer lock.release();
    // frames[0] is record itself: skipped (the writer drops hakmem's other frames)
    const kept = if (depth > 1) frames[1..depth] else frames[0..0];
    const stack = internStack(kept[0..@min(kept.len, depth_max)]);
    std.debug.assert(stack < stack_count); // (0: unknown, always there)
    const s = &stacks[stack];
    s.alloc_bytes += weight;
    s.alloc_count += count;
    if (live_used * 4 >= live.len * 3) rehashLive();
    const slot = find(addr) orelse freeSlot(addr) orelse {
        dropped += 1;
        return;
    };
    const e = &live[slot];
    std.debug.assert(e.addr == addr or e.addr == empty or e.addr == tombstone); // its own entry, or a free one
    if (e.addr == addr) { // sampled again before its free was seen (a large block's address reused)
        forget(e);
    } else if (e.addr == empty) live_used += 1;
    const page_addr = if (page) |p| @intFromPtr(p) else 0;
    if (page_addr != 0) {
        const pc = pageSlot(page_addr, true) orelse {
            dropped += 1;
            return;
        };
        pc.count += 1;
    }
    e.* = .{ .addr = addr, .stack = @intCast(stack), .bytes = weight, .count = count, .page = page_addr };
    s.live_bytes += weight;
    s.live_count += count;
    std.debug.assert(s.live_bytes <= s.alloc_bytes); // (live samples are samples allocated)
    std.debug.assert(live_used <= live.len); // (entries not empty: live ones and tombstones)
}

fn hashFrames(frames: []const ?*anyopaque) u64 {
    std.debug.assert(frames.len > 0); // (no frames: stack 0, without a hash)
    var h: u64 = 0xcbf29ce484222325;
    for (frames) |f| h = (h ^ @intFromPtr(f)) *% 0x100000001b3;
    return h | 1;
}

/// (lock held) The index of the stack with these frames, added if new (0 when full).
fn internStack(frames: []const ?*anyopaque) usize {
    std.debug.assert(lock.isHeld());
    std.debug.assert(frames.len <= depth_max); // what a Stack holds
    if (frames.len == 0) return 0;
    const h = hashFrames(frames);
    for (1..stack_count) |i| {
        const s = &stacks[i];
        if (s.hash != h or s.depth != frames.len) continue;
        if (std.mem.eql(usize, s.frames[0..s.depth], @as([*]const usize, @ptrCast(frames.ptr))[0..frames.len])) return i;
    }
    if (stack_count == stacks.len) return 0;
    const s = &stacks[stack_count];
    s.* = .{ .hash = h, .depth = @intCast(frames.len), .frames = undefined, .alloc_bytes = 0, .alloc_count = 0, .live_bytes = 0, .live_count = 0 };
    for (frames, 0..) |f, i| s.frames[i] = @intFromPtr(f);
    stack_count += 1;
    std.debug.assert(stack_count <= stacks.len);
    std.debug.assert(s.depth == frames.len);
    return stack_count - 1;
}

fn slotOf(addr: usize) usize {
    const slot: usize = @intCast(((addr >> 4) *% 0x9E3779B97F4A7C15) >> (64 - @ctz(@as(u64, live_max))));
    std.debug.assert(slot < live_max); // the top log2(live_max) bits
    return slot;
}

/// (lock held) The slot of a live sample at `addr`. Bounded by the table's size.
fn find(addr: usize) ?usize {
    std.debug.assert(live.len == live_max); // slotOf hashes into live_max slots
    var i = slotOf(addr);
    for (0..live.len) |_| {
        const a = live[i].addr;
        if (a == addr) return i;
        if (a == empty) return null;
        i = (i + 1) & (live.len - 1);
    }
    return null;
}

/// (lock held) An empty or tombstone slot for `addr`.
fn freeSlot(addr: usize) ?usize {
    std.debug.assert(live.len == live_max);
    std.debug.assert(lock.isHeld()); // (record and rehashLive write the slot it finds)
    var i = slotOf(addr);
    for (0..live.len) |_| {
        if (live[i].addr == empty or live[i].addr == tombstone) return i;
        i = (i + 1) & (live.len - 1);
    }
    return null;
}

/// (lock held) Drops the tombstones: rebuilds the table in place, entries re-inserted
/// one by one (bounded: each entry moves at most once per pass, two passes).
fn rehashLive() void {
    std.debug.assert(lock.isHeld());
    var n: usize = 0;
    for (live) |*e| {
        if (e.addr == tombstone) e.addr = empty;
        if (e.addr != empty) n += 1;
    }
    // re-insert entries that sit behind an empty slot of their probe sequence
    for (0..2) |_| {
        for (live, 0..) |e, i| {
            if (e.addr == empty) continue;
            if (find(e.addr) == i) continue;
            live[i].addr = empty;
            live[freeSlot(e.addr).?] = e;
        }
    }
    std.debug.assert(n < live.len); // (record rehashes at 3/4 used: an empty slot ends probes)
    std.debug.assert(n <= live_used); // tombstones dropped, no entry added
    live_used = n;
}

/// fork: no sample may be half-recorded in the child (process.zig takes this last).
pub fn lockForFork() void {
    lock.acquire();
    std.debug.assert(lock.isHeld()); // no sample half-recorded across the fork
}

pub fn unlockAfterFork() void {
    lock.release();
}

pub fn resetLockInChild() void {
    lock.resetInChild();
    unwinding.store(false, .monotonic);
    std.debug.assert(!lock.isHeld()); // the child's first sample finds both free
}

// ---------------------------------------------------------------- the pprof file

pub const DumpError = error{ Off, CannotWrite };

/// Writes the profile to `path` (null: HAKMEM_PROFILE, `%p` the process id).
pub fn dump(path: ?[*:0]const u8) DumpError!void {
    if (!enabled) return error.Off;
    var name_buf: [600:0]u8 = undefined;
    const name = path orelse (expandPid(config.profilePath().?, &name_buf) orelse return error.CannotWrite);
    const flags: std.os.linux.O = .{ .ACCMODE = .WRONLY, .CREAT = true, .TRUNC = true, .CLOEXEC = true };
    const rc = std.os.linux.open(name, flags, 0o644);
    if (std.os.linux.E.init(rc) != .SUCCESS) return error.CannotWrite;
    const fd: i32 = @intCast(rc);
    defer _ = std.os.linux.close(fd);
    lock.acquire();
    defer lock.release();
    std.debug.assert(stack_count >= 1); // stack 0 ("unknown") is always there
    std.debug.assert(stack_count <= stacks.len);
    @import("../base/pprof.zig").write(fd, .{
        .stacks_frames = stacksView(),
        .period_bytes = mean_gap_bytes,
        .own_address = @intFromPtr(&dump),
    }) catch return error.CannotWrite;
}

/// What the writer sees of a stack.
pub const StackView = struct {
    frames: []const usize,
    alloc_count: u64,
    alloc_bytes: u64,
    live_count: u64,
    live_bytes: u64,
};

const StacksIterator = struct {
    i: usize = 0,
    pub fn next(self: *StacksIterator) ?StackView {
        while (self.i < stack_count) {
            const s = &stacks[self.i];
            self.i += 1;
            std.debug.assert(s.depth <= depth_max);
            if (s.alloc_bytes == 0) continue;
            std.debug.assert(s.live_bytes <= s.alloc_bytes); // live samples are samples allocated
            return .{ .frames = s.frames[0..s.depth], .alloc_count = s.alloc_count, .alloc_bytes = s.alloc_bytes, .live_count = s.live_count, .live_bytes = s.live_bytes };
        }
        return null;
    }
};

fn stacksView() StacksIterator {
    return .{};
}

fn expandPid(template: []const u8, out: *[600:0]u8) ?[*:0]const u8 {
    std.debug.assert(template.len > 0); // HAKMEM_PROFILE: a path
    var w: std.Io.Writer = .fixed(out[0 .. out.len - 1]);
    var rest = template;
    while (std.mem.indexOf(u8, rest, "%p")) |at| {
        w.writeAll(rest[0..at]) catch return null;
        w.print("{d}", .{std.os.linux.getpid()}) catch return null;
        rest = rest[at + 2 ..];
    }
    w.writeAll(rest) catch return null;
    const n = w.buffered().len;
    std.debug.assert(n < out.len); // the writer stopped a byte short: room for the NUL
    out[n] = 0;
    return out[0..n :0].ptr;
}

/// At exit: the profile goes to HAKMEM_PROFILE (a failure is reported on stderr).
pub fn writeAtExit() void {
    if (!enabled) return;
    std.debug.assert(config.profilePath() != null); // on: HAKMEM_PROFILE named the file
    dump(null) catch os.printStderr("hakmem: cannot write the heap profile to {s}\n", .{config.profilePath().?});
}

// ---------------------------------------------------------------- tests

/// Tests: tables in the test allocator's memory, every charge a sample.
fn testTables() !void {
    stacks = try std.testing.allocator.alloc(Stack, stacks_max);
    live = try std.testing.allocator.alloc(Live, live_max);
    pages = try std.testing.allocator.alloc(PageCount, pages_max);
    @memset(std.mem.sliceAsBytes(live), 0);
    @memset(std.mem.sliceAsBytes(pages), 0);
    stack_count = 1;
    live_used = 0;
    mean_gap_bytes = 1;
    countdown.store(1, .monotonic);
    enabled = true;
}

fn dropTestTables() void {
    enabled = false;
    std.testing.allocator.free(stacks);
    std.testing.allocator.free(live);
    std.testing.allocator.free(pages);
    stacks = &.{};
    live = &.{};
    pages = &.{};
    mean_gap_bytes = 512 << 10;
}

test "a sampled page's frees take the slow path until its samples are freed, then the fast path again" {
    try testTables();
    defer dropTestTables();
    var page: Page = .{ .flags = 0, .slice_count = 1, .block_size = 64, .div_magic = 1 };
    var blocks: [2]Block = undefined;
    _ = refilled(&blocks[0], &page, 3); // a refill of 4 blocks: sampled (every byte is a sample here)
    _ = refilled(&blocks[1], &page, 0);
    try std.testing.expect(page.flags & page_mod.flag_sampled != 0);
    try std.testing.expectEqual(@as(u64, 0), page.fast_magic); // free's fast test fails: slow path
    try std.testing.expect(find(@intFromPtr(&blocks[0])) != null and find(@intFromPtr(&blocks[1])) != null);
    try std.testing.expect(stacks[liveStackOf(@intFromPtr(&blocks[0]))].live_bytes > 0);
    freed(@intFromPtr(&blocks[0]));
    try std.testing.expect(pageHasSamples(&page));
    freed(@intFromPtr(&blocks[1]));
    try std.testing.expect(!pageHasSamples(&page));
    countdown.store(1 << 40, .monotonic); // the next refill is not sampled: it clears the flag
    _ = refilled(&blocks[0], &page, 0);
    try std.testing.expectEqual(@as(u8, 0), page.flags & page_mod.flag_sampled);
    try std.testing.expect(page.fast_magic != 0);
}

fn liveStackOf(addr: usize) usize {
    return live[find(addr).?].stack;
}

test "exponential gaps average the mean" {
    const saved = mean_gap_bytes;
    defer mean_gap_bytes = saved;
    mean_gap_bytes = 1000;
    var sum: u64 = 0;
    for (0..20000) |_| sum += nextGap();
    const mean = sum / 20000;
    try std.testing.expect(mean > 950 and mean < 1050);
}
