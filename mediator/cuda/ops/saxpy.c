/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * SAXPY on the GPU: x and y in, vgpu_k_saxpy in place in y's buffer, y out.
 */
#include <stdint.h>

#include "mediator/cuda/engine-priv.h"

static int saxpy_run(struct vgpu_backend_session *s, const struct vgpu_sqe *sqe,
                     uint64_t *result)
{
    const struct vgpu_args_saxpy *a = &sqe->args.saxpy;
    uint64_t bytes = a->n * sizeof(float);
    uint64_t need[CUDA_SLOTS] = { bytes, bytes, 0 };

    TRY(cuda_bufs_reserve(s, need));
    TRY(cuda_h2d(s, s->buf[0].ptr, a->x_off, bytes));
    TRY(cuda_h2d(s, s->buf[1].ptr, a->y_off, bytes));
    TRY(cuda_launch_status(s, vgpu_k_saxpy(a->alpha, s->buf[0].ptr, s->buf[1].ptr, a->n,
                                           s->b->sms, s->stream), "saxpy"));
    TRY(cuda_d2h(s, a->y_off, s->buf[1].ptr, bytes));
    TRY(cuda_stream_wait(s));
    *result = a->n;
    return VGPU_S_OK;
}

const struct vgpu_cuda_op vgpu_cuda_op_saxpy = {
    .opcode = VGPU_OP_SAXPY,
    .run = saxpy_run,
};
