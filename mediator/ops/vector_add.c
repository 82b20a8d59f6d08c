/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * VECTOR_ADD: out[i] = a[i] + b[i], n float32. out may alias a or b exactly
 * (an in-place add); any other overlap with out is rejected, because then the
 * result would depend on the order the backend writes elements in. a and b
 * are only read and may overlap each other freely. Result: n.
 */
#include "mediator/ops/ops-priv.h"

static int vector_add_validate(const struct vgpu_sqe *sqe, uint64_t shm_size)
{
    const struct vgpu_args_vector_add *a = &sqe->args.vector_add;
    uint64_t len;
    int s;

    if (sqe->flags != 0) {
        return VGPU_S_BAD_ARGS;
    }
    s = vgpu_check_count(a->n, VGPU_MAX_ELEMS);
    if (s != VGPU_S_OK) {
        return s;
    }
    len = a->n * sizeof(float);     /* n <= 2^28: no overflow */
    if ((s = vgpu_check_range(a->a_off, len, sizeof(float), shm_size)) != VGPU_S_OK ||
        (s = vgpu_check_range(a->b_off, len, sizeof(float), shm_size)) != VGPU_S_OK ||
        (s = vgpu_check_range(a->out_off, len, sizeof(float), shm_size)) != VGPU_S_OK) {
        return s;
    }
    if ((a->out_off != a->a_off && vgpu_ranges_overlap(a->out_off, len, a->a_off, len)) ||
        (a->out_off != a->b_off && vgpu_ranges_overlap(a->out_off, len, a->b_off, len))) {
        return VGPU_S_OVERLAP;
    }
    return VGPU_S_OK;
}

static void vector_add_bytes(const struct vgpu_sqe *sqe, uint64_t *in, uint64_t *out)
{
    uint64_t n = vgpu_clamp_u64(sqe->args.vector_add.n, VGPU_MAX_ELEMS);

    *in = 2 * n * sizeof(float);
    *out = n * sizeof(float);
}

static uint64_t vector_add_cost_ns(const struct vgpu_sqe *sqe)
{
    uint64_t in, out;

    vector_add_bytes(sqe, &in, &out);
    return vgpu_cost_model_ns(in + out, 0);
}

static int vector_add_exec_cpu(const struct vgpu_sqe *sqe, const struct vgpu_shm_view *shm,
                               uint64_t *result)
{
    const struct vgpu_args_vector_add *a = &sqe->args.vector_add;
    const float *x = (const float *)(shm->base + a->a_off);
    const float *y = (const float *)(shm->base + a->b_off);
    float *out = (float *)(shm->base + a->out_off);
    uint64_t n = a->n;

    /*
     * Element i is read before it is written and nothing else overlaps, so
     * this is correct with exact aliasing; GCC vectorises it behind a runtime
     * alias check.
     */
    for (uint64_t i = 0; i < n; i++) {
        out[i] = x[i] + y[i];
    }
    *result = n;
    return VGPU_S_OK;
}

/* In place (out == a or b) a re-run would add twice. */
static bool vector_add_idempotent(const struct vgpu_sqe *sqe)
{
    const struct vgpu_args_vector_add *a = &sqe->args.vector_add;

    return a->out_off != a->a_off && a->out_off != a->b_off;
}

static uint32_t vector_add_parts(const struct vgpu_sqe *sqe, uint32_t want)
{
    return vgpu_op_split_count(sqe->args.vector_add.n, VGPU_OP_SPLIT_GRAIN, want);
}

static void vector_add_part(const struct vgpu_sqe *sqe, uint32_t i, uint32_t n,
                            struct vgpu_sqe *out)
{
    struct vgpu_args_vector_add *a = &out->args.vector_add;
    uint64_t first, count;

    *out = *sqe;
    vgpu_op_split_range(sqe->args.vector_add.n, VGPU_OP_SPLIT_GRAIN, i, n, &first, &count);
    a->a_off += first * sizeof(float);
    a->b_off += first * sizeof(float);
    a->out_off += first * sizeof(float);
    a->n = count;
}

static unsigned vector_add_ranges(const struct vgpu_sqe *sqe, struct vgpu_range out[])
{
    const struct vgpu_args_vector_add *a = &sqe->args.vector_add;
    uint64_t len = a->n * sizeof(float);     /* validated: n <= 2^28 */

    out[0] = (struct vgpu_range){ a->a_off, len };
    out[1] = (struct vgpu_range){ a->b_off, len };
    out[2] = (struct vgpu_range){ a->out_off, len };
    return 3;
}

const struct vgpu_op vgpu_op_vector_add = {
    .opcode   = VGPU_OP_VECTOR_ADD,
    .name     = "vector_add",
    .validate = vector_add_validate,
    .cost_ns  = vector_add_cost_ns,
    .bytes    = vector_add_bytes,
    .exec_cpu = vector_add_exec_cpu,
    .idempotent = vector_add_idempotent,
    .parts    = vector_add_parts,
    .part     = vector_add_part,
    .ranges   = vector_add_ranges,
};
