/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * SAXPY: y[i] = alpha * x[i] + y[i], n float32. x must not overlap y at all
 * (abi.h), which lets the loop use restrict. Result: n.
 */
#include "mediator/ops/ops-priv.h"

static int saxpy_validate(const struct vgpu_sqe *sqe, uint64_t shm_size)
{
    const struct vgpu_args_saxpy *a = &sqe->args.saxpy;
    uint64_t len;
    int s;

    if (sqe->flags != 0 || a->pad != 0) {
        return VGPU_S_BAD_ARGS;
    }
    s = vgpu_check_count(a->n, VGPU_MAX_ELEMS);
    if (s != VGPU_S_OK) {
        return s;
    }
    len = a->n * sizeof(float);     /* n <= 2^28: no overflow */
    if ((s = vgpu_check_range(a->x_off, len, sizeof(float), shm_size)) != VGPU_S_OK ||
        (s = vgpu_check_range(a->y_off, len, sizeof(float), shm_size)) != VGPU_S_OK) {
        return s;
    }
    if (vgpu_ranges_overlap(a->x_off, len, a->y_off, len)) {
        return VGPU_S_OVERLAP;
    }
    return VGPU_S_OK;
}

static void saxpy_bytes(const struct vgpu_sqe *sqe, uint64_t *in, uint64_t *out)
{
    uint64_t n = vgpu_clamp_u64(sqe->args.saxpy.n, VGPU_MAX_ELEMS);

    *in = 2 * n * sizeof(float);
    *out = n * sizeof(float);
}

static uint64_t saxpy_cost_ns(const struct vgpu_sqe *sqe)
{
    uint64_t in, out;

    saxpy_bytes(sqe, &in, &out);
    return vgpu_cost_model_ns(in + out, 0);
}

static int saxpy_exec_cpu(const struct vgpu_sqe *sqe, const struct vgpu_shm_view *shm,
                          uint64_t *result)
{
    const struct vgpu_args_saxpy *a = &sqe->args.saxpy;
    const float *restrict x = (const float *)(shm->base + a->x_off);
    float *restrict y = (float *)(shm->base + a->y_off);
    const float alpha = a->alpha;
    uint64_t n = a->n;

    for (uint64_t i = 0; i < n; i++) {
        y[i] = alpha * x[i] + y[i];
    }
    *result = n;
    return VGPU_S_OK;
}

static uint32_t saxpy_parts(const struct vgpu_sqe *sqe, uint32_t want)
{
    return vgpu_op_split_count(sqe->args.saxpy.n, VGPU_OP_SPLIT_GRAIN, want);
}

static void saxpy_part(const struct vgpu_sqe *sqe, uint32_t i, uint32_t n, struct vgpu_sqe *out)
{
    struct vgpu_args_saxpy *a = &out->args.saxpy;
    uint64_t first, count;

    *out = *sqe;
    vgpu_op_split_range(sqe->args.saxpy.n, VGPU_OP_SPLIT_GRAIN, i, n, &first, &count);
    a->x_off += first * sizeof(float);
    a->y_off += first * sizeof(float);
    a->n = count;
}

static unsigned saxpy_ranges(const struct vgpu_sqe *sqe, struct vgpu_range out[])
{
    const struct vgpu_args_saxpy *a = &sqe->args.saxpy;
    uint64_t len = a->n * sizeof(float);     /* validated: n <= 2^28 */

    out[0] = (struct vgpu_range){ a->x_off, len };
    out[1] = (struct vgpu_range){ a->y_off, len };
    return 2;
}


/* y is read and written: a re-run would apply alpha * x twice (no .idempotent). */
const struct vgpu_op vgpu_op_saxpy = {
    .opcode   = VGPU_OP_SAXPY,
    .name     = "saxpy",
    .validate = saxpy_validate,
    .cost_ns  = saxpy_cost_ns,
    .bytes    = saxpy_bytes,
    .exec_cpu = saxpy_exec_cpu,
    .parts    = saxpy_parts,
    .part     = saxpy_part,
    .ranges   = saxpy_ranges,
};
