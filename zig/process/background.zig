//! background.zig — HAKMEM_BACKGROUND=1: one thread that gives idle memory back, so a
//! program that frees a lot and then stops calling the allocator still drops to its live
//! size (without it, memory goes back from the slow paths of malloc and free only).
//!
//! Every `interval` it does what a heap's maintenance does for what no heap holds: the
//! segments' dirty slices and empty segments, the large tier's retained memory
//! (purge.shared). Always along the decay curve (decay.zig). It never allocates, never prints, never owns
//! a heap, blocks every signal, and is started lazily from a malloc slow path (after the
//! allocation, where creating a thread is as safe as for the program itself). fork(): the
//! child has no such thread; its first slow path starts one.
const std = @import("std");
const linux = std.os.linux;
const config = @import("../settings/config.zig");
const os = @import("../base/os.zig");
const purge = @import("../thread/purge.zig");

/// Sweeps at this period: a quarter of the decay time, within bounds.
pub fn intervalMs() u64 {
    std.debug.assert(config.purge_delay_ms <= config.purge_delay_ms_max);
    const ms = std.math.clamp(config.purge_delay_ms / 4, interval_min_ms, interval_max_ms);
    std.debug.assert(ms <= config.purge_delay_ms / 4 or ms == interval_min_ms); // no later than the curve's pass asks
    return ms;
}
const interval_min_ms = 5;
const interval_max_ms = 250;
comptime {
    std.debug.assert(interval_min_ms > 0); // never a busy loop
    std.debug.assert(interval_min_ms <= interval_max_ms);
}

/// A heap starts the thread once it has taken this many slow paths.
pub const start_after_slow_calls = 64;

var started = std.atomic.Value(bool).init(false);
/// Sweeps done (for the tests: the thread runs).
pub var sweeps = std.atomic.Value(u64).init(0);

/// Starts the thread once when HAKMEM_BACKGROUND=1 (a malloc slow path calls this).
pub fn startIfWanted() void {
    if (!config.background or started.load(.monotonic)) return;
    if (started.swap(true, .acq_rel)) return;
    var tid: std.c.pthread_t = undefined;
    if (std.c.pthread_create(&tid, null, run, null) != .SUCCESS) return; // no thread: the slow paths still purge
    _ = std.c.pthread_detach(tid);
}

fn run(_: ?*anyopaque) callconv(.c) ?*anyopaque {
    const all = linux.sigfillset();
    _ = linux.sigprocmask(linux.SIG.BLOCK, &all, null);
    while (true) {
        const ms = intervalMs();
        std.debug.assert(ms >= interval_min_ms); // a pause every round: never a busy loop
        const pause: linux.timespec = .{ .sec = @intCast(ms / 1000), .nsec = @intCast((ms % 1000) * 1_000_000) };
        std.debug.assert(pause.nsec < std.time.ns_per_s); // a valid timespec (else EINVAL: no pause)
        _ = linux.nanosleep(&pause, null);
        sweep(os.nowMs());
    }
}

fn sweep(now_ms: u64) void {
    std.debug.assert(config.background); // the background thread's, started only then
    purge.shared(now_ms, false); // (along the curve: never `force`, which takes what is fresh)
    _ = sweeps.fetchAdd(1, .monotonic);
}

/// In a forked child: the thread is gone; the next slow path starts a new one.
pub fn afterForkInChild() void {
    started.store(false, .monotonic);
}
