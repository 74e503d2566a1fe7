/*
 * cgroup_pressure.c — what hakmem keeps after a burst of frees, when its cgroup is near
 * its limit and when it is not.
 *
 *   cgroup_pressure MIB ROUNDS
 *     ROUNDS times: allocates MIB MiB of 1000-byte blocks (written), frees them all; then
 *     keeps calling malloc/free of blocks of many sizes for 200 ms (slow paths: the
 *     maintenance tick runs) and prints "retained_kib=<RSS now minus RSS at start>".
 * Run with a long HAKMEM_PURGE_DELAY_MS, so that only pressure makes hakmem purge at once.
 */
#include "test_common.h"

int main(int argc, char **argv) {
    require_hakmem();
    const long mib = arg_long(argc, argv, 1, 48), rounds = arg_long(argc, argv, 2, 1);
    const size_t count = ((size_t)mib << 20) / 1000;
    void **blocks = malloc(count * sizeof(void *));
    REQUIRE(blocks != NULL);
    const long base_kib = rss_kib();
    for (long r = 0; r < rounds; r++) {
        for (size_t i = 0; i < count; i++) {
            blocks[i] = malloc(1000);
            REQUIRE(blocks[i] != NULL);
            memset(blocks[i], 7, 1000);
        }
        for (size_t i = 0; i < count; i++) free(blocks[i]);
    }
    const double until = now_sec() + 0.2;
    size_t size = 16;
    while (now_sec() < until) {
        void *p[64];
        for (int i = 0; i < 64; i++) p[i] = malloc(size = size * 7 % 40000 + 16);
        for (int i = 0; i < 64; i++) free(p[i]);
        sleep_ms(1);
    }
    printf("retained_kib=%ld\n", rss_kib() - base_kib);
    free(blocks);
    return finish("cgroup_pressure");
}
