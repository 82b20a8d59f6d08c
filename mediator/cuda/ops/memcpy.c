/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * MEMCPY on the GPU: through device buffer 0, in the request's mode (a round
 * trip, host to device only, or device to host of a zeroed buffer).
 */
#include <stdint.h>

#include "mediator/cuda/engine-priv.h"

static int memcpy_run(struct vgpu_backend_session *s, const struct vgpu_sqe *sqe,
                      uint64_t *result)
{
    const struct vgpu_args_memcpy *a = &sqe->args.memcpy;
    uint64_t need[CUDA_SLOTS] = { a->len, 0, 0 };

    TRY(cuda_bufs_reserve(s, need));
    switch (a->mode) {
    case VGPU_MEMCPY_ROUNDTRIP:
        TRY(cuda_h2d(s, s->buf[0].ptr, a->src_off, a->len));
        TRY(cuda_d2h(s, a->dst_off, s->buf[0].ptr, a->len));
        break;
    case VGPU_MEMCPY_H2D:
        TRY(cuda_h2d(s, s->buf[0].ptr, a->src_off, a->len));
        break;
    case VGPU_MEMCPY_D2H:
        TRY(cuda_launch_status(s, cudaMemsetAsync(s->buf[0].ptr, 0, a->len, s->stream),
                               "cudaMemsetAsync"));
        TRY(cuda_d2h(s, a->dst_off, s->buf[0].ptr, a->len));
        break;
    default:
        return VGPU_S_BAD_ARGS;
    }
    TRY(cuda_stream_wait(s));
    *result = a->len;
    return VGPU_S_OK;
}

const struct vgpu_cuda_op vgpu_cuda_op_memcpy = {
    .opcode = VGPU_OP_MEMCPY,
    .run = memcpy_run,
};
