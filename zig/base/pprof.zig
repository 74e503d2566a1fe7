//! pprof.zig — writes a heap profile in the pprof format (github.com/google/pprof,
//! proto/profile.proto), protobuf hand-encoded, uncompressed, without allocating:
//!
//!   Profile
//!     1 sample_type  ValueType{type, unit} x4: alloc_objects/count, alloc_space/bytes,
//!                    inuse_objects/count, inuse_space/bytes
//!     2 sample       Sample{1 location_id (packed, leaf first), 2 value (packed, 4 values)}
//!     3 mapping      Mapping{1 id, 2 memory_start, 3 memory_limit, 4 file_offset, 5 filename}
//!                    (the executable mappings of /proc/self/maps, so tools can symbolize)
//!     4 location     Location{1 id, 2 mapping_id, 3 address}  (a return address minus 1)
//!     6 string_table ("" first; indices in order of appearance)
//!     9 time_nanos, 11 period_type ValueType{space, bytes}, 12 period (the mean gap)
//!
//! Frames in hakmem's own library (the one `own_address` is in) at the top of a stack are
//! dropped: a stack starts at the program's call to malloc.
const std = @import("std");
const linux = std.os.linux;

const mappings_max = 512;
const Mapping = struct { start: usize, end: usize, offset: usize, path: []const u8 };

var maps_text: [1 << 19]u8 = undefined;
var out_buf: [1 << 16]u8 = undefined;

/// A buffered writer on a file descriptor.
const Out = struct {
    fd: i32,
    len: usize = 0,
    failed: bool = false,

    fn bytes(self: *Out, data: []const u8) void {
        var rest = data;
        while (rest.len > 0) {
            if (self.len == out_buf.len) self.flush();
            std.debug.assert(self.len < out_buf.len); // room: every round copies a byte at least
            const n = @min(rest.len, out_buf.len - self.len);
            @memcpy(out_buf[self.len..][0..n], rest[0..n]);
            self.len += n;
            rest = rest[n..];
        }
        std.debug.assert(self.len <= out_buf.len); // (flushed when full, never past it)
    }

    fn flush(self: *Out) void {
        std.debug.assert(self.len <= out_buf.len);
        var at: usize = 0;
        while (at < self.len) {
            const rc = linux.write(self.fd, out_buf[at..].ptr, self.len - at);
            if (linux.E.init(rc) != .SUCCESS or rc == 0) {
                self.failed = true;
                break;
            }
            std.debug.assert(rc <= self.len - at); // the kernel writes at most what was asked
            at += rc;
        }
        std.debug.assert(self.failed or at == self.len); // all written, or the file marked failed
        self.len = 0;
    }
};

/// A message being built (a sub-message: its length goes before it).
const Msg = struct {
    buf: [1024]u8 = undefined,
    len: usize = 0,

    fn bytes(self: *Msg, data: []const u8) void {
        const n = @min(data.len, self.buf.len - self.len); // a full message is cut (never with depth_max frames)
        @memcpy(self.buf[self.len..][0..n], data[0..n]);
        self.len += n;
        std.debug.assert(self.len <= self.buf.len);
    }
    fn slice(self: *const Msg) []const u8 {
        std.debug.assert(self.len <= self.buf.len);
        return self.buf[0..self.len];
    }
};

fn varint(w: anytype, value: u64) void {
    var buf: [10]u8 = undefined;
    var v = value;
    var n: usize = 0;
    while (true) {
        const low: u8 = @intCast(v & 0x7f);
        v >>= 7;
        if (v == 0) {
            buf[n] = low;
            n += 1;
            break;
        }
        buf[n] = low | 0x80;
        n += 1;
    }
    std.debug.assert(n >= 1); // even 0 takes a byte
    std.debug.assert(n <= 10); // 64 bits in groups of 7
    w.bytes(buf[0..n]);
}

fn key(w: anytype, field: u32, wire: u3) void {
    std.debug.assert(field >= 1); // protobuf numbers fields from 1
    std.debug.assert(wire == 0 or wire == 2); // what this writer writes: varint, length-delimited
    varint(w, (@as(u64, field) << 3) | wire);
}

fn uintField(w: anytype, field: u32, value: u64) void {
    std.debug.assert(field <= 12); // the fields of profile.proto's messages written here
    key(w, field, 0);
    varint(w, value);
}

fn bytesField(w: anytype, field: u32, data: []const u8) void {
    std.debug.assert(field <= 11); // the fields of profile.proto's messages written here
    key(w, field, 2);
    varint(w, data.len);
    w.bytes(data);
}

const strings_fixed = [_][]const u8{ "", "alloc_objects", "count", "alloc_space", "bytes", "inuse_objects", "inuse_space", "space" };

fn valueType(w: *Out, field: u32, type_index: u64, unit_index: u64) void {
    std.debug.assert(field == 1 or field == 11); // Profile.sample_type or period_type
    std.debug.assert(type_index > 0); // a name, not ""
    std.debug.assert(type_index < strings_fixed.len); // a string written before
    std.debug.assert(unit_index > 0);
    std.debug.assert(unit_index < strings_fixed.len);
    var m: Msg = .{};
    uintField(&m, 1, type_index);
    uintField(&m, 2, unit_index);
    bytesField(w, field, m.slice());
}

/// `input`: .stacks_frames (an iterator of profile.StackView), .period_bytes, .own_address.
pub fn write(fd: i32, input: anytype) error{CannotWrite}!void {
    var out: Out = .{ .fd = fd };
    for (strings_fixed) |s| bytesField(&out, 6, s);
    valueType(&out, 1, 1, 2);
    valueType(&out, 1, 3, 4);
    valueType(&out, 1, 5, 2);
    valueType(&out, 1, 6, 4);
    valueType(&out, 11, 7, 4);
    uintField(&out, 12, input.period_bytes);
    var ts: linux.timespec = undefined;
    if (linux.clock_gettime(.REALTIME, &ts) == 0) uintField(&out, 9, @as(u64, @intCast(ts.sec)) * 1_000_000_000 + @as(u64, @intCast(ts.nsec)));

    var mappings: [mappings_max]Mapping = undefined;
    const count = readMappings(&mappings);
    std.debug.assert(count <= mappings_max);
    const maps = mappings[0..count];
    for (maps, 0..) |m, i| {
        bytesField(&out, 6, m.path); // string strings_fixed.len + i
        var msg: Msg = .{};
        uintField(&msg, 1, i + 1);
        uintField(&msg, 2, m.start);
        uintField(&msg, 3, m.end);
        uintField(&msg, 4, m.offset);
        uintField(&msg, 5, strings_fixed.len + i);
        bytesField(&out, 3, msg.slice());
    }
    const own = mappingOf(maps, input.own_address);

    var it = input.stacks_frames;
    var stack_index: u64 = 0;
    while (it.next()) |s| : (stack_index += 1) {
        var first: usize = 0;
        if (own) |o| {
            while (first < s.frames.len) : (first += 1) {
                const m = mappingOf(maps, s.frames[first]) orelse break;
                if (!std.mem.eql(u8, maps[m].path, maps[o].path)) break;
            }
        }
        std.debug.assert(first <= s.frames.len);
        const frames = s.frames[first..];
        // a location's id is stack_index * 64 + frame + 1: more frames would take the next
        // stack's ids
        std.debug.assert(frames.len < 64);
        var ids: Msg = .{};
        for (frames, 0..) |addr, j| {
            const id = stack_index * 64 + j + 1;
            varint(&ids, id);
            var loc: Msg = .{};
            uintField(&loc, 1, id);
            if (mappingOf(maps, addr)) |m| uintField(&loc, 2, m + 1);
            uintField(&loc, 3, addr -| 1);
            bytesField(&out, 4, loc.slice());
        }
        if (frames.len == 0) { // no stack: one location of address 0
            const id = stack_index * 64 + 1;
            varint(&ids, id);
            var loc: Msg = .{};
            uintField(&loc, 1, id);
            bytesField(&out, 4, loc.slice());
        }
        var values: Msg = .{};
        for ([_]u64{ s.alloc_count, s.alloc_bytes, s.live_count, s.live_bytes }) |v| varint(&values, v);
        var sample: Msg = .{};
        bytesField(&sample, 1, ids.slice());
        bytesField(&sample, 2, values.slice());
        bytesField(&out, 2, sample.slice());
    }
    out.flush();
    if (out.failed) return error.CannotWrite;
}

fn mappingOf(maps: []const Mapping, addr: usize) ?usize {
    std.debug.assert(maps.len <= mappings_max); // the loop's bound
    for (maps, 0..) |m, i| if (addr >= m.start and addr < m.end) return i;
    return null;
}

/// The executable, file-backed mappings of /proc/self/maps. Bounded by mappings_max.
fn readMappings(out: *[mappings_max]Mapping) usize {
    const fd_rc = linux.open("/proc/self/maps", .{ .CLOEXEC = true }, 0);
    if (linux.E.init(fd_rc) != .SUCCESS) return 0;
    const fd: i32 = @intCast(fd_rc);
    defer _ = linux.close(fd);
    var len: usize = 0;
    while (len < maps_text.len) {
        const rc = linux.read(fd, maps_text[len..].ptr, maps_text.len - len);
        if (linux.E.init(rc) != .SUCCESS or rc == 0) break;
        len += rc;
    }
    std.debug.assert(len <= maps_text.len);
    var n: usize = 0;
    var lines = std.mem.splitScalar(u8, maps_text[0..len], '\n');
    while (lines.next()) |line| {
        if (n == mappings_max) break;
        var fields = std.mem.tokenizeScalar(u8, line, ' ');
        const range = fields.next() orelse continue;
        const perms = fields.next() orelse continue;
        const offset = fields.next() orelse continue;
        _ = fields.next(); // device
        _ = fields.next(); // inode
        const path = fields.rest();
        if (perms.len < 3 or perms[2] != 'x' or path.len == 0 or path[0] != '/') continue;
        const dash = std.mem.indexOfScalar(u8, range, '-') orelse continue;
        out[n] = .{
            .start = std.fmt.parseUnsigned(usize, range[0..dash], 16) catch continue,
            .end = std.fmt.parseUnsigned(usize, range[dash + 1 ..], 16) catch continue,
            .offset = std.fmt.parseUnsigned(usize, offset, 16) catch continue,
            .path = path,
        };
        std.debug.assert(out[n].start < out[n].end); // the kernel's lines: never an empty mapping
        std.debug.assert(out[n].path[0] == '/'); // a file's mapping (tools symbolize by its path)
        n += 1;
    }
    std.debug.assert(n <= mappings_max);
    return n;
}

test "varints as protobuf writes them" {
    var m: Msg = .{};
    varint(&m, 1);
    varint(&m, 300);
    uintField(&m, 2, 150);
    try std.testing.expectEqualSlices(u8, &.{ 1, 0xac, 0x02, 0x10, 0x96, 0x01 }, m.slice());
}
