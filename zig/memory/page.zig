//! page.zig — a page: one span of 1..16 slices of a segment, cut into blocks of one size.
//!
//!   page.start                                        carved_end         page end
//!   | block 0 | block 1 | ... | block capacity-1 |     uncarved ...       | tail |
//!
//! Blocks are carved lazily (`extend`), so a fresh page costs RSS only for what is used.
//! A carved block is in exactly one place: handed out, in some thread's cache, free on the
//! page (its bit set in `bits`: the owner's set, plain loads and stores) or on
//! `thread_free` (blocks given back by threads that do not own the page, linked, pushed
//! with one CAS, taken whole by the owner in `collect`). `used` counts the carved blocks
//! whose bit is clear, `free_count` those whose bit is set.
//!
//!   bits    | 1 0 0 1 1 0 ... |   one bit per block: set = free on the page
//!             ^ free_cursor (the word where the next search starts)
//!
//! The page's free blocks are a bitmap, not a list: refilling a cache reads the bitmap
//! (blocks in address order, a word of 64 at a time) and never the freed blocks' memory,
//! so a program that writes to a block after freeing it cannot corrupt the page, and a cold
//! block costs no cache miss until it is used. A block that arrives at its page (a cache
//! flush, a remote free collected) while its bit is set was freed twice. Only the owner
//! writes the bits; other threads may read them (a double-free check). Links exist only
//! on `thread_free`, encoded (block.zig) and checked when collected.
//!
//! Ownership (mimalloc 3's design): a page, not its segment, is the unit a thread owns.
//!
//!   thread_free = | head of the remote list (a block address) ............ | owned bit |
//!   owner       = the heap whose queues hold the page, or null (abandoned)
//!
//! The owned bit says that some thread holds the page: its heap (owner set), or a thread
//! that just took an abandoned page and decides what becomes of it (owner null). Whoever
//! holds it may write the owner-only fields. A heap gives a page up (abandons it) when the
//! page is full, the thread exits or the bin goes idle: owner null, then the bit cleared
//! (`tryUnown`), so the page
//! belongs to nobody. Every push onto thread_free sets the bit; the one push that finds it
//! clear has taken the page (`pushRemoteChain` returns true) and must settle it: the page
//! goes back to its segment when the push emptied it, else it is reclaimed or listed for
//! any heap to take (memory/abandoned.zig, thread/heap.zig settleClaimed). So the thread
//! that frees the last block of an exited thread's page gives the page back at once, and a
//! page of a full or exited heap that other threads freed into serves whoever needs its
//! size class next — never a whole segment waiting for one thread.
//!
//! free() on any thread reads only the first cache line of a slice's descriptor, and
//! every slice of a span carries a copy of it (`syncSpan`), so free finds it with a shift
//! and a mask, without following slice_offset:
//!   start, div_magic      the block index of an address: ((addr - start) * div_magic) >> 40
//!   fast_magic            div_magic << 24 while a free may take the fast path, else 0
//!   carved_end            start + capacity * block_size; 0 for a slice not in use
const std = @import("std");
const size_class = @import("../settings/size_class.zig");
const routing = @import("../settings/routing.zig");
const block_mod = @import("../base/block.zig");
const misuse = @import("../settings/misuse.zig");

pub const Block = block_mod.Block;

// A page's flags, each a slow flag: it sends every free of the page to the slow path
// (fast_magic = 0). Set and cleared with atomic read-modify-writes (setFlags, clearFlags):
// a thread that does not hold the page sets flag_aligned on it (an aligned block it popped
// from its cache), while the holder may set or clear flag_sampled.
pub const flag_aligned: u8 = 2; // holds blocks handed out at an inner aligned address
pub const flag_unused: u8 = 4; // not a page in use (free span, segment header, cached)
pub const flag_checked: u8 = 8; // check mode, every free goes through check.zig
pub const flag_sampled: u8 = 32; // holds a block the heap profiler sampled (profile.zig)
/// Flags that send every free of the page to the slow path (fast_magic = 0).
const slow_flags = flag_aligned | flag_unused | flag_checked | flag_sampled;

/// Carve at most this many bytes of new blocks at a time (one OS page: carving writes each
/// block's key, so what is carved is resident; with 16 KiB every bin of every thread could
/// hold up to 16 KiB resident and unused: larson 2 threads 7.4 -> 6.8 MiB peak RSS,
/// mt_remote 0% 4.4 -> 3.7, random_mixed ws=400 2.5 -> 2.2; instructions within 2%) ...
const extend_bytes_max: usize = 4 * 1024;
/// ... but at least this many blocks (a fresh cache bin's first refill takes 8).
const extend_blocks_min: usize = 8;
/// Shift of the magic division; exact for every offset of a page (see blockStartIndex).
/// free's form of the test (fast_magic) is calls/free_fast.zig isFastBlockStart.
pub const magic_shift = 40;
/// thread_free's low bit: the page is held by a thread (its owner heap, or a claimer).
/// Block addresses are 16-byte aligned, so the bit is free.
pub const tf_owned: usize = 1;

pub const Page = extern struct {
    // ---- first cache line: read by free() on any thread, copied into every slice ----
    start: usize align(128) = 0,
    div_magic: u64 = 0,
    fast_magic: u64 = 0,
    carved_end: usize = 0,
    bin: u8 = 0,
    slice_offset: u8 = 0,
    slice_count: u8 = 0,
    flags: u8 = flag_unused,
    block_size: u32 = 0,
    capacity: u32 = 0,
    reserved: u32 = 0,
    /// Where the bin's stack is in a thread cache (routing.stackOffset(bin)): free pushes
    /// there without a shift.
    stack_offset: routing.StackOffset = 0,
    // ---- owner only, first slice of the span ----
    /// Within one cache flush of its holder: already listed among the pages it touched
    /// (a field of its own, not a flag: flags are also written by threads that do not
    /// hold the page).
    flushing: bool = false,
    /// The word of `bits` where the search for a free block starts.
    free_cursor: u32 = 0,
    used: u32 = 0,
    free_count: u32 = 0,
    // ---- second cache line: what other threads write (remote frees) and ownership ----
    /// The remote-free list's head (a block address) | tf_owned (see the file header).
    thread_free: std.atomic.Value(usize) align(64) = .init(0),
    /// The heap whose queues hold the page; null while abandoned (and between a claim and
    /// what the claimer makes of it). Written by the holder of the owned bit; read by any
    /// thread (monotonic): is a block given back to this page a local free?
    owner: std.atomic.Value(?*anyopaque) = .init(null),
    /// Links in the owner heap's queue, or in the list of abandoned pages of its bin
    /// (abandoned.zig, under its lock, while `listed`).
    next: ?*Page = null,
    prev: ?*Page = null,
    /// The heap that placed or last took the page (a claimer that is this heap takes it
    /// back into its queue: its own frees into a page it gave up when full).
    origin: ?*anyopaque = null,
    /// Milliseconds on the monotonic clock when `used` last dropped to 0.
    empty_since_ms: u64 = 0,
    /// One bit per block: set while the block is on `free`.
    bits: ?[*]u64 = null,
    /// In the list of abandoned pages of its bin (abandoned.zig; under its lock).
    listed: bool = false,

    comptime {
        // The widths the fields assume: a bin, a span and a slice index in a byte, a block
        // size and a block count in 32 bits.
        std.debug.assert(size_class.bin_count - 1 <= std.math.maxInt(@FieldType(Page, "bin")));
        std.debug.assert(size_class.max_page_slices <= std.math.maxInt(@FieldType(Page, "slice_count")));
        std.debug.assert(@import("../base/segment_map.zig").chunk_size / size_class.slice_size - 1 <= std.math.maxInt(@FieldType(Page, "slice_offset")));
        std.debug.assert(size_class.mid_size_limit <= std.math.maxInt(@FieldType(Page, "block_size")));
        std.debug.assert(size_class.max_page_slices * size_class.slice_size / size_class.min_block_size <= std.math.maxInt(@FieldType(Page, "capacity")));
        std.debug.assert(@sizeOf(Page) == 128);
        std.debug.assert(@offsetOf(Page, "free_count") < 64);
        std.debug.assert(@offsetOf(Page, "thread_free") == 64);
        // The magic division is exact and the block-start test sound when
        // page_bytes * block_size <= 2^magic_shift (proof at blockStartIndex).
        std.debug.assert(size_class.max_page_slices * size_class.slice_size * size_class.mid_size_limit <= 1 << magic_shift);
    }

    /// Makes `self` (the first slice of a span of `slice_count` slices at `start`) a page of
    /// `bin`, with `bits` (room for one bit per block) cleared, held by `owner` (a heap).
    pub fn init(self: *Page, bin: usize, start: usize, slice_count: usize, bits: [*]u64, checked: bool, owner: *anyopaque) void {
        std.debug.assert(bin < size_class.bin_count);
        std.debug.assert(start % size_class.min_block_size == 0); // blocks 16-byte aligned: tf_owned's bit is free
        std.debug.assert(slice_count >= 1);
        std.debug.assert(slice_count <= size_class.max_page_slices);
        std.debug.assert(self.slice_offset == 0); // the span's first slice
        const bs = size_class.binBlockSize(bin);
        const reserved = slice_count * size_class.slice_size / bs;
        std.debug.assert(reserved >= 1); // a span holds one block of its bin at least
        self.* = .{
            .start = start,
            .div_magic = size_class.divMagic(bs),
            .carved_end = start,
            .bin = @intCast(bin),
            .stack_offset = routing.stackOffset(bin),
            .slice_count = @intCast(slice_count),
            .flags = if (checked) flag_checked else 0,
            .block_size = @intCast(bs),
            .reserved = @intCast(reserved),
            .thread_free = .init(tf_owned),
            .owner = .init(owner),
            .origin = owner,
            .bits = bits,
        };
        self.fast_magic = self.fastMagic();
        @memset(bits[0 .. (reserved + 63) / 64], 0);
        self.syncSpan();
        // the reserved blocks fit the span (the magic division's bound), and a checked page
        // closes free's fast path while any other opens it
        std.debug.assert(reserved * bs <= slice_count * size_class.slice_size);
        std.debug.assert((self.fast_magic == 0) == checked);
    }

    /// A page of one block, live, becomes a page of `bin` (another bin of single-block pages
    /// of as many slices: realloc in place, heap.rebinSingleBlock): the same span and
    /// block start, the block now of the new bin's size. The holder only.
    pub fn rebin(self: *Page, bin: usize) void {
        std.debug.assert(bin < size_class.bin_count);
        std.debug.assert(self.slice_offset == 0); // the span's first slice
        std.debug.assert(self.flags & slow_flags == 0); // a plain page in use
        std.debug.assert(self.reserved == 1); // a page of one block,
        std.debug.assert(self.capacity == 1); // carved,
        std.debug.assert(self.used == 1); // live
        std.debug.assert(self.free_count == 0);
        const bs = size_class.binBlockSize(bin);
        const span_bytes = @as(usize, self.slice_count) * size_class.slice_size;
        std.debug.assert(bs <= span_bytes); // one block of the bin fills the span
        std.debug.assert(span_bytes / bs == 1);
        self.bin = @intCast(bin);
        self.block_size = @intCast(bs);
        self.div_magic = size_class.divMagic(bs);
        self.stack_offset = routing.stackOffset(bin);
        self.fast_magic = self.fastMagic();
        self.carved_end = self.start + bs;
        self.syncSpan();
        std.debug.assert(self.isBlockStart(self.start)); // its block, at the same address
    }

    fn fastMagic(self: *const Page) u64 {
        const magic = if (self.flags & slow_flags != 0) 0 else self.div_magic << (64 - magic_shift);
        // div_magic < 2^40: shifted up by 24, free's test (isFastBlockStart) sees its low bits clear
        std.debug.assert(magic & ((1 << (64 - magic_shift)) - 1) == 0);
        return magic;
    }

    /// Copies the first line (what free reads) into the span's other slices.
    pub fn syncSpan(self: *Page) void {
        std.debug.assert(self.slice_offset == 0); // copied from the first slice only
        std.debug.assert(self.slice_count >= 1); // a span,
        std.debug.assert(self.slice_count <= size_class.max_page_slices); // within its segment's descriptors
        const span: [*]Page = @ptrCast(self);
        for (1..self.slice_count) |k| {
            const s = &span[k];
            s.start = self.start;
            s.div_magic = self.div_magic;
            s.fast_magic = self.fast_magic;
            s.carved_end = self.carved_end;
            s.bin = self.bin;
            s.stack_offset = self.stack_offset;
            s.block_size = self.block_size;
            s.flags = self.flags;
            std.debug.assert(s.slice_offset == k);
        }
    }

    pub fn setFlags(self: *Page, flags: u8) void {
        std.debug.assert(flags != 0);
        std.debug.assert(flags & ~slow_flags == 0); // every flag closes free's fast path
        _ = @atomicRmw(u8, &self.flags, .Or, flags, .monotonic);
        self.fast_magic = self.fastMagic();
        self.syncSpan();
        // a slow flag closes free's fast path on every slice of the span
        std.debug.assert(flags & slow_flags == 0 or self.fast_magic == 0);
    }

    /// (the owner) Clears flags (a slow flag no longer needed: frees take the fast path again).
    pub fn clearFlags(self: *Page, flags: u8) void {
        std.debug.assert(flags != 0);
        std.debug.assert(flags & flag_unused == 0); // a page in use stays one: segment.zig frees spans
        _ = @atomicRmw(u8, &self.flags, .And, ~flags, .monotonic);
        self.fast_magic = self.fastMagic();
        self.syncSpan();
        // the fast path is open again exactly when no slow flag is left
        std.debug.assert((self.fast_magic != 0) == (self.flags & slow_flags == 0 and self.div_magic != 0));
    }

    pub inline fn isTiny(self: *const Page) bool {
        return size_class.binIsTiny(self.bin);
    }

    /// The tier's index in the statistics (0 tiny, 1 mid).
    pub fn tierIndex(self: *const Page) usize {
        return if (self.isTiny()) 0 else 1;
    }

    /// The index of the block that starts at `addr`, or null when `addr` is not the start
    /// of a carved block. One multiply: with m = div_magic = floor(2^40 / bs) + 1 and
    /// e = m*bs - 2^40 (1 <= e <= bs), offset = q*bs + r gives offset*m = q*2^40 + (q*e + r*m);
    /// the low 40 bits are q*e < m when r = 0, and >= m when r > 0 (q*e and r*m stay below
    /// 2^40 because reserved*bs <= page bytes <= 2^40/bs < m). So the high bits are the index
    /// and "low bits < m" is the block-start test. free() does the same with fast_magic
    /// (calls/free_fast.zig isFastBlockStart).
    pub inline fn blockStartIndex(self: *const Page, addr: usize) ?u32 {
        if (addr < self.start or addr >= self.carved_end) return null;
        const product = (addr - self.start) *% self.div_magic;
        if ((product << (64 - magic_shift)) >= (self.div_magic << (64 - magic_shift))) return null;
        return @intCast(product >> magic_shift);
    }

    pub inline fn isBlockStart(self: *const Page, addr: usize) bool {
        return self.blockStartIndex(addr) != null;
    }

    /// The block a free, realloc or query of `addr` names: on a page of aligned blocks
    /// (handed out at an inner address) the block that contains `addr`; on any other page
    /// only a block that starts at `addr`. Null for a slice not in use, or no such block.
    /// (Every path that is not free's fast path finds a block with this one test.)
    pub fn blockOf(self: *const Page, addr: usize) ?usize {
        if (self.flags & flag_unused != 0) return null;
        if (self.flags & flag_aligned != 0) return self.blockContaining(addr);
        return if (self.isBlockStart(addr)) addr else null;
    }

    /// The start of the carved block that contains `addr`, or null.
    pub fn blockContaining(self: *const Page, addr: usize) ?usize {
        if (addr < self.start or addr >= self.carved_end) return null;
        const index = ((addr - self.start) *% self.div_magic) >> magic_shift;
        return self.start + index * self.block_size;
    }

    fn bitOf(self: *const Page, index: u32) struct { word: *u64, mask: u64 } {
        return .{ .word = &self.bits.?[index / 64], .mask = @as(u64, 1) << @intCast(index % 64) };
    }

    /// True when the block at `addr` (a block start) is free on the page. Any thread may ask:
    /// a reader other than the owner gets an answer that may be stale, never a fault.
    pub fn isOnFreeList(self: *const Page, addr: usize) bool {
        const index = self.blockStartIndex(addr) orelse return false;
        const bit = self.bitOf(index);
        return @atomicLoad(u64, bit.word, .monotonic) & bit.mask != 0;
    }

    pub fn where(self: *const Page) misuse.Where {
        return .{ .tier = if (self.isTiny()) "tiny" else "mid", .class = size_class.binClass(self.bin), .block_size = self.block_size };
    }

    /// Owner: takes one free block, or null.
    pub fn popFree(self: *Page) ?*Block {
        var one: [1]*Block = undefined;
        return if (self.popMany(&one) == 1) one[0] else null;
    }

    /// Owner: takes up to `out.len` free blocks (lowest addresses first from the cursor)
    /// into `out`; returns how many. Reads the bitmap only. Bounded by the bitmap's words.
    pub fn popMany(self: *Page, out: []*Block) u32 {
        std.debug.assert(self.slice_offset == 0); // the owner's page
        std.debug.assert(self.flags & flag_unused == 0); // in use
        const want: u32 = @intCast(@min(out.len, self.free_count));
        if (want == 0) return 0;
        const bits = self.bits.?;
        const words = (self.capacity + 63) / 64;
        var word_index = if (self.free_cursor < words) self.free_cursor else 0;
        var got: u32 = 0;
        var visited: u32 = 0;
        while (got < want) {
            if (visited > words) misuse.corrupted("a page's free count and its free bits disagree", self.start);
            var word = bits[word_index];
            while (word != 0 and got < want) {
                const bit: u32 = @ctz(word);
                word &= word - 1;
                const addr = self.start + (@as(usize, word_index) * 64 + bit) * self.block_size;
                out[got] = @ptrFromInt(addr);
                got += 1;
            }
            bits[word_index] = word;
            if (got == want) break;
            word_index += 1;
            if (word_index == words) word_index = 0;
            visited += 1;
        }
        std.debug.assert(word_index < words); // the cursor stays within the carved bits
        self.free_cursor = word_index;
        self.used += got;
        self.free_count -= got;
        std.debug.assert(got == want);
        std.debug.assert(@as(u64, self.used) + self.free_count == self.capacity); // every carved block counted once
        if (self.flags & flag_checked != 0) {
            for (out[0..got]) |blk| {
                if (blk.key != block_mod.free_key and blk.key != block_mod.fresh_key) misuse.freedBlockWritten(@intFromPtr(blk), self.where(), 8);
            }
            return got;
        }
        // Every block free on the page has the page key (carved, given back, collected) and
        // takes its bin's cache key on the way into a cache (the line is loaded for the test
        // anyway). One that has not was freed again (free(3) pushed it without looking: its
        // cache key), handed out by such a copy (malloc clears the key), or written after
        // its free: reported (reportUnkeyed), and when that returns, dropped here: it
        // stays counted in use (it is live, or cannot be trusted). Per refill, not on
        // malloc's path.
        const cache_key = block_mod.cacheKey(self.stack_offset);
        var kept: u32 = 0;
        for (out[0..got]) |blk| {
            if (blk.key != block_mod.page_key) {
                self.reportUnkeyed(blk);
                continue;
            }
            blk.key = cache_key;
            out[kept] = blk;
            kept += 1;
        }
        std.debug.assert(kept <= got);
        return kept;
    }

    /// The block says it is free: in a cache of this page's bin, or on the page (check
    /// mode's pages: free_key for both).
    pub inline fn looksFree(self: *const Page, blk: *const Block) bool {
        if (self.flags & flag_checked != 0) return blk.key == block_mod.free_key;
        return block_mod.isMarkedFree(blk, self.stack_offset);
    }

    /// The key a block free on this page has: the page key; check mode's pages keep free_key
    /// (check.zig reads it as "freed").
    pub inline fn pageFreeKey(self: *const Page) usize {
        return if (self.flags & flag_checked != 0) block_mod.free_key else block_mod.page_key;
    }

    /// The key a block freed into this page from another thread carries on thread_free
    /// (heap.freeToPage, slow.freeHeapless): its bin's cache key, as a flushed cache's
    /// (collect checks it); check mode's free_key.
    pub inline fn remoteKey(self: *const Page) usize {
        return if (self.flags & flag_checked != 0) block_mod.free_key else block_mod.cacheKey(self.stack_offset);
    }

    /// True when a block of this page that should be in a thread cache or on a remote-free
    /// list has its bin's cache key. Else it reports (misuse.zig) and returns false when the
    /// report returns, and the caller drops the block:
    ///   0, page key  a second copy of the block was handed out (malloc cleared its key) or
    ///                went back to the page meanwhile: this one is a double free's (free(3)
    ///                pushes without looking: free_fast.zig)
    ///   any other    written after its free, or by an overflow of the block before it
    ///                (misuse.freeBlockKeyWritten names that block: the likely writer)
    pub inline fn isKeyedFree(self: *const Page, blk: *const Block) bool {
        if (blk.key == block_mod.cacheKey(self.stack_offset)) return true;
        self.reportUnkeyed(blk);
        return false;
    }

    /// A block of this page found without the key its place asks (a cache's or a
    /// remote-free list's: isKeyedFree; the page's: popMany). 0 or the other place's key is
    /// a double free's copy (handed out, or in the other place); anything else was written
    /// after its free. Returns when the report does (contained); the caller drops the block.
    pub noinline fn reportUnkeyed(self: *const Page, blk: *const Block) void {
        const addr = @intFromPtr(blk);
        std.debug.assert(addr >= self.start); // a block start of this page
        std.debug.assert((addr - self.start) % self.block_size == 0);
        if (blk.key == 0 or block_mod.isMarkedFree(blk, self.stack_offset)) return misuse.doubleFreeFound(addr, self.where());
        misuse.freeBlockKeyWritten(addr, if (addr >= self.start + self.block_size) addr - self.block_size else 0, self.where());
    }

    pub const PushResult = enum { ok, emptied, double_free };

    /// Owner: makes a block of this page (a carved block start) free on the page.
    pub fn pushFree(self: *Page, blk: *Block) PushResult {
        const addr = @intFromPtr(blk);
        std.debug.assert(self.flags & flag_unused == 0); // a page in use
        if (std.debug.runtime_safety) std.debug.assert(self.isHeld()); // by the caller: only the holder clears the bit
        const index = self.blockStartIndex(addr).?;
        std.debug.assert(index < self.capacity); // a carved block (below carved_end)
        const bit = self.bitOf(index);
        if (bit.word.* & bit.mask != 0) return .double_free;
        bit.word.* |= bit.mask;
        blk.key = self.pageFreeKey();
        self.free_count += 1;
        std.debug.assert(self.used > 0);
        self.used -= 1;
        std.debug.assert(@as(u64, self.used) + self.free_count == self.capacity);
        return if (self.used == 0) .emptied else .ok;
    }

    /// Any thread: gives back a chain of blocks of this page linked first..last (links
    /// encoded; last's is set here) with one CAS, which also sets the owned bit. True when
    /// the bit was clear: the page was abandoned and the caller holds it now (it must settle
    /// it: thread/heap.zig settleClaimed).
    pub fn pushRemoteChain(self: *Page, first: *Block, last: *Block) bool {
        // Blocks of this page, but no assertion of it: a double free's copy racing the
        // page's release may push onto a descriptor reset meanwhile (start 0, no slices:
        // heap.settleClaimed contains it), and an assertion a program's misuse can falsify
        // would be undefined behaviour in ReleaseFast.
        var word = self.thread_free.load(.monotonic);
        while (true) {
            last.link = block_mod.encode(last, @ptrFromInt(word & ~tf_owned));
            // acq_rel: a claimer must see what the page's last holder wrote before it let go
            word = self.thread_free.cmpxchgWeak(word, @intFromPtr(first) | tf_owned, .acq_rel, .monotonic) orelse
                return word & tf_owned == 0;
        }
    }

    /// The block at the head of thread_free now (any thread; a hint for double frees).
    pub fn remoteHead(self: *const Page) ?*Block {
        return @ptrFromInt(self.thread_free.load(.monotonic) & ~tf_owned);
    }

    /// True while some thread holds the page (its owner heap, or a claimer).
    pub fn isHeld(self: *const Page) bool {
        return self.thread_free.load(.monotonic) & tf_owned != 0;
    }

    /// Takes an abandoned page (the owned bit clear) for the caller; false when another
    /// thread holds it now.
    pub fn tryClaim(self: *Page) bool {
        var word = self.thread_free.load(.monotonic);
        while (word & tf_owned == 0) {
            word = self.thread_free.cmpxchgWeak(word, word | tf_owned, .acquire, .monotonic) orelse return true;
        }
        return false;
    }

    /// The holder lets the page go (owner null already): the owned bit is cleared when no
    /// block waits on thread_free. False when some do: the caller still holds the page and
    /// collects them first (then may give the page back, or try again). Only a push changes
    /// the word meanwhile, and each leaves a block to collect, so retries are bounded by
    /// the blocks in use.
    pub fn tryUnown(self: *Page) bool {
        std.debug.assert(self.slice_offset == 0); // the span's first slice holds thread_free
        std.debug.assert(self.owner.load(.monotonic) == null); // the heap let go first
        return self.thread_free.cmpxchgStrong(tf_owned, 0, .release, .monotonic) == null;
    }

    /// Free room: blocks free on the page, plus those not carved yet.
    pub fn freeRoom(self: *const Page) u32 {
        std.debug.assert(self.capacity <= self.reserved);
        return self.free_count + (self.reserved - self.capacity);
    }

    /// At most an eighth of the page free (mimalloc's "mostly used"): not worth listing for
    /// other heaps; the next frees into it decide again.
    pub fn isMostlyUsed(self: *const Page) bool {
        std.debug.assert(self.reserved >= 1); // a page in use (an unused one has no blocks to count)

        return self.freeRoom() <= self.reserved / 8;
    }

    /// Owner: makes every block other threads gave back free on the page. Returns how many.
    /// The walk is bounded by `used` (no more blocks can be out); a block seen twice (a
    /// double free) ends it, and is reported or contained (misuse.doubleFreeFound).
    pub fn collect(self: *Page) u32 {
        std.debug.assert(self.slice_offset == 0); // the span's first slice holds thread_free
        std.debug.assert(self.isHeld()); // by the caller
        if (self.thread_free.load(.monotonic) == tf_owned) return 0;
        var node: ?*Block = @ptrFromInt(self.thread_free.swap(tf_owned, .acquire) & ~tf_owned);
        var count: u32 = 0;
        while (node) |blk| {
            const addr = @intFromPtr(blk);
            const index = self.blockStartIndex(addr) orelse misuse.corrupted("a page's remote-free list names a block outside it", addr);
            // A block free on the page already (before this batch, or earlier in it) is a
            // double free. Tested before the length bound: a block pushed twice (a second
            // thread freed it again while it waited here) rewrote its link, so the list
            // loops back to it, and the loop must read as a double free, not corruption.
            const bit = self.bitOf(index);
            if (bit.word.* & bit.mask != 0) {
                misuse.doubleFreeFound(addr, self.where());
                break; // the rest of the list came before the second push: dropped, not followed
            }
            if (count == self.used) misuse.corrupted("a page's remote-free list is longer than its blocks in use", addr);
            // Keyed free by the free that pushed it: a key cleared since means a second
            // copy of the block (a double free free(3) did not look at) was handed out, and
            // its link may be the program's data now: dropped with the rest of the list.
            if (self.flags & flag_checked == 0 and !self.isKeyedFree(blk)) break;
            const next = block_mod.decode(blk);
            bit.word.* |= bit.mask;
            blk.key = self.pageFreeKey();
            count += 1;
            node = if (next == 0) null else if (self.blockStartIndex(next) != null) @ptrFromInt(next) else blk: {
                misuse.freedBlockWritten(addr, self.where(), 0);
                break :blk null;
            };
        }
        std.debug.assert(count <= self.used); // the length bound above
        self.used -= count;
        self.free_count += count;
        std.debug.assert(@as(u64, self.used) + self.free_count == self.capacity);
        return count;
    }

    /// Owner: carves the next run of blocks (each free on the page, its key set). Returns how many.
    pub fn extend(self: *Page) u32 {
        std.debug.assert(self.slice_offset == 0); // the owner's page,
        std.debug.assert(self.flags & flag_unused == 0); // in use
        std.debug.assert(self.capacity <= self.reserved);
        const left = self.reserved - self.capacity;
        if (left == 0) return 0;
        const want = @max(extend_blocks_min, extend_bytes_max / self.block_size);
        const count: u32 = @intCast(@min(left, want));
        const first = self.start + @as(usize, self.capacity) * self.block_size;
        const key = if (self.flags & flag_checked != 0) block_mod.fresh_key else block_mod.page_key;
        for (0..count) |i| {
            const blk: *Block = @ptrFromInt(first + i * self.block_size);
            blk.key = key;
            const bit = self.bitOf(self.capacity + @as(u32, @intCast(i)));
            bit.word.* |= bit.mask;
        }
        if (self.free_count == 0) self.free_cursor = self.capacity / 64;
        self.free_count += count;
        self.capacity += count;
        self.carved_end = first + @as(usize, count) * self.block_size;
        self.syncSpan();
        std.debug.assert(count >= 1); // some room was left
        std.debug.assert(self.carved_end == self.start + @as(usize, self.capacity) * self.block_size);
        std.debug.assert(self.capacity <= self.reserved);
        std.debug.assert(@as(u64, self.used) + self.free_count == self.capacity);
        return count;
    }

    pub fn hasFree(self: *const Page) bool {
        return self.free_count > 0 or self.capacity < self.reserved;
    }

    pub const Invalid = error{
        PageNotInUse,
        CarvedBeyondReserve,
        CarvedEndWrong,
        CountsDisagree,
        BitsDisagree,
        BitBeyondCapacity,
        CursorOutOfRange,
        FastMagicStale,
        StackOffsetWrong,
        SpanCopyStale,
        FreeBlockKeyWrong,
        RemoteListTooLong,
        RemoteListForeignBlock,
        RemoteBlockFreeOnPage,
        PageNotHeld,
    };

    /// Checks a page in use against its invariants (the owner's thread only; tests and
    /// debug builds): carved blocks = used + free_count, free_count = the bits set, no bit
    /// past the carved blocks, every free block keyed, carved_end and fast_magic agree with
    /// the page and every slice of the span carries the same first line, and the remote
    /// list holds at most `used` blocks of this page, none of them free on the page.
    /// Bounded by the page's bitmap and `used`.
    pub fn validate(self: *const Page) Invalid!void {
        if (self.flags & flag_unused != 0 or self.bits == null) return error.PageNotInUse;
        if (self.capacity > self.reserved or @as(usize, self.reserved) * self.block_size > @as(usize, self.slice_count) * size_class.slice_size)
            return error.CarvedBeyondReserve;
        if (self.carved_end != self.start + @as(usize, self.capacity) * self.block_size) return error.CarvedEndWrong;
        if (@as(u64, self.used) + self.free_count != self.capacity) return error.CountsDisagree;
        const bits = self.bits.?;
        const words = (self.capacity + 63) / 64;
        if (self.free_cursor > words) return error.CursorOutOfRange;
        var set: u64 = 0;
        for (bits[0..words], 0..) |word, w| {
            set += @popCount(word);
            if (w + 1 == words and self.capacity % 64 != 0 and word >> @intCast(self.capacity % 64) != 0) return error.BitBeyondCapacity;
            var rest = word;
            while (rest != 0) : (rest &= rest - 1) {
                const blk: *const Block = @ptrFromInt(self.start + (w * 64 + @ctz(rest)) * self.block_size);
                if (blk.key != self.pageFreeKey() and !(self.flags & flag_checked != 0 and blk.key == block_mod.fresh_key)) return error.FreeBlockKeyWrong;
            }
        }
        if (set != self.free_count) return error.BitsDisagree;
        if (self.fast_magic != self.fastMagic()) return error.FastMagicStale;
        if (self.stack_offset != routing.stackOffset(self.bin)) return error.StackOffsetWrong;
        const span: [*]const Page = @ptrCast(self);
        for (1..self.slice_count) |k| {
            const c = &span[k];
            if (c.slice_offset != k or c.start != self.start or c.div_magic != self.div_magic or c.fast_magic != self.fast_magic or
                c.carved_end != self.carved_end or c.bin != self.bin or c.stack_offset != self.stack_offset or c.block_size != self.block_size or (c.flags ^ self.flags) & slow_flags != 0)
                return error.SpanCopyStale;
        }
        if (!self.isHeld()) return error.PageNotHeld;
        var node: ?*Block = @ptrFromInt(self.thread_free.load(.acquire) & ~tf_owned);
        var count: u32 = 0;
        while (node) |blk| {
            if (count == self.used) return error.RemoteListTooLong;
            const index = self.blockStartIndex(@intFromPtr(blk)) orelse return error.RemoteListForeignBlock;
            const bit = self.bitOf(index);
            if (bit.word.* & bit.mask != 0) return error.RemoteBlockFreeOnPage;
            count += 1;
            const next = block_mod.decode(blk);
            node = if (next == 0) null else if (self.blockStartIndex(next) != null) @ptrFromInt(next) else return error.RemoteListForeignBlock;
        }
    }
};

/// The page every bin points at before it has one: no free blocks, nothing carved.
pub var empty_page: Page = .{};

test "carve, pop, push, collect, double free at the page" {
    block_mod.initSecrets();
    var memory: [size_class.slice_size]u8 align(16) = undefined;
    var bits: [64]u64 = undefined;
    var page: Page = .{};
    var owner: u8 = 0;
    const bin = size_class.tinyBin(48);
    page.init(bin, @intFromPtr(&memory), 1, &bits, false, &owner);
    try std.testing.expectEqual(@as(u32, size_class.slice_size / 48), page.reserved);
    try std.testing.expect(page.popFree() == null);
    try std.testing.expect(page.extend() > 0);
    const a = page.popFree().?;
    const b = page.popFree().?;
    try std.testing.expectEqual(@intFromPtr(a) + 48, @intFromPtr(b));
    try std.testing.expect(page.isBlockStart(@intFromPtr(b)));
    try std.testing.expect(!page.isBlockStart(@intFromPtr(b) + 16));
    try std.testing.expect(!page.isBlockStart(page.carved_end));
    try std.testing.expectEqual(@as(?usize, @intFromPtr(b)), page.blockContaining(@intFromPtr(b) + 47));
    try std.testing.expectEqual(Page.PushResult.ok, page.pushFree(a));
    try std.testing.expect(page.isOnFreeList(@intFromPtr(a)));
    try std.testing.expectEqual(Page.PushResult.double_free, page.pushFree(a));
    try std.testing.expect(!page.pushRemoteChain(b, b)); // held: no claim
    try std.testing.expectEqual(@as(u32, 1), page.used);
    try std.testing.expectEqual(@as(u32, 1), page.collect());
    try std.testing.expectEqual(@as(u32, 0), page.used);
    var n: u32 = 0;
    while (page.popFree() != null) n += 1;
    try std.testing.expectEqual(page.capacity, n);
}

test "a block whose key was cleared (a double free's copy handed out) is dropped by a refill and by collect, and counted contained" {
    block_mod.initSecrets();
    var memory: [size_class.slice_size]u8 align(16) = undefined;
    var bits: [64]u64 = undefined;
    var page: Page = .{};
    var heap_a: u8 = 0;
    page.init(size_class.tinyBin(64), @intFromPtr(&memory), 1, &bits, false, &heap_a);
    _ = page.extend();
    const before = misuse.contained_double_frees.load(.monotonic);
    // free on the page, but handed out meanwhile by its other copy (malloc cleared the key)
    const first: *Block = @ptrFromInt(page.start);
    first.key = 0;
    var out: [2]*Block = undefined;
    const free_before = page.free_count;
    try std.testing.expectEqual(@as(u32, 1), page.popMany(&out)); // two taken, one handed over
    try std.testing.expect(out[0] != first);
    try std.testing.expectEqual(free_before - 2, page.free_count); // both off the page: the first is live
    try std.testing.expectEqual(@as(u32, 2), page.used);
    // on thread_free, then handed out by its other copy: collect stops there
    out[0].key = block_mod.cacheKey(page.stack_offset);
    _ = page.pushRemoteChain(out[0], out[0]);
    out[0].key = 0;
    try std.testing.expectEqual(@as(u32, 0), page.collect());
    try std.testing.expectEqual(@as(u32, 2), page.used);
    try std.testing.expectEqual(before + 2, misuse.contained_double_frees.load(.monotonic));
}

test "the block-start test agrees with division for every bin" {
    for (0..size_class.bin_count) |bin| {
        var bits: [16 * 64]u64 = undefined;
        var span = [_]Page{.{}} ** size_class.max_page_slices;
        for (1..span.len) |k| span[k].slice_offset = @intCast(k);
        const page = &span[0];
        const slices = size_class.binPageSlices(bin);
        const start: usize = 1 << 30;
        var owner: u8 = 0;
        page.init(bin, start, slices, &bits, false, &owner);
        page.capacity = page.reserved;
        page.carved_end = start + @as(usize, page.reserved) * page.block_size;
        const bs = page.block_size;
        var offset: usize = 0;
        const end = slices * size_class.slice_size;
        const step: usize = if (bs <= 64) 1 else 7;
        while (offset < end) : (offset += step) {
            const expect_start = offset % bs == 0 and offset / bs < page.reserved;
            const index = page.blockStartIndex(start + offset);
            try std.testing.expectEqual(expect_start, index != null);
            if (index) |i| try std.testing.expectEqual(offset / bs, i);
        }
    }
}

test "ownership: a page given up belongs to nobody; the first push or claim takes it, once" {
    block_mod.initSecrets();
    var memory: [size_class.slice_size]u8 align(16) = undefined;
    var bits: [64]u64 = undefined;
    var page: Page = .{};
    var heap_a: u8 = 0;
    const bin = size_class.tinyBin(64);
    page.init(bin, @intFromPtr(&memory), 1, &bits, false, &heap_a);
    try std.testing.expect(page.isHeld());
    try std.testing.expect(!page.tryClaim()); // held by its heap
    _ = page.extend();
    var out: [4]*Block = undefined;
    try std.testing.expectEqual(@as(u32, 4), page.popMany(&out));
    // the heap gives it up: nobody holds it
    page.owner.store(null, .monotonic);
    try std.testing.expect(page.tryUnown());
    try std.testing.expect(!page.isHeld());
    // the first push takes it; the next one does not
    out[0].key = block_mod.cacheKey(page.stack_offset);
    try std.testing.expect(page.pushRemoteChain(out[0], out[0]));
    try std.testing.expect(!page.pushRemoteChain(out[1], out[1]));
    // while blocks wait on thread_free the holder cannot let go: it collects first
    try std.testing.expect(!page.tryUnown());
    try std.testing.expectEqual(@as(u32, 2), page.collect());
    try std.testing.expect(page.tryUnown());
    // an allocating thread claims it; a push then finds it held
    try std.testing.expect(page.tryClaim());
    try std.testing.expect(!page.tryClaim());
    try std.testing.expect(!page.pushRemoteChain(out[2], out[2]));
    try std.testing.expectEqual(@as(u32, 1), page.collect());
    try std.testing.expectEqual(@as(u32, 1), page.used);
    try std.testing.expect(!page.isMostlyUsed());
}
