/*
 * larson — server simulation (after Larson & Krishnan). Args: threads rounds
 * replacements_per_round [blocks_per_thread min max seed].
 * Each thread owns an array of blocks and, every round, frees and re-allocates random
 * blocks of it; between rounds the arrays rotate to the next thread, so blocks are freed
 * by a thread other than the one that allocated them. ops = total replacements.
 */
#include "common.h"

typedef struct {
    long threads, rounds, per_round, blocks;
    size_t min, max;
    void ***arrays;
    pthread_barrier_t barrier;
} larson_t;

typedef struct { larson_t *cfg; long id; uint64_t seed; } worker_t;

static void replace_blocks(larson_t *cfg, void **array, rng_t *rng) {
    for (long i = 0; i < cfg->per_round; i++) {
        size_t slot = (size_t)(rng_next(rng) % (uint64_t)cfg->blocks);
        free(array[slot]);
        size_t size = rng_range(rng, cfg->min, cfg->max);
        char *p = malloc(size);
        if (!p) die("malloc");
        p[0] = (char)i;
        p[size - 1] = (char)i;
        array[slot] = p;
    }
}

static void *worker(void *arg) {
    worker_t *w = arg;
    larson_t *cfg = w->cfg;
    rng_t rng;
    rng_seed(&rng, w->seed);
    for (long round = 0; round < cfg->rounds; round++) {
        void **array = cfg->arrays[(w->id + round) % cfg->threads];
        replace_blocks(cfg, array, &rng);
        pthread_barrier_wait(&cfg->barrier);
    }
    return NULL;
}

static void fill_arrays(larson_t *cfg, uint64_t seed) {
    rng_t rng;
    rng_seed(&rng, seed ^ 0xABCDEFull);
    cfg->arrays = calloc((size_t)cfg->threads, sizeof(void **));
    if (!cfg->arrays) die("calloc");
    for (long t = 0; t < cfg->threads; t++) {
        cfg->arrays[t] = calloc((size_t)cfg->blocks, sizeof(void *));
        if (!cfg->arrays[t]) die("calloc");
        for (long b = 0; b < cfg->blocks; b++) {
            cfg->arrays[t][b] = malloc(rng_range(&rng, cfg->min, cfg->max));
            if (!cfg->arrays[t][b]) die("malloc");
        }
    }
}

int main(int argc, char **argv) {
    larson_t cfg;
    cfg.threads = arg_long(argc, argv, 1, 2);
    cfg.rounds = arg_long(argc, argv, 2, 100);
    cfg.per_round = arg_long(argc, argv, 3, 10000);
    cfg.blocks = arg_long(argc, argv, 4, 1024);
    cfg.min = (size_t)arg_long(argc, argv, 5, 8);
    cfg.max = (size_t)arg_long(argc, argv, 6, 1024);
    uint64_t seed = (uint64_t)arg_long(argc, argv, 7, 42);
    if (cfg.threads <= 0 || cfg.rounds <= 0 || cfg.blocks <= 0 || cfg.min == 0 || cfg.max < cfg.min)
        die("arguments");

    fill_arrays(&cfg, seed);
    pthread_barrier_init(&cfg.barrier, NULL, (unsigned)cfg.threads);
    pthread_t *tids = calloc((size_t)cfg.threads, sizeof(pthread_t));
    worker_t *workers = calloc((size_t)cfg.threads, sizeof(worker_t));
    if (!tids || !workers) die("calloc");

    double start = now_sec();
    for (long t = 0; t < cfg.threads; t++) {
        workers[t] = (worker_t){ &cfg, t, seed + (uint64_t)t * 7919 };
        if (pthread_create(&tids[t], NULL, worker, &workers[t]) != 0) die("pthread_create");
    }
    for (long t = 0; t < cfg.threads; t++) pthread_join(tids[t], NULL);
    double secs = now_sec() - start;

    for (long t = 0; t < cfg.threads; t++) {
        for (long b = 0; b < cfg.blocks; b++) free(cfg.arrays[t][b]);
        free(cfg.arrays[t]);
    }
    free(cfg.arrays);
    free(tids);
    free(workers);
    pthread_barrier_destroy(&cfg.barrier);
    char extra[64];
    snprintf(extra, sizeof extra, " threads=%ld", cfg.threads);
    report("larson", (double)(cfg.threads * cfg.rounds * cfg.per_round), secs, extra);
    return 0;
}
