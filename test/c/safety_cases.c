/*
 * safety_cases.c — one heap misuse per run, at a chosen block size (every tier): what check
 * mode (HAKMEM_CHECK=1/warn) reports and what normal mode survives (issue 21).
 * usage: safety_cases CASE SIZE
 *   clean                 allocate, write every byte, free
 *   overflow_1            one byte past the requested size, by a store
 *   overflow_32           32 bytes past it, by memcpy
 *   overflow_1m           1 MiB past the requested size, by memset (large: the guard page)
 *   underflow_1           the byte before the block, by a store
 *   underflow_32          the 32 bytes before it, by memcpy (of a block allocated second)
 *   write_after_free_0    a store at offset 0, 8 and SIZE/2 of a freed block
 *   zero_after_free       memset of a freed block to 0
 *   read_after_free       prints the first 16 bytes of a freed block ("FREED xx xx …")
 *   zero_size_write       malloc(0), then a store through the pointer
 *   zero_size_read        malloc(0), then a load through the pointer
 *   double_free_thread    thread B frees the block, thread C frees it again
 * Then calls hak_check_heap (a sweep, in check mode) and prints "reached end".
 */
#define _GNU_SOURCE
#include <pthread.h>

#include "test_common.h"

static volatile unsigned char *block;

static void *free_block(void *arg) {
    (void)arg;
    free((void *)block);
    return NULL;
}

static void free_on_two_threads(void) {
    pthread_t b, c;
    pthread_create(&b, NULL, free_block, NULL);
    pthread_join(b, NULL);
    pthread_create(&c, NULL, free_block, NULL);
    pthread_join(c, NULL);
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    const char *c = argv[1];
    size_t n = strtoul(argv[2], NULL, 10);
    unsigned char src[64];
    memset(src, 0x41, sizeof src);
    unsigned char *before = malloc(n); /* a neighbour allocated first */
    unsigned char *p = malloc(n);
    REQUIRE(before && p);
    memset(p, 0x11, n);
    if (!strcmp(c, "clean")) {
        free(p);
    } else if (!strcmp(c, "overflow_1")) {
        p[n] = 1;
        free(p);
    } else if (!strcmp(c, "overflow_32")) {
        memcpy(p + n, src, 32);
        free(p);
    } else if (!strcmp(c, "overflow_1m")) {
        memset(p + n, 0x41, 1u << 20);
        free(p);
    } else if (!strcmp(c, "underflow_1")) {
        p[-1] = 1;
        free(p);
    } else if (!strcmp(c, "underflow_32")) {
        memcpy(p - 32, src, 32);
        free(p);
    } else if (!strcmp(c, "write_after_free_0")) {
        free(p);
        ((volatile unsigned char *)p)[0] = 1;
        ((volatile unsigned char *)p)[8] = 1;
        ((volatile unsigned char *)p)[n / 2] = 1;
    } else if (!strcmp(c, "zero_after_free")) {
        free(p);
        memset(p, 0, n);
    } else if (!strcmp(c, "read_after_free")) {
        free(p);
        printf("FREED");
        for (int i = 0; i < 16; i++) printf(" %02x", ((volatile unsigned char *)p)[i]);
        printf("\n");
    } else if (!strcmp(c, "zero_size_write")) {
        free(p);
        unsigned char *z = malloc(0);
        REQUIRE(z != NULL);
        ((volatile unsigned char *)z)[0] = 1;
        free(z);
    } else if (!strcmp(c, "zero_size_read")) {
        free(p);
        unsigned char *z = malloc(0);
        REQUIRE(z != NULL);
        printf("zero-size block holds %d\n", ((volatile unsigned char *)z)[0]);
        free(z);
    } else if (!strcmp(c, "double_free_thread")) {
        block = p;
        free_on_two_threads();
    } else {
        return 2;
    }
    free(before);
    size_t (*check_heap)(void) = (size_t (*)(void))dlsym(RTLD_DEFAULT, "hak_check_heap");
    if (check_heap) check_heap();
    printf("reached end\n");
    return 0;
}
