/*
 * rusage.c — runs one command and reports what it cost, for `bun run tune`.
 * Usage: rusage <preload|-> <program> [args...]
 *
 * Forks, sets LD_PRELOAD=<preload> in the child only (this wrapper is never preloaded,
 * so its own allocations do not count), execs the program, waits for it with wait4 and
 * prints one line on stderr after the child's own output:
 *   TUNE_RUSAGE exit=<code> signal=<sig> wall_ns=<n> cpu_us=<n> minflt=<n> majflt=<n> maxrss_kb=<n>
 * The child's ru_maxrss starts from this small wrapper's peak, not from Bun's (a process
 * forked from Bun and exec'd would inherit Bun's peak), so it is the program's own peak.
 * SIGTERM and SIGHUP are passed on to the program (a timeout kills this wrapper).
 * Exit status: the child's, 128+signal when it was killed, 127 when exec failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile pid_t child_pid = 0;

/* A timeout kills the wrapper with SIGTERM: pass it on so the program does not linger. */
static void forward(int sig) {
    if (child_pid > 0) kill(child_pid, sig);
}

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: rusage <preload|-> <program> [args...]\n");
        return 2;
    }
    signal(SIGTERM, forward); /* reset to the default by exec in the child */
    signal(SIGHUP, forward);
    long long start = now_ns();
    pid_t pid = fork();
    if (pid < 0) {
        perror("rusage: fork");
        return 2;
    }
    child_pid = pid;
    if (pid == 0) {
        if (strcmp(argv[1], "-") != 0) setenv("LD_PRELOAD", argv[1], 1);
        execvp(argv[2], argv + 2);
        fprintf(stderr, "rusage: cannot run %s: %s\n", argv[2], strerror(errno));
        _exit(127);
    }
    int status = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    while (wait4(pid, &status, 0, &ru) < 0) {
        if (errno != EINTR) {
            perror("rusage: wait4");
            return 2;
        }
    }
    long long wall = now_ns() - start;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 0;
    int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    long long cpu_us = (long long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000ll + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
    fprintf(stderr, "TUNE_RUSAGE exit=%d signal=%d wall_ns=%lld cpu_us=%lld minflt=%ld majflt=%ld maxrss_kb=%ld\n",
            code, sig, wall, cpu_us, ru.ru_minflt, ru.ru_majflt, ru.ru_maxrss);
    return sig ? 128 + sig : code;
}
