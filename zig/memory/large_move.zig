//! large_move.zig — moving resident pages between large-region units instead of faulting
//! fresh ones (mremap with MREMAP_DONTUNMAP: page tables move, no byte is copied, the
//! source keeps its mapping and reads as zero). Two uses, both from large_region.zig:
//!
//!   fill       a new block's units that hold no pages take those of free resident units
//!              elsewhere (longest runs first): a program freeing and allocating blocks of
//!              varied sizes reuses every resident page it freed, not only those of runs
//!              long enough for its next block
//!   moveBlock  a block that cannot grow where it stands takes its pages to its new place
//!              (realloc without a copy, large_resize.zig)
//!
//! Why: a fresh 64 KiB unit costs 16 page faults when the program touches it (a trap, a
//! page zeroed and charged each: 42-47 us a unit on the bench machine, a VM), a move one
//! system call for a whole piece (7-11 us). On bench large_blocks (four live blocks of
//! 1..32 MiB) page faults were nearly all of the time, and the regions faulted fresh
//! units for 163 MiB over a peak of 114 MiB live, while free resident units sat in runs
//! too short for the block at hand.
//!
//! Mapping edges: moved pages are a mapping (VMA) of their own, which never merges with its
//! neighbours (its page offset is the source's), so a move may add two mappings to the
//! process. Region.edges marks where they may lie: a source is cut at them (the kernel
//! moves within one mapping), and their number is bounded (edges_max) so that the
//! process's mapping budget (vm.max_map_count, 65530 by default) stays the program's. Near
//! the bound, heal maps runs of free units without pages afresh (one mapping each again:
//! bench large_blocks, 200k blocks, 2500 mappings instead of 4000 and rising); at the
//! bound, and on a kernel without MREMAP_DONTUNMAP, blocks fault (or copy) as before.
//!
//! State: `supported`, `edges_total` and `edges_at_heal`, under large_region's lock, as
//! every unit map.
const std = @import("std");
const os = @import("../base/os.zig");
const units_mod = @import("large_units.zig");
const Region = units_mod.Region;
const BeforePurge = units_mod.BeforePurge;
const setRange = units_mod.setRange;
const countRange = units_mod.countRange;
const nextWith = units_mod.nextWith;
const unit_size = units_mod.unit_size;
const region_units = units_mod.region_units;

/// Mapping edges moves may leave in the process, at most (a sixteenth of the default
/// vm.max_map_count).
pub const edges_max = 4096;
/// Donor runs a fill looks at (the longest of the first this many are used first).
const donors_max = 64;
/// System calls a fill makes at most; what is left faults as before. (A block's move has no
/// such bound: a piece moved, one call, is cheaper than one copied, whose new place faults.)
const moves_max = 32;

/// False once the kernel refused MREMAP_DONTUNMAP (before Linux 5.7): nothing moves then.
var supported: bool = true;
/// Edge bits set in every region.
var edges_total: usize = 0;
/// edges_total after the last heal: the next waits until as many more were made
/// (heal_every), so a heal that finds little is not repeated at every move.
var edges_at_heal: usize = 0;
/// Heal when the edges reach this many (3/4 of the bound), and again every heal_every more.
const heal_from = edges_max / 4 * 3;
const heal_every = edges_max / 16;
/// Runs a heal maps afresh at most (each one system call).
const heal_runs_max = 64;

/// Whether pages move (a test skips what it cannot see on an older kernel).
pub fn available() bool {
    return supported;
}

/// The edge bits set in every region (validate compares it with the maps).
pub fn edgeCount() usize {
    std.debug.assert(edges_total <= edges_max); // the bound moves keep (movePages refuses past it)
    return edges_total;
}

/// A range of units in a region.
pub const Units = struct { region: *Region, first: usize, units: usize };

/// Moves the pages of `n` units of `from` at `src` onto those of `to` at `dst` (a range of
/// one mapping: callers cut at edges). True when the kernel did; the maps are the caller's.
fn movePages(from: *Region, src: usize, to: *Region, dst: usize, n: usize) bool {
    std.debug.assert(n >= 1);
    std.debug.assert(src + n <= region_units);
    std.debug.assert(dst + n <= region_units);
    // one mapping moved (the kernel moves within one): callers cut at edges
    if (std.debug.runtime_safety) std.debug.assert(pieceLen(from, src, n) == n);
    if (!supported or edges_total + 2 > edges_max) return false;
    switch (os.movePages(from.base + src * unit_size, n * unit_size, to.base + dst * unit_size)) {
        .moved => {},
        .refused => return false,
        .unsupported => {
            supported = false;
            return false;
        },
    }
    markEdges(to, dst, n);
    setRange(&to.writable, dst, n, true); // the moved mapping is read-write, and charged
    std.debug.assert(edges_total <= edges_max); // (two edges at most, checked room for above)
    return true;
}

/// Units moved onto [first, first + n) are one mapping: the edges inside it are gone, one
/// may lie at each end.
fn markEdges(region: *Region, first: usize, n: usize) void {
    std.debug.assert(n >= 1);
    std.debug.assert(first + n <= region_units);
    if (n > 1) {
        edges_total -= countRange(&region.edges, first + 1, n - 1);
        setRange(&region.edges, first + 1, n - 1, false);
    }
    for ([_]usize{ first, first + n }) |edge| {
        if (edge >= region_units or units_mod.bit(&region.edges, edge)) continue;
        setRange(&region.edges, edge, 1, true);
        edges_total += 1;
    }
    std.debug.assert(edges_total <= edges_max);
}

/// Units from `at` to the next edge after it (one mapping, as far as moves go), at most `max`.
fn pieceLen(region: *const Region, at: usize, max: usize) usize {
    std.debug.assert(max >= 1);
    std.debug.assert(at + max <= region_units);
    const next = nextWith(region, .edge, at + 1, true);
    std.debug.assert(next > at); // (searched from the unit after it)
    const len = @min(max, next - at);
    std.debug.assert(len >= 1); // every piece moves a unit at least: callers' loops advance
    return len;
}

/// When the edges near their bound: the edges inside runs of free units without pages go,
/// each such run of writable units mapped afresh, read-write — one mapping again, whatever
/// moves made of it. (Read-write, as it was: a unit that had an owner stays readable, so a
/// free racing a double free reads a header of zeros there, as after a purge: large.zig.
/// The edges at a run's ends stay: the mappings beside it are not known.) Returns the
/// edges gone. Bounded: heal_runs_max runs.
pub fn heal(regions: []Region) usize {
    std.debug.assert(edges_total <= edges_max);
    if (edges_total < heal_from or edges_total < edges_at_heal + heal_every) return 0;
    const before = edges_total;
    var runs_left: usize = heal_runs_max;
    for (regions) |*region| runs_left -= healRegion(region, runs_left);
    edges_at_heal = edges_total;
    std.debug.assert(edges_total <= before);
    return before - edges_total;
}

/// heal's work in one region, on at most `runs_max` runs; returns the runs it mapped afresh.
fn healRegion(region: *Region, runs_max: usize) usize {
    std.debug.assert(runs_max <= heal_runs_max); // (heal's budget, or what is left of it)
    var done: usize = 0;
    var runs: units_mod.Runs = .{ .region = region, .kind = .empty };
    while (done < runs_max) {
        const empty = runs.next() orelse break;
        // (its writable part: the rest never had a mapping of a move, nor an owner)
        const start = empty.start;
        const end = @min(empty.end, nextWith(region, .writable, start, false));
        if (end < start + 2) continue;
        const len = end - start;
        const inner = countRange(&region.edges, start + 1, len - 1);
        if (inner == 0) continue;
        done += 1;
        if (!os.mapFixed(@ptrFromInt(region.base + start * unit_size), len * unit_size)) continue;
        setRange(&region.edges, start + 1, len - 1, false);
        edges_total -= inner;
    }
    std.debug.assert(done <= runs_max);
    return done;
}

// ---------------------------------------------------------------- fill

/// Gives the units of `holes` (free) that hold no pages the pages of retained units (free
/// and resident) of `donors_in` (null: every region, `holes` excepted), longest runs first
/// (the fewest moves, and the fewest mapping edges). The donors lose their pages as
/// if purged (`before_purge` names a freed block's header there); the units filled are
/// retained now, stamped with their donor's free time, so the retained bytes do not change.
/// Returns the units filled.
pub fn fill(regions: []Region, holes: Units, donors_in: ?Units, before_purge: BeforePurge) usize {
    std.debug.assert(holes.units >= 1);
    std.debug.assert(holes.first + holes.units <= region_units);
    if (std.debug.runtime_safety) std.debug.assert(countRange(&holes.region.taken, holes.first, holes.units) == 0); // (a loop: not in ReleaseFast)
    if (!supported) return 0;
    if (countRange(&holes.region.resident, holes.first, holes.units) == holes.units) return 0;
    var donors: [donors_max]Units = undefined;
    const count = if (donors_in) |d| collectIn(d, &donors, 0) else collectDonors(regions, holes, &donors);
    std.sort.insertion(Units, donors[0..count], {}, longerFirst);
    var filled: usize = 0;
    var pos = holes.first;
    const end = holes.first + holes.units;
    var d: usize = 0;
    var moves: usize = 0;
    while (d < count and moves < moves_max) : (moves += 1) {
        const hole = nextWith(holes.region, .resident, pos, false);
        if (hole >= end) break;
        const hole_end = @min(end, nextWith(holes.region, .resident, hole, true));
        std.debug.assert(hole_end > hole); // a unit without pages at least
        const donor = &donors[d];
        std.debug.assert(donor.units >= 1); // (an emptied donor is passed: d += 1)
        const n = pieceLen(donor.region, donor.first, @min(hole_end - hole, donor.units));
        units_mod.announceDrop(donor.region, donor.first, n, before_purge); // (read before they go)
        if (!movePages(donor.region, donor.first, holes.region, hole, n)) break;
        transfer(donor.*, holes.region, hole, n);
        filled += n;
        donor.first += n;
        donor.units -= n;
        if (donor.units == 0) d += 1;
        pos = hole + n;
        std.debug.assert(pos <= end); // a piece fills within its hole
    }
    std.debug.assert(filled <= holes.units);
    std.debug.assert(moves <= moves_max); // the bound on system calls
    return filled;
}

fn longerFirst(_: void, a: Units, b: Units) bool {
    return a.units > b.units;
}

/// The retained runs of every region outside `holes`, up to donors_max.
fn collectDonors(regions: []Region, holes: Units, out: *[donors_max]Units) usize {
    var count: usize = 0;
    for (regions) |*region| {
        if (region != holes.region) {
            count = collectIn(.{ .region = region, .first = 0, .units = region_units }, out, count);
            continue;
        }
        count = collectIn(.{ .region = region, .first = 0, .units = holes.first }, out, count);
        const after = holes.first + holes.units;
        count = collectIn(.{ .region = region, .first = after, .units = region_units - after }, out, count);
    }
    std.debug.assert(count <= donors_max);
    return count;
}

/// Appends the retained runs within `range` to out[count..] (up to donors_max in all).
fn collectIn(range: Units, out: *[donors_max]Units, count_before: usize) usize {
    std.debug.assert(count_before <= donors_max);
    std.debug.assert(range.first + range.units <= region_units);
    var count = count_before;
    const end = range.first + range.units;
    var pos = range.first;
    while (pos < end and count < donors_max) { // bounded: each turn passes a run
        const start = nextWith(range.region, .retained, pos, true);
        if (start >= end) break;
        const stop = @min(end, nextWith(range.region, .retained, start, false));
        std.debug.assert(stop > start); // a run of one unit at least: every turn advances
        out[count] = .{ .region = range.region, .first = start, .units = stop - start };
        count += 1;
        pos = stop;
    }
    std.debug.assert(count >= count_before); // appended, nothing taken out
    std.debug.assert(count <= donors_max);
    return count;
}

/// The maps after a fill's move: the donor's units lost their pages, those at `dst` hold them.
fn transfer(donor: Units, to: *Region, dst: usize, n: usize) void {
    std.debug.assert(n >= 1);
    std.debug.assert(n <= donor.units);
    std.debug.assert(dst + n <= region_units);
    if (std.debug.runtime_safety) std.debug.assert(countRange(&to.resident, dst, n) == 0); // (a loop: not in ReleaseFast)
    for (0..n) |k| {
        std.debug.assert(to.owner[dst + k] == units_mod.no_owner); // a unit with no pages is no block's
        to.freed_ms[dst + k] = donor.region.freed_ms[donor.first + k];
    }
    units_mod.dropPages(donor.region, donor.first, n);
    setRange(&to.resident, dst, n, true);
}

// ---------------------------------------------------------------- a block's move

/// Moves a block's pages, units [src, src + n) of `from` (its own, taken), onto units
/// [dst, dst + n) of `to` (taken for its new place), a piece between edges at a time; a
/// piece the kernel does not move is copied. The source units whose pages moved are marked
/// not resident. Returns the units moved.
pub fn moveBlock(from: *Region, src: usize, to: *Region, dst: usize, n: usize) usize {
    std.debug.assert(n >= 1);
    if (std.debug.runtime_safety) { // (loops: not in ReleaseFast)
        std.debug.assert(countRange(&from.taken, src, n) == n); // the block's own units
        std.debug.assert(countRange(&to.taken, dst, n) == n); // its new place, taken for it
    }
    var done: usize = 0;
    var moved: usize = 0;
    while (done < n) { // bounded: each turn moves or copies a unit at least
        const len = pieceLen(from, src + done, n - done);
        if (movePages(from, src + done, to, dst + done, len)) {
            setRange(&from.resident, src + done, len, false);
            moved += len;
        } else {
            const bytes = len * unit_size;
            const source: [*]const u8 = @ptrFromInt(from.base + (src + done) * unit_size);
            @memcpy(@as([*]u8, @ptrFromInt(to.base + (dst + done) * unit_size))[0..bytes], source[0..bytes]);
        }
        done += len;
    }
    std.debug.assert(done == n); // every unit moved or copied
    std.debug.assert(moved <= n);
    return moved;
}

test "a moved range is one mapping: the edges inside it go, its ends are edges; pieces stop at edges" {
    var region: Region = .{};
    const total_before = edges_total;
    defer edges_total = total_before; // (a local region: the global count is not its)
    markEdges(&region, 10, 4);
    try std.testing.expectEqual(@as(usize, 2), countRange(&region.edges, 0, region_units));
    try std.testing.expectEqual(@as(usize, 4), pieceLen(&region, 10, 20));
    try std.testing.expectEqual(@as(usize, 3), pieceLen(&region, 11, 20));
    try std.testing.expectEqual(@as(usize, 2), pieceLen(&region, 12, 2));
    markEdges(&region, 8, 10); // over both: one mapping [8, 18)
    try std.testing.expect(units_mod.bit(&region.edges, 8) and units_mod.bit(&region.edges, 18));
    try std.testing.expectEqual(@as(usize, 2), countRange(&region.edges, 0, region_units));
    try std.testing.expectEqual(total_before + 2, edges_total);
    markEdges(&region, region_units - 3, 3); // no edge past the region's end
    try std.testing.expectEqual(@as(usize, 3), countRange(&region.edges, 0, region_units));
}

test "heal: a run of free units without pages, edges inside it, is one reserved mapping again" {
    // a region of its own (the tier's are not touched), 4 MiB of it reserved, 20 units writable
    const bytes = 64 * unit_size;
    const memory = os.reserveAligned(bytes, unit_size) orelse return error.OutOfMemory;
    defer os.unmap(memory, bytes);
    const region = try std.testing.allocator.create(Region);
    defer std.testing.allocator.destroy(region);
    region.* = .{ .base = @intFromPtr(memory) };
    setRange(&region.taken, 64, region_units - 64, true); // only its first 64 units exist
    setRange(&region.resident, 64, region_units - 64, true);
    try std.testing.expect(os.commit(memory, 20 * unit_size));
    setRange(&region.writable, 0, 20, true);
    setRange(&region.taken, 10, 2, true); // a block: [0, 10) and [12, 64) are empty runs
    setRange(&region.resident, 10, 2, true);
    const total_before = edges_total;
    defer edges_total = total_before; // (the global count is the tier's)
    markEdges(region, 3, 4); // edges at 3 and 7, inside [0, 10)
    markEdges(region, 12, 1); // edges at 12 and 13: only 13 is inside [12, 64)
    markEdges(region, 30, 4); // 30 and 34
    try std.testing.expectEqual(@as(usize, 2), healRegion(region, 8));
    // inside the writable part of each run: gone; at a run's start (12) and past its
    // writable part (30, 34): kept
    try std.testing.expectEqual(@as(usize, 3), countRange(&region.edges, 0, region_units));
    try std.testing.expect(units_mod.bit(&region.edges, 12) and units_mod.bit(&region.edges, 30));
    try std.testing.expectEqual(@as(usize, 20), countRange(&region.writable, 0, 64)); // still read-write
    try std.testing.expectEqual(total_before + 3, edges_total);
    @as(*volatile u8, @ptrFromInt(region.base + 5 * unit_size)).* = 1; // (read-write indeed)
}
