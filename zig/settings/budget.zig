//! budget.zig — how much memory hakmem may have: a hard budget set by hand
//! (HAKMEM_MEMORY_LIMIT_MB), and the limits of the cgroup v2 the process runs in
//! (memory.max, memory.high), watched at the maintenance tick.
//!
//!   what is counted: stats.os_mapped_bytes, everything hakmem has mapped and committed
//!   (4 MiB per segment, whatever its pages hold; large blocks, retained region units and
//!   cached mappings), plus the claims in flight (claimed before a mapping, settled once
//!   the mapping is counted), so two threads cannot both pass the last free bytes.
//!
//!     0 ─────────────── used ──────── limit - limit/8 ──────── limit
//!                                     │ pressure: heaps purge   │ claim fails: the
//!                                     │ everything retained at  │ caller purges all and
//!                                     │ their next maintenance  │ tries once more, then
//!                                     │ tick (caches flushed)   │ NULL with ENOMEM
//!
//!   cgroup: at start /proc/self/cgroup's "0::<path>" names /sys/fs/cgroup/<path>
//!   (HAKMEM_CGROUP_DIR overrides the directory: tests, cgroupfs mounted elsewhere); its
//!   memory.max and memory.high (the lower one that is set) are the soft limit. At most
//!   every poll_ms a maintenance tick reads memory.current: above 7/8 of the limit (or
//!   with the hard budget 7/8 used) every heap purges everything retained at once (caches
//!   flushed) at its next maintenance, once per poll that finds it so. The
//!   kernel charges the cgroup for more than hakmem's memory, so this never fails a malloc.
//!
//! Checked where memory is mapped or committed (arena.mapSegment, large.alloc,
//! large_resize.resize), never on malloc's or free's fast paths. Nothing here allocates.
const std = @import("std");
const os = @import("../base/os.zig");
const stats = @import("stats.zig");
const config = @import("config.zig");

/// HAKMEM_MEMORY_LIMIT_MB in bytes; 0: no hard budget. Written once, at init (config.zig).
pub var limit_bytes: usize = 0;
/// Bytes claimed by mappings in progress (not yet in stats.os_mapped_bytes).
var claimed_bytes: stats.Counter = .init(0);
/// Bumped by every poll (at most every poll_ms) that finds a limit nearly reached: each heap
/// purges everything retained once per bump it sees (shouldRelieve).
var pressure_epoch: std.atomic.Value(u32) = .init(0);
var next_poll_ms: std.atomic.Value(u64) = .init(0);
pub const poll_ms = 20;
/// Claims refused (each a NULL the program saw, unless a retry after purging succeeded).
pub var refusals: stats.Counter = .init(0);
/// Maintenance passes forced by pressure (hard budget or cgroup).
pub var relief_passes: stats.Counter = .init(0);

/// Mapped bytes allowed before pressure is declared: 7/8 of a limit.
fn pressureMark(limit: usize) usize {
    std.debug.assert(limit > 0); // (0 is no limit: callers return first)
    const mark = limit - limit / 8;
    std.debug.assert(mark > 0); // a used byte count of 0 is never pressure
    std.debug.assert(mark <= limit);
    return mark;
}

/// Room for `bytes` more under the hard budget: true (claimed: call settle after the
/// mapping was counted, or failed) or false (nothing claimed). Always true without a budget.
pub fn claim(bytes: usize) bool {
    std.debug.assert(bytes % os.page_size == 0); // for a mapping: whole pages
    const limit = limit_bytes;
    if (limit == 0) return true;
    const before = claimed_bytes.fetchAdd(bytes, .monotonic);
    const used = stats.os_mapped_bytes.load(.monotonic) + before + bytes;
    if (used <= limit) return true;
    const undone = claimed_bytes.fetchSub(bytes, .monotonic);
    std.debug.assert(undone >= bytes); // our own claim is still in there
    _ = refusals.fetchAdd(1, .monotonic);
    return false;
}

/// The mapping a claim was for is counted in os_mapped_bytes now (or was not made).
pub fn settle(bytes: usize) void {
    std.debug.assert(bytes % os.page_size == 0); // what claim took: whole pages
    if (limit_bytes == 0) return;
    const before = claimed_bytes.fetchSub(bytes, .monotonic);
    std.debug.assert(before >= bytes); // settles a claim that passed, once
}

/// Whether a heap's maintenance should purge everything retained at once: a limit is
/// nearly reached and this heap (`seen`: its last epoch) has not done so since the last
/// poll found it. Polls (the hard budget's use, memory.current) at most every poll_ms.
/// Slow paths only; without limits two loads.
pub fn shouldRelieve(now_ms: u64, seen: *u32) bool {
    std.debug.assert(now_ms < std.math.maxInt(u64) / 2); // a clock in ms: now_ms + poll_ms never wraps
    if (limit_bytes == 0 and cgroup_limit_bytes == 0) return false;
    const due = next_poll_ms.load(.monotonic);
    if (now_ms >= due and next_poll_ms.cmpxchgStrong(due, now_ms + poll_ms, .monotonic, .monotonic) == null) {
        if (hardPressing() or cgroupPressing()) _ = pressure_epoch.fetchAdd(1, .monotonic);
    }
    const epoch = pressure_epoch.load(.monotonic);
    if (epoch == seen.*) return false;
    seen.* = epoch;
    _ = relief_passes.fetchAdd(1, .monotonic);
    return true;
}

fn hardPressing() bool {
    const limit = limit_bytes;
    if (limit == 0) return false;
    return stats.os_mapped_bytes.load(.monotonic) + claimed_bytes.load(.monotonic) > pressureMark(limit);
}

/// Process init, after the settings: the hard budget, the cgroup's limits.
pub fn init() void {
    limit_bytes = config.memory_limit_bytes;
    std.debug.assert(limit_bytes % (1 << 20) == 0); // HAKMEM_MEMORY_LIMIT_MB: whole MiB
    initCgroup(config.cgroupDir());
    std.debug.assert(cgroup_limit_bytes == 0 or current_path_len > 0); // a limit is watched through its memory.current
}

// ---------------------------------------------------------------- cgroup v2

const path_max = 512;
/// "<cgroup dir>/memory.current", NUL-terminated; empty: no cgroup limit to watch.
var current_path_buf: [path_max]u8 = [_]u8{0} ** path_max;
var current_path_len: usize = 0;
/// The lower of memory.max and memory.high (0: none set).
pub var cgroup_limit_bytes: usize = 0;
/// memory.current at the last poll (for the report).
pub var cgroup_current_bytes: std.atomic.Value(u64) = .init(0);

/// Reads the cgroup's limits once (process init). `dir_override`: HAKMEM_CGROUP_DIR.
pub fn initCgroup(dir_override: ?[]const u8) void {
    var dir_buf: [path_max]u8 = undefined;
    const dir = dir_override orelse cgroupDir(&dir_buf) orelse return;
    std.debug.assert(dir.len > 0); // (HAKMEM_CGROUP_DIR is a path, /sys/fs/cgroup... is one)
    const max = readLimit(dir, "memory.max");
    const high = readLimit(dir, "memory.high");
    const limit = if (max != 0 and high != 0) @min(max, high) else @max(max, high);
    std.debug.assert(max == 0 or limit <= max); // the lower of the ones set
    std.debug.assert(high == 0 or limit <= high);
    if (limit == 0) return;
    const suffix = "/memory.current";
    if (dir.len + suffix.len + 1 > path_max) return;
    @memcpy(current_path_buf[0..dir.len], dir);
    @memcpy(current_path_buf[dir.len..][0..suffix.len], suffix);
    current_path_len = dir.len + suffix.len;
    std.debug.assert(current_path_len < path_max); // room for the NUL
    current_path_buf[current_path_len] = 0;
    cgroup_limit_bytes = limit;
}

/// /sys/fs/cgroup/<path> from /proc/self/cgroup's unified-hierarchy line "0::<path>".
fn cgroupDir(buf: *[path_max]u8) ?[]const u8 {
    var text_buf: [4096]u8 = undefined;
    const text = readFile("/proc/self/cgroup", &text_buf) orelse return null;
    var lines = std.mem.splitScalar(u8, text, '\n');
    while (lines.next()) |line| {
        if (!std.mem.startsWith(u8, line, "0::")) continue;
        const path = std.mem.trimRight(u8, line[3..], "/");
        const root = "/sys/fs/cgroup";
        if (root.len + path.len >= path_max) return null;
        @memcpy(buf[0..root.len], root);
        @memcpy(buf[root.len..][0..path.len], path);
        const dir = buf[0 .. root.len + path.len];
        std.debug.assert(dir[dir.len - 1] != '/'); // readLimit puts the one slash before a file's name
        std.debug.assert(dir.len < path_max);
        return dir;
    }
    return null;
}

/// A limit file's value in bytes: 0 when absent, "max" or malformed.
fn readLimit(dir: []const u8, name: []const u8) usize {
    std.debug.assert(dir.len > 0);
    std.debug.assert(std.mem.startsWith(u8, name, "memory.")); // a file of the memory controller
    var path: [path_max]u8 = undefined;
    if (dir.len + 1 + name.len + 1 > path_max) return 0;
    @memcpy(path[0..dir.len], dir);
    path[dir.len] = '/';
    @memcpy(path[dir.len + 1 ..][0..name.len], name);
    path[dir.len + 1 + name.len] = 0;
    var buf: [64]u8 = undefined;
    const text = readFile(@ptrCast(path[0 .. dir.len + 1 + name.len :0]), &buf) orelse return 0;
    return parseBytes(text);
}

fn parseBytes(text: []const u8) usize {
    const t = std.mem.trim(u8, text, " \n\t");
    return std.fmt.parseUnsigned(usize, t, 10) catch 0;
}

fn readFile(path: [*:0]const u8, buf: []u8) ?[]const u8 {
    const fd = std.posix.openZ(path, .{ .CLOEXEC = true }, 0) catch return null;
    defer std.posix.close(fd);
    const n = std.posix.read(fd, buf) catch return null;
    std.debug.assert(n <= buf.len); // the kernel writes at most what was asked
    return buf[0..n];
}

/// memory.current above 7/8 of the cgroup's limit (a poll; read with one open/read/close).
fn cgroupPressing() bool {
    const limit = cgroup_limit_bytes;
    if (limit == 0) return false;
    std.debug.assert(current_path_len > 0); // initCgroup sets a limit only with its path
    std.debug.assert(current_path_buf[current_path_len] == 0); // (the [:0] slice below)
    var buf: [64]u8 = undefined;
    const text = readFile(@ptrCast(current_path_buf[0..current_path_len :0]), &buf) orelse return false;
    const current = parseBytes(text);
    cgroup_current_bytes.store(current, .monotonic);
    return current > pressureMark(limit);
}

// ---------------------------------------------------------------- tests

const testing = std.testing;

test "claims within the budget pass, the one beyond fails and claims nothing" {
    const saved = limit_bytes;
    defer limit_bytes = saved;
    const used = stats.os_mapped_bytes.load(.monotonic);
    limit_bytes = used + (8 << 20);
    try testing.expect(claim(4 << 20));
    try testing.expect(claim(4 << 20)); // exactly at the limit, in flight
    try testing.expect(!claim(os.page_size)); // (claims are for mappings: whole pages)
    var seen: u32 = pressure_epoch.load(.monotonic);
    next_poll_ms.store(0, .monotonic);
    try testing.expect(shouldRelieve(0, &seen)); // 8 MiB claimed is beyond 7/8
    try testing.expect(!shouldRelieve(0, &seen)); // once per poll
    try testing.expect(shouldRelieve(poll_ms, &seen)); // still near: the next poll
    settle(4 << 20);
    settle(4 << 20);
    try testing.expectEqual(@as(u64, 0), claimed_bytes.load(.monotonic));
    limit_bytes = 0;
    try testing.expect(claim(1 << 40));
    settle(1 << 40);
    try testing.expectEqual(@as(u64, 0), claimed_bytes.load(.monotonic));
}

test "cgroup limits: the lower one set, 'max' is none, memory.current polled" {
    var tmp = testing.tmpDir(.{});
    defer tmp.cleanup();
    try tmp.dir.writeFile(.{ .sub_path = "memory.max", .data = "max\n" });
    try tmp.dir.writeFile(.{ .sub_path = "memory.high", .data = "1048576\n" });
    try tmp.dir.writeFile(.{ .sub_path = "memory.current", .data = "1000000\n" });
    var dir_buf: [std.fs.max_path_bytes]u8 = undefined;
    const dir = try tmp.dir.realpath(".", &dir_buf);
    const saved_limit = cgroup_limit_bytes;
    defer cgroup_limit_bytes = saved_limit;
    initCgroup(dir);
    try testing.expectEqual(@as(usize, 1 << 20), cgroup_limit_bytes);
    try testing.expect(cgroupPressing());
    try tmp.dir.writeFile(.{ .sub_path = "memory.current", .data = "10\n" });
    try testing.expect(!cgroupPressing());
    try testing.expectEqual(@as(u64, 10), cgroup_current_bytes.load(.monotonic));
    try testing.expectEqual(@as(usize, 0), parseBytes("max"));
}
