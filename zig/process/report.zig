//! report.zig — reading the counters: the HAK_STAT_* array behind hak_stats_read, and the
//! HAKMEM_STATS=1 summary printed at exit (its first line, `hakmem: build=…`, is what the
//! bench checks to prove a run was served by hakmem). Where the exit summary goes (stderr
//! as it was at start-up, or HAKMEM_STATS_FILE) is process.zig's business.
const std = @import("std");
const os = @import("../base/os.zig");
const stats = @import("../settings/stats.zig");
const thread = @import("../thread/thread.zig");
const size_class = @import("../settings/size_class.zig");
const memory_report = @import("memory_report.zig");
const build_options = @import("build_options");
const abi = @import("../abi.zig");
const G = abi.StatGlobal;

pub fn read(out: *[stats.value_count]u64) void {
    var sum: stats.BinCounters = .{};
    thread.sumCounters(&sum);
    stats.snapshot(&sum, out);
    if (std.debug.runtime_safety) assertUnits(out); // (loops: not in ReleaseFast)
}

/// The memory figures of a snapshot come in their units, whatever ran meanwhile (each
/// change of a counter is a whole unit, so any sum of them is too): pages of the tiny and
/// mid tiers are whole slices, large memory whole pages, purges whole pages.
fn assertUnits(v: *const [stats.value_count]u64) void {
    for (0..abi.tier_count) |t| {
        const tier: abi.Tier = @enumFromInt(t);
        const unit: u64 = if (tier == .large) os.page_size else size_class.slice_size;
        std.debug.assert(v[abi.statIndex(tier, .mapped_bytes)] % unit == 0);
        std.debug.assert(v[abi.statIndex(tier, .purged_bytes)] % os.page_size == 0);
    }
    std.debug.assert(v[G.os_mapped_bytes.index()] % os.page_size == 0);
    std.debug.assert(v[G.large_cached_bytes.index()] % os.page_size == 0);
}

pub fn reset() void {
    var sum: stats.BinCounters = .{};
    thread.sumCounters(&sum);
    stats.reset(&sum);
    if (std.debug.runtime_safety) {
        var v: [stats.value_count]u64 = undefined;
        stats.snapshot(&sum, &v);
        assertUnits(&v); // (a baseline in whole units keeps the figures in them)
    }
}

/// Reads /proc/self/status for VmHWM (peak RSS) in KiB; 0 when unavailable.
fn peakRssKiB() u64 {
    const fd = std.posix.openZ("/proc/self/status", .{}, 0) catch return 0;
    defer std.posix.close(fd);
    var buf: [4096]u8 = undefined;
    const n = std.posix.read(fd, &buf) catch return 0;
    std.debug.assert(n <= buf.len);
    const text = buf[0..n];
    const at = std.mem.indexOf(u8, text, "VmHWM:") orelse return 0;
    var it = std.mem.tokenizeAny(u8, text[at + 6 ..], " \t\n");
    return std.fmt.parseUnsigned(u64, it.next() orelse return 0, 10) catch 0;
}

/// Room for the whole summary (8 lines of at most ~160 bytes).
pub const summary_max = 2048;

/// The HAKMEM_STATS summary, formatted into `buf` (never allocates).
pub fn formatSummary(buf: *[summary_max]u8) []const u8 {
    var v: [stats.value_count]u64 = undefined;
    read(&v);
    var w: std.Io.Writer = .fixed(buf);
    writeSummary(&w, &v) catch {}; // a full buffer truncates the summary
    const text = w.buffered();
    std.debug.assert(text.len <= summary_max);
    // the first line, whole: what the bench reads to prove hakmem served the run
    if (std.debug.runtime_safety) std.debug.assert(std.mem.startsWith(u8, text, "hakmem: build="));
    return text;
}

fn writeSummary(w: *std.Io.Writer, v: *const [stats.value_count]u64) std.Io.Writer.Error!void {
    std.debug.assert(w.end == 0); // the summary starts the buffer: its first line is the build's
    var allocs: u64 = 0;
    var frees: u64 = 0;
    var remote: u64 = 0;
    for (0..abi.tier_count) |t| {
        const tier: abi.Tier = @enumFromInt(t);
        allocs += v[abi.statIndex(tier, .allocs)];
        frees += v[abi.statIndex(tier, .frees)];
        remote += v[abi.statIndex(tier, .remote_frees)];
    }
    try w.print("hakmem: build={s} allocs={d} frees={d} remote_frees={d} threads={d} peak_rss_kib={d}\n", .{
        build_options.build_id, allocs, frees, remote, v[G.threads_total.index()], peakRssKiB(),
    });
    try w.print("hakmem: {s:<6} {s:>12} {s:>12} {s:>12} {s:>12} {s:>14} {s:>14} {s:>8}\n", .{ "tier", "allocs", "frees", "remote", "live", "live_bytes", "mapped_bytes", "purges" });
    for (0..abi.tier_count) |t| {
        const tier: abi.Tier = @enumFromInt(t);
        try w.print("hakmem: {s:<6} {d:>12} {d:>12} {d:>12} {d:>12} {d:>14} {d:>14} {d:>8}\n", .{
            @tagName(tier),                        v[abi.statIndex(tier, .allocs)],      v[abi.statIndex(tier, .frees)],
            v[abi.statIndex(tier, .remote_frees)], v[abi.statIndex(tier, .live_blocks)], v[abi.statIndex(tier, .live_bytes)],
            v[abi.statIndex(tier, .mapped_bytes)], v[abi.statIndex(tier, .purges)],
        });
    }
    try w.print("hakmem: segments={d} pages_abandoned={d} pages_reclaimed={d} large_cache hits={d} misses={d} os_mapped_bytes={d}\n", .{
        v[G.segments_mapped.index()],          v[G.pages_abandoned.index()],            v[G.pages_reclaimed.index()],
        v[abi.statIndex(.large, .cache_hits)], v[abi.statIndex(.large, .cache_misses)], v[G.os_mapped_bytes.index()],
    });
    var memory: memory_report.Values = undefined;
    memory_report.read(&memory);
    try memory_report.write(w, &memory);
}

/// hak_stats_print: the summary on stderr, in one write.
pub fn printSummary() void {
    var buf: [summary_max]u8 = undefined;
    const text = formatSummary(&buf);
    std.debug.assert(text.len > 0); // one write, of one summary at least a line long
    os.writeStderr(text);
}
