/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * Events of the queue's context (ABI 1.2). Every event handle is nonzero.
 *   CU_EVENT_CREATE   flags: CU_EVENT_BLOCKING_SYNC | CU_EVENT_DISABLE_TIMING;
 *                     CU_EVENT_INTERPROCESS is not supported (no IPC between
 *                     VMs' contexts); priority must be 0. Result: the handle.
 *   CU_EVENT_DESTROY, CU_EVENT_SYNC, CU_EVENT_QUERY (result 0 done, 1 not yet)
 *   CU_EVENT_RECORD   async: a = event, b = stream (0: the default stream)
 *   CU_EVENT_ELAPSED  a = start, b = end. Result: ms as IEEE float bits.
 */
#include "mediator/ops/cu-priv.h"

static int event_create_validate(const struct vgpu_sqe *sqe, uint64_t shm_size)
{
    const struct vgpu_args_cu_create *a = &sqe->args.cu_create;
    int s = vgpu_cu_check_header(sqe, sizeof(*a));

    (void)shm_size;
    if (s != VGPU_S_OK) {
        return s;
    }
    if ((a->flags & ~VGPU_CU_EVENT_FLAGS) != 0 || a->priority != 0) {
        return VGPU_S_BAD_ARGS;
    }
    return (a->flags & VGPU_CU_EVENT_INTERPROCESS) ? VGPU_S_NOT_SUPPORTED : VGPU_S_OK;
}

/* RECORD and ELAPSED: one struct vgpu_args_cu_pair, a an event. */
static int pair_common(const struct vgpu_sqe *sqe)
{
    const struct vgpu_args_cu_pair *a = &sqe->args.cu_pair;
    int s = vgpu_cu_check_header(sqe, sizeof(*a));

    if (s != VGPU_S_OK) {
        return s;
    }
    if (a->flags != 0 || a->pad != 0) {
        return VGPU_S_BAD_ARGS;
    }
    return vgpu_cu_check_handle(a->a);
}

static int event_record_validate(const struct vgpu_sqe *sqe, uint64_t shm_size)
{
    (void)shm_size;
    return pair_common(sqe);                /* b: any stream, 0 included */
}

static int event_elapsed_validate(const struct vgpu_sqe *sqe, uint64_t shm_size)
{
    int s = pair_common(sqe);

    (void)shm_size;
    return s != VGPU_S_OK ? s : vgpu_cu_check_handle(sqe->args.cu_pair.b);
}

const struct vgpu_op vgpu_op_cu_event_create = {
    .opcode     = VGPU_OP_CU_EVENT_CREATE,
    .name       = "cu_event_create",
    .validate   = event_create_validate,
    .cost_ns    = vgpu_cu_cost_small,
    .bytes      = vgpu_cu_bytes_none,
    .exec_cpu   = vgpu_cu_exec_cpu,
    .idempotent = vgpu_cu_idempotent,
};

const struct vgpu_op vgpu_op_cu_event_destroy = {
    .opcode     = VGPU_OP_CU_EVENT_DESTROY,
    .name       = "cu_event_destroy",
    .validate   = vgpu_cu_validate_object,
    .cost_ns    = vgpu_cu_cost_small,
    .bytes      = vgpu_cu_bytes_none,
    .exec_cpu   = vgpu_cu_exec_cpu,
    .idempotent = vgpu_cu_idempotent,
};

const struct vgpu_op vgpu_op_cu_event_record = {
    .opcode     = VGPU_OP_CU_EVENT_RECORD,
    .name       = "cu_event_record",
    .validate   = event_record_validate,
    .cost_ns    = vgpu_cu_cost_small,
    .bytes      = vgpu_cu_bytes_none,
    .exec_cpu   = vgpu_cu_exec_cpu,
    .idempotent = vgpu_cu_idempotent,
};

const struct vgpu_op vgpu_op_cu_event_sync = {
    .opcode     = VGPU_OP_CU_EVENT_SYNC,
    .name       = "cu_event_sync",
    .validate   = vgpu_cu_validate_object,
    .cost_ns    = vgpu_cu_cost_small,
    .bytes      = vgpu_cu_bytes_none,
    .exec_cpu   = vgpu_cu_exec_cpu,
    .idempotent = vgpu_cu_idempotent,
    .waits      = true,
};

const struct vgpu_op vgpu_op_cu_event_query = {
    .opcode     = VGPU_OP_CU_EVENT_QUERY,
    .name       = "cu_event_query",
    .validate   = vgpu_cu_validate_object,
    .cost_ns    = vgpu_cu_cost_small,
    .bytes      = vgpu_cu_bytes_none,
    .exec_cpu   = vgpu_cu_exec_cpu,
    .idempotent = vgpu_cu_idempotent,
};

const struct vgpu_op vgpu_op_cu_event_elapsed = {
    .opcode     = VGPU_OP_CU_EVENT_ELAPSED,
    .name       = "cu_event_elapsed",
    .validate   = event_elapsed_validate,
    .cost_ns    = vgpu_cu_cost_small,
    .bytes      = vgpu_cu_bytes_none,
    .exec_cpu   = vgpu_cu_exec_cpu,
    .idempotent = vgpu_cu_idempotent,
};
