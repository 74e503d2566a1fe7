//! process.zig — once-per-process work: initialisation (lazy, on the first malloc of any
//! thread, safe before constructors run; and at the latest when the library is loaded, so
//! that a free() before the first malloc already knows HAKMEM_CHECK: settings, secrets,
//! the thread-exit key of thread.zig), fork handlers and the HAKMEM_STATS summary at exit.
//! Nothing here allocates through libc.
const std = @import("std");
const os = @import("../base/os.zig");
const config = @import("../settings/config.zig");
const arena = @import("../memory/arena.zig");
const abandoned = @import("../memory/abandoned.zig");
const large = @import("../memory/large.zig");
const thread = @import("../thread/thread.zig");
const heap_mod = @import("../thread/heap.zig");
const report = @import("report.zig");
const budget = @import("../settings/budget.zig");
const trace = @import("trace.zig");

extern "c" fn pthread_atfork(prepare: ?*const fn () callconv(.c) void, parent: ?*const fn () callconv(.c) void, child: ?*const fn () callconv(.c) void) c_int;

const State = enum(u32) { uninitialised, initialising, ready };
var state: std.atomic.Value(State) = .init(.uninitialised);

pub inline fn ensureInit() void {
    if (state.load(.acquire) != .ready) initSlow();
}

noinline fn initSlow() void {
    if (state.cmpxchgStrong(.uninitialised, .initialising, .acquire, .acquire)) |seen| {
        // Another thread is initialising (nothing in init can call malloc recursively).
        var s = seen;
        while (s != .ready) : (s = state.load(.acquire)) _ = std.os.linux.sched_yield();
        std.debug.assert(s == .ready); // (ours to use from here: the acquire saw its settings)
        return;
    }
    std.debug.assert(thread.currentAny() == null); // before any heap: the settings fix its mode
    @import("../base/block.zig").initSecrets();
    std.debug.assert(@import("../base/block.zig").free_key & 1 == 1); // the secrets, before any block
    config.loadFromEnvironment();
    budget.init();
    @import("../memory/profile.zig").init();
    if (config.print_stats_at_exit) keepStderr();
    thread.initExitKey();
    // before any heap exists: a recording that cannot start leaves the fast paths on
    if (config.trace) config.trace = trace.start();
    std.debug.assert(state.raw == .initialising); // ours alone: the others wait for ready
    state.store(.ready, .release);
    // May allocate (glibc grows its handler list): we are ready by now.
    _ = pthread_atfork(forkPrepare, forkParent, forkChild);
}

// fork: take every lock so that no list is mid-update in the child, then release
// them in the parent and reset them in the child.
fn forkPrepare() callconv(.c) void {
    std.debug.assert(state.raw == .ready); // (the handlers are installed once ready)
    thread.registry_lock.acquire();
    heap_mod.exited_lock.acquire();
    arena.lock.acquire();
    abandoned.lock.acquire();
    large.lockForFork();
    @import("../memory/profile.zig").lockForFork();
    @import("../memory/guard.zig").lockForFork();
    // every list is still now: no lock of them free while the process forks
    std.debug.assert(thread.registry_lock.isHeld());
    std.debug.assert(arena.lock.isHeld());
}

fn forkParent() callconv(.c) void {
    std.debug.assert(heap_mod.exited_lock.isHeld()); // forkPrepare's, released in reverse order
    std.debug.assert(abandoned.lock.isHeld());
    @import("../memory/guard.zig").unlockAfterFork();
    @import("../memory/profile.zig").unlockAfterFork();
    large.unlockAfterFork();
    abandoned.lock.release();
    arena.lock.release();
    heap_mod.exited_lock.release();
    thread.registry_lock.release();
}

fn forkChild() callconv(.c) void {
    std.debug.assert(thread.registry_lock.isHeld()); // held across the fork: no list mid-update
    @import("../memory/profile.zig").resetLockInChild();
    @import("../memory/guard.zig").resetLockInChild();
    heap_mod.exited_lock.resetInChild();
    large.resetLockInChild();
    arena.afterForkInChild();
    abandoned.resetLockInChild();
    thread.afterForkInChild();
    @import("background.zig").afterForkInChild();
    if (config.trace) trace.afterForkInChild();
    std.debug.assert(!thread.registry_lock.isHeld()); // the child's own, free
    std.debug.assert(!arena.lock.isHeld());
}

// ---------------------------------------------------------------- the exit summary
//
// Many programs close stderr before they exit (GNU coreutils: cat, sort, ls, grep), so a
// summary written to fd 2 at exit would be lost (EBADF). With HAKMEM_STATS=1 the library
// keeps a duplicate of stderr from start-up (close-on-exec, at fd >= 100) and writes there,
// provided it is still the same file (a program that closes every descriptor, or reuses
// the number, is not written into); otherwise to fd 2 as it is at exit.
// HAKMEM_STATS_FILE=path appends the summary to a file instead (`%p`: the process id).

const stderr_dup_min_fd = 100;
var stderr_dup: std.posix.fd_t = -1;
var stderr_id: FileId = .{};

const FileId = struct {
    dev: u64 = 0,
    ino: u64 = 0,

    fn of(fd: std.posix.fd_t) ?FileId {
        std.debug.assert(fd >= 0); // fd 2, or the duplicate kept of it
        var st: std.os.linux.Stat = undefined;
        if (std.os.linux.E.init(std.os.linux.fstat(fd, &st)) != .SUCCESS) return null;
        return .{ .dev = st.dev, .ino = st.ino };
    }
};

fn keepStderr() void {
    std.debug.assert(config.print_stats_at_exit); // (only a process that prints the summary keeps it)
    std.debug.assert(stderr_dup == -1); // once, at initialisation
    stderr_id = FileId.of(2) orelse return;
    const F_DUPFD_CLOEXEC = 1030; // <fcntl.h>, Linux
    const rc = std.os.linux.fcntl(2, F_DUPFD_CLOEXEC, stderr_dup_min_fd);
    if (std.os.linux.E.init(rc) == .SUCCESS) stderr_dup = @intCast(rc);
    // out of the program's way: it may close or reuse the low descriptors
    std.debug.assert(stderr_dup == -1 or stderr_dup >= stderr_dup_min_fd);
}

/// Where the exit summary goes: the start-up stderr if still the same file, else fd 2.
fn summaryFd() std.posix.fd_t {
    std.debug.assert(stderr_dup == -1 or stderr_dup >= stderr_dup_min_fd);
    if (stderr_dup >= 0) {
        if (FileId.of(stderr_dup)) |id| {
            if (id.dev == stderr_id.dev and id.ino == stderr_id.ino) return stderr_dup;
        }
    }
    std.debug.assert(stderr_dup != 2); // (fd 2 as it is now: the duplicate was never fd 2)
    return 2;
}

fn writeAll(fd: std.posix.fd_t, bytes: []const u8) void {
    std.debug.assert(fd >= 0); // an open descriptor (summaryFd's, or a file just opened)
    var rest = bytes;
    var tries: usize = 0;
    while (rest.len > 0 and tries < 64) : (tries += 1) {
        const rc = std.os.linux.write(fd, rest.ptr, rest.len);
        if (std.os.linux.E.init(rc) != .SUCCESS or rc == 0) return;
        std.debug.assert(rc <= rest.len); // the kernel writes at most what was asked
        rest = rest[rc..];
    }
}

fn writeSummaryAtExit() void {
    std.debug.assert(config.print_stats_at_exit);
    var buf: [report.summary_max]u8 = undefined;
    const text = report.formatSummary(&buf);
    std.debug.assert(text.len > 0); // its first line at least (the bench looks for it)
    const template = config.statsFile() orelse return writeAll(summaryFd(), text);
    var path_buf: [config.stats_file_max + 32:0]u8 = undefined;
    const path = config.pathWithPid(template, &path_buf) orelse return;
    std.debug.assert(path.len > 0); // a path,
    std.debug.assert(path[0] == '/'); // absolute (config.zig made it so: a chdir does not move it)
    const flags: std.os.linux.O = .{ .ACCMODE = .WRONLY, .CREAT = true, .APPEND = true, .CLOEXEC = true };
    const rc = std.os.linux.open(path.ptr, flags, 0o644);
    if (std.os.linux.E.init(rc) != .SUCCESS) {
        var line: [config.stats_file_max + 128]u8 = undefined;
        const why = std.fmt.bufPrint(&line, "hakmem: cannot open HAKMEM_STATS_FILE {s} (errno {d}); the summary follows on stderr\n", .{ path, @intFromEnum(std.os.linux.E.init(rc)) }) catch "hakmem: cannot open HAKMEM_STATS_FILE\n";
        const fd = summaryFd();
        writeAll(fd, why);
        return writeAll(fd, text);
    }
    const fd: std.posix.fd_t = @intCast(rc);
    writeAll(fd, text);
    _ = std.os.linux.close(fd);
}

fn atInit() callconv(.c) void {
    ensureInit();
    std.debug.assert(state.raw == .ready); // a free before the first malloc knows the settings
}

fn atExit() callconv(.c) void {
    std.debug.assert(state.raw == .ready); // (atInit ran at load: .init_array before .fini_array)
    // a program's double free still in this thread's cache is found now (heap.zig)
    if (config.check_mode == .off and @atomicLoad(bool, &@import("../settings/misuse.zig").libc_mode, .monotonic)) {
        if (thread.current()) |h| h.flushCaches();
    }
    @import("../memory/profile.zig").writeAtExit();
    if (config.trace) trace.finish();
    if (config.print_stats_at_exit) writeSummaryAtExit();
}

const HookFn = *const fn () callconv(.c) void;
const init_entry: HookFn = &atInit;
const fini_entry: HookFn = &atExit;
comptime {
    @export(&init_entry, .{ .name = "hakmem_init_entry", .section = ".init_array", .visibility = .hidden });
    @export(&fini_entry, .{ .name = "hakmem_fini_entry", .section = ".fini_array", .visibility = .hidden });
}

test "HAKMEM_STATS_FILE: %p is the process id" {
    var out: [config.stats_file_max + 32:0]u8 = undefined;
    const path = config.pathWithPid("/tmp/hakmem-%p.txt", &out).?;
    var expected: [64]u8 = undefined;
    try std.testing.expectEqualStrings(try std.fmt.bufPrint(&expected, "/tmp/hakmem-{d}.txt", .{std.os.linux.getpid()}), path);
    try std.testing.expectEqualStrings("/a%b%", config.pathWithPid("/a%%b%", &out).?);
}
