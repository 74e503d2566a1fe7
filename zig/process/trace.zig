//! trace.zig — HAKMEM_TRACE=path: a recording of every allocation call the program makes
//! through the libc names (malloc, calloc, realloc, free, the aligned ones,
//! malloc_usable_size), for bench/c/replay.c and src/trace.ts to replay under any
//! allocator. The format is abi.zig's ("allocation traces"); this file writes it.
//!
//! A traced process's threads keep the empty sentinel cache (thread.zig, as in check
//! mode), so every malloc and free reaches its slow path, where alloc.zig and preload.zig
//! call in here; untraced, the fast paths are exactly as without this file.
//!
//!   thread ──TLS──> Recorder (mmap'ed, one per live thread; on the registry)
//!                    ├─ payload[64 KiB + 32]: events of this thread, appended
//!                    ├─ committed: (events << 32 | bytes) published after each event,
//!                    │            what the exit flush may write while the thread runs on
//!                    ├─ next_id .. id_end: this thread's chunk of object ids
//!                    └─ flush_lock: the thread's own flush vs the exit flush
//!
//!   the id table: address -> (id, freed?) in 64 shards, each a lock and an open-addressing
//!   array (linear probing; mmap'ed, grown by a new mapping and a rehash that drops freed
//!   entries). An entry stays after its free (marked freed), so a second free of the same
//!   address is written as a free of the same id: the replayer reports a double free.
//!   A free takes the address out (marks it) before the real free, a malloc puts it in after
//!   the real malloc: an address handed out again is never confused with its old object.
//!
//! A full payload goes to the file in one write (O_APPEND: blocks of different threads
//! never interleave inside a block). Thread exit (a pthread key's destructor) writes
//! thread_end and flushes; process exit (process.zig's fini) flushes every thread's
//! committed events and closes the recording (later calls are not recorded). Events of a
//! thread after its exit destructor (other destructors freeing) are not recorded.
//! fork: with %p in the path the child records into its own file from its first call on
//! (objects inherited from the parent are unknown there: their frees are free_unknown);
//! without %p the child does not record. Nothing here calls malloc or libc's stdio: raw
//! syscalls (write, open, mmap), the coarse clock, pthread_setspecific for a low key.
const std = @import("std");
const os = @import("../base/os.zig");
const config = @import("../settings/config.zig");
const abi = @import("../abi.zig");
const Lock = @import("../base/lock.zig").Lock;
const linux = std.os.linux;
const Event = abi.TraceEvent;

const payload_max = abi.trace_block_payload_max;
const event_max = abi.trace_event_bytes_max;
/// Events between two looks at the clock.
const clock_every = 16;

// ---------------------------------------------------------------- per-thread recorder

const Recorder = struct {
    len: u32 = 0,
    events: u32 = 0,
    committed: std.atomic.Value(u64) = .init(0),
    thread: u32 = 0,
    next_id: u64 = 0,
    id_end: u64 = 0,
    last_ms: u64 = 0,
    clock_countdown: u32 = 0,
    flush_lock: Lock = .{},
    registry_next: ?*Recorder = null,
    registry_prev: ?*Recorder = null,
    payload: [payload_max + event_max]u8 = undefined,

    fn put(self: *Recorder, byte: u8) void {
        std.debug.assert(self.len < self.payload.len);
        self.payload[self.len] = byte;
        self.len += 1;
    }

    fn putVarint(self: *Recorder, value: u64) void {
        var v = value;
        var n: usize = 0;
        while (v >= 0x80 and n < 10) : (n += 1) {
            self.put(@as(u8, @truncate(v)) | 0x80);
            v >>= 7;
        }
        std.debug.assert(v < 0x80); // the last byte holds what is left: no bit lost
        std.debug.assert(n < 10); // (64 bits take 10 groups of 7 at most: the bound never cut it)
        self.put(@truncate(v));
    }

    /// An object id, relative to the id this thread's next allocation gets.
    fn putId(self: *Recorder, id: u64) void {
        const before = self.len;
        const delta: i64 = @bitCast(self.next_id -% 1 -% id);
        self.putVarint(@bitCast((delta << 1) ^ (delta >> 63)));
        std.debug.assert(self.len > before); // a byte at least,
        std.debug.assert(self.len - before <= 10); // a varint's 10 at most
    }

    fn tag(self: *Recorder, event: Event) void {
        // an event starts with its tag, with room for the whole event (done flushed before)
        std.debug.assert(self.len <= payload_max - event_max);
        std.debug.assert(@intFromEnum(event) < 16); // (abi.zig: a tag's low bits)
        self.put(@intFromEnum(event));
    }

    /// A time event when the coarse clock moved (looked at every clock_every events).
    fn tick(self: *Recorder) void {
        std.debug.assert(self.clock_countdown <= clock_every);
        if (self.clock_countdown > 0) {
            self.clock_countdown -= 1;
            return;
        }
        self.clock_countdown = clock_every;
        const now = os.nowMs();
        if (now <= self.last_ms) return;
        self.tag(.time);
        self.putVarint(now - self.last_ms);
        self.last_ms = now;
        self.done();
    }

    /// An id_base event when this thread's chunk of ids is used up.
    fn openChunk(self: *Recorder) void {
        std.debug.assert(self.next_id <= self.id_end); // ids are taken within the chunk
        if (self.next_id != self.id_end) return;
        const base = next_chunk.fetchAdd(abi.trace_id_chunk, .monotonic);
        self.tag(.id_base);
        self.putVarint(base);
        self.done();
        self.next_id = base;
        self.id_end = base + abi.trace_id_chunk;
        std.debug.assert(base % abi.trace_id_chunk == 0); // chunks are handed out whole
    }

    /// The id the next allocation takes (a new chunk first when this one is used up).
    fn takeId(self: *Recorder) u64 {
        self.openChunk();
        std.debug.assert(self.next_id < self.id_end); // an id of the chunk the file names
        const id = self.next_id;
        self.next_id += 1;
        std.debug.assert(self.next_id <= self.id_end); // (the chunk's last id at most)
        return id;
    }

    /// An allocation event (malloc, calloc, or aligned with `align_log2`): the id it takes.
    fn allocation(self: *Recorder, event: Event, align_log2: u64, size: u64) u64 {
        std.debug.assert(event == .malloc or event == .calloc or event == .aligned);
        std.debug.assert(event == .aligned or align_log2 == 0); // only an aligned event has one
        self.openChunk();
        self.tag(event);
        if (event == .aligned) self.putVarint(align_log2);
        self.putVarint(size);
        const id = self.takeId();
        self.done();
        return id;
    }

    /// A realloc of `old_id` to `size`: the id the result takes.
    fn reallocation(self: *Recorder, old_id: u64, size: u64) u64 {
        self.openChunk();
        self.tag(.realloc);
        self.putId(old_id); // relative to the id the result is about to take
        self.putVarint(size);
        const id = self.takeId();
        self.done();
        std.debug.assert(id != old_id); // the result is a new object (ids are never reused)
        return id;
    }

    /// free or usable_size of `id`.
    fn ofObject(self: *Recorder, event: Event, id: u64) void {
        std.debug.assert(event == .free or event == .usable_size);
        self.tag(event);
        self.putId(id);
        self.done();
    }

    /// One event is complete: publish it, flush a full payload.
    fn done(self: *Recorder) void {
        std.debug.assert(self.len > 0); // the event's tag at least
        self.events += 1;
        self.committed.store(@as(u64, self.events) << 32 | self.len, .release);
        if (self.len > payload_max - event_max) self.flush();
        std.debug.assert(self.len <= payload_max - event_max); // room for the next event whole
    }

    fn flush(self: *Recorder) void {
        std.debug.assert(self.len <= self.payload.len);
        self.flush_lock.acquire();
        defer self.flush_lock.release();
        if (!closed.load(.acquire) and self.len > 0) writeBlock(self.thread, self.payload[0..self.len], self.events);
        self.len = 0;
        self.events = 0;
        self.committed.store(0, .release);
    }
};

threadlocal var current: ?*Recorder = null;
/// Set once the thread's exit destructor ran: its later calls are not recorded.
threadlocal var exited: bool = false;

var registry_lock: Lock = .{};
var registry_first: ?*Recorder = null;
var threads_begun: std.atomic.Value(u32) = .init(0);
var threads_ended: std.atomic.Value(u32) = .init(0);
var next_chunk: std.atomic.Value(u64) = .init(0);
/// True before start and after finish (or a failed write): nothing is recorded.
var closed: std.atomic.Value(bool) = .init(true);

/// The calling thread's recorder, made (with its thread_begin) on its first call; null
/// when not recording.
fn recorder() ?*Recorder {
    if (closed.load(.monotonic)) return null;
    if (current) |r| return r;
    if (exited) return null;
    return create();
}

noinline fn create() ?*Recorder {
    std.debug.assert(current == null); // one recorder per thread
    std.debug.assert(!exited); // none after the thread's exit destructor
    const bytes = std.mem.alignForward(usize, @sizeOf(Recorder), os.page_size);
    const memory = os.map(bytes) orelse return null;
    const r: *Recorder = @ptrCast(@alignCast(memory));
    r.* = .{};
    r.thread = threads_begun.fetchAdd(1, .monotonic);
    r.last_ms = start_ms;
    registry_lock.acquire();
    r.registry_next = registry_first;
    if (registry_first) |f| f.registry_prev = r;
    registry_first = r;
    registry_lock.release();
    current = r;
    if (key_valid) _ = pthread_setspecific(exit_key, r);
    r.tag(.thread_begin);
    r.putVarint(threads_ended.load(.monotonic));
    r.done();
    std.debug.assert(current == r); // the thread's recorder from now on
    std.debug.assert(r.events == 1); // thread_begin first
    return r;
}

// ---------------------------------------------------------------- thread exit

const pthread_key_t = c_uint;
extern "c" fn pthread_key_create(key: *pthread_key_t, destructor: ?*const fn (?*anyopaque) callconv(.c) void) c_int;
extern "c" fn pthread_setspecific(key: pthread_key_t, value: ?*const anyopaque) c_int;
var exit_key: pthread_key_t = 0;
var key_valid = false;

fn exitDestructor(value: ?*anyopaque) callconv(.c) void {
    const r: *Recorder = @ptrCast(@alignCast(value orelse return));
    std.debug.assert(!exited); // the key's value is set once: one destructor call
    std.debug.assert(current == r or current == null); // (null: a forked child that does not record)
    current = null;
    exited = true;
    if (!closed.load(.monotonic)) {
        r.tag(.thread_end);
        r.done();
    }
    r.flush();
    _ = threads_ended.fetchAdd(1, .monotonic);
    registry_lock.acquire();
    if (r.registry_prev) |p| p.registry_next = r.registry_next else registry_first = r.registry_next;
    if (r.registry_next) |n| n.registry_prev = r.registry_prev;
    registry_lock.release();
    os.unmap(@ptrCast(r), std.mem.alignForward(usize, @sizeOf(Recorder), os.page_size));
}

// ---------------------------------------------------------------- the file

var fd: i32 = -1;
var file_dev: u64 = 0;
var file_ino: u64 = 0;
var start_ms: u64 = 0;
/// The file descriptor is moved at or above this, out of the program's way.
const fd_min = 100;

/// Opens the recording (process initialisation, config.trace set): the file named by
/// HAKMEM_TRACE (%p: the pid), its header, the exit key. Says on stderr when it cannot
/// (false: nothing is recorded, and the caller clears config.trace).
pub fn start() bool {
    std.debug.assert(closed.load(.monotonic)); // not recording yet (init, or a forked child)
    if (!key_valid) key_valid = pthread_key_create(&exit_key, exitDestructor) == 0;
    const template = config.traceFile() orelse return false;
    var path_buf: [config.stats_file_max + 32:0]u8 = undefined;
    const path = config.pathWithPid(template, &path_buf) orelse return false;
    const flags: linux.O = .{ .ACCMODE = .WRONLY, .CREAT = true, .TRUNC = true, .APPEND = true, .CLOEXEC = true };
    const rc = linux.open(path.ptr, flags, 0o644);
    if (linux.E.init(rc) != .SUCCESS) {
        os.printStderr("hakmem: cannot open HAKMEM_TRACE {s} (errno {d}); not recording\n", .{ path, @intFromEnum(linux.E.init(rc)) });
        return false;
    }
    const F_DUPFD_CLOEXEC = 1030;
    const moved = linux.fcntl(@intCast(rc), F_DUPFD_CLOEXEC, fd_min);
    if (linux.E.init(moved) == .SUCCESS) {
        _ = linux.close(@intCast(rc));
        fd = @intCast(moved);
    } else fd = @intCast(rc);
    var st: linux.Stat = undefined;
    if (linux.E.init(linux.fstat(fd, &st)) != .SUCCESS) return false;
    file_dev = st.dev;
    file_ino = st.ino;
    start_ms = os.nowMs();
    var ts: linux.timespec = undefined;
    _ = linux.clock_gettime(.REALTIME, &ts);
    const header: abi.TraceFileHeader = .{
        .magic = abi.trace_magic,
        .version = abi.trace_version,
        .header_bytes = @sizeOf(abi.TraceFileHeader),
        .block_header_bytes = @sizeOf(abi.TraceBlockHeader),
        .pid = @intCast(linux.getpid()),
        .id_chunk = abi.trace_id_chunk,
        .start_unix_s = @truncate(@as(u64, @intCast(ts.sec))),
        .reserved = 0,
    };
    if (!writeAll(&.{std.mem.asBytes(&header)})) return false;
    std.debug.assert(fd >= 0); // the file every block goes to
    closed.store(false, .release);
    return true;
}

/// True when fd still is the file start opened (a program may close every descriptor).
fn sameFile() bool {
    std.debug.assert(fd >= 0); // (start opened it before anything was recorded)
    var st: linux.Stat = undefined;
    if (linux.E.init(linux.fstat(fd, &st)) != .SUCCESS) return false;
    return st.dev == file_dev and st.ino == file_ino;
}

fn writeBlock(thread_index: u32, payload: []const u8, events: u32) void {
    std.debug.assert(payload.len <= payload_max + event_max);
    std.debug.assert(payload.len > 0); // (callers skip an empty payload)
    std.debug.assert(events >= 1); // every event is one byte at least
    std.debug.assert(events <= payload.len);
    const header: abi.TraceBlockHeader = .{
        .magic = abi.trace_block_magic,
        .pid = @intCast(linux.getpid()),
        .thread = thread_index,
        .events = events,
        .payload_bytes = @intCast(payload.len),
        .checksum = abi.traceChecksum(payload),
    };
    if (!sameFile() or !writeAll(&.{ std.mem.asBytes(&header), payload })) closed.store(true, .release);
}

/// One writev of all parts (O_APPEND: one block lands whole); false on any failure.
fn writeAll(parts: []const []const u8) bool {
    var iov: [2]std.posix.iovec_const = undefined;
    std.debug.assert(parts.len <= iov.len);
    std.debug.assert(parts.len > 0); // a header at least
    std.debug.assert(fd >= 0);
    var total: usize = 0;
    for (parts, 0..) |p, i| {
        iov[i] = .{ .base = p.ptr, .len = p.len };
        total += p.len;
    }
    const rc = linux.writev(fd, &iov, parts.len);
    return linux.E.init(rc) == .SUCCESS and rc == total;
}

/// Process exit: no more recording, then every thread's committed events to the file.
/// Closed first: a thread still running cannot flush (again) what is written here.
pub fn finish() void {
    if (closed.swap(true, .acq_rel)) return;
    registry_lock.acquire();
    defer registry_lock.release();
    var it = registry_first;
    var bound: usize = 1 << 20;
    while (it) |r| : (it = r.registry_next) {
        bound -= 1;
        if (bound == 0) break;
        r.flush_lock.acquire();
        const c = r.committed.load(.acquire);
        const len: u32 = @truncate(c);
        if (len > 0) writeBlock(r.thread, r.payload[0..len], @intCast(c >> 32));
        r.committed.store(0, .release);
        r.flush_lock.release();
    }
    std.debug.assert(closed.load(.monotonic)); // nothing is recorded after this
}

/// In a forked child: its own file with %p, else no recording. The child's only thread
/// keeps its recorder (emptied: the parent writes those events) as thread 0.
pub fn afterForkInChild() void {
    registry_lock.resetInChild();
    for (&shards) |*s| s.lock.resetInChild();
    std.debug.assert(!registry_lock.isHeld()); // the child's first recorder can register
    if (closed.load(.monotonic)) return;
    closed.store(true, .monotonic);
    const template = config.traceFile() orelse return;
    if (std.mem.indexOf(u8, template, "%p") == null) return;
    if (fd >= 0) _ = linux.close(fd);
    for (&shards) |*s| s.clear();
    threads_begun.store(0, .monotonic);
    threads_ended.store(0, .monotonic);
    next_chunk.store(0, .monotonic);
    const mine = current;
    registry_first = null;
    current = null;
    if (!start()) return;
    if (mine) |r| {
        // the recorder is reused as the child's first thread (its parent-side neighbours
        // on the registry do not exist here; their memory stays mapped, unused)
        const keep = r;
        keep.* = .{};
        keep.thread = threads_begun.fetchAdd(1, .monotonic);
        keep.last_ms = start_ms;
        registry_first = keep;
        current = keep;
        keep.tag(.thread_begin);
        keep.putVarint(0);
        keep.done();
        std.debug.assert(keep.thread == 0); // the child's only thread is its first
    }
}

// ---------------------------------------------------------------- the id table

const Entry = extern struct {
    addr: usize,
    /// id << 1 | freed
    word: u64,
};

const Lookup = union(enum) { absent, live: u64, freed: u64 };

const shard_count = 64;
const shard_initial_entries = 1024;
/// A shard's array never grows beyond this (16 bytes an entry): recording stops instead.
const shard_max_entries = 1 << 26;

const Shard = struct {
    lock: Lock align(64) = .{},
    entries: ?[*]Entry = null,
    capacity: usize = 0,
    used: usize = 0,
    live: usize = 0,

    fn slotOf(self: *Shard, addr: usize) *Entry {
        std.debug.assert(addr != 0); // 0 marks an empty slot (NULL is never recorded)
        std.debug.assert(self.capacity > 0);
        std.debug.assert(std.math.isPowerOfTwo(self.capacity)); // probes wrap with a mask
        std.debug.assert(self.used * 2 <= self.capacity); // an empty slot ends every probe
        const mask = self.capacity - 1;
        var i: usize = @truncate(hash(addr) & mask);
        var probes: usize = 0;
        while (probes < self.capacity) : (probes += 1) {
            const e = &self.entries.?[i];
            if (e.addr == addr or e.addr == 0) return e;
            i = (i + 1) & mask;
        }
        unreachable; // used <= capacity / 2
    }

    fn find(self: *Shard, addr: usize) Lookup {
        std.debug.assert(addr != 0); // 0 marks an empty slot (NULL is never recorded)
        if (self.capacity == 0) return .absent;
        const e = self.slotOf(addr);
        if (e.addr == 0) return .absent;
        return if (e.word & 1 != 0) .{ .freed = e.word >> 1 } else .{ .live = e.word >> 1 };
    }

    /// False when the table cannot grow (out of memory, or at its bound).
    fn putLive(self: *Shard, addr: usize, id: u64) bool {
        if ((self.used + 1) * 2 > self.capacity and !self.rehash()) return false;
        const e = self.slotOf(addr);
        if (e.addr == 0) {
            e.addr = addr;
            self.used += 1;
        } else std.debug.assert(e.word & 1 != 0); // a live address is not handed out twice
        e.word = id << 1;
        self.live += 1;
        std.debug.assert(self.live <= self.used);
        std.debug.assert(self.used * 2 <= self.capacity); // room kept: probes end at an empty slot
        return true;
    }

    fn markFreed(self: *Shard, addr: usize) Lookup {
        std.debug.assert(self.live <= self.used);
        const found = self.find(addr);
        if (found == .live) {
            self.slotOf(addr).word |= 1;
            self.live -= 1;
        }
        std.debug.assert(self.live <= self.used); // a freed entry stays (used), not live
        return found;
    }

    /// A new array holding the live entries (freed ones are dropped), at least twice them.
    fn rehash(self: *Shard) bool {
        const wanted = @max(shard_initial_entries, std.math.ceilPowerOfTwo(usize, (self.live + 1) * 4) catch return false);
        if (wanted > shard_max_entries) return false;
        const memory = os.map(wanted * @sizeOf(Entry)) orelse return false;
        const old = self.entries;
        const old_capacity = self.capacity;
        self.entries = @ptrCast(@alignCast(memory));
        self.capacity = wanted;
        self.used = 0;
        if (old) |o| {
            for (o[0..old_capacity]) |e| {
                if (e.addr == 0 or e.word & 1 != 0) continue;
                const slot = self.slotOf(e.addr);
                slot.* = e;
                self.used += 1;
            }
            os.unmap(@ptrCast(o), old_capacity * @sizeOf(Entry));
        }
        std.debug.assert(self.used == self.live);
        std.debug.assert(std.math.isPowerOfTwo(self.capacity)); // (slotOf probes with a mask)
        std.debug.assert(self.used * 2 <= self.capacity); // at least twice the live entries: room for the next
        return true;
    }

    fn clear(self: *Shard) void {
        if (self.entries) |o| os.unmap(@ptrCast(o), self.capacity * @sizeOf(Entry));
        self.* = .{};
    }
};

var shards: [shard_count]Shard = [_]Shard{.{}} ** shard_count;

comptime {
    std.debug.assert(shard_count == 1 << (64 - 58)); // shardOf takes a hash's top 6 bits
}

fn hash(addr: usize) u64 {
    return (@as(u64, addr) >> 4) *% 0x9E3779B97F4A7C15;
}

fn shardOf(addr: usize) *Shard {
    return &shards[@intCast(hash(addr) >> 58)];
}

fn remember(addr: usize, id: u64) void {
    const s = shardOf(addr);
    std.debug.assert(addr != 0); // (NULL is never recorded: 0 marks an empty slot)
    s.lock.acquire();
    const ok = s.putLive(addr, id);
    s.lock.release();
    if (!ok) closed.store(true, .release);
}

fn forget(addr: usize) Lookup {
    const s = shardOf(addr);
    s.lock.acquire();
    defer s.lock.release();
    const found = s.markFreed(addr);
    std.debug.assert(found == .absent or s.find(addr) == .freed); // out of the table's live objects now
    return found;
}

fn lookUp(addr: usize) Lookup {
    std.debug.assert(addr != 0); // (NULL is never recorded)
    const s = shardOf(addr);
    s.lock.acquire();
    defer s.lock.release();
    return s.find(addr);
}

// ---------------------------------------------------------------- what the exports call

pub const AllocKind = enum { malloc, calloc };

/// After a malloc (or calloc) returned `ptr` (nothing is written for NULL).
pub fn allocated(kind: AllocKind, size: usize, ptr: ?*anyopaque) void {
    const addr = @intFromPtr(ptr orelse return);
    std.debug.assert(addr % 16 == 0); // a block malloc handed out (its alignment)
    const r = recorder() orelse return;
    r.tick();
    remember(addr, r.allocation(if (kind == .malloc) .malloc else .calloc, 0, size));
}

/// After an aligned allocation returned `ptr`.
pub fn alignedAllocated(alignment: usize, size: usize, ptr: ?*anyopaque) void {
    const addr = @intFromPtr(ptr orelse return);
    std.debug.assert(std.math.isPowerOfTwo(alignment)); // (preload.aligned rounded or refused it)
    std.debug.assert(addr % alignment == 0); // the block handed out
    const r = recorder() orelse return;
    r.tick();
    remember(addr, r.allocation(.aligned, std.math.log2_int_ceil(usize, @max(alignment, 1)), size));
}

/// Before free(ptr) (NULL is not written). A second free of an address is written as a
/// free of its old id and flushed at once: the program is about to be stopped for it.
pub fn freeing(ptr: ?*anyopaque) void {
    const addr = @intFromPtr(ptr orelse return);
    const r = recorder() orelse return;
    r.tick();
    switch (forget(addr)) {
        .absent => {
            r.tag(.free_unknown);
            r.done();
        },
        .live => |id| r.ofObject(.free, id),
        .freed => |id| {
            r.ofObject(.free, id);
            r.flush();
        },
    }
}

/// Before realloc(ptr, size) with ptr != NULL, size != 0: takes ptr out of the table.
pub fn reallocating(ptr: *anyopaque) Lookup {
    if (closed.load(.monotonic)) return .absent;
    return forget(@intFromPtr(ptr));
}

/// After that realloc returned `fresh`: a realloc event (a malloc one when the old pointer
/// was unknown). A failed realloc (NULL) writes nothing and leaves the old object live.
pub fn reallocated(old: Lookup, ptr: *anyopaque, size: usize, fresh: ?*anyopaque) void {
    const fresh_addr = @intFromPtr(fresh orelse {
        if (old == .live) remember(@intFromPtr(ptr), old.live);
        return;
    });
    const r = recorder() orelse return;
    r.tick();
    switch (old) {
        .absent => remember(fresh_addr, r.allocation(.malloc, 0, size)),
        .live, .freed => |old_id| remember(fresh_addr, r.reallocation(old_id, size)),
    }
}

/// malloc_usable_size(ptr) of a live object.
pub fn usableSize(ptr: ?*anyopaque) void {
    const addr = @intFromPtr(ptr orelse return);
    if (closed.load(.monotonic)) return;
    const found = lookUp(addr);
    if (found != .live) return;
    const r = recorder() orelse return;
    r.tick();
    r.ofObject(.usable_size, found.live);
}

// ---------------------------------------------------------------- tests

test "the id table remembers, forgets, drops freed entries when it grows" {
    var s: Shard = .{};
    defer s.clear();
    try std.testing.expectEqual(Lookup.absent, s.find(0x1000));
    for (0..5000) |i| try std.testing.expect(s.putLive(0x1000 + i * 16, i));
    try std.testing.expectEqual(Lookup{ .live = 7 }, s.find(0x1000 + 7 * 16));
    try std.testing.expectEqual(Lookup{ .live = 7 }, s.markFreed(0x1000 + 7 * 16));
    try std.testing.expectEqual(Lookup{ .freed = 7 }, s.markFreed(0x1000 + 7 * 16));
    try std.testing.expect(s.putLive(0x1000 + 7 * 16, 9000));
    try std.testing.expectEqual(Lookup{ .live = 9000 }, s.find(0x1000 + 7 * 16));
    for (0..5000) |i| _ = s.markFreed(0x1000 + i * 16);
    try std.testing.expectEqual(@as(usize, 0), s.live);
    try std.testing.expect(s.rehash());
    try std.testing.expectEqual(@as(usize, 0), s.used);
}

test "varints and ids encode as the format says" {
    const r = try std.testing.allocator.create(Recorder);
    defer std.testing.allocator.destroy(r);
    r.* = .{};
    r.putVarint(300);
    try std.testing.expectEqualSlices(u8, &.{ 0xAC, 0x02 }, r.payload[0..r.len]);
    r.len = 0;
    r.next_id = 10;
    r.putId(9); // the newest: 0
    r.putId(10); // -1 -> 1
    r.putId(7); // 2 -> 4
    try std.testing.expectEqualSlices(u8, &.{ 0, 1, 4 }, r.payload[0..r.len]);
}

/// One thread's payload read back, as bench/c/replay.c and src/trace.ts read it (tests).
const Decoder = struct {
    bytes: []const u8,
    at: usize = 0,
    next_id: u64 = 0,
    id_end: u64 = 0,

    const Decoded = struct { event: Event, id: u64 = 0, old_id: u64 = 0, size: u64 = 0, arg: u64 = 0 };

    fn varint(self: *Decoder) !u64 {
        var v: u64 = 0;
        var shift: u32 = 0;
        while (shift < 64) : (shift += 7) {
            if (self.at == self.bytes.len) return error.Truncated;
            const b = self.bytes[self.at];
            self.at += 1;
            v |= @as(u64, b & 0x7f) << @intCast(shift);
            if (b & 0x80 == 0) return v;
        }
        return error.VarintTooLong;
    }

    fn objectId(self: *Decoder) !u64 {
        const z = try self.varint();
        const delta: i64 = @bitCast((z >> 1) ^ (0 -% (z & 1)));
        return self.next_id -% 1 -% @as(u64, @bitCast(delta));
    }

    fn takeId(self: *Decoder) !u64 {
        if (self.next_id == self.id_end) return error.NoIdBase;
        self.next_id += 1;
        std.debug.assert(self.next_id <= self.id_end); // within the chunk an id_base opened
        return self.next_id - 1;
    }

    fn next(self: *Decoder) !?Decoded {
        if (self.at == self.bytes.len) return null;
        const event = std.meta.intToEnum(Event, self.bytes[self.at]) catch return error.BadTag;
        self.at += 1;
        var d: Decoded = .{ .event = event };
        switch (event) {
            .malloc, .calloc => {
                d.size = try self.varint();
                d.id = try self.takeId();
            },
            .aligned => {
                d.arg = try self.varint();
                d.size = try self.varint();
                d.id = try self.takeId();
            },
            .realloc => {
                d.old_id = try self.objectId();
                d.size = try self.varint();
                d.id = try self.takeId();
            },
            .free, .usable_size => d.id = try self.objectId(),
            .thread_begin, .time => d.arg = try self.varint(),
            .id_base => {
                d.arg = try self.varint();
                self.next_id = d.arg;
                self.id_end = d.arg + abi.trace_id_chunk;
            },
            .free_unknown, .thread_end => {},
        }
        std.debug.assert(self.at <= self.bytes.len); // (each read stops at the payload's end)
        return d;
    }
};

test "what the recorder writes reads back: allocations, realloc, frees, across id chunks" {
    const r = try std.testing.allocator.create(Recorder);
    defer std.testing.allocator.destroy(r);
    r.* = .{};
    next_chunk.store(5 * abi.trace_id_chunk, .monotonic); // another thread took the first chunks
    const a = r.allocation(.malloc, 0, 100);
    const b = r.allocation(.calloc, 0, 50);
    const c = r.reallocation(a, 200);
    r.ofObject(.free, b);
    const d = r.allocation(.aligned, 6, 1000);
    r.ofObject(.usable_size, c);
    var ids: [1500]u64 = undefined; // past a chunk's end: a second id_base
    for (&ids, 0..) |*id, i| id.* = r.allocation(.malloc, 0, i);
    for (ids) |id| r.ofObject(.free, id);
    r.ofObject(.free, d);
    r.ofObject(.free, c);
    try std.testing.expectEqual(@as(u64, 5 * abi.trace_id_chunk), a);
    var dec: Decoder = .{ .bytes = r.payload[0..r.len] };
    const Want = struct { Event, u64, u64, u64 }; // event, id, old id or arg, size
    var want: std.ArrayList(Want) = .empty;
    defer want.deinit(std.testing.allocator);
    try want.appendSlice(std.testing.allocator, &.{
        .{ .id_base, 0, 5 * abi.trace_id_chunk, 0 }, .{ .malloc, a, 0, 100 }, .{ .calloc, b, 0, 50 },
        .{ .realloc, c, a, 200 },                    .{ .free, b, 0, 0 },      .{ .aligned, d, 6, 1000 },
        .{ .usable_size, c, 0, 0 },
    });
    for (ids, 0..) |id, i| {
        if (id % abi.trace_id_chunk == 0) try want.append(std.testing.allocator, .{ .id_base, 0, id, 0 });
        try want.append(std.testing.allocator, .{ .malloc, id, 0, i });
    }
    for (ids) |id| try want.append(std.testing.allocator, .{ .free, id, 0, 0 });
    try want.appendSlice(std.testing.allocator, &.{ .{ .free, d, 0, 0 }, .{ .free, c, 0, 0 } });
    for (want.items) |w| {
        const got = (try dec.next()).?;
        try std.testing.expectEqual(w[0], got.event);
        try std.testing.expectEqual(w[1], got.id);
        try std.testing.expectEqual(w[2], if (got.event == .realloc) got.old_id else got.arg);
        try std.testing.expectEqual(w[3], got.size);
    }
    try std.testing.expectEqual(@as(?Decoder.Decoded, null), try dec.next());
    try std.testing.expectEqual(@as(u32, @intCast(want.items.len)), r.events);
    // 2 bytes or so an event: the format's point
    try std.testing.expect(r.len <= 3 * r.events);
}
