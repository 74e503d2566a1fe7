/*
 * prodcons.c — producer/consumer: producers malloc and fill blocks, consumers check and
 * free them, passing through one bounded queue. Every free is remote, and the number of
 * blocks in flight is bounded, so peak RSS must stay bounded too (remote frees must be
 * reclaimed and reused, not leaked).
 *
 * usage: prodcons PRODUCERS CONSUMERS BLOCKS [PEAK_LIMIT_MIB]
 */
#define _GNU_SOURCE
#include <pthread.h>

#include "test_common.h"

#define BATCH 32
#define QUEUE_BATCHES 64 /* at most 64 * 32 = 2048 blocks queued */

typedef struct {
    unsigned char *ptr[BATCH];
    size_t size[BATCH];
    uint64_t tag[BATCH];
    int count;
} batch_t;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t not_full, not_empty;
    batch_t items[QUEUE_BATCHES];
    int head, count;
    int producers_left;
} g_queue = {.lock = PTHREAD_MUTEX_INITIALIZER,
             .not_full = PTHREAD_COND_INITIALIZER,
             .not_empty = PTHREAD_COND_INITIALIZER};

static long g_blocks_per_producer;

static void push(const batch_t *b) {
    pthread_mutex_lock(&g_queue.lock);
    while (g_queue.count == QUEUE_BATCHES) pthread_cond_wait(&g_queue.not_full, &g_queue.lock);
    g_queue.items[(g_queue.head + g_queue.count) % QUEUE_BATCHES] = *b;
    g_queue.count++;
    pthread_cond_signal(&g_queue.not_empty);
    pthread_mutex_unlock(&g_queue.lock);
}

/* Returns 0 when every producer has finished and the queue is empty. */
static int pop(batch_t *out) {
    pthread_mutex_lock(&g_queue.lock);
    while (g_queue.count == 0 && g_queue.producers_left > 0)
        pthread_cond_wait(&g_queue.not_empty, &g_queue.lock);
    int got = g_queue.count > 0;
    if (got) {
        *out = g_queue.items[g_queue.head];
        g_queue.head = (g_queue.head + 1) % QUEUE_BATCHES;
        g_queue.count--;
        pthread_cond_signal(&g_queue.not_full);
    }
    pthread_mutex_unlock(&g_queue.lock);
    return got;
}

/* Mostly small blocks, some up to 16 KiB, a few up to 256 KiB. */
static size_t random_size(rng_t *r) {
    uint64_t x = rng_next(r) % 1000;
    if (x < 900) return (size_t)rng_range(r, 8, 512);
    if (x < 995) return (size_t)rng_range(r, 513, 16 << 10);
    return (size_t)rng_range(r, (16 << 10) + 1, 256 << 10);
}

static void *producer_main(void *arg) {
    uint64_t id = (uint64_t)(uintptr_t)arg;
    rng_t rng;
    rng_seed(&rng, mix64(id));
    batch_t batch = {0};
    for (long i = 0; i < g_blocks_per_producer; i++) {
        size_t size = random_size(&rng);
        unsigned char *p = malloc(size);
        REQUIRE(p != NULL);
        uint64_t tag = (id << 40) | (uint64_t)i;
        /* head and tail only: the test is about memory reuse, not the speed of fills */
        pattern_fill(p, size < 128 ? size : 64, tag);
        if (size >= 128) pattern_fill(p + size - 64, 64, ~tag);
        batch.ptr[batch.count] = p;
        batch.size[batch.count] = size;
        batch.tag[batch.count] = tag;
        if (++batch.count == BATCH) {
            push(&batch);
            batch.count = 0;
        }
    }
    if (batch.count) push(&batch);
    pthread_mutex_lock(&g_queue.lock);
    g_queue.producers_left--;
    pthread_cond_broadcast(&g_queue.not_empty);
    pthread_mutex_unlock(&g_queue.lock);
    return NULL;
}

static void *consumer_main(void *arg) {
    long *consumed = arg;
    batch_t batch;
    while (pop(&batch)) {
        for (int i = 0; i < batch.count; i++) {
            size_t size = batch.size[i];
            unsigned char *p = batch.ptr[i];
            pattern_ok(p, size < 128 ? size : 64, batch.tag[i], "consumer head");
            if (size >= 128) pattern_ok(p + size - 64, 64, ~batch.tag[i], "consumer tail");
            free(p);
        }
        *consumed += batch.count;
        if ((*consumed & 0x3fff) < BATCH) rss_sample();
    }
    return NULL;
}

int main(int argc, char **argv) {
    const char *usage = "PRODUCERS CONSUMERS BLOCKS [PEAK_LIMIT_MIB]";
    int producers = (int)arg_in_range(argc, argv, 1, 0, 1, 32, usage);
    int consumers = (int)arg_in_range(argc, argv, 2, 0, 1, 32, usage);
    long blocks = arg_in_range(argc, argv, 3, 0, 1, 1L << 40, usage);
    long limit_mib = arg_in_range(argc, argv, 4, 64, 1, 1L << 20, usage);
    require_hakmem();
    g_blocks_per_producer = blocks / producers;
    g_queue.producers_left = producers;
    pthread_t threads[64];
    long consumed[64] = {0};
    REQUIRE(producers + consumers <= 64);
    threads_start(threads, consumers, consumer_main, consumed, sizeof consumed[0]);
    threads_start(threads + consumers, producers, producer_main, NULL, 0);
    threads_join(threads, producers + consumers);
    long total = 0;
    for (int i = 0; i < consumers; i++) total += consumed[i];
    CHECK(total == g_blocks_per_producer * producers);
    long peak = peak_rss_kib();
    printf("prodcons producers=%d consumers=%d blocks=%ld peak_rss=%.1f MiB sampled_peak=%.1f MiB "
           "final_rss=%.1f MiB\n",
           producers, consumers, total, peak / 1024.0, rss_sampled_peak_kib() / 1024.0,
           rss_kib() / 1024.0);
    if (peak > limit_mib * 1024) {
        fprintf(stderr, "peak RSS %.1f MiB exceeds the %ld MiB bound (in flight <= %d blocks)\n",
                peak / 1024.0, limit_mib, (QUEUE_BATCHES + producers + consumers) * BATCH);
        g_failures++;
    }
    return finish("prodcons");
}
