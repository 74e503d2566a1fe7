/*
 * lifecycle.c — allocation at the edges of a process's and a thread's life:
 *   - in a constructor, before main;
 *   - in pthread key destructors while a thread exits (destructors that free, allocate
 *     again and re-arm the key), in detached threads and after pthread_exit;
 *   - blocks of exited threads freed by main, in an atexit handler and in a destructor;
 *   - exit() while other threads are still allocating.
 * Success is printed last, from the destructor; any failure ends the process with exit 1.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <unistd.h>

#include "test_common.h"

#define THREADS 64
#define KEPT 16

typedef struct {
    unsigned char *ptr;
    size_t size;
    uint64_t tag;
} block_t;

static block_t g_from_constructor[8];
static block_t g_left_by_threads[THREADS][KEPT];
static pthread_key_t g_key;
static int g_destructor_calls;
static volatile int g_busy_forever = 1;

/* All tiers; one size in 32 is large (2 MiB). */
static size_t size_for(uint64_t i) {
    static const size_t sizes[] = {8, 40, 100, 700, 3000, 20000, 70000, 300000};
    if (i % 32 == 31) return (size_t)(2 << 20) + (size_t)(i % 13);
    return sizes[i % 8] + (size_t)(i % 13);
}

static void block_new(block_t *b, size_t size, uint64_t tag) {
    b->ptr = malloc(size);
    REQUIRE(b->ptr != NULL);
    b->size = size;
    b->tag = tag;
    pattern_fill(b->ptr, size, tag);
}

static void block_free(block_t *b, const char *what) {
    if (!b->ptr) return;
    pattern_ok(b->ptr, b->size, b->tag, what);
    free(b->ptr);
    b->ptr = NULL;
}

__attribute__((constructor)) static void before_main(void) {
    for (int i = 0; i < 8; i++) block_new(&g_from_constructor[i], size_for((uint64_t)i), 0xc0 + (uint64_t)i);
    block_t scratch;
    block_new(&scratch, 12345, 1);
    block_free(&scratch, "constructor scratch");
}

/* Key destructor: checks and frees the value, then re-arms the key twice with new blocks. */
static void key_destructor(void *value) {
    block_t *b = value;
    uint64_t round = b->tag & 0xff;
    block_free(b, "key destructor");
    __atomic_add_fetch(&g_destructor_calls, 1, __ATOMIC_SEQ_CST);
    if (round < 2) {
        block_t *next = b; /* the descriptor itself is reused; it lives in malloc memory */
        block_new(next, size_for(round + 3), (b->tag & ~(uint64_t)0xff) | (round + 1));
        pthread_setspecific(g_key, next);
    } else {
        free(b);
    }
}

static void arm_key(uint64_t thread_index) {
    block_t *b = malloc(sizeof *b);
    REQUIRE(b != NULL);
    block_new(b, size_for(thread_index), thread_index << 8);
    pthread_setspecific(g_key, b);
}

static void *worker_main(void *arg) {
    uint64_t index = (uint64_t)(uintptr_t)arg;
    arm_key(index);
    for (int i = 0; i < KEPT; i++)
        block_new(&g_left_by_threads[index][i], size_for(index + (uint64_t)i), (index << 16) | (uint64_t)i);
    block_t local[16];
    for (int i = 0; i < 16; i++) block_new(&local[i], size_for((uint64_t)i), 0x10c + (uint64_t)i);
    for (int i = 0; i < 16; i++) block_free(&local[i], "thread local");
    if (index % 3 == 0) pthread_exit(NULL); /* exit from the middle, not by returning */
    return NULL;
}

static void *busy_main(void *arg) {
    rng_t rng;
    rng_seed(&rng, (uint64_t)(uintptr_t)arg);
    while (g_busy_forever) {
        void *p = malloc((size_t)rng_range(&rng, 1, 70000));
        REQUIRE(p != NULL);
        free(p);
    }
    return NULL;
}

static void at_exit_handler(void) {
    for (int t = THREADS / 2; t < THREADS; t++)
        for (int i = 0; i < KEPT; i++) block_free(&g_left_by_threads[t][i], "freed in atexit");
    block_t scratch;
    block_new(&scratch, 5000, 2);
    block_free(&scratch, "atexit scratch");
}

__attribute__((destructor)) static void after_exit(void) {
    for (int i = 0; i < 8; i++) block_free(&g_from_constructor[i], "freed in destructor");
    block_t scratch;
    block_new(&scratch, 3 << 20, 3);
    block_free(&scratch, "destructor scratch");
    int calls = __atomic_load_n(&g_destructor_calls, __ATOMIC_SEQ_CST);
    if (calls != THREADS * 3) {
        fprintf(stderr, "key destructor ran %d times, expected %d\n", calls, THREADS * 3);
        g_failures++;
    }
    fflush(stderr);
    int failed = finish("lifecycle");
    fflush(stdout);
    if (failed) _exit(1);
}

int main(void) {
    require_hakmem();
    REQUIRE(pthread_key_create(&g_key, key_destructor) == 0);
    REQUIRE(atexit(at_exit_handler) == 0);
    pthread_t ids[THREADS];
    pthread_attr_t detached;
    pthread_attr_init(&detached);
    pthread_attr_setdetachstate(&detached, PTHREAD_CREATE_DETACHED);
    for (uintptr_t t = 0; t < THREADS; t++) {
        if (t % 4 == 3) {
            pthread_t id;
            REQUIRE(pthread_create(&id, &detached, worker_main, (void *)t) == 0);
            ids[t] = 0;
        } else {
            REQUIRE(pthread_create(&ids[t], NULL, worker_main, (void *)t) == 0);
        }
    }
    for (int t = 0; t < THREADS; t++)
        if (ids[t]) pthread_join(ids[t], NULL);
    /* detached threads: wait until all key destructors have run */
    for (int spin = 0; spin < 5000 && __atomic_load_n(&g_destructor_calls, __ATOMIC_SEQ_CST) < THREADS * 3; spin++)
        usleep(1000);
    for (int t = 0; t < THREADS / 2; t++)
        for (int i = 0; i < KEPT; i++) block_free(&g_left_by_threads[t][i], "freed by main");
    /* exit() while these threads keep allocating */
    for (uintptr_t t = 0; t < 3; t++) {
        pthread_t id;
        REQUIRE(pthread_create(&id, &detached, busy_main, (void *)(t + 1)) == 0);
    }
    usleep(20000);
    return 0;
}
