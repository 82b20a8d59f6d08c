/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * Device memory of the queue's context (ABI 1.2):
 *   CU_MEM_ALLOC  bytes 1 .. (the quota: the worker's check); dptr must be 0.
 *                 Result: the device address.
 *   CU_MEM_FREE   dptr: an address ALLOC returned (the worker's check),
 *                 nonzero; bytes must be 0.
 *   CU_MEMSET     async: count elements of elem_size (1, 2, 4) bytes at dptr
 *                 (aligned to elem_size) set to the low bytes of value.
 */
#include "mediator/ops/cu-priv.h"

static int mem_alloc_validate(const struct vgpu_sqe *sqe, uint64_t shm_size)
{
    const struct vgpu_args_cu_mem *a = &sqe->args.cu_mem;
    int s = vgpu_cu_check_header(sqe, sizeof(*a));

    (void)shm_size;
    if (s != VGPU_S_OK) {
        return s;
    }
    if (a->dptr != 0) {
        return VGPU_S_BAD_ARGS;
    }
    return vgpu_check_count(a->bytes, VGPU_CU_MAX_DEVICE_BYTES);
}

static uint64_t mem_alloc_cost_ns(const struct vgpu_sqe *sqe)
{
    (void)sqe;
    return VGPU_COST_BASE_NS + VGPU_CU_COST_ALLOC_NS;
}

const struct vgpu_op vgpu_op_cu_mem_alloc = {
    .opcode     = VGPU_OP_CU_MEM_ALLOC,
    .name       = "cu_mem_alloc",
    .validate   = mem_alloc_validate,
    .cost_ns    = mem_alloc_cost_ns,
    .bytes      = vgpu_cu_bytes_none,
    .exec_cpu   = vgpu_cu_exec_cpu,
    .idempotent = vgpu_cu_idempotent,
};

static int mem_free_validate(const struct vgpu_sqe *sqe, uint64_t shm_size)
{
    const struct vgpu_args_cu_mem *a = &sqe->args.cu_mem;
    int s = vgpu_cu_check_header(sqe, sizeof(*a));

    (void)shm_size;
    if (s != VGPU_S_OK) {
        return s;
    }
    if (a->bytes != 0) {
        return VGPU_S_BAD_ARGS;
    }
    return vgpu_cu_check_device(a->dptr, 0, 1);
}

const struct vgpu_op vgpu_op_cu_mem_free = {
    .opcode     = VGPU_OP_CU_MEM_FREE,
    .name       = "cu_mem_free",
    .validate   = mem_free_validate,
    .cost_ns    = mem_alloc_cost_ns,
    .bytes      = vgpu_cu_bytes_none,
    .exec_cpu   = vgpu_cu_exec_cpu,
    .idempotent = vgpu_cu_idempotent,
};

static int memset_validate(const struct vgpu_sqe *sqe, uint64_t shm_size)
{
    const struct vgpu_args_cu_memset *a = &sqe->args.cu_memset;
    int s = vgpu_cu_check_header(sqe, sizeof(*a));

    (void)shm_size;
    if (s != VGPU_S_OK) {
        return s;
    }
    if (a->pad != 0 || (a->elem_size != 1 && a->elem_size != 2 && a->elem_size != 4)) {
        return VGPU_S_BAD_ARGS;
    }
    /* Bounding count first keeps count * elem_size from overflowing. */
    s = vgpu_check_count(a->count, VGPU_CU_MAX_DEVICE_BYTES / a->elem_size);
    if (s != VGPU_S_OK) {
        return s;
    }
    /* value: only its low elem_size bytes are stored, the rest is ignored
     * (cuMemsetD8 takes an unsigned char widened by the caller). */
    return vgpu_cu_check_device(a->dptr, a->count * a->elem_size, a->elem_size);
}

static uint64_t memset_cost_ns(const struct vgpu_sqe *sqe)
{
    const struct vgpu_args_cu_memset *a = &sqe->args.cu_memset;
    uint64_t bytes = vgpu_clamp_u64(a->count, VGPU_CU_MAX_DEVICE_BYTES) *
                     vgpu_clamp_u64(a->elem_size, 4);

    return vgpu_cu_device_cost_ns(bytes);
}

const struct vgpu_op vgpu_op_cu_memset = {
    .opcode     = VGPU_OP_CU_MEMSET,
    .name       = "cu_memset",
    .validate   = memset_validate,
    .cost_ns    = memset_cost_ns,
    .bytes      = vgpu_cu_bytes_none,
    .exec_cpu   = vgpu_cu_exec_cpu,
    .idempotent = vgpu_cu_idempotent,
};
