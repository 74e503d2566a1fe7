/*
 * fork_load.c — fork() while other threads allocate and free. Each child must be able to
 * allocate, free (including blocks inherited from the parent and from threads that do not
 * exist in the child), start a thread, and exit 0. An alarm in the child turns an allocator
 * deadlock (a lock held by a thread that was not forked) into a failure instead of a hang.
 *
 * usage: fork_load FORKS THREADS
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_common.h"

#define WORKER_SLOTS 512
#define INHERITED 256
#define CHILD_TIMEOUT_S 20

typedef struct {
    unsigned char *ptr;
    size_t size;
    uint64_t tag;
} block_t;

typedef struct {
    int id;
    block_t slots[WORKER_SLOTS];
    int busy; /* slot index + 1 while the worker changes that slot, else 0 */
    unsigned long ops;
} worker_t;

static volatile int g_stop;
static worker_t g_workers[16];
static block_t g_inherited[INHERITED];

/* All tiers; mid rare, large very rare (explicit large blocks are added in the child). */
static size_t random_size(rng_t *r) {
    uint64_t x = rng_next(r) % 1000;
    if (x < 900) return (size_t)rng_range(r, 1, 1024);
    if (x < 990) return (size_t)rng_range(r, 1025, 64 << 10);
    if (x < 999) return (size_t)rng_range(r, (64 << 10) + 1, 1 << 20);
    return (size_t)rng_range(r, (1 << 20) + 1, 4 << 20);
}

static void block_new_sized(block_t *b, rng_t *r, uint64_t tag, size_t size) {
    b->size = size;
    b->ptr = rng_next(r) % 4 ? malloc(b->size) : calloc(1, b->size);
    REQUIRE(b->ptr != NULL);
    b->tag = tag;
    pattern_fill(b->ptr, b->size, tag);
}

static void block_new(block_t *b, rng_t *r, uint64_t tag) {
    block_new_sized(b, r, tag, random_size(r));
}

static void block_free(block_t *b, const char *what) {
    pattern_ok(b->ptr, b->size, b->tag, what);
    free(b->ptr);
    b->ptr = NULL;
}

static void *worker_main(void *arg) {
    worker_t *w = arg;
    /* lower priority: the workers keep the allocator busy without starving the children */
    setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 5);
    rng_t rng;
    rng_seed(&rng, mix64((uint64_t)w->id * 77));
    uint64_t counter = 0;
    while (!g_stop) {
        int slot = (int)(rng_next(&rng) % WORKER_SLOTS);
        block_t *b = &w->slots[slot];
        __atomic_store_n(&w->busy, slot + 1, __ATOMIC_SEQ_CST);
        if (b->ptr) block_free(b, "parent worker");
        else block_new(b, &rng, ((uint64_t)w->id << 40) | ++counter);
        __atomic_store_n(&w->busy, 0, __ATOMIC_SEQ_CST);
        w->ops++;
    }
    for (int i = 0; i < WORKER_SLOTS; i++)
        if (w->slots[i].ptr) block_free(&w->slots[i], "parent worker exit");
    return NULL;
}

static void *child_thread_main(void *arg) {
    rng_t rng;
    rng_seed(&rng, (uint64_t)(uintptr_t)arg);
    for (int round = 0; round < 4; round++) {
        block_t blocks[256];
        for (int i = 0; i < 256; i++) block_new(&blocks[i], &rng, 0xc0de0000u + (uint64_t)i);
        for (int i = 0; i < 256; i++) block_free(&blocks[i], "child thread");
    }
    return NULL;
}

/* Runs in the child: returns the exit code. */
static int child_main(int index, int threads) {
    alarm(CHILD_TIMEOUT_S);
    rng_t rng;
    rng_seed(&rng, mix64((uint64_t)index + 1000));
    /* blocks inherited from the parent's main thread and from its (absent) workers */
    for (int i = 0; i < INHERITED; i += 2) block_free(&g_inherited[i], "inherited from parent");
    for (int t = 0; t < threads; t++) {
        worker_t *w = &g_workers[t];
        for (int i = 0; i < WORKER_SLOTS; i += 3)
            if (w->slots[i].ptr && w->busy != i + 1) block_free(&w->slots[i], "inherited from worker");
    }
    enum { N = 2000, LARGE = 4 };
    block_t *blocks = malloc(N * sizeof *blocks);
    REQUIRE(blocks != NULL);
    for (int i = 0; i < N; i++) {
        uint64_t tag = ((uint64_t)index << 32) | (uint64_t)i;
        if (i % (N / LARGE) == 0)
            block_new_sized(&blocks[i], &rng, tag, (size_t)rng_range(&rng, (1 << 20) + 1, 3 << 20));
        else
            block_new(&blocks[i], &rng, tag);
    }
    for (int i = 0; i < N; i += 2) block_free(&blocks[i], "child");
    for (int i = 0; i < N; i += 2) {
        unsigned char *p = realloc(blocks[i + 1].ptr, blocks[i + 1].size * 2 + 1);
        REQUIRE(p != NULL);
        pattern_ok(p, blocks[i + 1].size, blocks[i + 1].tag, "child realloc");
        blocks[i + 1].ptr = p;
        pattern_fill(p, blocks[i + 1].size, blocks[i + 1].tag);
    }
    for (int i = 1; i < N; i += 2) block_free(&blocks[i], "child");
    free(blocks);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, child_thread_main, (void *)(uintptr_t)(index + 1)) == 0);
    pthread_join(t, NULL);
    for (int i = 1; i < INHERITED; i += 2) block_free(&g_inherited[i], "inherited from parent");
    return __atomic_load_n(&g_failures, __ATOMIC_RELAXED) ? 1 : 0;
}

static void refresh_inherited(rng_t *rng, int round) {
    for (int i = 0; i < INHERITED; i++) {
        if (g_inherited[i].ptr) block_free(&g_inherited[i], "parent main");
        block_new(&g_inherited[i], rng, ((uint64_t)round << 20) | (uint64_t)i);
    }
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s FORKS THREADS\n", argv[0]);
        return 2;
    }
    require_hakmem();
    int forks = atoi(argv[1]), threads = atoi(argv[2]);
    REQUIRE(forks > 0 && threads >= 0 && threads <= 16);
    fflush(stdout);
    pthread_t ids[16];
    for (int t = 0; t < threads; t++) {
        g_workers[t].id = t + 1;
        REQUIRE(pthread_create(&ids[t], NULL, worker_main, &g_workers[t]) == 0);
    }
    rng_t rng;
    rng_seed(&rng, 12345);
    int bad_children = 0;
    for (int f = 0; f < forks; f++) {
        refresh_inherited(&rng, f);
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) _exit(child_main(f, threads));
        int status = 0;
        REQUIRE(waitpid(pid, &status, 0) == pid);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) continue;
        bad_children++;
        if (WIFSIGNALED(status))
            fprintf(stderr, "child %d killed by signal %d%s\n", f, WTERMSIG(status),
                    WTERMSIG(status) == SIGALRM ? " (timeout: deadlock after fork?)" : "");
        else
            fprintf(stderr, "child %d exited with %d\n", f, WEXITSTATUS(status));
    }
    g_stop = 1;
    unsigned long ops = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(ids[t], NULL);
        ops += g_workers[t].ops;
    }
    for (int i = 0; i < INHERITED; i++)
        if (g_inherited[i].ptr) block_free(&g_inherited[i], "parent main exit");
    CHECK(bad_children == 0);
    printf("fork_load forks=%d threads=%d worker_ops=%lu bad_children=%d\n", forks, threads, ops,
           bad_children);
    return finish("fork_load");
}
