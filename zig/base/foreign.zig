//! foreign.zig — what a pointer hakmem does not own points into, for check mode.
//!
//! Check mode reports a free of such a pointer at once; this says where it points (the
//! calling thread's stack, a loaded file's data, nothing mapped, …), and whether it can be
//! a block of the next allocator (glibc): only then does warn mode hand it on. A stack or
//! static buffer given to glibc's free crashes the program inside glibc, which is what
//! warn mode ("report and carry on") promises not to do.
//!
//! Read from /proc/self/maps with raw syscalls (nothing allocates), one 4 KiB buffer at a
//! time; only on this rare path (check mode and a foreign pointer).
const std = @import("std");
const linux = std.os.linux;

pub const Where = enum {
    /// the mapping that holds the calling thread's stack
    stack,
    /// a mapping of a file (a program's or a library's code or static data)
    file,
    /// no mapping at all
    unmapped,
    /// a kernel-provided mapping ([vdso], [vvar], …)
    special,
    /// the brk heap or anonymous memory: may be a block of the next allocator
    heap_like,
    /// /proc/self/maps could not be read
    unknown,

    pub fn text(self: Where) []const u8 {
        const t = switch (self) {
            .stack => "on the calling thread's stack, not heap memory",
            .file => "in a loaded file's code or static data, not heap memory",
            .unmapped => "not mapped at all",
            .special => "in a kernel-provided mapping, not heap memory",
            .heap_like => "maybe another allocator's block",
            .unknown => "/proc/self/maps unreadable",
        };
        std.debug.assert(t.len > 0);
        return t;
    }

    /// True unless the pointer certainly is not a block of another allocator.
    pub fn mayBeHeap(self: Where) bool {
        return self == .heap_like or self == .unknown;
    }
};

/// One line of /proc/self/maps: "start-end perms offset dev inode   path".
const Mapping = struct { start: usize, end: usize, inode: u64, path: []const u8 };

fn parseLine(line: []const u8) ?Mapping {
    var fields = std.mem.tokenizeScalar(u8, line, ' ');
    const range = fields.next() orelse return null;
    const dash = std.mem.indexOfScalar(u8, range, '-') orelse return null;
    const start = std.fmt.parseUnsigned(usize, range[0..dash], 16) catch return null;
    const end = std.fmt.parseUnsigned(usize, range[dash + 1 ..], 16) catch return null;
    _ = fields.next() orelse return null; // perms
    _ = fields.next() orelse return null; // offset
    _ = fields.next() orelse return null; // dev
    const inode = std.fmt.parseUnsigned(u64, fields.next() orelse return null, 10) catch return null;
    // the kernel's lines: a mapping is whole pages, never empty
    std.debug.assert(start < end);
    std.debug.assert(start % std.heap.page_size_min == 0);
    std.debug.assert(end % std.heap.page_size_min == 0);
    return .{ .start = start, .end = end, .inode = inode, .path = fields.rest() };
}

/// `after_file`: the mapping starts where a file's mapping ends: a program's or library's
/// zero-initialised static data (.bss), which the kernel maps anonymously right after the
/// file's data (new mmaps are placed below existing ones, not right above them).
fn kindOf(m: Mapping, stack_start: usize, after_file: bool) Where {
    std.debug.assert(m.start < m.end);
    std.debug.assert(!after_file or m.start != 0); // a file's mapping ended where this starts
    if (m.start == stack_start or std.mem.eql(u8, m.path, "[stack]")) return .stack;
    if (std.mem.eql(u8, m.path, "[heap]")) return .heap_like;
    if (m.inode != 0) return .file;
    if (std.mem.startsWith(u8, m.path, "[")) return .special;
    return if (after_file) .file else .heap_like;
}

/// Calls `visit(context, m)` for every mapping of /proc/self/maps, in order; false when the
/// file could not be read (whole). Bounded: at most 1 M lines are read.
fn eachMapping(context: anytype, comptime visit: fn (@TypeOf(context), Mapping) void) bool {
    const rc = linux.open("/proc/self/maps", .{ .ACCMODE = .RDONLY, .CLOEXEC = true }, 0);
    if (linux.E.init(rc) != .SUCCESS) return false;
    const fd: i32 = @intCast(rc);
    defer _ = linux.close(fd);

    var buf: [4096]u8 = undefined;
    var kept: usize = 0; // bytes of an unfinished line at the start of buf
    var lines: usize = 0;
    while (lines < 1 << 20) {
        // room to read into: a read of 0 bytes would look like the end of the file
        std.debug.assert(kept < buf.len);
        const n = linux.read(fd, buf[kept..].ptr, buf.len - kept);
        if (linux.E.init(n) != .SUCCESS) return false;
        std.debug.assert(n <= buf.len - kept);
        const filled = kept + n;
        if (filled == 0) break;
        var rest = buf[0..filled];
        while (std.mem.indexOfScalar(u8, rest, '\n')) |eol| : (lines += 1) {
            if (parseLine(rest[0..eol])) |m| visit(context, m);
            rest = rest[eol + 1 ..];
        }
        if (n == 0) break; // a last line without a newline is ignored
        if (rest.len == buf.len) return false; // a line longer than the buffer
        std.mem.copyForwards(u8, buf[0..rest.len], rest);
        kept = rest.len;
    }
    return true;
}

/// What `where` gathers while it reads the mappings.
const Search = struct {
    addr: usize,
    sp: usize,
    found: ?Mapping = null,
    found_path: [256]u8 = undefined,
    stack_start: usize = 0,
    after_file: bool = false,
    file_end: usize = 0, // end of the last file-backed mapping seen

    fn visit(self: *Search, m: Mapping) void {
        if (self.sp >= m.start and self.sp < m.end) self.stack_start = m.start;
        if (self.addr >= m.start and self.addr < m.end) {
            const len = @min(m.path.len, self.found_path.len);
            @memcpy(self.found_path[0..len], m.path[0..len]);
            self.found = .{ .start = m.start, .end = m.end, .inode = m.inode, .path = self.found_path[0..len] };
            self.after_file = m.start == self.file_end;
            std.debug.assert(self.found.?.start <= self.addr); // what is found holds the address
            std.debug.assert(self.addr < self.found.?.end);
        }
        if (m.inode != 0) self.file_end = m.end;
    }
};

/// Where `addr` points.
pub fn where(addr: usize) Where {
    var marker: u8 = 0;
    var search: Search = .{ .addr = addr, .sp = @intFromPtr(&marker) }; // sp: in the calling thread's stack
    if (!eachMapping(&search, Search.visit)) return .unknown;
    const m = search.found orelse return .unmapped;
    std.debug.assert(m.start <= addr); // the mapping found holds addr
    std.debug.assert(addr < m.end);
    const kind = kindOf(m, search.stack_start, search.after_file);
    std.debug.assert(kind != .unmapped); // a mapping was found,
    std.debug.assert(kind != .unknown); // and read
    return kind;
}

pub const Range = struct { start: usize, end: usize };

/// The mapping that holds `addr` (check mode: the bounds of a thread's stack, for a walk of
/// its frames that reads nothing outside them); null when none does or the file is unreadable.
pub fn mappingOf(addr: usize) ?Range {
    const Find = struct {
        addr: usize,
        found: ?Range = null,
        fn visit(self: *@This(), m: Mapping) void {
            if (self.addr >= m.start and self.addr < m.end) self.found = .{ .start = m.start, .end = m.end };
        }
    };
    var find: Find = .{ .addr = addr };
    if (!eachMapping(&find, Find.visit)) return null;
    if (find.found) |r| {
        std.debug.assert(r.start <= addr);
        std.debug.assert(addr < r.end);
    }
    return find.found;
}

test "a stack buffer, a static buffer, an unmapped address and a malloc'd block" {
    var local: [16]u8 = undefined;
    try std.testing.expectEqual(Where.stack, where(@intFromPtr(&local)));
    const S = struct {
        var data: [16]u8 = [_]u8{1} ** 16;
    };
    try std.testing.expectEqual(Where.file, where(@intFromPtr(&S.data)));
    const Z = struct {
        var zeroes: [1 << 16]u8 = [_]u8{0} ** (1 << 16); // .bss, beyond the file's last page
    };
    try std.testing.expectEqual(Where.file, where(@intFromPtr(&Z.zeroes[Z.zeroes.len - 1])));
    try std.testing.expectEqual(Where.unmapped, where(0x1000));
    const p = std.c.malloc(64).?;
    defer std.c.free(p);
    try std.testing.expect(where(@intFromPtr(p)).mayBeHeap());
    const stack = mappingOf(@intFromPtr(&local)).?;
    try std.testing.expect(stack.start <= @intFromPtr(&local) and @intFromPtr(&local) < stack.end);
    try std.testing.expectEqual(@as(?Range, null), mappingOf(0x1000));
}
