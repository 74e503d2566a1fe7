//! thread.zig — which heap belongs to the calling thread, and what happens when a thread
//! starts allocating or exits.
//!
//! A thread's heap is found through one thread-local pointer (`tls_heap`, null until the
//! thread's first malloc). Heap memory comes straight from the OS and is recycled through
//! a pool, never unmapped, so a stats reader can walk the registry of live heaps safely.
//! On exit a pthread-key destructor abandons the heap (heap.abandonAll) and returns it.
const std = @import("std");
const os = @import("os.zig");
const stats = @import("stats.zig");
const config = @import("config.zig");
const size_class = @import("size_class.zig");
const process = @import("process.zig");
const Lock = @import("lock.zig").Lock;
const Heap = @import("heap.zig").Heap;

/// The calling thread's heap. Read and written through `current`/`setCurrent`, which use
/// the initial-exec TLS model (one %fs-relative load) instead of the general-dynamic model
/// Zig emits for a shared library (a __tls_get_addr call on every malloc and free).
/// (zig/tls.c defines it for the library; unit tests use a plain Zig threadlocal.)
const use_initial_exec = @import("builtin").cpu.arch == .x86_64 and !@import("builtin").is_test;
threadlocal var tls_heap: ?*Heap = null;
/// In check mode the heap lives here instead, so the fast path always falls through.
threadlocal var check_heap: ?*Heap = null;

pub var registry_lock: Lock = .{};
var registry_first: ?*Heap = null;
/// Heaps of exited threads, ready for reuse (linked through registry_next).
var pool_first: ?*Heap = null;

/// The calling thread's heap in either mode (slow paths).
pub fn currentAny() ?*Heap {
    return current() orelse check_heap;
}

pub inline fn current() ?*Heap {
    if (!use_initial_exec) return tls_heap;
    return asm (
        \\movq hakmem_tls_heap@GOTTPOFF(%%rip), %[heap]
        \\movq %%fs:(%[heap]), %[heap]
        : [heap] "=r" (-> ?*Heap),
    );
}

fn setCurrent(heap: ?*Heap) void {
    if (!use_initial_exec) {
        tls_heap = heap;
        return;
    }
    asm volatile (
        \\movq hakmem_tls_heap@GOTTPOFF(%%rip), %%rax
        \\movq %[heap], %%fs:(%%rax)
        :
        : [heap] "r" (heap),
        : .{ .rax = true, .memory = true });
}

/// The calling thread's heap, created on first use. Null only when the OS has no memory.
pub noinline fn currentOrCreate() ?*Heap {
    if (currentAny()) |heap| return heap;
    process.ensureInit();
    const heap = obtainHeap() orelse return null;
    heap.init();
    registry_lock.acquire();
    heap.registry_next = registry_first;
    if (registry_first) |f| f.registry_prev = heap;
    registry_first = heap;
    registry_lock.release();
    if (config.check_mode == .off) setCurrent(heap) else check_heap = heap;
    process.registerThreadExit(heap);
    stats.incr(&stats.threads_live);
    stats.incr(&stats.threads_total);
    return heap;
}

fn obtainHeap() ?*Heap {
    registry_lock.acquire();
    const pooled = pool_first;
    if (pooled) |h| pool_first = h.registry_next;
    registry_lock.release();
    if (pooled) |h| return h;
    const bytes = std.mem.alignForward(usize, @sizeOf(Heap), os.page_size);
    const memory = os.map(bytes) orelse return null;
    return @ptrCast(@alignCast(memory));
}

/// The pthread-key destructor: the thread is exiting.
pub fn onThreadExit(heap: *Heap) void {
    setCurrent(null);
    check_heap = null;
    heap.abandonAll();
    registry_lock.acquire();
    heap.counters.addInto(&stats.retired);
    if (heap.registry_prev) |p| p.registry_next = heap.registry_next else registry_first = heap.registry_next;
    if (heap.registry_next) |n| n.registry_prev = heap.registry_prev;
    heap.registry_prev = null;
    heap.registry_next = pool_first;
    pool_first = heap;
    registry_lock.release();
    stats.decr(&stats.threads_live);
}

/// Sums the event counters of every heap, live and exited.
pub fn sumCounters(total: *stats.BinCounters) void {
    registry_lock.acquire();
    defer registry_lock.release();
    stats.retired.addInto(total);
    var cached: u64 = 0;
    var it = registry_first;
    while (it) |heap| : (it = heap.registry_next) {
        heap.counters.addInto(total);
        for (&heap.cache, 0..) |*c, bin| cached += @as(u64, @atomicLoad(u32, &c.count, .monotonic)) * size_class.binBlockSize(bin);
    }
    stats.thread_cache_bytes_snapshot = cached;
}

/// In a forked child only the forking thread exists: the other heaps stay registered
/// (their blocks may still be freed in the child, into their pages' thread_free lists).
pub fn afterForkInChild() void {
    registry_lock.resetInChild();
    stats.threads_live.store(if (currentAny() != null) 1 else 0, .monotonic);
}
