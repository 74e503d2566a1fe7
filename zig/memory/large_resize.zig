//! large_resize.zig — realloc of a large block without a copy: a region block grows onto
//! the free units after it, else moves to a run where it fits with its pages (mremap:
//! large_region.relocate), or gives back its last units; a mapping of its own is cut, grown
//! in place, or moved by mremap. Called by alloc.zig's realloc (resize) and by the mapping
//! cache (large_mappings.zig: refit makes a cached mapping fit a new block).
//!
//! No state of its own: a region's units are under large_region's lock (grow, relocate, shrink); the
//! header is the caller's block's (large_header.zig); a mapping being refit is the caller's
//! alone (a live block, or one it took out of the cache).
const std = @import("std");
const os = @import("../base/os.zig");
const stats = @import("../settings/stats.zig");
const segment_map = @import("../base/segment_map.zig");
const memory_budget = @import("../settings/budget.zig");
const large_region = @import("large_region.zig");
const large_header = @import("large_header.zig");
const large_recent = @import("large_recent.zig");
const LargeHeader = large_header.LargeHeader;

const chunk_size = segment_map.chunk_size;
const size_max: usize = @import("../abi.zig").size_max;

/// Resizes a large block in place or by moving its pages (no copy). Null when the
/// kernel cannot; the block is then unchanged.
pub fn resize(header: *LargeHeader, new_size: usize) ?*anyopaque {
    large_header.assertConsistent(header);
    const offset = header.block_offset;
    const total = std.math.add(usize, offset, @max(new_size, 1)) catch return null;
    if (total > size_max) return null;
    const new_mapped = std.mem.alignForward(usize, total, os.page_size);
    const claimed = std.mem.alignForward(usize, new_mapped -| header.mapped_size, large_region.unit_size);
    if (!memory_budget.claim(claimed)) return null;
    defer memory_budget.settle(claimed);
    if (header.region_units != 0) return resizeInRegion(header, new_mapped);
    const old_usable = header.usable_size;
    const new_base = refit(@intFromPtr(header), header.mapped_size, new_mapped) orelse return null;
    const moved: *LargeHeader = @ptrFromInt(new_base);
    std.debug.assert(moved.block_offset == offset); // its header came along (mremap moves pages)
    moved.mapped_size = new_mapped;
    moved.usable_size = new_mapped - offset;
    large_header.assertConsistent(moved);
    std.debug.assert(moved.usable_size >= new_size);
    stats.subFrom(&stats.large.live_bytes, old_usable);
    stats.addTo(&stats.large.live_bytes, moved.usable_size);
    return @ptrFromInt(new_base + offset);
}

/// A region block resized: grown onto the free units after it, or moved with its pages to a
/// run where it fits (no copy: relocate), or giving back its last units. Null (unchanged)
/// when it would outgrow a region block, or no region has room: realloc then copies it
/// into a block of its own.
fn resizeInRegion(header: *LargeHeader, new_mapped: usize) ?*anyopaque {
    std.debug.assert(header.region_units != 0); // a region block
    if (new_mapped > large_region.block_bytes_max) return null;
    const unit = large_region.unit_size;
    const base = @intFromPtr(header);
    const old_units = header.region_units;
    const new_units = large_header.unitsFor(new_mapped);
    var block = header;
    var mapped = new_mapped;
    if (new_units > old_units) {
        if (large_region.grow(base, old_units, new_units, large_recent.rememberPurged)) |reused| {
            stats.subFrom(&stats.large.cached_bytes, reused * unit);
            stats.largeResized(0, (new_units - old_units - reused) * unit);
        } else {
            block = relocate(header, new_units) orelse return null;
            mapped = block.region_units * unit; // with its room to grow
        }
    } else if (new_units < old_units) {
        large_region.shrink(base, old_units, new_units, os.nowMs());
        stats.addTo(&stats.large.cached_bytes, (old_units - new_units) * unit);
    }
    block.region_units = large_header.unitsFor(mapped);
    block.mapped_size = mapped;
    stats.subFrom(&stats.large.live_bytes, block.usable_size);
    block.usable_size = mapped - block.block_offset;
    stats.addTo(&stats.large.live_bytes, block.usable_size);
    large_header.assertConsistent(block);
    std.debug.assert(mapped >= new_mapped); // (a moved block: with its room to grow)
    return @ptrFromInt(@intFromPtr(block) + block.block_offset);
}

/// A block moved for growth gets this fraction of its old size more than it asks for, as
/// tcmalloc's realloc does: a buffer growing by small steps moves about log(n) times, not
/// once per unit (its room holds no pages until the program writes it).
const room_divisor = 4;

/// A region block moved to a run of at least `new_units` (with room to grow), its pages
/// along (its header with them); its old address remembered (a free of it is a double
/// free). Null: it stays where it is. The block's region_units are the run's.
fn relocate(header: *LargeHeader, new_units: usize) ?*LargeHeader {
    const old = header.*; // (its page moves away: read it first)
    const base = @intFromPtr(header);
    const room_units = @min(large_region.block_units_max, @max(new_units, old.region_units + old.region_units / room_divisor));
    std.debug.assert(room_units >= new_units); // (new_units <= block_units_max: resizeInRegion)
    const moved = large_region.relocate(base, old.region_units, new_units, room_units, os.nowMs(), large_recent.rememberPurged) orelse return null;
    large_recent.remember(base + old.block_offset, old.usable_size);
    const unit = large_region.unit_size;
    const reused = moved.span.resident_units;
    stats.subFrom(&stats.large.cached_bytes, reused * unit);
    stats.addTo(&stats.large.cached_bytes, moved.kept_units * unit);
    stats.largeResized((old.region_units + reused) * unit, (room_units + moved.kept_units) * unit);
    const block: *LargeHeader = @ptrFromInt(moved.span.base);
    std.debug.assert(block.magic == old.magic); // it came along
    std.debug.assert(block.usable_size == old.usable_size);
    std.debug.assert(moved.span.units == room_units);
    block.region_units = room_units;
    return block;
}

/// Makes the mapping at `base` `new_mapped` bytes long: unmaps its tail, or grows it in
/// place or by moving its pages to a new 4 MiB-aligned place (no copy, no new faults for
/// the pages it had). Returns its base, or null (the mapping unchanged) when the kernel cannot.
pub fn refit(base: usize, old_mapped: usize, new_mapped: usize) ?usize {
    std.debug.assert(base % chunk_size == 0); // a mapping of its own
    std.debug.assert(old_mapped % os.page_size == 0);
    std.debug.assert(new_mapped % os.page_size == 0);
    var new_base = base;
    if (new_mapped < old_mapped) {
        const tail_chunks = std.mem.alignForward(usize, base + new_mapped, chunk_size);
        segment_map.clear(tail_chunks, (base + old_mapped) -| tail_chunks);
        os.unmap(@ptrFromInt(base + new_mapped), old_mapped - new_mapped);
    } else if (new_mapped > old_mapped) {
        if (!os.remapInPlace(@ptrFromInt(base), old_mapped, new_mapped)) {
            const dest = os.mapAligned(new_mapped, chunk_size) orelse return null;
            // Untag the old range before the pages leave it: the moment they do, the kernel
            // may give that range to another thread's new mapping, tagged by that thread.
            segment_map.clear(base, old_mapped);
            if (!os.remapTo(@ptrFromInt(base), old_mapped, new_mapped, dest)) {
                segment_map.mark(base, old_mapped, .large_head, .large_tail);
                os.unmap(dest, new_mapped);
                return null;
            }
            new_base = @intFromPtr(dest);
        }
        segment_map.mark(new_base, new_mapped, .large_head, .large_tail);
    }
    stats.largeResized(old_mapped, new_mapped);
    std.debug.assert(new_base % chunk_size == 0); // where segment_map tags its head
    return new_base;
}
