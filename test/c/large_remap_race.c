/*
 * large_remap_race.c — large blocks moved by mremap while other threads map new ones.
 * Half of the threads keep growing large blocks (realloc, and reuse of a smaller cached
 * mapping), so their pages move to new addresses; the others allocate large blocks and
 * check after each that hakmem still owns every one of their live blocks. When a block's pages moved,
 * its old range used to be untagged only after the move: a new mapping the kernel placed
 * there meanwhile lost its tag and became "not owned" (found by the soak, fuzz seed 407).
 *
 * usage: large_remap_race ROUNDS [THREADS (default 8)]
 */
#define _GNU_SOURCE
#include <pthread.h>

#include "test_common.h"

enum { LIVE = 4 };

static long g_rounds;
static int (*g_owns)(const void *);

static void *mover_main(void *arg) {
    rng_t rng;
    rng_seed(&rng, mix64((uint64_t)(uintptr_t)arg));
    for (long r = 0; r < g_rounds; r++) {
        size_t small = (size_t)rng_range(&rng, 2 << 20, 5 << 20);
        unsigned char *p = malloc(small);
        REQUIRE(p != NULL);
        p[0] = 1;
        p = realloc(p, small * 3); /* grows: in place or moved */
        REQUIRE(p != NULL);
        CHECK(p[0] == 1);
        free(p); /* cached */
        unsigned char *q = malloc(small * 4); /* a cached mapping grown (moved) to serve it */
        REQUIRE(q != NULL);
        q[small * 4 - 1] = 2;
        free(q);
    }
    return NULL;
}

static void *checker_main(void *arg) {
    rng_t rng;
    rng_seed(&rng, mix64((uint64_t)(uintptr_t)arg + 77));
    void *live[LIVE] = {0};
    for (long r = 0; r < g_rounds * 2; r++) {
        int slot = (int)(rng_next(&rng) % LIVE);
        free(live[slot]);
        live[slot] = malloc((size_t)rng_range(&rng, (1 << 20) + 1, 6 << 20));
        REQUIRE(live[slot] != NULL);
        for (int i = 0; i < LIVE; i++) {
            if (live[i] && g_owns(live[i]) != 0) {
                fprintf(stderr, "live block %p is no longer owned by hakmem (round %ld)\n", live[i], r);
                __atomic_add_fetch(&g_failures, 1, __ATOMIC_RELAXED);
                return NULL;
            }
        }
    }
    for (int i = 0; i < LIVE; i++) free(live[i]);
    return NULL;
}

int main(int argc, char **argv) {
    const char *usage = "[ROUNDS] [THREADS 2..16]";
    g_rounds = arg_in_range(argc, argv, 1, 2000, 1, LONG_MAX, usage);
    int threads = (int)arg_in_range(argc, argv, 2, 8, 2, 16, usage);
    require_hakmem();
    g_owns = (int (*)(const void *))dlsym(RTLD_DEFAULT, "hak_owns");
    REQUIRE(g_owns != NULL);
    pthread_t ids[16];
    /* half of the threads move blocks, half check theirs (more threads than cores: a mover
     * preempted between the move and the retagging is what exposed the bug) */
    for (int t = 0; t < threads; t++)
        REQUIRE(pthread_create(&ids[t], NULL, t % 2 ? checker_main : mover_main, (void *)(uintptr_t)(t + 1)) == 0);
    for (int t = 0; t < threads; t++) pthread_join(ids[t], NULL);
    printf("large_remap_race rounds=%ld threads=%d\n", g_rounds, threads);
    return finish("large_remap_race");
}
