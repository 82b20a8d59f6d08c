// SPDX-License-Identifier: GPL-2.0-or-later OR MIT
// reduction: sum of 2^24 + 3 integers and of doubles, two passes of a
// shared-memory tree with warp shuffles for the last 32, and a max reduction
// with an argmax; exact against the CPU (integers) or within 1e-8 relative
// (doubles, summed in a different order).
#include "check.h"

template <typename T> __device__ T warp_sum(T v)
{
    for (int off = 16; off > 0; off /= 2) {
        v += __shfl_down_sync(0xffffffffu, v, off);
    }
    return v;
}

// One partial sum per block; 256 threads.
template <typename T> __global__ void block_sum(const T *in, T *out, long n)
{
    __shared__ T s[256];
    T v = 0;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n;
         i += (long)gridDim.x * blockDim.x) {
        v += in[i];
    }
    s[threadIdx.x] = v;
    __syncthreads();
    for (int w = blockDim.x / 2; w >= 32; w /= 2) {
        if (threadIdx.x < w) {
            s[threadIdx.x] += s[threadIdx.x + w];
        }
        __syncthreads();
    }
    if (threadIdx.x < 32) {
        v = warp_sum(s[threadIdx.x]);
        if (threadIdx.x == 0) {
            out[blockIdx.x] = v;
        }
    }
}

__global__ void argmax(const int *in, long n, unsigned long long *best)
{
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n;
         i += (long)gridDim.x * blockDim.x) {
        // value in the high half, the lowest index wins a tie (inverted)
        unsigned long long key = ((unsigned long long)(unsigned)in[i] << 32) |
                                 (0xffffffffu - (unsigned)i);
        atomicMax(best, key);
    }
}

template <typename T> static T reduce(const T *d_in, long n, T *d_tmp, int blocks)
{
    T r;
    block_sum<T><<<blocks, 256>>>(d_in, d_tmp, n);
    CK_LAUNCH();
    block_sum<T><<<1, 256>>>(d_tmp, d_tmp + blocks, blocks);
    CK_LAUNCH();
    CK(cudaMemcpy(&r, d_tmp + blocks, sizeof(T), cudaMemcpyDeviceToHost));
    return r;
}

int main(void)
{
    const long n = (1l << 24) + 3;
    const int blocks = 1024;
    int *h = (int *)malloc(n * sizeof(int)), *d;
    double *hd = (double *)malloc(n * sizeof(double)), *dd;
    long long *dtmp;
    double *dtmpd;
    unsigned seed = 5;
    long long ref = 0;
    double refd = 0;
    long refmax_i = 0;

    prog_name = "reduction";
    if (!h || !hd) {
        fail("out of host memory");
    }
    for (long i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        h[i] = (int)(seed >> 8) & 0xfffff;
        hd[i] = h[i] * 1e-3;
        ref += h[i];
        refd += hd[i];
        if (h[i] > h[refmax_i]) {
            refmax_i = i;
        }
    }
    long long *hl = (long long *)malloc(n * sizeof(long long)), *dl;
    for (long i = 0; i < n; i++) {
        hl[i] = h[i];
    }
    CK(cudaMalloc(&d, n * sizeof(int)));
    CK(cudaMalloc(&dl, n * sizeof(long long)));
    CK(cudaMalloc(&dd, n * sizeof(double)));
    CK(cudaMalloc(&dtmp, (blocks + 1) * sizeof(long long)));
    CK(cudaMalloc(&dtmpd, (blocks + 1) * sizeof(double)));
    CK(cudaMemcpy(d, h, n * sizeof(int), cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dl, hl, n * sizeof(long long), cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dd, hd, n * sizeof(double), cudaMemcpyHostToDevice));

    long long s = reduce<long long>(dl, n, dtmp, blocks);
    if (s != ref) {
        fail("integer sum %lld, want %lld", s, ref);
    }
    double sd = reduce<double>(dd, n, dtmpd, blocks);
    if (!(fabs(sd - refd) <= 1e-8 * fabs(refd))) {
        fail("double sum %.17g, want %.17g", sd, refd);
    }
    unsigned long long *dbest, best = 0;
    CK(cudaMalloc(&dbest, sizeof(best)));
    CK(cudaMemset(dbest, 0, sizeof(best)));
    argmax<<<512, 256>>>(d, n, dbest);
    CK_LAUNCH();
    CK(cudaMemcpy(&best, dbest, sizeof(best), cudaMemcpyDeviceToHost));
    long bi = 0xffffffffl - (long)(best & 0xffffffffu);
    if ((int)(best >> 32) != h[refmax_i] || bi != refmax_i) {
        fail("max %d at %ld, want %d at %ld", (int)(best >> 32), bi, h[refmax_i], refmax_i);
    }
    char det[96];
    snprintf(det, sizeof(det), "n = 2^24+3: sum %lld, double sum %.6f, max at %ld", s, sd, bi);
    pass(det);
}
