/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * The CUDA operations on the queue's context as a whole (ABI 1.2):
 *   CU_DEVICE_INFO   writes struct vgpu_cu_device_info at out_off
 *   CU_MEM_GET_INFO  result: free bytes of the VM's quota; no arguments
 *   CU_CTX_SYNC      waits for every stream of the queue; no arguments
 *   CU_CTX_RESET     frees every object of the queue's context; no arguments
 * One file for the family, as for the other CU families (cu_memory.c,
 * cu_copy.c, cu_module.c, cu_launch.c, cu_stream.c, cu_event.c): each
 * operation is a few lines of checks, and the checks of one family are
 * best read side by side.
 */
#include "mediator/ops/cu-priv.h"

static int device_info_validate(const struct vgpu_sqe *sqe, uint64_t shm_size)
{
    const struct vgpu_args_cu_out *a = &sqe->args.cu_out;
    int s = vgpu_cu_check_header(sqe, sizeof(*a));

    if (s != VGPU_S_OK) {
        return s;
    }
    /* A buffer too small for the struct is malformed, not out of range. */
    if (a->out_len < sizeof(struct vgpu_cu_device_info)) {
        return VGPU_S_BAD_ARGS;
    }
    return vgpu_check_range(a->out_off, a->out_len, 8, shm_size);
}

static void device_info_bytes(const struct vgpu_sqe *sqe, uint64_t *in, uint64_t *out)
{
    (void)sqe;
    *in = 0;
    *out = sizeof(struct vgpu_cu_device_info);
}

static uint64_t device_info_cost_ns(const struct vgpu_sqe *sqe)
{
    (void)sqe;
    return vgpu_cost_model_ns(sizeof(struct vgpu_cu_device_info), 0);
}

static unsigned device_info_ranges(const struct vgpu_sqe *sqe, struct vgpu_range out[])
{
    out[0] = (struct vgpu_range) { sqe->args.cu_out.out_off, sqe->args.cu_out.out_len };
    return 1;
}

const struct vgpu_op vgpu_op_cu_device_info = {
    .opcode     = VGPU_OP_CU_DEVICE_INFO,
    .name       = "cu_device_info",
    .validate   = device_info_validate,
    .cost_ns    = device_info_cost_ns,
    .bytes      = device_info_bytes,
    .exec_cpu   = vgpu_cu_exec_cpu,
    .idempotent = vgpu_cu_idempotent,
    .ranges     = device_info_ranges,
};

/* MEM_GET_INFO, CTX_SYNC, CTX_RESET: no arguments, every byte zero. */
static int no_args_validate(const struct vgpu_sqe *sqe, uint64_t shm_size)
{
    (void)shm_size;
    return vgpu_cu_check_header(sqe, 0);
}

const struct vgpu_op vgpu_op_cu_mem_get_info = {
    .opcode     = VGPU_OP_CU_MEM_GET_INFO,
    .name       = "cu_mem_get_info",
    .validate   = no_args_validate,
    .cost_ns    = vgpu_cu_cost_small,
    .bytes      = vgpu_cu_bytes_none,
    .exec_cpu   = vgpu_cu_exec_cpu,
    .idempotent = vgpu_cu_idempotent,
};

const struct vgpu_op vgpu_op_cu_ctx_sync = {
    .opcode     = VGPU_OP_CU_CTX_SYNC,
    .name       = "cu_ctx_sync",
    .validate   = no_args_validate,
    .cost_ns    = vgpu_cu_cost_small,
    .bytes      = vgpu_cu_bytes_none,
    .exec_cpu   = vgpu_cu_exec_cpu,
    .idempotent = vgpu_cu_idempotent,
    .waits      = true,
};

static uint64_t ctx_reset_cost_ns(const struct vgpu_sqe *sqe)
{
    (void)sqe;
    /* Frees modules and memory: several driver calls, like an unload. */
    return VGPU_COST_BASE_NS + VGPU_CU_COST_MODULE_NS;
}

const struct vgpu_op vgpu_op_cu_ctx_reset = {
    .opcode     = VGPU_OP_CU_CTX_RESET,
    .name       = "cu_ctx_reset",
    .validate   = no_args_validate,
    .cost_ns    = ctx_reset_cost_ns,
    .bytes      = vgpu_cu_bytes_none,
    .exec_cpu   = vgpu_cu_exec_cpu,
    .idempotent = vgpu_cu_idempotent,
    .waits      = true,
};
