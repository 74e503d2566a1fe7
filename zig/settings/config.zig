//! config.zig — every setting of hakmem read from the environment (HAKMEM_*): its default,
//! its limit, how its value is parsed, and the one line a bad value gets on stderr. Read
//! once at initialisation (loadFromEnvironment), before the first heap exists; nothing
//! here is read on a fast path. The routing thresholds and malloc's tables, which are,
//! and which hak_set_thresholds changes at run time, are routing.zig's: HAKMEM_TINY_MAX and
//! HAKMEM_MID_MAX are parsed here and handed to it.
const std = @import("std");
const os = @import("../base/os.zig");
const abi = @import("../abi.zig");
const routing = @import("routing.zig");

/// Empty memory older than this is returned to the OS (MADV_DONTNEED / munmap).
pub var purge_delay_ms: u64 = 50;
/// HAKMEM_PURGE_DELAY_MS's limit (an hour): a deadline `now + delay` never wraps.
pub const purge_delay_ms_max: u64 = 3_600_000;
/// Dirty empty memory a heap may keep before purging at once, regardless of the delay.
pub var retain_max_bytes: usize = 64 << 20;
/// Bytes of freed large mappings kept for reuse.
pub var large_cache_max_bytes: usize = 128 << 20;
/// HAKMEM_STATS=1 (or HAKMEM_STATS_FILE=path): print a per-tier summary at exit.
pub var print_stats_at_exit: bool = false;
/// HAKMEM_STATS_FILE: where the exit summary goes instead of stderr (NUL-terminated, made
/// absolute at start-up; `%p` stands for the process id). Empty: stderr.
pub var stats_file_buf: [stats_file_max + 1]u8 = [_]u8{0} ** (stats_file_max + 1);
pub var stats_file_len: usize = 0;
pub const stats_file_max = 4095;
/// HAKMEM_TRACE=path: every allocation call is recorded (trace.zig). Fixed before the first
/// heap exists: a traced thread's cache stays the empty sentinel, so every malloc and free
/// takes its slow path, where the recorder is (the fast paths do not change).
pub var trace: bool = false;
pub var trace_file_buf: [stats_file_max + 1]u8 = [_]u8{0} ** (stats_file_max + 1);
pub var trace_file_len: usize = 0;

/// HAKMEM_ADAPT=0 freezes the self-sizing caches (thread caches, large-mapping cache).
pub var adapt: bool = true;

/// HAKMEM_BACKGROUND=1: one background thread gives idle memory back (background.zig).
pub var background: bool = false;

/// HAKMEM_MEMORY_LIMIT_MB: a hard budget of mapped memory (budget.zig); 0: none.
pub var memory_limit_bytes: usize = 0;
/// HAKMEM_CGROUP_DIR: the cgroup v2 directory to watch instead of /proc/self/cgroup's.
pub var cgroup_dir_buf: [path_max + 1]u8 = [_]u8{0} ** (path_max + 1);
pub var cgroup_dir_len: usize = 0;
/// HAKMEM_PROFILE=path: the sampled heap profile is written there (profile.zig).
pub var profile_path_buf: [path_max + 1]u8 = [_]u8{0} ** (path_max + 1);
pub var profile_path_len: usize = 0;
/// HAKMEM_PROFILE_SAMPLE_KB: the mean gap between two samples, in bytes allocated.
pub var profile_sample_bytes: usize = 512 << 10;
const path_max = 511;

pub const CheckMode = abi.CheckMode;
/// HAKMEM_GUARD_SAMPLE_MB: about one allocation per this many MiB allocated is a guarded
/// sample (guard.zig); 0 turns sampling off.
pub var guard_sample_mb: usize = guard_sample_mb_default;
pub const guard_sample_mb_default: usize = 32;
comptime {
    std.debug.assert(guard_sample_mb_default == 32); // the `known` table's default says "32"
}

/// HAKMEM_CHECK=1 (abort on the first problem) or =warn (report and continue): check.zig.
/// Fixed before the first heap exists.
pub var check_mode: CheckMode = .off;
/// HAKMEM_CHECK_STACKS=1: check mode keeps a short backtrace of each allocation and free
/// (check_sites.zig) instead of the return address alone.
pub var check_stacks: bool = false;

/// What applying one variable's value gave.
const Verdict = union(enum) {
    ok,
    malformed,
    /// the value read, and the largest allowed
    above: struct { value: u64, limit: u64 },
    /// the value read, and the smallest allowed
    below: struct { value: u64, limit: u64 },
};

const Var = struct {
    name: [:0]const u8,
    /// the form of a good value, for the message about a bad one
    expected: []const u8,
    /// the default, as the message names it
    default: []const u8,
    apply: *const fn (value: []const u8) Verdict,
};

const size_form = "a size in bytes such as 512, 4k or 1m";
const tiny_max_default = routing.tiny_max_default;
const mid_max_default = routing.mid_max_default;
const known = [_]Var{
    .{ .name = "HAKMEM_TINY_MAX", .expected = size_form, .default = std.fmt.comptimePrint("{d}", .{tiny_max_default}), .apply = applyTinyMax },
    .{ .name = "HAKMEM_MID_MAX", .expected = size_form, .default = std.fmt.comptimePrint("{d}", .{mid_max_default}), .apply = applyMidMax },
    .{ .name = "HAKMEM_PURGE_DELAY_MS", .expected = "a whole number of milliseconds", .default = "50", .apply = applyPurgeDelay },
    .{ .name = "HAKMEM_RETAIN_MAX_MB", .expected = "a whole number of MiB", .default = "64", .apply = applyRetainMax },
    .{ .name = "HAKMEM_LARGE_CACHE_MB", .expected = "a whole number of MiB", .default = "128", .apply = applyLargeCache },
    .{ .name = "HAKMEM_STATS", .expected = "1 or 0", .default = "0", .apply = applyStats },
    .{ .name = "HAKMEM_STATS_FILE", .expected = "a file path (%p: the process id)", .default = "stderr", .apply = applyStatsFile },
    .{ .name = "HAKMEM_CHECK", .expected = "1 (or abort), warn, or 0 (or off)", .default = "0", .apply = applyCheck },
    .{ .name = "HAKMEM_CHECK_STACKS", .expected = "1 or 0", .default = "0", .apply = applyCheckStacks },
    .{ .name = "HAKMEM_ADAPT", .expected = "1 or 0", .default = "1", .apply = applyAdapt },
    .{ .name = "HAKMEM_GUARD_SAMPLE_MB", .expected = "a whole number of MiB (0: off)", .default = "32", .apply = applyGuardSample },
    .{ .name = "HAKMEM_BACKGROUND", .expected = "1 or 0", .default = "0", .apply = applyBackground },
    .{ .name = "HAKMEM_MEMORY_LIMIT_MB", .expected = "a whole number of MiB (0: no limit)", .default = "0", .apply = applyMemoryLimit },
    .{ .name = "HAKMEM_CGROUP_DIR", .expected = "a cgroup v2 directory", .default = "the process's cgroup", .apply = applyCgroupDir },
    .{ .name = "HAKMEM_PROFILE", .expected = "a file path (%p: the process id)", .default = "off", .apply = applyProfile },
    .{ .name = "HAKMEM_PROFILE_SAMPLE_KB", .expected = "a whole number of KiB, 1 or more", .default = "512", .apply = applyProfileSample },
    .{ .name = "HAKMEM_TRACE", .expected = "a file path (%p: the process id)", .default = "off", .apply = applyTrace },
};

/// Variables that belong to the tooling around the library, not to the allocator.
const tooling = [_][]const u8{ "HAKMEM_LIB", "HAKMEM_ZIG" };

comptime {
    // warnUnknownNames looks at HAKMEM_* entries only: a setting named otherwise is never read
    for (known) |v| std.debug.assert(std.mem.startsWith(u8, v.name, "HAKMEM_"));
    for (tooling) |t| std.debug.assert(std.mem.startsWith(u8, t, "HAKMEM_"));
}

/// Reads HAKMEM_* once. A malformed or out-of-range value or an unknown HAKMEM_ name gives
/// one line on stderr saying what was expected; the default stays. Uses getenv/environ
/// only: nothing here allocates.
pub fn loadFromEnvironment() void {
    env_tiny_max = routing.tiny_max; // a variable not set keeps the threshold
    env_mid_max = routing.mid_max;
    for (known) |v| {
        const raw = std.c.getenv(v.name) orelse continue;
        const value = std.mem.span(raw);
        const verdict: Verdict = if (value.len == 0) .malformed else v.apply(value);
        if (verdict != .ok and parentWarned(v.name, value)) continue;
        switch (verdict) {
            .ok => {},
            .malformed => os.printStderr("hakmem: ignoring {s}={s} ({s}; expected {s}); using the default {s}\n", .{
                v.name, value, if (value.len == 0) "empty" else "malformed", v.expected, v.default,
            }),
            .above => |r| if (r.value == std.math.maxInt(u64))
                os.printStderr("hakmem: ignoring {s}={s} (above the limit {d}); using the default {s}\n", .{ v.name, value, r.limit, v.default })
            else
                os.printStderr("hakmem: ignoring {s}={s} ({d} is above the limit {d}); using the default {s}\n", .{ v.name, value, r.value, r.limit, v.default }),
            .below => |r| os.printStderr("hakmem: ignoring {s}={s} ({d} is below the lowest value {d}); using the default {s}\n", .{ v.name, value, r.value, r.limit, v.default }),
        }
    }
    // the thresholds as the variables left them: valid whatever they said (each alone is
    // checked against its range, and tiny_max_limit <= mid_max_min); the tables follow
    const thresholds_valid = routing.setThresholds(env_tiny_max, env_mid_max);
    std.debug.assert(thresholds_valid);
    std.debug.assert(routing.tiny_max <= routing.mid_max); // the tiers in order
    // a summary file implies the summary; a recording has its file
    std.debug.assert(stats_file_len == 0 or print_stats_at_exit);
    std.debug.assert(!trace or trace_file_len != 0);
    warnUnknownNames();
}

/// Entries of the environment looked at, at most (its size is bounded by the kernel's
/// ARG_MAX at exec; a program's setenv before the first malloc could grow it further).
const environ_entries_max: usize = 1 << 20;

fn warnUnknownNames() void {
    const env: [*:null]?[*:0]u8 = std.c.environ;
    var i: usize = 0;
    while (i < environ_entries_max) : (i += 1) {
        const entry = env[i] orelse break;
        const line = std.mem.span(entry);
        if (!std.mem.startsWith(u8, line, "HAKMEM_")) continue;
        const name = line[0 .. std.mem.indexOfScalar(u8, line, '=') orelse line.len];
        std.debug.assert(name.len >= "HAKMEM_".len); // the prefix is in the name (no '=' in it)
        if (isKnownName(name)) continue;
        if (parentWarned(name, line[@min(name.len + 1, line.len)..])) continue;
        os.printStderr("hakmem: unknown environment variable {s} (ignored)\n", .{name});
    }
}

fn isKnownName(name: []const u8) bool {
    std.debug.assert(std.mem.startsWith(u8, name, "HAKMEM_")); // (warnUnknownNames asks of those only)
    for (known) |v| if (std.mem.eql(u8, v.name, name)) return true;
    for (tooling) |t| if (std.mem.eql(u8, t, name)) return true;
    return false;
}

// ---------------------------------------------------------------- one warning per process tree
//
// A malformed setting is inherited by every process a program starts (`gcc -c` runs cc1 and
// as: one warning each). A child stays quiet when its parent had the same NAME=value in its
// environment and LD_PRELOAD naming hakmem: the parent's copy of the library read the same
// line when it loaded, and warned. The parent's environment as it was at its exec is
// /proc/<ppid>/environ (NUL-separated entries), read here with a stack buffer (no
// allocation: this runs while the allocator initialises). A child cannot mark its own
// environment instead: setenv allocates, and rewriting the program's environ strings in place
// would change what the program itself (and getenv) sees.

/// True when the parent process had `name`=`value` and preloaded hakmem. Bounded: reads at
/// most environ_read_max bytes.
fn parentWarned(name: []const u8, value: []const u8) bool {
    std.debug.assert(std.mem.startsWith(u8, name, "HAKMEM_")); // only hakmem's settings warn
    std.debug.assert(std.mem.indexOfScalar(u8, name, '=') == null); // a name, the value apart
    var path_buf: [40]u8 = undefined;
    const path = std.fmt.bufPrintZ(&path_buf, "/proc/{d}/environ", .{std.os.linux.getppid()}) catch return false;
    const rc = std.os.linux.open(path.ptr, .{ .ACCMODE = .RDONLY, .CLOEXEC = true }, 0);
    if (std.os.linux.E.init(rc) != .SUCCESS) return false;
    const fd: i32 = @intCast(rc);
    defer _ = std.os.linux.close(fd);
    var scan: EnvironScan = .{ .name = name, .value = value };
    var buf: [4096]u8 = undefined;
    var total: usize = 0;
    while (total < environ_read_max) {
        const n = std.os.linux.read(fd, &buf, buf.len);
        if (std.os.linux.E.init(n) != .SUCCESS or n == 0) break;
        std.debug.assert(n <= buf.len);
        for (buf[0..n]) |c| scan.byte(c);
        total += n;
    }
    std.debug.assert(total < environ_read_max + buf.len); // bounded: one read past the limit at most
    scan.byte(0); // a last entry without its NUL
    return scan.same_entry and scan.preloads_hakmem;
}

const environ_read_max: usize = 1 << 20;

/// Streams the NUL-separated entries of an environment: is `name`=`value` one of them, and
/// is there an LD_PRELOAD entry that names hakmem?
const EnvironScan = struct {
    name: []const u8,
    value: []const u8,
    /// bytes of the current entry seen so far
    pos: usize = 0,
    /// the current entry equals name=value up to pos
    same_so_far: bool = true,
    /// the current entry starts with LD_PRELOAD= up to pos
    preload_so_far: bool = true,
    /// bytes of "hakmem" matched at the end of the current LD_PRELOAD entry's value
    hakmem_matched: usize = 0,
    found_hakmem: bool = false,
    same_entry: bool = false,
    preloads_hakmem: bool = false,

    const preload_prefix = "LD_PRELOAD=";
    const needle = "hakmem"; // its first letter occurs once: a mismatch restarts at 0 or 1

    fn wanted(self: *const EnvironScan, i: usize) ?u8 {
        std.debug.assert(self.name.len > 0); // a variable's name: never an entry "=value"
        std.debug.assert(std.mem.indexOfScalar(u8, self.name, '=') == null);
        if (i < self.name.len) return self.name[i];
        if (i == self.name.len) return '=';
        if (i - self.name.len - 1 < self.value.len) return self.value[i - self.name.len - 1];
        return null;
    }

    fn byte(self: *EnvironScan, c: u8) void {
        std.debug.assert(self.hakmem_matched <= needle.len);
        std.debug.assert(!self.found_hakmem or self.hakmem_matched == needle.len); // found: matched whole
        if (c == 0) {
            if (self.pos > 0 and self.same_so_far and self.wanted(self.pos) == null) self.same_entry = true;
            if (self.pos >= preload_prefix.len and self.preload_so_far and self.found_hakmem) self.preloads_hakmem = true;
            self.* = .{ .name = self.name, .value = self.value, .same_entry = self.same_entry, .preloads_hakmem = self.preloads_hakmem };
            std.debug.assert(self.pos == 0); // the next entry starts afresh
            std.debug.assert(self.hakmem_matched == 0);
            return;
        }
        if (self.same_so_far) self.same_so_far = self.wanted(self.pos) == c;
        if (self.pos < preload_prefix.len) {
            if (self.preload_so_far) self.preload_so_far = preload_prefix[self.pos] == c;
        } else if (self.preload_so_far and !self.found_hakmem) {
            self.hakmem_matched = if (c == needle[self.hakmem_matched]) self.hakmem_matched + 1 else @intFromBool(c == needle[0]);
            std.debug.assert(self.hakmem_matched <= needle.len);
            if (self.hakmem_matched == needle.len) self.found_hakmem = true;
        }
        self.pos +|= 1;
    }
};

test "EnvironScan: the same entry and a preload naming hakmem, across any split" {
    const env = "A=1\x00HAKMEM_TINY_MAX=9k\x00LD_PRELOAD=/x/libhahakmem-checked.so\x00B=2";
    var scan: EnvironScan = .{ .name = "HAKMEM_TINY_MAX", .value = "9k" };
    for (env) |c| scan.byte(c);
    scan.byte(0);
    try std.testing.expect(scan.same_entry and scan.preloads_hakmem);
    var other: EnvironScan = .{ .name = "HAKMEM_TINY_MAX", .value = "9" };
    for (env) |c| other.byte(c);
    other.byte(0);
    try std.testing.expect(!other.same_entry);
    var unpreloaded: EnvironScan = .{ .name = "A", .value = "1" };
    for ("A=1\x00LD_PRELOAD=/x/libother.so\x00") |c| unpreloaded.byte(c);
    try std.testing.expect(unpreloaded.same_entry and !unpreloaded.preloads_hakmem);
}

/// Parses "123", "64k"/"64K" (KiB), "1m"/"1M" (MiB), "1g" (GiB). Null when malformed or overflowing.
pub fn parseSize(text: []const u8) ?usize {
    const bytes = parseSizeChecked(text) catch return null;
    std.debug.assert(text.len > 0); // (an empty text is malformed)
    return bytes;
}

fn parseSizeChecked(text: []const u8) error{ Malformed, Overflow }!usize {
    if (text.len == 0) return error.Malformed;
    var digits = text;
    var unit: usize = 1;
    switch (text[text.len - 1]) {
        'k', 'K' => unit = 1 << 10,
        'm', 'M' => unit = 1 << 20,
        'g', 'G' => unit = 1 << 30,
        else => {},
    }
    if (unit != 1) digits = text[0 .. text.len - 1];
    std.debug.assert(std.math.isPowerOfTwo(unit)); // bytes, KiB, MiB or GiB
    std.debug.assert((digits.len < text.len) == (unit != 1)); // a suffix was taken off, or none
    const n = std.fmt.parseUnsigned(usize, digits, 10) catch |e| return switch (e) {
        error.Overflow => error.Overflow,
        error.InvalidCharacter => error.Malformed,
    };
    const bytes = std.math.mul(usize, n, unit) catch return error.Overflow;
    std.debug.assert(bytes % unit == 0); // a whole number of units
    return bytes;
}

/// A size within [low, high]; a number too large for usize is "above" as well.
fn sizeIn(value: []const u8, low: usize, high: usize) struct { Verdict, usize } {
    std.debug.assert(low <= high); // a range some value is in
    const n = parseSizeChecked(value) catch |e| return switch (e) {
        error.Overflow => .{ .{ .above = .{ .value = std.math.maxInt(u64), .limit = high } }, 0 },
        error.Malformed => .{ .malformed, 0 },
    };
    if (n > high) return .{ .{ .above = .{ .value = n, .limit = high } }, 0 };
    if (n < low) return .{ .{ .below = .{ .value = n, .limit = low } }, 0 };
    std.debug.assert(low <= n);
    std.debug.assert(n <= high);
    return .{ .ok, n };
}

/// HAKMEM_TINY_MAX and HAKMEM_MID_MAX as read (the thresholds as they were when unset or
/// refused); handed to routing.setThresholds at the end of loadFromEnvironment.
var env_tiny_max: usize = routing.tiny_max_default;
var env_mid_max: usize = routing.mid_max_default;

fn applyTinyMax(value: []const u8) Verdict {
    const verdict, const n = sizeIn(value, 0, routing.tiny_max_limit);
    if (verdict == .ok) env_tiny_max = n;
    std.debug.assert(env_tiny_max <= routing.tiny_max_limit); // set or kept, within the range
    return verdict;
}

fn applyMidMax(value: []const u8) Verdict {
    const verdict, const n = sizeIn(value, routing.mid_max_min, routing.mid_max_limit);
    if (verdict == .ok) env_mid_max = n;
    std.debug.assert(env_mid_max >= routing.mid_max_min); // set or kept, within the range
    std.debug.assert(env_mid_max <= routing.mid_max_limit);
    return verdict;
}

/// A whole number up to `limit`.
fn countUpTo(value: []const u8, limit: u64) struct { Verdict, u64 } {
    std.debug.assert(limit > 0); // a setting with room for a value
    const n = std.fmt.parseUnsigned(u64, value, 10) catch |e| return switch (e) {
        error.Overflow => .{ .{ .above = .{ .value = std.math.maxInt(u64), .limit = limit } }, 0 },
        error.InvalidCharacter => .{ .malformed, 0 },
    };
    if (n > limit) return .{ .{ .above = .{ .value = n, .limit = limit } }, 0 };
    std.debug.assert(n <= limit); // callers shift it into bytes: no overflow within the limit
    return .{ .ok, n };
}

fn applyPurgeDelay(value: []const u8) Verdict {
    const verdict, const n = countUpTo(value, purge_delay_ms_max);
    if (verdict == .ok) purge_delay_ms = n;
    std.debug.assert(purge_delay_ms <= purge_delay_ms_max); // set or kept, within the limit
    return verdict;
}

fn applyRetainMax(value: []const u8) Verdict {
    const verdict, const n = countUpTo(value, 1 << 20);
    if (verdict == .ok) retain_max_bytes = @as(usize, @intCast(n)) << 20;
    std.debug.assert(retain_max_bytes <= 1 << 40); // the limit's MiB, no shift overflowed
    std.debug.assert(retain_max_bytes % (1 << 20) == 0); // whole MiB, set or kept
    return verdict;
}

fn applyLargeCache(value: []const u8) Verdict {
    const verdict, const n = countUpTo(value, 1 << 20);
    if (verdict == .ok) large_cache_max_bytes = @as(usize, @intCast(n)) << 20;
    std.debug.assert(large_cache_max_bytes <= 1 << 40); // the limit's MiB, no shift overflowed
    std.debug.assert(large_cache_max_bytes % (1 << 20) == 0); // whole MiB, set or kept
    return verdict;
}

fn applyMemoryLimit(value: []const u8) Verdict {
    const verdict, const n = countUpTo(value, 1 << 30);
    if (verdict == .ok) memory_limit_bytes = @as(usize, @intCast(n)) << 20;
    std.debug.assert(memory_limit_bytes % (1 << 20) == 0); // whole MiB (budget.zig's unit)
    std.debug.assert(memory_limit_bytes <= 1 << 50); // no shift overflowed
    return verdict;
}

fn applyPath(value: []const u8, buf: *[path_max + 1]u8, len: *usize) Verdict {
    if (value.len > path_max) return .{ .above = .{ .value = value.len, .limit = path_max } };
    std.debug.assert(value.len < buf.len); // room for the NUL
    @memcpy(buf[0..value.len], value);
    buf[value.len] = 0;
    len.* = value.len;
    std.debug.assert(buf[len.*] == 0); // what profilePath's [:0] slice reads
    return .ok;
}

fn applyCgroupDir(value: []const u8) Verdict {
    const verdict = applyPath(value, &cgroup_dir_buf, &cgroup_dir_len);
    std.debug.assert(verdict != .ok or std.mem.eql(u8, cgroupDir().?, value)); // read back as given
    std.debug.assert(verdict == .ok or value.len > path_max); // refused only when too long
    return verdict;
}

fn applyProfile(value: []const u8) Verdict {
    const verdict = applyPath(value, &profile_path_buf, &profile_path_len);
    std.debug.assert(verdict != .ok or std.mem.eql(u8, profilePath().?, value)); // read back as given
    std.debug.assert(verdict == .ok or value.len > path_max); // refused only when too long
    return verdict;
}

fn applyProfileSample(value: []const u8) Verdict {
    const verdict, const n = countUpTo(value, 1 << 30);
    if (verdict != .ok) return verdict;
    if (n == 0) return .{ .below = .{ .value = 0, .limit = 1 } };
    profile_sample_bytes = @as(usize, @intCast(n)) << 10;
    std.debug.assert(profile_sample_bytes >= 1 << 10); // profile.zig's mean gap: never 0
    std.debug.assert(profile_sample_bytes <= 1 << 40); // the limit's KiB, no shift overflowed
    return .ok;
}

/// HAKMEM_CGROUP_DIR, or null: the process's own cgroup.
pub fn cgroupDir() ?[]const u8 {
    std.debug.assert(cgroup_dir_len <= path_max);
    if (cgroup_dir_len == 0) return null;
    return cgroup_dir_buf[0..cgroup_dir_len];
}

/// HAKMEM_PROFILE, or null: no profiling.
pub fn profilePath() ?[:0]const u8 {
    std.debug.assert(profile_path_len <= path_max);
    if (profile_path_len == 0) return null;
    return profile_path_buf[0..profile_path_len :0];
}

fn applyGuardSample(value: []const u8) Verdict {
    const verdict, const n = countUpTo(value, 1 << 20);
    if (verdict == .ok) guard_sample_mb = @intCast(n);
    std.debug.assert(guard_sample_mb <= 1 << 20); // guard.zig shifts it into bytes
    return verdict;
}

fn applyAdapt(value: []const u8) Verdict {
    if (std.mem.eql(u8, value, "1")) adapt = true else if (std.mem.eql(u8, value, "0")) adapt = false else return .malformed;
    std.debug.assert(adapt == (value[0] == '1')); // the setting is the value read ("1" or "0")
    return .ok;
}

fn applyBackground(value: []const u8) Verdict {
    if (std.mem.eql(u8, value, "1")) background = true else if (std.mem.eql(u8, value, "0")) background = false else return .malformed;
    std.debug.assert(background == (value[0] == '1')); // the setting is the value read ("1" or "0")
    return .ok;
}

fn applyCheck(value: []const u8) Verdict {
    const eql = std.mem.eql;
    if (eql(u8, value, "1") or eql(u8, value, "abort")) {
        check_mode = .abort;
    } else if (eql(u8, value, "warn")) {
        check_mode = .warn;
    } else if (eql(u8, value, "0") or eql(u8, value, "off")) {
        check_mode = .off;
    } else return .malformed;
    // the mode is the value read: "0"/"off" off, "warn" warn, "1"/"abort" abort
    std.debug.assert((check_mode == .off) == (value[0] == '0' or value[0] == 'o'));
    std.debug.assert((check_mode == .warn) == (value[0] == 'w'));
    return .ok;
}

fn applyCheckStacks(value: []const u8) Verdict {
    if (std.mem.eql(u8, value, "1")) check_stacks = true else if (std.mem.eql(u8, value, "0")) check_stacks = false else return .malformed;
    std.debug.assert(check_stacks == (value[0] == '1')); // the setting is the value read ("1" or "0")
    return .ok;
}

fn applyStats(value: []const u8) Verdict {
    if (std.mem.eql(u8, value, "1") or std.mem.eql(u8, value, "true")) {
        print_stats_at_exit = true;
        return .ok;
    }
    if (std.mem.eql(u8, value, "0") or std.mem.eql(u8, value, "false")) {
        return .ok; // off is the default (HAKMEM_STATS_FILE, read after this, may still turn it on)
    }
    std.debug.assert(value.len > 0); // (an empty value is refused before: loadFromEnvironment)
    return .malformed;
}

/// HAKMEM_STATS_FILE=path: the exit summary goes to `path` (appended; created 0644), which
/// is made absolute now, so a later chdir does not move it. Implies HAKMEM_STATS=1.
fn applyStatsFile(value: []const u8) Verdict {
    const verdict = absolutePathInto(&stats_file_buf, &stats_file_len, value);
    if (verdict == .ok) print_stats_at_exit = true;
    std.debug.assert(verdict != .ok or stats_file_buf[0] == '/'); // absolute: a chdir does not move it
    std.debug.assert(verdict != .ok or statsFile() != null); // read back by the exit summary
    return verdict;
}

/// HAKMEM_TRACE=path: record every allocation call into `path` (trace.zig), made absolute now.
fn applyTrace(value: []const u8) Verdict {
    const verdict = absolutePathInto(&trace_file_buf, &trace_file_len, value);
    if (verdict == .ok) trace = true;
    std.debug.assert(verdict != .ok or trace_file_buf[0] == '/'); // absolute: a chdir does not move it
    std.debug.assert(verdict != .ok or traceFile() != null); // read back by trace.start
    return verdict;
}

/// `value` with the working directory before it unless it is absolute, NUL-terminated in
/// `buf`; `len` is set only when it fits.
fn absolutePathInto(buf: *[stats_file_max + 1]u8, len: *usize, value: []const u8) Verdict {
    std.debug.assert(value.len > 0); // loadFromEnvironment refuses an empty value first
    var at: usize = 0;
    if (value[0] != '/') {
        _ = std.c.getcwd(buf, buf.len) orelse return .malformed;
        at = std.mem.indexOfScalar(u8, buf, 0) orelse return .malformed;
        if (at > 0 and buf[at - 1] != '/') {
            if (at >= stats_file_max) return .malformed;
            buf[at] = '/';
            at += 1;
        }
    }
    if (at + value.len > stats_file_max) return .{ .above = .{ .value = at + value.len, .limit = stats_file_max } };
    @memcpy(buf[at..][0..value.len], value);
    len.* = at + value.len;
    buf[len.*] = 0;
    std.debug.assert(len.* > 0); // a path,
    std.debug.assert(len.* <= stats_file_max); // and its NUL in the buffer
    std.debug.assert(buf[0] == '/'); // absolute: the working directory before a relative one
    return .ok;
}

/// A path template (HAKMEM_STATS_FILE, HAKMEM_TRACE) with `%p` replaced by the process
/// id (and `%%` by `%`), NUL-terminated in `out`; null when it does not fit.
pub fn pathWithPid(template: []const u8, out: *[stats_file_max + 32:0]u8) ?[:0]const u8 {
    std.debug.assert(template.len <= stats_file_max); // a path as absolutePathInto kept it
    var w: std.Io.Writer = .fixed(out[0 .. stats_file_max + 31]);
    var i: usize = 0;
    while (i < template.len) : (i += 1) {
        if (template[i] == '%' and i + 1 < template.len and (template[i + 1] == 'p' or template[i + 1] == '%')) {
            i += 1;
            if (template[i] == 'p') w.print("{d}", .{std.os.linux.getpid()}) catch return null else w.writeByte('%') catch return null;
        } else w.writeByte(template[i]) catch return null;
    }
    const len = w.buffered().len;
    std.debug.assert(len < out.len); // the writer stopped a byte short: room for the NUL
    out[len] = 0;
    return out[0..len :0];
}

/// The HAKMEM_TRACE path template (`%p`: the process id), or null when not recording.
pub fn traceFile() ?[:0]const u8 {
    std.debug.assert(trace_file_len <= stats_file_max);
    if (trace_file_len == 0) return null;
    std.debug.assert(trace_file_buf[0] == '/'); // made absolute when read: a chdir does not move it
    return trace_file_buf[0..trace_file_len :0];
}

/// The HAKMEM_STATS_FILE path, or null for stderr.
pub fn statsFile() ?[:0]const u8 {
    std.debug.assert(stats_file_len <= stats_file_max);
    if (stats_file_len == 0) return null;
    std.debug.assert(stats_file_buf[0] == '/'); // made absolute when read: a chdir does not move it
    return stats_file_buf[0..stats_file_len :0];
}

test "parseSize" {
    try std.testing.expectEqual(@as(?usize, 1024), parseSize("1024"));
    try std.testing.expectEqual(@as(?usize, 65536), parseSize("64k"));
    try std.testing.expectEqual(@as(?usize, 1 << 20), parseSize("1M"));
    try std.testing.expectEqual(@as(?usize, null), parseSize("12x"));
    try std.testing.expectEqual(@as(?usize, null), parseSize(""));
    try std.testing.expectEqual(@as(?usize, null), parseSize("99999999999999999999"));
}

test "settings: empty, malformed and out-of-range values are refused with their limit" {
    try std.testing.expectEqual(Verdict.malformed, applyTinyMax("12x"));
    const above = applyTinyMax("9k");
    try std.testing.expectEqual(@as(u64, 9216), above.above.value);
    try std.testing.expectEqual(@as(u64, routing.tiny_max_limit), above.above.limit);
    const below = applyMidMax("4k");
    try std.testing.expectEqual(@as(u64, routing.mid_max_min), below.below.limit);
    try std.testing.expect(applyTinyMax("99999999999999999999999") == .above);
    try std.testing.expect(applyPurgeDelay("99999999999999999999999") == .above);
    try std.testing.expectEqual(Verdict.malformed, applyPurgeDelay("5s"));
    try std.testing.expectEqual(Verdict.malformed, applyAdapt("yes"));
    try std.testing.expectEqual(Verdict.malformed, applyCheckStacks("yes"));
    try std.testing.expectEqual(Verdict.ok, applyCheckStacks("1"));
    try std.testing.expect(check_stacks);
    try std.testing.expectEqual(Verdict.ok, applyCheckStacks("0"));
    try std.testing.expect(!check_stacks);
}
