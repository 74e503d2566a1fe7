//! Native workload kernels for the Bun harness (src/kernels.ts): the root of their own
//! library, libhakmem_kernels.so, never part of libhakmem.so (a preloaded process sees only
//! the libc names and hak_*).
//!
//! Each kernel runs its whole loop in native code, so a benchmark measures the allocator
//! and not the FFI crossing. The kernels call hak_alloc/hak_free/hak_aligned_alloc of
//! libhakmem.so through the PLT (the library is a DT_NEEDED of this one, matched by its
//! soname to the copy the harness loaded first): one allocator per process, the one the
//! harness's hak_* calls reach. A PLT call costs a few instructions per malloc and free
//! more than a call inside libhakmem.so (which also inlined free's fast path); it is what
//! every peer's kernel pays for its malloc/free, so the comparison stays fair. Every kernel is deterministic for a given seed,
//! every loop is bounded, and nothing is printed. Kernels return the elapsed time of
//! their loop in nanoseconds (monotonic clock). Allocation failures are skipped (the
//! slot stays empty), never fatal.
//!
//! Cross-thread kernels share state through plain pointers that the caller passes
//! between threads (Bun Workers): a Larson block array (`hak_kernel_larson_*`) or a
//! bounded lock-free queue (`hak_kernel_queue_*`, `hak_kernel_produce/consume`).
const std = @import("std");
const abi = @import("../abi.zig");

extern fn hak_alloc(size: usize) ?*anyopaque;
extern fn hak_free(ptr: ?*anyopaque) c_int;
extern fn hak_aligned_alloc(alignment: usize, size: usize) ?*anyopaque;
extern fn hak_calloc(count: usize, size: usize) ?*anyopaque;
extern fn hak_realloc(ptr: ?*anyopaque, size: usize) ?*anyopaque;

/// A malloc-like function, e.g. glibc's `malloc` passed as a raw address from bun:ffi.
pub const AllocFn = *const fn (usize) callconv(.c) ?*anyopaque;
/// A free-like function, e.g. glibc's `free`.
pub const FreeFn = *const fn (?*anyopaque) callconv(.c) void;

/// xorshift64*, seeded exactly like bench/c/common.h (rng_seed/rng_next/rng_range), so a
/// kernel draws the same sequence as the C benchmark with the same seed.
const Rng = struct {
    state: u64,

    fn init(seed: u64) Rng {
        const s = seed *% 0x9E3779B97F4A7C15 +% 0x2545F4914F6CDD1D;
        return .{ .state = if (s == 0) 1 else s };
    }

    fn next(self: *Rng) u64 {
        var x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        return x *% 0x2545F4914F6CDD1D;
    }

    /// A value in [0, n); n must be > 0.
    fn below(self: *Rng, n: u64) u64 {
        return self.next() % n;
    }

    /// A size in [min, max] (the bounds are swapped when given in the wrong order).
    fn size(self: *Rng, min: usize, max: usize) usize {
        const lo = @min(min, max);
        const hi = @max(min, max);
        if (hi == lo) return lo;
        const span: u64 = @as(u64, hi - lo) +| 1;
        return lo + @as(usize, @intCast(self.below(span)));
    }
};

/// Monotonic nanoseconds since an arbitrary origin.
fn nowNs() u64 {
    const ts = std.posix.clock_gettime(.MONOTONIC) catch return 0;
    return @as(u64, @intCast(ts.sec)) * std.time.ns_per_s + @as(u64, @intCast(ts.nsec));
}

fn elapsedSince(start: u64) u64 {
    return nowNs() -| start;
}

/// Writes the first and last byte of a fresh block so the allocation is really touched.
fn touch(ptr: *anyopaque, size: usize, tag: u64) void {
    if (size == 0) return;
    const bytes: [*]volatile u8 = @ptrCast(ptr);
    bytes[0] = @truncate(tag);
    bytes[size - 1] = @truncate(tag);
}

fn hakFreeVoid(ptr: ?*anyopaque) callconv(.c) void {
    _ = hak_free(ptr);
}

/// Allocates with hakmem and zero-fills: used for the kernels' own slot arrays.
fn allocSlots(count: usize) ?[*]?*anyopaque {
    const bytes = std.math.mul(usize, count, @sizeOf(?*anyopaque)) catch return null;
    const raw = hak_alloc(@max(bytes, 1)) orelse return null;
    const slots: [*]?*anyopaque = @ptrCast(@alignCast(raw));
    @memset(slots[0..count], null);
    return slots;
}

// ---------------------------------------------------------------------------------------
// Single-thread kernels

/// Does nothing: the cost of one FFI call.
/// Replays a trace's allocation calls in one order (src/trace.ts flattens a trace into it):
/// op i is tags[i] (abi.TraceEvent: malloc, calloc, realloc, free, aligned; others are
/// skipped) on object ids[i]; args[i] is realloc's old id or aligned's log2 alignment;
/// sizes[i] the requested bytes. slots[0..slot_count) hold the live blocks (null = none)
/// and are all freed at the end. out[0] = peak live requested bytes, out[1] = failed
/// allocations, out[2] = ops skipped (an id out of range, a free of no live block).
/// Each allocation is written to (touchPages), as a program would.
export fn hak_kernel_replay(tags: ?[*]const u8, ids: ?[*]const u32, args: ?[*]const u32, sizes: ?[*]const f64, n: usize, slots: ?[*]?*anyopaque, live_sizes: ?[*]u64, slot_count: usize, out: ?[*]u64) u64 {
    const t = tags orelse return 0;
    const id_of = ids orelse return 0;
    const arg_of = args orelse return 0;
    const size_of = sizes orelse return 0;
    const slot = slots orelse return 0;
    const live = live_sizes orelse return 0;
    const result = out orelse return 0;
    var live_bytes: u64 = 0;
    var peak: u64 = 0;
    var failed: u64 = 0;
    var skipped: u64 = 0;
    const start = nowNs();
    for (0..n) |i| {
        const id = id_of[i];
        if (id >= slot_count) {
            skipped += 1;
            continue;
        }
        const size: usize = @intFromFloat(size_of[i]);
        const Ev = abi.TraceEvent;
        const ev = std.meta.intToEnum(Ev, t[i]) catch {
            skipped += 1;
            continue;
        };
        switch (ev) {
            .malloc, .calloc, .aligned, .realloc => {
                var p: ?*anyopaque = null;
                if (ev == .realloc) {
                    const old = arg_of[i];
                    if (old >= slot_count or slot[old] == null) {
                        skipped += 1;
                        p = hak_alloc(size);
                    } else {
                        p = hak_realloc(slot[old], size);
                        live_bytes -= live[old];
                        if (p == null) _ = hak_free(slot[old]);
                        slot[old] = null;
                        live[old] = 0;
                    }
                } else p = switch (ev) {
                    .malloc => hak_alloc(size),
                    .calloc => hak_calloc(1, size),
                    else => hak_aligned_alloc(@as(usize, 1) << @intCast(@min(arg_of[i], 40)), size),
                };
                if (p == null and size > 0) failed += 1;
                touchPages(p, size);
                if (slot[id] != null) _ = hak_free(slot[id]); // an id given twice: not a trace's
                slot[id] = p;
                live[id] = if (p != null) size else 0;
                live_bytes += live[id];
                peak = @max(peak, live_bytes);
            },
            .free => {
                if (slot[id] == null) {
                    skipped += 1;
                    continue;
                }
                _ = hak_free(slot[id]);
                live_bytes -= live[id];
                slot[id] = null;
                live[id] = 0;
            },
            else => {},
        }
    }
    for (0..slot_count) |i| {
        if (slot[i]) |p| _ = hak_free(p);
        slot[i] = null;
    }
    result[0] = peak;
    result[1] = failed;
    result[2] = skipped;
    return elapsedSince(start);
}

/// A byte in every page of a fresh block's first abi.trace_replay_touch_bytes, and its last
/// byte (a replay's allocations are used as a program's are; bench/c/replay.c does the same).
fn touchPages(ptr: ?*anyopaque, size: usize) void {
    const bytes: [*]volatile u8 = @ptrCast(ptr orelse return);
    const touched = @min(size, abi.trace_replay_touch_bytes);
    var i: usize = 0;
    while (i < touched) : (i += 4096) bytes[i] = @truncate(i);
    if (size > 0) bytes[size - 1] = 1;
}

export fn hak_kernel_noop() void {}

/// `n` malloc+free pairs of `size` bytes through the given functions (hakmem's own when
/// null), so allocators can be compared without FFI cost.
export fn hak_kernel_pairs(alloc_fn: ?AllocFn, free_fn: ?FreeFn, size: usize, n: u64) u64 {
    const alloc_f: AllocFn = alloc_fn orelse &hak_alloc;
    const free_f: FreeFn = free_fn orelse &hakFreeVoid;
    const start = nowNs();
    var i: u64 = 0;
    while (i < n) : (i += 1) {
        const p = alloc_f(size) orelse continue;
        touch(p, size, i);
        free_f(p);
    }
    return elapsedSince(start);
}

/// Random mixed alloc/free over `ws` slots for `cycles` steps: each step picks a random
/// slot and frees it when occupied, else allocates [min, max] bytes into it (as
/// bench/c/random_mixed.c). Everything still live is freed after the timed loop.
export fn hak_kernel_random_mixed(cycles: u64, ws: usize, seed: u64, min: usize, max: usize) u64 {
    if (ws == 0) return 0;
    const slots = allocSlots(ws) orelse return 0;
    defer _ = hak_free(@ptrCast(slots));
    var rng = Rng.init(seed);
    const start = nowNs();
    var i: u64 = 0;
    while (i < cycles) : (i += 1) {
        const slot = &slots[@intCast(rng.below(ws))];
        if (slot.*) |p| {
            _ = hak_free(p);
            slot.* = null;
        } else {
            const size = rng.size(min, max);
            const p = hak_alloc(size) orelse continue;
            touch(p, size, i);
            slot.* = p;
        }
    }
    const elapsed = elapsedSince(start);
    _ = freeAll(slots, ws);
    return elapsed;
}

// ---------------------------------------------------------------------------------------
// Larson-style rotation: a block array that threads hand to each other

/// One Larson round on `array` (nblocks pointers, null = empty; allocate it zeroed, e.g.
/// with hak_calloc): `replacements` times, pick a random entry, free its block (which may
/// belong to another thread: a remote free) and put a fresh [min, max]-byte block there.
export fn hak_kernel_larson_round(array: ?[*]?*anyopaque, nblocks: usize, min: usize, max: usize, replacements: u64, seed: u64) u64 {
    const blocks = array orelse return 0;
    if (nblocks == 0) return 0;
    var rng = Rng.init(seed);
    const start = nowNs();
    var i: u64 = 0;
    while (i < replacements) : (i += 1) {
        const slot = &blocks[@intCast(rng.below(nblocks))];
        if (slot.*) |old| _ = hak_free(old);
        const size = rng.size(min, max);
        slot.* = hak_alloc(size);
        if (slot.*) |p| touch(p, size, i);
    }
    return elapsedSince(start);
}

/// Fills every empty entry of `array` with a [min, max]-byte block; returns elapsed ns.
export fn hak_kernel_larson_fill(array: ?[*]?*anyopaque, nblocks: usize, min: usize, max: usize, seed: u64) u64 {
    const blocks = array orelse return 0;
    var rng = Rng.init(seed);
    const start = nowNs();
    for (blocks[0..nblocks], 0..) |*slot, i| {
        if (slot.* != null) continue;
        const size = rng.size(min, max);
        slot.* = hak_alloc(size);
        if (slot.*) |p| touch(p, size, i);
    }
    return elapsedSince(start);
}

/// Frees every block in `array` and sets the entries to null; returns how many were freed.
export fn hak_kernel_free_all(array: ?[*]?*anyopaque, nblocks: usize) u64 {
    const blocks = array orelse return 0;
    return freeAll(blocks, nblocks);
}

fn freeAll(blocks: [*]?*anyopaque, nblocks: usize) u64 {
    var freed: u64 = 0;
    for (blocks[0..nblocks]) |*slot| {
        if (slot.*) |p| {
            _ = hak_free(p);
            slot.* = null;
            freed += 1;
        }
    }
    return freed;
}

// ---------------------------------------------------------------------------------------
// Producer/consumer: a bounded lock-free MPMC queue (Vyukov) of block pointers

const Cell = struct {
    seq: std.atomic.Value(usize),
    item: ?*anyopaque,
};

const Queue = struct {
    enqueue_pos: std.atomic.Value(usize) align(64),
    dequeue_pos: std.atomic.Value(usize) align(64),
    mask: usize align(64),
    cells: [*]Cell,

    fn push(q: *Queue, item: *anyopaque) bool {
        var pos = q.enqueue_pos.load(.monotonic);
        while (true) {
            const cell = &q.cells[pos & q.mask];
            const seq = cell.seq.load(.acquire);
            const dif = @as(isize, @bitCast(seq -% pos));
            if (dif == 0) {
                if (q.enqueue_pos.cmpxchgWeak(pos, pos +% 1, .monotonic, .monotonic)) |actual| {
                    pos = actual;
                    continue;
                }
                cell.item = item;
                cell.seq.store(pos +% 1, .release);
                return true;
            } else if (dif < 0) {
                return false; // full
            } else {
                pos = q.enqueue_pos.load(.monotonic);
            }
        }
    }

    fn pop(q: *Queue) ?*anyopaque {
        var pos = q.dequeue_pos.load(.monotonic);
        while (true) {
            const cell = &q.cells[pos & q.mask];
            const seq = cell.seq.load(.acquire);
            const dif = @as(isize, @bitCast(seq -% (pos +% 1)));
            if (dif == 0) {
                if (q.dequeue_pos.cmpxchgWeak(pos, pos +% 1, .monotonic, .monotonic)) |actual| {
                    pos = actual;
                    continue;
                }
                const item = cell.item;
                cell.seq.store(pos +% q.mask +% 1, .release);
                return item;
            } else if (dif < 0) {
                return null; // empty
            } else {
                pos = q.dequeue_pos.load(.monotonic);
            }
        }
    }
};

/// A producer or consumer gives up after this long without progress (the other side
/// died or was never started), so no kernel can hang its thread.
const stall_limit_ns: u64 = 5 * std.time.ns_per_s;

/// Waits a little for the other side of the queue; false once the stall limit is over.
fn backoff(stall_start: *?u64) bool {
    const now = nowNs();
    if (stall_start.*) |since| {
        if (now -| since > stall_limit_ns) return false;
    } else {
        stall_start.* = now;
    }
    std.Thread.yield() catch {};
    return true;
}

/// A queue of at least `capacity` (rounded up to a power of two, >= 2) block pointers,
/// allocated with hakmem; null when out of memory or capacity is absurd.
export fn hak_kernel_queue_new(capacity: usize) ?*anyopaque {
    if (capacity > (1 << 32)) return null;
    const cap = std.math.ceilPowerOfTwo(usize, @max(capacity, 2)) catch return null;
    const raw_q = hak_aligned_alloc(@alignOf(Queue), @sizeOf(Queue)) orelse return null;
    const raw_cells = hak_alloc(cap * @sizeOf(Cell)) orelse {
        _ = hak_free(raw_q);
        return null;
    };
    const q: *Queue = @ptrCast(@alignCast(raw_q));
    const cells: [*]Cell = @ptrCast(@alignCast(raw_cells));
    for (cells[0..cap], 0..) |*cell, i| cell.* = .{ .seq = .init(i), .item = null };
    q.* = .{ .enqueue_pos = .init(0), .dequeue_pos = .init(0), .mask = cap - 1, .cells = cells };
    return q;
}

/// Frees every block still queued, then the queue; returns how many blocks it freed.
/// No producer or consumer may be using the queue.
export fn hak_kernel_queue_free(queue: ?*anyopaque) u64 {
    const q: *Queue = @ptrCast(@alignCast(queue orelse return 0));
    var drained: u64 = 0;
    while (q.pop()) |p| {
        _ = hak_free(p);
        drained += 1;
    }
    _ = hak_free(@ptrCast(q.cells));
    _ = hak_free(q);
    return drained;
}

/// Allocates `count` blocks of [min, max] bytes and pushes them onto `queue`, waiting
/// while it is full. `done` (optional) receives how many were pushed (less than count
/// only if the consumer stalled for 5 s). Returns elapsed ns.
export fn hak_kernel_produce(queue: ?*anyopaque, count: u64, min: usize, max: usize, seed: u64, done: ?*u64) u64 {
    const q: *Queue = @ptrCast(@alignCast(queue orelse return 0));
    var rng = Rng.init(seed);
    const start = nowNs();
    var pushed: u64 = 0;
    outer: while (pushed < count) {
        const size = rng.size(min, max);
        const p = hak_alloc(size) orelse break;
        touch(p, size, pushed);
        var stall: ?u64 = null;
        while (!q.push(p)) {
            if (!backoff(&stall)) {
                _ = hak_free(p);
                break :outer;
            }
        }
        pushed += 1;
    }
    const elapsed = elapsedSince(start);
    if (done) |d| d.* = pushed;
    return elapsed;
}

/// Pops `count` blocks from `queue` and frees them (remote frees when another thread
/// produced them), waiting while it is empty. `done` (optional) receives how many were
/// freed (less than count only if the producer stalled for 5 s). Returns elapsed ns.
export fn hak_kernel_consume(queue: ?*anyopaque, count: u64, done: ?*u64) u64 {
    const q: *Queue = @ptrCast(@alignCast(queue orelse return 0));
    const start = nowNs();
    var freed: u64 = 0;
    var stall: ?u64 = null;
    while (freed < count) {
        if (q.pop()) |p| {
            _ = hak_free(p);
            freed += 1;
            stall = null;
        } else if (!backoff(&stall)) {
            break;
        }
    }
    const elapsed = elapsedSince(start);
    if (done) |d| d.* = freed;
    return elapsed;
}

test "the PRNG draws the same sequence as bench/c/common.h" {
    var rng = Rng.init(42);
    try std.testing.expectEqual(@as(u64, 0x9e546a552fd590bb), rng.next());
    try std.testing.expectEqual(@as(u64, 0x9a5df2cb7176aadb), rng.next());
    try std.testing.expectEqual(@as(u64, 0x3f7d8a07a679a18f), rng.next());
}

test "rng sizes stay in bounds" {
    var rng = Rng.init(42);
    for (0..1000) |_| {
        const s = rng.size(16, 64);
        try std.testing.expect(s >= 16 and s <= 64);
    }
    try std.testing.expectEqual(@as(usize, 8), rng.size(8, 8));
    const swapped = rng.size(64, 16);
    try std.testing.expect(swapped >= 16 and swapped <= 64);
}

test "kernels leave no block behind" {
    _ = hak_kernel_random_mixed(20_000, 300, 7, 8, 3000);
    const array: [*]?*anyopaque = @ptrCast(@alignCast(hak_alloc(64 * @sizeOf(usize)).?));
    @memset(array[0..64], null);
    _ = hak_kernel_larson_fill(array, 64, 16, 512, 1);
    _ = hak_kernel_larson_round(array, 64, 16, 512, 1000, 2);
    try std.testing.expectEqual(@as(u64, 64), hak_kernel_free_all(array, 64));
    _ = hak_free(@ptrCast(array));
    const q = hak_kernel_queue_new(8).?;
    var done: u64 = 0;
    _ = hak_kernel_produce(q, 8, 16, 64, 3, &done);
    try std.testing.expectEqual(@as(u64, 8), done);
    _ = hak_kernel_consume(q, 5, &done);
    try std.testing.expectEqual(@as(u64, 5), done);
    try std.testing.expectEqual(@as(u64, 3), hak_kernel_queue_free(q));
}
