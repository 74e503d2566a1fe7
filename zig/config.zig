//! config.zig — every tunable of hakmem, its default, its limit and its environment
//! variable. Read once at initialisation; the routing thresholds can also change at
//! run time (hak_set_thresholds), which is safe because a block's own page says its tier.
const std = @import("std");
const os = @import("os.zig");
const size_class = @import("size_class.zig");

pub const Tier = enum(u8) { tiny = 0, mid = 1, large = 2 };

pub const tiny_max_default: usize = 1024;
pub const mid_max_default: usize = 1 << 20;
pub const tiny_max_limit: usize = size_class.tiny_size_limit;
pub const mid_max_limit: usize = size_class.mid_size_limit;

/// Requests up to tiny_max go to the tiny tier, up to mid_max to mid, the rest to large.
/// Read on every malloc (plain loads; written rarely, with release stores).
pub var tiny_max: usize = tiny_max_default;
pub var mid_max: usize = mid_max_default;

/// malloc's routing in one table load, for sizes up to 32 KiB: bins_by_16[(size + 15) / 16]
/// up to 1 KiB, bins_by_128[(size + 127) / 128] above (every class boundary above 1 KiB is
/// a multiple of 128). An entry is the bin under the thresholds now, or size_class.no_bin
/// for large sizes and for the one slot a threshold falls inside (that cache entry is
/// always empty, so malloc falls to its slow path, which routes by config.route).
/// Sizes above 32 KiB are never tiny (tiny_max_limit is 8 KiB).
pub const by_16_max: usize = 1024;
pub const by_128_max: usize = 32 * 1024;
pub var bins_by_16: [by_16_max / 16 + 1]u8 = routingTable(16, by_16_max, tiny_max_default, mid_max_default);
pub var bins_by_128: [by_128_max / 128 + 1]u8 = routingTable(128, by_128_max, tiny_max_default, mid_max_default);

comptime {
    std.debug.assert(tiny_max_limit <= by_128_max);
}

fn routingTable(comptime step: usize, comptime max: usize, tiny: usize, mid: usize) [max / step + 1]u8 {
    @setEvalBranchQuota(20_000);
    var table: [max / step + 1]u8 = undefined;
    for (&table, 0..) |*bin, i| {
        const size = i * step; // the slot serves sizes size-step+1 .. size (and 0)
        const smallest = if (i == 0) 0 else size - step + 1;
        const tier = routeBy(size, tiny, mid);
        bin.* = if (tier != routeBy(smallest, tiny, mid)) size_class.no_bin // a threshold inside the slot
            else switch (tier) {
                .tiny => size_class.tinyBin(size),
                .mid => size_class.midBin(size),
                .large => size_class.no_bin,
            };
    }
    return table;
}

/// After tiny_max or mid_max changed. A malloc racing with it may route one request
/// by the old thresholds: every tier serves every size up to its limit, and free finds
/// the tier from the block, so that is harmless.
fn routingChanged() void {
    const by_16 = routingTable(16, by_16_max, tiny_max, mid_max);
    for (&bins_by_16, by_16) |*bin, new| @atomicStore(u8, bin, new, .release);
    const by_128 = routingTable(128, by_128_max, tiny_max, mid_max);
    for (&bins_by_128, by_128) |*bin, new| @atomicStore(u8, bin, new, .release);
}

/// Empty memory older than this is returned to the OS (MADV_DONTNEED / munmap).
pub var purge_delay_ms: u64 = 50;
/// Dirty empty memory a heap may keep before purging at once, regardless of the delay.
pub var retain_max_bytes: usize = 64 << 20;
/// Bytes of freed large mappings kept for reuse.
pub var large_cache_max_bytes: usize = 64 << 20;
/// HAKMEM_STATS=1: print a per-tier summary to stderr at exit.
pub var print_stats_at_exit: bool = false;

/// HAKMEM_ADAPT=0 freezes the self-sizing caches (thread caches, large-mapping cache).
pub var adapt: bool = true;

pub const CheckMode = enum(u8) { off = 0, abort = 1, warn = 2 };
/// HAKMEM_CHECK=1 (abort on the first problem) or =warn (report and continue): check.zig.
/// Fixed before the first heap exists.
pub var check_mode: CheckMode = .off;

pub fn setThresholds(new_tiny_max: usize, new_mid_max: usize) bool {
    if (new_tiny_max > tiny_max_limit or new_mid_max > mid_max_limit or new_tiny_max > new_mid_max) return false;
    @atomicStore(usize, &tiny_max, new_tiny_max, .release);
    @atomicStore(usize, &mid_max, new_mid_max, .release);
    routingChanged();
    return true;
}

pub fn route(size: usize) Tier {
    return routeBy(size, tiny_max, mid_max);
}

fn routeBy(size: usize, tiny: usize, mid: usize) Tier {
    if (size <= tiny) return .tiny;
    if (size <= mid) return .mid;
    return .large;
}

const Var = struct { name: [:0]const u8, apply: *const fn (value: []const u8) bool };

const known = [_]Var{
    .{ .name = "HAKMEM_TINY_MAX", .apply = applyTinyMax },
    .{ .name = "HAKMEM_MID_MAX", .apply = applyMidMax },
    .{ .name = "HAKMEM_PURGE_DELAY_MS", .apply = applyPurgeDelay },
    .{ .name = "HAKMEM_RETAIN_MAX_MB", .apply = applyRetainMax },
    .{ .name = "HAKMEM_LARGE_CACHE_MB", .apply = applyLargeCache },
    .{ .name = "HAKMEM_STATS", .apply = applyStats },
    .{ .name = "HAKMEM_CHECK", .apply = applyCheck },
    .{ .name = "HAKMEM_ADAPT", .apply = applyAdapt },
};

/// Variables that belong to the tooling around the library, not to the allocator.
const tooling = [_][]const u8{ "HAKMEM_LIB", "HAKMEM_ZIG" };

/// Reads HAKMEM_* once. A malformed value or an unknown HAKMEM_ name gives one line on
/// stderr; the default stays. Uses getenv/environ only: nothing here allocates.
pub fn loadFromEnvironment() void {
    for (known) |v| {
        const raw = std.c.getenv(v.name) orelse continue;
        const value = std.mem.span(raw);
        if (value.len == 0) continue; // set but empty: as if unset
        if (!v.apply(value)) os.printStderr("hakmem: ignoring {s}={s} (malformed or out of range); using the default\n", .{ v.name, value });
    }
    if (tiny_max > mid_max) {
        os.printStderr("hakmem: HAKMEM_TINY_MAX ({d}) is above HAKMEM_MID_MAX ({d}); using the defaults\n", .{ tiny_max, mid_max });
        tiny_max = tiny_max_default;
        mid_max = mid_max_default;
    }
    routingChanged();
    warnUnknownNames();
}

fn warnUnknownNames() void {
    const env: [*:null]?[*:0]u8 = std.c.environ;
    var i: usize = 0;
    while (env[i]) |entry| : (i += 1) {
        const line = std.mem.span(entry);
        if (!std.mem.startsWith(u8, line, "HAKMEM_")) continue;
        const name = line[0 .. std.mem.indexOfScalar(u8, line, '=') orelse line.len];
        if (isKnownName(name)) continue;
        os.printStderr("hakmem: unknown environment variable {s} (ignored)\n", .{name});
    }
}

fn isKnownName(name: []const u8) bool {
    for (known) |v| if (std.mem.eql(u8, v.name, name)) return true;
    for (tooling) |t| if (std.mem.eql(u8, t, name)) return true;
    return false;
}

/// Parses "123", "64k"/"64K" (KiB), "1m"/"1M" (MiB). Null when malformed or overflowing.
pub fn parseSize(text: []const u8) ?usize {
    if (text.len == 0) return null;
    var digits = text;
    var unit: usize = 1;
    switch (text[text.len - 1]) {
        'k', 'K' => unit = 1 << 10,
        'm', 'M' => unit = 1 << 20,
        'g', 'G' => unit = 1 << 30,
        else => {},
    }
    if (unit != 1) digits = text[0 .. text.len - 1];
    const n = std.fmt.parseUnsigned(usize, digits, 10) catch return null;
    return std.math.mul(usize, n, unit) catch null;
}

fn applyTinyMax(value: []const u8) bool {
    const n = parseSize(value) orelse return false;
    if (n > tiny_max_limit) return false;
    tiny_max = n;
    return true;
}

fn applyMidMax(value: []const u8) bool {
    const n = parseSize(value) orelse return false;
    if (n > mid_max_limit) return false;
    mid_max = n;
    return true;
}

fn applyPurgeDelay(value: []const u8) bool {
    const n = std.fmt.parseUnsigned(u64, value, 10) catch return false;
    if (n > 3_600_000) return false;
    purge_delay_ms = n;
    return true;
}

fn applyRetainMax(value: []const u8) bool {
    const n = std.fmt.parseUnsigned(usize, value, 10) catch return false;
    if (n > 1 << 20) return false;
    retain_max_bytes = n << 20;
    return true;
}

fn applyLargeCache(value: []const u8) bool {
    const n = std.fmt.parseUnsigned(usize, value, 10) catch return false;
    if (n > 1 << 20) return false;
    large_cache_max_bytes = n << 20;
    return true;
}

fn applyAdapt(value: []const u8) bool {
    if (std.mem.eql(u8, value, "1")) adapt = true else if (std.mem.eql(u8, value, "0")) adapt = false else return false;
    return true;
}

fn applyCheck(value: []const u8) bool {
    const eql = std.mem.eql;
    if (eql(u8, value, "1") or eql(u8, value, "abort")) {
        check_mode = .abort;
    } else if (eql(u8, value, "warn")) {
        check_mode = .warn;
    } else if (eql(u8, value, "0") or eql(u8, value, "off")) {
        check_mode = .off;
    } else return false;
    return true;
}

fn applyStats(value: []const u8) bool {
    if (std.mem.eql(u8, value, "1") or std.mem.eql(u8, value, "true")) {
        print_stats_at_exit = true;
        return true;
    }
    return std.mem.eql(u8, value, "0") or std.mem.eql(u8, value, "false");
}

test "parseSize" {
    try std.testing.expectEqual(@as(?usize, 1024), parseSize("1024"));
    try std.testing.expectEqual(@as(?usize, 65536), parseSize("64k"));
    try std.testing.expectEqual(@as(?usize, 1 << 20), parseSize("1M"));
    try std.testing.expectEqual(@as(?usize, null), parseSize("12x"));
    try std.testing.expectEqual(@as(?usize, null), parseSize(""));
    try std.testing.expectEqual(@as(?usize, null), parseSize("99999999999999999999"));
}

test "thresholds are validated" {
    const old_tiny = tiny_max;
    const old_mid = mid_max;
    defer _ = setThresholds(old_tiny, old_mid);
    try std.testing.expect(setThresholds(512, 4096));
    try std.testing.expectEqual(Tier.tiny, route(512));
    try std.testing.expectEqual(Tier.mid, route(513));
    try std.testing.expectEqual(Tier.large, route(4097));
    try std.testing.expect(!setThresholds(4096, 512));
    try std.testing.expect(!setThresholds(tiny_max_limit + 1, mid_max_limit));
    try std.testing.expect(!setThresholds(0, mid_max_limit + 1));
}

test "the routing tables agree with route() and the size classes, under any thresholds" {
    const saved_tiny = tiny_max;
    const saved_mid = mid_max;
    defer _ = setThresholds(saved_tiny, saved_mid);
    for ([_][2]usize{ .{ 1024, 1 << 20 }, .{ 0, 0 }, .{ 100, 500 }, .{ 8192, 8192 }, .{ 4000, 20000 }, .{ 1500, 1 << 20 } }) |t| {
        try std.testing.expect(setThresholds(t[0], t[1]));
        var size: usize = 0;
        while (size <= by_128_max) : (size += 1) {
            const bin = if (size <= by_16_max) bins_by_16[(size + 15) >> 4] else bins_by_128[(size + 127) >> 7];
            if (bin == size_class.no_bin and route(size) != .large) {
                // the slow path's slot: a threshold falls inside it
                try std.testing.expect(route(if (size <= by_16_max) (size + 15) & ~@as(usize, 15) else (size + 127) & ~@as(usize, 127)) != route(size) or
                    route(if (size <= by_16_max) ((size + 15) & ~@as(usize, 15)) -| 15 else ((size + 127) & ~@as(usize, 127)) -| 127) != route(size));
                continue;
            }
            const want: u8 = switch (route(size)) {
                .tiny => size_class.tinyBin(size),
                .mid => size_class.midBin(size),
                .large => size_class.no_bin,
            };
            try std.testing.expectEqual(want, bin);
        }
    }
}
