/*
 * measure.c — runs one command with an allocator preloaded and writes what it cost, for
 * the bench (bench/measure.ts). Not a workload: it is never preloaded itself, so its own
 * allocations do not count.
 *
 * usage: measure REPORT_FILE PRELOAD|- TIMEOUT_MS PROGRAM [ARGS...]
 *
 * Forks; the child starts a process group of its own, sets LD_PRELOAD=PRELOAD (unless "-")
 * and execs PROGRAM (searched on PATH). The child's stdin, stdout and stderr are this
 * process's. When the child ends, one line goes to REPORT_FILE:
 *   exit=<code> signal=<sig> timed_out=<0|1> wall_ns=<n> user_us=<n> sys_us=<n> minflt=<n> majflt=<n> maxrss_kb=<n>
 * rusage is wait4's for the child, so it includes every descendant the child waited for
 * (a shell's pipeline, gcc's cc1 and as); maxrss_kb is the largest of them, and it starts
 * from this small program's peak, not from Bun's (a process forked from Bun would inherit
 * Bun's peak across exec). After TIMEOUT_MS (0: none) the whole process group is killed
 * (SIGKILL) and timed_out=1. SIGTERM/SIGINT/SIGHUP sent to this process are passed on to
 * the group. Exit status: 0 when the report was written (the child's status is in it),
 * 2 on a usage or system error, 127 when PROGRAM could not be run.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile pid_t child_pid = 0;
static volatile sig_atomic_t timed_out = 0;

static void forward(int sig) {
    if (child_pid > 0) kill(-child_pid, sig);
}

static void on_alarm(int sig) {
    (void)sig;
    timed_out = 1;
    if (child_pid > 0) kill(-child_pid, SIGKILL);
}

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static long long us(struct timeval tv) { return (long long)tv.tv_sec * 1000000ll + tv.tv_usec; }

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: measure REPORT_FILE PRELOAD|- TIMEOUT_MS PROGRAM [ARGS...]\n");
        return 2;
    }
    const char *report = argv[1], *preload = argv[2];
    long timeout_ms = strtol(argv[3], NULL, 10);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = forward;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);

    long long start = now_ns();
    pid_t pid = fork();
    if (pid < 0) {
        perror("measure: fork");
        return 2;
    }
    if (pid == 0) {
        setpgid(0, 0);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        if (strcmp(preload, "-") != 0) setenv("LD_PRELOAD", preload, 1);
        execvp(argv[4], argv + 4);
        fprintf(stderr, "measure: cannot run %s: %s\n", argv[4], strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid); /* both sides, so the group exists before any kill */
    child_pid = pid;
    if (timeout_ms > 0) {
        struct itimerval t;
        memset(&t, 0, sizeof t);
        t.it_value.tv_sec = timeout_ms / 1000;
        t.it_value.tv_usec = (timeout_ms % 1000) * 1000;
        setitimer(ITIMER_REAL, &t, NULL);
    }
    int status = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    while (wait4(pid, &status, 0, &ru) < 0) {
        if (errno != EINTR) {
            perror("measure: wait4");
            return 2;
        }
    }
    long long wall = now_ns() - start;
    struct itimerval off;
    memset(&off, 0, sizeof off);
    setitimer(ITIMER_REAL, &off, NULL);
    kill(-pid, SIGKILL); /* leftovers of the group (a pipeline's stragglers); ESRCH when none */
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    FILE *f = fopen(report, "w");
    if (!f) {
        perror("measure: report file");
        return 2;
    }
    fprintf(f, "exit=%d signal=%d timed_out=%d wall_ns=%lld user_us=%lld sys_us=%lld minflt=%ld majflt=%ld maxrss_kb=%ld\n",
            code, sig, (int)timed_out, wall, us(ru.ru_utime), us(ru.ru_stime), ru.ru_minflt, ru.ru_majflt, ru.ru_maxrss);
    fclose(f);
    return code == 127 && !sig ? 127 : 0;
}
