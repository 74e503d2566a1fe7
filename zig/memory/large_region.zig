//! large_region.zig — where large blocks of up to 256 MiB live: regions of reserved address
//! space, cut into 64 KiB units; a block is a run of units (tcmalloc's page heap is the
//! model), its LargeHeader (large_header.zig) at the run's start.
//!
//!   region (1 GiB reserved PROT_NONE, 4 MiB aligned, every chunk tagged large_region)
//!   +---------------+------+------------------+---------+------------------- ... -+
//!   | block A       | free | free (resident)  | block B |  never used             |
//!   +---------------+------+------------------+---------+------------------- ... -+
//!   free      0 0 0 0  1 1   1 1 1 1 1          0 0 0 0   1 1 1 1 ...   unit not in a block
//!   writable  1 1 1 1  1 1   1 1 1 1 1          1 1 1 1   0 0 0 0 ...   made read-write (commit
//!                                                                        charged then, for good)
//!   resident  1 1 1 1  0 0   1 1 1 1 1          1 1 1 1   0 0 0 0 ...   may hold pages
//!   owner     A A A A  -  -  a a a a a          B B B B   - - - - ...   the block a unit is in
//!                            (a: freed block A', its header still there)
//!
//! Free units side by side are one run, so what several freed blocks leave serves one larger
//! block without page faults (one mapping per block cannot be merged). A new block takes the
//! run (at its start or end) that covers the most resident units, smallest run on ties;
//! its units that hold no pages then take those of free resident units elsewhere (moved by
//! mremap, large_move.zig), so a block faults fresh pages only when no freed ones are left.
//! realloc moves a block that cannot grow where it stands the same way (relocate). The
//! maps themselves (bit ranges, runs) are large_units.zig's. Resident free units are bounded by the large tier's limit (large_cache.zig) and purged
//! (madvise) oldest run first along the decay curve; a unit is made read-write once and
//! stays so, so reusing a purged unit costs no system call.
//!
//! `owner` answers free(): the unit of a pointer gives the block's first unit (live, or freed
//! with its header still readable), so a second free is a double free and a pointer into a
//! block is an invalid free. Everything here runs under one lock, system calls included (a
//! purge must not race a new block taking the unit), but lookup, which reads one owner
//! without it; only large malloc, free and realloc come here (a thread's local cache,
//! large_local.zig, serves a malloc of the size it freed without coming here).
const std = @import("std");
const os = @import("../base/os.zig");
const segment_map = @import("../base/segment_map.zig");
const decay_mod = @import("../base/decay.zig");
const Lock = @import("../base/lock.zig").Lock;
const units_mod = @import("large_units.zig");
const large_move = @import("large_move.zig");
const Region = units_mod.Region;
const Bits = units_mod.Bits;
const bit = units_mod.bit;
const setRange = units_mod.setRange;
const countRange = units_mod.countRange;
const nextWith = units_mod.nextWith;
const Runs = units_mod.Runs;
const no_owner = units_mod.no_owner;
const freed_flag = units_mod.freed_flag;
const words = units_mod.words;
const Units = large_move.Units;

pub const unit_shift = units_mod.unit_shift;
pub const unit_size = units_mod.unit_size; // 64 KiB
pub const region_units = units_mod.region_units;
pub const region_size = units_mod.region_size; // 1 GiB
pub const regions_max = 16;
/// Larger blocks get a mapping of their own (large.zig).
pub const block_units_max = region_units / 4;
pub const block_bytes_max: usize = block_units_max * unit_size; // 256 MiB
/// Retained pieces a trim looks at (the oldest of the first this many); the rest wait.
const trim_pieces_max = 128;

comptime {
    std.debug.assert(block_units_max <= 64 * @typeInfo(ResidentMask).array.len);
}

var lock: Lock = .{};
var regions: [regions_max]Region = [_]Region{.{}} ** regions_max;
var regions_used: usize = 0;
/// Bytes of free units that may still be resident (what the limit bounds).
var retained_bytes: usize = 0;

/// Bit k: unit k of a span may hold pages (reused memory: not zero, no page faults).
pub const ResidentMask = [64]u64;

pub const Span = struct {
    base: usize,
    units: usize,
    resident_units: usize,
};

pub fn unitResident(mask: *const ResidentMask, k: usize) bool {
    std.debug.assert(k < block_units_max); // a unit of one block's span
    return mask[k / 64] & (@as(u64, 1) << @intCast(k % 64)) != 0;
}

/// What a pointer into a region is.
pub const Lookup = union(enum) {
    /// not in any region
    outside,
    /// in a region, in no block (never used, or purged since)
    unused,
    /// in a live block whose header is at this address
    live: usize,
    /// in a freed block whose header is still at this address
    freed: usize,
};

pub const BeforePurge = units_mod.BeforePurge;

// ---------------------------------------------------------------- blocks

/// A run of `units` for a block, covering the most resident units, its units without pages
/// given those of free resident units elsewhere (large_move.fill; not for a zeroed block,
/// whose fresh pages cost no clearing); null when no region has room and no new one can be
/// reserved, or when the kernel refuses to commit the memory (the caller's own mapping will
/// then fail too: ENOMEM). With `resident`, which of its units may hold old data (calloc
/// clears those). `before_purge`: for the freed blocks whose pages move away.
pub fn alloc(units: usize, resident: ?*ResidentMask, before_purge: BeforePurge) ?Span {
    std.debug.assert(units >= 1);
    std.debug.assert(units <= block_units_max);
    lock.acquire();
    defer lock.release();
    for (regions[0..regions_used]) |*region| {
        if (hinted(region, units)) |first| return take(region, first, units, first, resident);
    }
    const place = findPlace(units) orelse return null;
    if (resident == null) fill(place, null, before_purge);
    return take(place.region, place.first, units, place.first, resident);
}

/// Where a block of `units` goes: the best fit of every region, else a new region's start.
fn findPlace(units: usize) ?Units {
    std.debug.assert(lock.isHeld());
    var best_region: ?*Region = null;
    var best: Fit = undefined;
    for (regions[0..regions_used]) |*region| {
        const fit = bestFit(region, units) orelse continue;
        if (best_region == null or fit.better(best)) {
            best_region = region;
            best = fit;
        }
        if (fit.resident == units and fit.run_len == units) break;
    }
    if (best_region == null) {
        const region = reserveRegion() orelse return null;
        best_region = region;
        best = bestFit(region, units).?;
    }
    std.debug.assert(best.first + units <= region_units); // a run of the region,
    if (std.debug.runtime_safety) std.debug.assert(countRange(&best_region.?.taken, best.first, units) == 0); // all free (a loop: not in ReleaseFast)
    return .{ .region = best_region.?, .first = best.first, .units = units };
}

/// large_move.fill when some units are retained (there is nothing to move otherwise).
fn fill(holes: Units, donors: ?Units, before_purge: BeforePurge) void {
    std.debug.assert(lock.isHeld()); // the maps, and the pages they describe
    std.debug.assert(holes.units >= 1);
    if (retained_bytes == 0) return;
    _ = large_move.heal(regions[0..regions_used]);
    _ = large_move.fill(regions[0..regions_used], holes, donors, before_purge);
}

/// The start of the region's hint when it is exactly `units` long, all free and resident
/// (only then: a smaller block would cut a run that best fit keeps whole for a larger one).
fn hinted(region: *const Region, units: usize) ?usize {
    std.debug.assert(lock.isHeld());
    if (region.hint_units != units) return null;
    const first = region.hint_first;
    std.debug.assert(first + units <= region_units); // a hint is a run of the region
    if (countRange(&region.taken, first, units) != 0) return null;
    if (countRange(&region.resident, first, units) != units) return null;
    return first;
}

const Fit = struct {
    first: usize,
    resident: usize,
    run_len: usize,

    fn better(self: Fit, other: Fit) bool {
        // a placement covers at most its run's units: what is compared is comparable
        std.debug.assert(self.resident <= self.run_len);
        std.debug.assert(other.resident <= other.run_len);
        if (self.resident != other.resident) return self.resident > other.resident;
        return self.run_len < other.run_len;
    }
};

/// Among the free runs of at least `units`, the placement (at a run's start or end) that
/// covers the most resident units, the smallest run on ties. Bounded by the region's runs.
fn bestFit(region: *const Region, units: usize) ?Fit {
    var best: ?Fit = null;
    var runs: Runs = .{ .region = region, .kind = .free };
    while (runs.next()) |run| {
        const len = run.end - run.start;
        if (len < units) continue;
        for ([_]usize{ run.start, run.end - units }) |first| {
            const fit: Fit = .{ .first = first, .resident = countRange(&region.resident, first, units), .run_len = len };
            if (best == null or fit.better(best.?)) best = fit;
        }
        if (best.?.resident == units and len == units) break;
    }
    if (best) |b| {
        std.debug.assert(b.first + units <= region_units);
        std.debug.assert(b.run_len >= units);
        std.debug.assert(b.resident <= units);
    }
    return best;
}

fn reserveRegion() ?*Region {
    std.debug.assert(lock.isHeld()); // regions_used grows under it (lookup reads it without)
    if (regions_used == regions_max) return null;
    const memory = os.reserveAligned(region_size, segment_map.chunk_size) orelse return null;
    const region = &regions[regions_used];
    std.debug.assert(region.base == 0); // never used: all zero
    std.debug.assert(region.hint_units == 0);
    region.base = @intFromPtr(memory); // the rest is zero: nothing taken, written or resident
    std.debug.assert(region.base != 0); // (0 is an unused region's base)
    std.debug.assert(region.base % segment_map.chunk_size == 0); // its chunks tagged whole
    segment_map.mark(region.base, region_size, .large_region, .large_region);
    @atomicStore(usize, &regions_used, regions_used + 1, .release); // (lookup reads it unlocked)
    return region;
}

/// Makes the units [first, first + units) part of the block that starts at unit
/// `block_first` (first, or an earlier unit when a block grows): commits what was never
/// writable.
fn take(region: *Region, first: usize, units: usize, block_first: usize, resident: ?*ResidentMask) ?Span {
    std.debug.assert(lock.isHeld());
    std.debug.assert(units >= 1);
    std.debug.assert(first + units <= region_units);
    std.debug.assert(block_first <= first); // the block starts at the run, or grows onto it
    std.debug.assert(first - block_first + units <= block_units_max);
    if (std.debug.runtime_safety) std.debug.assert(countRange(&region.taken, first, units) == 0); // (a loop: not in ReleaseFast)
    if (!commitRange(region, first, units)) return null;
    var span: Span = .{ .base = region.base + first * unit_size, .units = units, .resident_units = 0 };
    if (resident) |mask| {
        mask.* = [_]u64{0} ** 64;
        for (0..units) |k| {
            if (bit(&region.resident, first + k)) mask[k / 64] |= @as(u64, 1) << @intCast(k % 64);
        }
    }
    for (first..first + units) |i| @atomicStore(u16, &region.owner[i], @intCast(block_first + 1), .monotonic);
    if (region.hint_units != 0 and first < region.hint_first + region.hint_units and region.hint_first < first + units) {
        // the block overlaps the hint: what is left of it after the block, if anything
        const hint_end = region.hint_first + region.hint_units;
        region.hint_first = first + units;
        region.hint_units = hint_end -| (first + units);
    }
    span.resident_units = countRange(&region.resident, first, units);
    if (std.debug.runtime_safety) {
        // calloc clears the units the mask names: exactly the resident ones (a loop: not in ReleaseFast)
        if (resident) |mask| {
            var named: usize = 0;
            for (mask) |w| named += @popCount(w);
            std.debug.assert(named == span.resident_units);
        }
    }
    std.debug.assert(span.resident_units * unit_size <= retained_bytes); // free resident units were counted
    retained_bytes -= span.resident_units * unit_size;
    setRange(&region.taken, first, units, true);
    setRange(&region.resident, first, units, true);
    std.debug.assert(span.resident_units <= span.units);
    std.debug.assert(span.base % unit_size == 0); // where a block's header goes (large_header.assertConsistent)
    return span;
}

/// mprotect the units of a range that are not writable yet, one call per contiguous piece.
fn commitRange(region: *Region, first: usize, units: usize) bool {
    std.debug.assert(lock.isHeld());
    std.debug.assert(first + units <= region_units);
    const end = first + units;
    var pos = first;
    while (pos < end) {
        const start = nextWith(region, .writable, pos, false);
        if (start >= end) break;
        const stop = @min(end, nextWith(region, .writable, start, true));
        std.debug.assert(stop > start); // start is not writable: every round commits a unit
        if (!os.commit(@ptrFromInt(region.base + start * unit_size), (stop - start) * unit_size)) return false;
        setRange(&region.writable, start, stop - start, true);
        pos = stop;
    }
    if (std.debug.runtime_safety) std.debug.assert(countRange(&region.writable, first, units) == units);
    return true;
}

fn regionOf(addr: usize) ?*Region {
    std.debug.assert(lock.isHeld()); // (lookup is the one reader without it)
    std.debug.assert(regions_used <= regions_max);
    for (regions[0..regions_used]) |*region| {
        if (addr >= region.base and addr < region.base + region_size) return region;
    }
    return null;
}

/// A block's units are free again; their pages stay resident until trim or decay.
pub fn free(base: usize, units: usize, now_ms: u64) void {
    std.debug.assert(base % unit_size == 0);
    std.debug.assert(units >= 1);
    std.debug.assert(units <= block_units_max);
    lock.acquire();
    defer lock.release();
    const region = regionOf(base).?;
    const first = (base - region.base) >> unit_shift;
    std.debug.assert(region.owner[first] == first + 1); // a live block starts here (not freed)
    std.debug.assert(first + units <= region_units);
    std.debug.assert(region.owner[first + units - 1] == first + 1); // and ends where its header says
    giveBack(region, first, units, region.owner[first] | freed_flag, now_ms);
    region.hint_first = first;
    region.hint_units = units;
}

/// Units of a block are free (resident, counted as retained); `owner` is what a pointer
/// into them finds: the freed block, or no block.
fn giveBack(region: *Region, first: usize, units: usize, owner: u16, now_ms: u64) void {
    std.debug.assert(lock.isHeld());
    std.debug.assert(units >= 1);
    std.debug.assert(first + units <= region_units);
    // what a pointer into free units finds: a freed block, or no block (never a live one)
    std.debug.assert(owner == no_owner or owner & freed_flag != 0);
    if (std.debug.runtime_safety) {
        std.debug.assert(countRange(&region.taken, first, units) == units);
        std.debug.assert(countRange(&region.resident, first, units) == units); // taken units are resident
    }
    setRange(&region.taken, first, units, false);
    for (first..first + units) |i| {
        region.freed_ms[i] = now_ms;
        @atomicStore(u16, &region.owner[i], owner, .monotonic);
    }
    retained_bytes += units * unit_size;
    std.debug.assert(retained_bytes % unit_size == 0); // whole units
}

/// Grows a block in place onto the free units after it (those without pages filled as for
/// a new block: large_move.fill): how many of those were resident, or null (block
/// unchanged) when they are not free or cannot be committed.
pub fn grow(base: usize, old_units: usize, new_units: usize, before_purge: BeforePurge) ?usize {
    std.debug.assert(old_units >= 1);
    std.debug.assert(new_units > old_units);
    std.debug.assert(new_units <= block_units_max);
    lock.acquire();
    defer lock.release();
    const region = regionOf(base).?;
    const first = (base - region.base) >> unit_shift;
    std.debug.assert(region.owner[first] == first + 1); // a live block starts here
    if (first + new_units > region_units) return null;
    const extra = new_units - old_units;
    if (countRange(&region.taken, first + old_units, extra) != 0) return null;
    fill(.{ .region = region, .first = first + old_units, .units = extra }, null, before_purge);
    const span = take(region, first + old_units, extra, first, null) orelse return null;
    std.debug.assert(span.units == extra);
    std.debug.assert(span.base == base + old_units * unit_size); // right after the block
    return span.resident_units;
}

/// A block moved: `span` is its new place; `kept_units` of its old units still hold pages
/// (copied, not moved: large_move.moveBlock), retained now.
pub const Relocated = struct { span: Span, kept_units: usize };

/// Moves a block of `old_units` that cannot grow where it stands to a run of `new_units`,
/// its pages taken along (no copy, no fault for them). The run's resident units go to its
/// part after the block's pages (they would be dropped under them), and its units without
/// pages up to `used_units` are filled as for a new block (those after: room to grow, left
/// without pages until the program touches them). The old units are free, no block's (a
/// second free of the old address is large.zig's to catch: large_recent.zig). Null, the
/// block unchanged, when no region has room or the kernel refuses to commit the run.
pub fn relocate(base: usize, old_units: usize, used_units: usize, new_units: usize, now_ms: u64, before_purge: BeforePurge) ?Relocated {
    std.debug.assert(old_units >= 1);
    std.debug.assert(old_units < used_units); // it grows (a shrink stays where it is)
    std.debug.assert(used_units <= new_units); // the room to grow comes after what it uses
    std.debug.assert(new_units <= block_units_max);
    lock.acquire();
    defer lock.release();
    const from = regionOf(base).?;
    const src = (base - from.base) >> unit_shift;
    std.debug.assert(from.owner[src] == src + 1); // a live block starts here
    const place = findPlace(new_units) orelse return null;
    const head: Units = .{ .region = place.region, .first = place.first, .units = old_units };
    const tail: Units = .{ .region = place.region, .first = place.first + old_units, .units = used_units - old_units };
    fill(tail, head, before_purge);
    fill(tail, null, before_purge);
    const span = take(place.region, place.first, new_units, place.first, null) orelse return null;
    _ = large_move.heal(regions[0..regions_used]);
    const moved = large_move.moveBlock(from, src, place.region, place.first, old_units);
    releaseMoved(from, src, old_units, now_ms);
    std.debug.assert(span.units == new_units); // the block's new run, with its room to grow
    std.debug.assert(moved <= old_units); // (the rest copied: kept where they were)
    return .{ .span = span, .kept_units = old_units - moved };
}

/// The units of a block that moved away: free, no block's, retained where pages stayed.
fn releaseMoved(region: *Region, first: usize, units: usize, now_ms: u64) void {
    std.debug.assert(lock.isHeld());
    std.debug.assert(units >= 1);
    std.debug.assert(first + units <= region_units);
    std.debug.assert(region.owner[first] == first + 1); // the block's own units, still live
    if (std.debug.runtime_safety) std.debug.assert(countRange(&region.taken, first, units) == units);
    setRange(&region.taken, first, units, false);
    for (first..first + units) |i| {
        @atomicStore(u16, &region.owner[i], no_owner, .monotonic);
        if (!bit(&region.resident, i)) continue;
        region.freed_ms[i] = now_ms;
        retained_bytes += unit_size;
    }
}

/// Gives back the units of a block beyond its first `new_units`.
pub fn shrink(base: usize, old_units: usize, new_units: usize, now_ms: u64) void {
    std.debug.assert(new_units >= 1);
    std.debug.assert(new_units < old_units);
    lock.acquire();
    defer lock.release();
    const region = regionOf(base).?;
    const first = (base - region.base) >> unit_shift;
    std.debug.assert(region.owner[first] == first + 1); // a live block starts here
    std.debug.assert(region.owner[first + old_units - 1] == first + 1); // the tail is this live block's
    // not a block's start: a pointer into the tail is no block
    giveBack(region, first + new_units, old_units - new_units, no_owner, now_ms);
}

/// The block a pointer is in, if it is in a region. Takes no lock (free of every large
/// block comes here): a region's base is set before regions_used counts it (release), and
/// an owner is one aligned u16, so the answer is one the unit had lately; for a live block
/// the caller owns, that is its own. Whatever it finds is safe to read: a unit that ever
/// had an owner stays writable (commitRange; large_move.heal maps afresh read-write), so
/// its header can be checked.
pub fn lookup(addr: usize) Lookup {
    const used = @atomicLoad(usize, &regions_used, .acquire);
    const region = for (regions[0..used]) |*r| {
        if (addr -% r.base < region_size) break r; // (one compare: below base wraps around)
    } else return .outside;
    const unit = (addr - region.base) >> unit_shift;
    std.debug.assert(unit < region_units); // (addr - base < region_size)
    const owner = @atomicLoad(u16, &region.owner[unit], .monotonic);
    if (owner == no_owner) return .unused;
    // an owner is a unit at or before this one (one aligned u16: never a torn value)
    std.debug.assert((owner & ~freed_flag) - 1 <= unit);
    const base = region.base + @as(usize, (owner & ~freed_flag) - 1) * unit_size;
    return if (owner & freed_flag != 0) .{ .freed = base } else .{ .live = base };
}

/// Resident bytes of the regions' unit maps (metadata, for the memory report).
pub fn metadataResidentBytes() usize {
    const bytes = os.residentBytes(@intFromPtr(&regions), @sizeOf(@TypeOf(regions)));
    std.debug.assert(bytes <= @sizeOf(@TypeOf(regions)) + os.page_size); // (widened to whole pages: one more at most)
    return bytes;
}

/// Bytes of free units that may be resident.
pub fn retainedBytes() usize {
    const bytes = @atomicLoad(usize, &retained_bytes, .monotonic);
    std.debug.assert(bytes % unit_size == 0); // whole units, whenever read
    return bytes;
}

/// Retained units freed at one moment (one block, or the part of it not reused), side by side.
const Piece = struct { region: *Region, first: usize, units: usize, freed_ms: u64 };

/// Purges retained units, oldest first: whole pieces along the decay curve, then as many
/// units as bring them under `limit_bytes` (everything with `force`). Returns the bytes
/// purged. Bounded: at most trim_pieces_max pieces are looked at (the rest wait for the
/// next trim), each purged with one system call.
pub fn trim(now_ms: u64, decay_ms: u64, limit_bytes: usize, force: bool, before_purge: BeforePurge) usize {
    if (retainedBytes() == 0) return 0;
    lock.acquire();
    defer lock.release();
    var pieces: [trim_pieces_max]Piece = undefined;
    var tally: decay_mod.Tally = .{};
    const count = collectPieces(&pieces);
    std.debug.assert(count <= trim_pieces_max);
    for (pieces[0..count]) |piece| tally.add(piece.units * unit_size, piece.freed_ms, now_ms, decay_ms);
    std.sort.insertion(Piece, pieces[0..count], {}, olderFirst);
    var purged: usize = 0;
    const retained_before = retained_bytes;
    for (pieces[0..count]) |piece| {
        var units = piece.units;
        if (!force and !tally.release(piece.units * unit_size)) {
            if (retained_bytes <= limit_bytes) break;
            units = @min(units, (retained_bytes - limit_bytes + unit_size - 1) / unit_size);
        }
        purgeUnits(piece.region, piece.first, units, before_purge);
        purged += units * unit_size;
    }
    std.debug.assert(retained_bytes + purged == retained_before);
    std.debug.assert(purged % unit_size == 0); // whole units
    return purged;
}

fn collectPieces(pieces: *[trim_pieces_max]Piece) usize {
    std.debug.assert(lock.isHeld());
    var count: usize = 0;
    for (regions[0..regions_used]) |*region| {
        var runs: Runs = .{ .region = region, .kind = .retained };
        while (runs.next()) |run| {
            var first = run.start;
            for (run.start + 1..run.end + 1) |i| {
                if (i < run.end and region.freed_ms[i] == region.freed_ms[first]) continue;
                std.debug.assert(i > first); // a piece holds a unit at least
                pieces[count] = .{ .region = region, .first = first, .units = i - first, .freed_ms = region.freed_ms[first] };
                count += 1;
                if (count == trim_pieces_max) return count;
                first = i;
            }
        }
    }
    std.debug.assert(count < trim_pieces_max); // (at the bound it returned above)
    return count;
}

fn olderFirst(_: void, a: Piece, b: Piece) bool {
    return a.freed_ms < b.freed_ms;
}

fn purgeUnits(region: *Region, first: usize, units: usize, before_purge: BeforePurge) void {
    std.debug.assert(lock.isHeld()); // a new block must not take the units meanwhile
    std.debug.assert(units >= 1);
    std.debug.assert(units * unit_size <= retained_bytes);
    // only retained units: free (no block's page may go) and resident (counted in retained_bytes)
    units_mod.announceDrop(region, first, units, before_purge);
    units_mod.dropPages(region, first, units);
    os.purge(@ptrFromInt(region.base + first * unit_size), units * unit_size);
    retained_bytes -= units * unit_size;
}

pub fn resetLockInChild() void {
    lock.resetInChild();
    std.debug.assert(!lock.isHeld());
}

pub fn lockForFork() void {
    lock.acquire();
    std.debug.assert(lock.isHeld()); // no unit map half-written across the fork
}

pub fn unlockAfterFork() void {
    lock.release();
}

test "runs coalesce; the placement covering the most resident units wins, then the smallest run" {
    var region: Region = .{};
    // blocks of 20, 30 and 10 units side by side, all resident
    setRange(&region.taken, 0, 60, true);
    setRange(&region.resident, 0, 60, true);
    // the first two freed: one run of 50 resident units
    setRange(&region.taken, 0, 50, false);
    const fit = bestFit(&region, 45).?;
    try std.testing.expectEqual(@as(usize, 45), fit.resident);
    try std.testing.expectEqual(@as(usize, 50), fit.run_len);
    // too long for that run: placed in the never-used space after block 3
    const longer = bestFit(&region, 51).?;
    try std.testing.expectEqual(@as(usize, 60), longer.first);
    try std.testing.expectEqual(@as(usize, 0), longer.resident);
    // equal residency: the smaller run
    region = .{};
    setRange(&region.taken, 100, 1, true);
    const small = bestFit(&region, 4).?; // runs [0,100) and [101, end): none resident
    try std.testing.expectEqual(@as(usize, 100), small.run_len);
    setRange(&region.taken, 0, region_units, true);
    try std.testing.expectEqual(@as(?Fit, null), bestFit(&region, 1));
}

// ---------------------------------------------------------------- validation

pub const Invalid = error{ RegionNotMapped, UnusedRegionNotEmpty, TakenNotCommitted, TakenNotResident, TakenWithoutOwner, BlockBroken, HintOutOfRange, RetainedBytesWrong, EdgeCountWrong };

/// Checks every region under the lock: each used region is 4 MiB aligned and tagged in
/// segment_map, the unused ones are zero; a taken unit is writable and resident and owned
/// by a live block whose first unit is at or before it, with the same owner on every unit
/// between (a block is one contiguous run, starting where its owner says); the hint lies
/// in the region; retained_bytes is the free resident units' size; the mapping edges
/// counted are the ones marked (large_move.zig). Bounded by regions_max × region_units.
pub fn validate() Invalid!void {
    lock.acquire();
    defer lock.release();
    var retained_units: usize = 0;
    var edges: usize = 0;
    for (regions[0..regions_used]) |*region| {
        try validateRegion(region);
        retained_units += retainedUnits(region);
        edges += countRange(&region.edges, 0, region_units);
    }
    if (edges != large_move.edgeCount()) return error.EdgeCountWrong;
    for (regions[regions_used..]) |*region| {
        if (region.base != 0 or region.hint_units != 0) return error.UnusedRegionNotEmpty;
    }
    if (retained_units * unit_size != retained_bytes) return error.RetainedBytesWrong;
}

fn validateRegion(region: *const Region) Invalid!void {
    if (region.base == 0 or region.base % segment_map.chunk_size != 0) return error.RegionNotMapped;
    if (segment_map.lookup(region.base) != .large_region) return error.RegionNotMapped;
    if (region.hint_first + region.hint_units > region_units) return error.HintOutOfRange;
    for (0..words) |w| {
        if (region.taken[w] & ~region.writable[w] != 0) return error.TakenNotCommitted;
        if (region.taken[w] & ~region.resident[w] != 0) return error.TakenNotResident;
    }
    for (0..region_units) |i| {
        if (!bit(&region.taken, i)) continue;
        const owner = region.owner[i];
        if (owner == no_owner or owner & freed_flag != 0) return error.TakenWithoutOwner;
        const first: usize = owner - 1;
        if (first > i or !bit(&region.taken, first) or region.owner[first] != owner) return error.BlockBroken;
        // a unit after the block's first continues the run of the unit before it
        if (i > first and (!bit(&region.taken, i - 1) or region.owner[i - 1] != owner)) return error.BlockBroken;
    }
}

fn retainedUnits(region: *const Region) usize {
    std.debug.assert(lock.isHeld()); // (validate's: the maps do not change meanwhile)
    var units: usize = 0;
    for (0..words) |w| units += @popCount(~region.taken[w] & region.resident[w]);
    std.debug.assert(units <= region_units);
    return units;
}

/// The tests' BeforePurge: their blocks' addresses need no remembering.
fn forgetBlock(_: usize) void {}

test "validate: blocks taken, grown, shrunk and freed keep the regions valid; a broken owner is caught" {
    try validate();
    const retained_before = retainedBytes();
    const a = alloc(3, null, forgetBlock) orelse return error.OutOfMemory;
    const b = alloc(5, null, forgetBlock) orelse return error.OutOfMemory;
    try validate();
    const a_units: usize = if (grow(a.base, 3, 4, forgetBlock) != null) 4 else 3;
    shrink(b.base, 5, 2, os.nowMs());
    try validate();
    lock.acquire();
    const region = regionOf(b.base).?;
    const first = (b.base - region.base) >> unit_shift;
    const saved = region.owner[first + 1];
    region.owner[first + 1] = saved + 5; // says its block starts after it
    lock.release();
    try std.testing.expectError(error.BlockBroken, validate());
    lock.acquire();
    region.owner[first + 1] = saved;
    lock.release();
    free(a.base, a_units, os.nowMs());
    free(b.base, 2, os.nowMs());
    try validate();
    // Back to the retained bytes the tier's statistics count (this test's blocks are not
    // large.zig's, whose counts later tests check): as many bytes purged as it left.
    _ = trim(os.nowMs(), std.math.maxInt(u32), retained_before, false, forgetBlock);
    try std.testing.expectEqual(retained_before, retainedBytes());
}
