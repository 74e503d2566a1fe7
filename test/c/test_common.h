/*
 * test_common.h — shared helpers of the C test programs in test/c/: CHECK/REQUIRE macros,
 * the "is hakmem really serving malloc?" check and tag patterns. The PRNG, the clock and the
 * RSS readers are bench/c/common.h's (one copy for every C program of the repository).
 *
 * Also the setup the multi-threaded programs share: arg_in_range (checked argv numbers, the
 * usage on a bad one), threads_start/threads_join (workers with one argument each) and
 * rss_sample/rss_sampled_peak_kib (a peak of VmRSS sampled by the workers themselves).
 *
 * Every program calls require_hakmem() first. With HAKMEM_TEST_SYSTEM=1 in the environment
 * the check is skipped, so the same programs can be validated against the system allocator.
 */
#ifndef HAKMEM_TEST_COMMON_H
#define HAKMEM_TEST_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../bench/c/common.h"

static int g_failures;

/* Non-fatal check: reports file:line and the expression, counts the failure. */
#define CHECK(expr)                                                                   \
    do {                                                                              \
        if (!(expr)) {                                                                \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #expr);  \
            __atomic_add_fetch(&g_failures, 1, __ATOMIC_RELAXED);                      \
        }                                                                             \
    } while (0)

/* Fatal check: for conditions after which continuing would crash or mislead. */
#define REQUIRE(expr)                                                                 \
    do {                                                                              \
        if (!(expr)) {                                                                \
            fprintf(stderr, "%s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__, #expr); \
            fflush(NULL);                                                             \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

/* Prints the verdict line the Bun runner looks for and returns the exit code. */
static inline int finish(const char *name) {
    if (__atomic_load_n(&g_failures, __ATOMIC_RELAXED)) {
        printf("FAIL %s: %d check(s) failed\n", name, g_failures);
        return 1;
    }
    printf("PASS %s\n", name);
    return 0;
}

static inline int system_mode(void) {
    const char *v = getenv("HAKMEM_TEST_SYSTEM");
    return v && *v && strcmp(v, "0") != 0;
}

/* Path of the shared object that defines the code at addr, or "?". */
static inline const char *object_of(const void *addr) {
    Dl_info info;
    if (addr && dladdr(addr, &info) && info.dli_fname) return info.dli_fname;
    return "?";
}

/* Exits with a clear message unless malloc (as this program calls it, and as the dynamic
 * linker resolves it by name) lives in libhakmem and hak_version is visible. */
static inline void require_hakmem(void) {
    if (system_mode()) {
        printf("allocator: system (HAKMEM_TEST_SYSTEM set)\n");
        return;
    }
    const char *(*version)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "hak_version");
    if (!version) {
        fprintf(stderr, "NOT PRELOADED: hak_version is not visible; run with LD_PRELOAD=libhakmem.so\n");
        exit(2);
    }
    void *(*volatile direct)(size_t) = malloc;
    const char *by_name = object_of(dlsym(RTLD_DEFAULT, "malloc"));
    const char *by_call = object_of((const void *)direct);
    if (!strstr(by_name, "hakmem") || !strstr(by_call, "hakmem")) {
        fprintf(stderr, "NOT SERVED BY HAKMEM: malloc resolves to %s (by name) / %s (called)\n",
                by_name, by_call);
        exit(2);
    }
    printf("allocator: hakmem %s\n", version());
}

/* Is the named libc entry point defined by libhakmem? (always 1 in system mode) */
static inline int served_by_hakmem(const char *symbol) {
    if (system_mode()) return 1;
    return strstr(object_of(dlsym(RTLD_DEFAULT, symbol)), "hakmem") != NULL;
}

/* Looks up an optional hak_* function; NULL when absent (system mode or older library). */
static inline void *hak_symbol(const char *name) { return dlsym(RTLD_DEFAULT, name); }

/* ---- command line ------------------------------------------------------------------ */

/* argv[i] as a whole number in [min, max]; `fallback` when argv has no i-th argument (a
 * fallback below min makes the argument required). Anything else prints the usage line
 * and exits 2, so a typo never runs with a silent 0 (what atoi gives). */
static inline long arg_in_range(int argc, char **argv, int i, long fallback, long min, long max, const char *usage) {
    if (i >= argc) {
        if (fallback >= min) return fallback;
        fprintf(stderr, "usage: %s %s\n", argv[0], usage);
        exit(2);
    }
    char *end = NULL;
    errno = 0;
    long v = strtol(argv[i], &end, 10);
    if (errno != 0 || end == argv[i] || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "%s: argument %d is %s, expected a whole number in [%ld, %ld]\nusage: %s %s\n",
                argv[0], i, argv[i], min, max, argv[0], usage);
        exit(2);
    }
    return v;
}

/* ---- threads ------------------------------------------------------------------------ */

/* Starts n threads running fn; thread t gets (char *)args + t * arg_size, or the number
 * t + 1 (as a pointer) when args is NULL. */
static inline void threads_start(pthread_t *ids, int n, void *(*fn)(void *), void *args, size_t arg_size) {
    for (int t = 0; t < n; t++) {
        void *arg = args ? (void *)((char *)args + (size_t)t * arg_size) : (void *)(uintptr_t)(t + 1);
        REQUIRE(pthread_create(&ids[t], NULL, fn, arg) == 0);
    }
}

static inline void threads_join(pthread_t *ids, int n) {
    for (int t = 0; t < n; t++) REQUIRE(pthread_join(ids[t], NULL) == 0);
}

/* ---- RSS sampled while the program runs ----------------------------------------------- */

static long g_rss_sampled_peak_kib;

/* Reads VmRSS now and raises the sampled peak (any thread; lock-free). */
static inline void rss_sample(void) {
    long rss = rss_kib();
    long seen = __atomic_load_n(&g_rss_sampled_peak_kib, __ATOMIC_RELAXED);
    while (rss > seen && !__atomic_compare_exchange_n(&g_rss_sampled_peak_kib, &seen, rss, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
}

static inline long rss_sampled_peak_kib(void) { return __atomic_load_n(&g_rss_sampled_peak_kib, __ATOMIC_RELAXED); }

/* ---- patterns (the PRNG is common.h's) ------------------------------------------- */

/* The pattern word at word index i of a block tagged tag. */
static inline uint64_t pattern_word(uint64_t tag, size_t i) {
    return mix64(tag * 0x2545f4914f6cdd1dULL + i);
}

/* Fills n bytes at p with the pattern of tag. */
static inline void pattern_fill(void *p, size_t n, uint64_t tag) {
    unsigned char *b = (unsigned char *)p;
    size_t words = n / 8, i;
    for (i = 0; i < words; i++) {
        uint64_t w = pattern_word(tag, i);
        __builtin_memcpy(b + i * 8, &w, 8);
    }
    if (n % 8) {
        uint64_t w = pattern_word(tag, words);
        memcpy(b + words * 8, &w, n % 8);
    }
}

/* Offset of the first byte in [0, n) that differs from tag's pattern, or -1. */
static inline long pattern_find_damage(const void *p, size_t n, uint64_t tag) {
    const unsigned char *b = (const unsigned char *)p;
    size_t words = n / 8, i;
    for (i = 0; i < words; i++) {
        uint64_t w = pattern_word(tag, i), got;
        __builtin_memcpy(&got, b + i * 8, 8);
        if (got != w) {
            for (size_t k = 0; k < 8; k++)
                if (((const unsigned char *)&w)[k] != b[i * 8 + k]) return (long)(i * 8 + k);
        }
    }
    if (n % 8) {
        uint64_t w = pattern_word(tag, words);
        for (size_t k = 0; k < n % 8; k++)
            if (((const unsigned char *)&w)[k] != b[words * 8 + k]) return (long)(words * 8 + k);
    }
    return -1;
}

/* Checks a block's pattern; on damage prints where and counts a failure. Returns 1 if ok. */
static inline int pattern_ok(const void *p, size_t n, uint64_t tag, const char *what) {
    long at = pattern_find_damage(p, n, tag);
    if (at < 0) return 1;
    static int reports;
    if (__atomic_add_fetch(&reports, 1, __ATOMIC_RELAXED) <= 20)
        fprintf(stderr, "CORRUPTION (%s): block %p size %zu tag %#llx differs at offset %ld\n", what,
                p, n, (unsigned long long)tag, at);
    __atomic_add_fetch(&g_failures, 1, __ATOMIC_RELAXED);
    return 0;
}

static inline int is_aligned(const void *p, size_t alignment) {
    return ((uintptr_t)p & (alignment - 1)) == 0;
}

#endif
