/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * GPU_INFO: writes struct vgpu_gpu_info at out_off. Result: bytes written.
 * The CPU implementation describes the CPU backend (the description itself
 * lives in backend_cpu.c, which the status table and WELCOME use too).
 */
#include <string.h>

#include "mediator/backend.h"
#include "mediator/ops/ops-priv.h"

static int gpu_info_validate(const struct vgpu_sqe *sqe, uint64_t shm_size)
{
    const struct vgpu_args_gpu_info *a = &sqe->args.gpu_info;

    if (sqe->flags != 0) {
        return VGPU_S_BAD_ARGS;
    }
    /* A buffer too small for the struct is malformed, not out of range. */
    if (a->out_len < sizeof(struct vgpu_gpu_info)) {
        return VGPU_S_BAD_ARGS;
    }
    /* The whole buffer the guest declared must be its own data area. */
    return vgpu_check_range(a->out_off, a->out_len, 8, shm_size);
}

static uint64_t gpu_info_cost_ns(const struct vgpu_sqe *sqe)
{
    (void)sqe;
    return vgpu_cost_model_ns(sizeof(struct vgpu_gpu_info), 0);
}

static void gpu_info_bytes(const struct vgpu_sqe *sqe, uint64_t *in, uint64_t *out)
{
    (void)sqe;
    *in = 0;
    *out = sizeof(struct vgpu_gpu_info);
}

static int gpu_info_exec_cpu(const struct vgpu_sqe *sqe, const struct vgpu_shm_view *shm,
                             uint64_t *result)
{
    struct vgpu_gpu_info info;

    vgpu_backend_cpu.gpu_info(NULL, &info);
    /* Built in private memory and copied out: shm is only ever written. */
    memcpy(shm->base + sqe->args.gpu_info.out_off, &info, sizeof(info));
    *result = sizeof(info);
    return VGPU_S_OK;
}

/* The whole buffer the guest declared, as validated. */
static unsigned gpu_info_ranges(const struct vgpu_sqe *sqe, struct vgpu_range out[])
{
    out[0] = (struct vgpu_range){ sqe->args.gpu_info.out_off, sqe->args.gpu_info.out_len };
    return 1;
}

const struct vgpu_op vgpu_op_gpu_info = {
    .opcode   = VGPU_OP_GPU_INFO,
    .name     = "gpu_info",
    .validate = gpu_info_validate,
    .cost_ns  = gpu_info_cost_ns,
    .bytes    = gpu_info_bytes,
    .exec_cpu = gpu_info_exec_cpu,
    .idempotent = vgpu_op_always_idempotent,
    .ranges   = gpu_info_ranges,
};
