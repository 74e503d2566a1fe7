/*
 * stress_mt.c — verifying multi-threaded stress over every entry point and every tier.
 *
 * usage: stress_mt THREADS SEED OPS [local|cross]
 * Each thread owns an array of slots and runs OPS random operations (malloc, calloc,
 * realloc, aligned_alloc, posix_memalign, free). Every block carries a pattern derived from
 * a unique tag (thread << 40 | counter) that is checked before every free and realloc.
 * In cross mode some blocks are handed to the next thread through a locked queue; the
 * receiver checks them and either frees them or adopts them into its own slots.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>

#include "test_common.h"

#define SLOTS 2048
#define INBOX_CAP 4096

typedef struct {
    unsigned char *ptr;
    size_t size;
    uint64_t tag;
} block_t;

typedef struct {
    pthread_mutex_t lock;
    block_t items[INBOX_CAP];
    int count;
} inbox_t;

typedef struct {
    int id;
    rng_t rng;
    uint64_t counter;
    block_t slots[SLOTS];
    inbox_t inbox;
    unsigned long allocs, frees, reallocs, sent, received;
} worker_t;

static int g_threads;
static long g_ops;
static int g_cross;
static worker_t *g_workers;
static pthread_barrier_t g_barrier;

/* Mostly small, some 1–64 KiB, a few 64 KiB–1 MiB, rare 1–8 MiB. */
static size_t random_size(rng_t *r) {
    uint64_t x = rng_next(r) % 10000;
    if (x < 8800) return (size_t)rng_range(r, 0, 1024);
    if (x < 9900) return (size_t)rng_range(r, 1025, 64 << 10);
    if (x < 9995) return (size_t)rng_range(r, (64 << 10) + 1, 1 << 20);
    return (size_t)rng_range(r, (1 << 20) + 1, 8 << 20);
}

static void check_block(const block_t *b, const char *what) {
    size_t usable = malloc_usable_size(b->ptr);
    if (usable < b->size) {
        fprintf(stderr, "usable size %zu < requested %zu (%s)\n", usable, b->size, what);
        __atomic_add_fetch(&g_failures, 1, __ATOMIC_RELAXED);
    }
    pattern_ok(b->ptr, b->size, b->tag, what);
}

static void release(worker_t *w, block_t *b, const char *what) {
    check_block(b, what);
    free(b->ptr);
    b->ptr = NULL;
    w->frees++;
}

static int all_zero(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

/* Allocates a fresh block into an empty slot through a randomly chosen entry point. */
static void allocate(worker_t *w, block_t *b) {
    size_t size = random_size(&w->rng);
    size_t align = 0;
    unsigned char *p = NULL;
    switch (rng_next(&w->rng) % 8) {
    case 0:
    case 1:
    case 2:
        p = malloc(size);
        break;
    case 3:
        p = calloc(1, size);
        if (p && !all_zero(p, size)) {
            fprintf(stderr, "calloc(%zu) returned non-zero memory\n", size);
            __atomic_add_fetch(&g_failures, 1, __ATOMIC_RELAXED);
        }
        break;
    case 4:
        p = realloc(NULL, size);
        break;
    case 5:
        align = (size_t)16 << (rng_next(&w->rng) % 9);
        p = aligned_alloc(align, size);
        break;
    case 6: {
        void *out = NULL;
        align = (size_t)8 << (rng_next(&w->rng) % 10);
        if (posix_memalign(&out, align, size) != 0) out = NULL;
        p = out;
        break;
    }
    default:
        p = calloc(size / 16 + 1, 16);
        if (p && !all_zero(p, size / 16 * 16 + 16)) {
            fprintf(stderr, "calloc(%zu, 16) returned non-zero memory\n", size / 16 + 1);
            __atomic_add_fetch(&g_failures, 1, __ATOMIC_RELAXED);
        }
        break;
    }
    if (!p) fprintf(stderr, "allocation of %zu bytes (alignment %zu) failed\n", size, align);
    REQUIRE(p != NULL);
    CHECK(is_aligned(p, 16));
    if (align) CHECK(is_aligned(p, align));
    b->ptr = p;
    b->size = size;
    b->tag = ((uint64_t)w->id << 40) | ++w->counter;
    pattern_fill(p, size, b->tag);
    w->allocs++;
}

static void reallocate(worker_t *w, block_t *b) {
    size_t size = rng_next(&w->rng) % 4 ? random_size(&w->rng) : b->size + rng_range(&w->rng, 0, 64);
    if (size == 0) size = 1; /* realloc(p, 0) is implementation-defined (glibc frees) */
    check_block(b, "before realloc");
    unsigned char *p = realloc(b->ptr, size);
    REQUIRE(p != NULL);
    CHECK(is_aligned(p, 16));
    size_t keep = size < b->size ? size : b->size;
    pattern_ok(p, keep, b->tag, "after realloc");
    b->ptr = p;
    b->size = size;
    b->tag = ((uint64_t)w->id << 40) | ++w->counter;
    pattern_fill(p, size, b->tag);
    w->reallocs++;
}

/* Hands a block to the next thread; returns 0 (and keeps it) if that inbox is full. */
static int send_block(worker_t *w, block_t *b) {
    inbox_t *in = &g_workers[(w->id + 1) % g_threads].inbox;
    int sent = 0;
    pthread_mutex_lock(&in->lock);
    if (in->count < INBOX_CAP) {
        in->items[in->count++] = *b;
        sent = 1;
    }
    pthread_mutex_unlock(&in->lock);
    if (sent) {
        b->ptr = NULL;
        w->sent++;
    }
    return sent;
}

/* Takes every block sent to this thread: checks it, then frees or adopts it. */
static void drain_inbox(worker_t *w, int adopt) {
    static __thread block_t taken[INBOX_CAP];
    pthread_mutex_lock(&w->inbox.lock);
    int n = w->inbox.count;
    memcpy(taken, w->inbox.items, (size_t)n * sizeof(block_t));
    w->inbox.count = 0;
    pthread_mutex_unlock(&w->inbox.lock);
    for (int i = 0; i < n; i++) {
        w->received++;
        block_t *slot = &w->slots[rng_next(&w->rng) % SLOTS];
        if (adopt && !slot->ptr && rng_next(&w->rng) % 2) {
            check_block(&taken[i], "adopted from another thread");
            *slot = taken[i];
        } else {
            release(w, &taken[i], "received from another thread");
        }
    }
}

static void one_op(worker_t *w) {
    block_t *b = &w->slots[rng_next(&w->rng) % SLOTS];
    if (!b->ptr) {
        allocate(w, b);
        return;
    }
    uint64_t choice = rng_next(&w->rng) % 10;
    if (choice < 3) {
        reallocate(w, b);
    } else if (g_cross && choice < 6 && send_block(w, b)) {
        /* handed over */
    } else {
        release(w, b, "before free");
    }
}

static void *worker_main(void *arg) {
    worker_t *w = arg;
    for (long op = 0; op < g_ops; op++) {
        one_op(w);
        if (g_cross && op % 64 == 0) drain_inbox(w, 1);
    }
    pthread_barrier_wait(&g_barrier); /* nobody sends after this point */
    drain_inbox(w, 0);
    for (int i = 0; i < SLOTS; i++)
        if (w->slots[i].ptr) release(w, &w->slots[i], "at exit");
    return NULL;
}

int main(int argc, char **argv) {
    const char *usage = "THREADS SEED OPS [local|cross]";
    g_threads = (int)arg_in_range(argc, argv, 1, 0, 1, 256, usage);
    uint64_t seed = (uint64_t)arg_in_range(argc, argv, 2, -1, 0, LONG_MAX, usage);
    g_ops = arg_in_range(argc, argv, 3, 0, 1, LONG_MAX, usage);
    g_cross = argc > 4 && strcmp(argv[4], "cross") == 0;
    if (argc > 4 && !g_cross && strcmp(argv[4], "local") != 0) {
        fprintf(stderr, "usage: %s %s\n", argv[0], usage);
        return 2;
    }
    require_hakmem();
    g_workers = calloc((size_t)g_threads, sizeof *g_workers);
    REQUIRE(g_workers != NULL);
    pthread_barrier_init(&g_barrier, NULL, (unsigned)g_threads);
    pthread_t *threads = calloc((size_t)g_threads, sizeof *threads);
    REQUIRE(threads != NULL);
    for (int t = 0; t < g_threads; t++) {
        g_workers[t].id = t + 1;
        rng_seed(&g_workers[t].rng, mix64(seed * 1000003 + (uint64_t)t));
        pthread_mutex_init(&g_workers[t].inbox.lock, NULL);
    }
    threads_start(threads, g_threads, worker_main, g_workers, sizeof g_workers[0]);
    unsigned long allocs = 0, frees = 0, reallocs = 0, sent = 0, received = 0;
    for (int t = 0; t < g_threads; t++) {
        pthread_join(threads[t], NULL);
        allocs += g_workers[t].allocs;
        frees += g_workers[t].frees;
        reallocs += g_workers[t].reallocs;
        sent += g_workers[t].sent;
        received += g_workers[t].received;
    }
    CHECK(allocs == frees);
    CHECK(sent == received);
    printf("stress_mt threads=%d seed=%llu ops=%ld mode=%s allocs=%lu reallocs=%lu frees=%lu "
           "cross=%lu\n",
           g_threads, (unsigned long long)seed, g_ops, g_cross ? "cross" : "local", allocs,
           reallocs, frees, sent);
    free(threads);
    free(g_workers);
    return finish("stress_mt");
}
