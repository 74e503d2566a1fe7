/*
 * common.h — shared helpers of the bench workload programs: a fast PRNG, a monotonic
 * clock, RSS readings, which shared object serves `malloc`, and the RESULT line.
 *
 * Every program ends with one machine-readable line on stdout:
 *   RESULT bench=<name> ops=<n> secs=<s> ops_per_sec=<r> peak_rss_kb=<k> [key=value ...] malloc_from=<path>
 * bench/runner.ts parses it and rejects the run when malloc_from is not the allocator asked for.
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* xorshift64*: deterministic per seed, cheap enough not to dominate a malloc. */
typedef struct { uint64_t s; } rng_t;

static inline void rng_seed(rng_t *r, uint64_t seed) {
    r->s = seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
    if (r->s == 0) r->s = 1;
}

static inline uint64_t rng_next(rng_t *r) {
    uint64_t x = r->s;
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
    r->s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* Uniform in [lo, hi]. */
static inline size_t rng_range(rng_t *r, size_t lo, size_t hi) {
    return lo + (size_t)(rng_next(r) % (uint64_t)(hi - lo + 1));
}

static inline double now_sec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Peak RSS of this program: VmHWM of /proc/self/status, which starts afresh at exec
 * (getrusage's ru_maxrss does not: it keeps the parent's peak across fork+exec). */
static inline long peak_rss_kb(void) {
    char line[256];
    long kb = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) { kb = strtol(line + 6, NULL, 10); break; }
    fclose(f);
    return kb;
}

static inline long current_rss_kb(void) {
    long pages_total = 0, pages_resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    if (fscanf(f, "%ld %ld", &pages_total, &pages_resident) != 2) pages_resident = -1;
    fclose(f);
    return pages_resident < 0 ? -1 : pages_resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* The object that defines the `malloc` this program calls: looked up the way the
 * dynamic linker binds it (global scope: executable, LD_PRELOAD, then dependencies). */
static inline const char *malloc_owner(void) {
    void *fn = dlsym(RTLD_DEFAULT, "malloc");
    Dl_info info;
    if (fn && dladdr(fn, &info) && info.dli_fname && info.dli_fname[0]) return info.dli_fname;
    return "unknown";
}

static inline long arg_long(int argc, char **argv, int index, long fallback) {
    return argc > index ? strtol(argv[index], NULL, 10) : fallback;
}

static inline void die(const char *what) {
    fprintf(stderr, "%s failed\n", what);
    exit(2);
}

/* Prints the RESULT line; `extra` is "" or " key=value ..." (leading space). */
static inline void report(const char *bench, double ops, double secs, const char *extra) {
    printf("RESULT bench=%s ops=%.0f secs=%.6f ops_per_sec=%.1f peak_rss_kb=%ld%s malloc_from=%s\n",
           bench, ops, secs, secs > 0 ? ops / secs : 0.0, peak_rss_kb(), extra, malloc_owner());
    fflush(stdout);
}

#endif
