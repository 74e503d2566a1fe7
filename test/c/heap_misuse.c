/*
 * heap_misuse.c — commits one heap misuse (chosen by name), then checks whether the
 * allocator went on handing out every block once. Used by hakmem's own misuse tests
 * (test/misuse.test.ts) and by the bench's `safety` section, which runs it under every
 * allocator. It does not require hakmem: any malloc will do.
 *
 * usage: heap_misuse CASE [SIZE]      SIZE: block size in bytes (default 64)
 *   double_free_adjacent  free(p); free(p)
 *   double_free_apart     free(p); free(q); free(p)
 *   double_free_flushed   free(p); free 4096 other blocks of the size; free(p)
 *   double_free_thread    free(p) on another thread, then free(p) here
 *   double_free_both_threads  free(p) here, then free(p) on another thread
 *   interior_free         free(p + 16)
 *   realloc_freed         free(p); realloc(p, 2 * SIZE)
 *   write_link            free(p); overwrite bytes 0..7 of p (a free-list link)
 *   write_link_8          free(p); overwrite bytes 8..15 of p
 *   clean                 no misuse (the control)
 *
 * After the misuse it allocates blocks of the same size (as many as the caches and pages
 * plausibly hold), fills each with its own pattern and checks that no two are at the same
 * address and no pattern was overwritten. It prints one line on stdout:
 *   CONTAINED            no block was handed out twice; exit 0
 *   DUPLICATE 0x…        a block was handed out twice (or overlapping); exit 3
 * A reporting allocator stops the process before that (abort with a message on stderr).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t g_size = 64;
static void *volatile g_sink;

static void *free_on_thread(void *p) {
    free(p);
    return NULL;
}

static void free_elsewhere(void *p) {
    pthread_t t;
    if (pthread_create(&t, NULL, free_on_thread, p) != 0) {
        perror("pthread_create");
        exit(2);
    }
    pthread_join(t, NULL);
}

/* Frees `count` fresh blocks of the size (enough to push earlier frees out of any cache). */
static void churn(size_t count) {
    void **blocks = calloc(count, sizeof(void *));
    if (!blocks) exit(2);
    for (size_t i = 0; i < count; i++) blocks[i] = malloc(g_size);
    for (size_t i = 0; i < count; i++) free(blocks[i]);
    free(blocks);
}

static int by_address(const void *a, const void *b) {
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

/* Allocates `count` blocks, each tagged with its index in its first and last word; reports
 * the first address handed out twice (or two overlapping blocks). */
static int handed_out_once(size_t count) {
    uintptr_t *blocks = calloc(count, sizeof(uintptr_t));
    if (!blocks) exit(2);
    size_t words = g_size / sizeof(uint64_t);
    for (size_t i = 0; i < count; i++) {
        uint64_t *b = malloc(g_size);
        if (!b) {
            printf("malloc(%zu) returned NULL after the misuse\n", g_size);
            exit(4);
        }
        blocks[i] = (uintptr_t)b;
        if (words) {
            b[0] = 0xB10C000000000000ull | i;
            b[words - 1] = 0xB10C000000000000ull | i;
        }
    }
    for (size_t i = 0; i < count && words; i++) {
        uint64_t *b = (uint64_t *)blocks[i];
        uint64_t want = 0xB10C000000000000ull | i;
        if (b[0] != want || b[words - 1] != want) {
            printf("DUPLICATE 0x%lx (block %zu overwritten by another block)\n", (unsigned long)blocks[i], i);
            return 0;
        }
    }
    qsort(blocks, count, sizeof(uintptr_t), by_address);
    for (size_t i = 1; i < count; i++) {
        if (blocks[i] < blocks[i - 1] + g_size) {
            printf("DUPLICATE 0x%lx\n", (unsigned long)blocks[i]);
            return 0;
        }
    }
    for (size_t i = 0; i < count; i++) free((void *)blocks[i]);
    free(blocks);
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: heap_misuse CASE [SIZE]\n");
        return 2;
    }
    const char *c = argv[1];
    if (argc > 2) g_size = strtoull(argv[2], NULL, 10);
    if (g_size < 16) g_size = 16;
    setvbuf(stdout, NULL, _IONBF, 0);

    char *p = malloc(g_size);
    char *q = malloc(g_size);
    if (!p || !q) return 2;
    memset(p, 1, g_size);
    memset(q, 2, g_size);
    int misuse_done = 1;
    if (!strcmp(c, "clean")) {
        free(p);
        free(q);
    } else if (!strcmp(c, "double_free_adjacent")) {
        free(p);
        free(p);
        free(q);
    } else if (!strcmp(c, "double_free_apart")) {
        free(p);
        free(q);
        free(p);
    } else if (!strcmp(c, "double_free_flushed")) {
        free(p);
        churn(g_size <= 4096 ? 4096 : 64);
        free(p);
        free(q);
    } else if (!strcmp(c, "double_free_thread")) {
        free_elsewhere(p);
        free(p);
        free(q);
    } else if (!strcmp(c, "double_free_both_threads")) {
        free(p);
        free_elsewhere(p);
        free(q);
    } else if (!strcmp(c, "interior_free")) {
        free(p + 16);
        free(q);
    } else if (!strcmp(c, "realloc_freed")) {
        free(p);
        g_sink = realloc(p, 2 * g_size);
        free(q);
    } else if (!strcmp(c, "write_link")) {
        free(p);
        memset(p, 0x41, 8);
        free(q);
    } else if (!strcmp(c, "write_link_8")) {
        free(p);
        memset(p + 8, 0x41, 8);
        free(q);
    } else {
        fprintf(stderr, "heap_misuse: unknown case %s\n", c);
        misuse_done = 0;
    }
    if (!misuse_done) return 2;
    size_t count = g_size <= 4096 ? 2048 : g_size <= (1u << 20) ? 64 : 8;
    for (int round = 0; round < 3; round++) {
        if (!handed_out_once(count)) return 3;
    }
    printf("CONTAINED\n");
    return 0;
}
