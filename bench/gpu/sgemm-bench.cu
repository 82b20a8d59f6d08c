// SPDX-License-Identifier: GPL-2.0-or-later OR MIT
// sgemm-bench: cublasSgemm N x N x N in a loop, timed with events, the same
// binary natively and through vgpu's libcuda.so.1 (bench/cuda-programs.sh,
// bench/cuda-in-vm.sh). A = 1, B = 2, so every element of C is 2N (exact in
// float up to N = 2^22): C is checked at a few places.
//
// usage: sgemm-bench [N [ITERATIONS]]      (default 8192 20; 3 warm-up runs)
// prints: sgemm N=8192: 51234.5 GFLOP/s (21.45 ms per GEMM, 20 iterations)
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>

#define CK(call)                                                                         \
    do {                                                                                 \
        cudaError_t e_ = (call);                                                         \
        if (e_ != cudaSuccess) {                                                         \
            printf("sgemm-bench: %s: %s\n", #call, cudaGetErrorName(e_));                \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)
#define CB(call)                                                                         \
    do {                                                                                 \
        cublasStatus_t s_ = (call);                                                      \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                               \
            printf("sgemm-bench: %s: %s\n", #call, cublasGetStatusName(s_));             \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)

__global__ void fill(float *p, size_t n, float v)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        p[i] = v;
    }
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 8192;
    int iters = argc > 2 ? atoi(argv[2]) : 20;
    size_t elems = (size_t)n * n;
    float *a, *b, *c, alpha = 1.0f, beta = 0.0f, ms = 0;
    cublasHandle_t h;
    cudaEvent_t e0, e1;
    cudaDeviceProp p;

    if (n < 16 || n > 65536 || iters < 1) {
        printf("usage: sgemm-bench [N 16..65536 [ITERATIONS >= 1]]\n");
        return 2;
    }
    CK(cudaGetDeviceProperties(&p, 0));
    CK(cudaMalloc(&a, elems * sizeof(float)));
    CK(cudaMalloc(&b, elems * sizeof(float)));
    CK(cudaMalloc(&c, elems * sizeof(float)));
    fill<<<1024, 256>>>(a, elems, 1.0f);
    fill<<<1024, 256>>>(b, elems, 2.0f);
    fill<<<1024, 256>>>(c, elems, -1.0f);
    CK(cudaGetLastError());
    CB(cublasCreate(&h));
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    for (int i = 0; i < 3; i++) {
        CB(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, a, n, b, n, &beta, c, n));
    }
    CK(cudaDeviceSynchronize());
    CK(cudaEventRecord(e0));
    for (int i = 0; i < iters; i++) {
        CB(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, a, n, b, n, &beta, c, n));
    }
    CK(cudaEventRecord(e1));
    CK(cudaEventSynchronize(e1));
    CK(cudaEventElapsedTime(&ms, e0, e1));
    size_t at[] = {0, elems / 2 + 17, elems - 1};
    for (int i = 0; i < 3; i++) {
        float v = 0;
        CK(cudaMemcpy(&v, c + at[i], sizeof(v), cudaMemcpyDeviceToHost));
        if (v != 2.0f * n) {
            printf("sgemm-bench: C[%zu] = %g, want %g\n", at[i], v, 2.0 * n);
            return 1;
        }
    }
    double per = ms / iters, gflops = 2.0 * n * n * (double)n / (per * 1e-3) / 1e9;
    printf("sgemm-bench: %s, cuBLAS default math mode\n", p.name);
    printf("sgemm N=%d: %.1f GFLOP/s (%.3f ms per GEMM, %d iterations)\n", n, gflops, per, iters);
    CB(cublasDestroy(h));
    return 0;
}
