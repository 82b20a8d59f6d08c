/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * Helpers private to the operation tables (mediator/ops/) and the CPU
 * backend: the cost model's constants and the cooperative deadline that lets
 * a long CPU operation give up with VGPU_S_TIMEOUT. Not an interface of the
 * mediator; the public one is mediator/op.h.
 */
#ifndef VGPU_MEDIATOR_OPS_PRIV_H
#define VGPU_MEDIATOR_OPS_PRIV_H

#include <stdbool.h>
#include <stdint.h>

#include "mediator/op.h"

/* One table per operation, each in its own file; listed in registry.c. */
extern const struct vgpu_op vgpu_op_nop;
extern const struct vgpu_op vgpu_op_gpu_info;
extern const struct vgpu_op vgpu_op_vector_add;
extern const struct vgpu_op vgpu_op_saxpy;
extern const struct vgpu_op vgpu_op_reduce_sum;
extern const struct vgpu_op vgpu_op_sgemm;
extern const struct vgpu_op vgpu_op_memcpy;
/* 1.2: the CUDA driver operations, one file per family (cu_context.c,
 * cu_memory.c, cu_copy.c, cu_module.c, cu_launch.c, cu_stream.c, cu_event.c). */
extern const struct vgpu_op vgpu_op_cu_device_info;
extern const struct vgpu_op vgpu_op_cu_mem_get_info;
extern const struct vgpu_op vgpu_op_cu_ctx_sync;
extern const struct vgpu_op vgpu_op_cu_ctx_reset;
extern const struct vgpu_op vgpu_op_cu_launch_attrs;
extern const struct vgpu_op vgpu_op_cu_tensor_map;
extern const struct vgpu_op vgpu_op_cu_ctx_limit;
extern const struct vgpu_op vgpu_op_cu_mem_alloc;
extern const struct vgpu_op vgpu_op_cu_mem_free;
extern const struct vgpu_op vgpu_op_cu_memset;
extern const struct vgpu_op vgpu_op_cu_memcpy_htod;
extern const struct vgpu_op vgpu_op_cu_memcpy_dtoh;
extern const struct vgpu_op vgpu_op_cu_memcpy_dtod;
extern const struct vgpu_op vgpu_op_cu_memcpy_2d;
extern const struct vgpu_op vgpu_op_cu_module_load;
extern const struct vgpu_op vgpu_op_cu_module_unload;
extern const struct vgpu_op vgpu_op_cu_module_get_function;
extern const struct vgpu_op vgpu_op_cu_module_get_global;
extern const struct vgpu_op vgpu_op_cu_launch;
extern const struct vgpu_op vgpu_op_cu_func_get_attr;
extern const struct vgpu_op vgpu_op_cu_func_set_attr;
extern const struct vgpu_op vgpu_op_cu_occupancy;
extern const struct vgpu_op vgpu_op_cu_stream_create;
extern const struct vgpu_op vgpu_op_cu_stream_destroy;
extern const struct vgpu_op vgpu_op_cu_stream_sync;
extern const struct vgpu_op vgpu_op_cu_stream_query;
extern const struct vgpu_op vgpu_op_cu_stream_wait_event;
extern const struct vgpu_op vgpu_op_cu_event_create;
extern const struct vgpu_op vgpu_op_cu_event_destroy;
extern const struct vgpu_op vgpu_op_cu_event_record;
extern const struct vgpu_op vgpu_op_cu_event_sync;
extern const struct vgpu_op vgpu_op_cu_event_query;
extern const struct vgpu_op vgpu_op_cu_event_elapsed;

/*
 * Cost model, for the scheduler's fair share (deficit round robin on cost).
 * It only has to rank requests roughly, so it models one core of the CPU
 * backend: a fixed per-request overhead, bytes moved (in + out) at streaming
 * bandwidth, and flops at a cache-blocked SGEMM's rate. Measured on the
 * development host (Xeon, one core, shared machine): vector_add ~11 GB/s,
 * memcpy ~9 GB/s of in+out traffic, sgemm ~34 GFLOP/s with the AVX2+FMA
 * clone. Rounded down (and halved for flops, for CPUs without AVX2), so
 * estimates err towards "expensive". The CUDA backend reuses these tables; GPU requests are then
 * over-estimated by a roughly constant factor, which keeps shares between
 * VMs fair because every VM is charged with the same model.
 */
#define VGPU_COST_BASE_NS          1000ull   /* dispatch + completion */
#define VGPU_COST_BYTES_PER_US     8000ull   /* 8 GB/s */
#define VGPU_COST_FLOPS_PER_US     16000ull  /* 16 GFLOP/s */

/* .idempotent of operations that write nothing they read. */
bool vgpu_op_always_idempotent(const struct vgpu_sqe *sqe);

/* Elements per grain when an element-wise request is split into parts (64 KiB
 * of floats): small enough for a part of a few milliseconds, large enough
 * that per-part overhead stays below a percent. */
#define VGPU_OP_SPLIT_GRAIN 16384ull

/* Cost callbacks may see unvalidated values: clamp so nothing overflows. */
static inline uint64_t vgpu_clamp_u64(uint64_t v, uint64_t max)
{
    return v < max ? v : max;
}

static inline uint64_t vgpu_cost_model_ns(uint64_t bytes, uint64_t flops)
{
    /* bytes <= ~12 GiB and flops <= 2 * 16384^3 after clamping: *1000 fits. */
    return VGPU_COST_BASE_NS + bytes * 1000 / VGPU_COST_BYTES_PER_US +
           flops * 1000 / VGPU_COST_FLOPS_PER_US;
}

/*
 * Validation of a count against 1..max, the first check after flags/pad.
 * Zero is malformed (bad-args); above max is too-large.
 */
static inline int vgpu_check_count(uint64_t n, uint64_t max)
{
    if (n == 0) {
        return VGPU_S_BAD_ARGS;
    }
    return n > max ? VGPU_S_TOO_LARGE : VGPU_S_OK;
}

/*
 * Cooperative per-request deadline for long CPU operations (CLOCK_MONOTONIC
 * nanoseconds, 0 = none). Thread-local because each executor thread runs one
 * request at a time; set by the CPU backend around exec_cpu. Operations that
 * can run for seconds (SGEMM) poll it between blocks and give up with
 * VGPU_S_TIMEOUT, leaving their output partially written.
 */
void vgpu_ops_set_deadline(uint64_t deadline_ns);
bool vgpu_ops_deadline_passed(void);
uint64_t vgpu_ops_now_ns(void);

#endif /* VGPU_MEDIATOR_OPS_PRIV_H */
