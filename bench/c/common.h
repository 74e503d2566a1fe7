/*
 * common.h — helpers shared by every C program of the repository: the bench workloads
 * (bench/c/) and the test programs (test/c/, through test_common.h): a PRNG, a monotonic
 * clock, RSS readings, which shared object serves `malloc`, and the bench's RESULT line.
 *
 * Every program ends with one machine-readable line on stdout:
 *   RESULT bench=<name> ops=<n> secs=<s> ops_per_sec=<r> peak_rss_kb=<k> [key=value ...] malloc_from=<path>
 * bench/runner.ts parses it and rejects the run when malloc_from is not the allocator asked for.
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* splitmix64's finaliser: a good 64-bit mix (seeds, test patterns). mix64(0) == 0. */
static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

/* xorshift64*: deterministic per seed, cheap enough not to dominate a malloc (the bench's
 * instruction counts include it). Seed with rng_seed (any seed, 0 included). */
typedef struct { uint64_t state; } rng_t;

static inline void rng_seed(rng_t *r, uint64_t seed) {
    r->state = seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
    if (r->state == 0) r->state = 1;
}

static inline uint64_t rng_next(rng_t *r) {
    uint64_t x = r->state;
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
    r->state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* Uniform in [lo, hi]. */
static inline uint64_t rng_range(rng_t *r, uint64_t lo, uint64_t hi) {
    return lo + rng_next(r) % (hi - lo + 1);
}

static inline double now_sec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A "Vm...:" field of /proc/self/status in KiB, or -1. */
static inline long proc_status_kib(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long value = -1;
    size_t n = strlen(field);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            value = strtol(line + n + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return value;
}

/* Resident set size now, in KiB. */
static inline long rss_kib(void) { return proc_status_kib("VmRSS"); }

/* Peak RSS of this program: VmHWM, which starts afresh at exec (getrusage's ru_maxrss
 * does not: it keeps the parent's peak across fork+exec). */
static inline long peak_rss_kib(void) { return proc_status_kib("VmHWM"); }

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
           bench, ops, secs, secs > 0 ? ops / secs : 0.0, peak_rss_kib(), extra, malloc_owner());
    fflush(stdout);
}

#endif
