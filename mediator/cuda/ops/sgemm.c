/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * SGEMM on the GPU: cuBLAS (dlopen()ed, cublas_loader.c) on the VM's stream,
 * row-major through the column-major identity; alpha == 0 scales C without
 * BLAS (and without reading A and B), as BLAS semantics require. Without
 * cuBLAS, alpha != 0 is not-supported. The VM's cuBLAS handle is created on
 * its first SGEMM.
 */
#include <stdint.h>
#include <stdio.h>

#include "mediator/cuda/engine-priv.h"

static int blas_status(struct vgpu_backend_session *s, cublasStatus_t cst, const char *what)
{
    char detail[32];

    if (cst == CUBLAS_STATUS_SUCCESS) {
        return VGPU_S_OK;
    }
    snprintf(detail, sizeof(detail), "cublas status %d", (int)cst);
    cuda_note_error(s->b, s->vm_id, what, detail);
    switch (cst) {
    case CUBLAS_STATUS_ALLOC_FAILED:
        return VGPU_S_NO_MEMORY;
    case CUBLAS_STATUS_NOT_SUPPORTED:
    case CUBLAS_STATUS_ARCH_MISMATCH:
        return VGPU_S_NOT_SUPPORTED;
    case CUBLAS_STATUS_EXECUTION_FAILED: {
        /* Usually a sticky fault underneath: let the stream say which. */
        cudaError_t err = cudaStreamQuery(s->stream);
        if (err != cudaSuccess && err != cudaErrorNotReady) {
            return cuda_fail(s, err, what);
        }
        return VGPU_S_GPU_FAULT;
    }
    default:
        return VGPU_S_INTERNAL;
    }
}

static int sgemm_scale_only(struct vgpu_backend_session *s, const struct vgpu_args_sgemm *a,
                            uint64_t c_bytes)
{
    uint64_t need[CUDA_SLOTS] = { 0, 0, c_bytes };

    TRY(cuda_bufs_reserve(s, need));
    if (a->beta == 0.0f) {
        TRY(cuda_launch_status(s, cudaMemsetAsync(s->buf[2].ptr, 0, c_bytes, s->stream),
                               "cudaMemsetAsync"));
    } else {
        TRY(cuda_h2d(s, s->buf[2].ptr, a->c_off, c_bytes));
        TRY(cuda_launch_status(s, vgpu_k_scale(a->beta, s->buf[2].ptr, (uint64_t)a->m * a->n,
                                               s->b->sms, s->stream), "scale"));
    }
    return VGPU_S_OK;
}

static int sgemm_run(struct vgpu_backend_session *s, const struct vgpu_sqe *sqe,
                     uint64_t *result)
{
    const struct vgpu_args_sgemm *a = &sqe->args.sgemm;
    const struct vgpu_cublas *cb = &s->b->cublas;
    uint64_t a_bytes = (uint64_t)a->m * a->k * sizeof(float);
    uint64_t b_bytes = (uint64_t)a->k * a->n * sizeof(float);
    uint64_t c_bytes = (uint64_t)a->m * a->n * sizeof(float);
    uint64_t need[CUDA_SLOTS] = { a_bytes, b_bytes, c_bytes };

    if (a->alpha == 0.0f) {
        TRY(sgemm_scale_only(s, a, c_bytes));
        goto copy_out;
    }
    if (!cb->dl) {
        return VGPU_S_NOT_SUPPORTED;
    }
    if (!s->blas) {
        cublasHandle_t h = NULL;

        TRY(blas_status(s, cb->create(&h), "cublasCreate"));
        if (cb->set_stream(h, s->stream) != CUBLAS_STATUS_SUCCESS) {
            cb->destroy(h);
            cuda_note_error(s->b, s->vm_id, "cublasSetStream", "failed");
            return VGPU_S_INTERNAL;
        }
        s->blas = h;
    }
    TRY(cuda_bufs_reserve(s, need));
    TRY(cuda_h2d(s, s->buf[0].ptr, a->a_off, a_bytes));
    TRY(cuda_h2d(s, s->buf[1].ptr, a->b_off, b_bytes));
    /* With beta == 0, BLAS does not read C (NaNs in it do not propagate). */
    if (a->beta != 0.0f) {
        TRY(cuda_h2d(s, s->buf[2].ptr, a->c_off, c_bytes));
    }
    TRY(blas_status(s, vgpu_cublas_sgemm_rowmajor(cb, s->blas, (int)a->m, (int)a->n,
                                                  (int)a->k, a->alpha, s->buf[0].ptr,
                                                  s->buf[1].ptr, a->beta, s->buf[2].ptr),
                    "cublasSgemm"));
copy_out:
    TRY(cuda_d2h(s, a->c_off, s->buf[2].ptr, c_bytes));
    TRY(cuda_stream_wait(s));
    *result = (uint64_t)a->m * a->n;
    return VGPU_S_OK;
}

const struct vgpu_cuda_op vgpu_cuda_op_sgemm = {
    .opcode = VGPU_OP_SGEMM,
    .run = sgemm_run,
};
