/*
 * foreign_free.c — pointers hakmem did not allocate. Blocks come from the real libc
 * allocator (glibc's __libc_malloc family, and malloc looked up inside libc.so.6 itself);
 * plain free(), realloc() and malloc_usable_size() under preload must handle them safely:
 * hakmem recognises them as not its own and hands them to the next allocator.
 */
#define _GNU_SOURCE
#include <malloc.h>

#include "test_common.h"

typedef void *(*malloc_fn)(size_t);
typedef void *(*memalign_fn)(size_t, size_t);
typedef void *(*calloc_fn)(size_t, size_t);

static malloc_fn g_real_malloc;
static calloc_fn g_real_calloc;
static memalign_fn g_real_memalign;

static const size_t sizes[] = {1, 24, 100, 1000, 4000, 40000, 200000, 4 << 20};
#define N_SIZES (sizeof sizes / sizeof sizes[0])

static void find_real_allocator(void) {
    g_real_malloc = (malloc_fn)dlsym(RTLD_DEFAULT, "__libc_malloc");
    g_real_calloc = (calloc_fn)dlsym(RTLD_DEFAULT, "__libc_calloc");
    g_real_memalign = (memalign_fn)dlsym(RTLD_DEFAULT, "__libc_memalign");
    REQUIRE(g_real_malloc && g_real_calloc && g_real_memalign);
    if (!system_mode()) {
        CHECK(strstr(object_of((void *)g_real_malloc), "libc.so") != NULL);
        CHECK((void *)g_real_malloc != dlsym(RTLD_DEFAULT, "malloc"));
    }
}

/* malloc as defined inside libc.so.6 (a handle lookup starts at libc, not at the preload). */
static malloc_fn libc_own_malloc(void) {
    void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    REQUIRE(libc != NULL);
    malloc_fn fn = (malloc_fn)dlsym(libc, "malloc");
    dlclose(libc);
    REQUIRE(fn != NULL);
    CHECK(strstr(object_of((void *)fn), "libc.so") != NULL);
    return fn;
}

static void test_free(malloc_fn alloc, const char *what) {
    for (size_t i = 0; i < N_SIZES; i++) {
        unsigned char *p = alloc(sizes[i]);
        REQUIRE(p != NULL);
        pattern_fill(p, sizes[i], i);
        pattern_ok(p, sizes[i], i, what);
        errno = 555;
        free(p);
        CHECK(errno == 555);
    }
}

static void test_usable_size(void) {
    for (size_t i = 0; i < N_SIZES; i++) {
        unsigned char *p = g_real_malloc(sizes[i]);
        REQUIRE(p != NULL);
        size_t usable = malloc_usable_size(p);
        printf("foreign malloc_usable_size(%zu) = %zu\n", sizes[i], usable);
        if (usable) {
            CHECK(usable >= sizes[i]);
            memset(p, 0x42, usable);
        }
        free(p);
    }
}

static void test_realloc(void) {
    for (size_t i = 0; i < N_SIZES; i++) {
        for (size_t k = 0; k < N_SIZES; k++) {
            unsigned char *p = g_real_malloc(sizes[i]);
            REQUIRE(p != NULL);
            pattern_fill(p, sizes[i], i * 100 + k);
            unsigned char *q = realloc(p, sizes[k]);
            REQUIRE(q != NULL);
            size_t keep = sizes[i] < sizes[k] ? sizes[i] : sizes[k];
            pattern_ok(q, keep, i * 100 + k, "realloc of a foreign block");
            memset(q, 0x24, sizes[k]);
            free(q);
        }
    }
}

static void test_calloc_and_memalign(void) {
    unsigned char *c = g_real_calloc(100, 100);
    REQUIRE(c != NULL);
    for (int i = 0; i < 10000; i++) CHECK(c[i] == 0);
    free(c);
    for (size_t a = 16; a <= 65536; a *= 4) {
        void *p = g_real_memalign(a, 3000);
        REQUIRE(p != NULL);
        CHECK(is_aligned(p, a));
        free(p);
    }
}

/* Foreign and own blocks interleaved, freed in mixed order. */
static void test_interleaved(void) {
    enum { N = 2000 };
    static void *blocks[N];
    for (int i = 0; i < N; i++) {
        blocks[i] = i % 2 ? malloc((size_t)(i % 700) + 1) : g_real_malloc((size_t)(i % 700) + 1);
        REQUIRE(blocks[i] != NULL);
        memset(blocks[i], i & 0xff, (size_t)(i % 700) + 1);
    }
    for (int i = N - 1; i >= 0; i -= 3) free(blocks[i]), blocks[i] = NULL;
    for (int i = 0; i < N; i++)
        if (blocks[i]) free(blocks[i]);
}

int main(void) {
    require_hakmem();
    find_real_allocator();
    test_free(g_real_malloc, "__libc_malloc block");
    test_free(libc_own_malloc(), "libc.so.6 malloc block");
    test_usable_size();
    test_realloc();
    test_calloc_and_memalign();
    test_interleaved();
    return finish("foreign_free");
}
