/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * Range checks shared by every validator, and the per-thread deadline the
 * CPU implementations poll.
 */
#include <time.h>

#include "mediator/ops/ops-priv.h"

/*
 * [off, off + len) must lie inside the data area [VGPU_SHM_DATA_OFFSET,
 * shm_size). Written without computing off + len, so offsets near 2^64
 * cannot wrap into range. A zero-length range is accepted when off itself is
 * a position inside the data area or its end (off == shm_size), so callers
 * can rely on "off is a valid position" either way; the validators never
 * pass len 0 because every count starts at 1.
 *
 * The range is checked before the alignment: a request pointing outside the
 * data area is bad-range whatever its alignment. align 0 means 1; any other
 * value must be a power of two (the validators pass 1, 4 or 8).
 */
int vgpu_check_range(uint64_t off, uint64_t len, uint64_t align, uint64_t shm_size)
{
    if (shm_size < VGPU_SHM_DATA_OFFSET || off < VGPU_SHM_DATA_OFFSET ||
        off > shm_size || len > shm_size - off) {
        return VGPU_S_BAD_RANGE;
    }
    if (align > 1 && (off & (align - 1)) != 0) {
        return VGPU_S_BAD_ALIGN;
    }
    return VGPU_S_OK;
}

/*
 * Half-open ranges; an empty range overlaps nothing. Compares distances
 * instead of end points so it stays correct even for unchecked lengths.
 */
int vgpu_ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    if (alen == 0 || blen == 0) {
        return 0;
    }
    return a <= b ? b - a < alen : a - b < blen;
}

static _Thread_local uint64_t ops_deadline_ns;

uint64_t vgpu_ops_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void vgpu_ops_set_deadline(uint64_t deadline_ns)
{
    ops_deadline_ns = deadline_ns;
}

bool vgpu_ops_deadline_passed(void)
{
    return ops_deadline_ns != 0 && vgpu_ops_now_ns() >= ops_deadline_ns;
}

uint32_t vgpu_op_split_count(uint64_t total, uint64_t grain, uint32_t want)
{
    uint64_t grains = (total + grain - 1) / grain;

    if (want < 1) {
        want = 1;
    }
    return grains < want ? (uint32_t)(grains ? grains : 1) : want;
}

/*
 * Part i gets ceil(grains / n) or floor(grains / n) grains, the longer parts
 * first, so the parts tile [0, total) in order and differ by one grain at most.
 */
void vgpu_op_split_range(uint64_t total, uint64_t grain, uint32_t i, uint32_t n,
                         uint64_t *first, uint64_t *count)
{
    uint64_t grains = (total + grain - 1) / grain;
    uint64_t base = grains / n, extra = grains % n;
    uint64_t g0 = i * base + (i < extra ? i : extra);
    uint64_t gn = base + (i < extra ? 1 : 0);
    uint64_t end = (g0 + gn) * grain;

    *first = g0 * grain;
    *count = (end < total ? end : total) - *first;
}

bool vgpu_op_always_idempotent(const struct vgpu_sqe *sqe)
{
    (void)sqe;
    return true;
}
