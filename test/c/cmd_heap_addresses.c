/*
 * cmd_heap_addresses.c — a program whose output depends on the allocator: prints the
 * addresses malloc returned. test/bench-smoke.test.ts runs it through `bench --cmd`: the
 * runs under hakmem must be marked as differing from glibc's output (never counted).
 */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    for (int i = 0; i < 4; i++) {
        void *p = malloc(64 << i);
        printf("%p\n", p);
        free(p);
    }
    return 0;
}
