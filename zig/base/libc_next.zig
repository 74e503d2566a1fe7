//! libc_next.zig — the allocator after hakmem in the symbol chain (normally glibc), used
//! in preload mode only for pointers hakmem did not map (allocated before it was loaded,
//! or through __libc_malloc). Resolved lazily with dlsym(RTLD_NEXT); if it cannot be
//! found the pointer is left alone (a leak, never a crash).
const std = @import("std");

extern "c" fn dlsym(handle: ?*anyopaque, symbol: [*:0]const u8) ?*anyopaque;
const rtld_next: ?*anyopaque = @ptrFromInt(@as(usize, @bitCast(@as(isize, -1))));

const FreeFn = *const fn (?*anyopaque) callconv(.c) void;
const ReallocFn = *const fn (?*anyopaque, usize) callconv(.c) ?*anyopaque;
const UsableFn = *const fn (?*anyopaque) callconv(.c) usize;

var next_free: ?FreeFn = null;
var next_realloc: ?ReallocFn = null;
var next_usable: ?UsableFn = null;

fn resolve(comptime T: type, slot: *?T, name: [*:0]const u8) ?T {
    std.debug.assert(name[0] != 0); // a symbol's name: dlsym("") finds nothing
    if (@atomicLoad(?T, slot, .acquire)) |f| return f;
    const f: ?T = @ptrCast(dlsym(rtld_next, name));
    // dlsym's RTLD_NEXT handle: ((void *) -1) in glibc's and musl's dlfcn.h
    std.debug.assert(@intFromPtr(rtld_next) == std.math.maxInt(usize));
    @atomicStore(?T, slot, f, .release);
    return f;
}

pub fn free(ptr: ?*anyopaque) void {
    std.debug.assert(ptr != null); // (free(NULL) is hakmem's: it does nothing)
    if (resolve(FreeFn, &next_free, "free")) |f| f(ptr);
}

pub fn realloc(ptr: ?*anyopaque, size: usize) ?*anyopaque {
    std.debug.assert(ptr != null); // (realloc(NULL, n) is hakmem's malloc)
    std.debug.assert(size > 0); // (realloc(p, 0) frees p: hakmem's free forwards it)
    const f = resolve(ReallocFn, &next_realloc, "realloc") orelse return null;
    return f(ptr, size);
}

pub fn usableSize(ptr: ?*anyopaque) usize {
    std.debug.assert(ptr != null); // (malloc_usable_size(NULL) is 0 without asking)
    const f = resolve(UsableFn, &next_usable, "malloc_usable_size") orelse return 0;
    return f(ptr);
}
