/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * VECTOR_ADD on the GPU: both operands in, vgpu_k_vector_add, the sum out,
 * through device buffers 0, 1, 2 of the VM's pool.
 */
#include <stdint.h>

#include "mediator/cuda/engine-priv.h"

static int vector_add_run(struct vgpu_backend_session *s, const struct vgpu_sqe *sqe,
                          uint64_t *result)
{
    const struct vgpu_args_vector_add *a = &sqe->args.vector_add;
    uint64_t bytes = a->n * sizeof(float);
    uint64_t need[CUDA_SLOTS] = { bytes, bytes, bytes };

    TRY(cuda_bufs_reserve(s, need));
    TRY(cuda_h2d(s, s->buf[0].ptr, a->a_off, bytes));
    TRY(cuda_h2d(s, s->buf[1].ptr, a->b_off, bytes));
    TRY(cuda_launch_status(s, vgpu_k_vector_add(s->buf[0].ptr, s->buf[1].ptr, s->buf[2].ptr,
                                                a->n, s->b->sms, s->stream), "vector_add"));
    TRY(cuda_d2h(s, a->out_off, s->buf[2].ptr, bytes));
    TRY(cuda_stream_wait(s));
    *result = a->n;
    return VGPU_S_OK;
}

const struct vgpu_cuda_op vgpu_cuda_op_vector_add = {
    .opcode = VGPU_OP_VECTOR_ADD,
    .run = vector_add_run,
};
