/*
 * false_sharing — allocator-induced false sharing, after Hoard's cache-thrash and
 * cache-scratch. Args: mode(thrash|scratch) threads iterations repetitions [objsize].
 * Each thread, `iterations` times: allocates a small object, writes each of its bytes
 * `repetitions` times, frees it. In scratch mode each thread first frees an object that
 * the main thread allocated (neighbours in memory), inviting the allocator to hand the
 * threads blocks on one shared cache line. ops = objects allocated and written.
 */
#include "common.h"

typedef struct { long iterations, repetitions; size_t objsize; char *initial; } fs_t;

static void write_object(volatile char *p, size_t objsize, long repetitions) {
    for (long r = 0; r < repetitions; r++)
        for (size_t k = 0; k < objsize; k++) p[k] = (char)(p[k] + 1);
}

static void *worker(void *arg) {
    fs_t *cfg = arg;
    if (cfg->initial) {
        write_object(cfg->initial, cfg->objsize, cfg->repetitions);
        free(cfg->initial);
    }
    for (long i = 0; i < cfg->iterations; i++) {
        char *p = malloc(cfg->objsize);
        if (!p) die("malloc");
        write_object(p, cfg->objsize, cfg->repetitions);
        free(p);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) die("arguments (mode)");
    int scratch = strcmp(argv[1], "scratch") == 0;
    long threads = arg_long(argc, argv, 2, 2);
    long iterations = arg_long(argc, argv, 3, 10000);
    long repetitions = arg_long(argc, argv, 4, 1000);
    size_t objsize = (size_t)arg_long(argc, argv, 5, 8);
    if (threads <= 0 || iterations <= 0 || repetitions <= 0 || objsize == 0) die("arguments");

    fs_t *cfgs = calloc((size_t)threads, sizeof(fs_t));
    pthread_t *tids = calloc((size_t)threads, sizeof(pthread_t));
    if (!cfgs || !tids) die("calloc");
    for (long t = 0; t < threads; t++) {
        cfgs[t] = (fs_t){ iterations, repetitions, objsize, NULL };
        if (scratch) {
            cfgs[t].initial = malloc(objsize);
            if (!cfgs[t].initial) die("malloc");
            memset(cfgs[t].initial, 0, objsize);
        }
    }

    double start = now_sec();
    for (long t = 0; t < threads; t++)
        if (pthread_create(&tids[t], NULL, worker, &cfgs[t]) != 0) die("pthread_create");
    for (long t = 0; t < threads; t++) pthread_join(tids[t], NULL);
    double secs = now_sec() - start;

    free(cfgs);
    free(tids);
    char extra[64];
    snprintf(extra, sizeof extra, " mode=%s threads=%ld", scratch ? "scratch" : "thrash", threads);
    report("false_sharing", (double)(threads * iterations), secs, extra);
    return 0;
}
