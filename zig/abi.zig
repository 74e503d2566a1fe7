//! abi.zig — every constant of hakmem's ABI, in one place: return codes, tiers, check
//! modes, size and alignment limits, the routing thresholds' defaults and limits, and the
//! layout of the statistics array (field and global names, their order and meaning).
//!
//!   zig/abi.zig ──(zig build abi: zig/tools/abi_gen.zig)──┬─> zig/hakmem.h   the block between
//!        │                                          │                  "BEGIN/END GENERATED"
//!        │                                          └─> src/abi.ts     (whole file)
//!        └─> imported by config, size_class, stats, report, api, preload, alloc, large
//!
//! The generated files are committed (a fresh clone builds and tests without generating
//! anything). `zig build` and `zig build test` fail when either no longer matches this file
//! ("run `npm run abi`"), and test/abi.test.ts checks that the library, the header and
//! src/abi.ts agree at run time. Add or reorder a constant here, never in a copy.
//!
//! Nothing here depends on the rest of the allocator: the generator imports this file alone.
const std = @import("std");

// ------------------------------------------------------------------ return codes

/// What hak_free, hak_owns, hak_set_thresholds and hak_set_check_mode return.
pub const Result = enum(c_int) {
    ok = 0,
    not_owned = -1,
    invalid = -2,
    arg = -3,
    double_free = -4,

    pub fn doc(self: Result) []const u8 {
        const d = switch (self) {
            .ok => "success (hak_free of NULL too)",
            .not_owned => "the pointer is not in memory hakmem mapped",
            .invalid => "hakmem memory, but not a live block start (interior, or freed so long ago that its memory went back); nothing was changed",
            .arg => "an argument is out of range",
            .double_free => "hak_free of a block that is free already (found in a thread cache, on its page, or among freed large blocks); nothing was changed",
        };
        std.debug.assert(d.len > 0); // abi_gen writes a define's comment only when it has one
        std.debug.assert(std.mem.indexOf(u8, d, "*/") == null); // it goes inside /* */ in hakmem.h
        return d;
    }

    pub fn code(self: Result) c_int {
        const c = @intFromEnum(self);
        std.debug.assert(c <= 0); // C callers test `< 0`
        std.debug.assert((c == 0) == (self == .ok)); // and only success is 0
        return c;
    }
};

// ------------------------------------------------------------------ tiers and check modes

/// The tier a request is served by (hak_route), also the index of a tier in the stats.
pub const Tier = enum(u8) {
    tiny = 0,
    mid = 1,
    large = 2,

    pub fn doc(self: Tier) []const u8 {
        const d = switch (self) {
            .tiny => "size <= tiny_max: one-slice (64 KiB) pages, per-thread free lists",
            .mid => "size <= mid_max: multi-slice pages sized per class",
            .large => "size > mid_max: one OS mapping per block, cached",
        };
        std.debug.assert(d.len > 0); // abi_gen writes a define's comment only when it has one
        std.debug.assert(std.mem.indexOf(u8, d, "*/") == null); // it goes inside /* */ in hakmem.h
        return d;
    }
};

pub const tier_count = @typeInfo(Tier).@"enum".fields.len;

/// HAKMEM_CHECK / hak_set_check_mode.
pub const CheckMode = enum(u8) {
    off = 0,
    abort = 1,
    warn = 2,

    pub fn doc(self: CheckMode) []const u8 {
        const d = switch (self) {
            .off => "no checking (the default)",
            .abort => "report the first misuse on stderr, then abort() (HAKMEM_CHECK=1)",
            .warn => "report every misuse on stderr and carry on (HAKMEM_CHECK=warn)",
        };
        std.debug.assert(d.len > 0); // abi_gen writes a define's comment only when it has one
        std.debug.assert(std.mem.indexOf(u8, d, "*/") == null); // it goes inside /* */ in hakmem.h
        return d;
    }
};

// ------------------------------------------------------------------ limits

/// A constant of the ABI with its C name, value and meaning (hakmem.h: HAK_<name>).
pub const Limit = struct { name: []const u8, value: u64, doc: []const u8 };

/// Requests above this fail at once (NULL with ENOMEM; a RangeError from Bun): beyond any
/// real address space. A request at or below it may still fail for lack of memory.
pub const size_max: usize = 1 << 46;
/// Larger alignments fail with ENOMEM (they would reserve absurd address space).
pub const alignment_max: usize = 1 << 32;
/// Every block is aligned to at least this.
pub const min_alignment: usize = 16;

pub const tiny_max_default: usize = 1024;
/// Largest value of tiny_max (the largest tiny size class).
pub const tiny_max_limit: usize = 8 << 10;
/// Smallest value of mid_max. Below it, small requests would each get a mapping of their
/// own from the large tier (at least a page and a 4 MiB address-space chunk per block).
/// It equals tiny_max_limit, so tiny_max <= mid_max holds for any pair of valid values.
pub const mid_max_min: usize = tiny_max_limit;
pub const mid_max_default: usize = 1 << 20;
/// Largest value of mid_max (the largest mid size class; a mid page is at most 1 MiB).
pub const mid_max_limit: usize = 1 << 20;
/// Mid blocks larger than this have a page of their own: freed, the page's span goes back
/// to the segments every thread places pages in, so its address may be handed out by
/// another thread at once (zig/settings/size_class.zig).
pub const single_block_min: usize = 32 << 10;

pub const limits = [_]Limit{
    .{ .name = "SIZE_MAX", .value = size_max, .doc = "requests above fail at once (ENOMEM); at or below may still fail for lack of memory" },
    .{ .name = "ALIGNMENT_MAX", .value = alignment_max, .doc = "larger alignments fail with ENOMEM" },
    .{ .name = "MIN_ALIGNMENT", .value = min_alignment, .doc = "every block is aligned to at least this" },
    .{ .name = "TINY_MAX_DEFAULT", .value = tiny_max_default, .doc = "default tiny_max (HAKMEM_TINY_MAX)" },
    .{ .name = "TINY_MAX_LIMIT", .value = tiny_max_limit, .doc = "largest tiny_max (0 turns the tiny tier off)" },
    .{ .name = "MID_MAX_MIN", .value = mid_max_min, .doc = "smallest mid_max: smaller requests never go to the large tier" },
    .{ .name = "MID_MAX_DEFAULT", .value = mid_max_default, .doc = "default mid_max (HAKMEM_MID_MAX)" },
    .{ .name = "MID_MAX_LIMIT", .value = mid_max_limit, .doc = "largest mid_max" },
    .{ .name = "SINGLE_BLOCK_MIN", .value = single_block_min, .doc = "mid blocks above have a page of their own, shared with every thread once freed" },
};

comptime {
    std.debug.assert(std.math.isPowerOfTwo(size_max));
    std.debug.assert(std.math.isPowerOfTwo(alignment_max));
    std.debug.assert(std.math.isPowerOfTwo(min_alignment));
    std.debug.assert(tiny_max_default <= tiny_max_limit);
    std.debug.assert(tiny_max_limit <= mid_max_min);
    std.debug.assert(mid_max_min <= mid_max_default);
    std.debug.assert(mid_max_default <= mid_max_limit);
    std.debug.assert(size_max < (1 << 53)); // exact as a JavaScript number
}

// ------------------------------------------------------------------ statistics layout

/// hak_stats_read fills out[0..n) with stat_field_count counters per tier, tier-major
/// (out[tier * stat_field_count + field]), followed by stat_global_count globals.
/// hak_stat_name(i) names value i for i in [0, stat_field_count + stat_global_count).
pub const StatField = enum(u32) {
    allocs,
    frees,
    remote_frees,
    live_blocks,
    live_bytes,
    mapped_bytes,
    resident_bytes,
    purges,
    purged_bytes,
    cache_hits,
    cache_misses,
    pages,

    pub fn doc(self: StatField) []const u8 {
        const d = switch (self) {
            .allocs => "allocations",
            .frees => "all frees, local and remote",
            .remote_frees => "blocks handed back to a page another thread owns (counted when the freeing thread's cache is flushed, not at free)",
            .live_blocks => "blocks allocated and not freed",
            .live_bytes => "usable bytes of live blocks",
            .mapped_bytes => "memory spans/mappings in use by this tier",
            .resident_bytes => "estimate: mapped minus purged",
            .purges => "ranges returned to the OS",
            .purged_bytes => "bytes returned to the OS",
            .cache_hits => "large: mapping cache hits",
            .cache_misses => "large: mapping cache misses",
            .pages => "pages (tiny/mid) or mappings (large) in use",
        };
        std.debug.assert(d.len > 0); // abi_gen writes a define's comment only when it has one
        std.debug.assert(std.mem.indexOf(u8, d, "*/") == null); // it goes inside /* */ in hakmem.h
        return d;
    }

    /// Event counters that hak_stats_reset zeroes (the others are gauges).
    pub fn resettable(self: StatField) bool {
        return switch (self) {
            .allocs, .frees, .remote_frees, .purges, .purged_bytes, .cache_hits, .cache_misses => true,
            .live_blocks, .live_bytes, .mapped_bytes, .resident_bytes, .pages => false,
        };
    }

    pub fn index(self: StatField) usize {
        const i: usize = @intFromEnum(self);
        std.debug.assert(i < stat_field_count); // within a tier's fields
        return i;
    }
};

pub const StatGlobal = enum(u32) {
    segments_mapped,
    pages_abandoned,
    pages_reclaimed,
    threads_live,
    threads_total,
    os_mapped_bytes,
    os_resident_bytes,
    large_cached_bytes,
    thread_cache_bytes,
    thread_cache_grows,
    thread_cache_shrinks,
    large_cache_limit_bytes,
    double_frees_contained,

    pub fn doc(self: StatGlobal) []const u8 {
        const d = switch (self) {
            .segments_mapped => "4 MiB segments mapped",
            .pages_abandoned => "pages with live blocks their heap gave up (found full, or its thread exited)",
            .pages_reclaimed => "pages nobody held taken by a heap (from the abandoned lists, or back by its own free)",
            .threads_live => "threads with a heap now",
            .threads_total => "threads that ever had a heap",
            .os_mapped_bytes => "everything mapped from the OS right now",
            .os_resident_bytes => "estimate of the resident part",
            .large_cached_bytes => "freed large mappings kept for reuse",
            .thread_cache_bytes => "freed blocks held in thread caches (estimate)",
            .thread_cache_grows => "thread-cache capacity doublings (adaptation)",
            .thread_cache_shrinks => "halvings of idle thread caches",
            .large_cache_limit_bytes => "current byte limit of the large-mapping cache",
            .double_frees_contained => "double frees found in a batch (cache flush, remote-free collection) and dropped; only without preload, which aborts",
        };
        std.debug.assert(d.len > 0); // abi_gen writes a define's comment only when it has one
        std.debug.assert(std.mem.indexOf(u8, d, "*/") == null); // it goes inside /* */ in hakmem.h
        return d;
    }

    /// Position in the hak_stats_read array (after the tiers' fields).
    pub fn index(self: StatGlobal) usize {
        const i = tier_count * stat_field_count + @intFromEnum(self);
        std.debug.assert(i >= tier_count * stat_field_count); // after every tier's fields
        std.debug.assert(i < stat_value_count); // within the array hak_stats_read fills
        return i;
    }
};

pub const stat_field_count = @typeInfo(StatField).@"enum".fields.len;
pub const stat_global_count = @typeInfo(StatGlobal).@"enum".fields.len;
/// Values written by hak_stats_read.
pub const stat_value_count = tier_count * stat_field_count + stat_global_count;
/// Names given by hak_stat_name (fields once, then globals).
pub const stat_name_count = stat_field_count + stat_global_count;

/// Position of (tier, field) in the hak_stats_read array.
pub fn statIndex(tier: Tier, field: StatField) usize {
    const i = @as(usize, @intFromEnum(tier)) * stat_field_count + @intFromEnum(field);
    std.debug.assert(i < tier_count * stat_field_count); // before the globals
    std.debug.assert(i % stat_field_count == field.index()); // tier-major: the field's column
    return i;
}

/// hak_stat_name(i): a field name for i < stat_field_count, then global names.
pub fn statName(i: usize) ?[]const u8 {
    if (i < stat_field_count) return @tagName(@as(StatField, @enumFromInt(i)));
    if (i < stat_name_count) return @tagName(@as(StatGlobal, @enumFromInt(i - stat_field_count)));
    std.debug.assert(i >= stat_field_count + stat_global_count); // only past the names: none
    return null;
}

// ------------------------------------------------------------------ the memory report

/// hak_memory_report fills out[0..n) with these values, in this order (bytes unless the name
/// says otherwise); hak_memory_part_name(i) names value i. The parts from live_requested to
/// metadata add up to allocator_resident within unexplained (signed: the difference, as a
/// two's-complement u64); rss is the kernel's figure for the whole process.
pub const MemoryPart = enum(u32) {
    live_requested,
    internal_waste,
    tiny_live,
    mid_live,
    large_live,
    thread_cache,
    tiny_thread_cache,
    mid_thread_cache,
    page_free,
    tiny_page_free,
    mid_page_free,
    empty_dirty,
    large_retained,
    large_overhead,
    cached_segments,
    metadata,
    allocator_resident,
    segments_resident,
    large_resident,
    unexplained,
    rss,
    not_allocator,
    allocator_mapped,
    threads,
    largest_thread_cache,

    pub fn doc(self: MemoryPart) []const u8 {
        const d = switch (self) {
            .live_requested => "bytes the program asked for and holds (live blocks minus internal_waste)",
            .internal_waste => "live tiny and mid blocks' rounding up to their size class (an estimate: half the gap to the class below per block; requests are not recorded)",
            .tiny_live => "usable bytes of live tiny blocks",
            .mid_live => "usable bytes of live mid blocks",
            .large_live => "usable bytes of live large blocks",
            .thread_cache => "free blocks held in thread caches (all threads; their resident part: what pages in use hold beyond live blocks, at most)",
            .tiny_thread_cache => "of which tiny blocks",
            .mid_thread_cache => "of which mid blocks",
            .page_free => "free blocks in pages in use, resident (measured: the pages' resident bytes minus their live and cached blocks)",
            .tiny_page_free => "of which in tiny pages",
            .mid_page_free => "of which in mid pages",
            .empty_dirty => "empty slices not yet purged (dirty, on the decay curve), in segments and in the segment cache",
            .large_retained => "freed large memory kept resident (region units and cached mappings)",
            .large_overhead => "live large blocks' headers and the parts of their last pages and 64 KiB units they touch (measured: the large tier's resident bytes minus large_live and large_retained)",
            .cached_segments => "empty segments waiting in the arena's cache (count x 4 MiB mapped; their dirty slices are in empty_dirty)",
            .metadata => "segment headers, heaps, the segment map and the large regions' unit maps (resident, measured)",
            .allocator_resident => "resident bytes of every mapping hakmem made, measured with mincore when read",
            .segments_resident => "of which segments (headers included)",
            .large_resident => "of which large regions and mappings",
            .unexplained => "allocator_resident minus the parts (signed; two's complement)",
            .rss => "the process's resident set (/proc/self/statm)",
            .not_allocator => "rss minus allocator_resident: program code, stacks, libc, other mappings",
            .allocator_mapped => "everything hakmem has mapped (the hard budget counts this)",
            .threads => "threads with a heap now (count)",
            .largest_thread_cache => "bytes in the fullest thread's cache",
        };
        std.debug.assert(d.len > 0); // abi_gen writes a define's comment only when it has one
        std.debug.assert(std.mem.indexOf(u8, d, "*/") == null); // it goes inside /* */ in hakmem.h
        return d;
    }
};

pub const memory_part_count = @typeInfo(MemoryPart).@"enum".fields.len;

test "the stats layout is dense and named" {
    try std.testing.expectEqual(@as(usize, 12), stat_field_count);
    try std.testing.expectEqual(@as(usize, 13), stat_global_count);
    try std.testing.expectEqualStrings("allocs", statName(0).?);
    try std.testing.expectEqualStrings("segments_mapped", statName(stat_field_count).?);
    try std.testing.expectEqualStrings("double_frees_contained", statName(stat_name_count - 1).?);
    try std.testing.expectEqual(@as(?[]const u8, null), statName(stat_name_count));
    try std.testing.expectEqual(@as(usize, 2 * 12 + 4), statIndex(.large, .live_bytes));
    try std.testing.expectEqual(@as(usize, 3 * 12 + 11), StatGlobal.large_cache_limit_bytes.index());
}

// ------------------------------------------------------------------ allocation traces

// HAKMEM_TRACE=path (%p: the process id) under LD_PRELOAD records every malloc, calloc,
// realloc, free, aligned allocation and malloc_usable_size (zig/process/trace.zig); the native
// replayer (bench/c/replay.c) and src/trace.ts read the file. Version 1, little-endian:
//
//   file   = TraceFileHeader, then blocks in the order they were flushed
//   block  = TraceBlockHeader, then payload_bytes of events of ONE thread (its events in
//            order; a thread's blocks in file order are its whole stream)
//   event  = a tag byte (TraceEvent), then its operands as LEB128 varints:
//     size, alignment's log2, a count: unsigned
//     an object id: zigzag(next - 1 - id), where `next` is the id the thread's next
//       allocation would get (so a block freed soon after its allocation costs one byte)
//   object ids: every allocation gets the next id of its thread's current chunk of
//     trace_id_chunk ids (implicit: not written); id_base opens a new chunk (ids are never
//     reused: a free of an id freed before is a double free in the trace)
//   checksum = FNV-1a (32 bits) of the payload
//
// Decoding state per thread: next id, chunk end, time. Every value has a bound: a block's
// payload is at most trace_block_payload_max bytes, an event at most trace_event_bytes_max.

pub const TraceEvent = enum(u8) {
    malloc = 0,
    calloc = 1,
    realloc = 2,
    free = 3,
    aligned = 4,
    usable_size = 5,
    free_unknown = 6,
    thread_begin = 7,
    thread_end = 8,
    time = 9,
    id_base = 10,

    /// What follows the tag, and what the event means.
    pub fn doc(self: TraceEvent) []const u8 {
        const d = switch (self) {
            .malloc => "size: malloc (and realloc(NULL, size), or realloc of a pointer the trace never saw); the result takes the next id",
            .calloc => "size (count * size): calloc; the next id",
            .realloc => "id, size: realloc of a live object to size; the result takes the next id, the old id is dead",
            .free => "id: free (also realloc(p, 0))",
            .aligned => "log2 alignment, size: memalign, posix_memalign, aligned_alloc, valloc, pvalloc; the next id",
            .usable_size => "id: malloc_usable_size",
            .free_unknown => "(nothing): free of a pointer the trace never saw allocated (skipped by a replay)",
            .thread_begin => "exits: the thread's first event; `exits` threads had ended before it began",
            .thread_end => "(nothing): the thread exited",
            .time => "milliseconds since the previous time event of the thread (the first: since the trace began)",
            .id_base => "base: the thread's next ids are base .. base + trace_id_chunk",
        };
        std.debug.assert(d.len > 0); // abi_gen writes a define's comment only when it has one
        std.debug.assert(std.mem.indexOf(u8, d, "*/") == null); // it goes inside /* */ in hakmem.h
        return d;
    }
};

/// The file starts with this (every field u32, little-endian).
pub const TraceFileHeader = extern struct {
    magic: u32,
    version: u32,
    header_bytes: u32,
    block_header_bytes: u32,
    pid: u32,
    id_chunk: u32,
    start_unix_s: u32,
    reserved: u32,
};

/// Every block starts with this (every field u32, little-endian).
pub const TraceBlockHeader = extern struct {
    magic: u32,
    pid: u32,
    thread: u32,
    events: u32,
    payload_bytes: u32,
    checksum: u32,
};

pub const trace_magic: u32 = 0x52544B48; // "HKTR"
pub const trace_block_magic: u32 = 0x42544B48; // "HKTB"
pub const trace_version: u32 = 1;
pub const trace_block_payload_max: u32 = 64 << 10;
pub const trace_event_bytes_max: u32 = 32;
pub const trace_id_chunk: u32 = 1024;
pub const trace_fnv_offset: u32 = 0x811C9DC5;
pub const trace_fnv_prime: u32 = 0x01000193;
/// A replay writes a byte in every page of a fresh block's first this many bytes, and its
/// last byte (a trace does not say how much of a big buffer the program filled).
pub const trace_replay_touch_bytes: u32 = 256 << 10;

pub const trace_constants = [_]Limit{
    .{ .name = "TRACE_MAGIC", .value = trace_magic, .doc = "file header magic, \"HKTR\" little-endian" },
    .{ .name = "TRACE_BLOCK_MAGIC", .value = trace_block_magic, .doc = "block header magic, \"HKTB\" little-endian" },
    .{ .name = "TRACE_VERSION", .value = trace_version, .doc = "format version" },
    .{ .name = "TRACE_HEADER_BYTES", .value = @sizeOf(TraceFileHeader), .doc = "file header size" },
    .{ .name = "TRACE_BLOCK_HEADER_BYTES", .value = @sizeOf(TraceBlockHeader), .doc = "block header size" },
    .{ .name = "TRACE_BLOCK_PAYLOAD_MAX", .value = trace_block_payload_max, .doc = "largest block payload" },
    .{ .name = "TRACE_EVENT_BYTES_MAX", .value = trace_event_bytes_max, .doc = "largest encoded event" },
    .{ .name = "TRACE_ID_CHUNK", .value = trace_id_chunk, .doc = "ids per id_base chunk" },
    .{ .name = "TRACE_FNV_OFFSET", .value = trace_fnv_offset, .doc = "FNV-1a offset basis (block checksum)" },
    .{ .name = "TRACE_FNV_PRIME", .value = trace_fnv_prime, .doc = "FNV-1a prime (block checksum)" },
    .{ .name = "TRACE_REPLAY_TOUCH_BYTES", .value = trace_replay_touch_bytes, .doc = "a replay writes a byte per page of a block's first this many bytes, and its last byte" },
};

/// FNV-1a of `bytes` (a block's checksum).
pub fn traceChecksum(bytes: []const u8) u32 {
    std.debug.assert(bytes.len <= trace_block_payload_max + trace_event_bytes_max); // a block's payload (the readers' bound)
    var h: u32 = trace_fnv_offset;
    for (bytes) |b| h = (h ^ b) *% trace_fnv_prime;
    return h;
}

comptime {
    std.debug.assert(@sizeOf(TraceFileHeader) == 32);
    std.debug.assert(@sizeOf(TraceBlockHeader) == 24);
    std.debug.assert(trace_event_bytes_max <= trace_block_payload_max); // an event fits a block
    std.debug.assert(trace_magic != trace_block_magic); // a file header is no block header
    std.debug.assert(@typeInfo(TraceEvent).@"enum".fields.len <= 16);
}

test "trace checksum is FNV-1a" {
    try std.testing.expectEqual(@as(u32, 0x811C9DC5), traceChecksum(""));
    try std.testing.expectEqual(@as(u32, 0xE40C292C), traceChecksum("a"));
}
