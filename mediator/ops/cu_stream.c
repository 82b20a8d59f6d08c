/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * Streams of the queue's context (ABI 1.2). Stream 0 is the default stream
 * wherever a stream is taken, except by DESTROY.
 *   CU_STREAM_CREATE      flags: CU_STREAM_NON_BLOCKING or 0; priority: any
 *                         (the driver clamps it). Result: the stream handle.
 *   CU_STREAM_DESTROY     handle: a stream, nonzero
 *   CU_STREAM_SYNC        waits for the stream's work
 *   CU_STREAM_QUERY       result: 0 done, 1 still running
 *   CU_STREAM_WAIT_EVENT  async: a = stream, b = event (nonzero); flags 0
 */
#include "mediator/ops/cu-priv.h"

static int stream_create_validate(const struct vgpu_sqe *sqe, uint64_t shm_size)
{
    const struct vgpu_args_cu_create *a = &sqe->args.cu_create;
    int s = vgpu_cu_check_header(sqe, sizeof(*a));

    (void)shm_size;
    if (s != VGPU_S_OK) {
        return s;
    }
    return (a->flags & ~VGPU_CU_STREAM_FLAGS) != 0 ? VGPU_S_BAD_ARGS : VGPU_S_OK;
}

const struct vgpu_op vgpu_op_cu_stream_create = {
    .opcode     = VGPU_OP_CU_STREAM_CREATE,
    .name       = "cu_stream_create",
    .validate   = stream_create_validate,
    .cost_ns    = vgpu_cu_cost_small,
    .bytes      = vgpu_cu_bytes_none,
    .exec_cpu   = vgpu_cu_exec_cpu,
    .idempotent = vgpu_cu_idempotent,
};

const struct vgpu_op vgpu_op_cu_stream_destroy = {
    .opcode     = VGPU_OP_CU_STREAM_DESTROY,
    .name       = "cu_stream_destroy",
    .validate   = vgpu_cu_validate_object,
    .cost_ns    = vgpu_cu_cost_small,
    .bytes      = vgpu_cu_bytes_none,
    .exec_cpu   = vgpu_cu_exec_cpu,
    .idempotent = vgpu_cu_idempotent,
};

const struct vgpu_op vgpu_op_cu_stream_sync = {
    .opcode     = VGPU_OP_CU_STREAM_SYNC,
    .name       = "cu_stream_sync",
    .validate   = vgpu_cu_validate_stream,
    .cost_ns    = vgpu_cu_cost_small,
    .bytes      = vgpu_cu_bytes_none,
    .exec_cpu   = vgpu_cu_exec_cpu,
    .idempotent = vgpu_cu_idempotent,
    .waits      = true,
};

const struct vgpu_op vgpu_op_cu_stream_query = {
    .opcode     = VGPU_OP_CU_STREAM_QUERY,
    .name       = "cu_stream_query",
    .validate   = vgpu_cu_validate_stream,
    .cost_ns    = vgpu_cu_cost_small,
    .bytes      = vgpu_cu_bytes_none,
    .exec_cpu   = vgpu_cu_exec_cpu,
    .idempotent = vgpu_cu_idempotent,
};

static int stream_wait_event_validate(const struct vgpu_sqe *sqe, uint64_t shm_size)
{
    const struct vgpu_args_cu_pair *a = &sqe->args.cu_pair;
    int s = vgpu_cu_check_header(sqe, sizeof(*a));

    (void)shm_size;
    if (s != VGPU_S_OK) {
        return s;
    }
    if (a->flags != 0 || a->pad != 0) {
        return VGPU_S_BAD_ARGS;
    }
    return vgpu_cu_check_handle(a->b);      /* a: any stream, 0 included */
}

const struct vgpu_op vgpu_op_cu_stream_wait_event = {
    .opcode     = VGPU_OP_CU_STREAM_WAIT_EVENT,
    .name       = "cu_stream_wait_event",
    .validate   = stream_wait_event_validate,
    .cost_ns    = vgpu_cu_cost_small,
    .bytes      = vgpu_cu_bytes_none,
    .exec_cpu   = vgpu_cu_exec_cpu,
    .idempotent = vgpu_cu_idempotent,
};
