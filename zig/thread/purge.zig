//! purge.zig — empty memory back to the OS along the decay curve (decay.zig): what a
//! heap's maintenance (heap.zig), the background purger (background.zig) and alloc.purge
//! (hak_collect, malloc_trim: `force`, everything at once) call.
//!
//!   shared   what no heap holds: the segments' dirty slices and empty segments
//!            (arena.decay: one pass every quarter of the purge delay, whichever thread
//!            asks), the large tier's cached mappings and retained units (large.decay)
//!
//! Immediate purges are not here: a page released beyond HAKMEM_RETAIN_MAX_MB and what a
//! thread's exit leaves beyond heap.exit_keep_dirty_bytes (arena.zig), and the large
//! tier's evictions beyond its bounds.
const std = @import("std");
const os = @import("../base/os.zig");
const config = @import("../settings/config.zig");
const arena = @import("../memory/arena.zig");
const large = @import("../memory/large.zig");
const stats = @import("../settings/stats.zig");

/// Everything no heap holds, along the decay curve; all of it with `force`.
pub fn shared(now_ms: u64, force: bool) void {
    // the curve's deadlines (now + a quarter of the delay, a free's time + the delay) never wrap
    std.debug.assert(config.purge_delay_ms <= config.purge_delay_ms_max);
    std.debug.assert(now_ms <= std.math.maxInt(u64) - config.purge_delay_ms_max);
    arena.decay(now_ms, force);
    large.decay(now_ms, force);
}

/// True while anything no heap holds is retained: dirty slices, empty segments, the large
/// tier's retained memory (what shared() would give back in time).
pub fn retainsAny() bool {
    const large_retained = stats.large.cached_bytes.load(.monotonic);
    // whole pages: every change of the count is a run of region units or a mapping (a count
    // that went below zero would show as a huge number, rarely a multiple of a page)
    std.debug.assert(large_retained % os.page_size == 0);
    if (std.debug.runtime_safety) std.debug.assert(stats.dirty_bytes.load(.monotonic) % os.page_size == 0); // (an atomic load: not in ReleaseFast)
    return arena.retainsAny() or large_retained != 0;
}
