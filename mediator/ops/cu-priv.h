/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * Helpers shared by the tables of the CUDA driver operations (ABI 1.2,
 * VGPU_OP_CU_*: mediator/ops/cu_*.c). The mediator checks only what a
 * request says about itself and the data area; every handle and device
 * address is checked by the GPU worker against the queue's own tables.
 */
#ifndef VGPU_MEDIATOR_OPS_CU_PRIV_H
#define VGPU_MEDIATOR_OPS_CU_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mediator/ops/ops-priv.h"

/*
 * Hardware maxima a launch is checked against before it reaches a GPU (the
 * same on every GPU since compute capability 3.0; the function's own limits,
 * lower, are the worker's to check).
 */
#define VGPU_CU_MAX_GRID_X      0x7fffffffu
#define VGPU_CU_MAX_GRID_YZ     65535u
#define VGPU_CU_MAX_BLOCK_XY    1024u
#define VGPU_CU_MAX_BLOCK_Z     64u
#define VGPU_CU_MAX_BLOCK_THREADS 1024u
/* Dynamic shared memory per block: 227 KiB opt-in on H100/H200; 256 KiB
 * leaves room for the next generation, the worker checks the real limit. */
#define VGPU_CU_MAX_SHARED      (256u << 10)
/* A device allocation or memset larger than a GPU's address space (49 bits
 * on Hopper) is malformed whatever the quota. */
#define VGPU_CU_MAX_DEVICE_BYTES (1ull << 49)
/* CUfunction_attribute values are small; the driver refuses unknown ones. */
#define VGPU_CU_FUNC_ATTR_LIMIT 64
/* CUevent flags: BLOCKING_SYNC, DISABLE_TIMING, INTERPROCESS. */
#define VGPU_CU_EVENT_FLAGS     0x7u
#define VGPU_CU_EVENT_INTERPROCESS 0x4u
/* CUstream flags: NON_BLOCKING. */
#define VGPU_CU_STREAM_FLAGS    0x1u

/* Cost model of the GPU operations (see ops-priv.h): what the request costs
 * the worker, not the GPU work queued behind it, which the scheduler charges
 * as measured at the synchronising request. */
#define VGPU_CU_COST_LAUNCH_NS  10000ull     /* cuLaunchKernel + worker hop */
#define VGPU_CU_COST_ALLOC_NS   20000ull     /* cuMemAlloc / cuMemFree */
#define VGPU_CU_COST_MODULE_NS  1000000ull   /* module load: a PTX JIT is slower */
#define VGPU_CU_DEVICE_BYTES_PER_US 500000ull /* 500 GB/s: memset, DtoD */

/* Work on device memory only; bytes <= 2^52 (clamped), so * 1000 fits. */
static inline uint64_t vgpu_cu_device_cost_ns(uint64_t bytes)
{
    return VGPU_COST_BASE_NS + bytes * 1000 / VGPU_CU_DEVICE_BYTES_PER_US;
}

/*
 * The first check of every CU validator: flags zero and every byte of
 * sqe->args past the operation's struct (used bytes) zero, so that later
 * ABI versions can give those bytes a meaning. VGPU_S_OK or VGPU_S_BAD_ARGS.
 */
int vgpu_cu_check_header(const struct vgpu_sqe *sqe, size_t used);

/*
 * A device address range [dptr, dptr + len): dptr nonzero (bad-args),
 * aligned to align (bad-align), no 64-bit wrap-around (bad-range). Whether
 * it lies in one of the queue's allocations is the worker's check.
 */
int vgpu_cu_check_device(uint64_t dptr, uint64_t len, uint64_t align);

/* A handle that must name an object (nonzero): VGPU_S_OK or VGPU_S_BAD_ARGS. */
static inline int vgpu_cu_check_handle(uint32_t h)
{
    return h != 0 ? VGPU_S_OK : VGPU_S_BAD_ARGS;
}

/*
 * .validate of the operations whose argument is one struct vgpu_args_cu_handle:
 * _object wants an object (nonzero), _stream a stream (0: the default one).
 */
int vgpu_cu_validate_object(const struct vgpu_sqe *sqe, uint64_t shm_size);
int vgpu_cu_validate_stream(const struct vgpu_sqe *sqe, uint64_t shm_size);

/* .exec_cpu of every CU operation: the cpu backend has no GPU. */
int vgpu_cu_exec_cpu(const struct vgpu_sqe *sqe, const struct vgpu_shm_view *shm,
                     uint64_t *result);
/* .idempotent of every CU operation; why in cu_common.c. */
bool vgpu_cu_idempotent(const struct vgpu_sqe *sqe);
/* .cost_ns of the operations that only queue work or touch a table. */
uint64_t vgpu_cu_cost_small(const struct vgpu_sqe *sqe);
/* .bytes of the operations that move no shared memory. */
void vgpu_cu_bytes_none(const struct vgpu_sqe *sqe, uint64_t *in, uint64_t *out);

#endif /* VGPU_MEDIATOR_OPS_CU_PRIV_H */
