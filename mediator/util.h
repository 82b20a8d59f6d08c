/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/* Small helpers shared by the mediator's modules (and its tools: vgpu-smi). */
#ifndef VGPU_MEDIATOR_UTIL_H
#define VGPU_MEDIATOR_UTIL_H

#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

static inline uint64_t vgpu_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * Reads exactly len bytes from a stream socket before deadline_ns
 * (vgpu_now_ns() time). 0, -ETIMEDOUT, -ECONNRESET at EOF, or -errno.
 */
static inline int vgpu_read_full(int fd, void *buf, size_t len, uint64_t deadline_ns)
{
    uint8_t *p = buf;

    while (len > 0) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        uint64_t now = vgpu_now_ns();
        ssize_t n;

        if (now >= deadline_ns) {
            return -ETIMEDOUT;
        }
        if (poll(&pfd, 1, (int)((deadline_ns - now) / 1000000 + 1)) < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        n = recv(fd, p, len, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (n == 0) {
            return -ECONNRESET;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

#define VGPU_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define VGPU_MIN(a, b) ((a) < (b) ? (a) : (b))
#define VGPU_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif /* VGPU_MEDIATOR_UTIL_H */
