/* trace_workload.c — a program to record with HAKMEM_TRACE (test/trace.test.ts):
 *   single   one thread: malloc, calloc, realloc (grow, shrink, NULL, to 0), the aligned
 *            calls, malloc_usable_size and free, small to large sizes, some blocks left live
 *   threads  4 producers hand blocks to 2 consumers that free them (cross-thread frees),
 *            then a second wave of 3 threads starts after the first has exited
 *   double   frees one block twice (hakmem stops the program; the trace keeps the evidence)
 *   fork     the parent forks a child that allocates and frees, then both go on
 *   exit     2 threads still allocating when main calls exit (their committed events are
 *            flushed at exit; the trace must stay valid)
 * Prints "PASS trace_workload" when done. */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void single(void) {
    enum { N = 3000 };
    static void *live[N];
    for (int i = 0; i < 20000; i++) {
        int slot = (int)(next() % N);
        if (live[slot]) {
            if (next() % 4 == 0) {
                size_t grow = 1 + next() % 5000;
                void *p = realloc(live[slot], grow);
                if (p) live[slot] = p;
            } else {
                free(live[slot]);
                live[slot] = NULL;
            }
            continue;
        }
        size_t size = next() % 8 == 0 ? 1 + next() % 300000 : 1 + next() % 600;
        switch (next() % 6) {
        case 0: live[slot] = calloc(1 + next() % 4, size); break;
        case 1: {
            void *p = NULL;
            if (posix_memalign(&p, 64, size) == 0) live[slot] = p;
            break;
        }
        case 2: live[slot] = aligned_alloc(4096, size); break;
        case 3: live[slot] = realloc(NULL, size); break;
        default: live[slot] = malloc(size); break;
        }
        if (live[slot]) {
            memset(live[slot], 1, size < 64 ? size : 64);
            if (next() % 16 == 0 && malloc_usable_size(live[slot]) < size) abort();
        }
    }
    void *big = malloc(3 << 20); /* large, then shrunk and freed by realloc(p, 0) */
    big = realloc(big, 1 << 20);
    if (realloc(big, 0) != NULL) abort(); /* glibc semantics: frees, NULL */
    for (int i = 0; i < N; i += 2) {
        free(live[i]);
        live[i] = NULL;
    }
}

/* ---- threads: a locked ring from producers to consumers */
enum { RING = 256, PRODUCERS = 4, CONSUMERS = 2, PER_PRODUCER = 5000 };
static void *ring[RING];
static int head, tail_, count, producers_left = PRODUCERS;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;

static void *producer(void *arg) {
    uint64_t seed = (uint64_t)(uintptr_t)arg * 7919 + 1;
    for (int i = 0; i < PER_PRODUCER; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        size_t size = 16 + (seed >> 33) % 2000;
        void *p = malloc(size);
        memset(p, 2, 16);
        void *local = malloc(size / 2 + 1); /* freed by its own thread */
        free(local);
        pthread_mutex_lock(&lock);
        while (count == RING) pthread_cond_wait(&changed, &lock);
        ring[head] = p;
        head = (head + 1) % RING;
        count++;
        pthread_cond_broadcast(&changed);
        pthread_mutex_unlock(&lock);
    }
    pthread_mutex_lock(&lock);
    producers_left--;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
    return NULL;
}

static void *consumer(void *arg) {
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&lock);
        while (count == 0 && producers_left > 0) pthread_cond_wait(&changed, &lock);
        if (count == 0) {
            pthread_mutex_unlock(&lock);
            return NULL;
        }
        void *p = ring[tail_];
        tail_ = (tail_ + 1) % RING;
        count--;
        pthread_cond_broadcast(&changed);
        pthread_mutex_unlock(&lock);
        free(p);
    }
}

static void *worker(void *arg) {
    void *blocks[100];
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < 100; i++) blocks[i] = malloc(32 + (size_t)(uintptr_t)arg * 100 + (size_t)i);
        for (int i = 0; i < 100; i++) free(blocks[i]);
    }
    return NULL;
}

static void *busy(void *arg) {
    (void)arg;
    for (long i = 0; i < 100000000; i++) free(malloc(16 + (size_t)(i % 500)));
    return NULL;
}

static void threads(void) {
    pthread_t t[PRODUCERS + CONSUMERS];
    for (int i = 0; i < PRODUCERS; i++) pthread_create(&t[i], NULL, producer, (void *)(uintptr_t)i);
    for (int i = 0; i < CONSUMERS; i++) pthread_create(&t[PRODUCERS + i], NULL, consumer, NULL);
    for (int i = 0; i < PRODUCERS + CONSUMERS; i++) pthread_join(t[i], NULL);
    pthread_t w[3];
    for (int i = 0; i < 3; i++) pthread_create(&w[i], NULL, worker, (void *)(uintptr_t)i);
    for (int i = 0; i < 3; i++) pthread_join(w[i], NULL);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "single";
    if (strcmp(mode, "single") == 0) single();
    else if (strcmp(mode, "threads") == 0) threads();
    else if (strcmp(mode, "double") == 0) {
        char *p = malloc(48);
        char *q = malloc(48);
        free(p);
        free(q);
        free(p); /* the misuse */
    } else if (strcmp(mode, "fork") == 0) {
        void *before = malloc(100);
        pid_t pid = fork();
        if (pid == 0) {
            for (int i = 0; i < 100; i++) free(malloc(64 + (size_t)i));
            free(before); /* inherited: unknown to the child's trace */
            exit(0); /* not _exit: the recording is flushed at exit */
        }
        int status = 0;
        waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return 1;
        free(before);
    } else if (strcmp(mode, "exit") == 0) {
        pthread_t t[2];
        for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, busy, NULL);
        usleep(30000);
        printf("PASS trace_workload\n");
        fflush(stdout);
        exit(0);
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    printf("PASS trace_workload\n");
    return 0;
}
