/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * GPU_INFO on the GPU: the device's properties and its free memory now.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "mediator/cuda/engine-priv.h"

void cuda_fill_gpu_info(struct vgpu_backend *b, struct vgpu_gpu_info *out)
{
    size_t free_b = 0, total_b = 0;

    memset(out, 0, sizeof(*out));
    snprintf(out->name, sizeof(out->name), "%s", b->name);
    out->backend = VGPU_BACKEND_CUDA;
    out->sm_count = (uint32_t)b->sms;
    out->cc_major = (uint32_t)b->cc_major;
    out->cc_minor = (uint32_t)b->cc_minor;
    out->total_mem = b->total_mem;
    if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) {
        out->free_mem = free_b;
        out->total_mem = total_b;
    } else {
        (void)cudaGetLastError();
    }
    out->driver_version = (uint32_t)b->driver_version;
    out->runtime_version = (uint32_t)b->runtime_version;
    out->multiprocessor_clock_khz = (uint32_t)b->clock_khz;
}

static int gpu_info_run(struct vgpu_backend_session *s, const struct vgpu_sqe *sqe,
                        uint64_t *result)
{
    const struct vgpu_args_gpu_info *a = &sqe->args.gpu_info;
    struct vgpu_gpu_info info;

    if (!cuda_shm_range_ok(s, a->out_off, sizeof(info))) {
        return VGPU_S_BAD_RANGE;
    }
    cuda_fill_gpu_info(s->b, &info);
    memcpy(s->shm.base + a->out_off, &info, sizeof(info));
    *result = sizeof(info);
    return VGPU_S_OK;
}

const struct vgpu_cuda_op vgpu_cuda_op_gpu_info = {
    .opcode = VGPU_OP_GPU_INFO,
    .run = gpu_info_run,
};
