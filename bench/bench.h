/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * Helpers shared by the host benchmarks. Every program prints its figures as
 * tab-separated lines "metric<TAB>value<TAB>unit", which bench/run.sh turns
 * into one table and one JSON file.
 */
#ifndef VGPU_BENCH_H
#define VGPU_BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline int bench_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* Sorts v and returns its p-quantile (nearest rank). */
static inline uint64_t bench_quantile(uint64_t *v, size_t n, double p, int sorted)
{
    size_t i;

    if (n == 0) {
        return 0;
    }
    if (!sorted) {
        qsort(v, n, sizeof(*v), bench_cmp_u64);
    }
    i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static inline void bench_metric(const char *name, double value, const char *unit)
{
    printf("%s\t%.3f\t%s\n", name, value, unit);
    fflush(stdout);
}

#endif /* VGPU_BENCH_H */
