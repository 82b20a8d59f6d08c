// SPDX-License-Identifier: GPL-2.0-or-later OR MIT
// atomics: a histogram with atomicAdd on global and shared memory, atomicCAS
// (a float max built on it), atomicMin/Max/Exch/Inc, 64-bit and float
// atomicAdd: every count exact.
#include "check.h"

#define BINS 256

__global__ void histogram(const unsigned char *data, int n, unsigned *global_bins)
{
    __shared__ unsigned bins[BINS];
    for (int i = threadIdx.x; i < BINS; i += blockDim.x) {
        bins[i] = 0;
    }
    __syncthreads();
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        atomicAdd(&bins[data[i]], 1u);
    }
    __syncthreads();
    for (int i = threadIdx.x; i < BINS; i += blockDim.x) {
        atomicAdd(&global_bins[i], bins[i]);
    }
}

__device__ float atomic_max_float(float *addr, float v)
{
    int *ia = (int *)addr, old = *ia, assumed;
    do {
        assumed = old;
        if (__int_as_float(assumed) >= v) {
            break;
        }
        old = atomicCAS(ia, assumed, __float_as_int(v));
    } while (old != assumed);
    return __int_as_float(old);
}

struct results {
    int min, max;
    unsigned inc;
    unsigned long long sum64;
    float fsum, fmax;
    int exch_seen;
};

__global__ void misc(struct results *r, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) {
        return;
    }
    atomicMin(&r->min, n - i);
    atomicMax(&r->max, i);
    atomicInc(&r->inc, 0xffffffffu);
    atomicAdd(&r->sum64, (unsigned long long)i << 20);
    atomicAdd(&r->fsum, 1.0f);
    atomic_max_float(&r->fmax, (float)i * 0.5f);
    int old = atomicExch(&r->exch_seen, i);
    (void)old;
}

int main(void)
{
    const int n = 1 << 24, m = 100000;
    unsigned char *h, *d;
    unsigned *dbins, bins[BINS], ref[BINS] = {0};
    unsigned seed = 3;

    prog_name = "atomics";
    h = (unsigned char *)malloc(n);
    if (!h) {
        fail("out of host memory");
    }
    for (int i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        h[i] = (unsigned char)((seed >> 24) & (i % 7 ? 0xff : 0x0f));   // uneven bins
        ref[h[i]]++;
    }
    CK(cudaMalloc(&d, n));
    CK(cudaMalloc(&dbins, sizeof(bins)));
    CK(cudaMemcpy(d, h, n, cudaMemcpyHostToDevice));
    CK(cudaMemset(dbins, 0, sizeof(bins)));
    histogram<<<264, 512>>>(d, n, dbins);
    CK_LAUNCH();
    CK(cudaMemcpy(bins, dbins, sizeof(bins), cudaMemcpyDeviceToHost));
    for (int i = 0; i < BINS; i++) {
        if (bins[i] != ref[i]) {
            fail("bin %d: %u, want %u", i, bins[i], ref[i]);
        }
    }

    struct results r0 = {0x7fffffff, -1, 0, 0, 0.0f, -1.0f, -1}, r, *dr;
    CK(cudaMalloc(&dr, sizeof(r)));
    CK(cudaMemcpy(dr, &r0, sizeof(r0), cudaMemcpyHostToDevice));
    misc<<<(m + 127) / 128, 128>>>(dr, m);
    CK_LAUNCH();
    CK(cudaMemcpy(&r, dr, sizeof(r), cudaMemcpyDeviceToHost));
    unsigned long long sum64 = 0;
    for (int i = 0; i < m; i++) {
        sum64 += (unsigned long long)i << 20;
    }
    if (r.min != 1 || r.max != m - 1 || r.inc != (unsigned)m || r.sum64 != sum64 ||
        r.fsum != (float)m || r.fmax != (m - 1) * 0.5f || r.exch_seen < 0 || r.exch_seen >= m) {
        fail("min %d max %d inc %u sum64 %llu fsum %g fmax %g exch %d; want 1 %d %d %llu %g %g 0..%d",
             r.min, r.max, r.inc, r.sum64, r.fsum, r.fmax, r.exch_seen, m - 1, m, sum64,
             (float)m, (m - 1) * 0.5f, m - 1);
    }
    pass("2^24-byte histogram, min/max/inc/exch/CAS/64-bit/float");
}
