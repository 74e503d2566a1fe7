//! memory_report.zig — where the memory goes: hak_memory_report, memory() from Bun, and the
//! "memory" lines of the HAKMEM_STATS summary. Splits what hakmem holds resident into parts
//! (abi.MemoryPart) and puts the kernel's measurement beside them:
//!
//!   allocator_resident (measured: mincore over every chunk segment_map tags, the heaps,
//!   │                   the segment map and the regions' unit maps)
//!   ├─ live blocks ─────────── live_requested + internal_waste (tiny, mid, large live)
//!   ├─ thread_cache ────────── free blocks in thread caches (a walk of every heap's stacks
//!   │                          and the large blocks it holds, large_local.zig;
//!   │                          at most what pages in use hold resident beyond live blocks)
//!   ├─ page_free ───────────── free blocks of pages in use, neither live nor cached
//!   │                          (measured: the pages' resident bytes minus live and cached)
//!   ├─ empty_dirty ─────────── empty slices not yet purged (measured: the segments' masks)
//!   ├─ large_retained ──────── freed large memory kept resident (region units, mappings)
//!   ├─ large_overhead ──────── live large blocks' headers and rounding (the large tier's
//!   │                          measured resident bytes minus its live and retained ones)
//!   ├─ metadata ────────────── segment headers (measured), heaps, segment map, unit maps
//!   └─ unexplained ─────────── the measurement minus the parts: below 0 when live or cached
//!                              blocks were never written whole (not resident), above 0
//!                              for resident free slices no mask calls dirty
//!   rss (the kernel's, /proc/self/statm) = allocator_resident + not_allocator
//!
//! The counters are folded in at the batch paths as always (refill, flush, page and
//! mapping events); reading walks the heaps under the registry lock and measures the
//! mappings with mincore: exact when read, a few ms for a big heap. Never allocates.
const std = @import("std");
const os = @import("../base/os.zig");
const abi = @import("../abi.zig");
const stats = @import("../settings/stats.zig");
const size_class = @import("../settings/size_class.zig");
const segment_map = @import("../base/segment_map.zig");
const segment_mod = @import("../memory/segment.zig");
const page_mod = @import("../memory/page.zig");
const LargeHeader = @import("../memory/large_header.zig").LargeHeader;
const large_region = @import("../memory/large_region.zig");
const arena = @import("../memory/arena.zig");
const thread = @import("../thread/thread.zig");
const Heap = @import("../thread/heap.zig").Heap;
const P = abi.MemoryPart;
const G = abi.StatGlobal;

pub const Values = [abi.memory_part_count]u64;

/// The whole report, read now.
pub fn read(out: *Values) void {
    out.* = [_]u64{0} ** abi.memory_part_count;
    var sum: stats.BinCounters = .{};
    thread.sumCounters(&sum);
    var v: [stats.value_count]u64 = undefined;
    stats.snapshot(&sum, &v);
    var heaps: HeapWalk = .{};
    thread.forEachHeap(&heaps, HeapWalk.visit);
    var chunks: ChunkWalk = .{};
    segment_map.forEachTagged(&chunks, ChunkWalk.visit);

    const live = [_]u64{ v[abi.statIndex(.tiny, .live_bytes)], v[abi.statIndex(.mid, .live_bytes)], v[abi.statIndex(.large, .live_bytes)] };
    set(out, .tiny_live, live[0]);
    set(out, .mid_live, live[1]);
    set(out, .large_live, live[2]);
    const live_total = live[0] + live[1] + live[2];
    const waste = estimatedWaste(&sum);
    set(out, .internal_waste, waste);
    set(out, .live_requested, live_total -| waste);
    // The resident bytes of pages in use (measured) go to live blocks first, then to cached
    // blocks (a cached block of 4 KiB or more is resident only where it was written), then
    // to free blocks on the pages.
    var cached: [2]u64 = undefined;
    var page_free: [2]u64 = undefined;
    for (0..2) |t| {
        const room = chunks.in_use[t] -| live[t];
        cached[t] = @min(heaps.cached[t], room);
        page_free[t] = room - cached[t];
        // the pages' measured bytes split, never counted twice: live, cached, free
        std.debug.assert(cached[t] + page_free[t] <= chunks.in_use[t]);
    }
    set(out, .tiny_thread_cache, cached[0]);
    set(out, .mid_thread_cache, cached[1]);
    // large blocks a thread freed and holds (large_local.zig): resident, counted not live
    const large_held = @min(heaps.large_held, chunks.large -| live[2]);
    set(out, .thread_cache, cached[0] + cached[1] + large_held);
    set(out, .largest_thread_cache, heaps.largest_cache);
    set(out, .threads, heaps.live);
    set(out, .tiny_page_free, page_free[0]);
    set(out, .mid_page_free, page_free[1]);
    set(out, .page_free, page_free[0] + page_free[1]);
    set(out, .empty_dirty, chunks.dirty);
    const retained = stats.large.cached_bytes.load(.monotonic);
    set(out, .large_retained, retained);
    set(out, .large_overhead, chunks.large -| (live[2] + retained + large_held)); // measured: what units and pages round up and touch
    set(out, .cached_segments, @as(u64, arena.emptyCount()) * segment_mod.segment_size);
    std.debug.assert(chunks.segment_headers <= chunks.segments); // (visit: headers are segments' slices)
    const metadata = chunks.segment_headers + heaps.resident + segment_map.residentBytes() + large_region.metadataResidentBytes();
    set(out, .metadata, metadata);
    set(out, .segments_resident, chunks.segments);
    set(out, .large_resident, chunks.large);
    std.debug.assert(metadata >= chunks.segment_headers); // counted in both: the sum never underflows
    const measured = chunks.segments + chunks.large + metadata - chunks.segment_headers;
    std.debug.assert(measured >= chunks.segments + chunks.large); // its parts: segments_resident and large_resident
    set(out, .allocator_resident, measured);
    const parts = live_total + get(out, .thread_cache) + get(out, .page_free) + get(out, .empty_dirty) + retained + get(out, .large_overhead) + metadata;
    set(out, .unexplained, measured -% parts);
    const rss = rssBytes();
    set(out, .rss, rss);
    set(out, .not_allocator, rss -| measured);
    set(out, .allocator_mapped, v[G.os_mapped_bytes.index()]);
}

/// Live tiny and mid blocks' rounding to their class, estimated: a request is taken to be
/// anywhere between the class below and the block size (uniformly), so half the gap on
/// average. (Requested sizes are not recorded: that would cost malloc's fast path.)
fn estimatedWaste(sum: *const stats.BinCounters) u64 {
    var waste: u64 = 0;
    var live_bytes: u64 = 0; // (read by the assertion only)
    for (0..size_class.bin_count) |bin| {
        const frees = sum.frees[bin] + stats.heapless_frees[bin].load(.monotonic);
        const live = sum.allocs[bin] -| frees;
        if (live == 0) continue;
        const size = size_class.binBlockSize(bin);
        const class = size_class.classOf(size);
        std.debug.assert(size_class.classSize(class) == size); // a bin's blocks are its class's size
        const below: u64 = if (class == 0) 0 else size_class.classSize(class - 1);
        std.debug.assert(below < size); // classes grow: a request of this bin is above the one below
        waste += live * ((size - below - 1) / 2);
        live_bytes += live * size;
    }
    std.debug.assert(waste <= live_bytes / 2); // under half of each live block: a request is above the class below
    return waste;
}

fn set(out: *Values, part: P, value: u64) void {
    out[@intFromEnum(part)] = value;
}

pub fn get(out: *const Values, part: P) u64 {
    return out[@intFromEnum(part)];
}

/// Every heap: its cache's blocks by tier, its own pages (metadata).
const HeapWalk = struct {
    cached: [2]u64 = .{ 0, 0 },
    largest_cache: u64 = 0,
    /// Bytes of the large blocks the heaps' threads hold (large_local.zig).
    large_held: u64 = 0,
    live: u64 = 0,
    resident: u64 = 0,

    fn visit(self: *HeapWalk, heap: *const Heap, live: bool) void {
        std.debug.assert(@intFromPtr(heap) % @alignOf(Heap) == 0);
        self.resident += os.residentBytes(@intFromPtr(heap), @sizeOf(Heap));
        if (!live) return;
        self.live += 1;
        var mine: u64 = 0;
        for (0..size_class.bin_count) |bin| {
            const bytes = @as(u64, heap.cache.count(bin)) * size_class.binBlockSize(bin);
            self.cached[if (size_class.binIsTiny(bin)) 0 else 1] += bytes;
            mine += bytes;
        }
        const held = @atomicLoad(usize, &heap.large_local.bytes, .monotonic);
        std.debug.assert(held % large_region.unit_size == 0); // whole units, whenever read
        self.large_held += held;
        self.largest_cache = @max(self.largest_cache, mine + held);
    }
};

/// Every chunk hakmem mapped, measured. A segment's dirty slices (its header's mask, read
/// without its owner's lock: a snapshot) are measured too.
const ChunkWalk = struct {
    segments: u64 = 0,
    segment_headers: u64 = 0,
    dirty: u64 = 0,
    /// Resident bytes of slices in pages in use, by tier.
    in_use: [2]u64 = .{ 0, 0 },
    large: u64 = 0,

    const slice_pages = size_class.slice_size / os.page_size;

    comptime {
        // measureSegment reads vec slice by slice: the slices cover the segment exactly
        std.debug.assert(segment_mod.slice_count * slice_pages == segment_mod.segment_size / os.page_size);
    }

    fn visit(self: *ChunkWalk, chunk: usize, tag: segment_map.Tag) void {
        std.debug.assert(chunk % segment_map.chunk_size == 0); // the map tags whole chunks
        std.debug.assert(chunk != 0);
        switch (tag) {
            .none, .large_tail => {},
            .segment => self.measureSegment(chunk),
            .large_region => self.large += os.residentBytes(chunk, segment_map.chunk_size),
            // a mapping of its own: its header (live or cached) says how long it is
            .large_head => {
                var header: LargeHeader = undefined;
                if (!os.readSafely(chunk, std.mem.asBytes(&header))) return; // unmapped meanwhile
                self.large += os.residentBytes(chunk, header.mapped_size);
            },
        }
    }

    /// Another thread may unmap the segment (the arena's eviction or decay) while
    /// this runs: its header is copied without faulting (os.readSafely), and a segment
    /// gone meanwhile is skipped.
    fn measureSegment(self: *ChunkWalk, chunk: usize) void {
        std.debug.assert(chunk % segment_mod.segment_size == 0); // a segment starts its chunk
        var vec: [segment_mod.segment_size / os.page_size]u8 = undefined;
        if (!os.residentPages(chunk, segment_mod.segment_size, &vec)) return;
        var copy: segment_mod.Segment = undefined;
        if (!os.readSafely(chunk, std.mem.asBytes(&copy))) return;
        const seg = &copy;
        const dirty = seg.dirty_slices;
        for (0..segment_mod.slice_count) |slice| {
            var pages: u64 = 0;
            for (vec[slice * slice_pages ..][0..slice_pages]) |b| pages += b & 1;
            const bytes = pages * os.page_size;
            self.segments += bytes;
            if (slice == 0) {
                self.segment_headers += bytes;
            } else if (dirty & (@as(u64, 1) << @intCast(slice)) != 0) {
                self.dirty += bytes;
            } else if (seg.pages[slice].flags & page_mod.flag_unused == 0) {
                self.in_use[if (size_class.binIsTiny(seg.pages[slice].bin)) 0 else 1] += bytes;
            }
        }
        // each slice counted at most once: a header, dirty, or in use
        std.debug.assert(self.segment_headers + self.dirty + self.in_use[0] + self.in_use[1] <= self.segments);
    }
};

/// The kernel's resident set of the process (/proc/self/statm, pages), in bytes; 0 when unreadable.
pub fn rssBytes() u64 {
    const fd = std.posix.openZ("/proc/self/statm", .{ .CLOEXEC = true }, 0) catch return 0;
    defer std.posix.close(fd);
    var buf: [256]u8 = undefined;
    const n = std.posix.read(fd, &buf) catch return 0;
    std.debug.assert(n <= buf.len);
    var it = std.mem.tokenizeScalar(u8, buf[0..n], ' ');
    _ = it.next() orelse return 0;
    const pages = std.fmt.parseUnsigned(u64, it.next() orelse return 0, 10) catch return 0;
    return pages * os.page_size;
}

/// The report as text (the HAKMEM_STATS summary's memory lines, hak_memory_report_print).
pub fn write(w: *std.Io.Writer, r: *const Values) std.Io.Writer.Error!void {
    const measured = get(r, .allocator_resident);
    // a report as read makes: the parts of the measurement within it, the page splits their sums
    std.debug.assert(measured >= get(r, .segments_resident) + get(r, .large_resident));
    std.debug.assert(get(r, .page_free) == get(r, .tiny_page_free) + get(r, .mid_page_free));
    const unexplained: i64 = @bitCast(get(r, .unexplained));
    try w.print("hakmem: memory rss_kib={d} allocator_resident_kib={d} not_allocator_kib={d} unexplained_kib={d} ({d:.1}%) mapped_kib={d}\n", .{
        get(r, .rss) >> 10,              measured >> 10,                                    get(r, .not_allocator) >> 10,
        @divTrunc(unexplained, 1024),    percent(@abs(unexplained), measured),              get(r, .allocator_mapped) >> 10,
    });
    try w.print("hakmem: memory live_requested_kib={d} internal_waste_kib={d} (tiny {d} mid {d} large {d} live) thread_cache_kib={d} page_free_kib={d}\n", .{
        get(r, .live_requested) >> 10, get(r, .internal_waste) >> 10, get(r, .tiny_live) >> 10,  get(r, .mid_live) >> 10,
        get(r, .large_live) >> 10,     get(r, .thread_cache) >> 10,   get(r, .page_free) >> 10,
    });
    try w.print("hakmem: memory empty_dirty_kib={d} large_retained_kib={d} large_overhead_kib={d} metadata_kib={d} cached_segments_kib={d} threads={d}\n", .{
        get(r, .empty_dirty) >> 10, get(r, .large_retained) >> 10,  get(r, .large_overhead) >> 10,
        get(r, .metadata) >> 10,    get(r, .cached_segments) >> 10, get(r, .threads),
    });
}

fn percent(part: u64, whole: u64) f64 {
    if (whole == 0) return 0;
    return 100.0 * @as(f64, @floatFromInt(part)) / @as(f64, @floatFromInt(whole));
}

