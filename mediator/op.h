/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * The operation registry: one const table per operation (mediator/ops/<op>.c),
 * listed in mediator/ops/registry.c. Adding an operation touches its own file
 * plus one registry line (and, for the GPU, its kernel in mediator/cuda/).
 */
#ifndef VGPU_MEDIATOR_OP_H
#define VGPU_MEDIATOR_OP_H

#include <stddef.h>
#include <stdint.h>

#include "vgpu/abi.h"

/* A VM's shared memory as the mediator has mapped it. */
struct vgpu_shm_view {
    uint8_t *base;
    uint64_t size;
    int      fd;     /* the memfd backing the mapping (the cuda backend hands it to
                      * its worker process); -1 if none. Owned by the creator. */
};

struct vgpu_op {
    uint16_t opcode;
    const char *name;
    /*
     * Checks a request that was already copied out of shared memory (the
     * guest can rewrite the ring under us; the copy is what we validate and
     * execute). Returns VGPU_S_OK or the precise enum vgpu_status. Must not
     * touch shared memory.
     */
    int (*validate)(const struct vgpu_sqe *sqe, uint64_t shm_size);
    /* Estimated execution cost in nanoseconds, for the scheduler. */
    uint64_t (*cost_ns)(const struct vgpu_sqe *sqe);
    /* Bytes the operation reads from / writes to shared memory (statistics). */
    void (*bytes)(const struct vgpu_sqe *sqe, uint64_t *in, uint64_t *out);
    /*
     * The CPU implementation. Runs on a validated copy. *result is written
     * into the completion. Returns VGPU_S_OK or an enum vgpu_status.
     */
    int (*exec_cpu)(const struct vgpu_sqe *sqe, const struct vgpu_shm_view *shm,
                    uint64_t *result);
};

/* The registered operation for opcode, or NULL when unknown. */
const struct vgpu_op *vgpu_op_lookup(uint32_t opcode);

/*
 * Range check used by every validator: [off, off+len) must lie inside the
 * data area [VGPU_SHM_DATA_OFFSET, shm_size) with no 64-bit wrap-around, and
 * off must be a multiple of align. Returns VGPU_S_OK, VGPU_S_BAD_RANGE or
 * VGPU_S_BAD_ALIGN.
 */
int vgpu_check_range(uint64_t off, uint64_t len, uint64_t align, uint64_t shm_size);

/* 1 when [a, a+alen) and [b, b+blen) overlap (lengths already range-checked). */
int vgpu_ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen);

#endif /* VGPU_MEDIATOR_OP_H */
