/*
 * commit_limit.c — malloc of SIZE bytes, as a program probing for memory would do.
 * Prints "NULL errno=ENOMEM" when malloc refuses, else touches the first and last page of
 * the block, frees it and prints "OK". (Regression: hakmem mapped large blocks with
 * MAP_NORESERVE, so malloc(64 GiB) on a 23 GiB machine "succeeded".)
 *
 * usage: commit_limit SIZE_IN_MIB
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    size_t size = strtoull(argv[1], NULL, 10) << 20;
    errno = 0;
    char *p = malloc(size);
    if (!p) {
        printf("NULL errno=%s\n", errno == ENOMEM ? "ENOMEM" : strerror(errno));
        return 0;
    }
    p[0] = 1;
    p[size - 1] = 2;
    if (p[0] != 1 || p[size - 1] != 2) return 3;
    free(p);
    printf("OK\n");
    return 0;
}
