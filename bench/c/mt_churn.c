/*
 * mt_churn — threads re-created in rounds share one array of blocks.
 * Args: threads rounds ops_per_thread slots max_size [seed].
 *
 * Each op allocates a block of a linearly random size in 1..max_size (tiny through
 * mid into large), touches it, sometimes reallocs it to another random size, then
 * swaps it into a random slot of a shared array by atomic exchange and frees what it
 * took out: a block usually allocated by another thread, often one that has exited.
 * Every round starts `threads` fresh threads and joins them, so the heaps of exited
 * threads and what they still hold are part of the picture. ops = total allocations.
 */
#include "common.h"

typedef struct {
    long threads, rounds, ops;
    size_t slots, max_size;
    uint64_t seed;
    _Atomic(void *) *slot;
} churn_t;

typedef struct { churn_t *cfg; long round, id; } worker_t;

static void *worker(void *arg) {
    worker_t *w = arg;
    churn_t *cfg = w->cfg;
    rng_t rng;
    rng_seed(&rng, cfg->seed + (uint64_t)w->round * 7919 + (uint64_t)w->id * 104729);
    for (long i = 0; i < cfg->ops; i++) {
        size_t size = rng_range(&rng, 1, cfg->max_size);
        char *p = malloc(size);
        if (!p) die("malloc");
        p[0] = (char)i;
        p[size - 1] = (char)i;
        if (rng_next(&rng) % 8 == 0) {
            size_t grown = rng_range(&rng, 1, cfg->max_size);
            char *q = realloc(p, grown);
            if (!q) die("realloc");
            p = q;
            p[grown - 1] = (char)i;
        }
        size_t at = (size_t)(rng_next(&rng) % cfg->slots);
        void *old = atomic_exchange(&cfg->slot[at], p);
        free(old);
    }
    return NULL;
}

int main(int argc, char **argv) {
    churn_t cfg = {
        .threads = arg_long(argc, argv, 1, 2),
        .rounds = arg_long(argc, argv, 2, 20),
        .ops = arg_long(argc, argv, 3, 20000),
        .slots = (size_t)arg_long(argc, argv, 4, 256),
        .max_size = (size_t)arg_long(argc, argv, 5, 512 * 1024),
        .seed = (uint64_t)arg_long(argc, argv, 6, 42),
    };
    if (cfg.threads < 1 || cfg.threads > 64 || cfg.rounds < 1 || cfg.ops < 1 || cfg.slots < 1 || cfg.max_size < 1) {
        fprintf(stderr, "usage: mt_churn threads(1..64) rounds ops_per_thread slots max_size [seed]\n");
        return 2;
    }
    cfg.slot = calloc(cfg.slots, sizeof *cfg.slot);
    if (!cfg.slot) die("calloc");
    pthread_t tid[64];
    worker_t w[64];
    double t0 = now_sec();
    for (long r = 0; r < cfg.rounds; r++) {
        for (long t = 0; t < cfg.threads; t++) {
            w[t] = (worker_t){ &cfg, r, t };
            if (pthread_create(&tid[t], NULL, worker, &w[t])) die("pthread_create");
        }
        for (long t = 0; t < cfg.threads; t++) pthread_join(tid[t], NULL);
    }
    double secs = now_sec() - t0;
    for (size_t s = 0; s < cfg.slots; s++) free(atomic_load(&cfg.slot[s]));
    free(cfg.slot);
    char extra[64];
    snprintf(extra, sizeof extra, " final_rss_kb=%ld", rss_kib());
    report("mt_churn", (double)(cfg.threads * cfg.rounds * cfg.ops), secs, extra);
    return 0;
}
