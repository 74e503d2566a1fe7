//! guard.zig — guarded sampling (GWP-ASan style, on by default) and the fault handler
//! that reports an access to a guarded or protected block.
//!
//! About one allocation in every HAKMEM_GUARD_SAMPLE_MB MiB allocated in blocks a slot
//! can hold (max_size; bigger blocks and large ones are not charged: 0 turns sampling off) is
//! placed in a slot of a small pool of its own, against a guard page, and freed into a
//! protected slot:
//!
//!   pool (reserved once, PROT_NONE except a live block's pages)
//!   | guard | slot 0: data pages  | guard | slot 1: data pages  | guard | … | guard |
//!                      [slack][block]                 (freed: all PROT_NONE)
//!                             ^ user: the block ends at the guard (16-byte rounded)
//!
//! An access past the end of a sampled block hits the guard page after it; any access to a
//! freed sampled block hits its protected pages (a slot is reused as late as possible:
//! round robin). Both fault; the SIGSEGV handler (installed when the first sample is
//! made) writes one line naming the block, its size, the offset and the cause, then the
//! fault goes on to the handler that was there before (the default one: the process dies
//! of SIGSEGV, as it would have). A write below a sampled block's start, into its slack,
//! is found at free (the slack's pattern changed) and reported as an underflow.
//!
//! Cost: nothing on malloc's or free's fast path. The sampling decision is made per batch:
//! slow.zig charges each refill's bytes (blocks brought into a thread cache) to a
//! per-thread countdown (`charge`); when it runs out, the next slow-path
//! malloc that fits a slot returns a sampled block (`take`). A sampled block is outside
//! every segment (segment_map: none), so free's fast test fails and slow.free finds it here
//! (`owns`) before it looks at the large tier. A sample counts in the statistics as an
//! allocation and a free (remote or not) of the bin it would have come from (slow.zig).
//!
//! Check mode does not sample (it checks every block); it uses the fault handler for its
//! protected quarantine of large blocks (`fault_hook`).
const std = @import("std");
const os = @import("../base/os.zig");
const config = @import("../settings/config.zig");
const misuse = @import("../settings/misuse.zig");
const Lock = @import("../base/lock.zig").Lock;

pub const slot_count = 32;
/// Largest request a slot holds.
pub const max_size: usize = 4 * os.page_size;
const slot_data = max_size;
const slot_stride = slot_data + os.page_size; // data pages, then a guard page
const pool_bytes = os.page_size + slot_count * slot_stride;
const slack_byte: u8 = 0xAB;

const State = enum(u8) { never, live, freed };

const Slot = struct {
    state: State = .never,
    user: usize = 0,
    size: usize = 0,
    alloc_tid: i32 = 0,
    free_tid: i32 = 0,
    /// the bin the block would have come from (its statistics are that bin's)
    bin: u8 = 0,
};

var lock: Lock = .{};
/// The pool's first byte (0 until the first sample): read without the lock by `owns`.
var pool_base = std.atomic.Value(usize).init(0);
var slots: [slot_count]Slot = [_]Slot{.{}} ** slot_count;
var next_slot: usize = 0;
var pool_failed = false;

/// Samples taken, and faults reported (stats for tests and reports).
pub var samples = std.atomic.Value(u64).init(0);

/// Bytes allocated on this thread until the next sample (per thread, no atomics).
threadlocal var countdown_bytes: isize = 0;
threadlocal var countdown_armed: bool = false;

fn sampleBytes() usize {
    std.debug.assert(config.guard_sample_mb != 0); // (0 is off: nothing samples, nothing asks)
    std.debug.assert(config.guard_sample_mb <= 1 << 20); // (config.zig's limit: the shift cannot overflow)
    return config.guard_sample_mb << 20;
}

pub inline fn enabled() bool {
    return config.guard_sample_mb != 0 and config.check_mode == .off;
}

/// slow.zig: `bytes` more were allocated on this thread (a refill's blocks).
pub fn charge(bytes: usize) void {
    std.debug.assert(config.guard_sample_mb != 0); // (slow.zig charges only when sampling: enabled)
    if (!countdown_armed) {
        countdown_armed = true;
        countdown_bytes = @intCast(firstCountdown());
    }
    countdown_bytes -= @intCast(@min(bytes, std.math.maxInt(isize) / 2));
    std.debug.assert(countdown_armed); // the thread's countdown runs from its first charge on
}

/// The first countdown of a thread: a random share of the interval, so that threads and
/// runs do not all sample their n-th allocation.
fn firstCountdown() usize {
    var r: [8]u8 = undefined;
    const rc = std.os.linux.getrandom(&r, r.len, 1);
    const x = if (std.os.linux.E.init(rc) == .SUCCESS and rc == r.len) std.mem.readInt(u64, &r, .little) else @intFromPtr(&r);
    const first = sampleBytes() / 2 + @as(usize, @intCast(x % (sampleBytes() / 2 + 1)));
    std.debug.assert(first >= sampleBytes() / 2); // half the interval at least,
    std.debug.assert(first <= sampleBytes()); // the whole one at most
    return first;
}

/// True when this slow-path malloc of `size` bytes is to be sampled.
pub inline fn due(size: usize) bool {
    return countdown_armed and countdown_bytes <= 0 and size <= max_size and enabled();
}

/// A sampled block of `size` bytes (the caller passes its bin's block size, so a sample's
/// usable size is what the block's would be; 16-aligned), or null (pool full or unavailable: the
/// caller allocates as usual; the countdown starts again either way).
pub fn take(size: usize, bin: usize) ?*anyopaque {
    std.debug.assert(size <= max_size); // (due checked it)
    std.debug.assert(bin <= std.math.maxInt(u8)); // a Slot keeps it in a byte
    countdown_bytes = @intCast(sampleBytes());
    lock.acquire();
    defer lock.release();
    const base = poolBase() orelse return null;
    std.debug.assert(next_slot < slot_count);
    var k: usize = 0;
    while (k < slot_count) : (k += 1) {
        const i = (next_slot + k) % slot_count;
        if (slots[i].state == .live) continue;
        next_slot = (i + 1) % slot_count;
        return place(base, i, size, bin);
    }
    std.debug.assert(k == slot_count); // every slot looked at: all live (the pool is full)
    return null;
}

fn dataStart(base: usize, i: usize) usize {
    std.debug.assert(i < slot_count);
    std.debug.assert(base % os.page_size == 0); // so a slot's data and guard are whole pages
    const start = base + os.page_size + i * slot_stride;
    std.debug.assert(start % os.page_size == 0);
    std.debug.assert(start + slot_data + os.page_size <= base + pool_bytes); // a guard page after every slot's data
    return start;
}

fn place(base: usize, i: usize, size: usize, bin: usize) ?*anyopaque {
    std.debug.assert(lock.isHeld());
    std.debug.assert(slots[i].state != .live); // (take picked a slot not in use)
    const data = dataStart(base, i);
    const end = data + slot_data;
    const user = end - std.mem.alignForward(usize, @max(size, 1), 16);
    std.debug.assert(user >= data); // size <= max_size: the block fits its slot
    std.debug.assert(user % 16 == 0); // malloc's alignment
    const first_page = std.mem.alignBackward(usize, user, os.page_size);
    if (!os.commit(@ptrFromInt(first_page), end - first_page)) return null;
    @memset(@as([*]u8, @ptrFromInt(first_page))[0 .. user - first_page], slack_byte);
    @memset(@as([*]u8, @ptrFromInt(user + size))[0 .. end - (user + size)], slack_byte);
    slots[i] = .{ .state = .live, .user = user, .size = size, .alloc_tid = std.os.linux.gettid(), .bin = @intCast(bin) };
    _ = samples.fetchAdd(1, .monotonic);
    installHandler();
    std.debug.assert(slots[i].state == .live);
    std.debug.assert(user + std.mem.alignForward(usize, @max(size, 1), 16) == end); // the block ends at the guard page
    return @ptrFromInt(user);
}

fn poolBase() ?usize {
    std.debug.assert(lock.isHeld()); // one thread reserves the pool
    const b = pool_base.load(.monotonic);
    if (b != 0) return b;
    if (pool_failed) return null;
    const mem = os.reserveAligned(pool_bytes, os.page_size) orelse {
        pool_failed = true;
        return null;
    };
    pool_base.store(@intFromPtr(mem), .release);
    std.debug.assert(@intFromPtr(mem) % os.page_size == 0); // (dataStart: whole pages)
    return @intFromPtr(mem);
}

/// True when `addr` is inside the pool (any thread, no lock).
pub inline fn owns(addr: usize) bool {
    const b = pool_base.load(.acquire);
    return b != 0 and addr >= b and addr < b + pool_bytes;
}

/// ok: the block's bin, and whether another thread than its allocator freed it.
pub const FreeResult = union(enum) { ok: struct { bin: u8, remote: bool }, double_free, invalid };

/// Frees a sampled block: its pages become inaccessible. A second free is a double free; a
/// pointer into the pool that is no live block's start is invalid. A write into the slack
/// before or after the block (within its pages) is reported here.
pub fn free(addr: usize) FreeResult {
    lock.acquire();
    defer lock.release();
    const i = slotOf(addr) orelse return .invalid;
    const s = &slots[i];
    if (s.state == .freed and s.user == addr) return .double_free;
    if (s.state != .live or s.user != addr) return .invalid;
    std.debug.assert(s.user % 16 == 0);
    std.debug.assert(pool_base.raw != 0); // a slot is live: the pool exists
    checkSlack(s.*, dataStart(pool_base.raw, i));
    const first_page = std.mem.alignBackward(usize, s.user, os.page_size);
    os.protect(@ptrFromInt(first_page), dataStart(pool_base.raw, i) + slot_data - first_page);
    s.state = .freed;
    s.free_tid = std.os.linux.gettid();
    std.debug.assert(s.state == .freed); // a second free of it is a double free
    return .{ .ok = .{ .bin = s.bin, .remote = s.free_tid != s.alloc_tid } };
}

fn byteAt(addr: usize) u8 {
    std.debug.assert(owns(addr)); // a slack byte: in a slot's data pages
    return @as(*const u8, @ptrFromInt(addr)).*;
}

fn checkSlack(s: Slot, data: usize) void {
    std.debug.assert(s.state == .live);
    std.debug.assert(s.user >= data); // the slack lies in the slot's data pages
    std.debug.assert(s.user + s.size <= data + slot_data);
    const first_page = std.mem.alignBackward(usize, s.user, os.page_size);
    var a = first_page;
    while (a < s.user and byteAt(a) == slack_byte) a += 1;
    if (a < s.user) {
        const n = s.user - a;
        os.printStderr("hakmem: guarded sample: underflow: {d} byte{s} before the {d}-byte block 0x{x} were written (found at free, thread {d})\n", .{ n, if (n == 1) "" else "s", s.size, s.user, std.os.linux.gettid() });
        std.c.abort();
    }
    a = data + slot_data;
    while (a > s.user + s.size and byteAt(a - 1) == slack_byte) a -= 1;
    if (a > s.user + s.size) {
        const n = a - (s.user + s.size);
        os.printStderr("hakmem: guarded sample: overflow: {d} byte{s} past the end of the {d}-byte block 0x{x} were written (found at free, thread {d})\n", .{ n, if (n == 1) "" else "s", s.size, s.user, std.os.linux.gettid() });
        std.c.abort();
    }
}

fn slotOf(addr: usize) ?usize {
    const b = pool_base.load(.acquire);
    if (!owns(addr) or addr < b + os.page_size) return null;
    const i = (addr - b - os.page_size) / slot_stride;
    if (i >= slot_count) return null;
    std.debug.assert(addr >= dataStart(b, i)); // (i rounds down: the slot starts at or before addr)
    if (addr - dataStart(b, i) >= slot_data) return null; // its guard page
    return i;
}

/// The usable size of a live sampled block at `addr`, or null.
pub fn usableSize(addr: usize) ?usize {
    lock.acquire();
    defer lock.release();
    const i = slotOf(addr) orelse return null;
    const size = if (slots[i].state == .live and slots[i].user == addr) slots[i].size else return null;
    std.debug.assert(size <= max_size); // (take placed no larger block)
    return size;
}

/// A live sampled block's start (hak_sampled).
pub fn isSample(addr: usize) bool {
    return usableSize(addr) != null;
}

// ---------------------------------------------------------------- the fault handler

/// Check mode's part of the handler: true when it reported the fault at `addr`.
pub var fault_hook: ?*const fn (addr: usize) bool = null;

extern "c" fn sigaction(sig: c_int, noalias act: ?*const std.c.Sigaction, noalias oact: ?*std.c.Sigaction) c_int;
const SIGSEGV = 11;
const SIGBUS = 7;
var installed = std.atomic.Value(bool).init(false);
var previous_segv: std.c.Sigaction = undefined;
var previous_bus: std.c.Sigaction = undefined;

/// Installs the SIGSEGV/SIGBUS handler once (the previous handlers are kept and called for
/// every fault that is not ours, and after ours).
pub fn installHandler() void {
    if (installed.load(.acquire) or installed.swap(true, .acq_rel)) return;
    var act = std.mem.zeroes(std.c.Sigaction);
    act.handler = .{ .sigaction = onFault };
    act.flags = std.c.SA.SIGINFO | std.c.SA.ONSTACK | std.c.SA.NODEFER;
    _ = sigaction(SIGSEGV, &act, &previous_segv);
    _ = sigaction(SIGBUS, &act, &previous_bus);
    std.debug.assert(installed.load(.monotonic)); // once: every later call returns at once
}

fn onFault(sig: i32, info: *const std.c.siginfo_t, ctx: ?*anyopaque) callconv(.c) void {
    std.debug.assert(sig == SIGSEGV or sig == SIGBUS); // the two it is installed for
    const addr = @intFromPtr(info.fields.sigfault.addr);
    _ = describeFault(addr) or (if (fault_hook) |hook| hook(addr) else false);
    const prev = if (sig == SIGBUS) &previous_bus else &previous_segv;
    // Hand the fault on: the previous handler, or (default / ignored) the default action,
    // which the faulting instruction meets again when this returns.
    const raw = @intFromPtr(prev.handler.handler);
    if (raw == 0 or raw == 1) {
        var dfl = std.mem.zeroes(std.c.Sigaction);
        _ = sigaction(sig, &dfl, null);
        return;
    }
    if (prev.flags & std.c.SA.SIGINFO != 0) return prev.handler.sigaction.?(sig, info, ctx);
    prev.handler.handler.?(sig);
}

/// One line about a fault in the pool (no lock: the process is going down; the slot may be
/// mid-update only if another thread is inside take/free right now).
fn describeFault(addr: usize) bool {
    const b = pool_base.load(.acquire);
    if (!owns(addr)) return false;
    const rel = addr - b;
    const tid = std.os.linux.gettid();
    // Which slot: the one whose data or following guard page holds the address.
    const i = if (rel < os.page_size) 0 else @min((rel - os.page_size) / slot_stride, slot_count - 1);
    std.debug.assert(rel < pool_bytes); // (owns: in the pool)
    const s = slots[i];
    const in_data = addr >= dataStart(b, i) and addr < dataStart(b, i) + slot_data;
    if (s.state == .never) {
        os.printStderr("hakmem: guarded sample: an access to 0x{x}, in the guard pool but no block's (thread {d})\n", .{ addr, tid });
    } else if (s.state == .freed and in_data) {
        os.printStderr("hakmem: guarded sample: use after free: an access at offset {d} of the {d}-byte block 0x{x}, freed by thread {d} (allocated by thread {d}; this is thread {d})\n", .{ @as(isize, @intCast(addr)) - @as(isize, @intCast(s.user)), s.size, s.user, s.free_tid, s.alloc_tid, tid });
    } else if (!in_data or addr >= s.user + s.size) {
        os.printStderr("hakmem: guarded sample: overflow: an access at offset {d} of the {d}-byte block 0x{x}, past its end ({s}; allocated by thread {d}; this is thread {d})\n", .{ addr - s.user, s.size, s.user, if (s.state == .freed) "the block is freed" else "the block is live", s.alloc_tid, tid });
    } else {
        os.printStderr("hakmem: guarded sample: underflow: an access {d} byte{s} before the {d}-byte block 0x{x} (allocated by thread {d}; this is thread {d})\n", .{ s.user - addr, if (s.user - addr == 1) "" else "s", s.size, s.user, s.alloc_tid, tid });
    }
    return true;
}

// fork: the pool's lock (process.zig takes it around fork).
pub fn lockForFork() void {
    lock.acquire();
    std.debug.assert(lock.isHeld()); // held across fork: no slot is mid-update in the child
}
pub fn unlockAfterFork() void {
    lock.release();
}
pub fn resetLockInChild() void {
    lock.resetInChild();
}

test "a sampled block ends at its slot's guard page, and its free protects it" {
    const saved = config.guard_sample_mb;
    defer config.guard_sample_mb = saved;
    config.guard_sample_mb = 1;
    const p = take(100, 5) orelse return error.SkipZigTest;
    const addr = @intFromPtr(p);
    try std.testing.expect(owns(addr));
    try std.testing.expectEqual(@as(usize, 0), (addr + 112) % os.page_size);
    try std.testing.expectEqual(@as(?usize, 100), usableSize(addr));
    @memset(@as([*]u8, @ptrCast(p))[0..100], 7);
    try std.testing.expectEqual(@as(u8, 5), free(addr).ok.bin);
    try std.testing.expect(free(addr) == .double_free);
    try std.testing.expect(free(addr + 16) == .invalid);
    try std.testing.expect(usableSize(addr) == null);
}
