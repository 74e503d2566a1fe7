//! large_header.zig — the header before every large block, and the states its magic
//! records. Every file of the large tier reads and writes it (large.zig, large_recent.zig,
//! large_resize.zig, large_mappings.zig, large_local.zig); the slow paths, check mode and
//! the memory report read it (calls/, process/). No state and no lock here: a header
//! belongs to its block, written by the thread that allocates, resizes or frees it (free
//! changes the magic by CAS, so two racing frees cannot both free it: large.zig).
//!
//!   a region block: 64 KiB aligned, in chunks tagged large_region (large_region.lookup
//!   finds its header); a mapping of its own: 4 MiB aligned, tagged large_head/large_tail
//!   +--------------+-----------------------------------------+
//!   | LargeHeader  |  block (usable_size bytes)               |
//!   +--------------+-----------------------------------------+
//!   ^ base         ^ base + block_offset (64, the alignment, or 4 MiB for alignments >= 4 MiB)
//!
//!   magic: live -> (free) cached: a freed region block, or a mapping in the cache
//!          live -> (free into a thread's local cache) local -> live again, or cached
const std = @import("std");
const large_region = @import("large_region.zig");
const page_size = @import("../base/os.zig").page_size;
const chunk_size = @import("../base/segment_map.zig").chunk_size;

/// The offset of a block aligned to 64 bytes or less: the header fits before it.
pub const header_room: usize = 64;
pub const live_magic: u64 = 0x6861_6b6d_656d_4c47; // "hakmemLG"
pub const cached_magic: u64 = 0x6861_6b6d_656d_4343; // "hakmemCC"
/// Freed into its thread's local cache (large_local.zig): units still taken, header kept.
pub const local_magic: u64 = 0x6861_6b6d_656d_4c54; // "hakmemLT"

pub const LargeHeader = extern struct {
    magic: u64,
    /// Bytes from the header to the block's end (page-rounded).
    mapped_size: usize,
    block_offset: usize,
    usable_size: usize,
    /// Units of its region the block spans (large_region.zig); 0 for a mapping of its own.
    region_units: usize = 0,

    comptime {
        std.debug.assert(@sizeOf(LargeHeader) <= header_room);
    }
};

/// The region units a block of `mapped` bytes (header included) takes.
pub fn unitsFor(mapped: usize) usize {
    std.debug.assert(mapped > 0);
    std.debug.assert(mapped <= large_region.block_bytes_max); // larger: a mapping of its own
    const units = (mapped + large_region.unit_size - 1) / large_region.unit_size;
    std.debug.assert(units * large_region.unit_size >= mapped); // they hold it
    std.debug.assert((units - 1) * large_region.unit_size < mapped); // and no unit more
    return units;
}

/// What every header of a block as handed out says about itself, live, held in a local
/// cache or a freed region block alike (a cached mapping's is rewritten when it is reused):
/// the sizes agree, and the base is where a region unit or a mapping of its own starts.
/// Reads the header's sizes only (never the magic, which a racing free may be changing).
pub inline fn assertConsistent(header: *const LargeHeader) void {
    std.debug.assert(header.block_offset >= header_room); // the header fits before the block
    std.debug.assert(header.block_offset + header.usable_size == header.mapped_size);
    std.debug.assert(header.mapped_size % page_size == 0);
    const base = @intFromPtr(header);
    if (header.region_units != 0) {
        std.debug.assert(base % large_region.unit_size == 0);
        std.debug.assert(header.region_units == unitsFor(header.mapped_size));
    } else {
        std.debug.assert(base % chunk_size == 0);
    }
}
