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
    /* 7 .. 15: not assigned (unknown-op). 1.2: the CUDA driver operations. */
    [VGPU_OP_CU_DEVICE_INFO]         = &vgpu_op_cu_device_info,
    [VGPU_OP_CU_MEM_GET_INFO]        = &vgpu_op_cu_mem_get_info,
    [VGPU_OP_CU_MEM_ALLOC]           = &vgpu_op_cu_mem_alloc,
    [VGPU_OP_CU_MEM_FREE]            = &vgpu_op_cu_mem_free,
    [VGPU_OP_CU_MEMSET]              = &vgpu_op_cu_memset,
    [VGPU_OP_CU_MEMCPY_HTOD]         = &vgpu_op_cu_memcpy_htod,
    [VGPU_OP_CU_MEMCPY_DTOH]         = &vgpu_op_cu_memcpy_dtoh,
    [VGPU_OP_CU_MEMCPY_DTOD]         = &vgpu_op_cu_memcpy_dtod,
    [VGPU_OP_CU_MEMCPY_2D]           = &vgpu_op_cu_memcpy_2d,
    [VGPU_OP_CU_MODULE_LOAD]         = &vgpu_op_cu_module_load,
    [VGPU_OP_CU_MODULE_UNLOAD]       = &vgpu_op_cu_module_unload,
    [VGPU_OP_CU_MODULE_GET_FUNCTION] = &vgpu_op_cu_module_get_function,
    [VGPU_OP_CU_MODULE_GET_GLOBAL]   = &vgpu_op_cu_module_get_global,
    [VGPU_OP_CU_LAUNCH]              = &vgpu_op_cu_launch,
    [VGPU_OP_CU_STREAM_CREATE]       = &vgpu_op_cu_stream_create,
    [VGPU_OP_CU_STREAM_DESTROY]      = &vgpu_op_cu_stream_destroy,
    [VGPU_OP_CU_STREAM_SYNC]         = &vgpu_op_cu_stream_sync,
    [VGPU_OP_CU_STREAM_QUERY]        = &vgpu_op_cu_stream_query,
    [VGPU_OP_CU_STREAM_WAIT_EVENT]   = &vgpu_op_cu_stream_wait_event,
    [VGPU_OP_CU_EVENT_CREATE]        = &vgpu_op_cu_event_create,
    [VGPU_OP_CU_EVENT_DESTROY]       = &vgpu_op_cu_event_destroy,
    [VGPU_OP_CU_EVENT_RECORD]        = &vgpu_op_cu_event_record,
    [VGPU_OP_CU_EVENT_SYNC]          = &vgpu_op_cu_event_sync,
    [VGPU_OP_CU_EVENT_QUERY]         = &vgpu_op_cu_event_query,
    [VGPU_OP_CU_EVENT_ELAPSED]       = &vgpu_op_cu_event_elapsed,
    [VGPU_OP_CU_CTX_SYNC]            = &vgpu_op_cu_ctx_sync,
    [VGPU_OP_CU_FUNC_GET_ATTR]       = &vgpu_op_cu_func_get_attr,
    [VGPU_OP_CU_FUNC_SET_ATTR]       = &vgpu_op_cu_func_set_attr,
    [VGPU_OP_CU_OCCUPANCY]           = &vgpu_op_cu_occupancy,
    [VGPU_OP_CU_CTX_RESET]           = &vgpu_op_cu_ctx_reset,
    [VGPU_OP_CU_LAUNCH_ATTRS]        = &vgpu_op_cu_launch_attrs,
    [VGPU_OP_CU_TENSOR_MAP]          = &vgpu_op_cu_tensor_map,
    [VGPU_OP_CU_CTX_LIMIT]           = &vgpu_op_cu_ctx_limit,
};

const struct vgpu_op *vgpu_op_lookup(uint32_t opcode)
{
    return opcode < VGPU_OP_COUNT ? vgpu_ops[opcode] : NULL;
}
