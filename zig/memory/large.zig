//! large.zig — the large tier. Blocks of up to 256 MiB are runs of 64 KiB units in
//! reserved regions (large_region.zig: freed units coalesce and stay resident along the
//! decay curve, so a new block reuses what several freed ones left, without page faults);
//! larger blocks, and those aligned to 4 MiB or more, get one OS mapping each, with a cache
//! of freed mappings (reused by size, unmapped along the decay curve) and realloc by
//! mremap. Both retain at most the limit large_cache.zig sizes from recent demand.
//!
//!   a region block: 64 KiB aligned, in chunks tagged large_region (large_region.lookup
//!   finds its header); a mapping of its own: 4 MiB aligned, tagged large_head/large_tail
//!   +--------------+-----------------------------------------+
//!   | LargeHeader  |  block (usable_size bytes)               |
//!   +--------------+-----------------------------------------+
//!   ^ base         ^ base + block_offset (64, the alignment, or 4 MiB for alignments >= 4 MiB)
const std = @import("std");
const os = @import("../base/os.zig");
const config = @import("../settings/config.zig");
const stats = @import("../settings/stats.zig");
const segment_map = @import("../base/segment_map.zig");
const Lock = @import("../base/lock.zig").Lock;
const large_cache = @import("../base/large_cache.zig");
const misuse = @import("../settings/misuse.zig");
const decay_mod = @import("../base/decay.zig");
const large_region = @import("large_region.zig");
const memory_budget = @import("../settings/budget.zig");

const chunk_size = segment_map.chunk_size;
/// Requests above this fail at once with ENOMEM (beyond any real address space).
pub const size_max: usize = @import("../abi.zig").size_max;
const header_room: usize = 64;
const live_magic: u64 = 0x6861_6b6d_656d_4c47; // "hakmemLG"
const cached_magic: u64 = 0x6861_6b6d_656d_4343; // "hakmemCC"
/// Freed into its thread's local cache (large_local.zig): units still taken, header kept.
const local_magic: u64 = 0x6861_6b6d_656d_4c54; // "hakmemLT"
const cache_slots = 32;

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

/// `freed`: a block of a cached mapping (freed, not yet reused).
pub const Lookup = union(enum) { live: *LargeHeader, freed, foreign, invalid };

const CacheEntry = struct { base: usize = 0, mapped_size: usize = 0, cached_ms: u64 = 0 };

var cache_lock: Lock = .{};
var cache: [cache_slots]CacheEntry = [_]CacheEntry{.{}} ** cache_slots;
var cached_bytes: usize = 0;
// Sizing (large_cache.zig): recent peak of live large bytes, under cache_lock.
var recent_peak: large_cache.RecentPeak = .{};

fn offsetFor(alignment: usize) usize {
    if (alignment >= chunk_size) return chunk_size;
    return @max(header_room, alignment);
}

/// A block of `size` bytes aligned to `alignment`; with `zeroed`, its first `size` bytes are 0.
pub fn alloc(size: usize, alignment: usize, zeroed: bool, now_ms: u64) ?*anyopaque {
    const offset = offsetFor(alignment);
    // @max: a zero-byte block still needs one byte inside the mapping, or its
    // address (base + offset) would be the first byte past the end.
    const total = std.math.add(usize, offset, @max(size, 1)) catch return null;
    if (total > size_max) return null;
    const mapped = std.mem.alignForward(usize, total, os.page_size);
    const claimed = std.mem.alignForward(usize, mapped, large_region.unit_size); // as if nothing were reused
    if (!memory_budget.claim(claimed)) return null;
    defer memory_budget.settle(claimed);
    // (a region block starts on a unit boundary: larger alignments need a mapping's 4 MiB)
    if (alignment <= large_region.unit_size and mapped <= large_region.block_bytes_max) {
        var resident: large_region.ResidentMask = undefined;
        if (large_region.alloc(unitsFor(mapped), if (zeroed) &resident else null)) |span| {
            if (zeroed and span.resident_units != 0) zeroResident(span, &resident, offset, size);
            return placeInRegion(span, mapped, offset, now_ms);
        }
    }
    const base = (if (alignment < chunk_size) reuseCached(mapped) else null) orelse mapFresh(mapped, alignment, offset) orelse return null;
    const header: *LargeHeader = @ptrFromInt(base);
    const reused = header.magic == cached_magic;
    const mapped_size = if (reused) header.mapped_size else mapped;
    if (reused and zeroed) @memset(@as([*]u8, @ptrFromInt(base + offset))[0..size], 0);
    header.* = .{ .magic = live_magic, .mapped_size = mapped_size, .block_offset = offset, .usable_size = mapped_size - offset };
    stats.incr(&stats.large.allocs);
    stats.addTo(&stats.large.live_bytes, header.usable_size);
    noteDemand(now_ms);
    return @ptrFromInt(base + offset);
}

fn unitsFor(mapped: usize) usize {
    return (mapped + large_region.unit_size - 1) / large_region.unit_size;
}

/// A block on a run of region units: its header and the counts.
fn placeInRegion(span: large_region.Span, mapped: usize, offset: usize, now_ms: u64) *anyopaque {
    const header: *LargeHeader = @ptrFromInt(span.base);
    header.* = .{ .magic = live_magic, .mapped_size = mapped, .block_offset = offset, .usable_size = mapped - offset, .region_units = span.units };
    const unit = large_region.unit_size;
    stats.incr(if (span.resident_units == span.units) &stats.large.cache_hits else &stats.large.cache_misses);
    stats.subFrom(&stats.large.cached_bytes, span.resident_units * unit);
    stats.largeMapped((span.units - span.resident_units) * unit);
    stats.incr(&stats.large.allocs);
    stats.addTo(&stats.large.live_bytes, header.usable_size);
    noteDemand(now_ms);
    return @ptrFromInt(span.base + offset);
}

/// calloc on reused units: clears the block's bytes in the units that may hold old data.
fn zeroResident(span: large_region.Span, resident: *const large_region.ResidentMask, offset: usize, size: usize) void {
    const unit = large_region.unit_size;
    const start = span.base + offset;
    const end = start + size;
    for (0..span.units) |k| {
        if (!large_region.unitResident(resident, k)) continue;
        const lo = @max(start, span.base + k * unit);
        const hi = @min(end, span.base + (k + 1) * unit);
        if (hi > lo) @memset(@as([*]u8, @ptrFromInt(lo))[0 .. hi - lo], 0);
    }
}

/// Purges region units along the decay curve and beyond the limit (all with `force`).
fn trimRegions(now_ms: u64, force: bool) void {
    if (large_region.retainedBytes() == 0) return;
    trimTo(now_ms, regionLimit(now_ms), force);
}

/// free's share: purges only what the limit does not allow (the decay curve is
/// maintenance's, so a malloc/free of one large size does no purge work).
fn trimOverLimit(now_ms: u64) void {
    const limit = regionLimit(now_ms);
    if (large_region.retainedBytes() > limit) trimTo(now_ms, limit, false);
}

/// The limit in region bytes: region blocks round up to whole units (up to 1/16 more for a
/// block of 1 MiB), so the limit in block bytes gets that slack, or the units of one block
/// that fits the limit would be purged one by one.
fn regionLimit(now_ms: u64) usize {
    cache_lock.acquire();
    defer cache_lock.release();
    const limit = currentLimit(now_ms);
    return limit + limit / 8;
}

fn trimTo(now_ms: u64, limit: usize, force: bool) void {
    const purged = large_region.trim(now_ms, config.purge_delay_ms, limit, force, beforeRegionPurge);
    if (purged == 0) return;
    stats.subFrom(&stats.large.cached_bytes, purged);
    stats.largePurged(purged);
}

/// A freed region block is about to lose its pages (its header with them): remember its
/// address, so a second free is still reported as a double free.
fn beforeRegionPurge(block_base: usize) void {
    rememberUnmapped(@ptrFromInt(block_base));
}

fn mapFresh(mapped: usize, alignment: usize, offset: usize) ?usize {
    stats.incr(&stats.large.cache_misses);
    const base: usize = if (alignment < chunk_size) blk: {
        const memory = os.mapAligned(mapped, chunk_size) orelse return null;
        break :blk @intFromPtr(memory);
    } else blk: {
        const over = std.math.add(usize, mapped, alignment) catch return null;
        const raw = os.map(over) orelse return null;
        const raw_addr = @intFromPtr(raw);
        const b = std.mem.alignForward(usize, raw_addr + offset, alignment) - offset;
        if (b > raw_addr) os.unmap(raw, b - raw_addr);
        const tail = raw_addr + over - (b + mapped);
        if (tail > 0) os.unmap(@ptrFromInt(b + mapped), tail);
        break :blk b;
    };
    segment_map.mark(base, mapped, .large_head, .large_tail);
    stats.largeMapped(mapped);
    return base;
}

/// A cached mapping made `mapped` bytes long (mapped_size in its header), or null. A
/// mapping that fits (at least `mapped` bytes, at most 1/4 more) is taken as it is; else the
/// closest one is trimmed or grown (refit): its resident pages still save their faults.
fn reuseCached(mapped: usize) ?usize {
    const taken = takeCached(mapped) orelse return null;
    if (taken.mapped_size >= mapped and taken.mapped_size <= mapped + mapped / 4) return taken.base;
    if (taken.mapped_size > mapped) {
        if (splitTail(taken.base, taken.mapped_size, mapped)) return taken.base;
    }
    const base = refit(taken.base, taken.mapped_size, mapped) orelse {
        unmapLarge(taken.base, taken.mapped_size);
        return null;
    };
    const header: *LargeHeader = @ptrFromInt(base);
    header.mapped_size = mapped;
    return base;
}

/// Cuts a cached mapping down to `mapped` bytes and keeps its whole 4 MiB chunks beyond
/// that as a cached mapping of their own (their pages stay resident for the next large
/// block); the partial chunk between goes back to the OS. False when no whole chunk is left.
fn splitTail(base: usize, old_mapped: usize, mapped: usize) bool {
    const tail_base = std.mem.alignForward(usize, base + mapped, chunk_size);
    const end = base + old_mapped;
    if (tail_base >= end) return false;
    const tail_size = end - tail_base;
    if (tail_base > base + mapped) os.unmap(@ptrFromInt(base + mapped), tail_base - (base + mapped));
    const header: *LargeHeader = @ptrFromInt(base);
    header.mapped_size = mapped;
    stats.largeResized(old_mapped, mapped);
    segment_map.mark(tail_base, tail_size, .large_head, .large_tail);
    const tail: *LargeHeader = @ptrFromInt(tail_base);
    tail.* = .{ .magic = cached_magic, .mapped_size = tail_size, .block_offset = header_room, .usable_size = tail_size - header_room };
    stats.largeMapped(tail_size);
    if (!putCached(tail_base, tail_size, os.nowMs())) unmapLarge(tail_base, tail_size);
    return true;
}

/// The cached mapping that best serves `mapped` bytes: the smallest one that fits, else the
/// largest one. Removed from the cache.
fn takeCached(mapped: usize) ?CacheEntry {
    if (@atomicLoad(usize, &cached_bytes, .monotonic) == 0) return null;
    cache_lock.acquire();
    const found = findCached(mapped);
    const taken = if (found) |i| removeEntry(i) else null;
    cache_lock.release();
    if (taken != null) stats.incr(&stats.large.cache_hits);
    return taken;
}

fn findCached(mapped: usize) ?usize {
    var best: ?usize = null;
    for (&cache, 0..) |*entry, i| {
        if (entry.base == 0) continue;
        const b = best orelse {
            best = i;
            continue;
        };
        const best_size = cache[b].mapped_size;
        const better = if (best_size >= mapped)
            entry.mapped_size >= mapped and entry.mapped_size < best_size
        else
            entry.mapped_size > best_size;
        if (better) best = i;
    }
    return best;
}

fn removeEntry(i: usize) CacheEntry {
    const entry = cache[i];
    cache[i] = .{};
    cached_bytes -= entry.mapped_size;
    stats.subFrom(&stats.large.cached_bytes, entry.mapped_size);
    return entry;
}

/// The cache's byte limit now (cache_lock held): recent demand (large_cache.zig), within
/// the budget; HAKMEM_ADAPT=0: the budget.
fn currentLimit(now_ms: u64) usize {
    const budget = config.large_cache_max_bytes;
    const window_ms = config.purge_delay_ms;
    const limit = if (!config.adapt) budget else large_cache.limit(recent_peak.peak(now_ms, window_ms), budget);
    stats.large.cache_limit_bytes.store(limit, .monotonic);
    return limit;
}

/// Records the live large bytes now (every large malloc and free), for the limit.
pub fn noteDemand(now_ms: u64) void {
    const live = stats.large.live_bytes.load(.monotonic);
    // Nothing to note while live bytes stay under this window's peak (a racy look: the
    // lock is taken only when the peak may move or the window may roll).
    const window_ms = @max(config.purge_delay_ms, 1);
    if (live <= @atomicLoad(usize, &recent_peak.current_max, .monotonic) and
        now_ms -| @atomicLoad(u64, &recent_peak.window_start_ms, .monotonic) < window_ms) return;
    cache_lock.acquire();
    recent_peak.note(live, now_ms, config.purge_delay_ms);
    _ = currentLimit(now_ms); // the published limit follows (a free held locally computes none)
    cache_lock.release();
}

/// Removes the oldest cached mapping into evicted[count.*] (the caller unmaps it once the
/// lock is released); returns the slot it left free, or null when the cache is empty.
fn evictOldest(evicted: *[cache_slots]CacheEntry, count: *usize) ?usize {
    const oldest = oldestEntry() orelse return null;
    evicted[count.*] = removeEntry(oldest);
    count.* += 1;
    return oldest;
}

/// Classifies `addr` in a chunk tagged large_head or large_tail.
pub fn lookup(addr: usize, tag: segment_map.Tag) Lookup {
    if (tag == .large_region) return lookupInRegion(addr);
    const base = if (tag == .large_head) addr & ~(chunk_size - 1) else segment_map.largeHeadOf(addr) orelse return .foreign;
    const header: *LargeHeader = @ptrFromInt(base);
    if (header.magic != live_magic and header.magic != cached_magic) return .foreign;
    if (addr >= base + header.mapped_size) return .foreign;
    if (addr != base + header.block_offset) return .invalid;
    if (header.magic == cached_magic) return .freed;
    return .{ .live = header };
}

/// A pointer into a region: a live block's start, a freed one's (a double free), or no
/// block (an invalid free: hakmem's memory, not a block start).
fn lookupInRegion(addr: usize) Lookup {
    const base = switch (large_region.lookup(addr)) {
        .outside => return .foreign,
        .unused => return if (recentlyFreed(addr)) .freed else .invalid,
        .live, .freed => |b| b,
    };
    const header: *LargeHeader = @ptrFromInt(base);
    const magic = @atomicLoad(u64, &header.magic, .monotonic);
    if (magic != live_magic and magic != cached_magic and magic != local_magic) return .invalid;
    if (addr != base + header.block_offset) return .invalid;
    if (magic != live_magic) return .freed;
    return .{ .live = header };
}

/// Tier and size of the large block at `addr` (live, cached or recently unmapped), for a report.
pub fn describe(addr: usize, tag: segment_map.Tag) ?misuse.Where {
    if (tag == .none) {
        const size = recentlyFreedSize(addr) orelse return null;
        return .{ .tier = "large", .block_size = size };
    }
    const base = switch (tag) {
        .large_head => addr & ~(chunk_size - 1),
        .large_region => switch (large_region.lookup(addr)) {
            .live, .freed => |b| b,
            .outside, .unused => {
                const size = recentlyFreedSize(addr) orelse return null;
                return .{ .tier = "large", .block_size = size };
            },
        },
        else => segment_map.largeHeadOf(addr) orelse return null,
    };
    const header: *LargeHeader = @ptrFromInt(base);
    if (header.magic != live_magic and header.magic != cached_magic and header.magic != local_magic) return null;
    return .{ .tier = "large", .block_size = header.usable_size };
}

// ---- recently unmapped blocks: a second free of one is a double free, not a foreign pointer

const recent_slots = 64;
const Recent = struct { addr: usize = 0, usable_size: usize = 0 };
var recent: [recent_slots]Recent = [_]Recent{.{}} ** recent_slots;
var recent_next = std.atomic.Value(usize).init(0);

fn rememberUnmapped(header: *const LargeHeader) void {
    if (header.magic != cached_magic) return;
    const slot = &recent[recent_next.fetchAdd(1, .monotonic) % recent_slots];
    @atomicStore(usize, &slot.addr, 0, .monotonic);
    @atomicStore(usize, &slot.usable_size, header.usable_size, .monotonic);
    @atomicStore(usize, &slot.addr, @intFromPtr(header) + header.block_offset, .release);
}

fn recentlyFreedSize(addr: usize) ?usize {
    for (&recent) |*slot| {
        if (@atomicLoad(usize, &slot.addr, .acquire) == addr) return @atomicLoad(usize, &slot.usable_size, .monotonic);
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

/// Frees a live large block. False when another thread freed it first (both found it live:
/// a double free racing itself); the block is then left to that thread.
pub fn free(header: *LargeHeader, now_ms: u64) bool {
    if (@cmpxchgStrong(u64, &header.magic, live_magic, cached_magic, .acq_rel, .monotonic) != null) return false;
    countFree(header);
    giveBack(header, now_ms);
    return true;
}

fn countFree(header: *const LargeHeader) void {
    stats.incr(&stats.large.frees);
    stats.subFrom(&stats.large.live_bytes, header.usable_size);
}

// ---- a thread's local cache of freed region blocks (large_local.zig keeps the list)

/// The units a region block of `size` bytes aligned to `alignment` takes when a local cache
/// may serve it (header room as the block offset, at most `bytes_max`), else null.
pub fn localUnits(size: usize, alignment: usize, bytes_max: usize) ?usize {
    if (alignment > header_room or size > bytes_max) return null;
    return unitsFor(std.mem.alignForward(usize, header_room + @max(size, 1), os.page_size));
}

/// Units of a live block a local cache may hold, or null (a mapping of its own, an aligned
/// block, or more than `bytes_max`).
pub fn localUnitsOf(header: *const LargeHeader, bytes_max: usize) ?usize {
    if (header.region_units == 0 or header.block_offset != header_room) return null;
    if (header.region_units * large_region.unit_size > bytes_max) return null;
    return header.region_units;
}

/// free into a local cache: the block is freed (a second free finds it freed) but keeps its
/// units and header. False when another thread freed it first. Not counted here: the local
/// cache counts the free, and the block's bytes stay in large.live_bytes while it is held
/// (the limit sees them as demand; stats readers subtract the held bytes).
pub fn holdLocal(header: *LargeHeader) bool {
    return @cmpxchgStrong(u64, &header.magic, live_magic, local_magic, .acq_rel, .monotonic) == null;
}

/// malloc from a local cache: a held block of the same units, live again for `size` bytes
/// (counted by the local cache; live_bytes moves only by a change of its usable size).
pub fn reviveLocal(header: *LargeHeader, size: usize, zeroed: bool) *anyopaque {
    std.debug.assert(header.magic == local_magic and header.block_offset == header_room);
    const mapped = std.mem.alignForward(usize, header_room + @max(size, 1), os.page_size);
    std.debug.assert(unitsFor(mapped) == header.region_units);
    const base = @intFromPtr(header);
    if (zeroed) @memset(@as([*]u8, @ptrFromInt(base + header_room))[0..size], 0);
    const old_usable = header.usable_size;
    header.mapped_size = mapped;
    header.usable_size = mapped - header_room;
    @atomicStore(u64, &header.magic, live_magic, .release);
    if (header.usable_size > old_usable) {
        stats.addTo(&stats.large.live_bytes, header.usable_size - old_usable);
        noteDemand(os.nowMs());
    } else stats.subFrom(&stats.large.live_bytes, old_usable - header.usable_size);
    return @ptrFromInt(base + header_room);
}

/// A held block goes back to its region (its units free, coalescing; purged along the
/// curve); its bytes leave large.live_bytes now (its free was counted when it was held).
pub fn releaseLocal(header: *LargeHeader, now_ms: u64) void {
    std.debug.assert(header.magic == local_magic);
    @atomicStore(u64, &header.magic, cached_magic, .release);
    stats.subFrom(&stats.large.live_bytes, header.usable_size);
    giveBack(header, now_ms);
}

/// A freed block's memory back to the tier: its region units, or its mapping to the cache
/// (or the OS).
fn giveBack(header: *LargeHeader, now_ms: u64) void {
    const base = @intFromPtr(header);
    if (header.region_units != 0) {
        const units = header.region_units;
        large_region.free(base, units, now_ms);
        stats.addTo(&stats.large.cached_bytes, units * large_region.unit_size);
        stats.largeRegionFreed();
        trimOverLimit(now_ms); // (a free never raises the peak: no noteDemand)
        return;
    }
    const mapped = header.mapped_size;
    if (header.block_offset < chunk_size and putCached(base, mapped, now_ms)) return;
    unmapLarge(base, mapped);
}

fn putCached(base: usize, mapped: usize, now_ms: u64) bool {
    var evicted: [cache_slots]CacheEntry = undefined;
    var evicted_count: usize = 0;
    cache_lock.acquire();
    const limit = currentLimit(now_ms);
    var slot: ?usize = null;
    for (&cache, 0..) |*entry, i| {
        if (entry.base == 0) {
            slot = i;
            break;
        }
    }
    const fits = mapped <= limit;
    while (fits and (slot == null or cached_bytes + mapped > limit)) {
        const freed = evictOldest(&evicted, &evicted_count) orelse break;
        if (slot == null) slot = freed;
    }
    if (fits) {
        cache[slot.?] = .{ .base = base, .mapped_size = mapped, .cached_ms = now_ms };
        cached_bytes += mapped;
        stats.addTo(&stats.large.cached_bytes, mapped);
    }
    cache_lock.release();
    for (evicted[0..evicted_count]) |e| unmapLarge(e.base, e.mapped_size);
    return fits;
}

fn oldestEntry() ?usize {
    var oldest: ?usize = null;
    for (&cache, 0..) |*entry, i| {
        if (entry.base == 0) continue;
        if (oldest == null or entry.cached_ms < cache[oldest.?].cached_ms) oldest = i;
    }
    return oldest;
}

fn unmapLarge(base: usize, mapped: usize) void {
    rememberUnmapped(@ptrFromInt(base));
    segment_map.clear(base, mapped);
    os.unmap(@ptrFromInt(base), mapped);
    stats.largeUnmapped(mapped);
}

/// Unmaps cached mappings along the decay curve (decay.zig), oldest first; all with `force`.
pub fn decay(now_ms: u64, force: bool) void {
    trimRegions(now_ms, force);
    if (@atomicLoad(usize, &cached_bytes, .monotonic) == 0) return;
    var expired: [cache_slots]CacheEntry = undefined;
    var count: usize = 0;
    cache_lock.acquire();
    var tally: decay_mod.Tally = .{};
    for (&cache) |*entry| {
        if (entry.base != 0) tally.add(entry.mapped_size, entry.cached_ms, now_ms, config.purge_delay_ms);
    }
    while (count < cache_slots) {
        const oldest = oldestEntry() orelse break;
        if (!force and !tally.release(cache[oldest].mapped_size)) break;
        expired[count] = removeEntry(oldest);
        count += 1;
    }
    cache_lock.release();
    for (expired[0..count]) |e| unmapLarge(e.base, e.mapped_size);
}

/// Resizes a large block in place or by moving its pages (no copy). Null when the
/// kernel cannot; the block is then unchanged.
pub fn resize(header: *LargeHeader, new_size: usize) ?*anyopaque {
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
    moved.mapped_size = new_mapped;
    moved.usable_size = new_mapped - offset;
    stats.subFrom(&stats.large.live_bytes, old_usable);
    stats.addTo(&stats.large.live_bytes, moved.usable_size);
    return @ptrFromInt(new_base + offset);
}

/// A region block resized where it stands: onto the free chunks after it, or giving back
/// its last chunks. Null (unchanged) when it would outgrow a region block or the chunks
/// after it are taken: realloc then moves it (a copy).
fn resizeInRegion(header: *LargeHeader, new_mapped: usize) ?*anyopaque {
    if (new_mapped > large_region.block_bytes_max) return null;
    const unit = large_region.unit_size;
    const base = @intFromPtr(header);
    const old_units = header.region_units;
    const new_units = unitsFor(new_mapped);
    if (new_units > old_units) {
        const reused = large_region.grow(base, old_units, new_units) orelse return null;
        stats.subFrom(&stats.large.cached_bytes, reused * unit);
        stats.largeResized(0, (new_units - old_units - reused) * unit);
    } else if (new_units < old_units) {
        large_region.shrink(base, old_units, new_units, os.nowMs());
        stats.addTo(&stats.large.cached_bytes, (old_units - new_units) * unit);
    }
    header.region_units = new_units;
    header.mapped_size = new_mapped;
    stats.subFrom(&stats.large.live_bytes, header.usable_size);
    header.usable_size = new_mapped - header.block_offset;
    stats.addTo(&stats.large.live_bytes, header.usable_size);
    return @ptrFromInt(base + header.block_offset);
}

/// Makes the mapping at `base` `new_mapped` bytes long: unmaps its tail, or grows it in
/// place or by moving its pages to a new 4 MiB-aligned place (no copy, no new faults for
/// the pages it had). Returns its base, or null (the mapping unchanged) when the kernel cannot.
fn refit(base: usize, old_mapped: usize, new_mapped: usize) ?usize {
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
    return new_base;
}

pub fn resetLockInChild() void {
    cache_lock.resetInChild();
    large_region.resetLockInChild();
}

pub fn lockForFork() void {
    cache_lock.acquire();
    large_region.lockForFork();
}

pub fn unlockAfterFork() void {
    large_region.unlockAfterFork();
    cache_lock.release();
}

// ---------------------------------------------------------------- tests

const testing = std.testing;

fn liveHeader(addr: usize) !*LargeHeader {
    return switch (lookup(addr, segment_map.lookup(addr))) {
        .live => |h| h,
        else => error.TestUnexpectedResult,
    };
}

test "a large block in a region: live, resized with its bytes, freed (a second free is seen), reused zeroed" {
    const now = os.nowMs();
    const size: usize = 5 << 20;
    const p: [*]u8 = @ptrCast(alloc(size, 16, false, now) orelse return error.OutOfMemory);
    const addr = @intFromPtr(p);
    try testing.expect(addr % 16 == 0);
    try testing.expectEqual(segment_map.Tag.large_region, segment_map.lookup(addr));
    const h = try liveHeader(addr);
    try testing.expect(h.usable_size >= size);
    try testing.expectEqual(Lookup.invalid, lookup(addr + 4096, segment_map.lookup(addr + 4096)));
    @memset(p[0..size], 0xAB);
    // shrink, then grow again onto the units it gave back: the bytes stay
    const q: [*]u8 = @ptrCast(resize(h, size / 2) orelse return error.OutOfMemory);
    try testing.expectEqual(@as(u8, 0xAB), q[size / 2 - 1]);
    const r: [*]u8 = @ptrCast(resize(try liveHeader(@intFromPtr(q)), size) orelse return error.OutOfMemory);
    try testing.expectEqual(@as(u8, 0xAB), r[0]);
    try testing.expectEqual(@as(u8, 0xAB), r[size / 2 - 1]);
    const hr = try liveHeader(@intFromPtr(r));
    try testing.expect(hr.usable_size >= size);
    try testing.expect(free(hr, now));
    try testing.expectEqual(Lookup.freed, lookup(@intFromPtr(r), segment_map.lookup(@intFromPtr(r))));
    // a zeroed block of a size near it: zero wherever it lands (reused units are cleared)
    const z: [*]u8 = @ptrCast(alloc(size / 2, 16, true, now) orelse return error.OutOfMemory);
    try testing.expectEqual(@as(u8, 0), z[0]);
    try testing.expectEqual(@as(u8, 0), z[size / 2 - 1]);
    try testing.expect(free(try liveHeader(@intFromPtr(z)), now));
    decay(now, true);
}

test "a large block aligned to 4 MiB or more starts a chunk past its header" {
    const now = os.nowMs();
    const p = alloc(100, 8 << 20, false, now) orelse return error.OutOfMemory;
    const addr = @intFromPtr(p);
    try testing.expect(addr % (8 << 20) == 0);
    const h = try liveHeader(addr);
    try testing.expectEqual(chunk_size, h.block_offset);
    try testing.expectEqual(segment_map.Tag.large_tail, segment_map.lookup(addr));
    try testing.expect(free(h, now)); // not cached (alignment >= 4 MiB): unmapped at once
    try testing.expectEqual(segment_map.Tag.none, segment_map.lookup(addr));
    try testing.expect(recentlyFreed(addr)); // a second free is a double free, not a foreign pointer
}

test "a large block freed and allocated again at one size reuses its memory, purging nothing" {
    // Regression: the limit counted bytes, a block takes whole units, so each free purged the
    // block's last unit (page faults on every malloc of that size: 8 MiB pairs took 3.6 us).
    const now = os.nowMs();
    decay(now, true);
    for ([_]usize{ (1 << 20) + 1, 8 << 20 }) |size| {
        const first = alloc(size, 16, false, now) orelse return error.OutOfMemory;
        try testing.expect(free(try liveHeader(@intFromPtr(first)), now));
        const hits_before = stats.large.cache_hits.load(.monotonic);
        const purges_before = stats.tiers[2].purges.load(.monotonic);
        for (0..20) |_| {
            const p = alloc(size, 16, false, now) orelse return error.OutOfMemory;
            try testing.expectEqual(@intFromPtr(first), @intFromPtr(p));
            try testing.expect(free(try liveHeader(@intFromPtr(p)), now));
        }
        try testing.expectEqual(hits_before + 20, stats.large.cache_hits.load(.monotonic));
        try testing.expectEqual(purges_before, stats.tiers[2].purges.load(.monotonic));
    }
    decay(now, true);
}

test "two frees racing for one large block: one frees it, the other learns it was freed" {
    // Two threads can both find a block live before either frees it (a double free racing
    // itself); the second must not free it again (its units may already hold a new block).
    const now = os.nowMs();
    const p = alloc(3 << 20, 16, false, now) orelse return error.OutOfMemory;
    const h = try liveHeader(@intFromPtr(p)); // what both threads' lookups returned
    const frees_before = stats.large.frees.load(.monotonic);
    try testing.expect(free(h, now));
    try testing.expect(!free(h, now));
    try testing.expectEqual(frees_before + 1, stats.large.frees.load(.monotonic));
    decay(now, true);
}
