//! large_mappings.zig — the cache of freed mappings of their own (large blocks over 256 MiB,
//! aligned to more than 64 KiB, or that no region had room for; those aligned to 4 MiB or
//! more are never cached), reused by size and unmapped along the decay curve; and the large
//! tier's retention limit from recent demand, which the regions' purge reads too. Called
//! by large.zig (alloc: reuseCached; free: putCached, else unmap; decay; the regions'
//! limit: regionLimit; the fork hooks) and by large_local.zig (noteDemand, when a held
//! block comes back larger).
//!
//! Lock: cache_lock guards cache, cached_bytes and recent_peak. cached_bytes and the peak
//! are also read without it (monotonic) as hints: a stale look takes the lock for nothing,
//! or misses one reuse or one decay pass. Nothing else is taken under it and no system call
//! is made under it (mappings are unmapped after it is released); fork takes it before
//! large_region's lock (large.lockForFork).
const std = @import("std");
const os = @import("../base/os.zig");
const config = @import("../settings/config.zig");
const stats = @import("../settings/stats.zig");
const segment_map = @import("../base/segment_map.zig");
const Lock = @import("../base/lock.zig").Lock;
const large_cache = @import("../base/large_cache.zig");
const decay_mod = @import("../base/decay.zig");
const large_header = @import("large_header.zig");
const large_recent = @import("large_recent.zig");
const large_resize = @import("large_resize.zig");
const LargeHeader = large_header.LargeHeader;

const chunk_size = segment_map.chunk_size;
const cache_slots = 32;

const CacheEntry = struct { base: usize = 0, mapped_size: usize = 0, cached_ms: u64 = 0 };

var cache_lock: Lock = .{};
var cache: [cache_slots]CacheEntry = [_]CacheEntry{.{}} ** cache_slots;
var cached_bytes: usize = 0;
// Sizing (large_cache.zig): recent peak of live large bytes, under cache_lock.
var recent_peak: large_cache.RecentPeak = .{};

/// A cached mapping made `mapped` bytes long (mapped_size in its header), or null. A
/// mapping that fits (at least `mapped` bytes, at most 1/4 more) is taken as it is; else the
/// closest one is trimmed or grown (refit): its resident pages still save their faults.
pub fn reuseCached(mapped: usize) ?usize {
    std.debug.assert(mapped > 0);
    std.debug.assert(mapped % os.page_size == 0);
    const taken = takeCached(mapped) orelse return null;
    std.debug.assert(taken.base % chunk_size == 0); // a mapping of its own
    if (taken.mapped_size >= mapped and taken.mapped_size <= mapped + mapped / 4) return taken.base;
    if (taken.mapped_size > mapped) {
        if (splitTail(taken.base, taken.mapped_size, mapped)) return taken.base;
    }
    const base = large_resize.refit(taken.base, taken.mapped_size, mapped) orelse {
        unmap(taken.base, taken.mapped_size);
        return null;
    };
    const header: *LargeHeader = @ptrFromInt(base);
    header.mapped_size = mapped;
    std.debug.assert(base % chunk_size == 0); // (refit: where segment_map tags its head)
    std.debug.assert(header.magic == large_header.cached_magic); // its header came along: the caller makes it live
    return base;
}

/// Cuts a cached mapping down to `mapped` bytes and keeps its whole 4 MiB chunks beyond
/// that as a cached mapping of their own (their pages stay resident for the next large
/// block); the partial chunk between goes back to the OS. False when no whole chunk is left.
fn splitTail(base: usize, old_mapped: usize, mapped: usize) bool {
    std.debug.assert(mapped < old_mapped);
    std.debug.assert(base % chunk_size == 0); // a mapping of its own
    std.debug.assert(mapped % os.page_size == 0); // cut at a page: the tail unmapped whole
    const tail_base = std.mem.alignForward(usize, base + mapped, chunk_size);
    const end = base + old_mapped;
    if (tail_base >= end) return false;
    const tail_size = end - tail_base;
    std.debug.assert(tail_size % os.page_size == 0); // (old_mapped is whole pages, tail_base a chunk)
    std.debug.assert(tail_size > large_header.header_room); // room for its header and a block
    if (tail_base > base + mapped) os.unmap(@ptrFromInt(base + mapped), tail_base - (base + mapped));
    const header: *LargeHeader = @ptrFromInt(base);
    header.mapped_size = mapped;
    stats.largeResized(old_mapped, mapped);
    segment_map.mark(tail_base, tail_size, .large_head, .large_tail);
    const tail: *LargeHeader = @ptrFromInt(tail_base);
    tail.* = .{ .magic = large_header.cached_magic, .mapped_size = tail_size, .block_offset = large_header.header_room, .usable_size = tail_size - large_header.header_room };
    stats.largeMapped(tail_size);
    if (!putCached(tail_base, tail_size, os.nowMs())) unmap(tail_base, tail_size);
    return true;
}

/// The cached mapping that best serves `mapped` bytes: the smallest one that fits, else the
/// largest one. Removed from the cache.
fn takeCached(mapped: usize) ?CacheEntry {
    if (@atomicLoad(usize, &cached_bytes, .monotonic) == 0) return null;
    cache_lock.acquire();
    const found = findCached(mapped);
    const taken = if (found) |i| removeEntry(i) else null;
    std.debug.assert(taken == null or taken.?.base != 0); // a slot in use
    std.debug.assert(taken == null or taken.?.mapped_size > 0);
    cache_lock.release();
    if (taken != null) stats.incr(&stats.large.cache_hits);
    return taken;
}

fn findCached(mapped: usize) ?usize {
    std.debug.assert(cache_lock.isHeld());
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
    std.debug.assert(best == null or cache[best.?].base != 0); // a slot in use
    return best;
}

fn removeEntry(i: usize) CacheEntry {
    std.debug.assert(cache_lock.isHeld());
    const entry = cache[i];
    std.debug.assert(entry.base != 0); // a slot in use
    std.debug.assert(entry.mapped_size <= cached_bytes); // counted when it was cached
    cache[i] = .{};
    cached_bytes -= entry.mapped_size;
    stats.subFrom(&stats.large.cached_bytes, entry.mapped_size);
    return entry;
}

/// Removes the oldest cached mapping into evicted[count.*] (the caller unmaps it once the
/// lock is released); returns the slot it left free, or null when the cache is empty.
fn evictOldest(evicted: *[cache_slots]CacheEntry, count: *usize) ?usize {
    std.debug.assert(cache_lock.isHeld());
    std.debug.assert(count.* < cache_slots); // at most every slot is evicted once
    const oldest = oldestEntry() orelse return null;
    evicted[count.*] = removeEntry(oldest);
    count.* += 1;
    return oldest;
}

/// Caches a freed mapping (its magic cached) for reuse, unmapping the oldest ones to stay
/// within the limit. False, and nothing cached, when it alone exceeds the limit: the caller
/// unmaps it.
pub fn putCached(base: usize, mapped: usize, now_ms: u64) bool {
    std.debug.assert(base % chunk_size == 0); // a mapping of its own
    std.debug.assert(mapped % os.page_size == 0);
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
        std.debug.assert(cache[slot.?].base == 0); // an empty slot, or one just evicted
        cache[slot.?] = .{ .base = base, .mapped_size = mapped, .cached_ms = now_ms };
        cached_bytes += mapped;
        stats.addTo(&stats.large.cached_bytes, mapped);
        std.debug.assert(cached_bytes <= limit); // the oldest went until it fit
    }
    std.debug.assert(evicted_count <= cache_slots);
    std.debug.assert(fits or evicted_count == 0); // nothing evicted for a mapping that is not cached
    cache_lock.release();
    for (evicted[0..evicted_count]) |e| unmap(e.base, e.mapped_size);
    return fits;
}

fn oldestEntry() ?usize {
    std.debug.assert(cache_lock.isHeld());
    var oldest: ?usize = null;
    for (&cache, 0..) |*entry, i| {
        if (entry.base == 0) continue;
        if (oldest == null or entry.cached_ms < cache[oldest.?].cached_ms) oldest = i;
    }
    std.debug.assert(oldest == null or cache[oldest.?].base != 0); // a slot in use
    return oldest;
}

// ---- the limit (large_cache.zig sizes it; the regions' purge reads it too)

/// The cache's byte limit now (cache_lock held): recent demand (large_cache.zig), within
/// the budget; HAKMEM_ADAPT=0: the budget.
fn currentLimit(now_ms: u64) usize {
    std.debug.assert(cache_lock.isHeld()); // recent_peak is written under it
    const budget = config.large_cache_max_bytes;
    const window_ms = config.purge_delay_ms;
    const limit = if (!config.adapt) budget else large_cache.limit(recent_peak.peak(now_ms, window_ms), budget);
    std.debug.assert(limit <= budget);
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

/// The limit in region bytes: region blocks round up to whole units (up to 1/16 more for a
/// block of 1 MiB), so the limit in block bytes gets that slack, or the units of one block
/// that fits the limit would be purged one by one.
pub fn regionLimit(now_ms: u64) usize {
    cache_lock.acquire();
    defer cache_lock.release();
    const limit = currentLimit(now_ms);
    std.debug.assert(limit <= 1 << 40); // (HAKMEM_LARGE_CACHE_MB's limit: the slack cannot overflow)
    return limit + limit / 8;
}

// ---- giving mappings back

/// A mapping of its own back to the OS: untagged, unmapped, its block's address remembered
/// (large_recent.zig: a second free is a double free).
pub fn unmap(base: usize, mapped: usize) void {
    std.debug.assert(base % chunk_size == 0); // a mapping of its own, its tags from its head
    std.debug.assert(mapped % os.page_size == 0);
    std.debug.assert(mapped > 0); // its header's page at least
    large_recent.rememberUnmapped(@ptrFromInt(base));
    segment_map.clear(base, mapped);
    os.unmap(@ptrFromInt(base), mapped);
    stats.largeUnmapped(mapped);
}

/// Unmaps cached mappings along the decay curve (decay.zig), oldest first; all with `force`.
pub fn decay(now_ms: u64, force: bool) void {
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
    std.debug.assert(!force or cached_bytes == 0); // forced: nothing left
    std.debug.assert(count <= cache_slots);
    cache_lock.release();
    for (expired[0..count]) |e| unmap(e.base, e.mapped_size);
}

// fork (process.zig, through large.zig's hooks): cache_lock is taken before large_region's.

pub fn resetLockInChild() void {
    cache_lock.resetInChild();
    std.debug.assert(!cache_lock.isHeld());
}

pub fn lockForFork() void {
    cache_lock.acquire();
    std.debug.assert(cache_lock.isHeld()); // no cache entry half-written across the fork
}

pub fn unlockAfterFork() void {
    cache_lock.release();
}
