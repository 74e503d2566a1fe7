/*
 * check_misuse.c — provokes one heap misuse (chosen by name) so that check mode
 * (HAKMEM_CHECK=1 / =warn) can be seen to report it. Without check mode the same
 * program must run quietly (the misuse is undefined behaviour, but each case is chosen
 * so that hakmem's normal mode survives it: it is detected or harmless).
 *
 * usage: check_misuse CASE    CASE: clean | double_free | double_free_later | interior |
 *                                   foreign | stack | stack_first | overflow | overflow_large |
 *                                   use_after_free | realloc_interior
 * (stack_first frees a stack buffer before the program's first allocation.)
 * Prints "reached end" when the program runs to completion.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *volatile keep;

/* Through a volatile pointer: the compiler may not see that the buffer is not heap memory. */
static void free_not_heap(char *buf) {
    char *volatile hidden = buf;
    free(hidden);
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *c = argv[1];
    if (!strcmp(c, "stack_first")) {
        char buf[64];
        memset(buf, 3, sizeof buf);
        free_not_heap(buf);
        printf("reached end\n");
        return 0;
    }
    char *p = malloc(40);
    char *q = malloc(40);
    memset(p, 1, 40);
    memset(q, 2, 40);
    if (!strcmp(c, "clean")) {
        free(p);
        free(q);
    } else if (!strcmp(c, "double_free")) {
        free(p);
        free(p);
    } else if (!strcmp(c, "double_free_later")) {
        free(p);
        free(q);
        free(p);
    } else if (!strcmp(c, "interior")) {
        free(p + 8);
    } else if (!strcmp(c, "realloc_interior")) {
        keep = realloc(p + 16, 100);
    } else if (!strcmp(c, "foreign")) {
        static char not_heap[64];
        free(not_heap + 16);
    } else if (!strcmp(c, "stack")) {
        char buf[64];
        memset(buf, 3, sizeof buf);
        free_not_heap(buf + 16);
        free(p);
        free(q);
    } else if (!strcmp(c, "overflow")) {
        p[40] = 7; /* one byte past the 40 requested */
        free(p);
    } else if (!strcmp(c, "overflow_large")) {
        size_t n = 3u << 20;
        char *big = malloc(n);
        big[n + 3] = 1;
        free(big);
    } else if (!strcmp(c, "use_after_free")) {
        free(p);
        p[20] = 5; /* write into the freed block */
        keep = malloc(40); /* (check mode: the freed block waits in the quarantine) */
        size_t (*check_heap)(void) = (size_t (*)(void))dlsym(RTLD_DEFAULT, "hak_check_heap");
        if (check_heap) check_heap(); /* finds it there */
    } else {
        return 2;
    }
    printf("reached end\n");
    return 0;
}
