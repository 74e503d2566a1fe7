//! validate.zig — the invariant checks run while the program runs, in the checked library
//! (zig-out/lib/libhakmem-checked.so: ReleaseSafe, `checked` on; build.zig).
//!
//!   malloc/free slow path (slow.zig) ─ every heap_every-th: validateHeap (this thread's
//!                                       heap: bins, queues, pages, segments, cache stacks)
//!                                    ─ every global_every-th: the arena's lists and the
//!                                       large regions (each under its own lock)
//!   thread exit (thread.zig)         ─ the exiting heap, then the arena and the regions
//!   hak_validate() (api.zig)         ─ all of it now, in any build; returns HAK_OK or
//!                                       HAK_ERR_INVALID (and says what on stderr)
//!
//! A failed check in the checked library prints `hakmem: validate: <what>: <error>` and
//! aborts: a broken invariant is a bug, never something to continue past. In the ReleaseFast
//! library `enabled` is false and the slow-path hooks compile to nothing.
//! The counter is one process-wide atomic (no thread-local: this runs inside malloc).
const std = @import("std");
const build_options = @import("build_options");
const os = @import("../base/os.zig");
const arena = @import("../memory/arena.zig");
const abandoned = @import("../memory/abandoned.zig");
const large_region = @import("../memory/large_region.zig");
const heap_mod = @import("heap.zig");
const Heap = heap_mod.Heap;

/// True in the checked library (and the unit tests), false in the ReleaseFast one.
pub const enabled: bool = build_options.checked;
/// Slow paths between two checks of the calling thread's heap.
pub const heap_every: u32 = 64;
/// Slow paths between two checks of the shared structures (arena, large regions).
pub const global_every: u32 = 1024;

comptime {
    std.debug.assert(heap_every > 0);
    std.debug.assert(global_every % heap_every == 0); // a global check falls on a heap check
}

var slow_paths: std.atomic.Value(u32) = .init(0);

/// A malloc or free slow path of heap `h` (its owner thread, no lock held).
pub inline fn atSlowPath(h: *Heap) void {
    if (!enabled) return;
    countSlowPath(h);
}

noinline fn countSlowPath(h: *Heap) void {
    std.debug.assert(enabled); // (atSlowPath's body: compiled in the checked library only)
    std.debug.assert(!h.exiting); // a running thread's heap (an exiting one gives up, takes no slow path)
    const n = slow_paths.fetchAdd(1, .monotonic) +% 1;
    if (n % heap_every == 0) orAbort("the thread's heap", validateHeapOf(h));
    if (n % global_every == 0) orAbort("the arena, the abandoned pages and the large regions", validateShared());
}

/// Thread exit, before the heap is abandoned (its owner thread, no lock held).
pub fn atThreadExit(h: *Heap) void {
    if (!enabled) return;
    std.debug.assert(!h.exiting); // (returnHeld has not run: the heap still holds its pages)
    orAbort("the heap of an exiting thread", validateHeapOf(h));
    orAbort("the arena, the abandoned pages and the large regions", validateShared());
}

/// Everything now: the calling thread's heap (if it has one) and the shared structures.
/// For hak_validate: reports the first broken invariant on stderr and returns false.
pub fn all(h: ?*Heap) bool {
    if (h) |heap| std.debug.assert(!heap.exiting); // the caller's heap, its thread running
    if (h) |heap| report("the thread's heap", validateHeapOf(heap)) catch return false;
    report("the arena, the abandoned pages and the large regions", validateShared()) catch return false;
    return true;
}

/// The heap and its pages (its own thread: nothing else writes them).
fn validateHeapOf(h: *Heap) anyerror!void {
    std.debug.assert(!h.exiting); // a heap in use: its queues and caches are what validateHeap reads
    return heap_mod.validateHeap(h);
}

fn validateShared() anyerror!void {
    try arena.validate();
    try abandoned.validate();
    try large_region.validate();
}

fn report(what: []const u8, result: anyerror!void) error{Invalid}!void {
    std.debug.assert(what.len > 0); // the report names what it checked
    result catch |err| {
        os.printStderr("hakmem: validate: {s}: {s}\n", .{ what, @errorName(err) });
        return error.Invalid;
    };
}

fn orAbort(what: []const u8, result: anyerror!void) void {
    std.debug.assert(enabled); // (the checked library aborts; hak_validate only reports: all())
    report(what, result) catch {
        os.printStderr("hakmem: validate: aborting (a broken invariant is a bug in hakmem)\n", .{});
        std.c.abort();
    };
}

test "the shared structures validate, and all() without a heap checks them" {
    try validateShared();
    try std.testing.expect(all(null));
}
