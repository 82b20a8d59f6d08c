/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * Per-VM statistics: requests, completions by status, bytes in/out, queue
 * wait and execution time histograms (p50/p99), and the table that
 * `vgpu-mediator --status`, STATS_REPLY, SIGUSR1 and exit print.
 * Not thread-safe: updated and read under the mediator lock.
 */
#ifndef VGPU_MEDIATOR_STATS_H
#define VGPU_MEDIATOR_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "vgpu/abi.h"

/*
 * Log-linear histogram of nanosecond values: 4 sub-buckets per power of two,
 * so a percentile is exact to within 19% of the value (ample for p50/p99 of
 * latencies that span 100 ns .. 100 s).
 */
#define VGPU_HIST_SUB_BITS 2
#define VGPU_HIST_BUCKETS  (64 << VGPU_HIST_SUB_BITS)

struct vgpu_hist {
    uint64_t count;
    uint64_t sum;
    uint64_t max;
    uint32_t bucket[VGPU_HIST_BUCKETS];
};

void vgpu_hist_add(struct vgpu_hist *h, uint64_t v);
/* How many values fell in buckets wholly at or below v (a Prometheus
 * histogram's cumulative count; values in the bucket that straddles v are
 * left out, an undercount within the 19% resolution). */
uint64_t vgpu_hist_count_le(const struct vgpu_hist *h, uint64_t v);
/* The value at quantile q (0..1), an upper bound of its bucket; 0 if empty. */
uint64_t vgpu_hist_quantile(const struct vgpu_hist *h, double q);

struct vgpu_vm_stats {
    uint64_t requests;                       /* taken from the ring */
    uint64_t completions[VGPU_S_STATUS_COUNT];
    uint64_t completed;
    uint64_t bytes_in, bytes_out;            /* of successful requests */
    uint64_t kicks, notifies, ring_corrupt;
    uint64_t exec_ns_total;
    struct vgpu_hist queue_ns;
    struct vgpu_hist exec_ns;
};

void vgpu_vm_stats_complete(struct vgpu_vm_stats *st, int32_t status, uint64_t queue_ns,
                            uint64_t exec_ns, uint64_t bytes_in, uint64_t bytes_out);

/* Adds src's counters and histograms into dst (totals of closed sessions). */
void vgpu_vm_stats_merge(struct vgpu_vm_stats *dst, const struct vgpu_vm_stats *src);

/* One row of the table; session_id 0 is the "closed sessions" total. */
struct vgpu_stats_row {
    uint32_t session_id;
    uint32_t vm_id;
    const char *vm_name;
    uint32_t prio, weight;
    uint32_t inflight;
    uint64_t charged_ns;
    const struct vgpu_vm_stats *st;
    int closed;             /* a closed session: in-flight column reads "ended" */
};

/*
 * Appends to buf (NUL-terminated, at most cap bytes): the header lines given
 * in `head` then an aligned table of rows; when not every row fits, the last
 * line says how many were left out. Returns the length written.
 */
size_t vgpu_stats_format(char *buf, size_t cap, const char *head,
                         const struct vgpu_stats_row *rows, unsigned nrows);

#endif /* VGPU_MEDIATOR_STATS_H */
