// SPDX-License-Identifier: GPL-2.0-or-later OR MIT
/*
 * Kernels of the vgpu operations (see kernels.h). Plain grid-stride loops:
 * the operations are memory-bound, so the grid only needs enough blocks to
 * keep every SM busy; 64-bit indexes because n goes up to 2^28.
 */
#include "kernels.h"

namespace {

unsigned grid_for(uint64_t n, int sms, unsigned per_sm)
{
    uint64_t want = (n + VGPU_K_BLOCK - 1) / VGPU_K_BLOCK;
    uint64_t cap = (uint64_t)(sms > 0 ? sms : 1) * per_sm;
    if (want > cap) {
        want = cap;
    }
    return want ? (unsigned)want : 1u;
}

__global__ void k_vector_add(const float *a, const float *b, float *out, uint64_t n)
{
    uint64_t stride = (uint64_t)gridDim.x * blockDim.x;
    for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        out[i] = a[i] + b[i];
    }
}

__global__ void k_saxpy(float alpha, const float *x, float *y, uint64_t n)
{
    uint64_t stride = (uint64_t)gridDim.x * blockDim.x;
    for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        y[i] = alpha * x[i] + y[i];
    }
}

__global__ void k_scale(float beta, float *y, uint64_t n)
{
    uint64_t stride = (uint64_t)gridDim.x * blockDim.x;
    for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        y[i] = beta * y[i];
    }
}

__device__ double block_sum(double v)
{
    __shared__ double warp_sums[VGPU_K_BLOCK / 32];
    unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;

    for (int off = 16; off > 0; off >>= 1) {
        v += __shfl_down_sync(0xffffffffu, v, off);
    }
    if (lane == 0) {
        warp_sums[warp] = v;
    }
    __syncthreads();
    v = threadIdx.x < blockDim.x / 32 ? warp_sums[lane] : 0.0;
    if (warp == 0) {
        for (int off = 16; off > 0; off >>= 1) {
            v += __shfl_down_sync(0xffffffffu, v, off);
        }
    }
    return v; /* valid in thread 0 */
}

__global__ void k_reduce_partials(const float *in, uint64_t n, double *partials)
{
    uint64_t stride = (uint64_t)gridDim.x * blockDim.x;
    double acc = 0.0;
    for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        acc += (double)in[i];
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0) {
        partials[blockIdx.x] = acc;
    }
}

__global__ void k_reduce_final(const double *partials, unsigned count, double *out)
{
    double acc = 0.0;
    for (unsigned i = threadIdx.x; i < count; i += blockDim.x) {
        acc += partials[i];
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0) {
        *out = acc;
    }
}

} // namespace

extern "C" cudaError_t vgpu_k_vector_add(const float *a, const float *b, float *out,
                                         uint64_t n, int sms, cudaStream_t st)
{
    k_vector_add<<<grid_for(n, sms, 16), VGPU_K_BLOCK, 0, st>>>(a, b, out, n);
    return cudaGetLastError();
}

extern "C" cudaError_t vgpu_k_saxpy(float alpha, const float *x, float *y, uint64_t n,
                                    int sms, cudaStream_t st)
{
    k_saxpy<<<grid_for(n, sms, 16), VGPU_K_BLOCK, 0, st>>>(alpha, x, y, n);
    return cudaGetLastError();
}

extern "C" cudaError_t vgpu_k_scale(float beta, float *y, uint64_t n, int sms,
                                    cudaStream_t st)
{
    k_scale<<<grid_for(n, sms, 16), VGPU_K_BLOCK, 0, st>>>(beta, y, n);
    return cudaGetLastError();
}

extern "C" cudaError_t vgpu_k_reduce_sum(const float *in, uint64_t n, double *partials,
                                         double *out, int sms, cudaStream_t st)
{
    unsigned blocks = grid_for(n, sms, 4);
    if (blocks > VGPU_K_REDUCE_MAX_PARTIALS) {
        blocks = VGPU_K_REDUCE_MAX_PARTIALS;
    }
    k_reduce_partials<<<blocks, VGPU_K_BLOCK, 0, st>>>(in, n, partials);
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) {
        return err;
    }
    k_reduce_final<<<1, VGPU_K_BLOCK, 0, st>>>(partials, blocks, out);
    return cudaGetLastError();
}
