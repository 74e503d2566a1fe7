//! check_sites.zig — where check mode says a block was allocated and freed.
//!
//! The libc entry points (preload.zig, alloc.zig) write, in check mode only, the call's
//! return address and the caller's frame pointer into a thread-local slot (noteEntry);
//! check.zig takes them (take) when it hands out or frees a block and keeps a Site: the
//! return address, or with HAKMEM_CHECK_STACKS=1 a short backtrace (up to frames_max return
//! addresses, walked along the frame pointers) kept once in a depot and named by its
//! index. Reports print them (print), symbolized with dladdr (file+offset, and the symbol
//! when the file exports it). Nothing here allocates through malloc.
//!
//! The walk reads only words inside the calling thread's stack mapping (found once per
//! thread in /proc/self/maps, foreign.zig), at rising addresses, 8-aligned: frames without a
//! frame pointer (a program built with -fomit-frame-pointer, gcc's default at -O2) end the
//! walk early or give addresses that mean nothing, never a fault.
const std = @import("std");
const os = @import("../base/os.zig");
const config = @import("../settings/config.zig");
const foreign = @import("../base/foreign.zig");
const thread = @import("../thread/thread.zig");
const Lock = @import("../base/lock.zig").Lock;

/// 0: unknown; else a return address, or (stack_flag set) a depot index.
pub const Site = u64;
pub const frames_max = 8;
pub const stack_flag: u64 = 1 << 63;

/// The calling thread's stack mapping, as last found (zero: not yet).
pub const StackBounds = struct { start: usize = 0, end: usize = 0 };

/// An entry point's first act in check mode: `frame` is its own frame address
/// (@frameAddress(): the function keeps a frame pointer), so [frame] is the caller's frame
/// pointer and [frame + 8] the return address into the caller.
pub inline fn noteEntry(frame: usize) void {
    std.debug.assert(frame != 0); // a frame pointer (the entry points keep one)
    std.debug.assert(frame % @alignOf(usize) == 0);
    const e = thread.checkEntry();
    e[0] = @as(*const usize, @ptrFromInt(frame + 8)).*;
    e[1] = @as(*const usize, @ptrFromInt(frame)).*;
}

/// The site of the call whose entry point's own frame address is `frame` (noteEntry's
/// argument): its return address, for an entry point that passes it along itself instead
/// of noting it (malloc's and free's quick paths, without HAKMEM_CHECK_STACKS).
pub inline fn callerOf(frame: usize) Site {
    std.debug.assert(frame != 0); // a frame pointer (the entry points keep one)
    std.debug.assert(!config.check_stacks); // (a backtrace walks from the noted frame: take)
    return @as(*const usize, @ptrFromInt(frame + 8)).*;
}

/// The site of the call being served (and forgets it: a call that did not note an entry,
/// hak_alloc's say, gets 0).
pub inline fn take(bounds: *StackBounds) Site {
    const e = thread.checkEntry();
    const ra = e[0];
    const fp = e[1];
    e[0] = 0;
    e[1] = 0;
    if (ra == 0 or !config.check_stacks) return ra;
    const site = backtrace(ra, fp, bounds);
    std.debug.assert(site != 0); // a call that noted its entry is known
    std.debug.assert(bounds.start <= bounds.end); // the stack as last found (or none)
    return site;
}

/// HAKMEM_CHECK_STACKS=1: the backtrace from the call's return address `ra` along the frame
/// pointers from `fp`, kept in the depot (a frame of its own: the walk's buffers stay off
/// the path of a call without it).
noinline fn backtrace(ra: usize, fp: usize, bounds: *StackBounds) Site {
    std.debug.assert(ra != 0);
    var frames: [frames_max]usize = undefined;
    frames[0] = ra;
    const n = 1 + walk(fp, frames[1..], bounds);
    std.debug.assert(n <= frames_max); // the call's own frame and the walk's
    const site = depot.store(frames[0..n]) orelse ra;
    std.debug.assert(site == ra or site & stack_flag != 0); // a backtrace, or its first frame when the depot is full
    return site;
}

/// Return addresses along the frame-pointer chain from `fp` into `out`; how many.
fn walk(fp: usize, out: []usize, bounds: *StackBounds) usize {
    var marker: u8 = 0;
    const sp = @intFromPtr(&marker); // everything from here to the stack's end is mapped
    if (sp < bounds.start or sp >= bounds.end) {
        const m = foreign.mappingOf(sp) orelse foreign.Range{ .start = 0, .end = 0 };
        bounds.* = .{ .start = m.start, .end = m.end };
    }
    std.debug.assert(bounds.start <= bounds.end); // a mapping, or none (0, 0)
    var frame = fp;
    var n: usize = 0;
    while (n < out.len) {
        if (frame <= sp or frame % 8 != 0 or frame > bounds.end -| 16) break;
        // the two words read lie between this frame and the stack's end: mapped
        std.debug.assert(frame > sp);
        std.debug.assert(frame + 16 <= bounds.end);
        const next = @as(*const usize, @ptrFromInt(frame)).*;
        const ra = @as(*const usize, @ptrFromInt(frame + 8)).*;
        if (ra == 0) break;
        out[n] = ra;
        n += 1;
        if (next <= frame) break; // the stack grows down: a caller's frame is above
        frame = next;
    }
    std.debug.assert(n <= out.len);
    return n;
}

/// Backtraces kept once each (HAKMEM_CHECK_STACKS=1): open addressing over mapped memory,
/// under a lock; full (64 Ki backtraces), a site falls back to its return address.
const depot = struct {
    const capacity = 1 << 16;
    const probes_max = 64;
    var lock: Lock = .{};
    var traces: ?[*][frames_max]usize = null;
    var hashes: ?[*]u64 = null;
    var failed = false;

    fn store(frames: []const usize) ?Site {
        std.debug.assert(frames.len >= 1); // the call's return address at least
        std.debug.assert(frames.len <= frames_max);
        std.debug.assert(frames[0] != 0); // (get ends a trace at its first 0)
        var trace = [_]usize{0} ** frames_max;
        @memcpy(trace[0..frames.len], frames);
        const h = std.hash.Wyhash.hash(0, std.mem.asBytes(&trace)) | 1;
        lock.acquire();
        defer lock.release();
        if (!ready()) return null;
        std.debug.assert(h != 0); // (0 marks an empty slot)
        var i: usize = @intCast(h & (capacity - 1));
        for (0..probes_max) |_| {
            std.debug.assert(i < capacity);
            if (hashes.?[i] == 0) {
                traces.?[i] = trace;
                @atomicStore(u64, &hashes.?[i], h, .release);
                return stack_flag | i;
            }
            if (hashes.?[i] == h and std.mem.eql(usize, &traces.?[i], &trace)) return stack_flag | i;
            i = (i + 1) & (capacity - 1);
        }
        return null;
    }

    fn ready() bool {
        std.debug.assert(lock.isHeld()); // (store's: one thread maps the depot)
        std.debug.assert(traces == null or hashes != null); // both mapped, or not yet in use
        if (traces != null) return true;
        if (failed) return false;
        const t = os.map(capacity * @sizeOf([frames_max]usize)) orelse return fail();
        const hs = os.map(capacity * @sizeOf(u64)) orelse return fail();
        traces = @ptrCast(@alignCast(t));
        hashes = @ptrCast(@alignCast(hs));
        return true;
    }

    fn fail() bool {
        std.debug.assert(traces == null); // (never in use: stores fall back to the return address)
        failed = true;
        return false;
    }

    /// The backtrace of a site with stack_flag (written before its hash was published).
    fn get(site: Site) []const usize {
        const i: usize = @intCast(site & ~stack_flag);
        if (i >= capacity or hashes == null or @atomicLoad(u64, &hashes.?[i], .acquire) == 0) return &.{};
        const trace = &traces.?[i];
        var n: usize = 0;
        while (n < frames_max and trace[n] != 0) n += 1;
        std.debug.assert(n >= 1); // published after its frames, the first of them never 0
        return trace[0..n];
    }
};

const DlInfo = extern struct {
    fname: ?[*:0]const u8,
    fbase: ?*anyopaque,
    sname: ?[*:0]const u8,
    saddr: ?*anyopaque,
};
extern "c" fn dladdr1(addr: ?*const anyopaque, info: *DlInfo, extra: *?*const usize, flags: c_int) c_int;
const rtld_dl_linkmap = 2; // extra: the file's struct link_map, whose first word is its load bias

/// "0x… (file+0x…, symbol+0x…)": the file's base name and the address less its load bias
/// (what `addr2line -e file` takes, for a position-independent file and for one that is
/// not), and the nearest exported symbol when there is one.
fn symbolize(buf: []u8, ra: usize) []const u8 {
    std.debug.assert(ra != 0); // (an unknown site prints nothing; a backtrace ends before a 0)
    var info: DlInfo = undefined;
    var map: ?*const usize = null;
    // (ra - 1: the call instruction, when the call is the last of its function)
    if (dladdr1(@ptrFromInt(ra -| 1), &info, &map, rtld_dl_linkmap) == 0 or info.fname == null) return std.fmt.bufPrint(buf, "0x{x}", .{ra}) catch "";
    const path = std.mem.span(info.fname.?);
    const file = if (std.mem.lastIndexOfScalar(u8, path, '/')) |slash| path[slash + 1 ..] else path;
    const base = if (map) |m| m.* else @intFromPtr(info.fbase);
    if (info.sname != null and info.saddr != null) {
        return std.fmt.bufPrint(buf, "0x{x} ({s}+0x{x}, {s}+0x{x})", .{ ra, file, ra -% base, std.mem.span(info.sname.?), ra -% @intFromPtr(info.saddr) }) catch "";
    }
    return std.fmt.bufPrint(buf, "0x{x} ({s}+0x{x})", .{ ra, file, ra -% base }) catch "";
}

/// One line per site ("hakmem:   <label> at 0x… (…)"), a backtrace's frames each on a
/// line of their own. Nothing for an unknown site.
pub fn print(label: []const u8, site: Site) void {
    if (site == 0) return;
    var buf: [512]u8 = undefined;
    if (site & stack_flag == 0) return os.printStderr("hakmem:   {s} at {s}\n", .{ label, symbolize(&buf, site) });
    const frames = depot.get(site);
    std.debug.assert(frames.len <= frames_max);
    os.printStderr("hakmem:   {s} at:\n", .{label});
    for (frames, 0..) |ra, k| os.printStderr("hakmem:     #{d} {s}\n", .{ k, symbolize(&buf, ra) });
}

/// The first return address of a site (for the tests).
pub fn returnAddress(site: Site) usize {
    if (site & stack_flag == 0) return site;
    const frames = depot.get(site);
    return if (frames.len > 0) frames[0] else 0;
}

test "a walk along real frame pointers stays in the stack and ends" {
    var bounds: StackBounds = .{};
    var out: [frames_max]usize = undefined;
    // a frame address that is no frame: garbage words on our own stack, read safely
    var fake = [_]usize{ 0, 0, 0, 0 };
    try std.testing.expect(walk(@intFromPtr(&fake), &out, &bounds) <= frames_max);
    try std.testing.expect(bounds.end > bounds.start);
    // outside the stack: nothing is read
    try std.testing.expectEqual(@as(usize, 0), walk(0x1000, &out, &bounds));
    try std.testing.expectEqual(@as(usize, 0), walk(bounds.end, &out, &bounds));
    try std.testing.expectEqual(@as(usize, 0), walk(@intFromPtr(&fake) + 1, &out, &bounds));
}

test "the depot keeps a backtrace once and gives it back" {
    const a = [_]usize{ 0x1111, 0x2222, 0x3333 };
    const b = [_]usize{ 0x1111, 0x2222 };
    const sa = depot.store(&a).?;
    try std.testing.expectEqual(sa, depot.store(&a).?);
    const sb = depot.store(&b).?;
    try std.testing.expect(sa != sb);
    try std.testing.expectEqualSlices(usize, &a, depot.get(sa));
    try std.testing.expectEqualSlices(usize, &b, depot.get(sb));
    try std.testing.expectEqual(@as(usize, 0x1111), returnAddress(sa));
}
