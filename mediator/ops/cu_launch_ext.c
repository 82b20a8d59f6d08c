/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * What Hopper kernels of the toolkit's libraries need beyond CU_LAUNCH
 * (ABI 1.2):
 *   CU_LAUNCH_ATTRS   async: thread-block cluster dims, scheduling policy
 *                     and cooperative launch for the queue's next CU_LAUNCH
 *                     (cuLaunchKernelEx's attributes), then forgotten
 *   CU_TENSOR_MAP     encodes a TMA descriptor (cuTensorMapEncodeTiled /
 *                     Im2col) from the struct vgpu_cu_tensor_map_req at
 *                     in_off into the 128 bytes at out_off; the format is
 *                     the driver's own, so only the host can write it
 *   CU_CTX_LIMIT      result: the context's CUlimit `limit` (after setting
 *                     it to value when set is 1)
 * The request struct, the cluster against the function and the limits are
 * the driver's to judge, in the VM's worker.
 */
#include "mediator/ops/cu-priv.h"

/* Hopper's largest portable cluster is 8 blocks, 16 with opt-in. */
#define VGPU_CU_MAX_CLUSTER     16u
#define VGPU_CU_LIMIT_COUNT     16u     /* CUlimit values are small */

static int launch_attrs_validate(const struct vgpu_sqe *sqe, uint64_t shm_size)
{
    const struct vgpu_args_cu_launch_attrs *a = &sqe->args.cu_launch_attrs;
    uint64_t blocks = 1;
    int s = vgpu_cu_check_header(sqe, sizeof(*a));

    (void)shm_size;
    if (s != VGPU_S_OK) {
        return s;
    }
    for (unsigned i = 0; i < 7; i++) {
        if (a->pad[i]) {
            return VGPU_S_BAD_ARGS;
        }
    }
    if (a->flags & ~VGPU_CU_LAUNCH_COOPERATIVE) {
        return VGPU_S_BAD_ARGS;
    }
    if (a->cluster[0] || a->cluster[1] || a->cluster[2]) {
        for (unsigned i = 0; i < 3; i++) {
            if (a->cluster[i] == 0 || a->cluster[i] > VGPU_CU_MAX_CLUSTER) {
                return VGPU_S_BAD_ARGS;
            }
            blocks *= a->cluster[i];
        }
        if (blocks > VGPU_CU_MAX_CLUSTER) {
            return VGPU_S_TOO_LARGE;
        }
    }
    return a->cluster_policy > 2 ? VGPU_S_BAD_ARGS : VGPU_S_OK;
}

const struct vgpu_op vgpu_op_cu_launch_attrs = {
    .opcode     = VGPU_OP_CU_LAUNCH_ATTRS,
    .name       = "cu_launch_attrs",
    .validate   = launch_attrs_validate,
    .cost_ns    = vgpu_cu_cost_small,
    .bytes      = vgpu_cu_bytes_none,
    .exec_cpu   = vgpu_cu_exec_cpu,
    .idempotent = vgpu_cu_idempotent,
};

static int tensor_map_validate(const struct vgpu_sqe *sqe, uint64_t shm_size)
{
    const struct vgpu_args_cu_tensor_map *a = &sqe->args.cu_tensor_map;
    int s = vgpu_cu_check_header(sqe, sizeof(*a));

    if (s != VGPU_S_OK) {
        return s;
    }
    if (a->pad || a->kind > VGPU_CU_TENSOR_MAP_IM2COL) {
        return VGPU_S_BAD_ARGS;
    }
    if ((s = vgpu_check_range(a->in_off, sizeof(struct vgpu_cu_tensor_map_req), 8, shm_size)) !=
            VGPU_S_OK ||
        (s = vgpu_check_range(a->out_off, VGPU_CU_TENSOR_MAP_BYTES, 64, shm_size)) != VGPU_S_OK) {
        return s;
    }
    if (vgpu_ranges_overlap(a->in_off, sizeof(struct vgpu_cu_tensor_map_req), a->out_off,
                            VGPU_CU_TENSOR_MAP_BYTES)) {
        return VGPU_S_OVERLAP;
    }
    return VGPU_S_OK;
}

static void tensor_map_bytes(const struct vgpu_sqe *sqe, uint64_t *in, uint64_t *out)
{
    (void)sqe;
    *in = sizeof(struct vgpu_cu_tensor_map_req);
    *out = VGPU_CU_TENSOR_MAP_BYTES;
}

static unsigned tensor_map_ranges(const struct vgpu_sqe *sqe, struct vgpu_range out[])
{
    out[0] = (struct vgpu_range){ sqe->args.cu_tensor_map.in_off,
                                  sizeof(struct vgpu_cu_tensor_map_req) };
    out[1] = (struct vgpu_range){ sqe->args.cu_tensor_map.out_off, VGPU_CU_TENSOR_MAP_BYTES };
    return 2;
}

const struct vgpu_op vgpu_op_cu_tensor_map = {
    .opcode     = VGPU_OP_CU_TENSOR_MAP,
    .name       = "cu_tensor_map",
    .validate   = tensor_map_validate,
    .cost_ns    = vgpu_cu_cost_small,
    .bytes      = tensor_map_bytes,
    .exec_cpu   = vgpu_cu_exec_cpu,
    .idempotent = vgpu_cu_idempotent,
    .ranges     = tensor_map_ranges,
};

static int limit_validate(const struct vgpu_sqe *sqe, uint64_t shm_size)
{
    const struct vgpu_args_cu_limit *a = &sqe->args.cu_limit;
    int s = vgpu_cu_check_header(sqe, sizeof(*a));

    (void)shm_size;
    if (s != VGPU_S_OK) {
        return s;
    }
    return a->set > 1 || a->limit >= VGPU_CU_LIMIT_COUNT ? VGPU_S_BAD_ARGS : VGPU_S_OK;
}

const struct vgpu_op vgpu_op_cu_ctx_limit = {
    .opcode     = VGPU_OP_CU_CTX_LIMIT,
    .name       = "cu_ctx_limit",
    .validate   = limit_validate,
    .cost_ns    = vgpu_cu_cost_small,
    .bytes      = vgpu_cu_bytes_none,
    .exec_cpu   = vgpu_cu_exec_cpu,
    .idempotent = vgpu_cu_idempotent,
};
