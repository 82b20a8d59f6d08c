/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * The operation registry: a const table indexed by opcode. Adding an
 * operation is its own file plus one line here (and one in meson.build).
 */
#include "mediator/ops/ops-priv.h"

static const struct vgpu_op *const vgpu_ops[VGPU_OP_COUNT] = {
    [VGPU_OP_NOP]        = &vgpu_op_nop,
    [VGPU_OP_GPU_INFO]   = &vgpu_op_gpu_info,
    [VGPU_OP_VECTOR_ADD] = &vgpu_op_vector_add,
    [VGPU_OP_SAXPY]      = &vgpu_op_saxpy,
    [VGPU_OP_REDUCE_SUM] = &vgpu_op_reduce_sum,
    [VGPU_OP_SGEMM]      = &vgpu_op_sgemm,
    [VGPU_OP_MEMCPY]     = &vgpu_op_memcpy,
};

const struct vgpu_op *vgpu_op_lookup(uint32_t opcode)
{
    return opcode < VGPU_OP_COUNT ? vgpu_ops[opcode] : NULL;
}
