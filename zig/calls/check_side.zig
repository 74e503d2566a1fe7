//! check_side.zig — check mode's record of each page block, beside it: live (where it was
//! allocated, where its user pointer is) or freed (that, and where it was freed and which
//! window of the freed pattern it got, check_pattern.zig), in a side table of its segment.
//! The sweep (hak_check_heap, and at exit) walks the live records; free turns a record
//! from live to freed (its free word, one store; check.zig takes the block's front header
//! tag first with a compare-and-swap, so of two threads freeing one block at once exactly
//! one takes it; the general path's markFreed swaps the free word itself); the quarantine and the threads' stacks of freed blocks
//! (check.zig, check_reuse.zig) hold only addresses: a report reads the rest here.
//!
//!   top[seg >> 12] -> leaf[seg & 4095] -> Side of the segment (seg = address >> 22)
//!   Side.records[first slice of the block's page * 4096 + the block's index in its page]
//!
//! A page of k slices holds at most k * 4096 blocks (16 bytes the smallest), so its
//! records are those of its own slices. No lock on malloc's or free's path (the lock only
//! guards making a leaf or a Side); a Side is mapped at the first block of its segment (4
//! MiB of address space, resident only where a slice held blocks) and kept for the
//! process: a segment mapped again at the same address finds only records of blocks that
//! were freed (every block of a segment is freed before the segment goes).
//! (The hash table it replaces took a shard lock and probed a cold slot per call; the
//! quarantine's 64-byte entries were copied four times per block.)
const std = @import("std");
const os = @import("../base/os.zig");
const Lock = @import("../base/lock.zig").Lock;
const segment_map = @import("../base/segment_map.zig");
const size_class = @import("../settings/size_class.zig");
const page_mod = @import("../memory/page.zig");
const segment_mod = @import("../memory/segment.zig");
const check_sites = @import("check_sites.zig");
const Site = check_sites.Site;
const Page = page_mod.Page;

const slices_per_segment = segment_map.chunk_size / size_class.slice_size;
const records_per_slice = size_class.slice_size / size_class.min_block_size;
const records_per_segment = slices_per_segment * records_per_slice;
const segment_bits = segment_map.address_bits - segment_map.chunk_shift;
const leaf_bits = 12;
const top_bits = segment_bits - leaf_bits;
comptime {
    // a page's records run from its first slice's on: at most its slices' worth
    std.debug.assert(size_class.max_page_slices * records_per_slice <= std.math.maxInt(u32));
    // the top and the leaves cover every segment of the address space, one Side each
    std.debug.assert(top_bits > 0);
    // a Side's records are 4 MiB of address space, resident only where slices held blocks
    std.debug.assert(@sizeOf(Record) == 16);
    std.debug.assert(records_per_segment * @sizeOf(Record) == segment_map.chunk_size);
}

/// A block's record: `state` (recorded, the allocation's site, the user pointer's offset),
/// written when it is handed out, and `freed` (zero while the block is live; else the
/// freed flag, the free's site, the pattern's window index), written when it is freed: a
/// free writes one word and reads none (the record's line is cold by then).
const Record = extern struct { state: u64, freed: u64 };

/// A segment's records, and per slice how far the records of a page that starts there
/// ever reached (0: none; the sweep reads only those, not a slice's 4096 words whatever
/// its blocks' size).
const Side = struct {
    reach: [slices_per_segment]std.atomic.Value(u32),
    records: [records_per_segment]Record,
};
const Leaf = [1 << leaf_bits]std.atomic.Value(?*Side);

var top: [1 << top_bits]std.atomic.Value(?*Leaf) = [_]std.atomic.Value(?*Leaf){.init(null)} ** (1 << top_bits);
/// Guards making a leaf or a Side. fork: check.zig's handlers hold it across, reset it in
/// the child.
pub var lock: Lock = .{};

// ---------------------------------------------------------------- a record's words

/// state: bit 63 recorded (clear: no block recorded); bits 48..61 the user pointer's offset
/// from the block start in 16-byte units; bits 0..47 the allocation's site.
/// freed: 0 while live; else bit 63 freed, bits 48..62 the pattern's window index, bits
/// 0..47 the free's site. A record is live when recorded with a zero free word.
/// A site: bit 47 set for a backtrace (its depot index below), else a return address.
const live_bit: u64 = 1 << 63; // (in state: recorded)
const freed_bit: u64 = 1 << 63; // (in freed)
const offset_shift = 48;
const offset_units_max = (1 << 14) - 1;
const window_shift = 48;
const window_max = (1 << 15) - 1;
const stack_bit: u64 = 1 << segment_map.address_bits; // (user-space addresses are below it)
const site_mask: u64 = stack_bit - 1;
comptime {
    // the fields do not overlap: a site's 48 bits (its payload and stack_bit) below the
    // offset's and the window's, each word's flag above them
    std.debug.assert(stack_bit << 1 == @as(u64, 1) << offset_shift);
    std.debug.assert(offset_shift + 14 <= 63);
    std.debug.assert(window_shift + 15 <= 63);
}

fn packSite(site: Site) u64 {
    const payload = site & ~check_sites.stack_flag;
    // (a return address beyond 47 bits cannot be user space: recorded as unknown)
    if (payload > site_mask) return 0;
    const word = payload | (if (site & check_sites.stack_flag != 0) stack_bit else 0);
    std.debug.assert(word < stack_bit << 1); // the site's bits only: never the offset's or a flag
    std.debug.assert(unpackSite(word) == site); // kept whole
    return word;
}

fn unpackSite(word: u64) Site {
    const payload = word & site_mask;
    return if (word & stack_bit != 0) check_sites.stack_flag | payload else payload;
}

fn liveState(offset: usize, site: Site) u64 {
    std.debug.assert(fits(offset));
    std.debug.assert(offset >= 16); // the front header lies before the user pointer
    const state = live_bit | (@as(u64, offset / 16) << offset_shift) | packSite(site);
    std.debug.assert(offsetOf(state) == offset); // read back as written
    return state;
}

fn offsetOf(state: u64) usize {
    return @intCast(((state & ~live_bit) >> offset_shift) * 16);
}

fn freedWord(site: Site, window: u16) u64 {
    std.debug.assert(window <= window_max);
    const word = freed_bit | @as(u64, window) << window_shift | packSite(site);
    std.debug.assert(word != 0); // never a live record's
    return word;
}

/// True when a block whose user pointer is `offset` bytes past its start can be recorded.
pub fn fits(offset: usize) bool {
    return offset % 16 == 0 and offset / 16 <= offset_units_max;
}

// ---------------------------------------------------------------- where a block's record is

/// The record of the block at `start` (a block start of `page`, page.blockContaining's
/// answer); null when its segment has no Side (no block of it was ever recorded) or, with
/// `make`, when one cannot be made (out of memory).
inline fn recordOf(page: *const Page, start: usize, comptime make: bool) ?*Record {
    std.debug.assert(start >= page.start); // a block of the page (blockContaining's answer)
    std.debug.assert(page.slice_count >= 1); // (a page in use: its span)
    const segment = start >> segment_map.chunk_shift;
    if (segment >= 1 << segment_bits) return null;
    const side = sideOf(segment, make) orelse return null;
    const first_slice = (page.start >> size_class.slice_shift) & (slices_per_segment - 1);
    std.debug.assert(first_slice + page.slice_count <= slices_per_segment); // a span within its segment
    const index = ((start - page.start) *% page.div_magic) >> page_mod.magic_shift;
    std.debug.assert(index < page.slice_count * records_per_slice); // (page.zig: blocks of 16 bytes at least)
    if (make) {
        const reach = &side.reach[first_slice];
        if (index >= reach.load(.monotonic)) _ = reach.fetchMax(@intCast(index + 1), .monotonic);
    }
    return &side.records[first_slice * records_per_slice + index];
}

inline fn sideOf(segment: usize, comptime make: bool) ?*Side {
    std.debug.assert(segment < 1 << segment_bits); // (recordOf's bound: the top's index fits)
    if (top[segment >> leaf_bits].load(.acquire)) |leaf| {
        if (leaf[segment & ((1 << leaf_bits) - 1)].load(.acquire)) |side| return side;
    }
    return if (make) makeSide(segment) else null;
}

noinline fn makeSide(segment: usize) ?*Side {
    std.debug.assert(segment < 1 << segment_bits);
    lock.acquire();
    defer lock.release();
    const slot = &top[segment >> leaf_bits];
    const leaf = slot.load(.monotonic) orelse blk: {
        const fresh: *Leaf = @ptrCast(@alignCast(os.map(@sizeOf(Leaf)) orelse return null));
        slot.store(fresh, .release);
        break :blk fresh;
    };
    const entry = &leaf[segment & ((1 << leaf_bits) - 1)];
    if (entry.load(.monotonic)) |side| return side;
    const side: *Side = @ptrCast(@alignCast(os.map(@sizeOf(Side)) orelse return null));
    std.debug.assert(side.reach[0].raw == 0); // zeroed: no record reached, none live
    entry.store(side, .release);
    return side;
}

// ---------------------------------------------------------------- the calls

/// Records the block at `start` of `page` live, handed out at `user` (fits), allocated at
/// `site`. False when it could not be recorded (out of memory).
pub fn markLive(page: *const Page, start: usize, user: usize, site: Site) bool {
    std.debug.assert(user > start); // the front header before the user pointer
    std.debug.assert(fits(user - start)); // (liveInsert asked)
    const record = recordOf(page, start, true) orelse return false;
    @atomicStore(u64, &record.freed, 0, .monotonic);
    @atomicStore(u64, &record.state, liveState(user - start, site), .release);
    return true;
}

/// What free found in a block's record: it was live (now freed), freed already (another
/// thread's free took it first), or there was none (it was handed out when no record could
/// be made: out of memory).
pub const Taken = enum { taken, not_live, unrecorded };

/// Records the live block at `start` freed at `site`, its pattern's window `window`
/// (check_pattern.windowIndex).
pub fn markFreed(page: *const Page, start: usize, site: Site, window: u16) Taken {
    const record = recordOf(page, start, false) orelse return .unrecorded;
    const state = @atomicLoad(u64, &record.state, .acquire);
    if (state & live_bit == 0) return .unrecorded;
    if (@cmpxchgStrong(u64, &record.freed, 0, freedWord(site, window), .acq_rel, .monotonic) != null) return .not_live;
    return .taken;
}

/// markFreed for a free that took the block already (check.zig took its front header's tag
/// from the live tag with a compare-and-swap: no other free of it gets here): one store,
/// nothing of the record read (its line is not waited for). (A block handed out when no
/// record could be made has a record that is not recorded: read() ignores its free word.)
pub inline fn markFreedTaken(page: *const Page, start: usize, site: Site, window: u16) void {
    const record = recordOf(page, start, false) orelse return;
    @atomicStore(u64, &record.freed, freedWord(site, window), .release);
}

/// A block's record as a report reads it.
pub const View = struct { live: bool, alloc_site: Site, user_offset: usize, free_site: Site, window: u16 };

/// The record of the block at `start`: live or freed (the last free of it); null when none.
pub fn read(page: *const Page, start: usize) ?View {
    const record = recordOf(page, start, false) orelse return null;
    const state = @atomicLoad(u64, &record.state, .acquire);
    if (state & live_bit == 0) return null;
    const freed = @atomicLoad(u64, &record.freed, .acquire);
    const live = freed == 0;
    std.debug.assert(offsetOf(state) >= 16); // recorded by liveState: past the front header
    return .{
        .live = live,
        .alloc_site = unpackSite(state),
        .user_offset = offsetOf(state),
        .free_site = if (live) 0 else unpackSite(freed),
        .window = if (live) 0 else @intCast((freed >> window_shift) & window_max),
    };
}

/// Where the live block at `start` was allocated; null when it is not recorded live.
pub fn siteOf(page: *const Page, start: usize) ?Site {
    const v = read(page, start) orelse return null;
    return if (v.live) v.alloc_site else null;
}

/// Calls `visit(context, user, site)` for every block recorded live (a block allocated or
/// freed meanwhile may or may not be seen: the visitor reads it again before it reports).
/// Bounded by the Sides made and the reach of their pages' records.
pub fn forEach(context: anytype, comptime visit: fn (@TypeOf(context), usize, Site) void) void {
    for (&top, 0..) |*slot, t| {
        const leaf = slot.load(.acquire) orelse continue;
        for (leaf, 0..) |*entry, l| {
            const side = entry.load(.acquire) orelse continue;
            const segment = (t << leaf_bits | l) << segment_map.chunk_shift;
            visitSide(side, segment, context, visit);
        }
    }
}

fn visitSide(side: *Side, segment: usize, context: anytype, comptime visit: fn (@TypeOf(context), usize, Site) void) void {
    std.debug.assert(segment % segment_map.chunk_size == 0); // a segment's first address
    for (&side.reach, 0..) |*reach, slice| {
        const reached = reach.load(.monotonic);
        // a page's records from its first slice on: the slices of the span after it at most
        std.debug.assert(reached <= (slices_per_segment - slice) * records_per_slice);
        const records = side.records[slice * records_per_slice ..][0..reached];
        for (records, 0..) |*record, index| {
            const state = @atomicLoad(u64, &record.state, .monotonic);
            if (state & live_bit == 0 or @atomicLoad(u64, &record.freed, .monotonic) != 0) continue;
            // a live block keeps its page (and the page's first line) in place
            const page = segment_mod.Segment.of(segment).pageOf(segment + slice * size_class.slice_size);
            const start = page.start + index * page.block_size;
            visit(context, start + offsetOf(state), unpackSite(state));
        }
    }
}

test "a record keeps the offset and the sites, a backtrace's too" {
    for ([_]usize{ 16, 32, 4096, 65536 }) |offset| {
        for ([_]Site{ 0, 0x40_1234, 0x7fff_ffff_fff0, check_sites.stack_flag | 77 }) |site| {
            const state = liveState(offset, site);
            try std.testing.expect(state & live_bit != 0);
            try std.testing.expectEqual(offset, offsetOf(state));
            try std.testing.expectEqual(site, unpackSite(state));
        }
    }
    try std.testing.expectEqual(@as(Site, 0), unpackSite(packSite(1 << 50))); // not user space: unknown
    try std.testing.expect(fits(16) and fits(1 << 17) and !fits(8) and !fits(1 << 20));
}

test "live, then freed once; the record names both sites" {
    // a fake page in a fake segment's address range (no memory of it is read but the Page)
    var page: Page = .{};
    const segment: usize = 0x7e00_0000_0000;
    page.start = segment + 3 * size_class.slice_size;
    page.block_size = 48;
    page.div_magic = size_class.divMagic(48);
    page.slice_count = 1;
    const a = page.start + 48 * 5;
    const b = page.start + 48 * 6;
    try std.testing.expectEqual(@as(?View, null), read(&page, a));
    try std.testing.expect(markLive(&page, a, a + 16, 0x1111));
    try std.testing.expect(markLive(&page, b, b + 32, 0x2222));
    try std.testing.expectEqual(@as(?Site, 0x1111), siteOf(&page, a));
    try std.testing.expect(markFreed(&page, a, 0x3333, 7) == .taken);
    try std.testing.expect(markFreed(&page, a, 0x4444, 0) == .not_live); // freed already
    try std.testing.expect(markFreed(&page, a + 48 * 10, 0x4444, 0) == .unrecorded);
    try std.testing.expectEqual(@as(?Site, null), siteOf(&page, a));
    try std.testing.expectEqual(View{ .live = false, .alloc_site = 0x1111, .user_offset = 16, .free_site = 0x3333, .window = 7 }, read(&page, a).?);
    try std.testing.expectEqual(@as(?Site, 0x2222), siteOf(&page, b));
    try std.testing.expect(markLive(&page, a, a + 16, 0x5555)); // handed out again
    try std.testing.expectEqual(@as(?Site, 0x5555), siteOf(&page, a));
    _ = markFreed(&page, a, 0, 0);
    _ = markFreed(&page, b, 0, 0);
}
