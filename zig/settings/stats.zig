//! stats.zig — per-tier counters, cheap enough to stay on in release builds.
//!
//! Allocation and free events of tiny/mid blocks are counted per bin in the heap of the
//! thread that did them (plain increments, owner-only); readers sum every live heap plus
//! the totals of exited ones. Slow-path events (pages, mappings, purges, large blocks) are
//! global atomics. Live blocks/bytes are derived (allocs - frees), so they never drift.
const std = @import("std");
const size_class = @import("size_class.zig");
const os = @import("../base/os.zig");
const abi = @import("../abi.zig");

const bins = size_class.bin_count;
pub const tier_count = abi.tier_count;
/// The gauges' index of the large tier (page.tierIndex gives tiny 0 and mid 1).
const large_tier = @intFromEnum(abi.Tier.large);

comptime {
    // snapshot sums bins into tiers 0 and 1 (tiny, mid); the large tier's counters are its own
    std.debug.assert(@intFromEnum(abi.Tier.tiny) == 0);
    std.debug.assert(@intFromEnum(abi.Tier.mid) == 1);
    std.debug.assert(large_tier == 2);
    std.debug.assert(tier_count == 3);
}

/// Per-heap event counters, indexed by bin.
pub const BinCounters = struct {
    allocs: [bins]u64 = [_]u64{0} ** bins,
    frees: [bins]u64 = [_]u64{0} ** bins,
    remote_frees: [bins]u64 = [_]u64{0} ** bins,
    /// Large blocks a thread's local cache took back (allocs, cache hits) and held when
    /// freed (frees), and the usable bytes it holds now (live in `large.live_bytes`,
    /// not live to a reader): large_local.zig counts them without an atomic.
    large_local_allocs: u64 = 0,
    large_local_frees: u64 = 0,
    large_local_held_bytes: u64 = 0,

    pub fn addInto(self: *const BinCounters, total: *BinCounters) void {
        std.debug.assert(@intFromPtr(self) != @intFromPtr(total)); // a heap added to itself would count twice
        for (0..bins) |b| {
            total.allocs[b] += @atomicLoad(u64, &self.allocs[b], .monotonic);
            total.frees[b] += @atomicLoad(u64, &self.frees[b], .monotonic);
            total.remote_frees[b] += @atomicLoad(u64, &self.remote_frees[b], .monotonic);
        }
        total.large_local_allocs += @atomicLoad(u64, &self.large_local_allocs, .monotonic);
        total.large_local_frees += @atomicLoad(u64, &self.large_local_frees, .monotonic);
        total.large_local_held_bytes += @atomicLoad(u64, &self.large_local_held_bytes, .monotonic);
    }
};

pub const Counter = std.atomic.Value(u64);

// A locked add of 0 still costs a locked instruction: slow paths often count 0 bytes.
fn add(c: *Counter, n: u64) void {
    if (n != 0) _ = c.fetchAdd(n, .monotonic);
}

fn sub(c: *Counter, n: u64) void {
    if (n != 0) _ = c.fetchSub(n, .monotonic);
}

pub const TierGauges = struct {
    mapped_bytes: Counter = .init(0),
    resident_bytes: Counter = .init(0),
    purges: Counter = .init(0),
    purged_bytes: Counter = .init(0),
    pages: Counter = .init(0),
};

pub var tiers: [tier_count]TierGauges = [_]TierGauges{.{}} ** tier_count;

/// Frees by threads that have no heap (they never allocated), per bin.
pub var heapless_frees: [bins]Counter = [_]Counter{.init(0)} ** bins;
/// Totals of heaps whose thread exited (guarded by the heap registry lock).
pub var retired: BinCounters = .{};

pub const large = struct {
    pub var allocs: Counter = .init(0);
    pub var frees: Counter = .init(0);
    pub var live_bytes: Counter = .init(0);
    pub var cache_hits: Counter = .init(0);
    pub var cache_misses: Counter = .init(0);
    pub var cached_bytes: Counter = .init(0);
    pub var cache_limit_bytes: Counter = .init(0);
};

pub var segments_mapped: Counter = .init(0);
pub var pages_abandoned: Counter = .init(0);
pub var pages_reclaimed: Counter = .init(0);
pub var threads_live: Counter = .init(0);
pub var threads_total: Counter = .init(0);
pub var os_mapped_bytes: Counter = .init(0);
pub var thread_cache_grows: Counter = .init(0);
pub var thread_cache_shrinks: Counter = .init(0);
/// Filled in by the reader (thread.zig walks the heaps).
pub var thread_cache_bytes_snapshot: u64 = 0;

/// Free slices whose memory may still be resident (all segments and the segment cache).
pub var dirty_bytes: Counter = .init(0);

pub fn pageAcquired(tier: usize, span_bytes: usize, reused_dirty_bytes: usize) void {
    std.debug.assert(tier < large_tier); // a page is tiny or mid: large blocks count below
    std.debug.assert(span_bytes > 0);
    std.debug.assert(span_bytes % size_class.slice_size == 0); // a span is whole slices
    std.debug.assert(reused_dirty_bytes <= span_bytes); // what was dirty lies in the span
    add(&tiers[tier].pages, 1);
    add(&tiers[tier].mapped_bytes, span_bytes);
    sub(&dirty_bytes, reused_dirty_bytes);
}

pub fn pageCarved(tier: usize, bytes: usize) void {
    std.debug.assert(tier < large_tier);
    std.debug.assert(bytes <= size_class.max_page_slices * size_class.slice_size); // within one page
    add(&tiers[tier].resident_bytes, bytes);
}

/// Carved bytes a page no longer has (heap.rebinSingleBlock: its block changed size).
pub fn pageUncarved(tier: usize, carved_bytes: usize) void {
    std.debug.assert(tier < large_tier);
    std.debug.assert(carved_bytes <= size_class.max_page_slices * size_class.slice_size); // within one page
    sub(&tiers[tier].resident_bytes, carved_bytes);
}

/// A page's span took `bytes` of free slices after it (`reused_dirty_bytes` of them
/// resident already: arena.resizeSpan).
pub fn spanGrown(tier: usize, bytes: usize, reused_dirty_bytes: usize) void {
    std.debug.assert(tier < large_tier);
    std.debug.assert(bytes > 0); // a slice at least (arena.resizeSpan: another slice count)
    std.debug.assert(bytes % size_class.slice_size == 0); // whole slices
    std.debug.assert(reused_dirty_bytes <= bytes); // what was dirty lies in what it took
    add(&tiers[tier].mapped_bytes, bytes);
    sub(&dirty_bytes, reused_dirty_bytes);
}

/// A page's span gave back `bytes` of its slices to its segment, dirty.
pub fn spanShrunk(tier: usize, bytes: usize) void {
    std.debug.assert(tier < large_tier);
    std.debug.assert(bytes > 0); // a slice at least (arena.resizeSpan: another slice count)
    std.debug.assert(bytes % size_class.slice_size == 0);
    sub(&tiers[tier].mapped_bytes, bytes);
    add(&dirty_bytes, bytes);
}

/// A page went back to its segment: its span stays resident (dirty) until purged.
pub fn pageReleased(tier: usize, span_bytes: usize, carved_bytes: usize) void {
    std.debug.assert(tier < large_tier);
    std.debug.assert(span_bytes % size_class.slice_size == 0); // a span is whole slices
    std.debug.assert(carved_bytes <= span_bytes); // blocks are carved inside the span
    sub(&tiers[tier].pages, 1);
    sub(&tiers[tier].mapped_bytes, span_bytes);
    sub(&tiers[tier].resident_bytes, carved_bytes);
    add(&dirty_bytes, span_bytes);
}

/// Dirty free slices given back to the OS; `tier` is the tier of the pages that used them.
pub fn purged(tier: usize, bytes: usize) void {
    std.debug.assert(tier < large_tier); // the large tier's purges: largePurged
    std.debug.assert(bytes % os.page_size == 0); // the kernel gives back whole pages
    if (bytes == 0) return;
    add(&tiers[tier].purges, 1);
    add(&tiers[tier].purged_bytes, bytes);
    sub(&dirty_bytes, bytes);
}

/// The large tier's memory grew by `bytes` that are mapped and resident.
fn largeMemoryUp(bytes: usize) void {
    std.debug.assert(bytes % os.page_size == 0); // large memory comes and goes in pages
    add(&tiers[large_tier].mapped_bytes, bytes);
    add(&tiers[large_tier].resident_bytes, bytes);
    add(&os_mapped_bytes, bytes);
}

fn largeMemoryDown(bytes: usize) void {
    std.debug.assert(bytes % os.page_size == 0);
    sub(&tiers[large_tier].mapped_bytes, bytes);
    sub(&tiers[large_tier].resident_bytes, bytes);
    sub(&os_mapped_bytes, bytes);
}

/// A large block (a mapping, or a run of region units) came into use; `bytes` of it were
/// not mapped and resident before.
pub fn largeMapped(bytes: usize) void {
    largeMemoryUp(bytes);
    add(&tiers[large_tier].pages, 1);
}

/// A mapping went back to the OS.
pub fn largeUnmapped(bytes: usize) void {
    std.debug.assert(bytes > 0); // a mapping holds its header at least
    largePurged(bytes);
    sub(&tiers[large_tier].pages, 1);
}

/// A region block was freed (its units stay, counted, until purged).
pub fn largeRegionFreed() void {
    comptime std.debug.assert(large_tier == tier_count - 1); // the large tier's gauges, past tiny and mid
    sub(&tiers[large_tier].pages, 1);
}

/// Large memory's pages went back to the OS: region units purged (the address space stays
/// reserved), or an unmapped mapping's.
pub fn largePurged(bytes: usize) void {
    std.debug.assert(bytes > 0); // whole units or a mapping: never an empty purge counted
    largeMemoryDown(bytes);
    add(&tiers[large_tier].purges, 1);
    add(&tiers[large_tier].purged_bytes, bytes);
}

/// A block's memory changed from `old_bytes` to `new_bytes` (mremap, a trimmed mapping, a
/// region block grown in place onto units that were not resident: old 0).
pub fn largeResized(old_bytes: usize, new_bytes: usize) void {
    largeMemoryDown(old_bytes);
    largeMemoryUp(new_bytes);
}

pub fn incr(c: *Counter) void {
    add(c, 1);
}

pub fn decr(c: *Counter) void {
    sub(c, 1);
}

pub fn addTo(c: *Counter, n: u64) void {
    add(c, n);
}

pub fn subFrom(c: *Counter, n: u64) void {
    sub(c, n);
}

// ---- the exported layout (zig/abi.zig: StatField, StatGlobal; hakmem.h: HAK_STAT_*) ----

const F = abi.StatField;
const G = abi.StatGlobal;
pub const field_count = abi.stat_field_count;
pub const global_count = abi.stat_global_count;
pub const value_count = abi.stat_value_count;

/// Event counters at the last hak_stats_reset, per tier (only resettable fields are set).
var baseline: [tier_count][field_count]u64 = [_][field_count]u64{[_]u64{0} ** field_count} ** tier_count;

/// Fills `out` (value_count values) given the summed bin counters of all heaps.
pub fn snapshot(sum: *const BinCounters, out: *[value_count]u64) void {
    var raw: [tier_count][field_count]u64 = [_][field_count]u64{[_]u64{0} ** field_count} ** tier_count;
    for (0..bins) |b| {
        const tier: usize = if (size_class.binIsTiny(b)) 0 else 1;
        const frees = sum.frees[b] + heapless_frees[b].load(.monotonic);
        raw[tier][F.allocs.index()] += sum.allocs[b];
        raw[tier][F.frees.index()] += frees;
        raw[tier][F.remote_frees.index()] += sum.remote_frees[b] + heapless_frees[b].load(.monotonic);
        const live = sum.allocs[b] -| frees;
        raw[tier][F.live_blocks.index()] += live;
        raw[tier][F.live_bytes.index()] += live * size_class.binBlockSize(b);
    }
    // live blocks are allocations not freed yet: never more than the allocations
    std.debug.assert(raw[0][F.live_blocks.index()] <= raw[0][F.allocs.index()]);
    std.debug.assert(raw[1][F.live_blocks.index()] <= raw[1][F.allocs.index()]);
    const l = @intFromEnum(abi.Tier.large);
    raw[l][F.allocs.index()] = large.allocs.load(.monotonic) + sum.large_local_allocs;
    raw[l][F.frees.index()] = large.frees.load(.monotonic) + sum.large_local_frees;
    raw[l][F.live_blocks.index()] = raw[l][F.allocs.index()] -| raw[l][F.frees.index()];
    raw[l][F.live_bytes.index()] = large.live_bytes.load(.monotonic) -| sum.large_local_held_bytes;
    raw[l][F.cache_hits.index()] = large.cache_hits.load(.monotonic) + sum.large_local_allocs;
    raw[l][F.cache_misses.index()] = large.cache_misses.load(.monotonic);
    var resident_total: u64 = 0;
    for (0..tier_count) |t| {
        raw[t][F.mapped_bytes.index()] = tiers[t].mapped_bytes.load(.monotonic);
        raw[t][F.resident_bytes.index()] = tiers[t].resident_bytes.load(.monotonic);
        raw[t][F.purges.index()] = tiers[t].purges.load(.monotonic);
        raw[t][F.purged_bytes.index()] = tiers[t].purged_bytes.load(.monotonic);
        raw[t][F.pages.index()] = tiers[t].pages.load(.monotonic);
        resident_total += raw[t][F.resident_bytes.index()];
        for (0..field_count) |f| out[t * field_count + f] = raw[t][f] -| baseline[t][f];
        std.debug.assert(out[abi.statIndex(@enumFromInt(t), .live_blocks)] == raw[t][F.live_blocks.index()]); // a gauge: never reset
    }
    out[G.segments_mapped.index()] = segments_mapped.load(.monotonic);
    out[G.pages_abandoned.index()] = pages_abandoned.load(.monotonic);
    out[G.pages_reclaimed.index()] = pages_reclaimed.load(.monotonic);
    out[G.threads_live.index()] = threads_live.load(.monotonic);
    out[G.threads_total.index()] = threads_total.load(.monotonic);
    out[G.os_mapped_bytes.index()] = os_mapped_bytes.load(.monotonic);
    out[G.os_resident_bytes.index()] = resident_total + dirty_bytes.load(.monotonic) + segments_mapped.load(.monotonic) * os.page_size * 2;
    out[G.large_cached_bytes.index()] = large.cached_bytes.load(.monotonic);
    out[G.thread_cache_bytes.index()] = thread_cache_bytes_snapshot;
    out[G.thread_cache_grows.index()] = thread_cache_grows.load(.monotonic);
    out[G.thread_cache_shrinks.index()] = thread_cache_shrinks.load(.monotonic);
    out[G.large_cache_limit_bytes.index()] = large.cache_limit_bytes.load(.monotonic);
    out[G.double_frees_contained.index()] = @import("misuse.zig").contained_double_frees.load(.monotonic);
}

/// Makes the event counters read zero from now on (live and mapped figures are kept).
pub fn reset(sum: *const BinCounters) void {
    var values: [value_count]u64 = undefined;
    const saved = baseline;
    baseline = [_][field_count]u64{[_]u64{0} ** field_count} ** tier_count;
    snapshot(sum, &values);
    baseline = saved;
    for (0..tier_count) |t| {
        inline for (@typeInfo(F).@"enum".fields) |f| {
            const field: F = @enumFromInt(f.value);
            if (comptime field.resettable()) {
                baseline[t][field.index()] = values[t * field_count + field.index()];
            } else {
                std.debug.assert(baseline[t][field.index()] == 0); // gauges keep their value: no baseline
            }
        }
    }
}

test "snapshot derives live blocks from allocs and frees" {
    var sum: BinCounters = .{};
    const bin = size_class.tinyBin(32);
    sum.allocs[bin] = 10;
    sum.frees[bin] = 4;
    var out: [value_count]u64 = undefined;
    snapshot(&sum, &out);
    try std.testing.expectEqual(@as(u64, 10), out[0]);
    try std.testing.expectEqual(@as(u64, 6), out[3]);
    try std.testing.expectEqual(@as(u64, 6 * 32), out[4]);
    reset(&sum);
    snapshot(&sum, &out);
    try std.testing.expectEqual(@as(u64, 0), out[0]);
    try std.testing.expectEqual(@as(u64, 6), out[3]);
    baseline = [_][field_count]u64{[_]u64{0} ** field_count} ** tier_count;
}
