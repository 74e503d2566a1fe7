//! api.zig — the hak_* C ABI (zig/hakmem.h): the allocator with explicit error codes,
//! for bun:ffi and C programs. Bad arguments return HAK_ERR_* or NULL with errno; a
//! pointer hakmem does not own is reported, never touched.
const std = @import("std");
const build_options = @import("build_options");
const os = @import("../base/os.zig");
const config = @import("../settings/config.zig");
const routing = @import("../settings/routing.zig");
const stats = @import("../settings/stats.zig");
const size_class = @import("../settings/size_class.zig");
const alloc = @import("../calls/alloc.zig");
const report = @import("../process/report.zig");
const memory_report = @import("../process/memory_report.zig");
const process = @import("../process/process.zig");
const abi = @import("../abi.zig");
const thread = @import("../thread/thread.zig");
const validate = @import("../thread/validate.zig");

const HAK_OK = abi.Result.ok.code();
const HAK_ERR_NOT_OWNED = abi.Result.not_owned.code();
const HAK_ERR_INVALID = abi.Result.invalid.code();
const HAK_ERR_ARG = abi.Result.arg.code();
const HAK_ERR_DOUBLE_FREE = abi.Result.double_free.code();

comptime {
    // hakmem.h's contract: 0 is success, every error is below it (C callers test `< 0`)
    std.debug.assert(HAK_OK == 0);
    std.debug.assert(HAK_ERR_NOT_OWNED < 0);
    std.debug.assert(HAK_ERR_INVALID < 0);
    std.debug.assert(HAK_ERR_ARG < 0);
    std.debug.assert(HAK_ERR_DOUBLE_FREE < 0);
}

// align(64) on the four fast paths (malloc, free, hak_alloc, hak_free): where the linker
// happens to put them changed their speed by 10-15% with not one instruction changed.
export fn hak_alloc(size: usize) align(64) ?*anyopaque {
    return alloc.mallocFrom(.api, size);
}

export fn hak_calloc(count: usize, size: usize) ?*anyopaque {
    const p = alloc.calloc(count, size);
    std.debug.assert(p == null or @intFromPtr(p) % 16 == 0); // malloc's alignment
    // zeroed: its first and last byte (a loop over it all would slow the checked library's calloc)
    std.debug.assert(p == null or count *% size == 0 or @as([*]const u8, @ptrCast(p))[0] == 0);
    std.debug.assert(p == null or count *% size == 0 or @as([*]const u8, @ptrCast(p))[count *% size - 1] == 0);
    return p;
}

export fn hak_realloc(ptr: ?*anyopaque, size: usize) ?*anyopaque {
    return switch (alloc.realloc(ptr, size)) {
        .ok => |p| {
            std.debug.assert(p == null or @intFromPtr(p) % 16 == 0); // malloc's alignment
            return p;
        },
        .not_owned, .invalid, .freed => {
            std.debug.assert(ptr != null); // realloc(NULL, size) is malloc: never refused
            os.setErrno(.INVAL);

            return null;
        },
    };
}

export fn hak_aligned_alloc(alignment: usize, size: usize) ?*anyopaque {
    if (alignment == 0 or !std.math.isPowerOfTwo(alignment)) {
        os.setErrno(.INVAL);
        return null;
    }
    std.debug.assert(std.math.isPowerOfTwo(alignment)); // (refused otherwise, above)
    const p = alloc.alignedAlloc(alignment, size);
    if (p) |q| std.debug.assert(@intFromPtr(q) % alignment == 0);
    return p;
}

export fn hak_free(ptr: ?*anyopaque) align(64) c_int {
    return resultCode(alloc.free(ptr));
}

fn resultCode(result: alloc.FreeResult) c_int {
    const code = switch (result) {
        .ok => HAK_OK,
        .not_owned => HAK_ERR_NOT_OWNED,
        .invalid => HAK_ERR_INVALID,
        .double_free => HAK_ERR_DOUBLE_FREE,
    };
    // hakmem.h: 0 is success, every error below it (C callers test `< 0`)
    std.debug.assert(code <= 0);
    std.debug.assert((code == HAK_OK) == (result == .ok));
    return code;
}

export fn hak_usable_size(ptr: ?*const anyopaque) usize {
    return alloc.usableSize(@intFromPtr(ptr orelse return 0)) orelse 0;
}

export fn hak_owns(ptr: ?*const anyopaque) c_int {
    const ownership = alloc.owns(@intFromPtr(ptr orelse return HAK_ERR_NOT_OWNED));
    const code = switch (ownership) {
        .live => HAK_OK,
        .not_owned => HAK_ERR_NOT_OWNED,
        .invalid => HAK_ERR_INVALID,
    };
    // hakmem.h: 0 for a live block, an error below 0 otherwise
    std.debug.assert(code <= 0);
    std.debug.assert((code == HAK_OK) == (ownership == .live));
    return code;
}

export fn hak_route(size: usize) c_int {
    process.ensureInit();
    const tier = routing.route(size);
    std.debug.assert(@intFromEnum(tier) < abi.tier_count); // one of HAK_TIER_*
    std.debug.assert(tier == .large or size <= routing.mid_max_limit); // above it only the large tier serves
    return @intFromEnum(tier);
}

export fn hak_tiny_max() usize {
    process.ensureInit();
    const tiny_max = routing.tiny_max;
    std.debug.assert(tiny_max <= routing.tiny_max_limit); // (setThresholds stores no other)
    return tiny_max;
}

export fn hak_mid_max() usize {
    process.ensureInit();
    const mid_max = routing.mid_max;
    std.debug.assert(mid_max >= routing.mid_max_min);
    std.debug.assert(mid_max <= routing.mid_max_limit);
    return mid_max;
}

export fn hak_tiny_max_limit() usize {
    return routing.tiny_max_limit;
}

export fn hak_mid_max_limit() usize {
    return routing.mid_max_limit;
}

export fn hak_mid_max_min() usize {
    return routing.mid_max_min;
}

export fn hak_set_thresholds(tiny_max: usize, mid_max: usize) c_int {
    process.ensureInit();
    return if (routing.setThresholds(tiny_max, mid_max)) HAK_OK else HAK_ERR_ARG;
}

export fn hak_class_count() u32 {
    return size_class.class_count;
}

export fn hak_class_size(cls: u32) usize {
    if (cls >= size_class.class_count) return 0;
    const size = size_class.classSize(cls);
    std.debug.assert(size >= size_class.min_block_size); // 0 means "no such class" to C
    std.debug.assert(size_class.classOf(size) == cls); // hak_class_of answers the class back
    return size;
}

export fn hak_class_of(size: usize) i32 {
    if (size > abi.mid_max_limit) return -1;
    const cls = size_class.classOf(size);
    std.debug.assert(size <= size_class.classSize(cls)); // the class holds the size
    std.debug.assert(cls == 0 or size > size_class.classSize(cls - 1)); // the smallest that does
    return @intCast(cls);
}

export fn hak_stats_read(out: ?[*]u64, n: usize) usize {
    const dest = out orelse return 0;
    var values: [stats.value_count]u64 = undefined;
    report.read(&values);
    const count = @min(n, values.len);
    @memcpy(dest[0..count], values[0..count]);
    return count;
}

export fn hak_stat_name(index: u32) ?[*:0]const u8 {
    return switch (index) {
        inline 0...abi.stat_name_count - 1 => |i| comptime statName(i),
        else => null,
    };
}

fn statName(comptime index: usize) [*:0]const u8 {
    const name = abi.statName(index).?;
    comptime std.debug.assert(name.len > 0); // C reads up to the NUL: a name, whole
    comptime std.debug.assert(std.mem.indexOfScalar(u8, name, 0) == null);
    return (abi.statName(index).? ++ "").ptr;
}

/// Where the memory goes (memory_report.zig): HAK_MEM_PARTS values; returns how many were written.
export fn hak_memory_report(out: ?[*]u64, n: usize) usize {
    const dest = out orelse return 0;
    var values: memory_report.Values = undefined;
    comptime std.debug.assert(values.len == abi.memory_part_count); // hak_memory_part_name names each
    memory_report.read(&values);
    const count = @min(n, values.len);
    @memcpy(dest[0..count], values[0..count]);
    return count;
}

export fn hak_memory_part_name(index: u32) ?[*:0]const u8 {
    return switch (index) {
        inline 0...abi.memory_part_count - 1 => |i| comptime (@tagName(@as(abi.MemoryPart, @enumFromInt(i))) ++ "").ptr,
        else => null,
    };
}

/// Writes the heap profile (pprof) to `path` (NULL: HAKMEM_PROFILE's path). HAK_ERR_INVALID
/// when profiling is off, HAK_ERR_ARG when the file cannot be written.
export fn hak_profile_dump(path: ?[*:0]const u8) c_int {
    process.ensureInit();
    @import("../memory/profile.zig").dump(path) catch |e| return switch (e) {
        error.Off => HAK_ERR_INVALID,
        error.CannotWrite => HAK_ERR_ARG,
    };
    return HAK_OK;
}

export fn hak_stats_reset() void {
    report.reset();
}

export fn hak_stats_print() void {
    report.printSummary();
}

/// Check mode (0 off, 1 abort on the first problem, 2 warn): settable before the first
/// allocation of the process only; HAK_ERR_INVALID afterwards.
export fn hak_set_check_mode(mode: c_int) c_int {
    const new_mode = std.meta.intToEnum(abi.CheckMode, mode) catch return HAK_ERR_ARG;
    process.ensureInit();
    if (stats.threads_total.load(.monotonic) != 0 or stats.large.allocs.load(.monotonic) != 0) return HAK_ERR_INVALID;
    std.debug.assert(@intFromEnum(new_mode) == mode); // (intToEnum refused every other value)
    config.check_mode = new_mode;
    return HAK_OK;
}

/// Check mode: checks every live block's redzones and every quarantined block's poison;
/// returns how many problems it reported (0 outside check mode).
export fn hak_check_heap() usize {
    const problems = @import("../calls/check.zig").sweep();
    std.debug.assert(problems == 0 or config.check_mode != .off); // none outside check mode
    return problems;
}

/// 1 when `ptr` is a live guarded sample (HAKMEM_GUARD_SAMPLE_MB, guard.zig), else 0.
export fn hak_sampled(ptr: ?*const anyopaque) c_int {
    const sampled = @import("../memory/guard.zig").isSample(@intFromPtr(ptr));
    std.debug.assert(!sampled or ptr != null); // NULL is no sample
    return @intFromBool(sampled);
}

export fn hak_check_mode() c_int {
    process.ensureInit();
    return @intFromEnum(config.check_mode);
}

/// Purges empty memory (the name is the ABI's: alloc.purge).
export fn hak_collect(force: c_int) void {
    alloc.purge(force != 0);
}

const version_z: [:0]const u8 = build_options.version ++ "";
const build_id_z: [:0]const u8 = build_options.build_id ++ "";

comptime {
    // C reads both up to their NUL: neither empty nor cut short by one inside
    std.debug.assert(version_z.len > 0);
    std.debug.assert(std.mem.indexOfScalar(u8, version_z, 0) == null);
    std.debug.assert(build_id_z.len > 0);
    std.debug.assert(std.mem.indexOfScalar(u8, build_id_z, 0) == null);
}

export fn hak_version() [*:0]const u8 {
    return version_z.ptr;
}

export fn hak_build_id() [*:0]const u8 {
    return build_id_z.ptr;
}

/// Checks hakmem's invariants now (zig/thread/validate.zig): the calling thread's heap, the
/// arena's lists and the large regions. HAK_OK, or HAK_ERR_INVALID after one line on stderr
/// naming what is broken. Any build; the checked library also runs the checks by itself.
export fn hak_validate() c_int {
    process.ensureInit();
    return if (validate.all(thread.currentAny())) HAK_OK else HAK_ERR_INVALID;
}
