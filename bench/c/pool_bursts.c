/*
 * pool_bursts — a thread pool that is idle between bursts. Args:
 * threads bursts ops_per_burst max_size idle_ms [seed].
 *
 * `threads` long-lived workers; in each burst every worker does `ops_per_burst`
 * operations on a shared array of slots (allocate a block of 16..max_size bytes, write
 * it, swap it into a random slot by atomic exchange, free what was there: most frees are
 * of other threads' blocks), then the pool empties the slots and sleeps `idle_ms` (no
 * allocator call from anyone). Time counts the bursts only; peak RSS and the RSS after
 * the last idle period (final_rss_kb) show what the idle threads kept. ops = allocations.
 */
#include "common.h"

#define SLOTS 1024

static _Atomic(void *) g_slot[SLOTS];
static pthread_barrier_t g_start, g_end;

typedef struct { long bursts, ops; size_t max_size; uint64_t seed; } pool_t;
typedef struct { pool_t *cfg; long id; } worker_t;

static void *worker(void *arg) {
    worker_t *w = arg;
    rng_t rng;
    rng_seed(&rng, w->cfg->seed + (uint64_t)w->id * 104729);
    for (long b = 0; b < w->cfg->bursts; b++) {
        pthread_barrier_wait(&g_start);
        for (long i = 0; i < w->cfg->ops; i++) {
            size_t size = rng_range(&rng, 16, w->cfg->max_size);
            char *p = malloc(size);
            if (!p) die("malloc");
            p[0] = (char)i;
            p[size - 1] = (char)i;
            free(atomic_exchange(&g_slot[rng_next(&rng) % SLOTS], p));
        }
        pthread_barrier_wait(&g_end);
    }
    return NULL;
}

int main(int argc, char **argv) {
    long threads = arg_long(argc, argv, 1, 2);
    pool_t cfg = {
        .bursts = arg_long(argc, argv, 2, 20),
        .ops = arg_long(argc, argv, 3, 50000),
        .max_size = (size_t)arg_long(argc, argv, 4, 8192),
        .seed = (uint64_t)arg_long(argc, argv, 6, 42),
    };
    long idle_ms = arg_long(argc, argv, 5, 20);
    if (threads < 1 || threads > 64 || cfg.bursts < 1 || cfg.ops < 1 || cfg.max_size < 16 || idle_ms < 0) {
        fprintf(stderr, "usage: pool_bursts threads(1..64) bursts ops_per_burst max_size idle_ms [seed]\n");
        return 2;
    }
    pthread_barrier_init(&g_start, NULL, (unsigned)threads + 1);
    pthread_barrier_init(&g_end, NULL, (unsigned)threads + 1);
    pthread_t tid[64];
    worker_t w[64];
    for (long t = 0; t < threads; t++) {
        w[t] = (worker_t){ &cfg, t };
        if (pthread_create(&tid[t], NULL, worker, &w[t])) die("pthread_create");
    }
    double busy = 0;
    for (long b = 0; b < cfg.bursts; b++) {
        double t0 = now_sec();
        pthread_barrier_wait(&g_start);
        pthread_barrier_wait(&g_end);
        for (size_t s = 0; s < SLOTS; s++) free(atomic_exchange(&g_slot[s], NULL));
        busy += now_sec() - t0;
        sleep_ms(idle_ms);
    }
    long idle_rss = rss_kib();
    for (long t = 0; t < threads; t++) pthread_join(tid[t], NULL);
    char extra[64];
    snprintf(extra, sizeof extra, " final_rss_kb=%ld", idle_rss);
    report("pool_bursts", (double)(threads * cfg.bursts * cfg.ops), busy, extra);
    return 0;
}
