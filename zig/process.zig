//! process.zig — once-per-process work: initialisation (lazy, on the first malloc of any
//! thread, safe before constructors run; and at the latest when the library is loaded, so
//! that a free() before the first malloc already knows HAKMEM_CHECK), the thread-exit key,
//! fork handlers and the HAKMEM_STATS summary at exit. Nothing here allocates through libc.
const std = @import("std");
const os = @import("os.zig");
const config = @import("config.zig");
const arena = @import("arena.zig");
const large = @import("large.zig");
const thread = @import("thread.zig");
const report = @import("report.zig");
const Heap = @import("heap.zig").Heap;

const pthread_key_t = c_uint;
extern "c" fn pthread_key_create(key: *pthread_key_t, destructor: ?*const fn (?*anyopaque) callconv(.c) void) c_int;
extern "c" fn pthread_setspecific(key: pthread_key_t, value: ?*const anyopaque) c_int;
extern "c" fn pthread_atfork(prepare: ?*const fn () callconv(.c) void, parent: ?*const fn () callconv(.c) void, child: ?*const fn () callconv(.c) void) c_int;

const State = enum(u32) { uninitialised, initialising, ready };
var state: std.atomic.Value(State) = .init(.uninitialised);
var exit_key: pthread_key_t = 0;
var exit_key_valid = false;

pub inline fn ensureInit() void {
    if (state.load(.acquire) != .ready) initSlow();
}

noinline fn initSlow() void {
    if (state.cmpxchgStrong(.uninitialised, .initialising, .acquire, .acquire)) |seen| {
        // Another thread is initialising (nothing in init can call malloc recursively).
        var s = seen;
        while (s != .ready) : (s = state.load(.acquire)) _ = std.os.linux.sched_yield();
        return;
    }
    config.loadFromEnvironment();
    exit_key_valid = pthread_key_create(&exit_key, threadExitDestructor) == 0;
    state.store(.ready, .release);
    // May allocate (glibc grows its handler list): we are ready by now.
    _ = pthread_atfork(forkPrepare, forkParent, forkChild);
}

/// Arms the exit destructor for the calling thread's new heap.
pub fn registerThreadExit(heap: *Heap) void {
    if (exit_key_valid) _ = pthread_setspecific(exit_key, heap);
}

fn threadExitDestructor(value: ?*anyopaque) callconv(.c) void {
    const heap: *Heap = @ptrCast(@alignCast(value orelse return));
    thread.onThreadExit(heap);
}

// fork: take every lock so that no list is mid-update in the child, then release
// them in the parent and reset them in the child.
fn forkPrepare() callconv(.c) void {
    thread.registry_lock.acquire();
    arena.cache_lock.acquire();
    arena.abandoned_lock.acquire();
    large.lockForFork();
}

fn forkParent() callconv(.c) void {
    large.unlockAfterFork();
    arena.abandoned_lock.release();
    arena.cache_lock.release();
    thread.registry_lock.release();
}

fn forkChild() callconv(.c) void {
    large.resetLockInChild();
    arena.resetLocksInChild();
    thread.afterForkInChild();
}

fn atInit() callconv(.c) void {
    ensureInit();
}

fn atExit() callconv(.c) void {
    if (config.print_stats_at_exit) report.printSummary();
}

const HookFn = *const fn () callconv(.c) void;
const init_entry: HookFn = &atInit;
const fini_entry: HookFn = &atExit;
comptime {
    @export(&init_entry, .{ .name = "hakmem_init_entry", .section = ".init_array", .visibility = .hidden });
    @export(&fini_entry, .{ .name = "hakmem_fini_entry", .section = ".fini_array", .visibility = .hidden });
}
