//! report.zig — reading the counters: the HAK_STAT_* array behind hak_stats_read, and the
//! HAKMEM_STATS=1 summary printed to stderr at exit (its first line, `hakmem: build=…`,
//! is what the bench checks to prove a run was served by hakmem).
const std = @import("std");
const os = @import("os.zig");
const stats = @import("stats.zig");
const thread = @import("thread.zig");
const build_options = @import("build_options");

pub fn read(out: *[stats.value_count]u64) void {
    var sum: stats.BinCounters = .{};
    thread.sumCounters(&sum);
    stats.snapshot(&sum, out);
}

pub fn reset() void {
    var sum: stats.BinCounters = .{};
    thread.sumCounters(&sum);
    stats.reset(&sum);
}

pub fn name(index: usize) ?[]const u8 {
    if (index < stats.field_count) return stats.field_names[index];
    if (index < stats.field_count + stats.global_count) return stats.global_names[index - stats.field_count];
    return null;
}

/// Reads /proc/self/status for VmHWM (peak RSS) in KiB; 0 when unavailable.
fn peakRssKiB() u64 {
    const fd = std.posix.openZ("/proc/self/status", .{}, 0) catch return 0;
    defer std.posix.close(fd);
    var buf: [4096]u8 = undefined;
    const n = std.posix.read(fd, &buf) catch return 0;
    const text = buf[0..n];
    const at = std.mem.indexOf(u8, text, "VmHWM:") orelse return 0;
    var it = std.mem.tokenizeAny(u8, text[at + 6 ..], " \t\n");
    return std.fmt.parseUnsigned(u64, it.next() orelse return 0, 10) catch 0;
}

pub fn printSummary() void {
    var v: [stats.value_count]u64 = undefined;
    read(&v);
    const f = stats.field_count;
    const g = 3 * f;
    var allocs: u64 = 0;
    var frees: u64 = 0;
    var remote: u64 = 0;
    for (0..3) |t| {
        allocs += v[t * f + 0];
        frees += v[t * f + 1];
        remote += v[t * f + 2];
    }
    os.printStderr("hakmem: build={s} allocs={d} frees={d} remote_frees={d} threads={d} peak_rss_kib={d}\n", .{
        build_options.build_id, allocs, frees, remote, v[g + 4], peakRssKiB(),
    });
    os.printStderr("hakmem: {s:<6} {s:>12} {s:>12} {s:>12} {s:>12} {s:>14} {s:>14} {s:>8}\n", .{ "tier", "allocs", "frees", "remote", "live", "live_bytes", "mapped_bytes", "purges" });
    const tier_names = [_][]const u8{ "tiny", "mid", "large" };
    for (0..3) |t| {
        const b = t * f;
        os.printStderr("hakmem: {s:<6} {d:>12} {d:>12} {d:>12} {d:>12} {d:>14} {d:>14} {d:>8}\n", .{ tier_names[t], v[b], v[b + 1], v[b + 2], v[b + 3], v[b + 4], v[b + 5], v[b + 7] });
    }
    os.printStderr("hakmem: segments={d} abandoned={d} adopted={d} large_cache hits={d} misses={d} os_mapped_bytes={d}\n", .{
        v[g], v[g + 1], v[g + 2], v[2 * f + 9], v[2 * f + 10], v[g + 5],
    });
}
