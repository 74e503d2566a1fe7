//! thread.zig — which heap belongs to the calling thread, and what happens when a thread
//! starts allocating or exits.
//!
//! A thread's heap is found through one thread-local pointer (its cache, `tls_cache`: the
//! empty sentinel until the thread's first malloc). Heap memory comes straight from the OS
//! and is never unmapped, so a stats reader can walk the registry of live heaps safely. On
//! exit a pthread-key destructor (the key is made once, at process initialisation:
//! initExitKey) gives everything the heap holds back (heap.returnHeld, heap.abandonAll:
//! its pages to their segments or to whichever thread needs them next); the heap itself
//! waits for the next new thread (heap.zig: exited threads' heaps).
const std = @import("std");
const os = @import("../base/os.zig");
const stats = @import("../settings/stats.zig");
const config = @import("../settings/config.zig");
const size_class = @import("../settings/size_class.zig");
const Lock = @import("../base/lock.zig").Lock;
const heap_mod = @import("heap.zig");
const Heap = heap_mod.Heap;
const validate = @import("validate.zig");
const purge = @import("purge.zig");
const thread_cache = @import("thread_cache.zig");
const Cache = thread_cache.Cache;

/// The calling thread's cache (its heap's `cache`), never null: a thread that has no heap
/// points at `empty_cache`, whose every stack is empty and full at once, so malloc and
/// free fall through to their slow paths without a null test. Read and written through
/// `cache`/`setCache`, which use the initial-exec TLS model (one %fs-relative load)
/// instead of the general-dynamic model Zig emits for a shared library (a __tls_get_addr
/// call on every malloc and free). (zig/tls.c defines it for the library, initialised to
/// `hakmem_empty_cache`; unit tests use a plain Zig threadlocal.)
const use_initial_exec = @import("builtin").cpu.arch == .x86_64 and !@import("builtin").is_test;

/// The heapless sentinel: zeroed stacks (thread_cache.Entry: top == bottom == limit == 0).
/// Only `entries` is ever read through it: every path past the stacks checks for it first.
var empty_entries: [size_class.bin_count + 1]thread_cache.Entry align(64) = [_]thread_cache.Entry{.{}} ** (size_class.bin_count + 1);
comptime {
    if (use_initial_exec) @export(&empty_entries, .{ .name = "hakmem_empty_cache", .visibility = .hidden });
}
const empty_cache: *Cache = @ptrCast(&empty_entries);

threadlocal var tls_cache: *Cache = @ptrCast(&empty_entries);
/// In check mode (and when tracing, config.trace) the heap lives here instead, so the fast
/// paths always fall through (zig/tls.c's hakmem_tls_check_heap in the library, initial-exec
/// as tls_cache: check mode reads it several times per call).
threadlocal var check_heap_tls: ?*Heap = null;
/// Set once the thread's exit destructor gave its heap up.
threadlocal var exit_ran: bool = false;

/// True once the calling thread's exit destructor ran (slow paths only: a general-dynamic
/// TLS access).
pub fn exiting() bool {
    return exit_ran;
}

pub var registry_lock: Lock = .{};
var registry_first: ?*Heap = null;

pub inline fn cache() *Cache {
    if (!use_initial_exec) return tls_cache;
    return asm (
        \\movq hakmem_tls_cache@GOTTPOFF(%%rip), %[cache]
        \\movq %%fs:(%[cache]), %[cache]
        : [cache] "=r" (-> *Cache),
    );
}

fn setCache(c: *Cache) void {
    defer std.debug.assert(cache() == c); // what malloc and free read from now on
    if (!use_initial_exec) {
        tls_cache = c;
        return;
    }
    asm volatile (
        \\movq hakmem_tls_cache@GOTTPOFF(%%rip), %%rax
        \\movq %[cache], %%fs:(%%rax)
        :
        : [cache] "r" (c),
        : .{ .rax = true, .memory = true });
}

/// The heap whose cache this is; null for the sentinel.
pub inline fn heapOf(c: *Cache) ?*Heap {
    if (c == empty_cache) return null;
    return @fieldParentPtr("cache", c);
}

/// The calling thread's heap in normal mode (null before its first malloc, and in check mode).
pub inline fn current() ?*Heap {
    return heapOf(cache());
}

/// The calling thread's heap in either mode (slow paths).
pub fn currentAny() ?*Heap {
    // a thread's heap is in one place: its cache (normal mode) or check_heap (check mode,
    // tracing), never both
    if (std.debug.runtime_safety) std.debug.assert(current() == null or checkHeap() == null);
    return current() orelse checkHeap();
}

fn checkHeap() ?*Heap {
    if (!use_initial_exec) return check_heap_tls;
    return asm (
        \\movq hakmem_tls_check_heap@GOTTPOFF(%%rip), %[heap]
        \\movq %%fs:(%[heap]), %[heap]
        : [heap] "=r" (-> ?*Heap),
    );
}

/// Check mode's record of the call being served: its return address and the caller's
/// frame pointer, written by the entry point (preload.zig), taken by check_sites.zig.
threadlocal var check_entry_tls: [2]usize = .{ 0, 0 };

pub fn checkEntry() *[2]usize {
    std.debug.assert(config.check_mode != .off); // (check mode's record: its entry points only)
    if (!use_initial_exec) return &check_entry_tls;
    return asm (
        \\movq %%fs:0, %[entry]
        \\addq hakmem_tls_check_entry@GOTTPOFF(%%rip), %[entry]
        : [entry] "=r" (-> *[2]usize),
    );
}

fn setCheckHeap(heap: ?*Heap) void {
    defer std.debug.assert(checkHeap() == heap);
    if (!use_initial_exec) {
        check_heap_tls = heap;
        return;
    }
    asm volatile (
        \\movq hakmem_tls_check_heap@GOTTPOFF(%%rip), %%rax
        \\movq %[heap], %%fs:(%%rax)
        :
        : [heap] "r" (heap),
        : .{ .rax = true, .memory = true });
}

/// A heap for the calling thread, which has none (currentAny() is null), made its own.
/// The process must be initialised (process.ensureInit: settings, the exit key). Null
/// only when the OS has no memory.
pub fn create() ?*Heap {
    std.debug.assert(currentAny() == null);
    const heap = obtainHeap() orelse return null;
    std.debug.assert(!heap.exiting); // a heap for a running thread (an exited one's was reset)
    registry_lock.acquire();
    std.debug.assert(heap.registry_prev == null); // in no registry yet: a new mapping,
    std.debug.assert(heap.registry_next == null); // or an exited thread's heap, unlinked
    std.debug.assert(registry_first != heap);
    heap.registry_next = registry_first;
    if (registry_first) |f| f.registry_prev = heap;
    registry_first = heap;
    assertLinked(heap); // the registry's first, its successor pointing back
    registry_lock.release();

    if (config.check_mode == .off and !config.trace) setCache(&heap.cache) else setCheckHeap(heap);
    std.debug.assert(currentAny() == heap); // the thread's heap from now on
    if (exit_key_valid) _ = pthread_setspecific(exit_key, heap);
    stats.incr(&stats.threads_live);
    stats.incr(&stats.threads_total);
    return heap;
}

/// An exited thread's heap, else a new mapping, initialised.
fn obtainHeap() ?*Heap {
    if (heap_mod.takeEmpty()) |h| {
        h.init(config.check_mode != .off);
        std.debug.assert(!h.exiting); // reset by init,
        std.debug.assert(h.exited_next == null); // and out of the exited heaps' list
        return h;
    }
    const bytes = std.mem.alignForward(usize, @sizeOf(Heap), os.page_size);
    const memory = os.map(bytes) orelse return null;
    const heap: *Heap = @ptrCast(@alignCast(memory));
    heap.init(config.check_mode != .off);
    std.debug.assert(heap.checked == (config.check_mode != .off)); // one mode per process
    return heap;
}

// ---------------------------------------------------------------- thread exit

const pthread_key_t = c_uint;
extern "c" fn pthread_key_create(key: *pthread_key_t, destructor: ?*const fn (?*anyopaque) callconv(.c) void) c_int;
extern "c" fn pthread_setspecific(key: pthread_key_t, value: ?*const anyopaque) c_int;

var exit_key: pthread_key_t = 0;
var exit_key_valid = false;

/// Makes the key whose destructor runs onThreadExit for every thread with a heap (once,
/// at process initialisation, before the first heap exists).
pub fn initExitKey() void {
    std.debug.assert(!exit_key_valid); // once: a second key would run the destructor twice
    exit_key_valid = pthread_key_create(&exit_key, exitDestructor) == 0;
}

fn exitDestructor(value: ?*anyopaque) callconv(.c) void {
    std.debug.assert(exit_key_valid); // (its key's destructor)
    const heap: *Heap = @ptrCast(@alignCast(value orelse return));
    onThreadExit(heap);
}

/// Check mode's work at a thread's exit (check.zig sets it: the thread's quarantine batch
/// goes to the shared quarantine), while the thread still has its heap.
pub var check_exit_hook: ?*const fn (*Heap) void = null;

/// The pthread-key destructor: the thread is exiting. Its heap leaves the registry, gives
/// its pages up and waits for the next thread (heap.zig: exited threads' heaps).
pub fn onThreadExit(heap: *Heap) void {
    std.debug.assert(currentAny() == heap); // the exiting thread's own (its TLS still holds it)
    std.debug.assert(!heap.exiting); // given up once
    if (check_exit_hook) |hook| hook(heap);
    validate.atThreadExit(heap);
    setCache(empty_cache);
    setCheckHeap(null);
    exit_ran = true;
    const now = os.nowMs();
    heap.returnHeld(now); // before its counters retire
    std.debug.assert(currentAny() == null); // a free from here on is heapless: not into this heap
    registry_lock.acquire();
    heap.addCountersInto(&stats.retired);
    if (heap.registry_prev) |p| p.registry_next = heap.registry_next else registry_first = heap.registry_next;
    if (heap.registry_next) |n| n.registry_prev = heap.registry_prev;
    heap.registry_prev = null;
    heap.registry_next = null;
    std.debug.assert(registry_first != heap); // out of the registry
    registry_lock.release();
    heap.abandonAll(now);
    heap_mod.addEmpty(heap);
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
        assertLinked(heap);
        heap.addCountersInto(total);
        cached += heap.cachedBytes();
    }
    stats.thread_cache_bytes_snapshot = cached;
}

/// Calls `visit(context, heap, true)` for every live heap (its thread runs), under the
/// registry lock, then `visit(context, heap, false)` for every exited thread's heap
/// (heap.forEachExited) (the memory report). Bounded by the number of heaps.
pub fn forEachHeap(context: anytype, comptime visit: fn (@TypeOf(context), *const Heap, bool) void) void {
    {
        registry_lock.acquire();
        defer registry_lock.release();
        var it = registry_first;
        while (it) |heap| : (it = heap.registry_next) {
            assertLinked(heap);
            visit(context, heap, true);
        }
    }
    heap_mod.forEachExited(context, visit);
}

/// True when another live heap's cache holds `blk` in `bin` (a double-free check; the
/// caches are read while their threads run: a slot may be stale, never unmapped).
/// Bounded by the number of heaps times a bin's capacity.
pub fn otherCacheHolds(bin: usize, blk: *const anyopaque, except: ?*const Heap) bool {
    std.debug.assert(bin < size_class.bin_count);
    std.debug.assert(@intFromPtr(blk) % size_class.min_block_size == 0); // a block start
    registry_lock.acquire();
    defer registry_lock.release();
    var it = registry_first;
    while (it) |heap| : (it = heap.registry_next) {
        assertLinked(heap);
        if (heap == except) continue;
        if (heap.cache.contains(bin, @ptrCast(@alignCast(blk)))) return true;
    }
    return false;
}

/// In a forked child only the forking thread exists: the other heaps stay registered
/// (their blocks may still be freed in the child, into their pages' thread_free lists).
pub fn afterForkInChild() void {
    registry_lock.resetInChild();
    std.debug.assert(!registry_lock.isHeld()); // its holder, if any, is not in the child
    stats.threads_live.store(if (currentAny() != null) 1 else 0, .monotonic);
}

/// A heap of the registry (under its lock) is linked both ways: its neighbours point back
/// at it, and only the first has no predecessor.
inline fn assertLinked(heap: *const Heap) void {
    std.debug.assert(registry_lock.isHeld());
    if (heap.registry_prev) |p| std.debug.assert(p.registry_next == heap) else std.debug.assert(registry_first == heap);
    if (heap.registry_next) |n| std.debug.assert(n.registry_prev == heap);
}

// ---------------------------------------------------------------- tests

const testing = std.testing;
const block_mod = @import("../base/block.zig");

const Probe = struct {
    heap: ?*Heap = null,
    block: ?*anyopaque = null,
    bin: usize = size_class.tinyBin(64),
    cached: std.atomic.Value(bool) = .init(false),
    checked: std.atomic.Value(bool) = .init(false),

    /// A new thread: make its heap, take a block and free it into its cache, then wait for
    /// the main thread to look before it exits.
    fn run(self: *Probe) void {
        const heap = create() orelse return;
        self.heap = heap;
        const blk = heap.cache.pop(self.bin) orelse heap.allocSlow(self.bin) orelse return;
        self.block = blk;
        _ = heap.cache.push(self.bin, blk);
        self.cached.store(true, .release);
        var spins: usize = 0;
        while (!self.checked.load(.acquire) and spins < 10_000_000) : (spins += 1) std.Thread.yield() catch {};
    }
};

test "a thread's heap: made on demand, its cache visible to others, pooled at its exit and reused" {
    block_mod.initSecrets();
    if (!exit_key_valid) initExitKey();
    const live_before = stats.threads_live.load(.monotonic);
    var first: Probe = .{};
    const t1 = try std.Thread.spawn(.{}, Probe.run, .{&first});
    var spins: usize = 0;
    while (!first.cached.load(.acquire) and spins < 10_000_000) : (spins += 1) std.Thread.yield() catch {};
    try testing.expect(first.cached.load(.acquire));
    try testing.expect(otherCacheHolds(first.bin, first.block.?, null));
    try testing.expect(!otherCacheHolds(first.bin, first.block.?, first.heap));
    try testing.expectEqual(live_before + 1, stats.threads_live.load(.monotonic));
    first.checked.store(true, .release);
    t1.join(); // its exit destructor abandoned the heap and pooled it
    try testing.expectEqual(live_before, stats.threads_live.load(.monotonic));
    try testing.expect(!otherCacheHolds(first.bin, first.block.?, null));
    var second: Probe = .{};
    second.checked.store(true, .release);
    const t2 = try std.Thread.spawn(.{}, Probe.run, .{&second});
    t2.join();
    try testing.expectEqual(first.heap, second.heap); // the pooled heap came back
}
