/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * The operation registry: one const table per operation (mediator/ops/<op>.c),
 * listed in mediator/ops/registry.c. Adding an operation touches its own file
 * plus one registry line (and, for the GPU, its kernel in mediator/cuda/).
 */
#ifndef VGPU_MEDIATOR_OP_H
#define VGPU_MEDIATOR_OP_H

#include <stdbool.h>
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

/* A range of BAR2 offsets. */
struct vgpu_range {
    uint64_t off;
    uint64_t len;
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
    /*
     * May be NULL (= never). true when running the request again on the same
     * memory gives the same outputs as running it once: it writes nothing it
     * reads. A request that is not idempotent is marked in the ring while it
     * runs (VGPU_HOST_EXEC_UNSAFE), so a mediator restarted after a crash
     * completes it as interrupted instead of applying it twice.
     */
    bool (*idempotent)(const struct vgpu_sqe *sqe);
    /*
     * May be NULL (= never split). Splits a validated request into parts
     * that, run one after the other, give exactly the outputs of the whole:
     * parts() says into how many (1 .. want) the request can be cut, part()
     * writes part i of n as a request of its own, which the backend runs
     * like any other (it lies inside the original's ranges, so it is valid).
     * The executor runs long requests part by part, giving other VMs the
     * executor between parts ("Bounded waits" in docs/architecture.md).
     */
    uint32_t (*parts)(const struct vgpu_sqe *sqe, uint32_t want);
    void (*part)(const struct vgpu_sqe *sqe, uint32_t i, uint32_t n, struct vgpu_sqe *out);
    /* May be NULL (= results add up as integers). Folds part i's result into
     * *acc (0 before part 0). */
    void (*combine)(uint64_t *acc, uint64_t part_result);
    /*
     * May be NULL (= names no shared memory). The data-area ranges a
     * validated request names (inputs, outputs, images, names, parameter
     * buffers), at most VGPU_OP_MAX_RANGES; returns how many. The session
     * checks each against the data window of the queue the request came
     * from (ABI 1.2 queue table), so one guest process cannot name another's
     * window.
     */
    unsigned (*ranges)(const struct vgpu_sqe *sqe, struct vgpu_range out[]);
    /*
     * true for a wait on GPU work already queued (a stream, event or context
     * sync): it uses no GPU time of its own but may last as long as that
     * work. Its first run may give up after a short wait (VGPU_EXEC_TRY,
     * backend.h); after that it is never run inline on the I/O thread and is
     * taken at once by the executors that otherwise serve only waited
     * requests, so one VM's wait for its long kernel does not hold the
     * executor others need.
     */
    bool waits;
};

#define VGPU_OP_MAX_RANGES 4

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

/*
 * For parts(): elements [*first, *first + *count) of part i of n, when
 * total elements are cut into n runs of whole grains (the last may be
 * shorter). n must come from vgpu_op_split_count() for the same total/grain.
 */
void vgpu_op_split_range(uint64_t total, uint64_t grain, uint32_t i, uint32_t n,
                         uint64_t *first, uint64_t *count);
/* How many parts of whole grains total elements make, at most want (>= 1). */
uint32_t vgpu_op_split_count(uint64_t total, uint64_t grain, uint32_t want);
#endif /* VGPU_MEDIATOR_OP_H */
