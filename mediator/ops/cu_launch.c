/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * Kernel functions (ABI 1.2):
 *   CU_LAUNCH         async: func on stream with grid x block threads,
 *                     shared_bytes of dynamic shared memory and params_len
 *                     bytes of packed parameters at params_off (8-aligned;
 *                     params_len 0: no parameters, params_off must be 0)
 *   CU_FUNC_GET_ATTR  result: CUfunction_attribute attr of func; value 0
 *   CU_FUNC_SET_ATTR  sets attr of func to value
 *   CU_OCCUPANCY      result: active blocks per SM for attr threads per
 *                     block (1 .. 1024) and value dynamic shared bytes
 * Grid and block are checked against the hardware's maxima here; against
 * the function's own limits (max threads, registers, shared memory) and
 * its packed parameter size by the worker, which knows the function.
 */
#include "mediator/ops/cu-priv.h"

static int launch_validate(const struct vgpu_sqe *sqe, uint64_t shm_size)
{
    const struct vgpu_args_cu_launch *a = &sqe->args.cu_launch;
    uint64_t threads;
    int s = vgpu_cu_check_header(sqe, sizeof(*a));

    if (s != VGPU_S_OK) {
        return s;
    }
    if ((s = vgpu_cu_check_handle(a->func)) != VGPU_S_OK) {
        return s;
    }
    for (int i = 0; i < 3; i++) {
        if (a->grid[i] == 0 || a->block[i] == 0) {
            return VGPU_S_BAD_ARGS;
        }
    }
    if (a->params_len == 0 && a->params_off != 0) {
        return VGPU_S_BAD_ARGS;
    }
    if (a->grid[0] > VGPU_CU_MAX_GRID_X || a->grid[1] > VGPU_CU_MAX_GRID_YZ ||
        a->grid[2] > VGPU_CU_MAX_GRID_YZ) {
        return VGPU_S_TOO_LARGE;
    }
    if (a->block[0] > VGPU_CU_MAX_BLOCK_XY || a->block[1] > VGPU_CU_MAX_BLOCK_XY ||
        a->block[2] > VGPU_CU_MAX_BLOCK_Z) {
        return VGPU_S_TOO_LARGE;
    }
    /* Each factor is bounded above, so the product fits easily. */
    threads = (uint64_t)a->block[0] * a->block[1] * a->block[2];
    if (threads > VGPU_CU_MAX_BLOCK_THREADS || a->shared_bytes > VGPU_CU_MAX_SHARED ||
        a->params_len > VGPU_CU_MAX_PARAM_BYTES) {
        return VGPU_S_TOO_LARGE;
    }
    if (a->params_len == 0) {
        return VGPU_S_OK;
    }
    return vgpu_check_range(a->params_off, a->params_len, 8, shm_size);
}

static void launch_bytes(const struct vgpu_sqe *sqe, uint64_t *in, uint64_t *out)
{
    *in = vgpu_clamp_u64(sqe->args.cu_launch.params_len, VGPU_CU_MAX_PARAM_BYTES);
    *out = 0;
}

static uint64_t launch_cost_ns(const struct vgpu_sqe *sqe)
{
    (void)sqe;
    return VGPU_COST_BASE_NS + VGPU_CU_COST_LAUNCH_NS;
}

static unsigned launch_ranges(const struct vgpu_sqe *sqe, struct vgpu_range out[])
{
    const struct vgpu_args_cu_launch *a = &sqe->args.cu_launch;

    if (a->params_len == 0) {
        return 0;
    }
    out[0] = (struct vgpu_range) { a->params_off, a->params_len };
    return 1;
}

const struct vgpu_op vgpu_op_cu_launch = {
    .opcode     = VGPU_OP_CU_LAUNCH,
    .name       = "cu_launch",
    .validate   = launch_validate,
    .cost_ns    = launch_cost_ns,
    .bytes      = launch_bytes,
    .exec_cpu   = vgpu_cu_exec_cpu,
    .idempotent = vgpu_cu_idempotent,
    .ranges     = launch_ranges,
};

/* The checks GET_ATTR, SET_ATTR and OCCUPANCY share. */
static int func_common(const struct vgpu_sqe *sqe)
{
    const struct vgpu_args_cu_func_attr *a = &sqe->args.cu_func_attr;
    int s = vgpu_cu_check_header(sqe, sizeof(*a));

    if (s != VGPU_S_OK) {
        return s;
    }
    if (a->pad != 0) {
        return VGPU_S_BAD_ARGS;
    }
    return vgpu_cu_check_handle(a->func);
}

static int func_get_attr_validate(const struct vgpu_sqe *sqe, uint64_t shm_size)
{
    const struct vgpu_args_cu_func_attr *a = &sqe->args.cu_func_attr;
    int s = func_common(sqe);

    (void)shm_size;
    if (s != VGPU_S_OK) {
        return s;
    }
    if (a->attr < 0 || a->attr >= VGPU_CU_FUNC_ATTR_LIMIT || a->value != 0) {
        return VGPU_S_BAD_ARGS;
    }
    return VGPU_S_OK;
}

static int func_set_attr_validate(const struct vgpu_sqe *sqe, uint64_t shm_size)
{
    const struct vgpu_args_cu_func_attr *a = &sqe->args.cu_func_attr;
    int s = func_common(sqe);

    (void)shm_size;
    if (s != VGPU_S_OK) {
        return s;
    }
    /* Which attributes are settable, and to what, is the driver's call. */
    if (a->attr < 0 || a->attr >= VGPU_CU_FUNC_ATTR_LIMIT) {
        return VGPU_S_BAD_ARGS;
    }
    return VGPU_S_OK;
}

static int occupancy_validate(const struct vgpu_sqe *sqe, uint64_t shm_size)
{
    const struct vgpu_args_cu_func_attr *a = &sqe->args.cu_func_attr;
    int s = func_common(sqe);

    (void)shm_size;
    if (s != VGPU_S_OK) {
        return s;
    }
    if (a->attr <= 0 || a->value < 0) {
        return VGPU_S_BAD_ARGS;
    }
    if ((uint32_t)a->attr > VGPU_CU_MAX_BLOCK_THREADS || (uint32_t)a->value > VGPU_CU_MAX_SHARED) {
        return VGPU_S_TOO_LARGE;
    }
    return VGPU_S_OK;
}

const struct vgpu_op vgpu_op_cu_func_get_attr = {
    .opcode     = VGPU_OP_CU_FUNC_GET_ATTR,
    .name       = "cu_func_get_attr",
    .validate   = func_get_attr_validate,
    .cost_ns    = vgpu_cu_cost_small,
    .bytes      = vgpu_cu_bytes_none,
    .exec_cpu   = vgpu_cu_exec_cpu,
    .idempotent = vgpu_cu_idempotent,
};

const struct vgpu_op vgpu_op_cu_func_set_attr = {
    .opcode     = VGPU_OP_CU_FUNC_SET_ATTR,
    .name       = "cu_func_set_attr",
    .validate   = func_set_attr_validate,
    .cost_ns    = vgpu_cu_cost_small,
    .bytes      = vgpu_cu_bytes_none,
    .exec_cpu   = vgpu_cu_exec_cpu,
    .idempotent = vgpu_cu_idempotent,
};

const struct vgpu_op vgpu_op_cu_occupancy = {
    .opcode     = VGPU_OP_CU_OCCUPANCY,
    .name       = "cu_occupancy",
    .validate   = occupancy_validate,
    .cost_ns    = vgpu_cu_cost_small,
    .bytes      = vgpu_cu_bytes_none,
    .exec_cpu   = vgpu_cu_exec_cpu,
    .idempotent = vgpu_cu_idempotent,
};
