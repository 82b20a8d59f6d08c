/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/* Small helpers shared by the mediator's modules. */
#ifndef VGPU_MEDIATOR_UTIL_H
#define VGPU_MEDIATOR_UTIL_H

#include <stdint.h>
#include <time.h>

static inline uint64_t vgpu_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#define VGPU_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define VGPU_MIN(a, b) ((a) < (b) ? (a) : (b))
#define VGPU_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif /* VGPU_MEDIATOR_UTIL_H */
