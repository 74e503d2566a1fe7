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
    if (@atomicLoad(?T, slot, .acquire)) |f| return f;
    const f: ?T = @ptrCast(dlsym(rtld_next, name));
    @atomicStore(?T, slot, f, .release);
    return f;
}

pub fn free(ptr: ?*anyopaque) void {
    if (resolve(FreeFn, &next_free, "free")) |f| f(ptr);
}

pub fn realloc(ptr: ?*anyopaque, size: usize) ?*anyopaque {
    const f = resolve(ReallocFn, &next_realloc, "realloc") orelse return null;
    return f(ptr, size);
}

pub fn usableSize(ptr: ?*anyopaque) usize {
    const f = resolve(UsableFn, &next_usable, "malloc_usable_size") orelse return 0;
    return f(ptr);
}
