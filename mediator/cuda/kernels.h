/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * The CUDA kernels of the vgpu operations, behind a C interface so that the
 * engine (ops/<op>.c), the GPU tests and the native benchmark baseline
 * launch exactly the same code. Compiled by nvcc (kernels.cu).
 *
 * Every launcher enqueues on the given stream and returns the launch status
 * (cudaSuccess or the error of the launch itself); execution errors surface
 * later, when the stream is queried.
 */
#ifndef VGPU_CUDA_KERNELS_H
#define VGPU_CUDA_KERNELS_H

#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Threads per block of every kernel below. */
#define VGPU_K_BLOCK 256u
/* REDUCE_SUM writes at most this many per-block partial sums (doubles). */
#define VGPU_K_REDUCE_MAX_PARTIALS 1024u

/* out[i] = a[i] + b[i]. out may alias a or b exactly. sms bounds the grid. */
cudaError_t vgpu_k_vector_add(const float *a, const float *b, float *out, uint64_t n,
                              int sms, cudaStream_t st);

/* y[i] = alpha * x[i] + y[i]. */
cudaError_t vgpu_k_saxpy(float alpha, const float *x, float *y, uint64_t n, int sms,
                         cudaStream_t st);

/* y[i] = beta * y[i] (SGEMM with alpha == 0, where BLAS must not read A, B). */
cudaError_t vgpu_k_scale(float beta, float *y, uint64_t n, int sms, cudaStream_t st);

/*
 * *out = sum(in[0..n)) in double: every thread accumulates in double, blocks
 * reduce into partials[] (at most VGPU_K_REDUCE_MAX_PARTIALS entries), one
 * block then sums the partials. The summation order depends only on n and
 * sms, so the result is deterministic for a given GPU.
 */
cudaError_t vgpu_k_reduce_sum(const float *in, uint64_t n, double *partials, double *out,
                              int sms, cudaStream_t st);

#ifdef __cplusplus
}
#endif

#endif /* VGPU_CUDA_KERNELS_H */
