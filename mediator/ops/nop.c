/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/* NOP: no arguments, no data; proves the pathway. Result 0. */
#include "mediator/ops/ops-priv.h"

static int nop_validate(const struct vgpu_sqe *sqe, uint64_t shm_size)
{
    (void)shm_size;
    return sqe->flags != 0 ? VGPU_S_BAD_ARGS : VGPU_S_OK;
}

static uint64_t nop_cost_ns(const struct vgpu_sqe *sqe)
{
    (void)sqe;
    return vgpu_cost_model_ns(0, 0);
}

static void nop_bytes(const struct vgpu_sqe *sqe, uint64_t *in, uint64_t *out)
{
    (void)sqe;
    *in = 0;
    *out = 0;
}

static int nop_exec_cpu(const struct vgpu_sqe *sqe, const struct vgpu_shm_view *shm,
                        uint64_t *result)
{
    (void)sqe;
    (void)shm;
    *result = 0;
    return VGPU_S_OK;
}

/* Names no shared memory. */
static unsigned nop_ranges(const struct vgpu_sqe *sqe, struct vgpu_range out[])
{
    (void)sqe;
    (void)out;
    return 0;
}

const struct vgpu_op vgpu_op_nop = {
    .opcode   = VGPU_OP_NOP,
    .name     = "nop",
    .validate = nop_validate,
    .cost_ns  = nop_cost_ns,
    .bytes    = nop_bytes,
    .exec_cpu = nop_exec_cpu,
    .idempotent = vgpu_op_always_idempotent,
    .ranges   = nop_ranges,
};
