/*
 * check_sites.c — check mode names where a block was allocated and freed (issue 21): the
 * reports of an overflow, a write after free and a double free carry the return addresses
 * of this program's malloc/realloc and free calls, each inside the function that made it.
 * usage: check_sites CASE SIZE
 *   overflow            alloc_block(SIZE), one byte past it, free_block
 *   realloc_overflow    alloc_block(16), realloc_block to SIZE, one byte past it, free_block
 *   write_after_free    alloc_block(SIZE), free_block, a store at offset 8, hak_check_heap
 *   double_free         alloc_block(SIZE), free_block, free_again
 *   write_after_free_reused  alloc_block(SIZE), free_block, a store at offset SIZE/2, then 20000
 *                       malloc/free pairs of SIZE (the block leaves the quarantine and is
 *                       handed out again: its poison is verified then)
 *   double_free_reused  alloc_block(SIZE), free_block, 20000 malloc/free pairs of another
 *                       size (the block leaves the quarantine), free_again
 *   write_after_free_left  a thread: alloc_block(SIZE), free_block, a store at offset 0, then
 *                       20000 malloc/free pairs of another size (the block leaves the
 *                       quarantine, never handed out again), then it waits while main
 *                       calls hak_check_heap and exits
 * First prints "FUNCS alloc=<addr> realloc=<addr> free=<addr> again=<addr> main=<addr>" (the functions
 * that call the allocator: each call's return address lies a few bytes into one of them)
 * and, after the misuse, "reached end". Built with -fno-omit-frame-pointer by the test that
 * asks for backtraces (HAKMEM_CHECK_STACKS=1): then main is a frame above each of them.
 */
#include "test_common.h"

static volatile int sink;

/* Not tail calls (the return address would be main's): each does something after its call. */
__attribute__((noinline)) static unsigned char *alloc_block(size_t n) {
    unsigned char *p = malloc(n);
    sink = p != NULL;
    return p;
}

__attribute__((noinline)) static unsigned char *realloc_block(unsigned char *p, size_t n) {
    unsigned char *q = realloc(p, n);
    sink = q != NULL;
    return q;
}

__attribute__((noinline)) static void free_block(unsigned char *p) {
    free(p);
    sink = 1;
}

__attribute__((noinline)) static void free_again(unsigned char *p) {
    free(p);
    sink = 2;
}

static size_t left_size;
static pthread_mutex_t left_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t left_done = PTHREAD_COND_INITIALIZER;
static int left_ready;

static void churn(size_t size);

/* write_after_free_left's thread: it never returns (the process exits under it). */
static void *leave_freed_block(void *arg) {
    (void)arg;
    unsigned char *p = alloc_block(left_size);
    free_block(p);
    ((volatile unsigned char *)p)[0] = 1;
    churn(left_size * 2 + 64);
    pthread_mutex_lock(&left_mutex);
    left_ready = 1;
    pthread_cond_broadcast(&left_done);
    for (;;) pthread_cond_wait(&left_done, &left_mutex);
    return NULL;
}

/* Allocates and frees blocks of SIZE bytes, more than check mode's quarantine holds. */
static void churn(size_t size) {
    for (int i = 0; i < 20000; i++) {
        void *volatile q = malloc(size);
        free(q);
    }
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    const char *c = argv[1];
    size_t n = strtoul(argv[2], NULL, 10);
    printf("FUNCS alloc=%p realloc=%p free=%p again=%p main=%p\n", (void *)alloc_block, (void *)realloc_block, (void *)free_block, (void *)free_again, (void *)main);
    fflush(stdout);
    if (!strcmp(c, "overflow")) {
        unsigned char *p = alloc_block(n);
        ((volatile unsigned char *)p)[n] = 1;
        free_block(p);
    } else if (!strcmp(c, "realloc_overflow")) {
        unsigned char *p = realloc_block(alloc_block(16), n);
        ((volatile unsigned char *)p)[n] = 1;
        free_block(p);
    } else if (!strcmp(c, "write_after_free")) {
        unsigned char *p = alloc_block(n);
        free_block(p);
        ((volatile unsigned char *)p)[8] = 1;
        size_t (*check_heap)(void) = (size_t (*)(void))dlsym(RTLD_DEFAULT, "hak_check_heap");
        if (check_heap) check_heap();
    } else if (!strcmp(c, "double_free")) {
        unsigned char *p = alloc_block(n);
        free_block(p);
        free_again(p);
    } else if (!strcmp(c, "write_after_free_reused")) {
        unsigned char *p = alloc_block(n);
        free_block(p);
        ((volatile unsigned char *)p)[n / 2] = 1;
        churn(n);
    } else if (!strcmp(c, "write_after_free_left")) {
        left_size = n;
        pthread_t t;
        pthread_create(&t, NULL, leave_freed_block, NULL);
        pthread_mutex_lock(&left_mutex);
        while (!left_ready) pthread_cond_wait(&left_done, &left_mutex);
        pthread_mutex_unlock(&left_mutex);
        size_t (*check_heap)(void) = (size_t (*)(void))dlsym(RTLD_DEFAULT, "hak_check_heap");
        if (check_heap) check_heap();
    } else if (!strcmp(c, "double_free_reused")) {
        unsigned char *p = alloc_block(n);
        free_block(p);
        churn(n * 2 + 64);
        free_again(p);
    } else {
        return 2;
    }
    printf("reached end\n");
    return 0;
}
