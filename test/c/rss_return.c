/*
 * rss_return.c — memory goes back to the OS after a big free. Two threads allocate about
 * 1 GiB in mixed blocks (16 B..256 KiB plus some 1–4 MiB) and touch it; then they free
 * everything and keep up light activity (every 10 ms a few hundred malloc/free) while the
 * main thread samples RSS for up to 2 s. The final RSS must be at most 10% of the peak
 * (hakmem targets 5%). glibc is expected to fail this; run it under hakmem only.
 *
 * usage: rss_return [TOTAL_MIB] [MAX_RATIO_PERCENT]
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <unistd.h>

#include "test_common.h"

#define THREADS 2
#define MAX_BLOCKS (1 << 18)
#define TARGET_PERCENT 5

typedef struct {
    int id;
    size_t budget;
    unsigned char **blocks;
    size_t count;
} worker_t;

static pthread_barrier_t g_allocated, g_freed;
static volatile int g_stop;

/* Log-uniform over 16 B..256 KiB, and 3% of blocks 1–4 MiB. */
static size_t random_size(rng_t *r) {
    if (rng_next(r) % 100 < 3) return (size_t)rng_range(r, 1 << 20, 4 << 20);
    unsigned shift = 4 + (unsigned)(rng_next(r) % 14);
    return (size_t)rng_range(r, (uint64_t)1 << shift, ((uint64_t)2 << shift) - 1);
}

/* A few hundred short-lived blocks of mixed sizes. */
static void light_activity(rng_t *r) {
    enum { N = 300 };
    void *blocks[N];
    for (int i = 0; i < N; i++) {
        size_t s = rng_next(r) % 10 ? (size_t)rng_range(r, 16, 2048) : (size_t)rng_range(r, 2049, 64 << 10);
        blocks[i] = malloc(s);
        REQUIRE(blocks[i] != NULL);
        memset(blocks[i], 0x11, s < 256 ? s : 256);
    }
    for (int i = 0; i < N; i++) free(blocks[i]);
}

static void *worker_main(void *arg) {
    worker_t *w = arg;
    rng_t rng;
    rng_seed(&rng, mix64((uint64_t)w->id + 99));
    size_t total = 0;
    while (total < w->budget && w->count < MAX_BLOCKS) {
        size_t s = random_size(&rng);
        unsigned char *p = malloc(s);
        REQUIRE(p != NULL);
        memset(p, (int)(w->count & 0xff) | 1, s);
        w->blocks[w->count++] = p;
        total += s;
    }
    pthread_barrier_wait(&g_allocated); /* main records the peak */
    pthread_barrier_wait(&g_allocated);
    for (size_t i = 0; i < w->count; i++) {
        CHECK(w->blocks[i][0] == ((i & 0xff) | 1));
        free(w->blocks[i]);
    }
    pthread_barrier_wait(&g_freed);
    while (!g_stop) {
        light_activity(&rng);
        sleep_ms(10);
    }
    return NULL;
}

int main(int argc, char **argv) {
    const char *usage = "[TOTAL_MIB] [MAX_RATIO_PERCENT]";
    size_t total_mib = (size_t)arg_in_range(argc, argv, 1, 1024, 1, 1L << 20, usage);
    long max_percent = arg_in_range(argc, argv, 2, 10, 1, 100, usage);
    require_hakmem();
    worker_t workers[THREADS];
    pthread_t ids[THREADS];
    pthread_barrier_init(&g_allocated, NULL, THREADS + 1);
    pthread_barrier_init(&g_freed, NULL, THREADS + 1);
    for (int t = 0; t < THREADS; t++) {
        workers[t].id = t;
        workers[t].budget = (total_mib << 20) / THREADS;
        workers[t].blocks = calloc(MAX_BLOCKS, sizeof(unsigned char *));
        workers[t].count = 0;
        REQUIRE(workers[t].blocks != NULL);
    }
    threads_start(ids, THREADS, worker_main, workers, sizeof workers[0]);
    pthread_barrier_wait(&g_allocated);
    long peak = rss_kib();
    pthread_barrier_wait(&g_allocated);
    pthread_barrier_wait(&g_freed);
    long final = rss_kib();
    int elapsed_ms = 0;
    while (elapsed_ms < 2000 && final * 100 > peak * TARGET_PERCENT) {
        sleep_ms(10);
        elapsed_ms += 10;
        final = rss_kib();
    }
    g_stop = 1;
    for (int t = 0; t < THREADS; t++) pthread_join(ids[t], NULL);
    size_t blocks = 0;
    for (int t = 0; t < THREADS; t++) {
        blocks += workers[t].count;
        free(workers[t].blocks);
    }
    double ratio = peak > 0 ? (double)final / (double)peak : 1.0;
    printf("rss_return blocks=%zu peak_rss=%.1f MiB final_rss=%.1f MiB ratio=%.1f%% after %d ms\n",
           blocks, peak / 1024.0, final / 1024.0, ratio * 100.0, elapsed_ms);
    if (final * 100 > peak * max_percent) {
        fprintf(stderr, "final RSS %.1f MiB is %.1f%% of the peak %.1f MiB (limit %ld%%)\n",
                final / 1024.0, ratio * 100.0, peak / 1024.0, max_percent);
        g_failures++;
    }
    return finish("rss_return");
}
