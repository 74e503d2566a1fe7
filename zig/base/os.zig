//! os.zig — the only place hakmem talks to the kernel: anonymous mappings, purging,
//! remapping, the monotonic clock and raw writes to stderr. Raw syscalls, so nothing
//! here allocates or touches errno (free() must preserve errno).
const std = @import("std");
const linux = std.os.linux;

pub const page_size: usize = 4096;

fn failed(rc: usize) bool {
    return linux.E.init(rc) != .SUCCESS;
}

/// Maps `len` bytes of zeroed, private, read-write memory. Null when the kernel refuses.
/// Not MAP_NORESERVE: every byte hakmem maps may be handed out, so the kernel's commit
/// check applies (under the default overcommit heuristic a request beyond RAM + swap fails
/// here, with ENOMEM to the caller, instead of a pointer the OOM killer collects later).
pub fn map(len: usize) ?[*]u8 {
    std.debug.assert(len > 0);
    const rc = linux.mmap(null, len, linux.PROT.READ | linux.PROT.WRITE, .{ .TYPE = .PRIVATE, .ANONYMOUS = true }, -1, 0);
    if (failed(rc)) return null;
    std.debug.assert(rc % page_size == 0);
    return @ptrFromInt(rc);
}

/// Maps `len` bytes whose start is a multiple of `alignment` (a power of two >= page).
/// Over-maps and trims, so no address space is kept beyond `len`.
pub fn mapAligned(len: usize, alignment: usize) ?[*]u8 {
    std.debug.assert(std.math.isPowerOfTwo(alignment));
    std.debug.assert(alignment >= page_size);
    std.debug.assert(len > 0);
    const over = std.math.add(usize, len, alignment - page_size) catch return null;
    const raw = map(over) orelse return null;
    const raw_addr = @intFromPtr(raw);
    const start = std.mem.alignForward(usize, raw_addr, alignment);
    const head = start - raw_addr;
    const tail = over - head - len;
    if (head > 0) unmap(raw, head);
    if (tail > 0) unmap(@ptrFromInt(start + len), tail);
    std.debug.assert(start % alignment == 0);
    std.debug.assert(head + len + tail == over); // nothing kept beyond [start, start + len)
    return @ptrFromInt(start);
}

/// Reserves `len` bytes of address space at a multiple of `alignment`, inaccessible and
/// not charged against the commit limit (PROT_NONE private memory is not): `commit` makes
/// parts of it usable. Null when the kernel refuses.
pub fn reserveAligned(len: usize, alignment: usize) ?[*]u8 {
    std.debug.assert(std.math.isPowerOfTwo(alignment));
    std.debug.assert(alignment >= page_size);
    std.debug.assert(len > 0);
    std.debug.assert(len % page_size == 0); // the tail trimmed after it starts on a page
    const over = std.math.add(usize, len, alignment - page_size) catch return null;
    const rc = linux.mmap(null, over, linux.PROT.NONE, .{ .TYPE = .PRIVATE, .ANONYMOUS = true }, -1, 0);
    if (failed(rc)) return null;
    const start = std.mem.alignForward(usize, rc, alignment);
    if (start > rc) unmap(@ptrFromInt(rc), start - rc);
    const tail = rc + over - (start + len);
    if (tail > 0) unmap(@ptrFromInt(start + len), tail);
    std.debug.assert(start % alignment == 0);
    std.debug.assert(start + len <= rc + over);
    return @ptrFromInt(start);
}

/// Replaces [ptr, ptr + len) of hakmem's own mappings with a fresh read-write one (zeroed,
/// charged, one mapping): what was there, pages included, is gone. MAP_FIXED replaces in
/// one step, so no other mapping can take the range meanwhile. False when the kernel
/// refuses (the range is then unchanged).
pub fn mapFixed(ptr: [*]u8, len: usize) bool {
    std.debug.assert(@intFromPtr(ptr) % page_size == 0);
    std.debug.assert(len > 0);
    std.debug.assert(len % page_size == 0); // whole pages replaced: none half-kept
    const rc = linux.mmap(ptr, len, linux.PROT.READ | linux.PROT.WRITE, .{ .TYPE = .PRIVATE, .ANONYMOUS = true, .FIXED = true }, -1, 0);
    return !failed(rc);
}

/// Makes reserved memory read-write. The kernel charges it against the commit limit now,
/// so a range it cannot back fails here (false) and stays reserved, unchanged.
pub fn commit(ptr: [*]u8, len: usize) bool {
    std.debug.assert(@intFromPtr(ptr) % page_size == 0);
    std.debug.assert(len > 0);
    std.debug.assert(len % page_size == 0); // (rounded up by the kernel: a caller's range is whole pages)
    return !failed(linux.mprotect(ptr, len, linux.PROT.READ | linux.PROT.WRITE));
}

/// Makes mapped memory inaccessible (a guard, a quarantined block): any access faults.
/// (A misaligned start would fail with EINVAL, silently: the result is not looked at.)
pub fn protect(ptr: [*]u8, len: usize) void {
    std.debug.assert(@intFromPtr(ptr) % page_size == 0);
    std.debug.assert(len > 0);
    std.debug.assert(len % page_size == 0); // a rounded-up length would protect a neighbour's page
    _ = linux.mprotect(ptr, len, linux.PROT.NONE);
}

pub fn unmap(ptr: [*]u8, len: usize) void {
    std.debug.assert(@intFromPtr(ptr) % page_size == 0);
    std.debug.assert(len > 0);
    _ = linux.munmap(ptr, len);
}

/// Gives the physical pages back (RSS drops at once); the range stays mapped and reads as zero.
pub fn purge(ptr: [*]u8, len: usize) void {
    std.debug.assert(@intFromPtr(ptr) % page_size == 0);
    std.debug.assert(len > 0);
    std.debug.assert(len % page_size == 0); // a rounded-up length would drop a neighbour's page
    _ = linux.madvise(ptr, len, linux.MADV.DONTNEED);
}

/// Resident bytes of [addr, addr + len) (mincore; the range is widened to whole pages).
/// Counts what was measured before a part the kernel refused (not mapped).
pub fn residentBytes(addr: usize, len: usize) usize {
    const start = std.mem.alignBackward(usize, addr, page_size);
    const end = std.mem.alignForward(usize, addr + len, page_size);
    var vec: [1024]u8 = undefined;
    var at = start;
    var resident: usize = 0;
    while (at < end) {
        const pages = @min((end - at) / page_size, vec.len);
        std.debug.assert(pages >= 1); // at < end, both page-aligned: every round advances
        if (failed(linux.mincore(@ptrFromInt(at), pages * page_size, &vec))) return resident;
        for (vec[0..pages]) |b| resident += @as(usize, b & 1) * page_size;
        at += pages * page_size;
    }
    std.debug.assert(resident <= end - start);
    return resident;
}

/// mincore of a page-aligned range of at most vec.len pages: bit 0 of vec[i] says whether
/// page i is resident. False when the kernel refuses (a part not mapped).
pub fn residentPages(addr: usize, len: usize, vec: []u8) bool {
    std.debug.assert(addr % page_size == 0);
    std.debug.assert(len > 0);
    std.debug.assert(len <= vec.len * page_size); // one byte of vec per page
    return !failed(linux.mincore(@ptrFromInt(addr), len, vec.ptr));
}

/// Copies `out.len` bytes from `addr` of this process without faulting: false when part of
/// the range is not mapped (another thread may unmap it any time: the memory report reads
/// other threads' segment headers this way).
pub fn readSafely(addr: usize, out: []u8) bool {
    std.debug.assert(out.len > 0);
    std.debug.assert(addr != 0); // (a chunk hakmem tagged: never the zero page)
    const local = [_]std.posix.iovec{.{ .base = out.ptr, .len = out.len }};
    const remote = [_]std.posix.iovec_const{.{ .base = @ptrFromInt(addr), .len = out.len }};
    const rc = linux.process_vm_readv(linux.getpid(), &local, &remote, 0);
    return !failed(rc) and rc == out.len;
}

/// Tries to resize a mapping where it stands. True on success.
pub fn remapInPlace(ptr: [*]u8, old_len: usize, new_len: usize) bool {
    std.debug.assert(@intFromPtr(ptr) % page_size == 0);
    std.debug.assert(old_len > 0);
    std.debug.assert(new_len > 0);
    return !failed(linux.mremap(ptr, old_len, new_len, .{}, null));
}

/// Moves a mapping (pages, not bytes: no copy) onto `dest`, replacing what is mapped there.
pub fn remapTo(ptr: [*]u8, old_len: usize, new_len: usize, dest: [*]u8) bool {
    std.debug.assert(@intFromPtr(ptr) % page_size == 0);
    std.debug.assert(@intFromPtr(dest) % page_size == 0);
    std.debug.assert(old_len > 0);
    std.debug.assert(new_len > 0);
    return !failed(linux.mremap(ptr, old_len, new_len, .{ .MAYMOVE = true, .FIXED = true }, dest));
}

pub const MoveResult = enum { moved, refused, unsupported };

/// Moves the pages of [src, src + len) onto `dest` (page tables, not bytes: no copy, no
/// fault), replacing what is mapped there; the source range stays mapped, with no pages
/// (it reads as zero: MREMAP_DONTUNMAP, so no other mapping can take its place meanwhile).
/// `unsupported`: a kernel without MREMAP_DONTUNMAP for this memory (before Linux 5.7);
/// `refused`: anything else (the source spans mappings, out of mappings): nothing moved.
pub fn movePages(src: usize, len: usize, dest: usize) MoveResult {
    std.debug.assert(src % page_size == 0);
    std.debug.assert(dest % page_size == 0);
    std.debug.assert(len > 0);
    std.debug.assert(src + len <= dest or dest + len <= src); // two ranges apart
    const rc = linux.mremap(@ptrFromInt(src), len, len, .{ .MAYMOVE = true, .FIXED = true, .DONTUNMAP = true }, @ptrFromInt(dest));
    return switch (linux.E.init(rc)) {
        .SUCCESS => .moved,
        .INVAL => .unsupported,
        else => .refused,
    };
}

/// Milliseconds on the monotonic clock (through libc, so the vDSO is used). The coarse
/// clock (a tick, 1-4 ms): it is read without the TSC, several times cheaper where the
/// fine clock is slow (VMs), and hakmem's delays are tens of milliseconds.
pub fn nowMs() u64 {
    var ts: std.c.timespec = undefined;
    if (std.c.clock_gettime(.MONOTONIC_COARSE, &ts) != 0) return 0;
    return @as(u64, @intCast(ts.sec)) * 1000 + @as(u64, @intCast(ts.nsec)) / 1_000_000;
}

pub fn writeStderr(bytes: []const u8) void {
    var rest = bytes;
    while (rest.len > 0) {
        const rc = linux.write(2, rest.ptr, rest.len);
        if (failed(rc) or rc == 0) return;
        std.debug.assert(rc <= rest.len); // bounded: every round writes at least a byte
        rest = rest[rc..];
    }
}

/// Formats into a stack buffer and writes it to stderr; never allocates.
pub fn printStderr(comptime fmt: []const u8, args: anytype) void {
    var buf: [512]u8 = undefined;
    const text = std.fmt.bufPrint(&buf, fmt, args) catch buf[0..];
    std.debug.assert(text.ptr == &buf); // from the stack buffer: nothing allocated
    writeStderr(text);
}

/// errno of the calling thread (libc's), for setting ENOMEM and preserving it across free.
pub fn errnoPtr() *c_int {
    return std.c._errno();
}

pub fn setErrno(e: std.c.E) void {
    std.debug.assert(e != .SUCCESS); // an error to report (ENOMEM, EINVAL), never 0
    errnoPtr().* = @intFromEnum(e);
}

test "map, aligned map, purge, unmap" {
    const p = mapAligned(1 << 22, 1 << 22).?;
    try std.testing.expect(@intFromPtr(p) % (1 << 22) == 0);
    p[0] = 7;
    p[(1 << 22) - 1] = 9;
    try std.testing.expectEqual(2 * page_size, residentBytes(@intFromPtr(p), 1 << 22));
    var copy: [2]u8 = undefined;
    try std.testing.expect(readSafely(@intFromPtr(p), &copy) and copy[0] == 7);
    purge(p, 1 << 22);
    try std.testing.expectEqual(@as(usize, 0), residentBytes(@intFromPtr(p), 1 << 22));
    try std.testing.expectEqual(@as(u8, 0), p[0]);
    unmap(p, 1 << 22);
    try std.testing.expect(!readSafely(@intFromPtr(p), &copy));
    try std.testing.expect(nowMs() > 0);
}
