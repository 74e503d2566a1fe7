//! large_recent.zig — the large blocks whose memory the tier gave back lately: a ring of
//! the last 64 addresses and sizes. A second free of one is a double free, not a foreign
//! pointer, and a report can still name its size. Written where the memory goes
//! (large_mappings.unmap; a region's purge, or pages moved to another block, through
//! rememberPurged; a region block realloc moved, large_resize.zig); read by
//! large.lookup/describe and by slow.zig (a pointer in no chunk of hakmem's).
//!
//! No lock: a writer takes its slot with one fetchAdd and stores the slot's address last
//! (release), after clearing it, so a reader that finds an address (acquire) reads its size.
const std = @import("std");
const large_header = @import("large_header.zig");
const LargeHeader = large_header.LargeHeader;

const recent_slots = 64;
const Recent = struct { addr: usize = 0, usable_size: usize = 0 };
var recent: [recent_slots]Recent = [_]Recent{.{}} ** recent_slots;
var recent_next = std.atomic.Value(usize).init(0);

/// Remembers a freed block (magic cached) whose memory is about to go back to the OS.
pub fn rememberUnmapped(header: *const LargeHeader) void {
    if (header.magic != large_header.cached_magic) return;
    std.debug.assert(header.block_offset >= large_header.header_room); // the block after its header
    remember(@intFromPtr(header) + header.block_offset, header.usable_size);
}

/// A freed region block whose first unit is about to lose its pages (purged, or moved to
/// another block: large_region.BeforePurge): remembered, so a second free is still a double free.
pub fn rememberPurged(block_base: usize) void {
    std.debug.assert(block_base % @import("large_units.zig").unit_size == 0); // a region block's first unit
    rememberUnmapped(@ptrFromInt(block_base));
}

/// Remembers the block at `addr` of `usable_size` bytes, whose memory hakmem gave back or
/// moved (a realloc's old address, large_resize.zig).
pub fn remember(addr: usize, usable_size: usize) void {
    std.debug.assert(addr != 0); // 0 marks a slot being written (a reader skips it)
    std.debug.assert(addr % large_header.header_room == 0); // a large block's start: base + offset
    std.debug.assert(usable_size > 0); // a block held a byte at least (a reader's size, never "none")
    const slot = &recent[recent_next.fetchAdd(1, .monotonic) % recent_slots];
    @atomicStore(usize, &slot.addr, 0, .monotonic);
    @atomicStore(usize, &slot.usable_size, usable_size, .monotonic);
    @atomicStore(usize, &slot.addr, addr, .release);
}

/// The usable size of the block that started at `addr`, when it is one of the last 64 given back.
pub fn recentlyFreedSize(addr: usize) ?usize {
    // 0 is an empty slot's address, and a slot's while it is written: NULL would match
    // (callers: a pointer free, realloc or a report found to be no live block, never NULL)
    std.debug.assert(addr != 0);
    for (&recent) |*slot| {
        if (@atomicLoad(usize, &slot.addr, .acquire) == addr) {
            const size = @atomicLoad(usize, &slot.usable_size, .monotonic);
            std.debug.assert(size > 0); // every size remembered is one (a slot reused meanwhile: its new one)
            return size;
        }
    }
    return null;
}

/// True when `addr` (in no chunk of hakmem's now) was the address of a large block whose
/// mapping hakmem unmapped lately: freeing it again is a double free. Even when something
/// else was mapped there since (a thread's stack often is), it cannot be another
/// allocator's block: a large block's address is a chunk boundary + header, where glibc
/// never puts one (its mmapped chunks start 16 bytes into a page).
pub fn recentlyFreed(addr: usize) bool {
    return recentlyFreedSize(addr) != null;
}

// ---------------------------------------------------------------- tests

const testing = std.testing;

/// Headers of no block (static: no test frees a pointer near them), for the ring's test;
/// 64-byte aligned as every block's base, so base + header_room is where a block would start.
const TestHeader = struct { header: LargeHeader align(64) };
var test_headers: [recent_slots + 2]TestHeader = undefined;

test "a freed block given back is remembered with its size; a live one is not" {
    const freed = &test_headers[0].header;
    const live = &test_headers[1].header;
    freed.* = .{ .magic = large_header.cached_magic, .mapped_size = 1 << 20, .block_offset = large_header.header_room, .usable_size = (1 << 20) - large_header.header_room };
    live.* = freed.*;
    live.magic = large_header.live_magic;
    const freed_addr = @intFromPtr(freed) + freed.block_offset;
    rememberUnmapped(live);
    try testing.expect(!recentlyFreed(@intFromPtr(live) + live.block_offset));
    rememberUnmapped(freed);
    try testing.expectEqual(@as(?usize, freed.usable_size), recentlyFreedSize(freed_addr));
    // the ring keeps the last recent_slots: this one is forgotten after as many others
    for (test_headers[2..]) |*other| {
        other.header = freed.*;
        rememberUnmapped(&other.header);
    }
    try testing.expect(!recentlyFreed(freed_addr));
}
