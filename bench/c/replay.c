/*
 * replay.c — runs an allocation trace recorded with HAKMEM_TRACE (format: zig/abi.zig,
 * "allocation traces"; constants from zig/hakmem.h) against whatever malloc the process
 * has: built with the system compiler (`cc -O2 -pthread`) like a user's program, and run
 * preloaded with any allocator (bench/replay.ts).
 *
 *   replay [--peak] trace.bin
 *
 * 1. checks the whole file first: the header, every block (magic, process, size within
 *    the file, checksum), every event (known tag, varints inside the payload, the block's
 *    event count), every object id (allocated once, freed at most once). A bad file gets
 *    one line naming the file, the byte offset and what was expected (exit 2); a double
 *    free in the trace is reported, not replayed (exit 3).
 * 2. replays: one thread per recorded thread, each running its events in recorded order;
 *    a thread starts once as many threads have ended as had ended when it began; a free
 *    (or realloc) of an object another thread allocated waits for that allocation (the
 *    object's slot is 0 until then): spin, yield, then sleep, at most wait_limit_ms in all
 *    (exit 4 when exceeded: the trace is inconsistent, never a hang). Each allocation is
 *    written to, as a program would: a byte in every page of its first
 *    HAK_TRACE_REPLAY_TOUCH_BYTES, and its last byte.
 * Prints the bench's RESULT line (common.h; ops = events, secs = the replay's wall time)
 * with threads, objects, failed allocations, cross_thread_frees, the replay's CPU time and
 * page faults, and peak_live_bytes (requested bytes) with --peak. The replayer's own tables
 * come from mmap, so the allocator under test serves the trace's requests only (and
 * pthread's); peak RSS includes them and the mapped file, the same for every allocator.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sys/resource.h>

#include "../../zig/hakmem.h"
#include "common.h"

#define THREADS_MAX 4096
#define WAIT_LIMIT_MS 20000

static const char *trace_path;
static const uint8_t *file;
static size_t file_size;
static int want_peak;

static void fail(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "replay: %s: ", trace_path);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(code);
}

static void *map_zeroed(size_t bytes) {
    if (bytes == 0) bytes = 1;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) fail(5, "cannot map %zu bytes for the replayer's tables", bytes);
    return p;
}

static uint32_t u32_at(size_t offset) {
    uint32_t v;
    memcpy(&v, file + offset, 4);
    return v;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------ blocks */

typedef struct {
    size_t offset; /* of the block header */
    uint32_t events;
    uint32_t payload_bytes;
} Block;

typedef struct {
    Block *blocks;
    uint32_t block_count;
    uint64_t events;
} ThreadTrace;

static ThreadTrace threads[THREADS_MAX];
static uint32_t thread_count;
static uint32_t trace_pid;

static uint32_t fnv1a(const uint8_t *p, size_t n) {
    uint32_t h = HAK_TRACE_FNV_OFFSET;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * HAK_TRACE_FNV_PRIME;
    return h;
}

static void check_header(void) {
    if (file_size < HAK_TRACE_HEADER_BYTES)
        fail(2, "offset 0: expected a %u-byte trace header, the file has %zu bytes (truncated, or not a trace)", HAK_TRACE_HEADER_BYTES, file_size);
    if (u32_at(HAK_TRACE_HEADER_AT_MAGIC) != HAK_TRACE_MAGIC)
        fail(2, "offset 0: expected the trace magic 0x%08x (\"HKTR\"), found 0x%08x: not a hakmem trace", HAK_TRACE_MAGIC, u32_at(0));
    if (u32_at(HAK_TRACE_HEADER_AT_VERSION) != HAK_TRACE_VERSION)
        fail(2, "offset %u: expected format version %u, found %u", HAK_TRACE_HEADER_AT_VERSION, HAK_TRACE_VERSION, u32_at(HAK_TRACE_HEADER_AT_VERSION));
    if (u32_at(HAK_TRACE_HEADER_AT_HEADER_BYTES) != HAK_TRACE_HEADER_BYTES || u32_at(HAK_TRACE_HEADER_AT_BLOCK_HEADER_BYTES) != HAK_TRACE_BLOCK_HEADER_BYTES)
        fail(2, "offset %u: expected header sizes %u and %u", HAK_TRACE_HEADER_AT_HEADER_BYTES, HAK_TRACE_HEADER_BYTES, HAK_TRACE_BLOCK_HEADER_BYTES);
    if (u32_at(HAK_TRACE_HEADER_AT_ID_CHUNK) != HAK_TRACE_ID_CHUNK)
        fail(2, "offset %u: expected an id chunk of %u, found %u", HAK_TRACE_HEADER_AT_ID_CHUNK, HAK_TRACE_ID_CHUNK, u32_at(HAK_TRACE_HEADER_AT_ID_CHUNK));
    trace_pid = u32_at(HAK_TRACE_HEADER_AT_PID);
}

/* Checks every block header and payload checksum; fills threads[].blocks in file order. */
static void index_blocks(void) {
    uint32_t counts[THREADS_MAX] = {0};
    for (int pass = 0; pass < 2; pass++) {
        size_t at = HAK_TRACE_HEADER_BYTES;
        while (at < file_size) {
            if (file_size - at < HAK_TRACE_BLOCK_HEADER_BYTES)
                fail(2, "offset %zu: expected a %u-byte block header, the file ends after %zu bytes (truncated)", at, HAK_TRACE_BLOCK_HEADER_BYTES, file_size - at);
            uint32_t magic = u32_at(at + HAK_TRACE_BLOCK_AT_MAGIC);
            if (magic != HAK_TRACE_BLOCK_MAGIC) fail(2, "offset %zu: expected the block magic 0x%08x (\"HKTB\"), found 0x%08x (corrupted)", at, HAK_TRACE_BLOCK_MAGIC, magic);
            uint32_t pid = u32_at(at + HAK_TRACE_BLOCK_AT_PID);
            if (pid != trace_pid)
                fail(2, "offset %zu: expected a block of process %u, found one of process %u (several processes wrote this file: record with %%p in HAKMEM_TRACE)", at, trace_pid, pid);
            uint32_t thread = u32_at(at + HAK_TRACE_BLOCK_AT_THREAD);
            if (thread >= THREADS_MAX) fail(2, "offset %zu: expected a thread index below %u, found %u (corrupted)", at, THREADS_MAX, thread);
            uint32_t payload = u32_at(at + HAK_TRACE_BLOCK_AT_PAYLOAD_BYTES);
            if (payload > HAK_TRACE_BLOCK_PAYLOAD_MAX + HAK_TRACE_EVENT_BYTES_MAX)
                fail(2, "offset %zu: expected at most %u payload bytes, found %u (corrupted)", at, HAK_TRACE_BLOCK_PAYLOAD_MAX + HAK_TRACE_EVENT_BYTES_MAX, payload);
            size_t body = at + HAK_TRACE_BLOCK_HEADER_BYTES;
            if (file_size - body < payload)
                fail(2, "offset %zu: expected %u payload bytes, the file ends after %zu (truncated)", body, payload, file_size - body);
            if (pass == 0) {
                uint32_t sum = fnv1a(file + body, payload);
                if (sum != u32_at(at + HAK_TRACE_BLOCK_AT_CHECKSUM))
                    fail(2, "offset %zu: expected payload checksum 0x%08x, computed 0x%08x (corrupted block of %u bytes)", body, u32_at(at + HAK_TRACE_BLOCK_AT_CHECKSUM), sum, payload);
                counts[thread]++;
                if (thread + 1 > thread_count) thread_count = thread + 1;
            } else {
                ThreadTrace *t = &threads[thread];
                Block *b = &t->blocks[t->block_count++];
                b->offset = at;
                b->events = u32_at(at + HAK_TRACE_BLOCK_AT_EVENTS);
                b->payload_bytes = payload;
                t->events += b->events;
            }
            at = body + payload;
        }
        if (pass == 0)
            for (uint32_t i = 0; i < thread_count; i++) threads[i].blocks = map_zeroed((size_t)counts[i] * sizeof(Block));
    }
}

/* ------------------------------------------------------------------ decoding */

typedef struct {
    uint32_t thread;
    uint32_t block_index;
    const uint8_t *p, *end; /* the current block's payload */
    size_t payload_offset;
    uint32_t events_left; /* in the current block */
    uint64_t next_id, id_end;
} Cursor;

typedef struct {
    int tag;
    size_t offset; /* of the tag byte */
    uint64_t id, old_id, size, arg;
} Ev;

static void cursor_init(Cursor *c, uint32_t thread) {
    memset(c, 0, sizeof *c);
    c->thread = thread;
}

static size_t cursor_offset(const Cursor *c) { return c->payload_offset + (size_t)(c->p - (file + c->payload_offset)); }

/* Opens the next block with events; 0 at the thread's end. Checks the last block's count. */
static int cursor_advance(Cursor *c) {
    ThreadTrace *t = &threads[c->thread];
    while (c->p == c->end || c->events_left == 0) {
        if (c->p != NULL) {
            if (c->p != c->end) fail(2, "offset %zu: expected the end of thread %u's block after its %u events, %zu bytes remain (corrupted)", cursor_offset(c), c->thread, t->blocks[c->block_index - 1].events, (size_t)(c->end - c->p));
            if (c->events_left != 0) fail(2, "offset %zu: expected %u more events in thread %u's block, its payload ended (corrupted)", cursor_offset(c), c->events_left, c->thread);
        }
        if (c->block_index == t->block_count) return 0;
        Block *b = &t->blocks[c->block_index++];
        c->payload_offset = b->offset + HAK_TRACE_BLOCK_HEADER_BYTES;
        c->p = file + c->payload_offset;
        c->end = c->p + b->payload_bytes;
        c->events_left = b->events;
    }
    return 1;
}

static uint64_t varint(Cursor *c, const char *what) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (c->p == c->end) fail(2, "offset %zu: expected %s (a varint), the block's payload ended (corrupted)", cursor_offset(c), what);
        uint8_t b = *c->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return v;
    }
    fail(2, "offset %zu: expected %s, found a varint longer than 10 bytes (corrupted)", cursor_offset(c), what);
    return 0;
}

static uint64_t object_id(Cursor *c) {
    uint64_t z = varint(c, "an object id");
    int64_t delta = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
    return c->next_id - 1 - (uint64_t)delta;
}

static uint64_t take_id(Cursor *c, size_t at) {
    if (c->next_id == c->id_end) fail(2, "offset %zu: expected an id_base event before thread %u's allocation (corrupted)", at, c->thread);
    return c->next_id++;
}

/* The next event of the cursor's thread; 0 at its end. */
static int next_event(Cursor *c, Ev *e) {
    if (!cursor_advance(c)) return 0;
    e->offset = cursor_offset(c);
    e->tag = *c->p++;
    c->events_left--;
    switch (e->tag) {
    case HAK_TRACE_EV_MALLOC:
    case HAK_TRACE_EV_CALLOC:
        e->size = varint(c, "a size");
        e->id = take_id(c, e->offset);
        break;
    case HAK_TRACE_EV_ALIGNED:
        e->arg = varint(c, "an alignment");
        if (e->arg > 40) fail(2, "offset %zu: expected an alignment's log2 up to 40, found %llu (corrupted)", e->offset, (unsigned long long)e->arg);
        e->size = varint(c, "a size");
        e->id = take_id(c, e->offset);
        break;
    case HAK_TRACE_EV_REALLOC:
        e->old_id = object_id(c);
        e->size = varint(c, "a size");
        e->id = take_id(c, e->offset);
        break;
    case HAK_TRACE_EV_FREE:
    case HAK_TRACE_EV_USABLE_SIZE:
        e->id = object_id(c);
        break;
    case HAK_TRACE_EV_THREAD_BEGIN:
    case HAK_TRACE_EV_TIME:
        e->arg = varint(c, e->tag == HAK_TRACE_EV_TIME ? "milliseconds" : "a thread count");
        break;
    case HAK_TRACE_EV_ID_BASE:
        e->arg = varint(c, "an id base");
        if (e->arg % HAK_TRACE_ID_CHUNK != 0 || e->arg > (1ull << 40)) fail(2, "offset %zu: expected an id base that is a multiple of %u, found %llu (corrupted)", e->offset, HAK_TRACE_ID_CHUNK, (unsigned long long)e->arg);
        c->next_id = e->arg;
        c->id_end = e->arg + HAK_TRACE_ID_CHUNK;
        break;
    case HAK_TRACE_EV_FREE_UNKNOWN:
    case HAK_TRACE_EV_THREAD_END:
        break;
    default:
        fail(2, "offset %zu: expected an event tag below %u, found %u (corrupted)", e->offset, HAK_TRACE_EV_COUNT, e->tag);
    }
    return 1;
}

/* ------------------------------------------------------------------ checking the objects */

enum { OBJ_ALLOCATED = 1, OBJ_FREED = 2, OBJ_CROSS = 4 };

static uint64_t id_limit;      /* every id is below */
static uint8_t *object_flags;  /* per id */
static uint64_t total_events, object_count, cross_frees;

static void check_id(const Ev *e, uint64_t id, uint32_t thread) {
    if (id >= id_limit) fail(2, "offset %zu: thread %u names object %llu, which no id_base covers (corrupted)", e->offset, thread, (unsigned long long)id);
}

static void check_events(void) {
    /* ids: the largest base seen */
    for (uint32_t t = 0; t < thread_count; t++) {
        Cursor c;
        Ev e;
        cursor_init(&c, t);
        while (next_event(&c, &e)) {
            total_events++;
            if (e.tag == HAK_TRACE_EV_ID_BASE && e.arg + HAK_TRACE_ID_CHUNK > id_limit) id_limit = e.arg + HAK_TRACE_ID_CHUNK;
        }
    }
    object_flags = map_zeroed(id_limit);
    uint32_t *owner = map_zeroed(id_limit * sizeof(uint32_t));
    uint32_t *freer = map_zeroed(id_limit * sizeof(uint32_t));
    size_t *freed_at = map_zeroed(id_limit * sizeof(size_t));
    for (uint32_t t = 0; t < thread_count; t++) {
        Cursor c;
        Ev e;
        cursor_init(&c, t);
        while (next_event(&c, &e)) {
            int allocates = e.tag == HAK_TRACE_EV_MALLOC || e.tag == HAK_TRACE_EV_CALLOC || e.tag == HAK_TRACE_EV_ALIGNED || e.tag == HAK_TRACE_EV_REALLOC;
            int frees = e.tag == HAK_TRACE_EV_FREE || e.tag == HAK_TRACE_EV_REALLOC;
            if (frees) {
                uint64_t id = e.tag == HAK_TRACE_EV_REALLOC ? e.old_id : e.id;
                check_id(&e, id, t);
                if (object_flags[id] & OBJ_FREED)
                    fail(3, "double free in the trace: object %llu is freed by thread %u (event at offset %zu) and by thread %u (event at offset %zu); not replayed",
                         (unsigned long long)id, freer[id], freed_at[id], t, e.offset);
                object_flags[id] |= OBJ_FREED;
                freer[id] = t;
                freed_at[id] = e.offset;
            }
            if (e.tag == HAK_TRACE_EV_USABLE_SIZE) check_id(&e, e.id, t);
            if (allocates) {
                check_id(&e, e.id, t);
                if (object_flags[e.id] & OBJ_ALLOCATED) fail(2, "offset %zu: object %llu is allocated a second time (corrupted)", e.offset, (unsigned long long)e.id);
                object_flags[e.id] |= OBJ_ALLOCATED;
                owner[e.id] = t;
                object_count++;
            }
        }
    }
    for (uint64_t id = 0; id < id_limit; id++) {
        uint8_t f = object_flags[id];
        if ((f & OBJ_FREED) && !(f & OBJ_ALLOCATED))
            fail(3, "object %llu is freed by thread %u (event at offset %zu) but never allocated in the trace (a free of a dead or foreign object); not replayed", (unsigned long long)id, freer[id], freed_at[id]);
        if ((f & OBJ_FREED) && owner[id] != freer[id]) {
            object_flags[id] |= OBJ_CROSS;
            cross_frees++;
        }
    }
    munmap(owner, id_limit * sizeof(uint32_t));
    munmap(freer, id_limit * sizeof(uint32_t));
    munmap(freed_at, id_limit * sizeof(size_t));
}

/* ------------------------------------------------------------------ replaying */

static uintptr_t *slots;             /* per id: 0 not yet allocated, 1 freed, else the pointer */
static uint64_t *sizes;              /* per id, with --peak */
static _Atomic uint32_t threads_ended;
static _Atomic int64_t live_bytes, peak_bytes;
static _Atomic uint64_t failed_allocs;
static uint64_t wait_limit_ns = (uint64_t)WAIT_LIMIT_MS * 1000000u;

#define FREED_SLOT ((uintptr_t)1)

static void backoff(uint64_t *spins, uint64_t start_ns, const char *what, uint32_t thread, uint64_t id, size_t offset) {
    (*spins)++;
    if (*spins < 200) {
        __builtin_ia32_pause();
    } else if (*spins < 2000) {
        sched_yield();
    } else {
        struct timespec ts = {0, 50000};
        nanosleep(&ts, NULL);
        if (now_ns() - start_ns > wait_limit_ns)
            fail(4, "thread %u waited %d ms for %s %llu (event at offset %zu): the trace's order cannot be replayed (inconsistent trace)", thread, WAIT_LIMIT_MS, what, (unsigned long long)id, offset);
    }
}

static void *await_object(uint64_t id, uint32_t thread, size_t offset) {
    uintptr_t v = __atomic_load_n(&slots[id], __ATOMIC_ACQUIRE);
    if (v > FREED_SLOT) return (void *)v;
    uint64_t spins = 0, start = now_ns();
    while ((v = __atomic_load_n(&slots[id], __ATOMIC_ACQUIRE)) == 0) backoff(&spins, start, "object", thread, id, offset);
    return v == FREED_SLOT ? NULL : (void *)v;
}

static void touch(void *p, size_t size) {
    if (!p) return;
    volatile uint8_t *b = p;
    size_t touched = size < HAK_TRACE_REPLAY_TOUCH_BYTES ? size : HAK_TRACE_REPLAY_TOUCH_BYTES;
    for (size_t i = 0; i < touched; i += 4096) b[i] = (uint8_t)i;
    if (size > 0) b[size - 1] = 1;
}

static void note_live(int64_t delta) {
    int64_t now = __atomic_add_fetch(&live_bytes, delta, __ATOMIC_RELAXED);
    int64_t peak = __atomic_load_n(&peak_bytes, __ATOMIC_RELAXED);
    while (now > peak && !__atomic_compare_exchange_n(&peak_bytes, &peak, now, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
}

static void allocated(const Ev *e, void *p) {
    if (!p && e->size > 0) __atomic_add_fetch(&failed_allocs, 1, __ATOMIC_RELAXED);
    touch(p, e->size);
    if (want_peak && p) {
        sizes[e->id] = e->size;
        note_live((int64_t)e->size);
    }
    __atomic_store_n(&slots[e->id], p ? (uintptr_t)p : FREED_SLOT, __ATOMIC_RELEASE);
}

static void released(uint64_t id) {
    if (want_peak) note_live(-(int64_t)sizes[id]);
    __atomic_store_n(&slots[id], FREED_SLOT, __ATOMIC_RELEASE);
}

static void *replay_thread(void *arg) {
    uint32_t t = (uint32_t)(uintptr_t)arg;
    Cursor c;
    Ev e;
    int ended = 0;
    cursor_init(&c, t);
    while (next_event(&c, &e)) {
        switch (e.tag) {
        case HAK_TRACE_EV_THREAD_BEGIN: {
            uint64_t spins = 0, start = now_ns();
            while (__atomic_load_n(&threads_ended, __ATOMIC_ACQUIRE) < e.arg) backoff(&spins, start, "thread ends:", t, e.arg, e.offset);
            break;
        }
        case HAK_TRACE_EV_MALLOC: allocated(&e, malloc(e.size)); break;
        case HAK_TRACE_EV_CALLOC: allocated(&e, calloc(1, e.size)); break;
        case HAK_TRACE_EV_ALIGNED: {
            void *p = NULL;
            size_t alignment = (size_t)1 << e.arg;
            if (alignment < sizeof(void *)) alignment = sizeof(void *);
            if (posix_memalign(&p, alignment, e.size) != 0) p = NULL;
            allocated(&e, p);
            break;
        }
        case HAK_TRACE_EV_REALLOC: {
            void *old = await_object(e.old_id, t, e.offset);
            void *p = old ? realloc(old, e.size) : malloc(e.size);
            if (!p) {
                /* the program's realloc succeeded; this one did not: the old block stays */
                __atomic_add_fetch(&failed_allocs, 1, __ATOMIC_RELAXED);
                if (old) free(old);
            }
            released(e.old_id);
            allocated(&e, p);
            break;
        }
        case HAK_TRACE_EV_FREE: {
            void *p = await_object(e.id, t, e.offset);
            free(p);
            released(e.id);
            break;
        }
        case HAK_TRACE_EV_USABLE_SIZE:
            if (!(object_flags[e.id] & OBJ_CROSS)) {
                uintptr_t v = __atomic_load_n(&slots[e.id], __ATOMIC_ACQUIRE);
                if (v > FREED_SLOT) (void)malloc_usable_size((void *)v);
            }
            break;
        case HAK_TRACE_EV_THREAD_END:
            if (!ended) __atomic_add_fetch(&threads_ended, 1, __ATOMIC_RELEASE);
            ended = 1;
            break;
        default: break;
        }
    }
    if (!ended) __atomic_add_fetch(&threads_ended, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void load(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "replay: %s: cannot open (%s)\n", path, strerror(errno));
        exit(2);
    }
    struct stat st;
    if (fstat(fd, &st) != 0) fail(2, "cannot stat (%s)", strerror(errno));
    file_size = (size_t)st.st_size;
    file = file_size ? mmap(NULL, file_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0) : (const uint8_t *)"";
    if (file == MAP_FAILED) fail(2, "cannot map %zu bytes (%s)", file_size, strerror(errno));
    close(fd);
}

int main(int argc, char **argv) {
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i++) {
        if (strcmp(argv[i], "--peak") == 0) want_peak = 1;
        else {
            fprintf(stderr, "replay: unknown option %s\nusage: replay [--peak] trace.bin\n", argv[i]);
            return 64;
        }
    }
    if (i != argc - 1) {
        fprintf(stderr, "usage: replay [--peak] trace.bin\n");
        return 64;
    }
    trace_path = argv[i];
    const char *limit = getenv("REPLAY_WAIT_MS");
    if (limit && atoll(limit) > 0) wait_limit_ns = (uint64_t)atoll(limit) * 1000000u;
    load(trace_path);
    check_header();
    index_blocks();
    check_events();
    slots = map_zeroed(id_limit * sizeof(uintptr_t));
    if (want_peak) sizes = map_zeroed(id_limit * sizeof(uint64_t));

    struct rusage before, after;
    getrusage(RUSAGE_SELF, &before);
    uint64_t start = now_ns();
    if (thread_count == 1) {
        replay_thread(0);
    } else {
        pthread_t *handles = map_zeroed(thread_count * sizeof(pthread_t));
        for (uint32_t t = 0; t < thread_count; t++)
            if (pthread_create(&handles[t], NULL, replay_thread, (void *)(uintptr_t)t) != 0) fail(5, "cannot create replay thread %u", t);
        for (uint32_t t = 0; t < thread_count; t++) pthread_join(handles[t], NULL);
    }
    uint64_t wall = now_ns() - start;
    getrusage(RUSAGE_SELF, &after);
    double cpu = (double)(after.ru_utime.tv_sec - before.ru_utime.tv_sec) + (double)(after.ru_stime.tv_sec - before.ru_stime.tv_sec) +
                 ((double)(after.ru_utime.tv_usec - before.ru_utime.tv_usec) + (double)(after.ru_stime.tv_usec - before.ru_stime.tv_usec)) / 1e6;
    long faults = (after.ru_minflt - before.ru_minflt) + (after.ru_majflt - before.ru_majflt);
    char extra[512];
    int n = snprintf(extra, sizeof extra, " threads=%u objects=%llu failed=%llu cross_thread_frees=%llu cpu_secs=%.6f faults=%ld",
                     thread_count, (unsigned long long)object_count, (unsigned long long)failed_allocs, (unsigned long long)cross_frees, cpu, faults);
    if (want_peak && n > 0 && (size_t)n < sizeof extra) snprintf(extra + n, sizeof extra - (size_t)n, " peak_live_bytes=%lld", (long long)peak_bytes);
    report("replay", (double)total_events, (double)wall / 1e9, extra);
    return 0;
}
