/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * SGEMM: C = alpha * A(m x k) * B(k x n) + beta * C(m x n), float32,
 * row-major, leading dimensions k, n, n. C must not overlap A or B (it is
 * written while they are read); A and B may overlap each other. BLAS
 * conventions: beta == 0 means C is not read (NaNs in it do not propagate),
 * alpha == 0 means A and B are not read. Result: m * n.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "mediator/ops/ops-priv.h"

/*
 * Cache blocking: B is processed in panels of GEMM_KB rows x GEMM_NB columns
 * (128 KiB), copied into a private contiguous buffer so the panel's rows do
 * not alias in the cache (in place, they are n floats apart: a 4 KiB stride
 * for n = 1024). A block of GEMM_MB rows of C (128 KiB) stays in L2 while
 * all panels of its column range pass through it, in i-k-j order; the
 * innermost loop runs along contiguous rows of the panel and of C.
 */
#define GEMM_MB 128u
#define GEMM_NB 256u
#define GEMM_KB 128u
/* Fewer rows than this per C block read B in place instead of packing it. */
#define GEMM_PACK_MIN_ROWS 16u

static int sgemm_validate(const struct vgpu_sqe *sqe, uint64_t shm_size)
{
    const struct vgpu_args_sgemm *a = &sqe->args.sgemm;
    uint64_t a_len, b_len, c_len;
    int s;

    if (sqe->flags != 0 || a->pad != 0) {
        return VGPU_S_BAD_ARGS;
    }
    if ((s = vgpu_check_count(a->m, VGPU_MAX_GEMM_DIM)) != VGPU_S_OK ||
        (s = vgpu_check_count(a->n, VGPU_MAX_GEMM_DIM)) != VGPU_S_OK ||
        (s = vgpu_check_count(a->k, VGPU_MAX_GEMM_DIM)) != VGPU_S_OK) {
        return s;
    }
    /* Each dimension <= 2^14, so each product <= 2^28 elements = 1 GiB. */
    a_len = (uint64_t)a->m * a->k * sizeof(float);
    b_len = (uint64_t)a->k * a->n * sizeof(float);
    c_len = (uint64_t)a->m * a->n * sizeof(float);
    if ((s = vgpu_check_range(a->a_off, a_len, sizeof(float), shm_size)) != VGPU_S_OK ||
        (s = vgpu_check_range(a->b_off, b_len, sizeof(float), shm_size)) != VGPU_S_OK ||
        (s = vgpu_check_range(a->c_off, c_len, sizeof(float), shm_size)) != VGPU_S_OK) {
        return s;
    }
    if (vgpu_ranges_overlap(a->c_off, c_len, a->a_off, a_len) ||
        vgpu_ranges_overlap(a->c_off, c_len, a->b_off, b_len)) {
        return VGPU_S_OVERLAP;
    }
    return VGPU_S_OK;
}

static void sgemm_dims(const struct vgpu_sqe *sqe, uint64_t *m, uint64_t *n, uint64_t *k)
{
    *m = vgpu_clamp_u64(sqe->args.sgemm.m, VGPU_MAX_GEMM_DIM);
    *n = vgpu_clamp_u64(sqe->args.sgemm.n, VGPU_MAX_GEMM_DIM);
    *k = vgpu_clamp_u64(sqe->args.sgemm.k, VGPU_MAX_GEMM_DIM);
}

static void sgemm_bytes(const struct vgpu_sqe *sqe, uint64_t *in, uint64_t *out)
{
    uint64_t m, n, k;

    sgemm_dims(sqe, &m, &n, &k);
    *in = (m * k + k * n + (sqe->args.sgemm.beta != 0.0f ? m * n : 0)) * sizeof(float);
    *out = m * n * sizeof(float);
}

static uint64_t sgemm_cost_ns(const struct vgpu_sqe *sqe)
{
    uint64_t m, n, k, in, out;

    sgemm_dims(sqe, &m, &n, &k);
    sgemm_bytes(sqe, &in, &out);
    return vgpu_cost_model_ns(in + out, 2 * m * n * k);
}

static void scale_c(float *c, size_t count, float beta)
{
    if (beta == 0.0f) {
        memset(c, 0, count * sizeof(float));    /* all-zero bits are +0.0f */
    } else if (beta != 1.0f) {
        for (size_t i = 0; i < count; i++) {
            c[i] *= beta;
        }
    }
}

/*
 * The host CPU is not known at build time (distribution builds target
 * baseline x86-64): on x86-64 let the loader pick an AVX2+FMA clone of the
 * inner kernel where the CPU has it, roughly doubling throughput.
 */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define GEMM_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define GEMM_CLONES
#endif

/*
 * C[i0..i1, j0..j0+jn] += alpha * A[i0..i1, k0..k0+kn] * P, P the panel
 * (kn x jn, rows ldp floats apart: jn when packed, n when read in place).
 * Four rows of P per pass over a C row: one load and store of C per four
 * multiply-adds instead of per one.
 */
GEMM_CLONES
static void gemm_panel(const float *restrict A, const float *restrict P, size_t ldp,
                       float *restrict C, size_t n, size_t k, float alpha, size_t i0,
                       size_t i1, size_t j0, size_t jn, size_t k0, size_t kn)
{
    for (size_t i = i0; i < i1; i++) {
        float *restrict crow = C + i * n + j0;
        const float *arow = A + i * k + k0;
        size_t kk = 0;

        for (; kk + 4 <= kn; kk += 4) {
            const float a0 = alpha * arow[kk], a1 = alpha * arow[kk + 1];
            const float a2 = alpha * arow[kk + 2], a3 = alpha * arow[kk + 3];
            const float *restrict p0 = P + kk * ldp;
            const float *restrict p1 = p0 + ldp, *restrict p2 = p1 + ldp, *restrict p3 = p2 + ldp;

            for (size_t j = 0; j < jn; j++) {
                crow[j] += a0 * p0[j] + a1 * p1[j] + a2 * p2[j] + a3 * p3[j];
            }
        }
        for (; kk < kn; kk++) {
            const float a0 = alpha * arow[kk];
            const float *restrict p0 = P + kk * ldp;

            for (size_t j = 0; j < jn; j++) {
                crow[j] += a0 * p0[j];
            }
        }
    }
}

static size_t min_sz(size_t a, size_t b)
{
    return a < b ? a : b;
}

static int sgemm_exec_cpu(const struct vgpu_sqe *sqe, const struct vgpu_shm_view *shm,
                          uint64_t *result)
{
    const struct vgpu_args_sgemm *a = &sqe->args.sgemm;
    const float *A = (const float *)(shm->base + a->a_off);
    const float *B = (const float *)(shm->base + a->b_off);
    float *C = (float *)(shm->base + a->c_off);
    const size_t m = a->m, n = a->n, k = a->k;
    int status = VGPU_S_OK;
    float *panel;

    panel = malloc(GEMM_KB * GEMM_NB * sizeof(float));
    if (!panel) {
        return VGPU_S_NO_MEMORY;
    }
    scale_c(C, m * n, a->beta);
    for (size_t j0 = 0; a->alpha != 0.0f && j0 < n; j0 += GEMM_NB) {
        const size_t jn = min_sz(GEMM_NB, n - j0);

        for (size_t i0 = 0; i0 < m; i0 += GEMM_MB) {
            /* Between C blocks: at most 128 x 256 x 16384 x 2 flops, ~0.1 s. */
            if (vgpu_ops_deadline_passed()) {
                status = VGPU_S_TIMEOUT;
                goto out;
            }
            for (size_t k0 = 0; k0 < k; k0 += GEMM_KB) {
                const size_t kn = min_sz(GEMM_KB, k - k0);
                const size_t i1 = min_sz(i0 + GEMM_MB, m);

                if (i1 - i0 < GEMM_PACK_MIN_ROWS) {
                    /* A part of a few rows (see sgemm_parts): packing would
                     * cost as much as the multiply-adds it serves. */
                    gemm_panel(A, B + k0 * n + j0, n, C, n, k, a->alpha, i0, i1, j0, jn,
                               k0, kn);
                    continue;
                }
                /* Re-packed per C block: 1 / (2 * GEMM_MB) of the work. */
                for (size_t kk = 0; kk < kn; kk++) {
                    memcpy(panel + kk * jn, B + (k0 + kk) * n + j0, jn * sizeof(float));
                }
                gemm_panel(A, panel, jn, C, n, k, a->alpha, i0, i1, j0, jn, k0, kn);
            }
        }
    }
    *result = (uint64_t)m * n;
out:
    free(panel);
    return status;
}

/* beta == 0: C is only written (and never overlaps A or B), so a re-run
 * gives the same C; otherwise C is an input too. */
static bool sgemm_idempotent(const struct vgpu_sqe *sqe)
{
    return sqe->args.sgemm.beta == 0.0f;
}

/* Parts are blocks of whole rows of A and C; every part reads all of B. */
static uint32_t sgemm_parts(const struct vgpu_sqe *sqe, uint32_t want)
{
    return vgpu_op_split_count(sqe->args.sgemm.m, 1, want);
}

static void sgemm_part(const struct vgpu_sqe *sqe, uint32_t i, uint32_t n, struct vgpu_sqe *out)
{
    struct vgpu_args_sgemm *a = &out->args.sgemm;
    uint64_t first, count;

    *out = *sqe;
    vgpu_op_split_range(sqe->args.sgemm.m, 1, i, n, &first, &count);
    a->a_off += first * a->k * sizeof(float);
    a->c_off += first * a->n * sizeof(float);
    a->m = (uint32_t)count;
}

static unsigned sgemm_ranges(const struct vgpu_sqe *sqe, struct vgpu_range out[])
{
    const struct vgpu_args_sgemm *a = &sqe->args.sgemm;

    /* Validated: each dimension <= 2^14, so no product overflows. */
    out[0] = (struct vgpu_range){ a->a_off, (uint64_t)a->m * a->k * sizeof(float) };
    out[1] = (struct vgpu_range){ a->b_off, (uint64_t)a->k * a->n * sizeof(float) };
    out[2] = (struct vgpu_range){ a->c_off, (uint64_t)a->m * a->n * sizeof(float) };
    return 3;
}

const struct vgpu_op vgpu_op_sgemm = {
    .opcode   = VGPU_OP_SGEMM,
    .name     = "sgemm",
    .validate = sgemm_validate,
    .cost_ns  = sgemm_cost_ns,
    .bytes    = sgemm_bytes,
    .exec_cpu = sgemm_exec_cpu,
    .idempotent = sgemm_idempotent,
    .parts    = sgemm_parts,
    .part     = sgemm_part,
    .ranges   = sgemm_ranges,
};
