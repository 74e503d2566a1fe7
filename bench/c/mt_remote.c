/*
 * mt_remote — cross-thread frees. Args: threads ops_per_thread remote_percent [min max seed].
 * Each thread allocates min..max bytes per op; remote_percent of the blocks are sent to
 * the next thread, which frees them; the rest live in a local window of 256 blocks and are
 * freed by their owner. ops = total allocations.
 */
#include "ring.h"

#define WINDOW 256

typedef struct {
    long threads, ops, remote_percent;
    size_t min, max;
    uint64_t seed;
    ring_t *rings;            /* rings[t] is thread t's inbox */
    _Atomic long finished;
} mt_t;

typedef struct { mt_t *cfg; long id; } worker_t;

static long drain(ring_t *inbox) {
    long n = 0;
    for (void *p; (p = ring_pop(inbox)) != NULL; n++) free(p);
    return n;
}

static void send_remote(mt_t *cfg, long id, void *p) {
    ring_t *target = &cfg->rings[(id + 1) % cfg->threads];
    while (!ring_push(target, p)) drain(&cfg->rings[id]);
}

static void *worker(void *arg) {
    worker_t *w = arg;
    mt_t *cfg = w->cfg;
    ring_t *inbox = &cfg->rings[w->id];
    void *window[WINDOW] = {0};
    rng_t rng;
    rng_seed(&rng, cfg->seed + (uint64_t)w->id * 104729);
    for (long i = 0; i < cfg->ops; i++) {
        if ((i & 31) == 0) drain(inbox);
        size_t size = rng_range(&rng, cfg->min, cfg->max);
        char *p = malloc(size);
        if (!p) die("malloc");
        p[0] = (char)i;
        if ((long)(rng_next(&rng) % 100) < cfg->remote_percent) {
            send_remote(cfg, w->id, p);
        } else {
            size_t slot = (size_t)i % WINDOW;
            free(window[slot]);
            window[slot] = p;
        }
    }
    for (size_t s = 0; s < WINDOW; s++) free(window[s]);
    atomic_fetch_add(&cfg->finished, 1);
    while (atomic_load(&cfg->finished) < cfg->threads) drain(inbox);
    drain(inbox);
    return NULL;
}

int main(int argc, char **argv) {
    mt_t cfg = {0};
    cfg.threads = arg_long(argc, argv, 1, 2);
    cfg.ops = arg_long(argc, argv, 2, 1000000);
    cfg.remote_percent = arg_long(argc, argv, 3, 50);
    cfg.min = (size_t)arg_long(argc, argv, 4, 16);
    cfg.max = (size_t)arg_long(argc, argv, 5, 2048);
    cfg.seed = (uint64_t)arg_long(argc, argv, 6, 42);
    if (cfg.threads < 2 || cfg.ops <= 0 || cfg.min == 0 || cfg.max < cfg.min) die("arguments");

    cfg.rings = aligned_alloc(64, sizeof(ring_t) * (size_t)cfg.threads);
    pthread_t *tids = calloc((size_t)cfg.threads, sizeof(pthread_t));
    worker_t *workers = calloc((size_t)cfg.threads, sizeof(worker_t));
    if (!cfg.rings || !tids || !workers) die("alloc");
    memset(cfg.rings, 0, sizeof(ring_t) * (size_t)cfg.threads);

    double start = now_sec();
    for (long t = 0; t < cfg.threads; t++) {
        workers[t] = (worker_t){ &cfg, t };
        if (pthread_create(&tids[t], NULL, worker, &workers[t]) != 0) die("pthread_create");
    }
    for (long t = 0; t < cfg.threads; t++) pthread_join(tids[t], NULL);
    double secs = now_sec() - start;

    free(cfg.rings);
    free(tids);
    free(workers);
    char extra[96];
    snprintf(extra, sizeof extra, " threads=%ld remote_percent=%ld", cfg.threads, cfg.remote_percent);
    report("mt_remote", (double)(cfg.threads * cfg.ops), secs, extra);
    return 0;
}
