/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * REDUCE_SUM on the GPU: the input in, vgpu_k_reduce_sum into the session's
 * partials (two passes, double precision), the sum back through the pinned
 * host_result; the result is the double's bits.
 */
#include <stdint.h>
#include <string.h>

#include "mediator/cuda/engine-priv.h"

static int reduce_sum_run(struct vgpu_backend_session *s, const struct vgpu_sqe *sqe,
                          uint64_t *result)
{
    const struct vgpu_args_reduce_sum *a = &sqe->args.reduce_sum;
    uint64_t bytes = a->n * sizeof(float);
    uint64_t need[CUDA_SLOTS] = { bytes, 0, 0 };
    double *dev_sum = s->dev_partials + VGPU_K_REDUCE_MAX_PARTIALS;
    cudaError_t err;
    double sum;

    TRY(cuda_bufs_reserve(s, need));
    TRY(cuda_h2d(s, s->buf[0].ptr, a->in_off, bytes));
    TRY(cuda_launch_status(s, vgpu_k_reduce_sum(s->buf[0].ptr, a->n, s->dev_partials, dev_sum,
                                                s->b->sms, s->stream), "reduce_sum"));
    err = cudaMemcpyAsync(s->host_result, dev_sum, sizeof(double), cudaMemcpyDeviceToHost,
                          s->stream);
    TRY(cuda_launch_status(s, err, "cudaMemcpyAsync D2H"));
    TRY(cuda_stream_wait(s));
    sum = *s->host_result;
    memcpy(result, &sum, sizeof(sum));
    return VGPU_S_OK;
}

const struct vgpu_cuda_op vgpu_cuda_op_reduce_sum = {
    .opcode = VGPU_OP_REDUCE_SUM,
    .run = reduce_sum_run,
};
