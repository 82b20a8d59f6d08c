/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * The Phase 1 operations on the GPU, indexed by opcode: each is its own file
 * here (the CPU side of the same operation is mediator/ops/<op>.c). Adding
 * one is its file, one line here and one in mediator/cuda/meson.build. NOP
 * never reaches the GPU; the driver operations (VGPU_OP_CU_*) are cu_ops.c.
 */
#include "mediator/cuda/engine-priv.h"

static const struct vgpu_cuda_op *const vgpu_cuda_ops[VGPU_OP_CU_FIRST] = {
    [VGPU_OP_GPU_INFO]   = &vgpu_cuda_op_gpu_info,
    [VGPU_OP_VECTOR_ADD] = &vgpu_cuda_op_vector_add,
    [VGPU_OP_SAXPY]      = &vgpu_cuda_op_saxpy,
    [VGPU_OP_REDUCE_SUM] = &vgpu_cuda_op_reduce_sum,
    [VGPU_OP_SGEMM]      = &vgpu_cuda_op_sgemm,
    [VGPU_OP_MEMCPY]     = &vgpu_cuda_op_memcpy,
};

const struct vgpu_cuda_op *vgpu_cuda_op_lookup(uint32_t opcode)
{
    return opcode < VGPU_OP_CU_FIRST ? vgpu_cuda_ops[opcode] : NULL;
}
