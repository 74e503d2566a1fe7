/*
 * cross_double_free.c — a double free by a second thread that does not own the blocks:
 * the main thread allocates `count` blocks of `size` bytes, thread B frees them all, then
 * thread C frees the same pointers again, through `free` or `hak_free` (argv[1]). B and C
 * stay alive (their caches keep what they hold) while the main thread allocates on,
 * collecting its pages' remote frees. Regression (issue 21): the second copies went to the
 * owner's remote-free lists, whose collect then aborted with "heap corruption: a page's
 * remote-free list is longer than its blocks in use". Expected now: `free` reports a double
 * free and aborts (as glibc); `hak_free` returns HAK_ERR_DOUBLE_FREE for each copy it can see
 * and the rest are contained; the program prints "CONTAINED <rejected>" and exits 0.
 * Usage: cross_double_free free|hak_free <size> <count> [flush]
 *   flush: B gives its cache back (hak_collect) before C frees (the copies then race the
 *   blocks on the owner's remote-free list instead of B's cache).
 */
#define _GNU_SOURCE
#include <pthread.h>

#include "test_common.h"

static void **blocks;
static int count;
static int use_hak;
static int flush_first;
static int rejected;
static int (*hak_free_fn)(void *);
static void (*hak_collect_fn)(int);
static pthread_barrier_t step;

static void release(void) {
    for (int i = 0; i < count; i++) {
        if (use_hak) {
            if (hak_free_fn(blocks[i]) != 0) rejected++;
        } else {
            free(blocks[i]);
        }
    }
}

static void *thread_b(void *arg) {
    (void)arg;
    void *mine = malloc(32); /* a heap of its own, like a Bun worker's */
    release();
    if (flush_first) hak_collect_fn(1);
    pthread_barrier_wait(&step); /* freed */
    pthread_barrier_wait(&step); /* C is done, the owner collected */
    free(mine);
    return NULL;
}

static void *thread_c(void *arg) {
    (void)arg;
    void *mine = malloc(32);
    release();
    free(mine);
    return NULL;
}

int main(int argc, char **argv) {
    require_hakmem();
    if (argc < 4) return 2;
    use_hak = !strcmp(argv[1], "hak_free");
    size_t size = strtoul(argv[2], NULL, 10);
    count = atoi(argv[3]);
    flush_first = argc > 4 && !strcmp(argv[4], "flush");
    hak_free_fn = (int (*)(void *))dlsym(RTLD_DEFAULT, "hak_free");
    hak_collect_fn = (void (*)(int))dlsym(RTLD_DEFAULT, "hak_collect");
    REQUIRE(hak_free_fn && hak_collect_fn);
    blocks = malloc(sizeof(void *) * (size_t)count);
    for (int i = 0; i < count; i++) {
        blocks[i] = malloc(size);
        memset(blocks[i], 0x5a, size);
    }
    pthread_barrier_init(&step, NULL, 2);
    pthread_t b, c;
    pthread_create(&b, NULL, thread_b, NULL);
    pthread_barrier_wait(&step);
    pthread_create(&c, NULL, thread_c, NULL);
    pthread_join(c, NULL);
    /* the owner takes its remote frees back, page by page, as it allocates */
    for (int round = 0; round < 4; round++) {
        void *more[512];
        for (int i = 0; i < 512; i++) more[i] = malloc(size);
        for (int i = 0; i < 512; i++) free(more[i]);
        hak_collect_fn(1);
    }
    pthread_barrier_wait(&step);
    pthread_join(b, NULL);
    free(blocks);
    printf("CONTAINED %d\nPASS cross_double_free\n", rejected);
    return g_failures ? 1 : 0;
}
