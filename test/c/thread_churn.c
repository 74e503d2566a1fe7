/*
 * thread_churn.c — thousands of short-lived threads. Each allocates a mix of blocks, frees
 * half itself and hands the other half to a long-lived collector thread, which frees them
 * only after the allocating thread has exited. Memory of dead threads must be reused or
 * returned: RSS at the end (300 ms after the last free, past the purge delay) must stay small.
 *
 * usage: thread_churn THREADS WAVE_SIZE BLOCKS_PER_THREAD [RSS_LIMIT_MIB]
 */
#define _GNU_SOURCE
#include <pthread.h>

#include "test_common.h"

typedef struct {
    unsigned char *ptr;
    size_t size;
    uint64_t tag;
} block_t;

/* The blocks a thread leaves behind; allocated by the thread, freed by the collector. */
typedef struct handoff {
    struct handoff *next;
    int count;
    block_t blocks[];
} handoff_t;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t ready;    /* work arrived, or done */
    pthread_cond_t progress; /* a handoff was freed */
    handoff_t *head;
    int done;
    long handed, collected; /* handoffs given / freed */
    long freed;             /* blocks */
} g_collector = {.lock = PTHREAD_MUTEX_INITIALIZER,
                 .ready = PTHREAD_COND_INITIALIZER,
                 .progress = PTHREAD_COND_INITIALIZER};

static int g_blocks_per_thread;

/* Mostly small, some mid, very few large (1–2 MiB). */
static size_t random_size(rng_t *r) {
    uint64_t x = rng_next(r) % 1000;
    if (x < 850) return (size_t)rng_range(r, 8, 512);
    if (x < 980) return (size_t)rng_range(r, 513, 16 << 10);
    if (x < 997) return (size_t)rng_range(r, (16 << 10) + 1, 256 << 10);
    return (size_t)rng_range(r, (1 << 20) + 1, 2 << 20);
}

typedef struct {
    long index;
    handoff_t *left_behind;
} worker_arg_t;

static void *worker_main(void *arg) {
    worker_arg_t *a = arg;
    rng_t rng;
    rng_seed(&rng, mix64((uint64_t)a->index + 1));
    int n = g_blocks_per_thread;
    block_t *blocks = malloc((size_t)n * sizeof *blocks);
    REQUIRE(blocks != NULL);
    for (int i = 0; i < n; i++) {
        blocks[i].size = random_size(&rng);
        blocks[i].ptr = malloc(blocks[i].size);
        REQUIRE(blocks[i].ptr != NULL);
        blocks[i].tag = ((uint64_t)a->index << 32) | (uint64_t)i;
        pattern_fill(blocks[i].ptr, blocks[i].size, blocks[i].tag);
    }
    handoff_t *h = malloc(sizeof *h + (size_t)(n / 2) * sizeof(block_t));
    REQUIRE(h != NULL);
    h->count = 0;
    for (int i = 0; i < n; i++) {
        if (i % 2) {
            h->blocks[h->count++] = blocks[i];
        } else {
            pattern_ok(blocks[i].ptr, blocks[i].size, blocks[i].tag, "freed by its thread");
            free(blocks[i].ptr);
        }
    }
    free(blocks);
    a->left_behind = h;
    return NULL;
}

static void *collector_main(void *unused) {
    (void)unused;
    pthread_mutex_lock(&g_collector.lock);
    for (;;) {
        while (!g_collector.head && !g_collector.done)
            pthread_cond_wait(&g_collector.ready, &g_collector.lock);
        handoff_t *list = g_collector.head;
        g_collector.head = NULL;
        if (!list && g_collector.done) break;
        pthread_mutex_unlock(&g_collector.lock);
        while (list) {
            handoff_t *next = list->next;
            for (int i = 0; i < list->count; i++) {
                block_t *b = &list->blocks[i];
                pattern_ok(b->ptr, b->size, b->tag, "freed by the collector");
                free(b->ptr);
            }
            pthread_mutex_lock(&g_collector.lock);
            g_collector.freed += list->count;
            g_collector.collected++;
            pthread_cond_signal(&g_collector.progress);
            pthread_mutex_unlock(&g_collector.lock);
            free(list);
            list = next;
        }
        pthread_mutex_lock(&g_collector.lock);
    }
    pthread_mutex_unlock(&g_collector.lock);
    return NULL;
}

static void hand_to_collector(handoff_t *h) {
    pthread_mutex_lock(&g_collector.lock);
    h->next = g_collector.head;
    g_collector.head = h;
    g_collector.handed++;
    pthread_cond_signal(&g_collector.ready);
    pthread_mutex_unlock(&g_collector.lock);
}

/* Keeps the collector at most `limit` handoffs behind, so memory in flight stays bounded
 * whatever the scheduling (the collector still frees each wave after its threads exited). */
static void wait_for_collector(long limit) {
    pthread_mutex_lock(&g_collector.lock);
    while (g_collector.handed - g_collector.collected > limit)
        pthread_cond_wait(&g_collector.progress, &g_collector.lock);
    pthread_mutex_unlock(&g_collector.lock);
}

/* How long the program keeps running (lightly) after the last free before it measures RSS. */
enum { SETTLE_MS = 300 };

/* A few dozen short-lived small blocks: what a program does between bursts. */
static void light_activity(rng_t *r) {
    enum { N = 64 };
    void *blocks[N];
    for (int i = 0; i < N; i++) {
        blocks[i] = malloc((size_t)rng_range(r, 16, 1024));
        REQUIRE(blocks[i] != NULL);
    }
    for (int i = 0; i < N; i++) free(blocks[i]);
}

int main(int argc, char **argv) {
    const char *usage = "THREADS WAVE_SIZE BLOCKS_PER_THREAD [RSS_LIMIT_MIB]";
    long threads = arg_in_range(argc, argv, 1, 0, 1, 1L << 30, usage);
    int wave = (int)arg_in_range(argc, argv, 2, 0, 1, 64, usage);
    g_blocks_per_thread = (int)arg_in_range(argc, argv, 3, 0, 2, 1 << 20, usage);
    long limit_mib = arg_in_range(argc, argv, 4, 32, 1, 1L << 20, usage);
    require_hakmem();
    pthread_t collector;
    REQUIRE(pthread_create(&collector, NULL, collector_main, NULL) == 0);
    pthread_t ids[64];
    worker_arg_t args[64];
    long started = 0;
    while (started < threads) {
        wait_for_collector(wave);
        int n = (int)(threads - started < wave ? threads - started : wave);
        for (int i = 0; i < n; i++) {
            args[i].index = started + i;
            args[i].left_behind = NULL;
            REQUIRE(pthread_create(&ids[i], NULL, worker_main, &args[i]) == 0);
        }
        for (int i = 0; i < n; i++) pthread_join(ids[i], NULL);
        /* every thread of this wave has exited: now its blocks may be freed */
        for (int i = 0; i < n; i++) {
            REQUIRE(args[i].left_behind != NULL);
            hand_to_collector(args[i].left_behind);
        }
        started += n;
    }
    pthread_mutex_lock(&g_collector.lock);
    g_collector.done = 1;
    pthread_cond_signal(&g_collector.ready);
    pthread_mutex_unlock(&g_collector.lock);
    pthread_join(collector, NULL);
    CHECK(g_collector.freed == threads * (g_blocks_per_thread / 2));
    /* Right after the last free, empty pages and cached large blocks are still resident:
     * they are purged after HAKMEM_PURGE_DELAY_MS (50 ms by default). The bound applies
     * once that delay has passed a few times over, with the program still running. */
    long rss_at_last_free = rss_kib();
    rng_t rng;
    rng_seed(&rng, mix64((uint64_t)threads));
    for (int ms = 0; ms < SETTLE_MS; ms += 10) {
        light_activity(&rng);
        sleep_ms(10);
    }
    long rss = rss_kib();
    printf("thread_churn threads=%ld wave=%d blocks_per_thread=%d rss_at_last_free=%.1f MiB "
           "rss=%.1f MiB (after %d ms) peak_rss=%.1f MiB\n",
           threads, wave, g_blocks_per_thread, rss_at_last_free / 1024.0, rss / 1024.0, SETTLE_MS,
           peak_rss_kib() / 1024.0);
    if (rss > limit_mib * 1024) {
        fprintf(stderr, "RSS %d ms after the last of %ld threads is %.1f MiB, above the %ld MiB bound\n",
                SETTLE_MS, threads, rss / 1024.0, limit_mib);
        g_failures++;
    }
    return finish("thread_churn");
}
