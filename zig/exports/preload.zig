//! preload.zig — the libc allocation names, so that LD_PRELOAD=libhakmem.so replaces
//! malloc for a whole program. Same allocator as the hak_* API, with libc's contract:
//! errno, EINVAL/ENOMEM, 16-byte alignment, foreign pointers passed to the next
//! allocator, invalid ones (interior, double free where detectable) ignored.
const std = @import("std");
const os = @import("../base/os.zig");
const config = @import("../settings/config.zig");
const stats = @import("../settings/stats.zig");
const alloc = @import("../calls/alloc.zig");
const libc_next = @import("../base/libc_next.zig");
const misuse = @import("../settings/misuse.zig");
const abi = @import("../abi.zig");
const trace = @import("../process/trace.zig");
const check_sites = @import("../calls/check_sites.zig");
const check = @import("../calls/check.zig");

// Check mode notes where each call came from (check_sites.zig): an entry point jumps
// (@call always_tail: its frame is gone) to a twin that keeps a frame pointer, whose frame
// address then names the program's call: its return address and frame pointer. malloc and
// free do it in alloc.zig's and freeOther's slow paths (their fast paths jump there); the
// others at their first test. The bodies (…Body) call one another, never an entry point,
// so that an inner call does not note itself.

// align(64) on the four fast paths (malloc, free, hak_alloc, hak_free): where the linker
// happens to put them changed their speed by 10-15% with not one instruction changed.
export fn malloc(size: usize) align(64) ?*anyopaque {
    return alloc.mallocFrom(.libc, size);
}

/// free and cfree: one function under two names (no jump from one to the other).
fn free(ptr: ?*anyopaque) align(64) callconv(.c) void {
    if (alloc.freeFast(ptr)) return;
    freeOther(ptr);
}
comptime {
    @export(&free, .{ .name = "free" });
    @export(&free, .{ .name = "cfree" });
}

noinline fn freeOther(ptr: ?*anyopaque) void {
    if (config.check_mode != .off) return @call(.always_tail, freeChecked, .{ptr});
    freeOtherBody(ptr);
}

noinline fn freeChecked(ptr: ?*anyopaque) void {
    std.debug.assert(config.check_mode != .off); // (its entry point jumps here in check mode only)
    if (!config.check_stacks and !config.trace) {
        // the common case, its site passed along instead of noted and taken again
        if (check.freeQuickFrom(@intFromPtr(ptr), check_sites.callerOf(@frameAddress()))) return;
    }
    check_sites.noteEntry(@frameAddress());
    freeOtherBody(ptr);
}

/// free's body for the other libc names (realloc(p, 0)).
fn freeBody(ptr: ?*anyopaque) void {
    std.debug.assert(ptr != null); // (realloc(NULL, 0) is malloc(0): reallocBody frees only a block)
    if (alloc.freeFast(ptr)) return;
    freeOtherBody(ptr);
}

fn freeOtherBody(ptr: ?*anyopaque) void {
    if (config.trace) trace.freeing(ptr); // before: the address may be handed out again at once
    const result = alloc.freeOther(@intFromPtr(ptr));
    std.debug.assert(ptr != null or result == .ok); // free(NULL): nothing to refuse or forward
    switch (result) {
        .ok => {},
        // check mode has reported it already (and =warn goes on)
        .invalid => if (config.check_mode == .off) misuse.abortMisuse(.not_a_block, @intFromPtr(ptr), alloc.describe(@intFromPtr(ptr))),
        .not_owned => if (mayForward(ptr)) libc_next.free(ptr),
        .double_free => if (config.check_mode == .off) misuse.abortMisuse(.double_free, @intFromPtr(ptr), alloc.describe(@intFromPtr(ptr))),
    }
}

/// A pointer hakmem does not own goes to the next allocator, except in check mode (which
/// reported it) when it certainly is not a heap block: a stack or static buffer would
/// crash inside glibc, and warn mode promises to carry on.
fn mayForward(ptr: ?*anyopaque) bool {
    std.debug.assert(ptr != null); // (NULL is hakmem's to answer: free does nothing, realloc mallocs)
    if (config.check_mode == .off) return true;
    return @import("../base/foreign.zig").where(@intFromPtr(ptr)).mayBeHeap();
}

export fn calloc(count: usize, size: usize) ?*anyopaque {
    if (config.check_mode != .off) return @call(.always_tail, callocChecked, .{ count, size });
    return callocBody(count, size);
}

fn callocChecked(count: usize, size: usize) callconv(.c) ?*anyopaque {
    check_sites.noteEntry(@frameAddress());
    std.debug.assert(config.check_mode != .off); // (its entry point jumps here in check mode only)
    return callocBody(count, size);
}

noinline fn callocBody(count: usize, size: usize) ?*anyopaque {
    misuse.noteLibcMode();
    const ptr = alloc.calloc(count, size);
    std.debug.assert(ptr == null or @intFromPtr(ptr) % 16 == 0); // malloc's alignment
    std.debug.assert(ptr == null or @mulWithOverflow(count, size)[1] == 0); // an overflow is ENOMEM
    // zeroed: its first and last byte (a loop over it all would slow the checked library's calloc)
    std.debug.assert(ptr == null or count *% size == 0 or @as([*]const u8, @ptrCast(ptr))[0] == 0);
    std.debug.assert(ptr == null or count *% size == 0 or @as([*]const u8, @ptrCast(ptr))[count *% size - 1] == 0);
    if (config.trace) trace.allocated(.calloc, count *% size, ptr);
    return ptr;
}

export fn realloc(ptr: ?*anyopaque, size: usize) ?*anyopaque {
    if (config.check_mode != .off) return @call(.always_tail, reallocChecked, .{ ptr, size });
    // a block that still holds `size` is its own answer (a traced process records every call)
    if (!config.trace) if (alloc.reallocInPlace(ptr, size)) |same| {
        misuse.noteLibcMode();
        return same;
    };
    return reallocBody(ptr, size);
}

fn reallocChecked(ptr: ?*anyopaque, size: usize) callconv(.c) ?*anyopaque {
    check_sites.noteEntry(@frameAddress());
    std.debug.assert(config.check_mode != .off); // (its entry point jumps here in check mode only)
    return reallocBody(ptr, size);
}

noinline fn reallocBody(ptr: ?*anyopaque, size: usize) ?*anyopaque {
    if (ptr != null and size == 0) {
        // glibc's behaviour: realloc(p, 0) frees p and returns NULL.
        freeBody(ptr);
        return null;
    }
    misuse.noteLibcMode();
    std.debug.assert(ptr == null or size > 0); // (realloc(p, 0) freed p above)
    if (config.trace and ptr != null) {
        const old = trace.reallocating(ptr.?);
        const fresh = reallocUntraced(ptr, size);
        trace.reallocated(old, ptr.?, size, fresh);
        return fresh;
    }
    const fresh = reallocUntraced(ptr, size);
    if (config.trace) trace.allocated(.malloc, size, fresh); // realloc(NULL, size)
    return fresh;
}

fn reallocUntraced(ptr: ?*anyopaque, size: usize) ?*anyopaque {
    return switch (alloc.realloc(ptr, size)) {
        .ok => |p| blk: {
            std.debug.assert(p == null or @intFromPtr(p) % 16 == 0); // malloc's alignment
            break :blk p;
        },
        .not_owned => if (mayForward(ptr)) libc_next.realloc(ptr, size) else {
            os.setErrno(.INVAL);
            return null;
        },
        .freed => {
            std.debug.assert(ptr != null); // realloc(NULL, size) is malloc: only a block can be freed
            misuse.abortMisuse(.realloc_freed, @intFromPtr(ptr), alloc.describe(@intFromPtr(ptr)));
        },
        .invalid => {
            std.debug.assert(ptr != null); // (realloc(NULL, size) is malloc: never refused)

            if (config.check_mode == .off) misuse.abortMisuse(.not_a_block, @intFromPtr(ptr), alloc.describe(@intFromPtr(ptr)));
            os.setErrno(.INVAL); // check mode =warn: reported already
            return null;
        },
    };
}

export fn reallocarray(ptr: ?*anyopaque, count: usize, size: usize) ?*anyopaque {
    if (config.check_mode != .off) return @call(.always_tail, reallocarrayChecked, .{ ptr, count, size });
    return reallocarrayBody(ptr, count, size);
}

fn reallocarrayChecked(ptr: ?*anyopaque, count: usize, size: usize) callconv(.c) ?*anyopaque {
    check_sites.noteEntry(@frameAddress());
    std.debug.assert(config.check_mode != .off); // (its entry point jumps here in check mode only)
    return reallocarrayBody(ptr, count, size);
}

noinline fn reallocarrayBody(ptr: ?*anyopaque, count: usize, size: usize) ?*anyopaque {
    const total = std.math.mul(usize, count, size) catch return alloc.outOfMemory();
    std.debug.assert(size == 0 or total / size == count); // the product, not overflowed
    return reallocBody(ptr, total);
}

export fn posix_memalign(out: *?*anyopaque, alignment: usize, size: usize) c_int {
    if (config.check_mode != .off) return @call(.always_tail, posixMemalignChecked, .{ out, alignment, size });
    return posixMemalignBody(out, alignment, size);
}

fn posixMemalignChecked(out: *?*anyopaque, alignment: usize, size: usize) callconv(.c) c_int {
    check_sites.noteEntry(@frameAddress());
    std.debug.assert(config.check_mode != .off); // (its entry point jumps here in check mode only)
    return posixMemalignBody(out, alignment, size);
}

noinline fn posixMemalignBody(out: *?*anyopaque, alignment: usize, size: usize) c_int {
    if (alignment < @sizeOf(usize) or !std.math.isPowerOfTwo(alignment)) return @intFromEnum(std.c.E.INVAL);
    const saved = os.errnoPtr().*;
    defer os.errnoPtr().* = saved;
    out.* = aligned(alignment, size) orelse return @intFromEnum(std.c.E.NOMEM);
    std.debug.assert(@intFromPtr(out.*) % alignment == 0); // POSIX: aligned, and not NULL on success
    std.debug.assert(out.* != null);
    return 0;
}

/// As glibc up to 2.37 (aligned_alloc is memalign there): any alignment is accepted and
/// rounded up to a power of two (0 and 1 give malloc's 16). C17 leaves an alignment that
/// is not a power of two implementation-defined; glibc 2.38 began to refuse it, but
/// programs were tested against the glibc that accepted it. hak_aligned_alloc is strict.
export fn aligned_alloc(alignment: usize, size: usize) ?*anyopaque {
    if (config.check_mode != .off) return @call(.always_tail, memalignChecked, .{ alignment, size });
    return memalignBody(alignment, size);
}

/// glibc's memalign: an alignment that is not a power of two is rounded up to the next
/// one; above SIZE_MAX/2 + 1 (no power of two to round to) it is EINVAL.
export fn memalign(alignment: usize, size: usize) ?*anyopaque {
    if (config.check_mode != .off) return @call(.always_tail, memalignChecked, .{ alignment, size });
    return memalignBody(alignment, size);
}

fn memalignChecked(alignment: usize, size: usize) callconv(.c) ?*anyopaque {
    check_sites.noteEntry(@frameAddress());
    std.debug.assert(config.check_mode != .off); // (its entry point jumps here in check mode only)
    return memalignBody(alignment, size);
}

noinline fn memalignBody(alignment: usize, size: usize) ?*anyopaque {
    if (alignment > std.math.maxInt(usize) / 2 + 1) {
        os.setErrno(.INVAL);
        return null;
    }
    const a = std.math.ceilPowerOfTwo(usize, @max(alignment, 1)) catch unreachable;
    std.debug.assert(a >= alignment); // rounded up, never down,
    std.debug.assert(a / 2 < @max(alignment, 1)); // to the next power of two, not past it
    return aligned(a, size);
}

export fn valloc(size: usize) ?*anyopaque {
    if (config.check_mode != .off) return @call(.always_tail, vallocChecked, .{size});
    return aligned(os.page_size, size);
}

fn vallocChecked(size: usize) callconv(.c) ?*anyopaque {
    check_sites.noteEntry(@frameAddress());
    std.debug.assert(config.check_mode != .off); // (its entry point jumps here in check mode only)
    return aligned(os.page_size, size);
}

/// Every aligned allocation of the libc names, recorded when tracing.
noinline fn aligned(alignment: usize, size: usize) ?*anyopaque {
    std.debug.assert(std.math.isPowerOfTwo(alignment)); // (each caller rounded or refused it)
    const ptr = alloc.alignedAlloc(alignment, size);
    std.debug.assert(ptr == null or @intFromPtr(ptr) % alignment == 0);
    if (config.trace) trace.alignedAllocated(alignment, size, ptr);
    return ptr;
}

export fn pvalloc(size: usize) ?*anyopaque {
    if (config.check_mode != .off) return @call(.always_tail, pvallocChecked, .{size});
    return pvallocBody(size);
}

fn pvallocChecked(size: usize) callconv(.c) ?*anyopaque {
    check_sites.noteEntry(@frameAddress());
    std.debug.assert(config.check_mode != .off); // (its entry point jumps here in check mode only)
    return pvallocBody(size);
}

noinline fn pvallocBody(size: usize) ?*anyopaque {
    const rounded = std.math.add(usize, size, os.page_size - 1) catch return alloc.outOfMemory();
    const whole = @max(os.page_size, rounded & ~(os.page_size - 1));
    std.debug.assert(whole % os.page_size == 0); // whole pages,
    std.debug.assert(whole >= size); // that hold the request
    return aligned(os.page_size, whole);
}

export fn malloc_usable_size(ptr: ?*anyopaque) usize {
    const addr = @intFromPtr(ptr orelse return 0);
    if (config.trace) trace.usableSize(ptr);
    return alloc.usableSize(addr) orelse switch (alloc.classify(addr)) {
        .not_owned => libc_next.usableSize(ptr),
        else => 0,
    };
}

export fn malloc_trim(pad: usize) c_int {
    _ = pad;
    alloc.purge(true);
    return 1;
}

pub const Mallinfo2 = extern struct {
    arena: usize = 0,
    ordblks: usize = 0,
    smblks: usize = 0,
    hblks: usize = 0,
    hblkhd: usize = 0,
    usmblks: usize = 0,
    fsmblks: usize = 0,
    uordblks: usize = 0,
    fordblks: usize = 0,
    keepcost: usize = 0,
};

export fn mallinfo2() Mallinfo2 {
    var v: [stats.value_count]u64 = undefined;
    @import("../process/report.zig").read(&v);
    var live: u64 = 0;
    for (0..abi.tier_count) |t| live += v[abi.statIndex(@enumFromInt(t), .live_bytes)];
    const mapped = v[abi.StatGlobal.os_mapped_bytes.index()];
    std.debug.assert(mapped % os.page_size == 0); // the OS maps whole pages
    std.debug.assert(v[abi.statIndex(.large, .mapped_bytes)] % os.page_size == 0); // hblkhd: the large tier's, in pages too
    return .{
        .arena = mapped,
        .hblks = v[abi.statIndex(.large, .pages)],
        .hblkhd = v[abi.statIndex(.large, .mapped_bytes)],
        .uordblks = live,
        .fordblks = mapped -| live,
    };
}
