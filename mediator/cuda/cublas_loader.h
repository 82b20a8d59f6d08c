/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * cuBLAS, loaded at run time. Linking it would tie the mediator to ~600 MiB
 * of shared libraries (libcublas + libcublasLt) and make it fail to start
 * where they are absent; loaded with dlopen(), their absence only turns
 * SGEMM into VGPU_S_NOT_SUPPORTED.
 */
#ifndef VGPU_CUDA_CUBLAS_LOADER_H
#define VGPU_CUDA_CUBLAS_LOADER_H

#include <cuda_runtime_api.h>
#include <cublas_api.h>

struct vgpu_cublas {
    void *dl;                       /* NULL: not loaded */
    char  path[256];                /* what was loaded, or why not */
    cublasStatus_t (*create)(cublasHandle_t *h);
    cublasStatus_t (*destroy)(cublasHandle_t h);
    cublasStatus_t (*set_stream)(cublasHandle_t h, cudaStream_t st);
    cublasStatus_t (*sgemm)(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb,
                            int m, int n, int k, const float *alpha,
                            const float *a, int lda, const float *b, int ldb,
                            const float *beta, float *c, int ldc);
};

/*
 * Tries libcublas.so.13 on the loader's search path, then $CUDA_HOME/lib64,
 * then /usr/local/cuda/lib64. Returns 0 or -ENOENT (not found) / -ENOSYS (a
 * symbol is missing); either way cb->path says what happened.
 */
int vgpu_cublas_load(struct vgpu_cublas *cb);
void vgpu_cublas_unload(struct vgpu_cublas *cb); /* accepts an unloaded one */

/*
 * Row-major C(m x n) = alpha * A(m x k) * B(k x n) + beta * C on the handle's
 * stream. cuBLAS is column-major: a row-major matrix is its transpose in
 * column-major, so this computes C^T = B^T * A^T with no data movement.
 */
static inline cublasStatus_t
vgpu_cublas_sgemm_rowmajor(const struct vgpu_cublas *cb, cublasHandle_t h, int m, int n, int k,
                           float alpha, const float *a, const float *b, float beta, float *c)
{
    /* Column-major view: B is n x k (ld n), A is k x m (ld k), C is n x m (ld n). */
    return cb->sgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, n, m, k, &alpha, b, n, a, k, &beta, c, n);
}

#endif /* VGPU_CUDA_CUBLAS_LOADER_H */
