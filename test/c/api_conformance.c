/*
 * api_conformance.c — every libc allocation entry point behaves as glibc documents it:
 * alignment, failure (NULL + ENOMEM / EINVAL), overflow checks, errno preservation,
 * calloc zeroing on reuse, realloc across tiers, usable sizes. Run preloaded with hakmem.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>
#include <unistd.h>

#include "test_common.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

/* Called through volatile pointers so the compiler cannot fold or elide any call. */
static void *(*volatile f_malloc)(size_t) = malloc;
static void *(*volatile f_calloc)(size_t, size_t) = calloc;
static void *(*volatile f_realloc)(void *, size_t) = realloc;
static void *(*volatile f_reallocarray)(void *, size_t, size_t) = reallocarray;
static int (*volatile f_posix_memalign)(void **, size_t, size_t) = posix_memalign;
static void *(*volatile f_aligned_alloc)(size_t, size_t) = aligned_alloc;
static void *(*volatile f_memalign)(size_t, size_t) = memalign;
static void *(*volatile f_valloc)(size_t) = valloc;
static void *(*volatile f_pvalloc)(size_t) = pvalloc;
static void (*volatile f_free)(void *) = free;

static const size_t huge_sizes[] = {
    SIZE_MAX,           SIZE_MAX - 1,          SIZE_MAX - 15,          SIZE_MAX - 4096,
    SIZE_MAX - 4 * MiB, SIZE_MAX / 2 + 1,      SIZE_MAX / 2,           (size_t)PTRDIFF_MAX,
    (size_t)1 << 62,    ((size_t)1 << 62) + 1, ((size_t)1 << 57) + 17,
};
#define N_HUGE (sizeof huge_sizes / sizeof huge_sizes[0])

/* Sizes spanning all tiers, including the default thresholds and their neighbours. */
static const size_t tier_sizes[] = {
    1,        8,        15,       16,      17,      24,       48,       63,       64,
    65,       100,      128,      255,     256,     257,      512,      1000,     1023,
    1024,     1025,     1500,     2048,    4095,    4096,     4097,     8000,     16 * KiB,
    32 * KiB, 64 * KiB, 65 * KiB, 100 * KiB, 256 * KiB, 512 * KiB, MiB - 1, MiB,   MiB + 1,
    2 * MiB,  3 * MiB + 5, 8 * MiB,
};
#define N_TIER (sizeof tier_sizes / sizeof tier_sizes[0])

static void test_entry_points_are_hakmem(void) {
    static const char *names[] = {
        "malloc",   "free",   "calloc", "realloc",            "reallocarray", "posix_memalign",
        "aligned_alloc", "memalign", "valloc", "pvalloc", "malloc_usable_size", "cfree",
        "malloc_trim", "mallinfo2",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!served_by_hakmem(names[i])) {
            fprintf(stderr, "entry point %s is defined by %s, not libhakmem\n", names[i],
                    object_of(dlsym(RTLD_DEFAULT, names[i])));
            g_failures++;
        }
    }
}

static void test_malloc_alignment_and_usable_size(void) {
    for (size_t s = 0; s <= 2048; s++) {
        unsigned char *p = f_malloc(s);
        REQUIRE(p != NULL);
        CHECK(is_aligned(p, 16));
        size_t usable = malloc_usable_size(p);
        CHECK(usable >= s);
        memset(p, 0x5a, usable);
        f_free(p);
    }
    for (size_t i = 0; i < N_TIER; i++) {
        size_t s = tier_sizes[i];
        unsigned char *p = f_malloc(s);
        REQUIRE(p != NULL);
        CHECK(is_aligned(p, 16));
        size_t usable = malloc_usable_size(p);
        CHECK(usable >= s);
        memset(p, 0x5a, usable);
        CHECK(p[usable - 1] == 0x5a && p[0] == 0x5a);
        f_free(p);
    }
    CHECK(malloc_usable_size(NULL) == 0);
}

static void test_failure_is_null_enomem(void) {
    for (size_t i = 0; i < N_HUGE; i++) {
        size_t s = huge_sizes[i];
        errno = 0;
        void *p = f_malloc(s);
        if (p != NULL) fprintf(stderr, "malloc(%zu) succeeded\n", s);
        CHECK(p == NULL);
        CHECK(errno == ENOMEM);
        f_free(p);

        errno = 0;
        p = f_calloc(1, s);
        CHECK(p == NULL && errno == ENOMEM);
        errno = 0;
        p = f_realloc(NULL, s);
        CHECK(p == NULL && errno == ENOMEM);
        errno = 0;
        p = f_aligned_alloc(64, s);
        CHECK(p == NULL && errno == ENOMEM);
        errno = 0;
        p = f_memalign(4096, s);
        CHECK(p == NULL && errno == ENOMEM);
        errno = 0;
        p = f_valloc(s);
        CHECK(p == NULL && errno == ENOMEM);
        errno = 0;
        p = f_pvalloc(s); /* rounding up to a page must not wrap around */
        CHECK(p == NULL && errno == ENOMEM);
        void *sentinel = (void *)0x1234;
        p = sentinel;
        CHECK(f_posix_memalign(&p, 64, s) == ENOMEM);
        p = sentinel;
        CHECK(f_posix_memalign(&p, 4 * MiB, s) == ENOMEM);
    }
    /* A valid but unsatisfiable alignment is ENOMEM, not EINVAL. */
    void *p = NULL;
    CHECK(f_posix_memalign(&p, (size_t)1 << 62, 16) == ENOMEM);
}

static void test_overflow_checks(void) {
    static const size_t pairs[][2] = {
        {SIZE_MAX, 2},          {2, SIZE_MAX},          {SIZE_MAX / 2 + 1, 2},
        {(size_t)1 << 32, (size_t)1 << 32}, {SIZE_MAX, SIZE_MAX}, {((size_t)1 << 33) + 1, (size_t)1 << 31},
        {SIZE_MAX / 16 + 1, 16},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        errno = 0;
        void *p = f_calloc(pairs[i][0], pairs[i][1]);
        CHECK(p == NULL);
        CHECK(errno == ENOMEM);
        errno = 0;
        p = f_reallocarray(NULL, pairs[i][0], pairs[i][1]);
        CHECK(p == NULL);
        CHECK(errno == ENOMEM);

        unsigned char *old = f_malloc(100);
        REQUIRE(old != NULL);
        pattern_fill(old, 100, 7);
        errno = 0;
        p = f_reallocarray(old, pairs[i][0], pairs[i][1]);
        CHECK(p == NULL && errno == ENOMEM);
        pattern_ok(old, 100, 7, "reallocarray overflow");
        f_free(old);
    }
    /* Non-overflowing products work. */
    unsigned char *p = f_calloc(1000, 1000);
    REQUIRE(p != NULL);
    for (size_t i = 0; i < 1000 * 1000; i += 4093) CHECK(p[i] == 0);
    p = f_reallocarray(p, 3000, 1000);
    REQUIRE(p != NULL);
    memset(p, 1, 3000 * 1000);
    f_free(p);
}

static void test_failed_realloc_keeps_block(void) {
    for (size_t i = 0; i < N_TIER; i++) {
        size_t s = tier_sizes[i];
        unsigned char *p = f_malloc(s);
        REQUIRE(p != NULL);
        pattern_fill(p, s, s);
        for (size_t k = 0; k < N_HUGE; k++) {
            errno = 0;
            void *q = f_realloc(p, huge_sizes[k]);
            CHECK(q == NULL);
            CHECK(errno == ENOMEM);
            if (q) p = q;
        }
        pattern_ok(p, s, s, "failed realloc");
        f_free(p);
    }
}

static void test_malloc_zero(void) {
    enum { N = 200 };
    void *blocks[N];
    for (int i = 0; i < N; i++) {
        blocks[i] = f_malloc(0);
        REQUIRE(blocks[i] != NULL);
        CHECK(is_aligned(blocks[i], 16));
        for (int k = 0; k < i; k++) CHECK(blocks[k] != blocks[i]);
    }
    for (int i = 0; i < N; i++) f_free(blocks[i]);
    void *p = f_calloc(0, 0);
    CHECK(p != NULL);
    f_free(p);
    p = f_realloc(NULL, 0);
    CHECK(p != NULL);
    f_free(p);
}

/* glibc (this interface's rule, zig/hakmem.h): realloc(p, 0) frees p and returns NULL. */
static void test_realloc_zero_frees(void) {
    for (size_t i = 0; i < N_TIER; i++) {
        void *p = f_malloc(tier_sizes[i]);
        REQUIRE(p != NULL);
        CHECK(f_realloc(p, 0) == NULL);
    }
}

/*
 * aligned_alloc as glibc 2.36 (where it is memalign): an alignment that is not a power of
 * two is rounded up to one; only one above SIZE_MAX/2 + 1 is EINVAL. Regression: hakmem
 * returned NULL/EINVAL for aligned_alloc(3, 100), which glibc serves.
 */
static void test_aligned_alloc_follows_glibc(void) {
    static const size_t served[] = {0, 1, 2, 3, 8, 24, 48, 100, 4097, 3 * 4096 + 1, 65537, (size_t)1 << 20};
    for (size_t i = 0; i < sizeof served / sizeof served[0]; i++) {
        size_t a = served[i];
        size_t want = 16;
        while (want < a) want *= 2;
        errno = 0;
        unsigned char *p = f_aligned_alloc(a, 100);
        if (p == NULL) fprintf(stderr, "aligned_alloc(%zu, 100) failed, errno %d\n", a, errno);
        REQUIRE(p != NULL);
        CHECK(is_aligned(p, want));
        memset(p, 0x3c, 100);
        f_free(p);
        p = f_memalign(a, 100);
        REQUIRE(p != NULL);
        CHECK(is_aligned(p, want));
        f_free(p);
    }
    static const size_t unsatisfiable[] = {(size_t)1 << 62, ((size_t)1 << 62) + 1, (size_t)1 << 63};
    for (size_t i = 0; i < sizeof unsatisfiable / sizeof unsatisfiable[0]; i++) {
        errno = 0;
        CHECK(f_aligned_alloc(unsatisfiable[i], 100) == NULL && errno == ENOMEM);
        errno = 0;
        CHECK(f_memalign(unsatisfiable[i], 100) == NULL && errno == ENOMEM);
    }
    static const size_t invalid[] = {((size_t)1 << 63) + 1, SIZE_MAX};
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        errno = 0;
        CHECK(f_aligned_alloc(invalid[i], 100) == NULL && errno == EINVAL);
        errno = 0;
        CHECK(f_memalign(invalid[i], 100) == NULL && errno == EINVAL);
    }
}

static void test_free_null_and_errno(void) {
    errno = 4321;
    f_free(NULL);
    CHECK(errno == 4321);
    for (size_t i = 0; i < N_TIER; i++) {
        void *p = f_malloc(tier_sizes[i]);
        REQUIRE(p != NULL);
        errno = 4321;
        f_free(p);
        CHECK(errno == 4321);
    }
    /* Also when many blocks die at once (pages/mappings may be released). */
    enum { N = 300 };
    void *blocks[N];
    for (int i = 0; i < N; i++) blocks[i] = f_malloc(tier_sizes[i % N_TIER]);
    for (int i = 0; i < N; i++) {
        errno = 77;
        f_free(blocks[i]);
        CHECK(errno == 77);
    }
}

static void test_posix_memalign_einval(void) {
    static const size_t bad[] = {0, 1, 2, 4, 3, 12, 24, 48, 96, 100, 4097, 3 * 4096,
                                 ((size_t)1 << 63) + 8, SIZE_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        void *sentinel = (void *)0xdeadbeef;
        void *p = sentinel;
        int rc = f_posix_memalign(&p, bad[i], 64);
        if (rc != EINVAL) fprintf(stderr, "posix_memalign(alignment %zu) returned %d\n", bad[i], rc);
        CHECK(rc == EINVAL);
        CHECK(p == sentinel);
    }
}

static void test_alignments(void) {
    for (size_t a = 1; a <= 4 * MiB; a *= 2) {
        size_t sizes[] = {1, a / 2 + 1, a, a + 1, 3 * a + 7, 100};
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            size_t s = sizes[k];
            size_t want = a < 16 ? 16 : a;
            if (a >= sizeof(void *)) {
                void *p = NULL;
                CHECK(f_posix_memalign(&p, a, s) == 0);
                REQUIRE(p != NULL);
                CHECK(is_aligned(p, want));
                CHECK(malloc_usable_size(p) >= s);
                memset(p, 0xa5, s);
                f_free(p);
            }
            unsigned char *p = f_aligned_alloc(a, s);
            REQUIRE(p != NULL);
            CHECK(is_aligned(p, want));
            memset(p, 0xa6, s);
            f_free(p);
            p = f_memalign(a, s);
            REQUIRE(p != NULL);
            CHECK(is_aligned(p, want));
            memset(p, 0xa7, s);
            /* realloc of an aligned block keeps content */
            pattern_fill(p, s, a);
            unsigned char *q = f_realloc(p, s * 2 + 1);
            REQUIRE(q != NULL);
            pattern_ok(q, s, a, "realloc of aligned block");
            f_free(q);
        }
    }
    /* Many aligned blocks alive at once do not overlap. */
    enum { N = 64 };
    unsigned char *blocks[N];
    for (int i = 0; i < N; i++) {
        size_t a = (size_t)16 << (i % 10);
        blocks[i] = f_aligned_alloc(a, 48 + i * 40);
        REQUIRE(blocks[i] != NULL);
        CHECK(is_aligned(blocks[i], a));
        pattern_fill(blocks[i], 48 + i * 40, i);
    }
    for (int i = 0; i < N; i++) {
        pattern_ok(blocks[i], 48 + i * 40, i, "aligned blocks");
        f_free(blocks[i]);
    }
}

static void test_page_aligned(void) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t sizes[] = {1, 100, page - 1, page, page + 1, 70000, 3 * MiB};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t s = sizes[k];
        unsigned char *p = f_valloc(s);
        REQUIRE(p != NULL);
        CHECK(is_aligned(p, page));
        memset(p, 1, s);
        f_free(p);
        p = f_pvalloc(s);
        REQUIRE(p != NULL);
        CHECK(is_aligned(p, page));
        size_t rounded = (s + page - 1) / page * page;
        CHECK(malloc_usable_size(p) >= rounded);
        memset(p, 2, rounded);
        f_free(p);
    }
    unsigned char *p = f_pvalloc(0); /* glibc rounds 0 to 0: a minimal, page-aligned block */
    REQUIRE(p != NULL);
    CHECK(is_aligned(p, page));
    memset(p, 3, malloc_usable_size(p));
    f_free(p);
}

static int all_zero(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

static void test_calloc_zero_after_reuse(void) {
    static const size_t sizes[] = {8, 16, 24, 100, 512, 1000, 1024, 1500, 4000, 16 * KiB,
                                   100 * KiB, 512 * KiB, MiB, MiB + 1, 2 * MiB, 5 * MiB};
    enum { N = 8 };
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t s = sizes[k];
        for (int round = 0; round < 3; round++) {
            unsigned char *blocks[N];
            for (int i = 0; i < N; i++) {
                blocks[i] = f_malloc(s);
                REQUIRE(blocks[i] != NULL);
                memset(blocks[i], 0xab, malloc_usable_size(blocks[i]));
            }
            for (int i = N - 1; i >= 0; i--) f_free(blocks[i]);
            for (int i = 0; i < N; i++) {
                blocks[i] = i % 2 ? f_calloc(1, s) : s % 8 ? f_calloc(s, 1) : f_calloc(s / 8, 8);
                REQUIRE(blocks[i] != NULL);
                if (!all_zero(blocks[i], s)) {
                    fprintf(stderr, "calloc(%zu) after a dirty free is not zero\n", s);
                    g_failures++;
                }
                memset(blocks[i], 0xcd, s);
            }
            for (int i = 0; i < N; i++) f_free(blocks[i]);
        }
    }
}

static void test_realloc_across_tiers(void) {
    static const size_t path[] = {16, 100 * KiB, 8 * MiB, 100 * KiB, 16, 8 * MiB, 16, 1, 3000,
                                  MiB + 3, 40, MiB - 1, 2 * MiB, 5 * MiB};
    size_t n = sizeof path / sizeof path[0];
    unsigned char *p = f_realloc(NULL, path[0]);
    REQUIRE(p != NULL);
    pattern_fill(p, path[0], 1);
    for (size_t i = 1; i < n; i++) {
        size_t keep = path[i] < path[i - 1] ? path[i] : path[i - 1];
        unsigned char *q = f_realloc(p, path[i]);
        REQUIRE(q != NULL);
        CHECK(is_aligned(q, 16));
        CHECK(malloc_usable_size(q) >= path[i]);
        pattern_ok(q, keep, i, "realloc across tiers");
        pattern_fill(q, path[i], i + 1);
        p = q;
    }
    f_free(p);
    /* Growing by small steps from 1 byte to 3 MiB and back. */
    size_t s = 1;
    p = f_malloc(s);
    REQUIRE(p != NULL);
    pattern_fill(p, s, 99);
    while (s < 3 * MiB) {
        size_t next = s + s / 3 + 1;
        p = f_realloc(p, next);
        REQUIRE(p != NULL);
        pattern_ok(p, s, 99, "realloc grow");
        pattern_fill(p, next, 99);
        s = next;
    }
    while (s > 1) {
        s = s * 2 / 3;
        p = f_realloc(p, s);
        REQUIRE(p != NULL);
        pattern_ok(p, s, 99, "realloc shrink");
    }
    f_free(p);
}

static void test_misc_entry_points(void) {
    void (*cfree_fn)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "cfree");
    if (!system_mode()) CHECK(cfree_fn != NULL);
    if (cfree_fn) {
        void *p = f_malloc(123);
        REQUIRE(p != NULL);
        cfree_fn(p);
    }
    int trimmed = malloc_trim(0);
    CHECK(trimmed == 0 || trimmed == 1);
    void *keep = f_malloc(5000);
    struct mallinfo2 info = mallinfo2();
    (void)info;
    f_free(keep);
    malloc_trim(64 * KiB);
}

int main(void) {
    require_hakmem();
    test_entry_points_are_hakmem();
    test_malloc_alignment_and_usable_size();
    test_failure_is_null_enomem();
    test_overflow_checks();
    test_failed_realloc_keeps_block();
    test_malloc_zero();
    test_realloc_zero_frees();
    test_aligned_alloc_follows_glibc();
    test_free_null_and_errno();
    test_posix_memalign_einval();
    test_alignments();
    test_page_aligned();
    test_calloc_zero_after_reuse();
    test_realloc_across_tiers();
    test_misc_entry_points();
    return finish("api_conformance");
}
