/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * bench-pingpong: the anchor for the NOP round trip. Two processes bounce a
 * 24-byte message (the size of a KICK/NOTIFY) over a SOCK_STREAM Unix socket
 * with blocking write()/read(), which is the least any socket-based
 * device <-> mediator round trip can cost on this machine.
 *
 * usage: bench-pingpong [ROUNDS]   (default 100000, after 1000 warm-up rounds)
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define MSG_SIZE 24
#define WARMUP   1000

static int xfer(int fd, char *buf, int out)
{
    size_t done = 0;

    while (done < MSG_SIZE) {
        ssize_t n = out ? write(fd, buf + done, MSG_SIZE - done)
                        : read(fd, buf + done, MSG_SIZE - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        done += (size_t)n;
    }
    return 0;
}

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? strtol(argv[1], NULL, 0) : 100000;
    char buf[MSG_SIZE];
    uint64_t *t, sum = 0;
    int sv[2], status;
    pid_t pid;
    long i;

    if (rounds <= 0 || rounds > 100000000) {
        fprintf(stderr, "usage: bench-pingpong [ROUNDS]\n");
        return 2;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        perror("socketpair");
        return 1;
    }
    pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        /* The echo side: ends when the parent closes its end. */
        close(sv[0]);
        while (xfer(sv[1], buf, 0) == 0 && xfer(sv[1], buf, 1) == 0) {
        }
        _exit(0);
    }
    close(sv[1]);
    t = calloc((size_t)rounds, sizeof(*t));
    if (!t) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return 1;
    }
    memset(buf, 0x5a, sizeof(buf));
    for (i = -WARMUP; i < rounds; i++) {
        uint64_t t0 = bench_now_ns();

        if (xfer(sv[0], buf, 1) < 0 || xfer(sv[0], buf, 0) < 0) {
            fprintf(stderr, "bench-pingpong: peer gone\n");
            kill(pid, SIGKILL);
            break;
        }
        if (i >= 0) {
            t[i] = bench_now_ns() - t0;
            sum += t[i];
        }
    }
    close(sv[0]);
    waitpid(pid, &status, 0);
    if (i < rounds) {
        free(t);
        return 1;
    }
    bench_metric("pingpong_p50", (double)bench_quantile(t, (size_t)rounds, 0.5, 0) / 1e3, "us");
    bench_metric("pingpong_p99", (double)bench_quantile(t, (size_t)rounds, 0.99, 1) / 1e3, "us");
    bench_metric("pingpong_mean", (double)sum / (double)rounds / 1e3, "us");
    free(t);
    return 0;
}
